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
#include "vmfind.h"
#include "vmslots.h"
#include "vmslots.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* include/linux/mm_types.h */
#define FAULT_FLAG_USER 0x40
#define FAULT_FLAG_TRIED 0x200
#define VM_FAULT_RETRY 0x400

static int ncpus;

static int run(struct bpf_program *prog, const __u64 *args, int nargs)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = nargs * sizeof(__u64));

	return bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
}

/* The histogram of a key of a process, whichever map holds it; all zero if absent. */
static struct hist lookup_pid(struct hist_test_bpf *skel, unsigned pid, unsigned metric,
			      unsigned isa, unsigned sub)
{
	struct hist_key key = { .pid = pid, .metric = metric, .isa = isa, .sub = sub };
	struct hist h = {};

	if (bpf_map__lookup_elem(skel->maps.hists, &key, sizeof(key), &h, sizeof(h), 0))
		bpf_map__lookup_elem(skel->maps.other_hists, &key, sizeof(key), &h, sizeof(h), 0);
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

	if (!check(!host_probes_start(&hp, &pid, 1, false, NULL, 0), "host probes start", "start failed"))
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
	skel->rodata->trace_others = false;
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

/* Loads a hist test object without the fexit program (it cannot load here). */
static struct hist_test_bpf *load_test(struct hist_test_bpf *skel)
{
	if (!skel)
		return NULL;
	bpf_program__set_autoload(skel->progs.user_fault_done, false);
	if (hist_test_bpf__load(skel)) {
		hist_test_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

/* log2_slot, as record() uses it, over 0, 1, 2^k - 1, 2^k, 2^k + 1 and ~0:
 * each value goes through a histogram (kvm_unmap_hva_range bytes). */
static void test_log2_buckets(void)
{
	struct hist_test_bpf *skel = load_test(hist_test_bpf__open());
	struct { __u64 v; unsigned slot; } t[2 + 3 * 63 + 1];
	int n = 0, bad = 0;
	char why[256] = "";

	if (!check(skel != NULL, "load hist test object for bucketing", "load failed"))
		return;
	t[n++] = (typeof(t[0])){ 0, 0 };
	t[n++] = (typeof(t[0])){ 1, 0 };
	for (int k = 1; k < 64; k++) {
		t[n++] = (typeof(t[0])){ (1ULL << k) - 1, k - 1 };
		t[n++] = (typeof(t[0])){ 1ULL << k, k };
		t[n++] = (typeof(t[0])){ (1ULL << k) + 1, k };
	}
	t[n++] = (typeof(t[0])){ ~0ULL, 63 };
	for (int i = 0; i < n; i++) {
		struct hist before = lookup(skel, M_KVM_UNMAP_HVA, 0, 0), after;
		__u64 range[] = { 0, t[i].v };
		int moved = -1, nmoved = 0;

		run(skel->progs.test_kvm_unmap_hva_range, range, 2);
		after = lookup(skel, M_KVM_UNMAP_HVA, 0, 0);
		for (int s = 0; s < HIST_SLOTS; s++)
			if (after.slots[s] != before.slots[s])
				moved = s, nmoved++;
		if (nmoved != 1 || moved != (int)t[i].slot ||
		    after.slots[moved] != before.slots[moved] + 1) {
			if (!bad++)
				snprintf(why, sizeof(why), "value %#llx went to bucket %d (%d changed), "
					 "expected %u", t[i].v, moved, nmoved, t[i].slot);
		}
	}
	check(!bad, "BPF log2 bucket of 0, 1, 2^k-1, 2^k, 2^k+1 and ~0 (192 values)",
	      "%d wrong; first: %s", bad, why);
	CHECK_EQ_U64(total_drops(skel), 0, "bucketing: no drops");
	hist_test_bpf__destroy(skel);
}

static void fault_at(struct hist_test_bpf *skel, __u64 address)
{
	run(skel->progs.test_user_fault, &address, 1);
}

static void fault_done(struct hist_test_bpf *skel, __u64 address, __u64 flags, __u64 ret)
{
	__u64 args[] = { address, flags, ret };

	run(skel->progs.test_fault_done, args, 3);
}

/* The fexit fault-latency path (handle_fault_done, which the fexit program
 * only wraps): a user fault is timed from its tracepoint to the final return
 * of its handler; a start whose handler never ran is dropped, not timed. */
static void test_fault_latency(void)
{
	struct hist_test_bpf *skel = hist_test_bpf__open();
	const __u64 a = 0x7f0000001000, b = 0x7f0000002000, user = FAULT_FLAG_USER | 1;
	struct hist h;

	if (skel) {
		skel->rodata->fault_latency = true;
		skel->rodata->max_inflight_ns = 50 * 1000000ULL;
	}
	skel = load_test(skel);
	if (!check(skel != NULL, "load hist test object with fault latency", "load failed"))
		return;
	fault_at(skel, a);
	usleep(2000);
	fault_done(skel, a, user, 0);
	h = lookup(skel, M_USER_FAULT, 0, 0);
	CHECK_EQ_U64(h.count, 1, "fault timed from its tracepoint to its handler's return");
	check(h.sum >= 2000000 && h.sum < 50000000, "fault latency covers the handler", "sum %llu ns",
	      h.sum);
	CHECK_EQ_U64(h.slots[63 - __builtin_clzll(h.sum)], 1, "fault latency in its log2 bucket");

	fault_at(skel, a);
	fault_done(skel, a, user, VM_FAULT_RETRY);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 1, "a retried fault is not ended by its first attempt");
	fault_done(skel, a, user | FAULT_FLAG_TRIED, 0);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "but by its last");

	/* the handler of the fault at a never ran; the thread's next handler
	 * call is for another address, or a kernel-mode fault */
	fault_at(skel, a);
	fault_done(skel, b, user, 0);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "a fault at another address does not end it");
	CHECK_EQ_U64(skel->bss->drops[M_USER_FAULT], 1, "its stale start is dropped and counted");
	fault_done(skel, a, user, 0);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "and never taken later");
	fault_at(skel, a);
	fault_done(skel, a, 0, 0);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "a kernel-mode fault does not end a user fault");
	CHECK_EQ_U64(skel->bss->drops[M_USER_FAULT], 2, "that stale start is dropped too");

	fault_at(skel, a);
	usleep(60000);
	fault_done(skel, a, user, 0);
	CHECK_EQ_U64(lookup(skel, M_USER_FAULT, 0, 0).count, 2, "a start older than max_inflight_ns is no latency");
	CHECK_EQ_U64(skel->bss->drops[M_USER_FAULT], 3, "it is dropped and counted");

	__u64 exit_args[] = { KVM_ISA_VMX, 12 };
	run(skel->progs.test_kvm_exit, exit_args, 2);
	usleep(60000);
	run(skel->progs.test_kvm_entry, NULL, 0);
	CHECK_EQ_U64(lookup(skel, M_KVM_EXIT, KVM_ISA_VMX, 12).count, 0, "a stale kvm_exit start is no latency");
	CHECK_EQ_U64(skel->bss->drops[M_KVM_EXIT], 1, "it is dropped and counted");
	hist_test_bpf__destroy(skel);
}

