#include "wl.h"
#include "common.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>

struct share {
	pthread_t thread;
	char *base;
	size_t first, count;
	wl_fn fn;
	void *arg;
	pthread_barrier_t *start;
};

static void *share_main(void *p)
{
	struct share *s = p;

	pthread_barrier_wait(s->start);
	s->fn(s->base, s->first, s->count, s->arg);
	return NULL;
}

struct wl_span wl_parallel(char *base, size_t npages, unsigned nthreads, wl_fn fn, void *arg)
{
	struct share shares[WL_MAX_THREADS];
	pthread_barrier_t start;
	size_t per = npages / nthreads, extra = npages % nthreads, next = 0;
	struct wl_span span;
	unsigned i;

	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (i = 0; i < nthreads; i++) {
		shares[i] = (struct share){ .base = base, .first = next,
					    .count = per + (i < extra), .fn = fn, .arg = arg,
					    .start = &start };
		next += shares[i].count;
		if (pthread_create(&shares[i].thread, NULL, share_main, &shares[i])) {
			ht_err("cannot create thread %u", i);
			exit(1);
		}
	}
	span.start_ns = now_ns();
	pthread_barrier_wait(&start);
	for (i = 0; i < nthreads; i++)
		pthread_join(shares[i].thread, NULL);
	pthread_barrier_destroy(&start);
	span.ns = now_ns() - span.start_ns;
	return span;
}

char *wl_map(uint64_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		ht_err("cannot map %llu bytes: %s", (unsigned long long)bytes, strerror(errno));
		return NULL;
	}
	/* EINVAL: a kernel without THP, where every page is 4 KiB anyway */
	if (madvise(p, bytes, MADV_NOHUGEPAGE) && errno != EINVAL) {
		ht_err("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
		munmap(p, bytes);
		return NULL;
	}
	return p;
}

int wl_parse_bytes_threads(const char *prog, int argc, char **argv, uint64_t *bytes,
			   unsigned *threads)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{},
	};
	uint64_t v;
	int c;

	*bytes = 0;
	*threads = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "b:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_size("--bytes", optarg, bytes))
				return -1;
			break;
		case 't':
			if (parse_u64("--threads", optarg, 1, WL_MAX_THREADS, &v))
				return -1;
			*threads = v;
			break;
		default:
			fprintf(stderr, "usage: %s --bytes N [--threads T]\n", prog);
			return -1;
		}
	}
	if (optind < argc) {
		ht_err("%s: unexpected argument '%s'", prog, argv[optind]);
		return -1;
	}
	if (*bytes < WL_PAGE || *bytes % WL_PAGE) {
		ht_err("%s: --bytes must be a positive multiple of 4096", prog);
		return -1;
	}
	return 0;
}

struct series_thread {
	pthread_t thread;
	unsigned index;
	struct wl_series *s;
	uint64_t end_ns;
	wl_step_fn step;
	void *arg;
	pthread_barrier_t *start;
};

static void *series_main(void *p)
{
	struct series_thread *t = p;
	struct wl_series *s = t->s;
	uint64_t *row = s->amount + (size_t)t->index * s->intervals;

	pthread_barrier_wait(t->start);
	for (;;) {
		uint64_t amount = t->step(t->index, t->arg), now = now_ns();

		if (now >= t->end_ns)
			break;
		row[(now - s->start_ns) / s->interval_ns] += amount;
	}
	return NULL;
}

void wl_series_run(struct wl_series *s, unsigned threads, uint64_t seconds_ns,
		   uint64_t interval_ns, wl_step_fn step, void *arg)
{
	struct series_thread ts[WL_MAX_THREADS];
	pthread_barrier_t start;
	unsigned i;

	*s = (struct wl_series){ .interval_ns = interval_ns, .threads = threads,
				 .intervals = (seconds_ns + interval_ns - 1) / interval_ns };
	s->amount = calloc((size_t)threads * s->intervals, sizeof(*s->amount));
	if (!s->amount) {
		ht_err("out of memory for %u x %u samples", threads, s->intervals);
		exit(1);
	}
	pthread_barrier_init(&start, NULL, threads + 1);
	for (i = 0; i < threads; i++) {
		ts[i] = (struct series_thread){ .index = i, .s = s, .step = step, .arg = arg,
						.start = &start };
		if (pthread_create(&ts[i].thread, NULL, series_main, &ts[i])) {
			ht_err("cannot create thread %u", i);
			exit(1);
		}
	}
	s->start_ns = now_ns();
	for (i = 0; i < threads; i++)
		ts[i].end_ns = s->start_ns + seconds_ns;
	pthread_barrier_wait(&start);
	for (i = 0; i < threads; i++)
		pthread_join(ts[i].thread, NULL);
	pthread_barrier_destroy(&start);
}

void wl_series_json(const struct wl_series *s, json_t *result)
{
	json_t *series = json_array();

	for (unsigned t = 0; t < s->threads; t++) {
		json_t *row = json_array();

		for (unsigned k = 0; k < s->intervals; k++)
			json_array_append_new(row, json_integer(s->amount[(size_t)t * s->intervals + k]));
		json_array_append_new(series, row);
	}
	json_object_set_new(result, "start_ns", json_integer(s->start_ns));
	json_object_set_new(result, "interval_ns", json_integer(s->interval_ns));
	json_object_set_new(result, "series", series);
}

void wl_series_free(struct wl_series *s)
{
	free(s->amount);
	s->amount = NULL;
}

int wl_parse_timed(const char *prog, int argc, char **argv, bool want_bytes,
		   struct wl_timed_opts *o)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{},
	};
	uint64_t v;
	int c;

	*o = (struct wl_timed_opts){ .threads = 1, .seconds_ns = 10 * 1000000000ull,
				     .interval_ns = 100 * 1000000ull };
	optind = 1;
	while ((c = getopt_long(argc, argv, "b:t:s:i:", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!want_bytes) {
				ht_err("%s: no --bytes option", prog);
				return -1;
			}
			if (parse_size("--bytes", optarg, &o->bytes))
				return -1;
			break;
		case 't':
			if (parse_u64("--threads", optarg, 1, WL_MAX_THREADS, &v))
				return -1;
			o->threads = v;
			break;
		case 's':
			if (parse_u64("--seconds", optarg, 1, 3600, &v))
				return -1;
			o->seconds_ns = v * 1000000000ull;
			break;
		case 'i':
			if (parse_u64("--interval-ms", optarg, 1, 10000, &v))
				return -1;
			o->interval_ns = v * 1000000ull;
			break;
		default:
			fprintf(stderr, "usage: %s %s[--threads T] [--seconds S] [--interval-ms M]\n",
				prog, want_bytes ? "--bytes N " : "");
			return -1;
		}
	}
	if (optind < argc) {
		ht_err("%s: unexpected argument '%s'", prog, argv[optind]);
		return -1;
	}
	if (o->seconds_ns / o->interval_ns > 100000) {
		ht_err("%s: more than 100000 intervals; raise --interval-ms", prog);
		return -1;
	}
	if (want_bytes && (o->bytes < 3 * WL_PAGE * o->threads)) {
		ht_err("%s: --bytes must be at least 3 pages per thread", prog);
		return -1;
	}
	return 0;
}
