/* ht-stream: a STREAM-like triad (a = b + q * c over doubles) in T threads for
 * S seconds, each on its own three arrays of N / 3T bytes (4 KiB pages), and
 * the bytes each thread moved in every interval of M ms (24 bytes per element:
 * two reads and a write).
 * usage: ht-stream --bytes N [--threads T] [--seconds S] [--interval-ms M]
 * result: {"workload":"ht-stream","bytes","threads","seconds","start_ns",
 *          "interval_ns","series":[[bytes per interval] per thread]}
 *          (start_ns: guest CLOCK_MONOTONIC) */
#include "common.h"
#include "wl.h"

#include <string.h>

/* Elements per step: long enough to hide the clock read, short enough (about
 * a millisecond under TCG) to place the bytes in the right interval. */
#define STEP_ELEMS 8192

struct triad {
	double *a, *b, *c;
	size_t elems, next;
};

static struct triad arrays[WL_MAX_THREADS];

static uint64_t triad_step(unsigned thread, void *arg)
{
	struct triad *t = &arrays[thread];
	size_t end = t->next + STEP_ELEMS < t->elems ? t->next + STEP_ELEMS : t->elems;
	const double q = 3.0;

	for (size_t i = t->next; i < end; i++)
		t->a[i] = t->b[i] + q * t->c[i];
	end -= t->next;
	t->next = t->next + end < t->elems ? t->next + end : 0;
	return end * 3 * sizeof(double);
}

int main(int argc, char **argv)
{
	struct wl_timed_opts o;
	struct wl_series s;
	json_t *result;

	if (wl_parse_timed("ht-stream", argc, argv, true, &o))
		return 2;
	for (unsigned i = 0; i < o.threads; i++) {
		size_t array = o.bytes / 3 / o.threads / WL_PAGE * WL_PAGE;
		char *mem = wl_map(3 * array);

		if (!mem)
			return 1;
		/* Every page written before timing starts: no first-touch faults inside. */
		memset(mem, 0, 3 * array);
		arrays[i] = (struct triad){ .a = (double *)mem, .b = (double *)(mem + array),
					    .c = (double *)(mem + 2 * array),
					    .elems = array / sizeof(double) };
	}
	wl_series_run(&s, o.threads, o.seconds_ns, o.interval_ns, triad_step, NULL);
	result = json_pack("{s:s,s:I,s:i,s:I}", "workload", "ht-stream", "bytes",
			   (json_int_t)o.bytes, "threads", o.threads, "seconds",
			   (json_int_t)(o.seconds_ns / 1000000000ull));
	wl_series_json(&s, result);
	json_println(stdout, result);
	wl_series_free(&s);
	return 0;
}
