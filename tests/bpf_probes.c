/* BPF layer: every host program loads into this kernel, and the handlers turn
 * recorded tracepoint records (fed through BPF_PROG_TEST_RUN) into the right
 * histograms, counters and footprint events. Needs root. */
#include "check.h"
#include "common.h"
#include "footprint.h"
#include "hist.h"
#include "footprint.skel.h"
#include "footprint_test.skel.h"
#include "hist.skel.h"
#include "hist_test.skel.h"
#include "hostcaps.h"
#include "hostprobes.h"
#include "kvm_exit.h"
#include "metric_names.h"
#include "vmslots.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

static int ncpus;

static int run(struct bpf_program *prog, const __u64 *args, int nargs)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = nargs * sizeof(__u64));

	return bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
}

/* The histogram of a key of a process; all zero if absent. */
static struct hist lookup_pid(struct hist_test_bpf *skel, unsigned pid, unsigned metric,
			      unsigned isa, unsigned sub)
{
	struct hist_key key = { .pid = pid, .metric = metric, .isa = isa, .sub = sub };
	struct hist h = {};

	bpf_map__lookup_elem(skel->maps.hists, &key, sizeof(key), &h, sizeof(h), 0);
	return h;
}

static struct hist lookup(struct hist_test_bpf *skel, unsigned metric, unsigned isa, unsigned sub)
{
	return lookup_pid(skel, getpid(), metric, isa, sub);
}

static unsigned long long total_drops(struct hist_test_bpf *skel)
{
	unsigned long long sum = 0;

	for (int m = 0; m < M_MAX; m++)
		sum += skel->bss->drops[m];
	return sum;
}

static unsigned long long fault_count(struct hist_test_bpf *skel, __u32 idx)
{
	__u64 vals[ncpus], sum = 0;

	if (!bpf_map__lookup_elem(skel->maps.fault_counts, &idx, sizeof(idx), vals, sizeof(vals), 0))
		for (int c = 0; c < ncpus; c++)
			sum += vals[c];
	return sum;
}

static void test_load_production(void)
{
	struct hist_bpf *hist = hist_bpf__open();
	struct feature f;
	bool fexit = feature_fentry("handle_mm_fault", &f);
	struct footprint_bpf *fp;
	struct vmslots_bpf *vs;

	if (hist && !fexit)
		bpf_program__set_autoload(hist->progs.user_fault_done, false);
	check(hist && !hist_bpf__load(hist), "load hist.bpf.o", "load failed");
	if (!fexit)
		skip("load fexit/handle_mm_fault", "%s", f.detail);
	else
		check(hist && bpf_program__fd(hist->progs.user_fault_done) >= 0,
		      "load fexit/handle_mm_fault", "not loaded");
	hist_bpf__destroy(hist);
	fp = footprint_bpf__open_and_load();
	check(fp != NULL, "load footprint.bpf.o", "load failed");
	footprint_bpf__destroy(fp);
	vs = vmslots_bpf__open_and_load();
	check(vs != NULL, "load vmslots.bpf.o (iter/task_file memslot walk)", "load failed");
	vmslots_bpf__destroy(vs);
}

/* BPF objects (links, programs, maps) among this process's open files. */
static int bpf_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		char path[300], target[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0 && (target[len] = 0, !strncmp(target, "anon_inode:bpf", 14)))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_start_stop_releases_everything(void)
{
	int pid = getpid(), before = bpf_fds();
	struct host_probes *hp;
	const struct probe_status *st;

	if (!check(!host_probes_start(&hp, &pid, 1, NULL, 0), "host probes start", "start failed"))
		return;
	host_probes_status(hp, &st);
	check(st[P_MADVISE].attached && st[P_USER_FAULT].attached, "host probes attached",
	      "madvise %d user_fault %d", st[P_MADVISE].attached, st[P_USER_FAULT].attached);
	check(bpf_fds() > before + 10, "host probes hold their links", "%d bpf fds", bpf_fds());
	host_probes_stop(hp);
	CHECK_EQ_U64(bpf_fds(), before, "host_probes_stop releases every link, program and map");
}

