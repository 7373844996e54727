/* The tracing overhead of `hatrace inflate`, measured in the run itself: per
 * technique one iteration runs with every probe off (no host BPF, no USDT, no
 * guest trace) right before the timed iterations; each phase's time in it is
 * compared with the same phase of timed iteration 1, the next VM booted (one
 * sample each, so the figure carries the machine's noise), and with the
 * median of the timed iterations. */
#include "stats.h"
#include "technique.h"

#include <stdio.h>

/* The timed iteration the untraced one is compared with (1-based). */
#define TRACED_ITERATION 1

void overhead_summary(json_t *summary, const struct tech_results *res, const struct opts *o)
{
	for (; res->t; res++) {
		json_t *tj = json_object_get(summary, res->t->name);

		if (!res->has_untraced)
			continue;
		for (int p = 0; p < PH_MAX; p++) {
			const struct phase_result *u = &res->untraced.ph[p];
			const struct phase_result *t = &res->its[TRACED_ITERATION - 1].ph[p];
			json_t *pj = json_object_get(tj, phase_names[p]);

			if (!pj || !u->done || !t->done || !u->wall_ns)
				continue;
			/* and, less noisy, against the median of every timed iteration */
			uint64_t v[o->iterations];
			struct median_ci ci;
			unsigned n = 0;

			for (unsigned i = 0; i < o->iterations; i++)
				if (res->its[i].ph[p].done)
					v[n++] = res->its[i].ph[p].wall_ns;
			median_ci95(v, n, &ci);
			json_object_set_new(pj, "tracing_overhead",
					    json_pack("{s:f, s:f, s:f, s:i, s:f, s:f}", "untraced_s",
						      u->wall_ns / 1e9, "traced_s", t->wall_ns / 1e9,
						      "overhead_pct",
						      100.0 * ((double)t->wall_ns - u->wall_ns) / u->wall_ns,
						      "traced_iteration", TRACED_ITERATION,
						      "traced_median_s", ci.median / 1e9,
						      "overhead_vs_median_pct",
						      100.0 * (ci.median - u->wall_ns) / u->wall_ns));
		}
	}
}

void overhead_print(FILE *f, json_t *summary)
{
	const char *tech, *phase;
	json_t *tj, *pj;
	bool header = false;
	double worst = 0;

	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *ov = json_object_get(pj, "tracing_overhead");
			double pct = json_real_value(json_object_get(ov, "overhead_pct"));

			if (!ov)
				continue;
			if (!header)
				fprintf(f, "\ntracing overhead: an iteration with every probe off against "
				       "timed iteration %d (one sample each; noise included)\n"
				       "%-19s %-17s %12s %12s %9s %12s %9s\n", TRACED_ITERATION,
				       "technique", "phase", "untraced s", "traced s", "overhead",
				       "median s", "vs median");
			header = true;
			fprintf(f, "%-19s %-17s %12.3f %12.3f %8.1f%% %12.3f %8.1f%%\n", tech, phase,
			       json_real_value(json_object_get(ov, "untraced_s")),
			       json_real_value(json_object_get(ov, "traced_s")), pct,
			       json_real_value(json_object_get(ov, "traced_median_s")),
			       json_real_value(json_object_get(ov, "overhead_vs_median_pct")));
			if (pct > worst)
				worst = pct;
		}
	}
	if (header)
		fprintf(f, "largest overhead %.1f%% (target: at most 5%%)\n", worst);
}
