/* The tracing overhead of `hatrace inflate`, measured in the run itself. Per
 * technique, --paired VMs run the phases in PAIRED_ROUNDS rounds, with the
 * timed iterations' probes (QEMU's USDT, the guest trace) on and off in ABBA
 * order: traced, untraced, untraced, traced (every other VM the mirror). Each
 * adjacent pair of rounds compares one phase in one VM a few seconds apart, so
 * the ±30 % that a phase swings between VMs on a shared machine cancels, and
 * the ABBA order cancels a linear drift within the VM. The per-syscall and
 * per-fault host probes run in one more iteration, the breakdown iteration,
 * first and outside the medians. */
#include "common.h"
#include "stats.h"
#include "technique.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * of the untraced rounds' median. With qemu_probe_estimate: the probes' own
 * time, which the paired rounds can be checked against whatever their noise
 * (not what else tracing does to a guest, such as the memory it takes). */
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

/* QEMU's USDT probes' time in phase p, estimated the same way: per timed
 * iteration, the attached probes' hits in the phase times what one hit cost
 * on this host (qemu_usdt_hit_ns, measured once in the run). */
static json_t *qemu_probe_estimate(const struct tech_results *res, const struct opts *o,
				   enum phase p, double untraced_ns)
{
	enum phase qp = p == PH_TOUCH2 ? PH_INSTALL : p;
	uint64_t hits[o->iterations];
	const char *why;
	double hit_ns = qemu_phases_hit_ns(&why);
	json_t *e = json_object(), *samples = json_array();
	unsigned n = 0;

	for (unsigned i = 0; i < o->iterations; i++)
		if (res->its[i].ph[p].done) {
			hits[n] = res->its[i].ph[qp].qemu.probe_hits;
			json_array_append_new(samples, json_integer(hits[n++]));
		}
	json_object_set_new(e, "hits_samples", samples);
	if (!n) {
		summary_set_null(e, "probe_ns_median", "no timed iteration ran the phase");
		return e;
	}
	json_object_set_new(e, "hits_median", json_real(median_u64(hits, n)));
	if (!median_u64(hits, n)) {
		/* no hit: no probe ran, whatever one would cost */
		json_object_set_new(e, "probe_ns_median", json_real(0));
		json_object_set_new(e, "pct_of_untraced", json_real(0));
	} else if (hit_ns < 0) {
		summary_set_null(e, "probe_ns_median", why);
	} else {
		json_object_set_new(e, "hit_ns", json_real(hit_ns));
		json_object_set_new(e, "probe_ns_median", json_real(median_u64(hits, n) * hit_ns));
		json_object_set_new(e, "pct_of_untraced",
				    json_real(100 * median_u64(hits, n) * hit_ns / untraced_ns));
	}
	if (qp != p)
		json_object_set_new(e, "window", json_string("install's whole run, of which "
							     "touch2 is the second pass: a bound"));
	return e;
}

/* The two estimates' sum, percent of the untraced rounds' median; null
 * unless both are known. */
static void set_probe_estimate_pct(json_t *ov)
{
	json_t *g = json_object_get(json_object_get(ov, "guest_probe_estimate"), "pct_of_untraced");
	json_t *q = json_object_get(json_object_get(ov, "qemu_probe_estimate"), "pct_of_untraced");

	if (json_is_number(g) && json_is_number(q))
		json_object_set_new(ov, "probe_estimate_pct",
				    json_real(json_number_value(g) + json_number_value(q)));
	else
		summary_set_null(ov, "probe_estimate_pct",
				 "the guest's or QEMU's probe estimate is unknown (see them)");
}

/* Ratios are kept to 1e-9 in the median's integer order statistics. */
#define RATIO_SCALE 1e9
/* The most the timed iterations' probes may add to a phase, percent. */
#define OVERHEAD_TARGET_PCT 5.0

/* Every phase's comparisons of one run, pooled: their ratios (RATIO_SCALE),
 * and how many moved by more than the target either way. */
struct pooled {
	uint64_t *pair, *same;
	unsigned npair, nsame, pair_beyond, same_beyond, phases;
};

