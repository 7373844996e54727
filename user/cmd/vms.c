/* hatrace vms: every VM on this host, whatever the hypervisor. */
#include "cmds.h"
#include "common.h"
#include "vmfind.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "Usage: hatrace vms [-o text|json] [--qmp SOCKET]...\n\n"
		   "Lists VMs by their anon_inode:kvm-vm / kvm-vcpu:N fds (QEMU, kvmtool,\n"
		   "Firecracker, crosvm, cloud-hypervisor...) and QEMU processes running TCG.\n"
		   "Guest RAM regions of KVM VMs come from the kernel's memslots through a BPF\n"
		   "task_file iterator (root, no ptrace). A TCG QEMU has no memslots: --qmp SOCKET\n"
		   "reads its RAM layout from QMP (the socket's owner is found by SO_PEERCRED).\n");
}

static json_t *vm_json(const struct vm_info *vm)
{
	json_t *regions = json_array();

	for (int r = 0; r < vm->nregions; r++)
		json_array_append_new(regions, json_pack("{s:o,s:I,s:I,s:o}", "name",
							 json_string_lossy(vm->regions[r].name), "gpa",
							 (json_int_t)vm->regions[r].gpa, "size",
							 (json_int_t)vm->regions[r].size, "hva",
							 vm->regions[r].hva ? /* null: not learned */
							 json_integer(vm->regions[r].hva) : json_null()));
	return json_pack("{s:i,s:o,s:o,s:s,s:s,s:i,s:I,s:o,s:s}", "pid", vm->pid, "comm",
			 json_string_lossy(vm->comm), "name", json_string_lossy(vm->name), "hypervisor", vm->hypervisor, "accel", vm->accel,
			 "vcpus", vm->vcpus, "rss_bytes", (json_int_t)vm->rss_bytes, "regions",
			 regions, "ram_source", vm->ram_source);
}

static void print_text(const struct vm_info *vms, int n)
{
	printf("%-8s %-16s %-16s %-17s %-5s %5s %10s\n", "PID", "COMM", "NAME", "HYPERVISOR",
	       "ACCEL", "VCPUS", "RSS_MiB");
	for (int i = 0; i < n; i++) {
		const struct vm_info *vm = &vms[i];

		printf("%-8d %-16s %-16.16s %-17s %-5s %5d %10.1f\n", vm->pid, vm->comm, vm->name,
		       vm->hypervisor, vm->accel, vm->vcpus, vm->rss_bytes / 1048576.0);
		for (int r = 0; r < vm->nregions; r++)
			printf("    %-16s gpa 0x%010llx size %10.1f MiB hva 0x%llx\n",
			       vm->regions[r].name, (unsigned long long)vm->regions[r].gpa,
			       vm->regions[r].size / 1048576.0,
			       (unsigned long long)vm->regions[r].hva);
		if (!vm->nregions)
			printf("    guest RAM: %s\n", vm->ram_source);
	}
	if (!n)
		printf("(no VMs found)\n");
}

int cmd_vms(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *qmp_sockets[16];
	enum out_fmt fmt = OUT_TEXT;
	struct vm_info *vms = NULL;
	int n, c, nqmp = 0, err = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (parse_out_fmt(optarg, 1 << OUT_TEXT | 1 << OUT_JSON, &fmt))
				return -1;
			break;
		case 'q':
			if (nqmp == (int)ARRAY_SIZE(qmp_sockets)) {
				ht_err("--qmp: at most %zu sockets", ARRAY_SIZE(qmp_sockets));
				return -1;
			}
			qmp_sockets[nqmp++] = optarg;
			break;
		default:
			if (common_option(c, argv, usage))
				return -1;
		}
	}
	if (no_operands(argc, argv))
		return -1;
	setup_libbpf();
	n = vm_scan(&vms);
	if (n < 0) {
		ht_err("cannot scan /proc: %s", strerror(-n));
		return -1;
	}
	if (geteuid() == 0)
		vm_read_memslots(vms, n);
	else
		for (int i = 0; i < n; i++)
			if (vms[i].vm_fd >= 0)
				snprintf(vms[i].ram_source, sizeof(vms[i].ram_source),
					 "run as root to read the KVM memslots");
	for (int s = 0; s < nqmp; s++)
		if (vm_read_qmp_socket(vms, n, qmp_sockets[s]) < 0) {
			err = -1;
			goto out;
		}
	if (fmt == OUT_JSON) {
		json_t *arr = json_array();

		for (int i = 0; i < n; i++)
			json_array_append_new(arr, vm_json(&vms[i]));
		json_println(stdout, json_pack("{s:o}", "vms", arr));
	} else {
		print_text(vms, n);
	}
out:
	free(vms);
	return err;
}
