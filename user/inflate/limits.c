/* The physical limits of one inflate run, measured by hatrace itself on the
 * host before the first VM boots: MADV_DONTNEED (the floor of any shrink)
 * and MADV_POPULATE_WRITE (the floor of any install) over the shrink's bytes,
 * in a scratch mapping backed like QEMU's guest RAM. QEMU 7.2 maps guest RAM
 * anonymous and private, 2 MiB aligned, and advises MADV_HUGEPAGE on every
 * RAM block (ram_block_add), so THP backs it unless the host's mode is
 * "never"; the scratch mapping does the same. Each technique's shrink and
 * install are then shown as a multiple of these limits. */
#include "common.h"
#include "stats.h"
#include "technique.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LIMITS_REPEATS 5
#define RAM_ALIGN (2 * MiB) /* QEMU_VMALLOC_ALIGN on x86-64 */
#define BACKING "anonymous private, 2 MiB aligned, MADV_HUGEPAGE: as QEMU maps guest RAM"

void host_thp_mode(char *buf, size_t len)
{
	char line[256];
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char *a, *b;

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f) && (a = strchr(line, '[')) && (b = strchr(a, ']')))
		snprintf(buf, len, "%.*s", (int)(b - a - 1), a + 1);
	fclose(f);
}

/* This process's anonymous memory backed by THP. */
static uint64_t anon_huge_bytes(void)
{
	static const char *const key[] = { "AnonHugePages" };
	uint64_t v;

	return proc_fields("/proc/self/smaps_rollup", key, &v, 1) == 1 ? v : 0;
}

/* A mapping of len bytes like QEMU's guest RAM, or NULL. */
static void *map_like_guest_ram(size_t len)
{
	size_t total = len + RAM_ALIGN;
	char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *start, *end;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)p + RAM_ALIGN - 1) & ~(uintptr_t)(RAM_ALIGN - 1));
	end = start + len;
	/* one VMA: the slack around the aligned range goes */
	if (start > p)
		munmap(p, start - p);
	if (p + total > end)
		munmap(end, p + total - end);
	if (madvise(start, len, MADV_HUGEPAGE) && errno != EINVAL) {
		munmap(start, len);
		return NULL;
	}
	return start;
}

static int timed_madvise(void *p, size_t len, int advice, uint64_t *ns)
{
	uint64_t t0 = now_ns();

	if (madvise(p, len, advice))
		return -errno;
	*ns = now_ns() - t0;
	return 0;
}

static json_t *samples_json(const uint64_t *v, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)v[i]));
	return a;
}

static double median_s(const uint64_t *v, unsigned n)
{
	struct median_ci ci;

	return median_ci95(v, n, &ci) ? 0 : ci.median / 1e9;
}

/* The keys of limits that a failed measurement leaves null. */
static const char *const measured_keys[] = { "dontneed_s", "populate_write_s",
					     "dontneed_samples_ns", "populate_write_samples_ns" };

json_t *limits_measure(const struct opts *o)
{
	uint64_t bytes = o->mem - o->shrink_to, huge0 = anon_huge_bytes(), huge = 0;
	uint64_t dontneed[LIMITS_REPEATS], populate[LIMITS_REPEATS];
	char thp[32], why[160] = "";
	unsigned n = 0;
	char *p = map_like_guest_ram(bytes);
	json_t *l;

	host_thp_mode(thp, sizeof(thp));
	if (!p)
		snprintf(why, sizeof(why), "no scratch mapping of %llu MiB: %s",
			 (unsigned long long)(bytes / MiB), strerror(errno));
	if (p) {
		/* touched, so that the first DONTNEED has something to drop */
		for (uint64_t off = 0; off < bytes; off += 4096)
			p[off] = 1;
		huge = anon_huge_bytes();
		huge = huge > huge0 ? huge - huge0 : 0;
	}
	/* each POPULATE_WRITE backs what the next DONTNEED drops */
	for (; p && n < LIMITS_REPEATS; n++) {
		const char *advice = "MADV_DONTNEED";
		int err = timed_madvise(p, bytes, MADV_DONTNEED, &dontneed[n]);

		if (!err) {
			advice = "MADV_POPULATE_WRITE (Linux 5.14+)";
			err = timed_madvise(p, bytes, MADV_POPULATE_WRITE, &populate[n]);
		}
		if (err) {
			snprintf(why, sizeof(why), "madvise %s: %s", advice, strerror(-err));
			break;
		}
	}
	if (p)
		munmap(p, bytes);
	l = json_pack("{s:I, s:s, s:s, s:I, s:i}", "bytes", (json_int_t)bytes, "backing", BACKING,
		      "thp", thp, "thp_backed_bytes", (json_int_t)huge, "repeats", LIMITS_REPEATS);
	if (why[0]) {
		ht_warn("physical limits not measured: %s", why);
		for (size_t k = 0; k < ARRAY_SIZE(measured_keys); k++)
			summary_set_null(l, measured_keys[k], why);
		return l;
	}
	json_object_set_new(l, "dontneed_s", json_real(median_s(dontneed, n)));
	json_object_set_new(l, "populate_write_s", json_real(median_s(populate, n)));
	json_object_set_new(l, "dontneed_samples_ns", samples_json(dontneed, n));
	json_object_set_new(l, "populate_write_samples_ns", samples_json(populate, n));
	fprintf(stderr, "physical limits over %llu MiB (THP %s, %llu MiB THP-backed), median of %u: "
		"MADV_DONTNEED %.1f ms, MADV_POPULATE_WRITE %.1f ms\n",
		(unsigned long long)(bytes / MiB), thp, (unsigned long long)(huge / MiB), n,
		median_s(dontneed, n) * 1e3, median_s(populate, n) * 1e3);
	return l;
}

