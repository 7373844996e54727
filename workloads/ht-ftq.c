/* ht-ftq: fixed time quantum. T threads each repeat a fixed unit of CPU work
 * (no memory traffic) for S seconds and count the units finished in every
 * quantum of M ms; a quantum with fewer units lost CPU time to someone else.
 * usage: ht-ftq [--threads T] [--seconds S] [--interval-ms M]
 * result: {"workload":"ht-ftq","threads","seconds","unit_ops","start_ns",
 *          "interval_ns","series":[[units per quantum] per thread]} */
#include "common.h"
#include "wl.h"

/* Operations per unit: about 10 us under TCG, so a 10 ms quantum holds ~1000. */
#define UNIT_OPS 2048

static volatile uint64_t sink[WL_MAX_THREADS * 8];

static uint64_t work_unit(unsigned thread, void *arg)
{
	uint64_t x = thread + 1;

	for (unsigned i = 0; i < UNIT_OPS; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	sink[thread * 8] = x; /* one cache line per thread */
	return 1;
}

int main(int argc, char **argv)
{
	struct wl_timed_opts o;
	struct wl_series s;
	json_t *result;

	if (wl_parse_timed("ht-ftq", argc, argv, false, &o))
		return 2;
	wl_series_run(&s, o.threads, o.seconds_ns, o.interval_ns, work_unit, NULL);
	result = json_pack("{s:s,s:i,s:I,s:i}", "workload", "ht-ftq", "threads", o.threads,
			   "seconds", (json_int_t)(o.seconds_ns / 1000000000ull), "unit_ops",
			   UNIT_OPS);
	wl_series_json(&s, result);
	json_println(stdout, result);
	wl_series_free(&s);
	return 0;
}
