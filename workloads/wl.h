/* Shared helpers of the static guest workloads (workloads/ht-*.c). Each
 * workload prints one JSON object as its last stdout line. */
#ifndef HATRACE_WL_H
#define HATRACE_WL_H

#include <jansson.h>
#include <stdbool.h>
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

/* A timed run for interference workloads: T threads each call step() until
 * seconds have passed and add what it returns (bytes, work units) to the
 * interval of their common start it ended in. */
typedef uint64_t (*wl_step_fn)(unsigned thread, void *arg);

struct wl_series {
	uint64_t start_ns;    /* common start, guest CLOCK_MONOTONIC */
	uint64_t interval_ns;
	unsigned intervals, threads;
	uint64_t *amount;     /* [thread * intervals + interval] */
};

/* Fills s (free with wl_series_free); exits with an error on failure. */
void wl_series_run(struct wl_series *s, unsigned threads, uint64_t seconds_ns,
		   uint64_t interval_ns, wl_step_fn step, void *arg);
/* {"start_ns","interval_ns","series":[[per interval] per thread]} added to result. */
void wl_series_json(const struct wl_series *s, json_t *result);
void wl_series_free(struct wl_series *s);

/* Options of the timed workloads: --seconds S, --interval-ms M, --threads T and,
 * where bytes is not NULL, --bytes N. */
struct wl_timed_opts {
	uint64_t bytes, seconds_ns, interval_ns;
	unsigned threads;
};
int wl_parse_timed(const char *prog, int argc, char **argv, bool want_bytes,
		   struct wl_timed_opts *o);

#endif