static void pool_add(uint64_t *v, unsigned *n, unsigned *beyond, uint64_t ratio)
{
	if (!v)
		return; /* out of memory: no pooled figure */
	v[(*n)++] = ratio;
	*beyond += fabs(100 * (ratio / RATIO_SCALE - 1)) > OVERHEAD_TARGET_PCT;
}

/* The same phase in a paired VM's two rounds with the same probes (ABBA: the
 * middle two, the outer two), 100 (later / earlier - 1) each: how much the
 * phase moves with no change of probes, the comparison's noise; each also
 * goes into the run's pool. */
static json_t *same_condition_pct(const struct tech_results *res, enum phase p, double *noise,
				  struct pooled *pl)
{
	static const unsigned same[][2] = { { 1, 2 }, { 0, PAIRED_ROUNDS - 1 } };
	uint64_t dev[res->npaired * ARRAY_SIZE(same) + 1];
	json_t *a = json_array();
	unsigned n = 0;

	for (unsigned vm = 0; vm < res->npaired; vm++)
		for (size_t j = 0; j < ARRAY_SIZE(same); j++) {
			const struct iteration *r = &res->paired[vm * PAIRED_ROUNDS];
			const struct phase_result *e = &r[same[j][0]].ph[p], *l = &r[same[j][1]].ph[p];
			double pct;

			if (!e->done || !l->done || !e->wall_ns || !l->wall_ns)
				continue;
			pct = 100.0 * ((double)l->wall_ns / e->wall_ns - 1);
			json_array_append_new(a, json_real(pct));
			pool_add(pl->same, &pl->nsame, &pl->same_beyond,
				 (uint64_t)(RATIO_SCALE * l->wall_ns / e->wall_ns + 0.5));
			dev[n++] = (uint64_t)(fabs(pct) * RATIO_SCALE / 100 + 0.5);
		}
	*noise = n ? 100 * median_u64(dev, n) / RATIO_SCALE : NAN;
	return a;
}

/* Traced within the target of untraced (either way) only if the whole
 * interval is; outside it only if the whole interval is; else the comparison
 * cannot tell, at its noise. */
static const char *verdict(double lo_pct, double hi_pct)
{
	if (lo_pct >= -OVERHEAD_TARGET_PCT && hi_pct <= OVERHEAD_TARGET_PCT)
		return "within_target";
	if (lo_pct > OVERHEAD_TARGET_PCT || hi_pct < -OVERHEAD_TARGET_PCT)
		return "outside_target";
	return "unresolved";
}

/* summary.json "tracing_overhead_pooled": one comparison over every phase and
 * technique of the run. The phases' overheads need not be alike, so it does
 * not stand for any one of them; it says whether tracing shifts the run as a
 * whole, and, from the rounds with the same probes, how often this host moves
 * a phase by more than the target with nothing changed: the resolution the
 * per-phase verdicts have here. */
static json_t *pooled_summary(const struct pooled *pl)
{
	struct median_ci c, s;
	double lo, hi;
	json_t *j;

	if (!pl->same || !pl->npair || median_ci95(pl->pair, pl->npair, &c))
		return NULL;
	lo = 100 * (c.lo / RATIO_SCALE - 1);
	hi = 100 * (c.hi / RATIO_SCALE - 1);
	j = json_pack("{s:i, s:i, s:f, s:[f,f], s:f, s:f, s:s, s:f}", "phases", pl->phases,
		      "pairs", pl->npair, "overhead_pct", 100 * (c.median / RATIO_SCALE - 1),
		      "overhead_interval_pct", lo, hi, "overhead_interval_coverage", c.coverage,
		      "target_pct", OVERHEAD_TARGET_PCT, "verdict", verdict(lo, hi),
		      "pairs_beyond_target_pct", 100.0 * pl->pair_beyond / pl->npair);
	json_object_set_new(j, "same_condition_comparisons", json_integer(pl->nsame));
	if (median_ci95(pl->same, pl->nsame, &s)) {
		summary_set_null(j, "same_condition_pct", "no paired VM ran a phase twice with "
				 "the same probes");
		summary_set_null(j, "same_condition_beyond_target_pct", "no paired VM ran a "
				 "phase twice with the same probes");
	} else {
		json_object_set_new(j, "same_condition_pct",
				    json_real(100 * (s.median / RATIO_SCALE - 1)));
		json_object_set_new(j, "same_condition_beyond_target_pct",
				    json_real(100.0 * pl->same_beyond / pl->nsame));
	}
	return j;
}

