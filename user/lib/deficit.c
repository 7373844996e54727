#include "deficit.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double total(const struct series *s, unsigned k)
{
	double sum = 0;

	for (unsigned t = 0; t < s->threads; t++)
		sum += s->amount[(uint64_t)t * s->intervals + k];
	return sum;
}

/* Intervals that end at or before ns, and the first of them that counts. */
static unsigned before(const struct series *s, uint64_t ns, unsigned *first)
{
	unsigned n = ns / s->interval_ns < s->intervals ? ns / s->interval_ns : s->intervals;

	*first = n >= 4 ? 1 : 0;
	return n;
}

static bool baseline_of(const struct series *s, int thread, uint64_t before_ns, double *out)
{
	unsigned first, n = before(s, before_ns, &first);
	double *v;

	if (n <= first || !(v = malloc((n - first) * sizeof(*v))))
		return false;
	for (unsigned k = first; k < n; k++)
		v[k - first] = thread < 0 ? total(s, k)
					  : s->amount[(uint64_t)thread * s->intervals + k];
	*out = median(v, n - first);
	free(v);
	return *out > 0;
}

bool series_baseline(const struct series *s, uint64_t before_ns, double *baseline)
{
	return baseline_of(s, -1, before_ns, baseline);
}

/* Part of interval k inside [start_ns, end_ns), in intervals. */
static double overlap(const struct series *s, unsigned k, uint64_t start_ns, uint64_t end_ns)
{
	uint64_t lo = (uint64_t)k * s->interval_ns, hi = lo + s->interval_ns;

	lo = lo > start_ns ? lo : start_ns;
	hi = hi < end_ns ? hi : end_ns;
	return hi > lo ? (double)(hi - lo) / s->interval_ns : 0;
}

static double deficit(double v, double baseline)
{
	return v < baseline ? 1 - v / baseline : 0;
}

double series_time_lost(const struct series *s, double baseline, uint64_t from_ns)
{
	double lost = 0;

	for (unsigned k = 0; k < s->intervals; k++)
		lost += deficit(total(s, k), baseline) * overlap(s, k, from_ns, UINT64_MAX);
	return lost * s->interval_ns / 1e9;
}

double series_quantile_rate(const struct series *s, double q)
{
	double *v = malloc(s->intervals * sizeof(*v)), r;
	unsigned rank;

	if (!v || !s->intervals) {
		free(v);
		return NAN;
	}
	for (unsigned k = 0; k < s->intervals; k++)
		v[k] = total(s, k);
	qsort(v, s->intervals, sizeof(*v), cmp_double);
	rank = q * s->intervals;
	r = v[rank < s->intervals ? rank : s->intervals - 1] * 1e9 / s->interval_ns;
	free(v);
	return r;
}

double series_work_lost(const struct series *s, uint64_t before_ns, uint64_t start_ns,
			uint64_t end_ns)
{
	double lost = 0, base;
	bool any = false;

	for (unsigned t = 0; t < s->threads; t++) {
		if (!baseline_of(s, t, before_ns, &base))
			continue;
		any = true;
		for (unsigned k = 0; k < s->intervals; k++)
			lost += deficit(s->amount[(uint64_t)t * s->intervals + k], base) *
				overlap(s, k, start_ns, end_ns);
	}
	return any ? lost * s->interval_ns / 1e9 : -1;
}
