/* A workload with known counts, driven by lines on stdin so a tracer can attach first.
 *   fault_workload faults PAGES MADVISES  touch PAGES fresh 4 KiB pages, then MADVISES
 *                                         madvise(MADV_DONTNEED) calls; prints its own
 *                                         minor-fault delta as JSON.
 *   fault_workload rss STEP_MIB STEPS MS  grow anon RSS by STEP_MIB every MS ms, then free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Says ready and waits for a line, with raw syscalls on stack buffers, so
 * that nothing here faults in a fresh page while a tracer is attaching. */
static void wait_go(void)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "ready %d\n", getpid());

	if (write(1, buf, n) != n || read(0, buf, sizeof(buf)) <= 0)
		exit(1);
}

/* Touches the stack that the rest of the run will use, so that none of its
 * pages faults in while a tracer counts. */
static void __attribute__((noinline)) prefault_stack(void)
{
	volatile char pad[256 << 10];

	memset((char *)pad, 0, sizeof(pad));
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static int faults(long pages, long madvises)
{
	size_t len = pages * 4096;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long before;

	char out[128];
	int n;

	if (p == MAP_FAILED || madvise(p, len, MADV_NOHUGEPAGE))
		return 1;
	prefault_stack();
	minflt();
	wait_go();
	before = minflt(); /* the tracer attached while we waited; nothing faulted since */
	for (long i = 0; i < pages; i++)
		p[i * 4096] = 1;
	for (long i = 0; i < madvises; i++)
		madvise(p, len, MADV_DONTNEED);
	/* every fault from "ready" to here, then out without touching new memory */
	n = snprintf(out, sizeof(out), "{\"pages\":%ld,\"madvise\":%ld,\"minflt\":%ld}\n", pages,
		     madvises, minflt() - before);
	if (write(1, out, n) != n)
		_exit(1);
	_exit(0);
}

static int rss_steps(long step_mib, long steps, long pause_ms)
{
	size_t step = step_mib << 20;
	char *blocks[64];

	if (steps > 64)
		return 1;
	wait_go();
	for (long s = 0; s < steps; s++) {
		blocks[s] = mmap(NULL, step, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (blocks[s] == MAP_FAILED)
			return 1;
		madvise(blocks[s], step, MADV_NOHUGEPAGE);
		memset(blocks[s], 1, step);
		usleep(pause_ms * 1000);
	}
	for (long s = 0; s < steps; s++)
		munmap(blocks[s], step);
	usleep(pause_ms * 1000);
	printf("{\"steps\":%ld,\"step_bytes\":%zu}\n", steps, step);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "faults"))
		return faults(atol(argv[2]), atol(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "rss"))
		return rss_steps(atol(argv[2]), atol(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: %s faults PAGES MADVISES | rss STEP_MIB STEPS PAUSE_MS\n", argv[0]);
	return 2;
}