void overhead_summary(json_t *summary, const struct tech_results *res, const struct opts *o)
{
	size_t cap = 0;
	struct pooled pl = { 0 };
	json_t *pooled_j;

	for (const struct tech_results *t = res; t->t; t++)
		cap += (size_t)t->npaired * PAIRED_ROUNDS * PH_MAX;
	pl.pair = calloc(cap + 1, sizeof(*pl.pair));
	pl.same = calloc(cap + 1, sizeof(*pl.same));
	for (; res->t; res++) {
		json_t *tj = json_object_get(summary, res->t->name);
		unsigned nr = res->npaired * PAIRED_ROUNDS;

		for (int p = 0; p < PH_MAX && nr; p++) {
			json_t *pj = json_object_get(tj, phase_names[p]);
			json_t *ts = json_array(), *us = json_array(), *pairs = json_array(), *ov;
			uint64_t tv[nr], uv[nr], ratio[nr];
			unsigned nt = 0, nu = 0, np = 0;
			double lo, hi, noise;
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
			lo = 100 * (c.lo / RATIO_SCALE - 1);
			hi = 100 * (c.hi / RATIO_SCALE - 1);
			ov = json_pack("{s:o, s:o, s:f, s:f, s:o, s:f, s:[f,f], s:f, s:o, s:f, s:s}",
				       "traced_samples_ns", ts, "untraced_samples_ns", us,
				       "traced_median_s", median_u64(tv, nt) / 1e9,
				       "untraced_median_s", median_u64(uv, nu) / 1e9,
				       "pair_overhead_pct", pairs,
				       "overhead_pct", 100 * (c.median / RATIO_SCALE - 1),
				       "overhead_interval_pct", lo, hi,
				       "overhead_interval_coverage", c.coverage,
				       "same_condition_pct", same_condition_pct(res, p, &noise, &pl),
				       "target_pct", OVERHEAD_TARGET_PCT, "verdict", verdict(lo, hi));
			if (isnan(noise))
				summary_set_null(ov, "noise_pct", "no paired VM ran the phase twice "
					       "with the same probes");
			else
				json_object_set_new(ov, "noise_pct", json_real(noise));
			pl.phases++;
			for (unsigned j = 0; j < np; j++)
				pool_add(pl.pair, &pl.npair, &pl.pair_beyond, ratio[j]);
			json_object_set_new(ov, "guest_probe_estimate",
					    probe_estimate(res, o, p, median_u64(uv, nu)));
			json_object_set_new(ov, "qemu_probe_estimate",
					    qemu_probe_estimate(res, o, p, median_u64(uv, nu)));
			set_probe_estimate_pct(ov);
			json_object_set_new(pj, "tracing_overhead", ov);
		}
	}
	if ((pooled_j = pooled_summary(&pl)))
		json_object_set_new(summary, "tracing_overhead_pooled", pooled_j);
	free(pl.pair);
	free(pl.same);
}

