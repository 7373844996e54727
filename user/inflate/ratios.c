/* The acceptance ratios of HyperAlloc's inflate (issue 10), computed from the
 * medians of one run's summary.json whenever both sides ran, each with its
 * target and the paper's figure (/work/shared/anchors.md: the headline ratios
 * of speed, else the quotient of the artifact's medians). */
#include "common.h"
#include "stats.h"
#include "technique.h"

#include <stdio.h>
#include <string.h>

/* value = numerator / denominator, each a technique's phase median; the
 * denominator "limits" is the host's MADV_DONTNEED of the same bytes. */
static const struct ratio_def {
	const char *name;
	const char *num_tech, *num_phase, *den_tech, *den_phase;
	bool at_most;
	double target;
	double paper; /* 0: none, and paper_source says why */
	const char *paper_source;
} ratio_defs[] = {
	{ "hyperalloc_shrink_vs_virtio_balloon", "virtio-balloon", "shrink", "hyperalloc",
	  "shrink", false, 50, 362,
	  "headline: HyperAlloc shrinks 362x faster than virtio-balloon (means of speed)" },
	{ "hyperalloc_shrink_vs_virtio_mem", "virtio-mem", "shrink", "hyperalloc", "shrink",
	  false, 5, 10, "headline: HyperAlloc shrinks 10x faster than virtio-mem (means of speed)" },
	{ "hyperalloc_shrink_vs_dontneed_limit", "hyperalloc", "shrink", "limits", "dontneed_s",
	  true, 2, 0, "the paper measured no MADV_DONTNEED limit" },
	{ "hyperalloc_return_vs_virtio_mem_grow", "virtio-mem", "grow", "hyperalloc", "grow",
	  false, 10, 197 / 2.3, "medians: virtio-mem return 197 ms / HyperAlloc 2.3 ms" },
	{ "hyperalloc_untouched_shrink_vs_virtio_mem", "virtio-mem", "shrink_untouched",
	  "hyperalloc", "shrink_untouched", false, 5, 474 / 4.0,
	  "medians: virtio-mem untouched shrink 474 ms / HyperAlloc 4.0 ms" },
	{ "hyperalloc_install_vs_virtio_mem", "hyperalloc", "install", "virtio-mem", "install",
	  true, 1.2, 4.81 / 4.56, "medians, install 19 GiB with 1 thread: HyperAlloc 4.81 s / "
	  "virtio-mem 4.56 s" },
	{ "balloon_huge_shrink_vs_virtio_balloon", "virtio-balloon", "shrink",
	  "virtio-balloon-huge", "shrink", false, 10, 21.00 / 0.148,
	  "medians: virtio-balloon 21.00 s / virtio-balloon-huge 148 ms" },
};

#define RSS_DROP_TARGET_PCT 90.0

/* A phase's median (ns) or the limit's (s), or -1 where it did not run. */
static double median_of(json_t *summary, const char *tech, const char *key)
{
	json_t *v;

	if (!strcmp(tech, "limits"))
		v = json_object_get(json_object_get(summary, "limits"), key);
	else
		v = json_object_get(json_object_get(json_object_get(summary, tech), key),
				    "median_ns");
	if (!json_is_number(v))
		return -1;
	return json_number_value(v) * (strcmp(tech, "limits") ? 1 : 1e9);
}

static json_t *ratio_json(double value, bool at_most, double target, const char *unit,
			  const char *what, double paper, const char *paper_source)
{
	json_t *r = json_pack("{s:f, s:s, s:f, s:s, s:b, s:s}", "value", value, "unit", unit,
			      "target", target, "comparison", at_most ? "<=" : ">=", "met",
			      at_most ? value <= target : value >= target, "what", what);

	if (paper) {
		json_object_set_new(r, "paper", json_real(paper));
		json_object_set_new(r, "paper_source", json_string(paper_source));
	} else {
		summary_set_null(r, "paper", paper_source);
		summary_set_null(r, "paper_source", paper_source);
	}
	return r;
}

void ratios_summary(json_t *summary, const struct opts *o)
{
	json_t *ratios = json_object();
	char what[160];

	for (size_t i = 0; i < ARRAY_SIZE(ratio_defs); i++) {
		const struct ratio_def *d = &ratio_defs[i];
		double num = median_of(summary, d->num_tech, d->num_phase);
		double den = median_of(summary, d->den_tech, d->den_phase);

		if (num < 0 || den <= 0)
			continue; /* a side did not run (or the limit was not measured) */
		snprintf(what, sizeof(what), "%s %s / %s %s, medians", d->num_tech, d->num_phase,
			 d->den_tech, strcmp(d->den_tech, "limits") ? d->den_phase : "MADV_DONTNEED");
		json_object_set_new(ratios, d->name,
				    ratio_json(num / den, d->at_most, d->target, "times", what,
					       d->paper, d->paper_source));
	}
	/* QEMU's RSS fall on the touched shrink (a rise counts as 0, as in the
	 * printed table), of each technique the host resizes */
	for (const struct technique **t = o->tech; *t; t++) {
		json_t *drops = json_object_get(json_object_get(json_object_get(summary, (*t)->name),
								"shrink"), "rss_drop_bytes");
		uint64_t v[json_array_size(drops) + 1];
		struct median_ci ci;
		size_t n = 0, k;
		json_t *x;
		char name[96];

		json_array_foreach(drops, k, x)
			v[n++] = json_integer_value(x) > 0 ? json_integer_value(x) : 0;
		if (!(*t)->set_size || !n || median_ci95(v, n, &ci))
			continue;
		snprintf(name, sizeof(name), "%s_rss_drop_pct", (*t)->name);
		snprintf(what, sizeof(what), "%s shrink: QEMU's RSS fall, median, percent of the "
			 "request", (*t)->name);
		json_object_set_new(ratios, name,
				    ratio_json(100 * ci.median / (o->mem - o->shrink_to), false,
					       RSS_DROP_TARGET_PCT, "percent", what, 0,
					       "the paper reports no RSS drop"));
	}
	json_object_set_new(summary, "ratios", ratios);
}

void ratios_print(FILE *f, json_t *summary)
{
	json_t *ratios = json_object_get(summary, "ratios"), *r;
	const char *name;

	if (!json_object_size(ratios))
		return;
	fprintf(f, "\nratios (medians of this run; targets of issue 10; paper: HyperAlloc, EuroSys'25, "
		"its artifact's medians)\n"
		"%-42s %10s %9s %9s  %s\n", "ratio", "value", "target", "paper", "met");
	json_object_foreach(ratios, name, r) {
		bool pct = !strcmp(json_string_value(json_object_get(r, "unit")), "percent");
		json_t *paper = json_object_get(r, "paper");
		char value[24], target[24], paper_s[24];

		snprintf(value, sizeof(value), pct ? "%.1f%%" : "%.2fx",
			 json_number_value(json_object_get(r, "value")));
		snprintf(target, sizeof(target), pct ? "%s%.0f%%" : "%s%gx",
			 json_string_value(json_object_get(r, "comparison")),
			 json_number_value(json_object_get(r, "target")));
		if (json_is_number(paper))
			snprintf(paper_s, sizeof(paper_s), "%.3gx", json_number_value(paper));
		else
			snprintf(paper_s, sizeof(paper_s), "-");
		fprintf(f, "%-42s %10s %9s %9s  %s\n", name, value, target, paper_s,
			json_is_true(json_object_get(r, "met")) ? "yes" : "NO");
	}
}
