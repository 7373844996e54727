#include "vmfind.h"
#include "common.h"
#include "qmp.h"
#include "vmslots.h"
#include "vmslots.skel.h"

#include <bpf/bpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const struct {
	const char *prefix;
	const char *hypervisor;
} vmm_names[] = {
	{ "qemu-system-", "qemu" }, { "qemu-kvm", "qemu" }, { "lkvm", "kvmtool" },
	{ "kvmtool", "kvmtool" },   { "firecracker", "firecracker" }, { "crosvm", "crosvm" },
	{ "cloud-hyperviso", "cloud-hypervisor" }, /* comm is cut at 15 characters */
};

static const char *hypervisor_of(const char *comm, const char *exe)
{
	for (size_t i = 0; i < ARRAY_SIZE(vmm_names); i++) {
		size_t n = strlen(vmm_names[i].prefix);

		if (!strncmp(comm, vmm_names[i].prefix, n) || !strncmp(exe, vmm_names[i].prefix, n))
			return vmm_names[i].hypervisor;
	}
	return "unknown";
}

static void exe_basename(int pid, char *buf, size_t len)
{
	char path[64], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = 0;
	snprintf(buf, len, "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
}

/* From QEMU's command line: "-name foo" or "-name guest=foo,..." and the vCPU
 * count of "-smp N" or "-smp cpus=N,..." (a TCG QEMU has no kvm-vcpu fds). */
static void qemu_cmdline(int pid, char *name, size_t len, int *vcpus)
{
	char path[64], args[8192];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	f = fopen(path, "r");
	if (!f)
		return;
	n = fread(args, 1, sizeof(args) - 1, f);
	fclose(f);
	args[n] = 0;
	for (char *a = args; a < args + n; a += strlen(a) + 1) {
		char *v = a + strlen(a) + 1;

		if (v >= args + n)
			break;
		if (!strcmp(a, "-name")) {
			if (!strncmp(v, "guest=", 6))
				v += 6;
			snprintf(name, len, "%.*s", (int)strcspn(v, ","), v);
		} else if (!strcmp(a, "-smp") && !*vcpus) {
			*vcpus = atoi(!strncmp(v, "cpus=", 5) ? v + 5 : v);
		}
	}
}

uint64_t proc_rss_bytes(int pid)
{
	char path[64];
	unsigned long long pages = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%*u %llu", &pages) != 1)
		pages = 0;
	fclose(f);
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t proc_cpu_ns(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* fields 14 and 15 (utime, stime), counted after the ")" that ends comm */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
		   &stime) != 2)
		return 0;
	return (utime + stime) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* Looks at a process's fds; returns true if it is a VM. */
static bool probe_process(int pid, struct vm_info *vm)
{
	char dir[64], exe[64];
	struct dirent *e;
	DIR *d;

	memset(vm, 0, sizeof(*vm));
	vm->pid = pid;
	vm->vm_fd = -1;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return false;
	while ((e = readdir(d))) {
		char link[PATH_MAX], target[64];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (!strcmp(target, "anon_inode:kvm-vm") && vm->vm_fd < 0)
			vm->vm_fd = atoi(e->d_name);
		else if (!strncmp(target, "anon_inode:kvm-vcpu:", 20))
			vm->vcpus++;
	}
	closedir(d);
	read_comm(pid, vm->comm, sizeof(vm->comm));
	exe_basename(pid, exe, sizeof(exe));
	vm->hypervisor = hypervisor_of(vm->comm, exe);
	if (vm->vm_fd >= 0) {
		vm->accel = "kvm";
	} else if (!strcmp(vm->hypervisor, "qemu")) {
		vm->accel = "tcg"; /* QEMU without a kvm fd emulates the CPU */
	} else {
		return false;
	}
	snprintf(vm->name, sizeof(vm->name), "%s", vm->comm);
	if (!strcmp(vm->hypervisor, "qemu"))
		qemu_cmdline(pid, vm->name, sizeof(vm->name), vm->vcpus ? &(int){ 0 } : &vm->vcpus);
	if (!vm->vcpus && !strcmp(vm->accel, "tcg"))
		vm->vcpus = 1; /* QEMU's default without -smp */
	vm->rss_bytes = proc_rss_bytes(pid);
	snprintf(vm->ram_source, sizeof(vm->ram_source), "%s",
		 vm->vm_fd >= 0 ? "not read" : "TCG: pass --qmp SOCKET for the RAM layout");
	return true;
}

int vm_scan(struct vm_info **out)
{
	struct vm_info *vms = NULL, vm;
	int n = 0, cap = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]) || !probe_process(atoi(e->d_name), &vm))
			continue;
		if (n == cap) {
			struct vm_info *grown = realloc(vms, (cap = cap ? 2 * cap : 8) * sizeof(*vms));

			if (!grown) {
				free(vms);
				closedir(d);
				return -ENOMEM;
			}
			vms = grown;
		}
		vms[n++] = vm;
	}
	closedir(d);
	*out = vms;
	return n;
}

