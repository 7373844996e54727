// SPDX-License-Identifier: GPL-2.0
/* QEMU's USDT probes (provider "qemu", hatrace's QEMU build). The attach cookie
 * is the event's index in user/lib/qemu_usdt.c's table. "record" sends every hit to
 * user space with its arguments and the running totals; "count" only adds to the
 * totals, for probes that fire too often to send (one per request or per page). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>
#include "qemu_usdt_types.h"

char LICENSE[] SEC("license") = "GPL";

/* Argument of each event summed into its total; -1: count only. */
const volatile int sum_arg[QEMU_USDT_MAX_EVENTS];

struct qemu_usdt_total totals[QEMU_USDT_MAX_EVENTS];
unsigned long long drops;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

static __always_inline void add_to_total(struct pt_regs *ctx, unsigned int event)
{
	long value;
	int arg;

	__sync_fetch_and_add(&totals[event].count, 1);
	arg = sum_arg[event];
	if (arg >= 0 && !bpf_usdt_arg(ctx, arg, &value))
		__sync_fetch_and_add(&totals[event].sum, value);
}

SEC("usdt")
int record(struct pt_regs *ctx)
{
	unsigned int event = bpf_usdt_cookie(ctx);
	struct qemu_usdt_record *r;

	if (event >= QEMU_USDT_MAX_EVENTS)
		return 0;
	add_to_total(ctx, event);
	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&drops, 1);
		return 0;
	}
	r->time_ns = bpf_ktime_get_ns();
	r->event = event;
	r->tid = (unsigned int)bpf_get_current_pid_tgid();
	for (int i = 0; i < QEMU_USDT_ARGS; i++) {
		long value = 0;

		bpf_usdt_arg(ctx, i, &value);
		r->args[i] = value;
	}
	__builtin_memcpy(r->totals, totals, sizeof(totals));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("usdt")
int count(struct pt_regs *ctx)
{
	unsigned int event = bpf_usdt_cookie(ctx);

	if (event < QEMU_USDT_MAX_EVENTS)
		add_to_total(ctx, event);
	return 0;
}
