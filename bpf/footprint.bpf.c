// SPDX-License-Identifier: GPL-2.0
/* Per-process RSS from kmem:rss_stat, coalesced in the kernel: newer kernels
 * fire it for every page, so only moves of step_bytes (or, when changed, after
 * min_interval_ns) reach user space. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "footprint.h"

char LICENSE[] SEC("license") = "GPL";

const volatile unsigned long long step_bytes = 2 << 20;
const volatile unsigned long long min_interval_ns = 100000000;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_MAX_PIDS);
	__type(key, u32);
	__type(value, u8);
} pids SEC(".maps");

struct mm_state {
	u32 pid;
	long long bytes[FP_NR];
	long long emitted_rss;
	u64 emitted_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FP_MAX_MMS);
	__type(key, u32);
	__type(value, struct mm_state);
} mms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

unsigned long long drops;
/* rss_stat events of traced processes, per CPU: this runs for every page */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} seen SEC(".maps");

/* Counters not seen yet are -1; user space fills them from /proc. */
static __always_inline long long rss_of(const struct mm_state *s)
{
	long long rss = 0;

	if (s->bytes[FP_FILE] > 0)
		rss += s->bytes[FP_FILE];
	if (s->bytes[FP_ANON] > 0)
		rss += s->bytes[FP_ANON];
	if (s->bytes[FP_SHMEM] > 0)
		rss += s->bytes[FP_SHMEM];
	return rss;
}

static __always_inline int handle_rss_stat(struct trace_event_raw_rss_stat *ctx)
{
	u32 mm_id = ctx->mm_id, member = ctx->member;
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct mm_state *s, fresh = {};
	struct fp_event *e;
	long long rss, moved;
	bool first = false;
	u64 now;

	if (member >= FP_NR)
		return 0;
	s = bpf_map_lookup_elem(&mms, &mm_id);
	if (s && ctx->curr && s->pid != tgid) {
		/* the mm of an exited process was reused by another one */
		bpf_map_delete_elem(&mms, &mm_id);
		s = NULL;
	}
	if (!s) {
		/* first sight: only from the owner itself (curr) and if traced */
		if (!ctx->curr || !bpf_map_lookup_elem(&pids, &tgid))
			return 0;
		fresh.pid = tgid;
		for (int i = 0; i < FP_NR; i++)
			fresh.bytes[i] = -1;
		bpf_map_update_elem(&mms, &mm_id, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&mms, &mm_id);
		if (!s)
			return 0;
		first = true; /* the trace starts with a row */
	}
	u32 zero = 0;
	u64 *count = bpf_map_lookup_elem(&seen, &zero);

	if (count)
		(*count)++;
	s->bytes[member] = ctx->size;
	rss = rss_of(s);
	moved = rss - s->emitted_rss;
	if (moved < 0)
		moved = -moved;
	now = bpf_ktime_get_ns();
	if (!first && moved < step_bytes && (!moved || now - s->emitted_ts < min_interval_ns))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&drops, 1);
		return 0;
	}
	e->ts = now;
	e->pid = s->pid;
	e->mm_id = mm_id;
	for (int i = 0; i < FP_NR; i++)
		e->bytes[i] = s->bytes[i];
	bpf_ringbuf_submit(e, 0);
	s->emitted_rss = rss;
	s->emitted_ts = now;
	return 0;
}

SEC("tp/kmem/rss_stat")
int rss_stat(struct trace_event_raw_rss_stat *ctx)
{
	return handle_rss_stat(ctx);
}
