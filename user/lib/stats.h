/* Median and its distribution-free 95% confidence interval. */
#ifndef HATRACE_STATS_H
#define HATRACE_STATS_H

#include <stddef.h>
#include <stdint.h>

struct median_ci {
	double median;
	uint64_t lo, hi;   /* order statistics x_(k) and x_(n+1-k) */
	size_t k;          /* 1-based rank of lo; 0 when n == 0 */
	double coverage;   /* exact coverage of [lo, hi], >= 0.95 unless n < 6 */
};

/* The interval [x_(k), x_(n+1-k)] with the largest k whose binomial coverage
 * 1 - 2 P(Bin(n, 1/2) < k) is still >= 95%. Below n = 6 no such k exists and
 * the interval is [min, max] with its (lower) coverage. Returns -EINVAL on n == 0. */
int median_ci95(const uint64_t *samples, size_t n, struct median_ci *out);

/* P(Bin(n, 1/2) <= k). */
double binom_half_cdf(size_t n, size_t k);

#endif
