/* QEMU-internal phase timing from the USDT probes of hatrace's QEMU build
 * (qemu/patches): which probes a binary has, and libbpf USDT programs attached
 * to a running QEMU that report each probe hit and each resize phase. */
#ifndef HATRACE_QEMU_USDT_H
#define HATRACE_QEMU_USDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qemu_usdt_types.h"

/* The events (enum qemu_usdt_event, qemu_usdt_types.h) below this one are
 * USDT probes of QEMU; the rest are derived totals. */
#define QEMU_USDT_PROBES QEMU_DISCARD_SYSCALL

/* qemu_usdt_attach() flags */
enum {
	/* Also count the per-page probes (QEMU_BALLOON_PAGE, QEMU_DISCARD). A uprobe
	 * costs microseconds per hit: this slows a 4 KiB balloon noticeably. */
	QEMU_USDT_PER_PAGE = 1 << 0,
	/* Also time QEMU's discard syscalls (QEMU_DISCARD_SYSCALL): tracepoints on
	 * every madvise and fallocate, whatever the advice (a 4 KiB balloon's grow
	 * makes one madvise(WILLNEED) per page). */
	QEMU_USDT_DISCARDS = 1 << 1,
};

/* One resize as QEMU saw it. */
struct qemu_phase {
	const char *device;     /* "virtio-balloon", "virtio-mem" or "virtio-hyperalloc" */
	bool reached;           /* false: a new request came before the target was reached
				 * (virtio-hyperalloc: the device did not reach it) */
	uint64_t start_ns;      /* CLOCK_MONOTONIC: QEMU handled the request */
	uint64_t end_ns;        /* target reached (0 if not) */
	uint64_t target_bytes;  /* balloon size, or virtio-mem requested size */
	/* work between start and end (QEMU_USDT_PER_PAGE probes only if asked) */
	struct qemu_usdt_total work[QEMU_USDT_NR];
};

struct qemu_usdt_handlers {
	void (*record)(void *ctx, enum qemu_usdt_event event, const struct qemu_usdt_record *r);
	void (*phase)(void *ctx, const struct qemu_phase *p);
	void *ctx;
};

struct qemu_usdt;

const char *qemu_usdt_name(enum qemu_usdt_event event);
/* Marks which of the QEMU_USDT_PROBES probes binary has (its .note.stapsdt,
 * provider "qemu") and returns how many, or -errno (a clear error printed) if it
 * is not a readable ELF file. Debian's stock QEMU has none. */
int qemu_usdt_find(const char *binary, bool present[QEMU_USDT_NR]);
/* Like qemu_usdt_find, silent: why binary cannot be attached to (NULL: it can). */
const char *qemu_usdt_unavailable(const char *binary, char *why, size_t len);
/* Attaches to the QEMU process pid running binary (NULL: /proc/PID/exe), and
 * with QEMU_USDT_DISCARDS to the syscall tracepoints that time its discards. Fails with a clear error
 * if the binary lacks one of the probes. */
struct qemu_usdt *qemu_usdt_attach(int pid, const char *binary, unsigned flags,
				   const struct qemu_usdt_handlers *h);
/* Delivers every record that arrived (the probes submit them without a
 * wakeup, so this reads the buffer, not epoll); returns how many, or -errno. */
int qemu_usdt_drain(struct qemu_usdt *u);
void qemu_usdt_totals(const struct qemu_usdt *u, struct qemu_usdt_total out[QEMU_USDT_NR]);
/* A log2 histogram (QEMU_USDT_HIST_SLOTS counts) and its name and unit. */
void qemu_usdt_hist(const struct qemu_usdt *u, enum qemu_usdt_hist h,
		    unsigned long long out[QEMU_USDT_HIST_SLOTS]);
const char *qemu_usdt_hist_name(enum qemu_usdt_hist h, const char **unit);
/* Records or starts lost because the ring buffer or the start map was full. */
uint64_t qemu_usdt_drops(const struct qemu_usdt *u);
void qemu_usdt_detach(struct qemu_usdt *u);
/* What one probe hit costs a process on this host, ns: a USDT probe in
 * hatrace itself, with the counting program QEMU's request probes run, timed
 * against no probe. Returns -errno with why filled in. */
int qemu_usdt_hit_ns(double *ns, char *why, size_t len);

#endif
