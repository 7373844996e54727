/* Types shared by bpf/qemu_usdt.bpf.c and user/lib/qemu_usdt.c. */
#ifndef HATRACE_QEMU_USDT_TYPES_H
#define HATRACE_QEMU_USDT_TYPES_H

#define QEMU_USDT_MAX_EVENTS 32
#define QEMU_USDT_ARGS 4
#define QEMU_USDT_HIST_SLOTS 64

/* The probes, by their QEMU trace event names (hw/virtio/trace-events, softmmu),
 * then totals the programs derive from other events. The value is the attach
 * cookie and the index of totals[]. */
enum qemu_usdt_event {
	QEMU_BALLOON_EVENT,          /* (opaque, target): QMP balloon */
	QEMU_BALLOON_TO_TARGET,      /* (target, num_pages): balloon phase start */
	QEMU_BALLOON_ACTUAL_BYTES,   /* (balloon_bytes, target_bytes): end when equal */
	QEMU_BALLOON_FREE_PAGE_REPORT, /* (ranges, bytes, discarded_bytes) */
	QEMU_MEM_SET_REQUESTED_SIZE, /* (old_size, new_size): virtio-mem phase start */
	QEMU_MEM_SIZE_CHANGE,        /* (old_size, new_size): end at the requested size */
	QEMU_BALLOON_SET_CONFIG,     /* (actual, oldactual): one per guest request;
				      * sum: 4 KiB pages the actual moved */
	QEMU_MEM_PLUG_REQUEST,       /* (addr, nb_blocks), counted, blocks summed */
	QEMU_MEM_UNPLUG_REQUEST,     /* (addr, nb_blocks), counted, blocks summed */
	QEMU_MEM_SEND_RESPONSE,      /* (type), counted */
	QEMU_BALLOON_PAGE,           /* virtio_balloon_handle_output (name, gpa): per page */
	QEMU_DISCARD,                /* ram_block_discard_range (idstr, hva, len, ...): bytes summed */
	QEMU_HA_RESIZE_START,        /* hyperalloc_resize_start(target_bytes, hard, want_hard):
				      * virtio-hyperalloc phase start */
	QEMU_HA_RESIZE_END,          /* hyperalloc_resize_end(actual_bytes, hard, reached): its end */
	QEMU_HA_DISCARD,             /* hyperalloc_discard(gpa, len, soft): counted, bytes summed */
	QEMU_HA_INSTALL_START,       /* hyperalloc_install_start(queue, zone, child, count): counted */
	QEMU_HA_INSTALL_END,         /* hyperalloc_install_end(queue, zone, child, status): counted */
	QEMU_HA_POPULATE,            /* hyperalloc_populate(gpa, len, ret): counted, bytes summed */
	QEMU_DISCARD_SYSCALL,        /* derived: QEMU's discarding madvise/fallocate
				      * calls (syscall tracepoints); sum bytes, ns time */
	QEMU_MEM_REQUEST,            /* derived: virtio-mem (un)plug request to response;
				      * ns time */
	QEMU_HA_INSTALL,             /* derived: virtio-hyperalloc install request, start to end;
				      * sum: 2 MiB children asked for, ns time */
	QEMU_USDT_NR
};

/* Hits of an event so far, the sum of one argument (e.g. bytes discarded) and,
 * for timed events, their total time. */
struct qemu_usdt_total {
	unsigned long long count;
	unsigned long long sum;
	unsigned long long ns;
};

/* One recorded probe hit. The totals are those of every attached probe at
 * that moment, so the work between two records is the difference. */
struct qemu_usdt_record {
	unsigned long long time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	unsigned int event;         /* enum qemu_usdt_event (the attach cookie) */
	unsigned int tid;
	unsigned long long args[QEMU_USDT_ARGS];
	struct qemu_usdt_total totals[QEMU_USDT_MAX_EVENTS];
};

/* log2 histograms (slot i: values in [2^i, 2^(i+1)), slot 0 also 0) */
enum qemu_usdt_hist {
	QEMU_HIST_MEM_REQUEST_NS,    /* virtio-mem (un)plug request latency */
	QEMU_HIST_BALLOON_PAGES,     /* 4 KiB pages per balloon request */
	QEMU_HIST_DISCARD_BYTES,     /* ram_block_discard_range sizes (per-page probes) */
	QEMU_HIST_HA_INSTALL_NS,     /* virtio-hyperalloc install latency */
	QEMU_HIST_NR
};

#endif
