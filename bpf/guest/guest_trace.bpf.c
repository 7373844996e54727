// SPDX-License-Identifier: GPL-2.0
/* Guest-side counters for the inflate benchmark: page allocator tracepoints,
 * HyperAlloc's (tp_btf: their arguments are plain integers, and only the
 * hyperalloc kernel has them, so the agent loads them on request where the
 * kernel's BTF has them) and timed kernel functions (balloon, free page
 * reporting, virtio-mem). Each
 * function slot has an fentry/fexit pair and a kprobe/kretprobe pair; the agent
 * picks one per slot at load time and sets its target. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "guest/guest_trace.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GT_NR_SLOTS);
	__type(key, __u32);
	__type(value, struct gt_stat);
} stats SEC(".maps");

struct entry_key {
	__u32 slot;
	__u32 tid;
};

/* Entry timestamps of calls in flight, bounded. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct entry_key);
	__type(value, __u64);
} inflight SEC(".maps");

static __always_inline struct gt_stat *slot_stat(__u32 slot)
{
	return bpf_map_lookup_elem(&stats, &slot);
}

static __always_inline int count_event(__u32 slot, __u64 pages, __u64 ns, bool failed)
{
	struct gt_stat *s = slot_stat(slot);
	__u64 now = bpf_ktime_get_ns();

	if (!s)
		return 0;
	if (failed) {
		s->errors++;
		return 0;
	}
	if (!s->count)
		s->first_ns = now;
	s->count++;
	s->last_ns = now;
	s->pages += pages;
	s->sum_ns += ns;
	return 0;
}

static __always_inline int count_pages(__u32 slot, unsigned int order)
{
	return count_event(slot, 1ULL << (order & 31), 0, false);
}

SEC("tracepoint/kmem/mm_page_alloc")
int page_alloc(struct trace_event_raw_mm_page_alloc *ctx)
{
	return count_pages(GT_PAGE_ALLOC, ctx->order);
}

SEC("tracepoint/kmem/mm_page_free")
int page_free(struct trace_event_raw_mm_page_free *ctx)
{
	return count_pages(GT_PAGE_FREE, ctx->order);
}

#define CHILD_FRAMES 512

/* A get or put, counted by order as well. */
static __always_inline int count_order(__u32 slot, unsigned int order, int err)
{
	struct gt_stat *s = slot_stat(slot);

	if (s && !err && order < GT_ORDERS)
		s->orders[order]++;
	return count_event(slot, 1ULL << (order & 31), 0, err);
}

SEC("tp_btf/hyperalloc_get")
int BPF_PROG(hyperalloc_get, int nid, int zid, unsigned long pfn, unsigned int order,
	     unsigned int kind, unsigned int install, int err)
{
	return count_order(GT_HA_GET, order, err);
}

SEC("tp_btf/hyperalloc_put")
int BPF_PROG(hyperalloc_put, int nid, int zid, unsigned long pfn, unsigned int order, int err)
{
	return count_order(GT_HA_PUT, order, err);
}

SEC("tp_btf/hyperalloc_reclaimed_seen")
int BPF_PROG(hyperalloc_reclaimed_seen, int nid, int zid, unsigned long child,
	     unsigned int order)
{
	return count_event(GT_HA_RECLAIMED_SEEN, CHILD_FRAMES, 0, false);
}

SEC("tp_btf/hyperalloc_install_start")
int BPF_PROG(hyperalloc_install_start, int nid, int zid, unsigned long child, unsigned int nr)
{
	return count_event(GT_HA_INSTALL_START, (__u64)nr * CHILD_FRAMES, 0, false);
}

SEC("tp_btf/hyperalloc_install_end")
int BPF_PROG(hyperalloc_install_end, int nid, int zid, unsigned long child, unsigned int nr,
	     __u64 ns, int status)
{
	return count_event(GT_HA_INSTALL_END, (__u64)nr * CHILD_FRAMES, ns, status);
}

SEC("tp_btf/hyperalloc_drain")
int BPF_PROG(hyperalloc_drain, int cpu, int nid, int zid, unsigned int trees, bool remote)
{
	return count_event(GT_HA_DRAIN, 0, 0, false);
}

SEC("tp_btf/hyperalloc_reconcile")
int BPF_PROG(hyperalloc_reconcile, int nid, int zid, long delta, unsigned long nr_free)
{
	return count_event(GT_HA_RECONCILE, (delta < 0 ? -delta : delta) * CHILD_FRAMES, 0, false);
}

static __always_inline int func_enter(__u32 slot)
{
	struct entry_key key = { slot, (__u32)bpf_get_current_pid_tgid() };
	__u64 now = bpf_ktime_get_ns();
	struct gt_stat *s;

	if (bpf_map_update_elem(&inflight, &key, &now, BPF_ANY)) {
		s = slot_stat(slot);
		if (s)
			s->drops++;
	}
	return 0;
}

static __always_inline int func_exit(__u32 slot)
{
	struct entry_key key = { slot, (__u32)bpf_get_current_pid_tgid() };
	__u64 now = bpf_ktime_get_ns();
	struct gt_stat *s = slot_stat(slot);
	__u64 *start = bpf_map_lookup_elem(&inflight, &key);

	if (!s)
		return 0;
	if (!start) {
		s->drops++;
		return 0;
	}
	if (!s->count)
		s->first_ns = *start;
	s->count++;
	s->sum_ns += now - *start;
	s->last_ns = now;
	bpf_map_delete_elem(&inflight, &key);
	return 0;
}

#define FUNC_SLOT(n)                                                                       \
	SEC("fentry") int BPF_PROG(fentry_##n) { return func_enter(GT_FUNC0 + n); }        \
	SEC("fexit") int BPF_PROG(fexit_##n) { return func_exit(GT_FUNC0 + n); }           \
	SEC("kprobe") int BPF_KPROBE(kprobe_##n) { return func_enter(GT_FUNC0 + n); }      \
	SEC("kretprobe") int BPF_KRETPROBE(kretprobe_##n) { return func_exit(GT_FUNC0 + n); }

FUNC_SLOT(0)
FUNC_SLOT(1)
FUNC_SLOT(2)
FUNC_SLOT(3)
FUNC_SLOT(4)
FUNC_SLOT(5)
FUNC_SLOT(6)
FUNC_SLOT(7)
FUNC_SLOT(8)
FUNC_SLOT(9)
FUNC_SLOT(10)
FUNC_SLOT(11)
FUNC_SLOT(12)
FUNC_SLOT(13)
FUNC_SLOT(14)
FUNC_SLOT(15)
FUNC_SLOT(16)
FUNC_SLOT(17)
FUNC_SLOT(18)
FUNC_SLOT(19)
FUNC_SLOT(20)
FUNC_SLOT(21)
FUNC_SLOT(22)
FUNC_SLOT(23)
FUNC_SLOT(24) /* GT_CALIB */