static void pooled_print(FILE *f, json_t *pl)
{
	json_t *iv = json_object_get(pl, "overhead_interval_pct");
	double same = json_number_or_nan(json_object_get(pl, "same_condition_beyond_target_pct"));

	if (!pl)
		return; /* no paired VM */
	fprintf(f, "pooled over %lld phases: overhead %+.1f%% [%+.1f, %+.1f]%% %.0f%% (%lld pairs, "
		"%s); %.0f%% of the pairs moved more than %.0f%%",
		json_integer_value(json_object_get(pl, "phases")),
		json_real_value(json_object_get(pl, "overhead_pct")),
		json_real_value(json_array_get(iv, 0)), json_real_value(json_array_get(iv, 1)),
		100 * json_real_value(json_object_get(pl, "overhead_interval_coverage")),
		json_integer_value(json_object_get(pl, "pairs")),
		json_string_value(json_object_get(pl, "verdict")),
		json_real_value(json_object_get(pl, "pairs_beyond_target_pct")), OVERHEAD_TARGET_PCT);
	if (isnan(same))
		fprintf(f, "\n");
	else
		fprintf(f, ", and %.0f%% of %lld comparisons of rounds with the same probes did "
			"(this host's resolution)\n", same,
			json_integer_value(json_object_get(pl, "same_condition_comparisons")));
}

void overhead_print(FILE *f, json_t *summary)
{
	const char *tech, *phase;
	json_t *tj, *pj;
	bool header = false;
	double worst = 0, worst_est = 0;
	unsigned counts[3] = { 0 };
	static const char *const verdicts[] = { "within_target", "outside_target", "unresolved" };

	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *ov = json_object_get(pj, "tracing_overhead");
			json_t *iv = json_object_get(ov, "overhead_interval_pct");
			double p = json_real_value(json_object_get(ov, "overhead_pct"));
			double noise = json_number_or_nan(json_object_get(ov, "noise_pct"));
			double est = json_number_or_nan(json_object_get(ov, "probe_estimate_pct"));
			const char *v = json_string_value(json_object_get(ov, "verdict")) ?: "?";
			char ivs[48], ests[16], noises[16];

			if (!ov)
				continue;
			if (!header)
				fprintf(f, "\ntracing overhead: per paired VM, rounds with the timed "
				       "iterations' probes on and with every probe off, in ABBA order;\n"
				       "overhead: the median of the adjacent rounds' traced/untraced "
				       "ratios (n pairs), with its interval and that interval's coverage\n"
				       "noise: the median change between two rounds with the same "
				       "probes; verdict: the interval against the +-%.0f%% target\n"
				       "probes est.: the probes' own time (guest: traced calls times one "
				       "probed call's cost, the agent's calibration; QEMU: USDT hits "
				       "times one hit's cost on this host)\n"
				       "%-19s %-17s %10s %10s %3s %9s %20s %7s %8s  %s\n",
				       OVERHEAD_TARGET_PCT, "technique", "phase", "untraced s",
				       "traced s", "n", "overhead", "interval", "noise",
				       "probes", "verdict");
			header = true;
			snprintf(ivs, sizeof(ivs), "[%+.0f, %+.0f]%% %3.0f%%",
				 json_real_value(json_array_get(iv, 0)),
				 json_real_value(json_array_get(iv, 1)),
				 100 * json_real_value(json_object_get(
					       ov, "overhead_interval_coverage")));
			snprintf(ests, sizeof(ests), isnan(est) ? "n/a" : "%.2f%%", est);
			snprintf(noises, sizeof(noises), isnan(noise) ? "n/a" : "%.0f%%", noise);
			fprintf(f, "%-19s %-17s %10.3f %10.3f %3zu %8.1f%% %20s %7s %8s  %s\n", tech,
				phase, json_real_value(json_object_get(ov, "untraced_median_s")),
				json_real_value(json_object_get(ov, "traced_median_s")),
				json_array_size(json_object_get(ov, "pair_overhead_pct")), p, ivs,
				noises, ests, v);
			if (p > worst)
				worst = p;
			if (!isnan(est) && est > worst_est)
				worst_est = est;
			for (int k = 0; k < 3; k++)
				counts[k] += !strcmp(v, verdicts[k]);
		}
	}
	if (header)
		fprintf(f, "target +-%.0f%%: %u phases within, %u outside, %u unresolved at their "
			"noise; largest overhead %.1f%%, largest probe estimate %.2f%% (the "
			"per-syscall and per-fault host probes ran in the breakdown iteration only)\n",
			OVERHEAD_TARGET_PCT, counts[0], counts[1], counts[2], worst, worst_est);
	pooled_print(f, json_object_get(summary, "tracing_overhead_pooled"));
}