/* Fills a map with n made-up entries of other (exited) processes. */
static void fill(struct bpf_map *map, int n, size_t key_size, size_t value_size)
{
	char key[16] = {}, value[sizeof(struct hist)] = {};

	for (__u32 i = 0; i < (__u32)n; i++) {
		__u32 pid = 1000000 + i;

		if (key_size == sizeof(__u64))
			*(__u64 *)key = (__u64)pid << 2; /* in-flight: thread ID << 2 | kind */
		else
			memcpy(key, &pid, sizeof(pid)); /* histogram: hist_key starts with the PID */
		bpf_map__update_elem(map, key, key_size, value, value_size, 0);
	}
}

/* Maps full of other processes' entries (or of starts whose end never
 * came) neither hide a priority process's events nor lose count of drops. */
static void test_crowding(void)
{
	struct hist_test_bpf *skel = hist_test_bpf__open();
	__u32 self = getpid(), slot = 0;
	__u64 madv[] = { 0, 4096, 4 };

	if (skel) {
		skel->rodata->nr_pids = 1;
		skel->rodata->inline_pids[0] = self;
	}
	skel = load_test(skel);
	if (!check(skel != NULL, "load object with a priority PID", "load failed"))
		return;
	bpf_map__update_elem(skel->maps.pids, &self, sizeof(self), &slot, sizeof(slot), 0);
	fill(skel->maps.other_hists, MAX_HIST_ENTRIES, sizeof(struct hist_key), sizeof(struct hist));
	fill(skel->maps.other_inflight, MAX_INFLIGHT, sizeof(__u64), 40);
	fill(skel->maps.inflight, MAX_INFLIGHT, sizeof(__u64), 40);
	run(skel->progs.test_madvise, madv, 3);
	CHECK_EQ_U64(lookup(skel, M_MADVISE, 0, 4).count, 1,
		     "priority process recorded while other processes filled their maps");
	CHECK_EQ_U64(total_drops(skel), 0, "an in-flight map full of stale starts still takes a new one");
	hist_test_bpf__destroy(skel);

	skel = hist_test_bpf__open();
	if (skel) {
		skel->rodata->nr_pids = 1;
		skel->rodata->inline_pids[0] = 1;
	}
	skel = load_test(skel);
	if (!check(skel != NULL, "load object with another priority PID", "load failed"))
		return;
	fill(skel->maps.other_hists, MAX_HIST_ENTRIES, sizeof(struct hist_key), sizeof(struct hist));
	run(skel->progs.test_madvise, madv, 3);
	CHECK_EQ_U64(lookup(skel, M_MADVISE, 0, 4).count, 0, "a non-priority process finds its map full");
	CHECK_EQ_U64(skel->bss->drops[M_MADVISE], 1, "and its event is counted as dropped");
	hist_test_bpf__destroy(skel);
}

