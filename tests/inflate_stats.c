/* Median and distribution-free 95% CI (user/lib/stats.c) against known tables. */
#include "check.h"
#include "stats.h"

#include <math.h>

int main(void)
{
	uint64_t x[100];
	struct median_ci ci;

	plan(9);
	for (int i = 0; i < 100; i++)
		x[i] = (uint64_t)(100 - i) * 10; /* unsorted on purpose: 1000 .. 10 */

	check(median_ci95(x, 0, &ci) < 0, "stats_empty_rejected", "n = 0 was accepted");

	median_ci95((uint64_t[]){ 7 }, 1, &ci);
	check(ci.median == 7 && ci.lo == 7 && ci.hi == 7, "stats_single", "median %g [%llu, %llu]",
	      ci.median, (unsigned long long)ci.lo, (unsigned long long)ci.hi);

	median_ci95((uint64_t[]){ 4, 1, 3, 2 }, 4, &ci);
	check(ci.median == 2.5, "stats_even_median", "median of 1..4 = %g, expected 2.5", ci.median);

	/* n = 5: no 95% interval exists; [min, max] covers 1 - 2/32 = 93.75%. */
	median_ci95((uint64_t[]){ 50, 10, 40, 20, 30 }, 5, &ci);
	check(ci.median == 30 && ci.lo == 10 && ci.hi == 50 && fabs(ci.coverage - 0.9375) < 1e-9,
	      "stats_n5_minmax", "median %g [%llu, %llu] coverage %g", ci.median,
	      (unsigned long long)ci.lo, (unsigned long long)ci.hi, ci.coverage);

	/* n = 6: [x(1), x(6)] covers 1 - 2/64 = 96.9%. */
	median_ci95(x, 6, &ci);
	check(ci.k == 1 && fabs(ci.coverage - 0.96875) < 1e-9, "stats_n6", "k %zu coverage %g",
	      ci.k, ci.coverage);

	/* n = 10: x(2)..x(9), coverage 97.85% (x(3)..x(8) would be 89.1%). */
	median_ci95(x + 90, 10, &ci); /* values 100 .. 10 */
	check(ci.k == 2 && ci.lo == 20 && ci.hi == 90 && fabs(ci.coverage - 0.978515625) < 1e-9,
	      "stats_n10", "k %zu [%llu, %llu] coverage %g", ci.k, (unsigned long long)ci.lo,
	      (unsigned long long)ci.hi, ci.coverage);

	/* n = 20: x(6)..x(15), coverage 95.86% (standard table). */
	median_ci95(x + 80, 20, &ci); /* values 200 .. 10 */
	check(ci.k == 6 && ci.lo == 60 && ci.hi == 150 && fabs(ci.coverage - 0.9586) < 1e-4,
	      "stats_n20", "k %zu [%llu, %llu] coverage %g", ci.k, (unsigned long long)ci.lo,
	      (unsigned long long)ci.hi, ci.coverage);

	/* n = 100: x(40)..x(61), coverage 96.48%. */
	median_ci95(x, 100, &ci);
	check(ci.k == 40 && ci.lo == 400 && ci.hi == 610 && ci.median == 505 &&
		      fabs(ci.coverage - 0.9648) < 1e-4,
	      "stats_n100", "k %zu [%llu, %llu] median %g coverage %g", ci.k,
	      (unsigned long long)ci.lo, (unsigned long long)ci.hi, ci.median, ci.coverage);

	check(fabs(binom_half_cdf(10, 1) - 11.0 / 1024) < 1e-12 && binom_half_cdf(3, 3) == 1.0,
	      "stats_binom_cdf", "P(Bin(10,.5) <= 1) = %g", binom_half_cdf(10, 1));
	return check_exit();
}
