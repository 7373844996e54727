/* QEMU-internal phase timing from the USDT probes of hatrace's QEMU build
 * (qemu/patches): which probes a binary has, and libbpf USDT programs attached
 * to a running QEMU that report each probe hit and each resize phase. */
#ifndef HATRACE_QEMU_USDT_H
#define HATRACE_QEMU_USDT_H

#include <stdbool.h>
#include <stdint.h>
#include "qemu_usdt_types.h"

/* The probes, by their QEMU trace event names (hw/virtio/trace-events, softmmu). */
enum qemu_usdt_event {
	QEMU_BALLOON_EVENT,          /* (opaque, target): QMP balloon */
	QEMU_BALLOON_TO_TARGET,      /* (target, num_pages): balloon phase start */
	QEMU_BALLOON_ACTUAL_BYTES,   /* (balloon_bytes, target_bytes): end when equal */
	QEMU_BALLOON_FREE_PAGE_REPORT, /* (ranges, bytes, discarded_bytes) */
	QEMU_MEM_SET_REQUESTED_SIZE, /* (old_size, new_size): virtio-mem phase start */
	QEMU_MEM_SIZE_CHANGE,        /* (old_size, new_size): end at the requested size */
	QEMU_BALLOON_SET_CONFIG,     /* (actual, oldactual), counted */
	QEMU_MEM_PLUG_REQUEST,       /* (addr, nb_blocks), counted, blocks summed */
	QEMU_MEM_UNPLUG_REQUEST,     /* (addr, nb_blocks), counted, blocks summed */
	QEMU_MEM_SEND_RESPONSE,      /* (type), counted */
	QEMU_BALLOON_PAGE,           /* virtio_balloon_handle_output (name, gpa): per page */
	QEMU_DISCARD,                /* ram_block_discard_range (idstr, hva, len, ...): bytes summed */
	QEMU_USDT_NR
};

/* qemu_usdt_attach() flags */
enum {
	/* Also count the per-page probes (QEMU_BALLOON_PAGE, QEMU_DISCARD). A uprobe
	 * costs microseconds per hit: this slows a 4 KiB balloon noticeably. */
	QEMU_USDT_PER_PAGE = 1 << 0,
};

/* One resize as QEMU saw it. */
struct qemu_phase {
	const char *device;     /* "virtio-balloon" or "virtio-mem" */
	bool reached;           /* false: a new request came before the target was reached */
	uint64_t start_ns;      /* CLOCK_MONOTONIC: QEMU handled the request */
	uint64_t end_ns;        /* target reached (0 if not) */
	uint64_t target_bytes;  /* balloon size, or virtio-mem requested size */
	/* probe hits between start and end (QEMU_USDT_PER_PAGE ones only if asked) */
	struct qemu_usdt_total work[QEMU_USDT_NR];
};

struct qemu_usdt_handlers {
	void (*record)(void *ctx, enum qemu_usdt_event event, const struct qemu_usdt_record *r);
	void (*phase)(void *ctx, const struct qemu_phase *p);
	void *ctx;
};

struct qemu_usdt;

const char *qemu_usdt_name(enum qemu_usdt_event event);
/* Marks which of the probes above binary has (its .note.stapsdt, provider "qemu")
 * and returns how many, or -errno (a clear error printed) if it is not a
 * readable ELF file. Debian's stock QEMU has none. */
int qemu_usdt_find(const char *binary, bool present[QEMU_USDT_NR]);
/* Attaches to the QEMU process pid running binary (NULL: /proc/PID/exe).
 * Fails with a clear error if the binary lacks one of the probes. */
struct qemu_usdt *qemu_usdt_attach(int pid, const char *binary, unsigned flags,
				   const struct qemu_usdt_handlers *h);
/* Delivers what arrived within timeout_ms; returns records handled or -errno. */
int qemu_usdt_poll(struct qemu_usdt *u, int timeout_ms);
void qemu_usdt_totals(const struct qemu_usdt *u, struct qemu_usdt_total out[QEMU_USDT_NR]);
/* Records lost because the ring buffer was full. */
uint64_t qemu_usdt_drops(const struct qemu_usdt *u);
void qemu_usdt_detach(struct qemu_usdt *u);

#endif