static unsigned long long madvises_of(struct host_probes *hp, int pid)
{
	unsigned long long sum = 0;
	struct hist_entry *e;
	int n = host_probes_read(hp, &e);

	for (int i = 0; i < n; i++)
		if (e[i].key.pid == (unsigned)pid && e[i].key.metric == M_MADVISE)
			sum += e[i].val.count;
	if (n >= 0)
		free(e);
	return sum;
}

/* Histogram entries of a process that exited leave the kernel map, and are
 * still read (and named) until they have been printed. */
static void test_sweep(void)
{
	int self = getpid(), status, child;
	struct host_probes *hp;
	char comm[16] = "";

	if (!check(!host_probes_start(&hp, &self, 1, true, NULL, 0), "host probes start (all processes)",
		   "start failed"))
		return;
	child = fork();
	if (child == 0) {
		char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		for (int i = 0; i < 3; i++)
			madvise(page, 4096, MADV_DONTNEED);
		_exit(0);
	}
	waitpid(child, &status, 0);
	CHECK_EQ_U64(madvises_of(hp, child), 3, "another process's madvise calls recorded");
	check(!host_probes_sweep(hp), "sweep", "failed");
	CHECK_EQ_U64(madvises_of(hp, child), 3, "after it exited and a sweep, its histogram is still read");
	host_probes_comm(hp, child, comm, sizeof(comm));
	check(!strcmp(comm, "bpf_probes"), "and still named", "got '%s'", comm);
	host_probes_forget_retired(hp);
	CHECK_EQ_U64(madvises_of(hp, child), 0, "once forgotten it is gone: the kernel map no longer has it");
	host_probes_stop(hp);
}

/* A KVM VM of this process with n one-page memslots; -1 (and a skip) if
 * this host cannot make one. */
static int kvm_vm_with_slots(int n, const char *name)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);

	if (vm < 0)
		skip(name, "no KVM VM on this host: %s", strerror(errno));
	for (int i = 0; vm >= 0 && i < n; i++) {
		void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kvm_userspace_memory_region region = {
			.slot = i, .guest_phys_addr = (__u64)i << 20, .memory_size = 4096,
			.userspace_addr = (__u64)(unsigned long)mem,
		};

		if (mem == MAP_FAILED || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region)) {
			skip(name, "memslot %d: %s", i, strerror(errno));
			close(vm);
			vm = -1;
		}
	}
	if (kvm >= 0)
		close(kvm);
	return vm;
}

/* A VM with more memslots than are kept (VM_MAX_REGIONS) or than the BPF
 * walker reads (VMSLOTS_MAX_SLOTS): what is left out is said. */
