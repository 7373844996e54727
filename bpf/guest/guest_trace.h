/* Shared between bpf/guest/guest_trace.bpf.c and the guest agent. */
#ifndef HATRACE_GUEST_TRACE_H
#define HATRACE_GUEST_TRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Stat slots: the page-allocator tracepoints, then one per traced function. */
enum gt_slot {
	GT_PAGE_ALLOC,
	GT_PAGE_FREE,
	GT_FUNC0,
	GT_NR_FUNCS = 24, /* the host names up to this many functions in trace_start */
	GT_NR_SLOTS = GT_FUNC0 + GT_NR_FUNCS,
};

/* Per-CPU aggregate of one probe. For functions, sum_ns is the total time spent
 * inside (entry to return), first_ns the first entry and last_ns the last
 * return. For tracepoints sum_ns stays 0 and pages sums 1 << order. Times are
 * bpf_ktime_get_ns() (CLOCK_MONOTONIC). */
struct gt_stat {
	__u64 count;
	__u64 sum_ns;
	__u64 first_ns;
	__u64 last_ns;
	__u64 pages;
	__u64 drops; /* returns whose entry was not recorded (map full or attached mid-call) */
};

#endif
