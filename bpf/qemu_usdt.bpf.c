// SPDX-License-Identifier: GPL-2.0
/* QEMU's USDT probes (provider "qemu", hatrace's QEMU build). The attach cookie
 * is the event (enum qemu_usdt_event). "record" sends every hit to user space
 * with its arguments and the running totals; the others only add to the
 * totals and histograms, for probes that fire once per request or per page.
 * The syscall tracepoints time QEMU's discards (madvise DONTNEED/FREE/REMOVE,
 * fallocate PUNCH_HOLE) without a probe inside QEMU. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>
#include "qemu_usdt_types.h"

char LICENSE[] SEC("license") = "GPL";

/* Argument of each event summed into its total; -1: count only. */
const volatile int sum_arg[QEMU_USDT_MAX_EVENTS];
/* The traced QEMU process, for the syscall tracepoints. */
const volatile int qemu_tgid;

struct qemu_usdt_total totals[QEMU_USDT_MAX_EVENTS];
unsigned long long hists[QEMU_HIST_NR][QEMU_USDT_HIST_SLOTS];
unsigned long long drops;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

enum start_kind { START_DISCARD, START_MEM_REQUEST, START_HA_INSTALL };

struct start_key {
	__u32 tid;
	__u32 kind;
};

struct start {
	__u64 time_ns;
	__u64 bytes;
};

/* Starts of discards and requests in flight, per thread; bounded. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct start_key);
	__type(value, struct start);
} starts SEC(".maps");

/* The probes are attached to every process of the binary (attached to the
 * one QEMU process, they slowed its TCG guest's balloon deflate 30x): only the
 * traced QEMU counts. */
static __always_inline bool traced(void)
{
	return (int)(bpf_get_current_pid_tgid() >> 32) == qemu_tgid;
}

static __always_inline unsigned int log2_slot(__u64 v)
{
	unsigned int slot = 0;

	for (int i = 0; i < QEMU_USDT_HIST_SLOTS - 1; i++) {
		if (v < 2)
			break;
		v >>= 1;
		slot++;
	}
	return slot;
}

static __always_inline void hist_add(unsigned int h, __u64 v)
{
	unsigned int slot = log2_slot(v);

	if (h < QEMU_HIST_NR && slot < QEMU_USDT_HIST_SLOTS)
		__sync_fetch_and_add(&hists[h][slot], 1);
}

