#include "hostcaps.h"
#include "common.h"
#include "run_prog.h"
#include "qemu_usdt.h"
#include "qemu_bin.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static bool set(struct feature *f, const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->ok = ok;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
	va_end(ap);
	return ok;
}

bool feature_tracepoint(const char *category, const char *name, struct feature *f)
{
	char full[64];

	snprintf(full, sizeof(full), "%s:%s", category, name);
	if (tracepoint_exists(category, name))
		return set(f, full, true, "present");
	return set(f, full, false, "not in %s/events", tracefs_dir());
}

bool feature_btf(struct feature *f)
{
	struct btf *btf = btf__load_vmlinux_btf();
	long err = libbpf_get_error(btf);
	bool kvm;

	if (err)
		return set(f, "btf", false, "no kernel BTF: %s", strerror(-err));
	kvm = btf__find_by_name_kind(btf, "kvm_memslots", BTF_KIND_STRUCT) > 0;
	set(f, "btf", true, "/sys/kernel/btf/vmlinux, %u types%s", btf__type_cnt(btf),
	    kvm ? ", KVM built in" : ", no KVM types (memslot walk unavailable)");
	btf__free(btf);
	return true;
}

/* r0 = 0; exit */
static const struct bpf_insn ret0[] = {
	{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
	{ .code = BPF_JMP | BPF_EXIT },
};

static int load_tracing(const char *target, enum bpf_attach_type type, char *why, size_t len)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = type);
	int id = libbpf_find_vmlinux_btf_id(target, type);
	int fd;

	if (id < 0) {
		snprintf(why, len, "%s not found in kernel BTF", target);
		return -1;
	}
	opts.attach_btf_id = id;
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "ht_probe", "GPL", ret0, ARRAY_SIZE(ret0), &opts);
	if (fd < 0)
		snprintf(why, len, "load refused: %s", strerror(errno));
	return fd;
}

bool feature_fentry(const char *func, struct feature *f)
{
	char why[128];
	int fd = load_tracing(func, BPF_TRACE_FEXIT, why, sizeof(why));
	int link;

	if (fd < 0)
		return set(f, "fentry/fexit", false, "%s", why);
	link = bpf_link_create(fd, 0, BPF_TRACE_FEXIT, NULL);
	if (link < 0) {
		set(f, "fentry/fexit", false, "attach to %s refused: %s", func, strerror(errno));
	} else {
		set(f, "fentry/fexit", true, "fexit on %s attached", func);
		close(link);
	}
	close(fd);
	return f->ok;
}

bool feature_tp_btf(struct feature *f)
{
	char why[128];
	int fd = load_tracing("sched_switch", BPF_TRACE_RAW_TP, why, sizeof(why));
	int link;

	if (fd < 0)
		return set(f, "tp_btf", false, "%s", why);
	link = bpf_raw_tracepoint_open(NULL, fd);
	if (link < 0) {
		set(f, "tp_btf", false, "attach refused: %s", strerror(errno));
	} else {
		set(f, "tp_btf", true, "tp_btf/sched_switch attached");
		close(link);
	}
	close(fd);
	return f->ok;
}

static bool pmu_type(const char *pmu)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", pmu);
	return access(path, R_OK) == 0;
}

bool feature_kprobe(struct feature *f)
{
	if (pmu_type("kprobe"))
		return set(f, "kprobe", true, "kprobe PMU present");
	return set(f, "kprobe", false, "no kprobe PMU (CONFIG_KPROBES off)");
}

bool feature_uprobe(struct feature *f)
{
	if (pmu_type("uprobe"))
		return set(f, "uprobe/usdt", true, "uprobe PMU present");
	return set(f, "uprobe/usdt", false, "no uprobe PMU (CONFIG_UPROBE_EVENTS off)");
}

bool feature_ringbuf(struct feature *f)
{
	int r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);

	/* BPF ring buffer: kernel 5.8, commit 457f44363a88 */
	return set(f, "ringbuf", r == 1, r == 1 ? "BPF_MAP_TYPE_RINGBUF supported" :
		   "BPF_MAP_TYPE_RINGBUF refused (needs 5.8, commit 457f44363a88)");
}

bool feature_attach_cookie(struct feature *f)
{
	int r = libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_get_attach_cookie, NULL);

	/* bpf_get_attach_cookie for perf-event links: 5.15, commit 82e6b1eee6a8 */
	return set(f, "attach_cookie", r == 1, r == 1 ?
		   "kvmmmu events counted per tracepoint" :
		   "bpf_get_attach_cookie missing (5.15, commit 82e6b1eee6a8): no kvmmmu counts");
}

bool feature_task_file_iter(struct feature *f)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool ok = false;

	if (!libbpf_get_error(btf)) {
		ok = btf__find_by_name_kind(btf, "bpf_iter__task_file", BTF_KIND_STRUCT) > 0;
		btf__free(btf);
	}
	/* task_file iterator: 5.8, commit eaaacd23910f */
	return set(f, "iter/task_file", ok, ok ? "guest RAM slots readable without ptrace" :
		   "no task_file iterator (5.8, commit eaaacd23910f)");
}

#define PVM_VENDOR_SIGNATURE 0x4d5650 /* "PVM": kvm_cpuid_vendor_signature of kvm_pvm */

/* PVM announces itself in the KVM vendor-features CPUID leaf it offers guests. */
static bool kvm_cpuid_says_pvm(int kvm_fd)
{
	const int nent = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
	bool pvm = false;

	if (!c)
		return false;
	c->nent = nent;
	if (!ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c)) {
		for (unsigned i = 0; i < c->nent; i++) {
			const struct kvm_cpuid_entry2 *e = &c->entries[i];

			if ((e->function & 0xffff0000) == 0x40000000 &&
			    e->ebx == PVM_VENDOR_SIGNATURE)
				pvm = true;
		}
	}
	free(c);
	return pvm;
}