/* The phases compared with a limit, and the key of the multiple. */
static const struct {
	const char *phase, *limit, *key;
} vs_limits[] = {
	{ "shrink", "dontneed_s", "vs_dontneed_limit" },
	{ "shrink_untouched", "dontneed_s", "vs_dontneed_limit" },
	{ "install", "populate_write_s", "vs_populate_write_limit" },
};

/* QEMU's own discard calls in a shrink (host breakdown medians) as a
 * multiple of the DONTNEED limit, per byte: the phase less its timing. */
static void discard_vs_limit(json_t *pj, json_t *limits)
{
	json_t *h = json_object_get(json_object_get(pj, "breakdown"), "host");
	json_t *madv = json_object_get(h, "madvise_ns"), *fall = json_object_get(h, "fallocate_ns");
	double bytes = json_number_value(json_object_get(h, "discard_bytes"));
	double limit = json_number_value(json_object_get(limits, "dontneed_s")) * 1e9 /
		       json_number_value(json_object_get(limits, "bytes"));

	if (!json_is_number(madv) || !json_is_number(fall) || !bytes || !limit)
		summary_set_null(pj, "qemu_discard_vs_dontneed_limit",
				 "no host counters, no discard or no limit (see breakdown, limits)");
	else
		json_object_set_new(pj, "qemu_discard_vs_dontneed_limit",
				    json_real((json_number_value(madv) + json_number_value(fall)) /
					      bytes / limit));
}

void limits_summary(json_t *summary, json_t *limits)
{
	double lbytes = json_number_value(json_object_get(limits, "bytes"));
	const char *tech;
	json_t *tj;

	json_object_foreach(summary, tech, tj) {
		if (json_is_number(json_object_get(json_object_get(tj, "shrink"), "median_ns")))
			discard_vs_limit(json_object_get(tj, "shrink"), limits);
		for (size_t k = 0; k < ARRAY_SIZE(vs_limits); k++) {
			json_t *pj = json_object_get(tj, vs_limits[k].phase);
			json_t *lim = json_object_get(limits, vs_limits[k].limit);
			json_t *med = json_object_get(pj, "median_ns");
			double bytes = json_number_value(json_object_get(pj, "bytes_median"));

			if (!pj)
				continue;
			if (!json_is_number(lim) || !json_number_value(lim))
				summary_set_null(pj, vs_limits[k].key, "the limit was not measured (limits)");
			else if (!json_is_number(med) || !bytes)
				summary_set_null(pj, vs_limits[k].key,
						 "the phase was not measured, or moved no memory");
			else /* per byte: install moves more than the limit's bytes */
				json_object_set_new(pj, vs_limits[k].key,
						    json_real(json_number_value(med) / bytes /
							      (json_number_value(lim) * 1e9 / lbytes)));
		}
	}
	json_object_set_new(summary, "limits", limits);
}

static const char *fmt_multiple(char *buf, size_t len, json_t *pj, const char *key)
{
	json_t *v = json_object_get(pj, key);

	if (json_is_number(v))
		snprintf(buf, len, "%.1fx", json_number_value(v));
	else
		snprintf(buf, len, "%s", v ? "n/a" : "-");
	return buf;
}

void limits_print(FILE *f, json_t *summary)
{
	json_t *l = json_object_get(summary, "limits"), *tj;
	const char *tech;

	if (!l)
		return;
	fprintf(f, "\nphysical limits (this host, before the VMs): %.0f MiB in a scratch mapping "
		"like QEMU's guest RAM (THP %s, %.0f MiB THP-backed), median of %lld:\n",
		json_number_value(json_object_get(l, "bytes")) / MiB,
		json_string_value(json_object_get(l, "thp")),
		json_number_value(json_object_get(l, "thp_backed_bytes")) / MiB,
		json_integer_value(json_object_get(l, "repeats")));
	if (!json_is_number(json_object_get(l, "dontneed_s"))) {
		fprintf(f, "  not measured: %s\n",
			json_string_value(json_object_get(json_object_get(l, "why_null"), "dontneed_s")));
		return;
	}
	fprintf(f, "  MADV_DONTNEED %.1f ms, MADV_POPULATE_WRITE %.1f ms\n",
		json_number_value(json_object_get(l, "dontneed_s")) * 1e3,
		json_number_value(json_object_get(l, "populate_write_s")) * 1e3);
	fprintf(f, "%-19s %16s %20s %19s %23s\n", "technique", "shrink/DONTNEED",
		"its discards/DONTNEED", "untouched/DONTNEED", "install/POPULATE_WRITE");
	json_object_foreach(summary, tech, tj) {
		char a[24], b[24], c[24], d[24];

		if (!json_is_object(json_object_get(tj, "shrink")))
			continue; /* limits, ratios */
		fprintf(f, "%-19s %16s %20s %19s %23s\n", tech,
			fmt_multiple(a, sizeof(a), json_object_get(tj, "shrink"), "vs_dontneed_limit"),
			fmt_multiple(d, sizeof(d), json_object_get(tj, "shrink"),
				     "qemu_discard_vs_dontneed_limit"),
			fmt_multiple(b, sizeof(b), json_object_get(tj, "shrink_untouched"),
				     "vs_dontneed_limit"),
			fmt_multiple(c, sizeof(c), json_object_get(tj, "install"),
				     "vs_populate_write_limit"));
	}
	fprintf(f, "(multiples of the limit's time per byte; its discards: QEMU's madvise and "
		"fallocate time in the shrink (breakdown);\n grow backs no host memory: the guest "
		"faults or installs it in install)\n");
}
