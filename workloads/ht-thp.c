/* ht-thp: transparent huge pages in 2 MiB units, counted by the workload itself.
 * Each round maps --units 2 MiB-aligned units with MADV_HUGEPAGE, writes one
 * byte of each (one order-9 allocation per unit the kernel backs with a THP),
 * reads how many it got from /proc/self/smaps_rollup (AnonHugePages). With
 * --split it writes a pattern into every 4 KiB page, forces the kernel to
 * split its THPs (debugfs split_huge_pages, mounted at /sys/kernel/debug),
 * checks every page, frees the first half of each unit (order-0 frees into
 * what was an order-9 block) and checks the other half again. Then munmap
 * frees everything.
 * usage: ht-thp --units N [--rounds R] [--split]
 * result: {"workload":"ht-thp","units","rounds","thp","split","splits","bad_pages",
 *   "ns","start_ns"}: thp: units backed by a THP, summed over the rounds (the
 *   order-9 gets and puts this workload caused without --split); splits: THPs
 *   the kernel split meanwhile (/proc/vmstat thp_split_page); bad_pages: pages
 *   whose pattern changed; start_ns on the guest CLOCK_MONOTONIC. */
#include "common.h"
#include "wl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define UNIT (2ul << 20)

/* AnonHugePages of this process, in 2 MiB units; -1 if unreadable. */
static long thp_units(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib / (long)(UNIT >> 10);
}

static uint64_t bad_pages;

/* /proc/vmstat thp_split_page, 0 if absent. */
static uint64_t thp_splits(void)
{
	FILE *f = fopen("/proc/vmstat", "r");
	unsigned long long n = 0;
	char line[128];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "thp_split_page %llu", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static uint64_t pattern(const char *page)
{
	return (uintptr_t)page * 0x9e3779b97f4a7c15ull;
}

static void check_pages(char *mem, size_t first, size_t count)
{
	for (size_t p = first; p < first + count; p++) {
		char *page = mem + p * WL_PAGE;

		bad_pages += *(uint64_t *)page != pattern(page) ||
			     *(uint64_t *)(page + WL_PAGE - 8) != ~pattern(page);
	}
}

/* Splits the THPs of [mem, mem + len) through debugfs. */
static int split_range(char *mem, size_t len)
{
	FILE *f = fopen("/sys/kernel/debug/split_huge_pages", "w");
	int err;

	if (!f) {
		ht_err("/sys/kernel/debug/split_huge_pages: %s (debugfs not mounted?)",
		       strerror(errno));
		return -1;
	}
	fprintf(f, "%d,%#lx,%#lx", (int)getpid(), (unsigned long)mem, (unsigned long)(mem + len));
	err = fclose(f);
	if (err)
		ht_err("split_huge_pages: %s", strerror(errno));
	return err ? -1 : 0;
}

/* Pattern, split, check, free half, check the rest. */
static int split_and_check(char *mem, uint64_t units)
{
	size_t pages = units * (UNIT / WL_PAGE), half = UNIT / WL_PAGE / 2;

	for (size_t p = 0; p < pages; p++) {
		char *page = mem + p * WL_PAGE;

		*(uint64_t *)page = pattern(page);
		*(uint64_t *)(page + WL_PAGE - 8) = ~pattern(page);
	}
	if (split_range(mem, units * UNIT))
		return -1;
	check_pages(mem, 0, pages);
	for (uint64_t i = 0; i < units; i++) {
		if (madvise(mem + i * UNIT, UNIT / 2, MADV_DONTNEED)) {
			ht_err("madvise(MADV_DONTNEED): %s", strerror(errno));
			return -1;
		}
		check_pages(mem + i * UNIT, half, half);
	}
	return 0;
}

/* One round: returns the units that got a THP, or -1. */
static long round_thp(uint64_t units, bool split)
{
	size_t len = units * UNIT;
	char *raw = mmap(NULL, len + UNIT, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), *mem;
	long got;

	if (raw == MAP_FAILED) {
		ht_err("cannot map %zu bytes: %s", len + UNIT, strerror(errno));
		return -1;
	}
	mem = (char *)(((uintptr_t)raw + UNIT - 1) & ~(UNIT - 1));
	if (madvise(mem, len, MADV_HUGEPAGE)) {
		ht_err("madvise(MADV_HUGEPAGE): %s (a kernel without THP?)", strerror(errno));
		munmap(raw, len + UNIT);
		return -1;
	}
	for (uint64_t i = 0; i < units; i++)
		mem[i * UNIT] = 1;
	got = thp_units();
	if (got < 0)
		ht_err("cannot read AnonHugePages from /proc/self/smaps_rollup");
	if (split && got >= 0 && split_and_check(mem, units))
		got = -1;
	munmap(raw, len + UNIT);
	return got;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "units", required_argument, NULL, 'u' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "split", no_argument, NULL, 's' },
		{ 0 },
	};
	uint64_t units = 0, rounds = 1, thp = 0, t0, splits;
	bool split = false;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'u' || c == 'r') {
			if (parse_u64(c == 'u' ? "--units" : "--rounds", optarg, 1, 1 << 20,
				      c == 'u' ? &units : &rounds))
				return 2;
		} else if (c == 's') {
			split = true;
		} else {
			ht_err("usage: ht-thp --units N [--rounds R] [--split]");
			return 2;
		}
	}
	if (!units || optind != argc) {
		ht_err("usage: ht-thp --units N [--rounds R] [--split]");
		return 2;
	}
	t0 = now_ns();
	splits = thp_splits();
	for (uint64_t r = 0; r < rounds; r++) {
		long got = round_thp(units, split);

		if (got < 0)
			return 1;
		thp += got;
	}
	splits = thp_splits() - splits;
	json_println(stdout, json_pack("{s:s,s:I,s:I,s:I,s:b,s:I,s:I,s:I,s:I}", "workload", "ht-thp",
				       "units", (json_int_t)units, "rounds", (json_int_t)rounds,
				       "thp", (json_int_t)thp, "split", split, "splits",
				       (json_int_t)splits, "bad_pages",
				       (json_int_t)bad_pages, "ns", (json_int_t)(now_ns() - t0),
				       "start_ns", (json_int_t)t0));
	return bad_pages ? 1 : 0;
}
