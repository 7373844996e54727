/* Types shared by bpf/qemu_usdt.bpf.c and user/lib/qemu_usdt.c. */
#ifndef HATRACE_QEMU_USDT_TYPES_H
#define HATRACE_QEMU_USDT_TYPES_H

#define QEMU_USDT_MAX_EVENTS 16
#define QEMU_USDT_ARGS 4

/* Events seen so far and the sum of one argument (e.g. bytes discarded). */
struct qemu_usdt_total {
	unsigned long long count;
	unsigned long long sum;
};

/* One recorded probe hit. The totals are those of every attached probe at
 * that moment, so the work between two records is the difference. */
struct qemu_usdt_record {
	unsigned long long time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	unsigned int event;         /* index in user/lib/qemu_usdt.c's table (the attach cookie) */
	unsigned int tid;
	unsigned long long args[QEMU_USDT_ARGS];
	struct qemu_usdt_total totals[QEMU_USDT_MAX_EVENTS];
};

#endif