/* kvm_pvm registers as KVM's vendor module in place of kvm_intel/kvm_amd; it
 * is known by its module or, where it is built in, by its CPUID signature. */
enum kvm_kind kvm_kind(void)
{
	bool pvm;
	int fd;

	if (access("/dev/kvm", F_OK))
		return KVM_NONE;
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	pvm = access("/sys/module/kvm_pvm", F_OK) == 0 || (fd >= 0 && kvm_cpuid_says_pvm(fd));
	if (fd >= 0)
		close(fd);
	if (pvm)
		return KVM_PVM;
	if (access("/sys/module/kvm_intel", F_OK) == 0)
		return KVM_VMX;
	if (access("/sys/module/kvm_amd", F_OK) == 0)
		return KVM_SVM;
	return KVM_OTHER;
}

bool feature_kvm(struct feature *f)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int version = fd >= 0 ? ioctl(fd, 0xAE00 /* KVM_GET_API_VERSION */, 0) : -1;

	if (fd >= 0)
		close(fd);
	switch (kvm_kind()) {
	case KVM_NONE:
		return set(f, "kvm", false, "no /dev/kvm");
	case KVM_PVM:
		/* PVM runs VMs inside a VM; standard Linux guests hang under it */
		return set(f, "kvm", false, "/dev/kvm is PVM (API %d): Linux guests use TCG", version);
	case KVM_VMX:
		return set(f, "kvm", fd >= 0, "VMX (kvm_intel), API %d", version);
	case KVM_SVM:
		return set(f, "kvm", fd >= 0, "SVM (kvm_amd), API %d", version);
	default:
		return set(f, "kvm", fd >= 0, "unknown KVM backend, API %d", version);
	}
}

bool feature_tcg(struct feature *f)
{
	char *qemu = qemu_find(NULL), out[4096], *line, *save = NULL;
	const char *argv[] = { qemu, "-accel", "help", NULL };
	bool ok = false;

	if (!qemu)
		return set(f, "tcg", false, "QEMU not found");
	if (run_capture(argv, 10000000000ull, out, sizeof(out)) >= 0)
		for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			ok |= !strcmp(line, "tcg");
	set(f, "tcg", ok, ok ? "%s supports -accel tcg" : "%s lacks TCG", qemu);
	free(qemu);
	return ok;
}

bool feature_qemu_usdt(struct feature *f)
{
	bool present[QEMU_USDT_NR];
	char *qemu = qemu_find(NULL);
	int n = qemu ? qemu_usdt_find(qemu, present) : -ENOENT;
	bool ok = n == QEMU_USDT_PROBES;

	if (!qemu)
		set(f, "qemu usdt", false, "QEMU not found");
	else if (n <= 0)
		set(f, "qemu usdt", false, "%s has no USDT probes (hatrace's QEMU: make qemu)", qemu);
	else
		set(f, "qemu usdt", ok, "%s: %d of %d probes for phase timing", qemu, n,
		    QEMU_USDT_PROBES);
	free(qemu);
	return ok;
}

/* A page_reporting module parameter, or -1. */
static int reporting_param(const char *name)
{
	char path[128];
	FILE *f;
	int v = -1;

	snprintf(path, sizeof(path), "/sys/module/page_reporting/parameters/%s", name);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

void host_page_reporting(struct host_reporting *r)
{
	/* virtio feature bit 5 of a balloon (device ID 5), as Linux lists the
	 * negotiated features: one '0'/'1' per bit, bit 0 first */
	enum { BALLOON_ID = 5, F_REPORTING = 5 };
	glob_t g;

	memset(r, 0, sizeof(*r));
	r->order = reporting_param("page_reporting_order");
	r->min_free_ms = reporting_param("min_free_ms");
	if (glob("/sys/bus/virtio/devices/virtio*", 0, NULL, &g))
		return;
	for (size_t i = 0; i < g.gl_pathc && !r->reporting; i++) {
		char path[PATH_MAX], feats[256] = "";
		unsigned id = 0;
		FILE *f;

		snprintf(path, sizeof(path), "%s/device", g.gl_pathv[i]);
		if (!(f = fopen(path, "r")))
			continue;
		if (fscanf(f, "%x", &id) != 1)
			id = 0;
		fclose(f);
		snprintf(path, sizeof(path), "%s/features", g.gl_pathv[i]);
		if (id != BALLOON_ID || !(f = fopen(path, "r")))
			continue;
		if (fgets(feats, sizeof(feats), f) && strlen(feats) > F_REPORTING &&
		    feats[F_REPORTING] == '1') {
			r->reporting = true;
			snprintf(r->device, sizeof(r->device), "%s", strrchr(g.gl_pathv[i], '/') + 1);
		}
		fclose(f);
	}
	globfree(&g);
}

bool feature_host_reporting(struct feature *f)
{
	struct host_reporting r;
	char delay[32] = "";

	host_page_reporting(&r);
	if (!r.reporting)
		return set(f, "host memory stays", true,
			   "no free page reporting to an outer hypervisor");
	if (r.min_free_ms >= 0)
		snprintf(delay, sizeof(delay), ", after %d ms", r.min_free_ms);
	return set(f, "host memory stays", false,
		   "this host is a VM: %s reports free pages (order %d%s); memory "
		   "QEMU discards is faulted in a level up again (slower install/touch)",
		   r.device, r.order, delay);
}