static __always_inline void add_to_total(struct pt_regs *ctx, unsigned int event)
{
	long value;
	int arg;

	if (event >= QEMU_USDT_MAX_EVENTS)
		return;
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

	if (event >= QEMU_USDT_MAX_EVENTS || !traced())
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
	/* No wakeup (BPF_RB_NO_WAKEUP, with the ring buffer since 457f44363a88,
	 * 5.8): user space drains the buffer when it looks (no one waits on it),
	 * and a wakeup is an irq_work per record (virtio-balloon writes its
	 * config, a record, once per 256 pages). */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("usdt")
int count(struct pt_regs *ctx)
{
	unsigned int event = bpf_usdt_cookie(ctx);
	long len;

	if (event >= QEMU_USDT_MAX_EVENTS || !traced())
		return 0;
	add_to_total(ctx, event);
	if (event == QEMU_DISCARD && !bpf_usdt_arg(ctx, 2, &len))
		hist_add(QEMU_HIST_DISCARD_BYTES, len);
	return 0;
}

/* virtio_balloon_set_config(actual, oldactual): one guest request. */
SEC("usdt")
int balloon_config(struct pt_regs *ctx)
{
	long actual, old;
	__u64 pages;

	if (!traced() || bpf_usdt_arg(ctx, 0, &actual) || bpf_usdt_arg(ctx, 1, &old))
		return 0;
	pages = actual > old ? actual - old : old - actual;
	__sync_fetch_and_add(&totals[QEMU_BALLOON_SET_CONFIG].count, 1);
	__sync_fetch_and_add(&totals[QEMU_BALLOON_SET_CONFIG].sum, pages);
	if (pages)
		hist_add(QEMU_HIST_BALLOON_PAGES, pages);
	return 0;
}

static __always_inline void start_now(enum start_kind kind, __u64 bytes)
{
	struct start_key key = { (__u32)bpf_get_current_pid_tgid(), kind };
	struct start s = { bpf_ktime_get_ns(), bytes };

	if (bpf_map_update_elem(&starts, &key, &s, BPF_ANY))
		__sync_fetch_and_add(&drops, 1);
}

/* The time since the thread's start of kind, added to event's total. */
static __always_inline void end_now(enum start_kind kind, unsigned int event, unsigned int hist)
{
	struct start_key key = { (__u32)bpf_get_current_pid_tgid(), kind };
	struct start *s = bpf_map_lookup_elem(&starts, &key);
	__u64 ns;

	if (!s || event >= QEMU_USDT_MAX_EVENTS)
		return;
	ns = bpf_ktime_get_ns() - s->time_ns;
	__sync_fetch_and_add(&totals[event].count, 1);
	__sync_fetch_and_add(&totals[event].sum, s->bytes);
	__sync_fetch_and_add(&totals[event].ns, ns);
	if (hist < QEMU_HIST_NR)
		hist_add(hist, ns);
	bpf_map_delete_elem(&starts, &key);
}

/* virtio_mem_{plug,unplug}_request(addr, nb_blocks): counted, then timed to
 * the response on the same thread. */
SEC("usdt")
int mem_request(struct pt_regs *ctx)
{
	unsigned int event = bpf_usdt_cookie(ctx);

	if (event >= QEMU_USDT_MAX_EVENTS || !traced())
		return 0;
	add_to_total(ctx, event);
	start_now(START_MEM_REQUEST, 0);
	return 0;
}

SEC("usdt")
int mem_response(struct pt_regs *ctx)
{
	if (!traced())
		return 0;
	add_to_total(ctx, QEMU_MEM_SEND_RESPONSE);
	end_now(START_MEM_REQUEST, QEMU_MEM_REQUEST, QEMU_HIST_MEM_REQUEST_NS);
	return 0;
}

/* hyperalloc_install_start(queue, zone, child, count): counted, then timed to
 * its install_end on the same thread (the vCPU's or the iothread's); the
 * children asked for are summed. */
SEC("usdt")
int ha_install_start(struct pt_regs *ctx)
{
	long children;

	if (!traced())
		return 0;
	add_to_total(ctx, QEMU_HA_INSTALL_START);
	if (bpf_usdt_arg(ctx, 3, &children))
		children = 0;
	start_now(START_HA_INSTALL, children);
	return 0;
}

SEC("usdt")
int ha_install_end(struct pt_regs *ctx)
{
	if (!traced())
		return 0;
	add_to_total(ctx, QEMU_HA_INSTALL_END);
	end_now(START_HA_INSTALL, QEMU_HA_INSTALL, QEMU_HIST_HA_INSTALL_NS);
	return 0;
}

SEC("tp/syscalls/sys_enter_madvise")
int discard_madvise_enter(struct trace_event_raw_sys_enter *ctx)
{
	long advice = ctx->args[2];

	/* MADV_DONTNEED, MADV_FREE, MADV_REMOVE */
	if (traced() && (advice == 4 || advice == 8 || advice == 9))
		start_now(START_DISCARD, ctx->args[1]);
	return 0;
}

SEC("tp/syscalls/sys_enter_fallocate")
int discard_fallocate_enter(struct trace_event_raw_sys_enter *ctx)
{
	/* FALLOC_FL_PUNCH_HOLE */
	if (traced() && (ctx->args[1] & 0x02))
		start_now(START_DISCARD, ctx->args[3]);
	return 0;
}

SEC("tp/syscalls/sys_exit_madvise")
int discard_madvise_exit(void *ctx)
{
	if (traced())
		end_now(START_DISCARD, QEMU_DISCARD_SYSCALL, QEMU_HIST_NR);
	return 0;
}

SEC("tp/syscalls/sys_exit_fallocate")
int discard_fallocate_exit(void *ctx)
{
	if (traced())
		end_now(START_DISCARD, QEMU_DISCARD_SYSCALL, QEMU_HIST_NR);
	return 0;
}
