/* The tracing overhead of `hatrace inflate`, measured in the run itself. Per
 * technique, --paired VMs run the phases in PAIRED_ROUNDS rounds, with the
 * timed iterations' probes (QEMU's USDT, the guest trace) on and off in ABBA
 * order: traced, untraced, untraced, traced (every other VM the mirror). Each
 * adjacent pair of rounds compares one phase in one VM a few seconds apart, so
 * the ±30 % that a phase swings between VMs on a shared machine cancels, and
 * the ABBA order cancels a linear drift within the VM. The per-syscall and
 * per-fault host probes run in one more iteration, the breakdown iteration,
 * first and outside the medians. */
#include "stats.h"
#include "technique.h"

#include <stdio.h>

const char *const iter_kind_names[] = {
	[IT_TIMED] = "timed", [IT_PAIRED] = "paired", [IT_BREAKDOWN] = "breakdown",
};

bool paired_round_traced(unsigned vm, unsigned k)
{
	bool abba = k == 0 || k == PAIRED_ROUNDS - 1;

	return vm % 2 ? !abba : abba;
}

/* Step by step: the breakdown iteration, then pairs j = 0, 1, ... of paired
 * VM j and timed iteration j, in alternating order (paired first in even
 * pairs, timed first in odd ones), so that a drift in load shifts neither. */
bool iteration_schedule(const struct opts *o, unsigned step, enum iter_kind *kind,
			unsigned *index)
{
	bool extra = !o->workload && !o->cycles; /* the inflate phases only */
	unsigned np = extra ? o->paired : 0, pairs = o->iterations > np ? o->iterations : np;

	if (extra && step-- == 0) {
		*kind = IT_BREAKDOWN;
		*index = 0;
		return true;
	}
	for (unsigned j = 0; j < pairs; j++) {
		enum iter_kind order[2] = { IT_PAIRED, IT_TIMED };

		if (j % 2)
			order[0] = IT_TIMED, order[1] = IT_PAIRED;
		for (int k = 0; k < 2; k++) {
			if (j >= (order[k] == IT_TIMED ? o->iterations : np) || step-- != 0)
				continue;
			*kind = order[k];
			*index = j;
			return true;
		}
	}
	return false;
}

/* The guest's probe time in phase p, estimated: per timed iteration, the
 * traced function calls it counted times what one probed call cost in that
 * VM (the agent's calibration); medians over the iterations, and their share
 * of the untraced rounds' median. A bound the paired rounds can be checked
 * against; it leaves out QEMU's USDT probes (native, per request). */
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

/* Ratios are kept to 1e-9 in the median's integer order statistics. */
#define RATIO_SCALE 1e9

void overhead_summary(json_t *summary, const struct tech_results *res, const struct opts *o)
{
	for (; res->t; res++) {
		json_t *tj = json_object_get(summary, res->t->name);
		unsigned nr = res->npaired * PAIRED_ROUNDS;

		for (int p = 0; p < PH_MAX && nr; p++) {
			json_t *pj = json_object_get(tj, phase_names[p]);
			json_t *ts = json_array(), *us = json_array(), *pairs = json_array(), *ov;
			uint64_t tv[nr], uv[nr], ratio[nr];
			unsigned nt = 0, nu = 0, np = 0;
			struct median_ci c;

			for (unsigned i = 0; i < nr; i++) {
				const struct iteration *it = &res->paired[i];
				const struct phase_result *a = &it->ph[p], *b = i % 2 ? &it[-1].ph[p] : a;

				if (!a->done)
					continue;
				json_array_append_new(it->traced ? ts : us, json_integer(a->wall_ns));
				*(it->traced ? &tv[nt++] : &uv[nu++]) = a->wall_ns;
				/* adjacent rounds 1-2, 3-4: one traced, one untraced */
				if (i % 2 == 0 || !b->done || !a->wall_ns || !b->wall_ns)
					continue;
				if (!it->traced) {
					const struct phase_result *swap = a;

					a = b;
					b = swap;
				}
				ratio[np] = (uint64_t)(RATIO_SCALE * a->wall_ns / b->wall_ns + 0.5);
				json_array_append_new(pairs,
						      json_real(100 * (ratio[np] / RATIO_SCALE - 1)));
				np++;
			}
			if (!pj || !np || median_ci95(ratio, np, &c)) {
				json_decref(ts);
				json_decref(us);
				json_decref(pairs);
				continue;
			}
			ov = json_pack("{s:o, s:o, s:f, s:f, s:o, s:f, s:[f,f], s:f}",
				       "traced_samples_ns", ts, "untraced_samples_ns", us,
				       "traced_median_s", median_u64(tv, nt) / 1e9,
				       "untraced_median_s", median_u64(uv, nu) / 1e9,
				       "pair_overhead_pct", pairs,
				       "overhead_pct", 100 * (c.median / RATIO_SCALE - 1),
				       "overhead_interval_pct", 100 * (c.lo / RATIO_SCALE - 1),
				       100 * (c.hi / RATIO_SCALE - 1),
				       "overhead_interval_coverage", c.coverage);
			json_object_set_new(ov, "guest_probe_estimate",
					    probe_estimate(res, o, p, median_u64(uv, nu)));
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
				fprintf(f, "\ntracing overhead: per paired VM, rounds with the timed "
				       "iterations' probes on and with every probe off, in ABBA order;\n"
				       "overhead: the median of the adjacent rounds' traced/untraced "
				       "ratios (n pairs), with its interval and that interval's coverage\n"
				       "probes est.: the guest's traced calls in the phase times one "
				       "probed call's cost, measured in the VM (the agent's calibration)\n"
				       "%-19s %-17s %11s %11s %3s %9s %22s %12s\n", "technique",
				       "phase", "untraced s", "traced s", "n", "overhead",
				       "interval", "probes est.");
			header = true;
			snprintf(ivs, sizeof(ivs), "[%+.0f, %+.0f]%% %3.0f%%",
				 json_real_value(json_array_get(iv, 0)),
				 json_real_value(json_array_get(iv, 1)),
				 100 * json_real_value(json_object_get(
					       ov, "overhead_interval_coverage")));
			est = json_object_get(json_object_get(ov, "guest_probe_estimate"),
					      "pct_of_untraced");
			if (json_is_number(est))
				snprintf(ests, sizeof(ests), "%.2f%%", json_number_value(est));
			else
				snprintf(ests, sizeof(ests), "n/a");
			fprintf(f, "%-19s %-17s %11.3f %11.3f %3zu %8.1f%% %22s %12s\n", tech, phase,
				json_real_value(json_object_get(ov, "untraced_median_s")),
				json_real_value(json_object_get(ov, "traced_median_s")),
				json_array_size(json_object_get(ov, "pair_overhead_pct")), p, ivs, ests);
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
