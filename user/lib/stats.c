#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double binom_half_cdf(size_t n, size_t k)
{
	double sum = 0;

	if (k >= n)
		return 1.0;
	for (size_t i = 0; i <= k; i++)
		sum += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) - n * M_LN2);
	return sum > 1.0 ? 1.0 : sum;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int median_ci95(const uint64_t *samples, size_t n, struct median_ci *out)
{
	uint64_t *x;
	size_t k = 1;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return -EINVAL;
	x = malloc(n * sizeof(*x));
	if (!x)
		return -ENOMEM;
	memcpy(x, samples, n * sizeof(*x));
	qsort(x, n, sizeof(*x), cmp_u64);
	out->median = n % 2 ? (double)x[n / 2] : ((double)x[n / 2 - 1] + (double)x[n / 2]) / 2;
	/* Coverage of [x_(k), x_(n+1-k)] is 1 - 2 P(B <= k - 1); grow k while it holds. */
	while (k + 1 <= (n + 1) / 2 && 1 - 2 * binom_half_cdf(n, k) >= 0.95)
		k++;
	out->k = k;
	out->lo = x[k - 1];
	out->hi = x[n - k];
	out->coverage = 1 - 2 * binom_half_cdf(n, k - 1);
	if (out->coverage < 0)
		out->coverage = 0;
	free(x);
	return 0;
}
