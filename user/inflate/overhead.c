/* The tracing overhead of `hatrace inflate`, measured in the run itself. Per
 * technique, --untraced iterations run with every probe off (no host BPF, no
 * USDT, no guest trace), interleaved with the timed ones so that the load of a
 * shared machine drifts over both alike; each phase's median over the timed
 * iterations is compared with its median over the untraced ones. The
 * per-syscall and per-fault host probes run in one more iteration, the
 * breakdown iteration, first and outside the medians. */
#include "stats.h"
#include "technique.h"

#include <stdio.h>

const char *const iter_kind_names[] = {
	[IT_TIMED] = "timed", [IT_UNTRACED] = "untraced", [IT_BREAKDOWN] = "breakdown",
};

/* Step by step: the breakdown iteration, then pairs j = 0, 1, ... of untraced
 * j and timed j, in alternating order (untraced first in even pairs, timed
 * first in odd ones), so that a drift in load shifts neither side. */
bool iteration_schedule(const struct opts *o, unsigned step, enum iter_kind *kind,
			unsigned *index)
{
	bool extra = !o->workload && !o->cycles; /* the inflate phases only */
	unsigned nu = extra ? o->untraced : 0, pairs = o->iterations > nu ? o->iterations : nu;

	if (extra && step-- == 0) {
		*kind = IT_BREAKDOWN;
		*index = 0;
		return true;
	}
	for (unsigned j = 0; j < pairs; j++) {
		enum iter_kind order[2] = { IT_UNTRACED, IT_TIMED };

		if (j % 2)
			order[0] = IT_TIMED, order[1] = IT_UNTRACED;
		for (int k = 0; k < 2; k++) {
			if (j >= (order[k] == IT_TIMED ? o->iterations : nu) || step-- != 0)
				continue;
			*kind = order[k];
			*index = j;
			return true;
		}
	}
	return false;
}

/* The done samples of phase p over n iterations. */
static unsigned samples(const struct iteration *its, unsigned n, enum phase p, uint64_t *v,
			json_t *arr)
{
	unsigned m = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!its[i].ph[p].done)
			continue;
		v[m++] = its[i].ph[p].wall_ns;
		json_array_append_new(arr, json_integer(its[i].ph[p].wall_ns));
	}
	return m;
}

static double pct(double traced, double untraced)
{
	return 100.0 * (traced - untraced) / untraced;
}

/* The guest's probe time in phase p, estimated: per timed iteration, the
 * traced function calls it counted times what one probed call cost in that
 * VM (the agent's calibration); medians over the iterations, and their share
 * of the untraced median. Unlike the A/B comparison, noise on this machine
 * does not swamp it; it leaves out QEMU's USDT probes (native, per request). */
static json_t *probe_estimate(const struct tech_results *res, const struct opts *o, enum phase p,
			      double untraced_ns)
{
	/* touch2's guest events are those of install's whole run: a bound */
	enum phase gp = p == PH_TOUCH2 ? PH_INSTALL : p;
	uint64_t calls[o->iterations], cost[o->iterations], probe_ns[o->iterations];
	const char *why = NULL;
	unsigned n = 0, m = 0;
	json_t *e;

	for (unsigned i = 0; i < o->iterations; i++) {
		const struct iteration *it = &res->its[i];
		const char *name;
		uint64_t c = 0;
		json_t *ev;

		if (!it->ph[p].done)
			continue;
		if (!it->ph[gp].guest) {
			why = *it->probe_why ? it->probe_why : "no guest trace in the phase";
			break;
		}
		json_object_foreach(it->ph[gp].guest, name, ev)
			if (event_timed(ev))
				c += json_integer_value(json_object_get(ev, "count"));
		/* no traced call: no probe ran, whatever one would cost */
		if (c && (*it->probe_why || it->probe_call_ns <= 0)) {
			why = *it->probe_why ? it->probe_why : "no calibration in this VM";
			break;
		}
		if (c)
			cost[m++] = (uint64_t)(it->probe_call_ns + 0.5);
		calls[n] = c;
		probe_ns[n++] = (uint64_t)(c * it->probe_call_ns + 0.5);
	}
	if (why || !n) {
		e = json_object();
		summary_set_null(e, "probe_ns_median", why ?: "no timed iteration ran the phase");
		return e;
	}
	e = json_pack("{s:f, s:f, s:f}", "calls_median", median_u64(calls, n), "probe_ns_median",
		      median_u64(probe_ns, n), "pct_of_untraced",
		      100.0 * median_u64(probe_ns, n) / untraced_ns);
	if (m)
		json_object_set_new(e, "call_ns_median", json_real(median_u64(cost, m)));
	else
		summary_set_null(e, "call_ns_median", "no traced guest call in the phase: no probe ran");
	if (gp != p)
		json_object_set_new(e, "window", json_string("install's whole guest run, of which "
							     "touch2 is the second pass: a bound"));
	return e;
}