static void test_handlers(void)
{
	struct hist_test_bpf *skel = hist_test_bpf__open();
	struct hist h;
	char name[64];

	if (!check(skel != NULL, "open hist test object", "open failed"))
		return;
	bpf_program__set_autoload(skel->progs.user_fault_done, false);
	if (!check(!hist_test_bpf__load(skel), "load hist test object", "load failed")) {
		hist_test_bpf__destroy(skel);
		return;
	}

	/* madvise(addr, 2 MiB, MADV_DONTNEED) */
	__u64 madv[] = { 0x7f0000000000, 2 << 20, 4 };
	check(!run(skel->progs.test_madvise, madv, 3), "test-run madvise", "test run failed");
	h = lookup(skel, M_MADVISE, 0, 4);
	CHECK_EQ_U64(h.count, 1, "madvise DONTNEED counted once");
	CHECK_EQ_U64(h.bytes, 2 << 20, "madvise bytes named");

	/* fallocate(PUNCH_HOLE | KEEP_SIZE, 4 MiB) */
	__u64 fall[] = { 3, 4 << 20 };
	run(skel->progs.test_fallocate, fall, 2);
	h = lookup(skel, M_FALLOCATE, 0, 3);
	CHECK_EQ_U64(h.count, 1, "fallocate PUNCH_HOLE|KEEP_SIZE counted");
	check(!strcmp(fallocate_mode_name(3, name, sizeof(name)), "KEEP_SIZE|PUNCH_HOLE"),
	      "fallocate mode name", "got %s", name);

	/* user faults inside and outside a registered guest RAM range */
	skel->bss->guest_ram[0] = (struct ram_range){ .pid = getpid(), .start = 0x100000,
						      .end = 0x200000 };
	skel->bss->nr_guest_ram = 1;
	__u64 in[] = { 0x180000 }, out[] = { 0x200000 };
	run(skel->progs.test_user_fault, in, 1);
	run(skel->progs.test_user_fault, out, 1);
	run(skel->progs.test_user_fault, out, 1);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 1).count, 1, "fault in guest RAM classified");
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "fault outside guest RAM classified");

	/* VMX: EPT violation exit, with the fault it raised, then entry */
	__u64 vmx_exit[] = { KVM_ISA_VMX, 48 }, fault[] = { 0x12345000, 2 };
	run(skel->progs.test_kvm_exit, vmx_exit, 2);
	run(skel->progs.test_kvm_page_fault, fault, 2);
	usleep(1000);
	run(skel->progs.test_kvm_entry, NULL, 0);
	h = lookup(skel, M_KVM_EXIT, KVM_ISA_VMX, 48);
	CHECK_EQ_U64(h.count, 1, "VMX exit 48 recorded");
	check(h.sum >= 1000000, "VMX exit-to-entry latency measured", "sum %llu ns", h.sum);
	check(!strcmp(kvm_exit_name(KVM_ISA_VMX, 48, name, sizeof(name)), "EPT_VIOLATION"),
	      "VMX reason 48 decodes as EPT_VIOLATION", "got %s", name);
	CHECK_EQ_U64(lookup(skel, M_KVM_PAGE_FAULT, 0, 1).count, 1, "KVM write fault latency");
	h = lookup(skel, M_KVM_FAULT_GPA, 0, 0);
	CHECK_EQ_U64(h.slots[28], 1, "KVM fault GPA lands in log2 bucket 28");

	/* SVM: nested page fault */
	__u64 svm_exit[] = { KVM_ISA_SVM, 0x400 };
	run(skel->progs.test_kvm_exit, svm_exit, 2);
	run(skel->progs.test_kvm_entry, NULL, 0);
	CHECK_EQ_U64(lookup(skel, M_KVM_EXIT, KVM_ISA_SVM, 0x400).count, 1, "SVM exit 0x400 recorded");
	check(!strcmp(kvm_exit_name(KVM_ISA_SVM, 0x400, name, sizeof(name)), "NPF"),
	      "SVM code 0x400 decodes as NPF", "got %s", name);
	/* an entry without an exit records nothing */
	run(skel->progs.test_kvm_entry, NULL, 0);
	CHECK_EQ_U64(lookup(skel, M_KVM_EXIT, KVM_ISA_SVM, 0x400).count, 1, "unpaired entry ignored");

	__u64 unmap[] = { 0x7f0000000000, 0x7f0000200000 };
	run(skel->progs.test_kvm_unmap_hva_range, unmap, 2);
	h = lookup(skel, M_KVM_UNMAP_HVA, 0, 0);
	CHECK_EQ_U64(h.bytes, 2 << 20, "kvm_unmap_hva_range bytes");
	CHECK_EQ_U64(h.slots[21], 1, "kvm_unmap_hva_range 2 MiB in bucket 21");
	/* an unmap of a VM's guest RAM (say by kswapd) is credited to the VM */
	skel->bss->guest_ram[1] = (struct ram_range){ .pid = 4242, .start = 0x7e0000000000,
						      .end = 0x7e0040000000 };
	skel->bss->nr_guest_ram = 2;
	__u64 vm_unmap[] = { 0x7e0000100000, 0x7e0000300000 };
	run(skel->progs.test_kvm_unmap_hva_range, vm_unmap, 2);
	CHECK_EQ_U64(lookup_pid(skel, 4242, M_KVM_UNMAP_HVA, 0, 0).bytes, 2 << 20,
		     "unmap of guest RAM credited to the VM that owns it");
	CHECK_EQ_U64(lookup(skel, M_KVM_UNMAP_HVA, 0, 0).count, 1, "and not to the caller");
	CHECK_EQ_U64(total_drops(skel), 0, "no drops");
	hist_test_bpf__destroy(skel);
}