static void test_memslot_limits(void)
{
	static const struct { int slots; const char *said; } cases[] = {
		{ 70, "only 32 of 70 memslots kept" },
		{ VMSLOTS_MAX_SLOTS + 4, "only 32 of more than 256 memslots kept" },
	};

	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		char name[96];
		struct vm_info vm = { .pid = getpid() };
		int fd;

		snprintf(name, sizeof(name), "VM with %d memslots: the ones left out are reported",
			 cases[c].slots);
		fd = kvm_vm_with_slots(cases[c].slots, name);
		if (fd < 0) { /* the same number of result lines as a run */
			skip("memslots kept up to VM_MAX_REGIONS", "no VM");
			skip("each kept memslot read whole (one page, its HVA)", "no VM");
			continue;
		}
		vm.vm_fd = fd;
		snprintf(vm.name, sizeof(vm.name), "bpf_probes");
		vm_read_memslots(&vm, 1);
		CHECK_EQ_U64(vm.nregions, VM_MAX_REGIONS, "memslots kept up to VM_MAX_REGIONS");
		int pages = 0;
		for (int r = 0; r < vm.nregions; r++)
			pages += vm.regions[r].size == 4096 && vm.regions[r].hva;
		CHECK_EQ_U64(pages, VM_MAX_REGIONS, "each kept memslot read whole (one page, its HVA)");
		check(strstr(vm.ram_source, cases[c].said) != NULL, name, "ram_source '%s'",
		      vm.ram_source);
		close(fd);
	}
}

/* hist traces two VMs with 32 memslots each: more guest RAM ranges than the
 * probes classify (MAX_RAM_RANGES), which it must say. */
static void test_ram_range_limit(void)
{
	const char *hatrace = getenv("HATRACE") ?: "build/hatrace", *name = "hist says when guest RAM ranges do not fit";
	int vms[2], ready[2], release[2], status;
	char p0[16], p1[16], err[4096] = "", out[] = "/tmp/ht-bpf-probes-XXXXXX";
	int fd = mkstemp(out);
	ssize_t n;
	pid_t tr;

	if (fd < 0 || pipe(ready) || pipe(release))
		return (void)check(false, name, "mkstemp/pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		if ((vms[i] = fork()) == 0) {
			int vm = kvm_vm_with_slots(VM_MAX_REGIONS, name);
			char c = vm >= 0 ? 'y' : 'n';

			close(release[1]); /* EOF on release once the parent closes it */

			if (write(ready[1], &c, 1) != 1 || read(release[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
	}
	close(ready[1]);
	close(release[0]);
	char c0 = 0, c1 = 0;
	if (read(ready[0], &c0, 1) == 1 && read(ready[0], &c1, 1) == 1 && c0 == 'y' && c1 == 'y') {
		snprintf(p0, sizeof(p0), "%d", vms[0]);
		snprintf(p1, sizeof(p1), "%d", vms[1]);
		if ((tr = fork()) == 0) {
			dup2(fd, 2);
			dup2(open("/dev/null", O_WRONLY), 1);
			execl(hatrace, hatrace, "hist", "-p", p0, "-p", p1, "-d", "0.1", (char *)NULL);
			_exit(127);
		}
		waitpid(tr, &status, 0);
		n = pread(fd, err, sizeof(err) - 1, 0);
		err[n > 0 ? n : 0] = 0;
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hist over two VMs runs",
		      "status %#x: %s", status, err);
		check(strstr(err, "only the first 32 of 64 guest RAM ranges") != NULL, name,
		      "stderr: '%s'", err);
	}
	close(release[1]); /* the VMs end */
	close(ready[0]);
	for (int i = 0; i < 2; i++)
		waitpid(vms[i], &status, 0);
	close(fd);
	unlink(out);
}

int main(void)
{
	if (geteuid()) {
		skip("bpf tests", "need root");
		plan(1);
		return 0;
	}
	plan(85);
	ensure_tracefs();
	setup_libbpf();
	ncpus = libbpf_num_possible_cpus();
	test_load_production();
	test_start_stop_releases_everything();
	test_handlers();
	test_pid_filter();
	test_log2_buckets();
	test_fault_latency();
	test_crowding();
	test_sweep();
	test_memslot_limits();
	test_ram_range_limit();
	test_footprint_coalescing();
	return check_exit();
}
