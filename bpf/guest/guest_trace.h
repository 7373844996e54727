/* Shared between bpf/guest/guest_trace.bpf.c and the guest agent. */
#ifndef HATRACE_GUEST_TRACE_H
#define HATRACE_GUEST_TRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Stat slots: the page-allocator tracepoints, HyperAlloc's (tp_btf, in the
 * hyperalloc kernel only), then one per traced function. */
enum gt_slot {
	GT_PAGE_ALLOC,
	GT_PAGE_FREE,
	GT_HA_GET,
	GT_HA_PUT,
	GT_HA_RECLAIMED_SEEN,
	GT_HA_INSTALL_START,
	GT_HA_INSTALL_END,
	GT_HA_DRAIN,
	GT_HA_RECONCILE,
	GT_FUNC0,
	GT_NR_FUNCS = 24, /* the host names up to this many functions in trace_start */
	/* The agent's own: one function probe on a syscall it calls in a loop, to
	 * measure what a probe hit costs (trace_start "probe_cost"). */
	GT_CALIB = GT_FUNC0 + GT_NR_FUNCS,
	GT_NR_SLOTS = GT_CALIB + 1,
};

/* Per-CPU aggregate of one probe. For functions, sum_ns is the total time spent
 * inside (entry to return), first_ns the first entry and last_ns the last
 * return. For tracepoints, pages sums the frames of each event: 1 << order
 * (kmem and HyperAlloc get/put), 512 per child (reclaimed_seen, install,
 * reconcile) or 0 (drain); sum_ns stays 0 but for hyperalloc_install_end,
 * where it sums the install times. A HyperAlloc event that reports a failure
 * (err, status) counts in errors instead of count. Times are
 * bpf_ktime_get_ns() (CLOCK_MONOTONIC). */
#define GT_ORDERS 11 /* orders 0 to 10 */

struct gt_stat {
	__u64 count;
	__u64 sum_ns;
	__u64 first_ns;
	__u64 last_ns;
	__u64 pages;
	__u64 drops; /* returns whose entry was not recorded (map full or attached mid-call) */
	__u64 errors;
	__u64 orders[GT_ORDERS]; /* get/put events by order (HyperAlloc's, counted ones) */
};

#endif