/* Loads the probes filtered to pids[0..n), the way host_probes_start does:
 * the first INLINE_PIDS as load-time constants, every one in the pids map. */
static struct hist_test_bpf *load_filtered(const __u32 *pids, int n)
{
	struct hist_test_bpf *skel = hist_test_bpf__open();

	if (!skel)
		return NULL;
	skel->rodata->nr_pids = n;
	for (int i = 0; i < n && i < INLINE_PIDS; i++)
		skel->rodata->inline_pids[i] = pids[i];
	bpf_program__set_autoload(skel->progs.user_fault_done, false);
	if (hist_test_bpf__load(skel)) {
		hist_test_bpf__destroy(skel);
		return NULL;
	}
	for (__u32 i = 0; i < (__u32)n; i++)
		bpf_map__update_elem(skel->maps.pids, &pids[i], sizeof(pids[i]), &i, sizeof(i), 0);
	return skel;
}

/* Faults of this process: one in guest RAM, two elsewhere; madvise once. */
static void fault_thrice(struct hist_test_bpf *skel)
{
	__u64 madv[] = { 0, 4096, 4 }, in_ram[] = { 0x180000 }, outside[] = { 0x300000 };

	skel->bss->guest_ram[0] = (struct ram_range){ .pid = getpid(), .start = 0x100000,
						      .end = 0x200000 };
	skel->bss->nr_guest_ram = 1;
	run(skel->progs.test_madvise, madv, 3);
	run(skel->progs.test_user_fault, in_ram, 1);
	run(skel->progs.test_user_fault, outside, 1);
	run(skel->progs.test_user_fault, outside, 1);
}

