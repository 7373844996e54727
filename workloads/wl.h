/* Shared helpers of the static guest workloads (workloads/ht-*.c). Each
 * workload prints one JSON object as its last stdout line. */
#ifndef HATRACE_WL_H
#define HATRACE_WL_H

#include <stddef.h>
#include <stdint.h>

#define WL_PAGE 4096ul
#define WL_MAX_THREADS 256

/* Work on pages [first, first + count) of one thread's share. */
typedef void (*wl_fn)(char *base, size_t first, size_t count, void *arg);

/* A timed pass: its start (CLOCK_MONOTONIC, the clock of the agent's ping and
 * of guest BPF) and its wall time. */
struct wl_span {
	uint64_t start_ns, ns;
};

/* Splits npages over nthreads threads, runs fn on each share and times it from
 * the common start to the last thread's end. */
struct wl_span wl_parallel(char *base, size_t npages, unsigned nthreads, wl_fn fn, void *arg);

/* Anonymous private mapping of bytes, 4 KiB pages only (MADV_NOHUGEPAGE). NULL
 * after printing an error, also when madvise is missing (ENOSYS). */
char *wl_map(uint64_t bytes);

/* Parses "--bytes N" (sizes like 512M) and "--threads T" (default 1), the only
 * options of ht-touch and ht-alloc-install. */
int wl_parse_bytes_threads(const char *prog, int argc, char **argv, uint64_t *bytes,
			   unsigned *threads);

#endif
