/* Workloads for the tracer benchmark; each waits for a line on stdin (so a
 * tracer can attach first) and prints {"elapsed_ns":N,"cpu_ns":N}: wall time, and
 * its own CPU time (user + system, which includes the BPF programs that run in
 * its context), the steadier of the two on a shared machine.
 *   bench_workload loop ITERATIONS PAGES  touch PAGES pages, madvise(DONTNEED), repeat:
 *                                         a page-fault- and madvise-heavy loop
 *   bench_workload compute MIB ROUNDS     fill MIB of memory and sort it, ROUNDS times:
 *                                         CPU and memory work that is not a syscall loop */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static unsigned long long now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static unsigned long long cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

static int cmp_u32(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

static void loop(long iterations, long pages)
{
	size_t len = pages * 4096;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	madvise(p, len, MADV_NOHUGEPAGE);
	for (long i = 0; i < iterations; i++) {
		for (long pg = 0; pg < pages; pg++)
			p[pg * 4096] = (char)i;
		madvise(p, len, MADV_DONTNEED);
	}
}

/* Sorts MIB of pseudo-random numbers ROUNDS times in one buffer, and like a
 * real program also allocates and frees a little (1 MiB per round). */
static void compute(long mib, long rounds)
{
	size_t n = (mib << 20) / sizeof(unsigned);
	unsigned *a = malloc(n * sizeof(*a)), seed = 1;

	for (long r = 0; r < rounds; r++) {
		char *scratch = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		memset(scratch, (int)r, 1 << 20);
		for (size_t i = 0; i < n; i++)
			a[i] = seed = seed * 1103515245 + 12345;
		qsort(a, n, sizeof(*a), cmp_u32);
		munmap(scratch, 1 << 20);
	}
	free(a);
}

int main(int argc, char **argv)
{
	char line[16];
	unsigned long long t0, c0;

	if (argc != 4 || (strcmp(argv[1], "loop") && strcmp(argv[1], "compute"))) {
		fprintf(stderr, "usage: %s loop ITERATIONS PAGES | compute MIB ROUNDS\n", argv[0]);
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	t0 = now();
	c0 = cpu_ns();
	if (!strcmp(argv[1], "loop"))
		loop(atol(argv[2]), atol(argv[3]));
	else
		compute(atol(argv[2]), atol(argv[3]));
	printf("{\"elapsed_ns\":%llu,\"cpu_ns\":%llu}\n", now() - t0, cpu_ns() - c0);
	return 0;
}