void overhead_summary(json_t *summary, const struct tech_results *res, const struct opts *o)
{
	for (; res->t; res++) {
		json_t *tj = json_object_get(summary, res->t->name);

		if (!res->nuntraced)
			continue;
		for (int p = 0; p < PH_MAX; p++) {
			json_t *pj = json_object_get(tj, phase_names[p]);
			json_t *ts = json_array(), *us = json_array(), *pairs = json_array(), *ov;
			uint64_t tv[o->iterations], uv[res->nuntraced];
			unsigned nt = samples(res->its, o->iterations, p, tv, ts);
			unsigned nu = samples(res->untraced, res->nuntraced, p, uv, us);
			struct median_ci t, u;
			double pv[o->iterations];
			unsigned np = 0;

			if (!pj || !nt || !nu || median_ci95(tv, nt, &t) || median_ci95(uv, nu, &u) ||
			    !u.median || !u.lo) {
				json_decref(ts);
				json_decref(us);
				json_decref(pairs);
				continue;
			}
			/* pair j: timed j and untraced j, run in adjacent steps */
			for (unsigned j = 0; j < o->iterations && j < res->nuntraced; j++) {
				const struct phase_result *a = &res->its[j].ph[p],
							  *b = &res->untraced[j].ph[p];

				if (a->done && b->done && b->wall_ns)
					pv[np++] = pct(a->wall_ns, b->wall_ns);
			}
			for (unsigned j = 0; j < np; j++)
				json_array_append_new(pairs, json_real(pv[j]));
			ov = json_pack("{s:o, s:o, s:f, s:f, s:f, s:[f,f], s:f, s:o}",
				       "traced_samples_ns", ts, "untraced_samples_ns", us,
				       "traced_median_s", t.median / 1e9,
				       "untraced_median_s", u.median / 1e9,
				       "overhead_pct", pct(t.median, u.median),
				       /* the two medians' intervals at their far ends */
				       "overhead_interval_pct", pct(t.lo, u.hi), pct(t.hi, u.lo),
				       "overhead_interval_coverage_min",
				       t.coverage + u.coverage > 1 ? t.coverage + u.coverage - 1 : 0.0,
				       "paired_overhead_pct", pairs);
			json_object_set_new(ov, "guest_probe_estimate",
					    probe_estimate(res, o, p, u.median));
			json_object_set_new(pj, "tracing_overhead", ov);
		}
	}
}

void overhead_print(FILE *f, json_t *summary)
{
	const char *tech, *phase;
	json_t *tj, *pj;
	bool header = false;
	double worst = 0, worst_est = 0;

	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *ov = json_object_get(pj, "tracing_overhead");
			json_t *iv = json_object_get(ov, "overhead_interval_pct");
			double p = json_real_value(json_object_get(ov, "overhead_pct"));
			char ivs[48], ests[16];
			json_t *est;

			if (!ov)
				continue;
			if (!header)
				fprintf(f, "\ntracing overhead: median of the timed iterations against "
				       "the median of the untraced ones (every probe off), run\n"
				       "interleaved; interval: the medians' intervals at their far ends, "
				       "covering at least the percentage shown\n"
				       "probes est.: the guest's traced calls in the phase times one "
				       "probed call's cost, measured in the VM (the agent's calibration)\n"
				       "%-19s %-17s %11s %3s %11s %3s %9s %22s %12s\n", "technique",
				       "phase", "untraced s", "n", "timed s", "n", "overhead",
				       "interval", "probes est.");
			header = true;
			snprintf(ivs, sizeof(ivs), "[%+.0f, %+.0f]%% %3.0f%%",
				 json_real_value(json_array_get(iv, 0)),
				 json_real_value(json_array_get(iv, 1)),
				 100 * json_real_value(json_object_get(
					       ov, "overhead_interval_coverage_min")));
			est = json_object_get(json_object_get(ov, "guest_probe_estimate"),
					      "pct_of_untraced");
			if (json_is_number(est))
				snprintf(ests, sizeof(ests), "%.2f%%", json_number_value(est));
			else
				snprintf(ests, sizeof(ests), "n/a");
			fprintf(f, "%-19s %-17s %11.3f %3zu %11.3f %3zu %8.1f%% %22s %12s\n", tech,
				phase, json_real_value(json_object_get(ov, "untraced_median_s")),
				json_array_size(json_object_get(ov, "untraced_samples_ns")),
				json_real_value(json_object_get(ov, "traced_median_s")),
				json_array_size(json_object_get(ov, "traced_samples_ns")), p, ivs, ests);
			if (p > worst)
				worst = p;
			if (json_is_number(est) && json_number_value(est) > worst_est)
				worst_est = json_number_value(est);
		}
	}
	if (header)
		fprintf(f, "largest overhead %.1f%%, largest guest probe estimate %.2f%% (target: at "
			"most 5%%; the per-syscall and per-fault host probes ran in the breakdown "
			"iteration only)\n", worst, worst_est);
}
