/* Allocator benchmarks, written as JSON to argv[1]:
 *   order0_get_put_ns / order9_get_put_ns: thread CPU time of one get plus
 *     one put, for 1 and 2 threads (each pinned to its own CPU), batches of
 *     gets then puts, median of 5 runs of 100 ms (CPU time, because the
 *     machine is shared: other processes' time slices are not counted);
 *   hard_reclaim_*: CPU time of the bulk hard reclaim calls (batches of
 *     LLFREE_HOST_BATCH) that take 18 GiB of free children in a 20 GiB zone
 *     (no discard syscall), median of repetitions. */
#include "zone.h"

#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define GIB_FRAMES (1ull << 18)
#define RUN_NS 100000000ull
#define REPS 21 /* medians of REPS runs: the machine is shared */

static struct zone z;

struct worker {
	unsigned core, order;
	double ns_per_pair;
	int err;
};

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum { BATCH = 32 };
	uint64_t pfns[BATCH], pairs = 0, start = clock_ns(CLOCK_MONOTONIC);
	uint64_t cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	unsigned core = w->core, order = w->order;
	struct llfree_alloc a;
	int err = 0;

	do {
		for (unsigned rep = 0; rep < 64; rep++) {
			for (unsigned i = 0; i < BATCH; i++) {
				err |= llfree_get(&z.ll, core, order, 0, &a);
				pfns[i] = a.pfn;
			}
			for (unsigned i = 0; i < BATCH; i++)
				err |= llfree_put(&z.ll, core, pfns[i], order);
		}
		pairs += 64 * BATCH;
	} while (clock_ns(CLOCK_MONOTONIC) - start < RUN_NS);
	/* Written once: the workers' structs share a cache line. */
	w->ns_per_pair = (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start) / (double)pairs;
	w->err = err;
	return NULL;
}

/* Mean per-thread ns of one get + put at `order` with `threads` threads. */
static double get_put_once(unsigned order, unsigned threads)
{
	struct worker w[2];
	pthread_t t[2];
	double sum = 0;

	zone_init(&z, 2, 0, 4 * GIB_FRAMES, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < threads; i++) {
		pthread_attr_t attr;
		cpu_set_t cpus;

		CPU_ZERO(&cpus);
		CPU_SET(i % (unsigned)sysconf(_SC_NPROCESSORS_ONLN), &cpus);
		pthread_attr_init(&attr);
		pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus); /* one thread per CPU */
		w[i] = (struct worker){ .core = i, .order = order };
		pthread_create(&t[i], &attr, worker_main, &w[i]);
		pthread_attr_destroy(&attr);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		if (w[i].err) {
			fprintf(stderr, "bench: get/put failed at order %u\n", order);
			exit(1);
		}
		sum += w[i].ns_per_pair;
	}
	zone_free(&z);
	return sum / threads;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double get_put_ns(unsigned order, unsigned threads)
{
	double ns[5];

	for (unsigned rep = 0; rep < 5; rep++)
		ns[rep] = get_put_once(order, threads);
	qsort(ns, 5, sizeof(ns[0]), cmp_double);
	return ns[2];
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* CPU ns to hard-reclaim 18 GiB of a free 20 GiB zone; median of REPS. */
static uint64_t hard_reclaim_ns(void)
{
	static struct llfree_range ranges[4096];
	uint64_t want = 18 * GIB_FRAMES / LLFREE_CHILD_FRAMES, ns[REPS], got;
	size_t nranges;

	for (unsigned rep = 0; rep < REPS; rep++) {
		uint64_t start;
		int err;

		uint64_t total = 0, n = 0;

		zone_init(&z, 1, 0, 20 * GIB_FRAMES, LLFREE_INIT_FREE);
		start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		do { /* batches of LLFREE_HOST_BATCH; each a single range here */
			err = llfree_host_reclaim_bulk(&z.host, true, want - total, ranges, 4096,
						       &nranges, &n);
			got = nranges == 1 ? ranges[0].count : 0;
			total += n;
		} while (!err && n && got == n && total < want);
		ns[rep] = clock_ns(CLOCK_THREAD_CPUTIME_ID) - start;
		if (err || total != want || got != n) {
			fprintf(stderr, "bench: reclaim got %lu of %lu (%d)\n", total, want, err);
			exit(1);
		}
		zone_free(&z);
	}
	qsort(ns, REPS, sizeof(ns[0]), cmp_u64);
	return ns[REPS / 2];
}

int main(int argc, char **argv)
{
	json_t *doc;
	uint64_t reclaim_ns;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT.json\n", argv[0]);
		return 2;
	}
	reclaim_ns = hard_reclaim_ns();
	doc = json_pack("{s:{s:f,s:f},s:{s:f,s:f},s:f,s:I}", "order0_get_put_ns", "1",
			get_put_ns(0, 1), "2", get_put_ns(0, 2), "order9_get_put_ns", "1",
			get_put_ns(9, 1), "2", get_put_ns(9, 2), "hard_reclaim_gib_per_s",
			18.0 / ((double)reclaim_ns / 1e9), "hard_reclaim_18gib_cpu_ns",
			(json_int_t)reclaim_ns);
	if (!doc || json_dump_file(doc, argv[1], JSON_INDENT(2)) < 0) {
		fprintf(stderr, "bench: cannot write %s\n", argv[1]);
		return 1;
	}
	json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
	return 0;
}
