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
