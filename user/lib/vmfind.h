/* Finding VMs on a host, whatever the hypervisor: kvm-vm / kvm-vcpu fds in
 * /proc, QEMU running TCG by its executable, guest RAM from the KVM memslots
 * (BPF task_file iterator, no ptrace) or from QMP. */
#ifndef HATRACE_VMFIND_H
#define HATRACE_VMFIND_H

#include <stdbool.h>
#include <stdint.h>
#include "hist.h"

#define VM_MAX_REGIONS 32

struct vm_region {
	uint64_t gpa, size, hva;
	char name[32];
};

struct vm_info {
	int pid;
	char comm[16];
	char name[64];          /* QEMU -name, else comm */
	const char *hypervisor; /* qemu, kvmtool, firecracker, crosvm, cloud-hypervisor, unknown */
	const char *accel;      /* kvm or tcg */
	int vm_fd;              /* -1 without KVM */
	int vcpus;
	uint64_t rss_bytes;
	int nregions;
	struct vm_region regions[VM_MAX_REGIONS];
	char ram_source[96];    /* how regions were learned, or why not */
};

/* Lists every VM; *out is malloc'ed. Returns the count or -errno. */
int vm_scan(struct vm_info **out);
/* Fills regions of KVM VMs from their memslots (needs root and BTF with KVM). */
int vm_read_memslots(struct vm_info *vms, int n);
/* Fills a QEMU VM's regions from its QMP socket. */
int vm_read_qmp(struct vm_info *vm, const char *qmp_socket);
/* The same for whichever of vms listens on path (found by SO_PEERCRED);
 * returns its index, or -errno with an error printed. */
int vm_read_qmp_socket(struct vm_info *vms, int n, const char *path);
/* Finds a VM by PID or by name; -ENOENT / -ESRCH with an error printed. */
int vm_lookup(const char *spec, struct vm_info *out);
/* Like vm_lookup by PID, but silent: true if pid is a VM. */
bool vm_lookup_quiet(int pid, struct vm_info *out);
int vm_info_ram_ranges(const struct vm_info *vms, int n, struct ram_range *out, int max);
uint64_t proc_rss_bytes(int pid);
/* CPU time a process has used, user and system, all its threads (0 if gone). */
uint64_t proc_cpu_ns(int pid);

#endif