static struct vm_info *vm_by_pid(struct vm_info *vms, int n, unsigned pid)
{
	for (int i = 0; i < n; i++)
		if ((unsigned)vms[i].pid == pid)
			return &vms[i];
	return NULL;
}

/* Says in ram_source, and on stderr, that only some of a VM's guest RAM
 * ranges are kept: total of them, or more than total if more_than. */
static void report_cut(struct vm_info *vm, const char *what, int total, bool more_than)
{
	size_t len = strlen(vm->ram_source);

	snprintf(vm->ram_source + len, sizeof(vm->ram_source) - len, "; only %d of %s%d %s kept",
		 vm->nregions, more_than ? "more than " : "", total, what);
	ht_warn("VM %d (%s): only %d of %s%d %s are used", vm->pid, vm->name, vm->nregions,
		more_than ? "more than " : "", total, what);
}

int vm_read_memslots(struct vm_info *vms, int n)
{
	struct vmslots_bpf *skel;
	struct bpf_link *link = NULL;
	struct vmslot_rec rec;
	int err = 0, iter_fd = -1, nkvm = 0, *seen = calloc(n, sizeof(int));
	bool *more = calloc(n, sizeof(bool));
	const char *why = NULL;

	if (!seen || !more) {
		free(seen);
		free(more);
		return -ENOMEM;
	}

	for (int i = 0; i < n; i++)
		nkvm += vms[i].vm_fd >= 0;
	if (!nkvm) {
		free(seen);
		free(more);
		return 0;
	}
	skel = vmslots_bpf__open_and_load();
	if (!skel) {
		err = -errno;
		why = "BPF memslot walker did not load (needs root, BTF with KVM, iter/task_file)";
		goto out;
	}
	for (int i = 0; i < n; i++) {
		__u64 key = (__u64)vms[i].pid << 32 | (unsigned)vms[i].vm_fd;
		__u8 one = 1;

		if (vms[i].vm_fd >= 0)
			bpf_map__update_elem(skel->maps.vm_files, &key, sizeof(key), &one, 1, 0);
	}
	link = bpf_program__attach_iter(skel->progs.walk_memslots, NULL);
	iter_fd = link ? bpf_iter_create(bpf_link__fd(link)) : -1;
	if (iter_fd < 0) {
		err = -errno;
		why = "task_file iterator could not be created";
		goto out;
	}
	while (read(iter_fd, &rec, sizeof(rec)) == sizeof(rec)) {
		struct vm_info *vm = vm_by_pid(vms, n, rec.pid);
		struct vm_region *r;

		if (!vm)
			continue;
		if (rec.slot_id == VMSLOT_MORE) {
			more[vm - vms] = true;
			continue;
		}
		if (seen[vm - vms]++ >= VM_MAX_REGIONS)
			continue;
		r = &vm->regions[vm->nregions++];
		r->gpa = rec.gpa;
		r->size = rec.size;
		r->hva = rec.hva;
		snprintf(r->name, sizeof(r->name), "slot %d%s", rec.slot_id & 0xffff,
			 rec.slot_id >> 16 ? " (smm)" : "");
	}
out:
	for (int i = 0; i < n; i++) {
		if (vms[i].vm_fd < 0)
			continue;
		snprintf(vms[i].ram_source, sizeof(vms[i].ram_source), "%s",
			 why ? why : "KVM memslots (BPF task_file iterator)");
		if (seen[i] > vms[i].nregions || more[i])
			report_cut(&vms[i], "memslots", seen[i], more[i]);
	}
	free(seen);
	free(more);
	if (iter_fd >= 0)
		close(iter_fd);
	bpf_link__destroy(link);
	vmslots_bpf__destroy(skel);
	return err;
}

int vm_lookup(const char *spec, struct vm_info *out)
{
	struct vm_info *vms;
	char *end;
	long pid = strtol(spec, &end, 10);
	int n, found = -1;

	if (*end == 0 && *spec && (pid <= 0 || pid > INT_MAX)) {
		ht_err("--vm: %s is not a valid PID", spec);
		return -EINVAL;
	}
	n = vm_scan(&vms);

	if (n < 0) {
		ht_err("cannot scan /proc: %s", strerror(-n));
		return n;
	}
	for (int i = 0; i < n && found < 0; i++)
		if ((*end == 0 && vms[i].pid == pid) || !strcmp(vms[i].name, spec))
			found = i;
	if (found >= 0)
		*out = vms[found];
	free(vms);
	if (found >= 0)
		return 0;
	if (*end == 0 && *spec && pid_alive((int)pid)) {
		ht_err("PID %ld is not a VM (no kvm-vm fd, not a QEMU)", pid);
		return -ESRCH;
	}
	ht_err("no VM named or with PID '%s' (see 'hatrace vms')", spec);
	return -ENOENT;
}

bool vm_lookup_quiet(int pid, struct vm_info *out)
{
	return probe_process(pid, out);
}