static void test_pid_filter(void)
{
	__u32 self = getpid(), others[] = { 1, 2 }, inline_self[] = { 1, self },
	      hashed_self[] = { 1, 2, 3, 4, 5, self };
	struct hist_test_bpf *skel;

	skel = load_filtered(others, 2);
	if (!check(skel != NULL, "load filtered object", "load failed"))
		return;
	fault_thrice(skel);
	CHECK_EQ_U64(lookup(skel, M_MADVISE, 0, 4).count, 0, "untraced PID's madvise filtered in BPF");
	CHECK_EQ_U64(fault_count(skel, 0) + fault_count(skel, 1) + fault_count(skel, 2) +
		     fault_count(skel, 3), 0, "untraced PID's faults not counted");
	hist_test_bpf__destroy(skel);

	/* traced as an inline (constant) PID: its faults go to its slot */
	skel = load_filtered(inline_self, 2);
	if (!check(skel != NULL, "load object filtered to 2 PIDs", "load failed"))
		return;
	fault_thrice(skel);
	CHECK_EQ_U64(lookup(skel, M_MADVISE, 0, 4).count, 1, "inline PID's madvise traced");
	CHECK_EQ_U64(fault_count(skel, 1 * 2 + 1), 1, "inline PID's guest RAM fault in its slot");
	CHECK_EQ_U64(fault_count(skel, 1 * 2 + 0), 2, "inline PID's other faults in its slot");
	hist_test_bpf__destroy(skel);

	/* traced beyond INLINE_PIDS: found through the pids map */
	skel = load_filtered(hashed_self, 6);
	if (!check(skel != NULL, "load object filtered to 6 PIDs", "load failed"))
		return;
	fault_thrice(skel);
	CHECK_EQ_U64(lookup(skel, M_MADVISE, 0, 4).count, 1, "hashed PID's madvise traced");
	CHECK_EQ_U64(fault_count(skel, 5 * 2 + 1), 1, "hashed PID's guest RAM fault in its slot");
	CHECK_EQ_U64(fault_count(skel, 5 * 2 + 0), 2, "hashed PID's other faults in its slot");
	hist_test_bpf__destroy(skel);
}

static int rb_events;
static long long rb_last_anon;

static int on_fp_event(void *ctx, void *data, size_t len)
{
	const struct fp_event *e = data;

	rb_events++;
	rb_last_anon = e->bytes[FP_ANON];
	return 0;
}

static void test_footprint_coalescing(void)
{
	struct footprint_test_bpf *skel = footprint_test_bpf__open();
	struct ring_buffer *rb;
	__u32 pid = getpid();
	__u8 one = 1;

	if (!check(skel != NULL, "open footprint test object", "open failed"))
		return;
	skel->rodata->step_bytes = 2 << 20;
	skel->rodata->min_interval_ns = 3600ULL * 1000000000; /* only steps count */
	if (!check(!footprint_test_bpf__load(skel), "load footprint test object", "load failed"))
		return;
	bpf_map__update_elem(skel->maps.pids, &pid, sizeof(pid), &one, 1, 0);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_fp_event, NULL, NULL);
	/* 1000 pages, one event each, as 6.18 fires them */
	for (int i = 1; i <= 1000; i++) {
		__u64 args[] = { 77, 1, FP_ANON, i * 4096ULL };

		run(skel->progs.test_rss_stat, args, 4);
	}
	/* another process's event for an mm never seen from its owner is ignored */
	__u64 foreign[] = { 99, 0, FP_ANON, 1 << 30 };
	run(skel->progs.test_rss_stat, foreign, 4);
	ring_buffer__consume(rb);
	/* first sight emits (no earlier value), then once per 2 MiB moved */
	CHECK_EQ_U64(rb_events, 2, "1000 page events coalesced into 2 rows");
	CHECK_EQ_U64(rb_last_anon, 513 * 4096, "row emitted when RSS moved by the step");
	__u64 seen[ncpus], nseen = 0;
	__u32 zero = 0;

	if (!bpf_map__lookup_elem(skel->maps.seen, &zero, sizeof(zero), seen, sizeof(seen), 0))
		for (int c = 0; c < ncpus; c++)
			nseen += seen[c];
	CHECK_EQ_U64(nseen, 1000, "events of untraced mms not counted");
	CHECK_EQ_U64(skel->bss->drops, 0, "no ring buffer drops");
	ring_buffer__free(rb);
	footprint_test_bpf__destroy(skel);
}

int main(void)
{
	if (geteuid()) {
		skip("bpf tests", "need root");
		plan(1);
		return 0;
	}
	plan(47);
	ensure_tracefs();
	setup_libbpf();
	ncpus = libbpf_num_possible_cpus();
	test_load_production();
	test_start_stop_releases_everything();
	test_handlers();
	test_pid_filter();
	test_footprint_coalescing();
	return check_exit();
}
