/* Interference metrics of a per-interval series (ht-stream bytes, ht-ftq work
 * units; threads x intervals, as the guest workloads report them) against its
 * own median before a disturbance. */
#ifndef HATRACE_DEFICIT_H
#define HATRACE_DEFICIT_H

#include <stdbool.h>
#include <stdint.h>

struct series {
	unsigned threads, intervals;
	uint64_t interval_ns;
	const uint64_t *amount; /* [thread * intervals + interval] */
};

/* Median of the all-thread total per interval over the intervals that end at
 * or before before_ns (relative to the series' start), skipping the first
 * (warm-up) when at least three are left. False if none ends before it. */
bool series_baseline(const struct series *s, uint64_t before_ns, double *baseline);

/* Seconds lost from from_ns to the end: the integral of the total's deficit
 * below baseline, in units of the baseline (one interval at half speed loses
 * half an interval). Intervals partly after from_ns count by their overlap. */
double series_time_lost(const struct series *s, double baseline, uint64_t from_ns);

/* The q quantile (0..1, nearest rank) of the total per interval, as a rate
 * (amount per second); NAN for an empty series. */
double series_quantile_rate(const struct series *s, double q);

/* Thread-seconds of work lost in [start_ns, end_ns): per thread, the deficit
 * below its own median before before_ns, weighted by each interval's overlap
 * with the window. Negative when no thread has a baseline. */
double series_work_lost(const struct series *s, uint64_t before_ns, uint64_t start_ns,
			uint64_t end_ns);

#endif