int vm_info_ram_ranges(const struct vm_info *vms, int n, struct ram_range *out, int max)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		for (int r = 0; r < vms[i].nregions && k < max; r++) {
			if (!vms[i].regions[r].hva)
				continue;
			out[k].pid = vms[i].pid;
			out[k].pad = 0;
			out[k].start = vms[i].regions[r].hva;
			out[k].end = vms[i].regions[r].hva + vms[i].regions[r].size;
			k++;
		}
	return k;
}

/* Size of each anonymous read-write mapping; a RAM block's HVA is known when
 * exactly one mapping has its size. */
static uint64_t unique_anon_mapping(int pid, uint64_t size)
{
	char path[64], line[512];
	uint64_t found = 0;
	int matches = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, ino;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu", &lo, &hi, perms, &ino) != 4)
			continue;
		if (ino == 0 && !strncmp(perms, "rw", 2) && hi - lo == size) {
			found = lo;
			matches++;
		}
	}
	fclose(f);
	return matches == 1 ? found : 0;
}

/* RAM lines of the "memory" flat view of `info mtree -f`:
 *   0000000000100000-000000001fffffff (prio 0, ram): pc.ram @0000000000100000
 * The offset after '@' is into the RAM block (0 when absent). Returns how
 * many there are; the first VM_MAX_REGIONS are kept. */
static int parse_mtree_ram(struct vm_info *vm, const char *text, uint64_t *offsets)
{
	int total = 0;
	const char *view = strstr(text, "Root memory region: memory");
	const char *end = view ? strstr(view, "\n\n") : NULL;
	const char *crlf_end = view ? strstr(view, "\n\r\n") : NULL; /* HMP ends lines in \r\n */

	if (!end || (crlf_end && crlf_end < end))
		end = crlf_end;
	for (const char *l = view; l && l < end; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long long lo, hi, off = 0;
		char name[32];
		struct vm_region *r;

		if (sscanf(l, " %llx-%llx (prio %*d, ram): %31s @%llx", &lo, &hi, name, &off) < 3 ||
		    hi < lo || total++ >= VM_MAX_REGIONS)
			continue;
		offsets[vm->nregions] = off;
		r = &vm->regions[vm->nregions++];
		r->gpa = lo;
		r->size = hi - lo + 1;
		snprintf(r->name, sizeof(r->name), "%s", name);
	}
	return total;
}

/* `info ramblock` rows: name, page size (two words), offset, used, total. The
 * HVA of a block is known when exactly one anonymous mapping has its size. */
static uint64_t ramblock_hva(int pid, const char *text, const char *block)
{
	for (const char *l = text; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long long offset, used;
		char name[32];

		if (sscanf(l, " %31s %*s %*s 0x%llx 0x%llx", name, &offset, &used) == 3 &&
		    !strcmp(name, block))
			return unique_anon_mapping(pid, used);
	}
	return 0;
}

/* PID of the process listening on a unix socket, or -1. */
static int socket_owner(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, pid = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		pid = cred.pid;
	if (fd >= 0)
		close(fd);
	return pid;
}

int vm_read_qmp_socket(struct vm_info *vms, int n, const char *path)
{
	struct stat st;
	int owner, i;

	if (stat(path, &st) || !S_ISSOCK(st.st_mode)) {
		ht_err("--qmp %s: %s", path, errno ? strerror(errno) : "not a socket");
		return -ENOENT;
	}
	owner = socket_owner(path);
	for (i = 0; i < n && vms[i].pid != owner; i++)
		;
	if (owner < 0 || i == n) {
		ht_err("--qmp %s: no VM listens on this socket", path);
		return -ESRCH;
	}
	return vm_read_qmp(&vms[i], path) ? -EIO : i;
}

int vm_read_qmp(struct vm_info *vm, const char *qmp_socket)
{
	json_t *ret = NULL;
	struct qmp *q;
	int err;

	err = qmp_open(&q, qmp_socket, vm->pid, 2000000000ULL);
	if (err) {
		ht_err("--qmp %s: cannot talk QMP: %s", qmp_socket, strerror(-err));
		return err;
	}
	err = qmp_call(q, "human-monitor-command",
		       json_pack("{s:s}", "command-line", "info mtree -f"), &ret, 5000000000ULL);
	if (!err && json_is_string(ret)) {
		uint64_t offsets[VM_MAX_REGIONS];
		json_t *blocks = NULL;
		int total;

		vm->nregions = 0;
		total = parse_mtree_ram(vm, json_string_value(ret), offsets);
		err = qmp_call(q, "human-monitor-command",
			       json_pack("{s:s}", "command-line", "info ramblock"), &blocks,
			       5000000000ULL);
		for (int i = 0; !err && json_is_string(blocks) && i < vm->nregions; i++) {
			uint64_t base = ramblock_hva(vm->pid, json_string_value(blocks),
						     vm->regions[i].name);

			vm->regions[i].hva = base ? base + offsets[i] : 0;
		}
		json_decref(blocks);
		snprintf(vm->ram_source, sizeof(vm->ram_source),
			 "QMP info mtree + info ramblock (HVA by mapping size)");
		if (total > vm->nregions)
			report_cut(vm, "RAM ranges", total, false);
	}
	json_decref(ret);
	qmp_close(q);
	return err;
}
