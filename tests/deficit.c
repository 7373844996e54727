/* Interference metrics (user/lib/deficit.c) on series whose answers are known
 * by hand. */
#include "check.h"
#include "deficit.h"

#include <math.h>

#define MS 1000000ull

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

int main(void)
{
	/* 2 threads x 10 intervals of 100 ms: 100 per interval each, except that
	 * thread 0 does 0 in intervals 5 and 6 and thread 1 does 50 in interval 5. */
	uint64_t a[2][10] = {
		{ 80, 100, 100, 100, 100, 0, 0, 100, 100, 100 },
		{ 80, 100, 100, 100, 100, 50, 100, 100, 100, 100 },
	};
	struct series s = { .threads = 2, .intervals = 10, .interval_ns = 100 * MS,
			    .amount = &a[0][0] };
	double base = 0;

	plan(9);
	check(series_baseline(&s, 500 * MS, &base) && near(base, 200), "baseline skips warm-up",
	      "baseline %g, expected 200 (the 160 of interval 0 left out)", base);
	check(!series_baseline(&s, 50 * MS, &base), "no baseline before the first interval ends",
	      "got %g", base);
	/* Interval 5 totals 50 (3/4 short), interval 6 totals 100 (1/2 short); 0.1 s each. */
	check(near(series_time_lost(&s, 200, 500 * MS), (0.75 + 0.5) * 0.1), "time lost",
	      "%g s", series_time_lost(&s, 200, 500 * MS));
	check(near(series_time_lost(&s, 200, 550 * MS), (0.75 * 0.5 + 0.5) * 0.1),
	      "time lost counts a partial interval by its overlap", "%g s",
	      series_time_lost(&s, 200, 550 * MS));
	check(near(series_time_lost(&s, 200, 700 * MS), 0), "nothing lost after recovery", "%g s",
	      series_time_lost(&s, 200, 700 * MS));
	/* Totals sorted: 50 100 160 200...; the 1 % quantile is the lowest, 50 per 0.1 s. */
	check(near(series_quantile_rate(&s, 0.01), 500), "1 % quantile as a rate", "%g/s",
	      series_quantile_rate(&s, 0.01));
	/* Thread 0 loses 1 + 1 intervals, thread 1 half of one: 0.25 thread-seconds. */
	check(near(series_work_lost(&s, 500 * MS, 500 * MS, 700 * MS), 0.25),
	      "work lost in thread-seconds", "%g", series_work_lost(&s, 500 * MS, 500 * MS, 700 * MS));
	check(near(series_work_lost(&s, 500 * MS, 650 * MS, 1000 * MS), 0.05),
	      "work lost only inside the window", "%g",
	      series_work_lost(&s, 500 * MS, 650 * MS, 1000 * MS));
	check(series_work_lost(&s, 0, 500 * MS, 700 * MS) < 0, "work lost without a baseline",
	      "%g", series_work_lost(&s, 0, 500 * MS, 700 * MS));
	return check_failures != 0;
}
