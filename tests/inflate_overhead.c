/* The tracing overhead of hatrace inflate (user/inflate/overhead.c): the
 * order of a technique's VMs, the ABBA rounds of a paired VM and the
 * summary's per-pair figures, on made-up rounds. */
#include "check.h"
#include "stats.h"
#include "technique.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct technique tech = { .name = "t" };

static void test_schedule(void)
{
	struct opts o = { .iterations = 3, .paired = 2 };
	static const char *const want[] = { "b1", "p1", "t1", "t2", "p2", "t3" };
	char got[64] = "", *end = got;
	enum iter_kind kind;
	unsigned step, i;

	for (step = 0; iteration_schedule(&o, step, &kind, &i) && step < 16; step++)
		end += sprintf(end, "%s%c%u", step ? " " : "", "tpb"[kind], i + 1);
	for (step = 0, end = got; step < 6; step++) {
		check(!strncmp(end, want[step], 2), "overhead_schedule_order",
		      "step %u: '%s', want %s", step + 1, end, want[step]);
		end += strlen(want[step]) + 1;
	}
	o.workload = "stream";
	check(iteration_schedule(&o, 0, &kind, &i) && kind == IT_TIMED &&
	      !iteration_schedule(&o, 3, &kind, &i), "overhead_schedule_workload_timed_only",
	      "a workload run has breakdown or paired VMs");
}

static void test_abba(void)
{
	bool ok = true;

	for (unsigned vm = 0; vm < 4; vm++)
		for (unsigned k = 0; k < PAIRED_ROUNDS; k++)
			ok &= paired_round_traced(vm, k) == ((vm % 2 == 0) == (k == 0 || k == 3));
	check(ok, "overhead_abba", "rounds are not traced, untraced, untraced, traced "
	      "(every other VM the mirror)");
}

/* The pooled comparison of test_summary's four phases: 15 pairs (grow 10, 0,
 * 20, 30 %; shrink the same without 20; touch 1 % x 4; install 20 % x 4), and
 * 15 comparisons of rounds with the same probes, of which grow's 4 and
 * shrink's 3 moved by 82-117 % and the rest by 0. */
static void test_pooled(json_t *summary)
{
	json_t *pl = json_object_get(summary, "tracing_overhead_pooled");
	json_t *iv = json_object_get(pl, "overhead_interval_pct");
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	/* sorted: 0 0 1 1 1 1 10 [10] 20 20 20 20 20 30 30; n = 15: [x(4), x(12)] */
	check(json_integer_value(json_object_get(pl, "phases")) == 4 &&
	      json_integer_value(json_object_get(pl, "pairs")) == 15 &&
	      fabs(json_real_value(json_object_get(pl, "overhead_pct")) - 10) < 1e-6 &&
	      fabs(json_real_value(json_array_get(iv, 0)) - 1) < 1e-6 &&
	      fabs(json_real_value(json_array_get(iv, 1)) - 20) < 1e-6 &&
	      json_real_value(json_object_get(pl, "overhead_interval_coverage")) >= 0.95 &&
	      !strcmp(json_string_value(json_object_get(pl, "verdict")) ?: "", "unresolved") &&
	      fabs(json_real_value(json_object_get(pl, "pairs_beyond_target_pct")) - 60) < 1e-6,
	      "overhead_pooled", "%s", json_dumps(pl, JSON_COMPACT));
	check(json_integer_value(json_object_get(pl, "same_condition_comparisons")) == 15 &&
	      fabs(json_real_value(json_object_get(pl, "same_condition_pct"))) < 1e-6 &&
	      fabs(json_real_value(json_object_get(pl, "same_condition_beyond_target_pct")) -
		   700.0 / 15) < 1e-6,
	      "overhead_pooled_same_condition", "%s", json_dumps(pl, JSON_COMPACT));
	f = open_memstream(&text, &len);
	overhead_print(f, summary);
	fclose(f);
	check(text && strstr(text, "pooled over 4 phases: overhead +10.0% [+1.0, +20.0]%") &&
	      strstr(text, "60% of the pairs moved more than 5%, and 47% of 15 comparisons"),
	      "overhead_pooled_printed", "%s", text ?: "");
	free(text);
}

/* Two paired VMs whose traced rounds take 1.10, 1.00 and 1.20, 1.30 of their
 * adjacent untraced round, and whose shrink is missing from one round. */
static void test_summary(void)
{
	static const double factor[] = { 1.10, 1.00, 1.20, 1.30 };
	static const uint64_t base[] = { 1000, 2000, 1500, 3000 };
	struct iteration rounds[2 * PAIRED_ROUNDS] = { 0 }, timed = { 0 };
	struct tech_results res[2] = { { .t = &tech, .its = &timed, .paired = rounds,
					 .npaired = 2 } };
	struct opts o = { .iterations = 1, .paired = 2 };
	json_t *summary = json_pack("{s:{s:{}, s:{}, s:{}, s:{}}}", "t", "grow", "shrink", "touch",
				    "install"), *ov, *pairs, *same;
	double want_pct[4];

	for (unsigned i = 0; i < 2 * PAIRED_ROUNDS; i++) {
		unsigned vm = i / PAIRED_ROUNDS, k = i % PAIRED_ROUNDS, pair = i / 2;
		struct phase_result *g = &rounds[i].ph[PH_GROW];

		rounds[i].round = k + 1;
		rounds[i].traced = paired_round_traced(vm, k);
		g->done = true;
		g->wall_ns = rounds[i].traced ? (uint64_t)(base[pair] * factor[pair] + 0.5) :
						base[pair];
		want_pct[pair] = 100 * (factor[pair] - 1);
		rounds[i].ph[PH_SHRINK] = *g;
	}
	rounds[5].ph[PH_SHRINK].done = false;
	/* touch: every traced round 1 % slower; install: 20 % */
	for (unsigned i = 0; i < 2 * PAIRED_ROUNDS; i++) {
		rounds[i].ph[PH_TOUCH] = (struct phase_result){
			.done = true, .wall_ns = rounds[i].traced ? 1010 : 1000 };
		rounds[i].ph[PH_INSTALL] = (struct phase_result){
			.done = true, .wall_ns = rounds[i].traced ? 1200 : 1000 };
	}
	/* the timed iteration: QEMU's probes hit 0 times in grow, 500 in touch */
	timed.ph[PH_GROW].done = timed.ph[PH_TOUCH].done = true;
	timed.ph[PH_TOUCH].qemu.probe_hits = 500;
	overhead_summary(summary, res, &o);

	ov = json_object_get(json_object_get(json_object_get(summary, "t"), "grow"),
			     "tracing_overhead");
	pairs = json_object_get(ov, "pair_overhead_pct");
	check(json_array_size(pairs) == 4, "overhead_pairs", "%zu pairs, want 4",
	      json_array_size(pairs));
	for (unsigned j = 0; j < json_array_size(pairs); j++)
		check(fabs(json_real_value(json_array_get(pairs, j)) - want_pct[j]) < 1e-6,
		      "overhead_pair_ratio", "pair %u: %g %%, want %g %%", j,
		      json_real_value(json_array_get(pairs, j)), want_pct[j]);
	/* the median of 1.00, 1.10, 1.20, 1.30; [min, max] of 4 covers 87.5 % */
	check(fabs(json_real_value(json_object_get(ov, "overhead_pct")) - 15) < 1e-6 &&
	      fabs(json_real_value(json_array_get(json_object_get(ov, "overhead_interval_pct"),
						   0))) < 1e-6 &&
	      fabs(json_real_value(json_array_get(json_object_get(ov, "overhead_interval_pct"),
						   1)) - 30) < 1e-6 &&
	      fabs(json_real_value(json_object_get(ov, "overhead_interval_coverage")) - 0.875) <
		      1e-9, "overhead_median_interval", "%s", json_dumps(ov, JSON_COMPACT));
	check(json_array_size(json_object_get(ov, "traced_samples_ns")) == 4 &&
	      json_array_size(json_object_get(ov, "untraced_samples_ns")) == 4 &&
	      fabs(json_real_value(json_object_get(ov, "untraced_median_s")) * 1e9 - 1750) < 1e-3,
	      "overhead_samples", "%s", json_dumps(ov, JSON_COMPACT));

	/* same probes: VM 1 untraced 1000 -> 2000, traced 1100 -> 2000; VM 2
	 * traced 1800 -> 3900, untraced 1500 -> 3000 */
	same = json_object_get(ov, "same_condition_pct");
	check(json_array_size(same) == 4 &&
	      fabs(json_real_value(json_array_get(same, 0)) - 100) < 1e-6 &&
	      fabs(json_real_value(json_array_get(same, 1)) - 100 * (2000 / 1100.0 - 1)) < 1e-6 &&
	      fabs(json_real_value(json_array_get(same, 2)) - 100 * (3900 / 1800.0 - 1)) < 1e-6 &&
	      fabs(json_real_value(json_array_get(same, 3)) - 100) < 1e-6 &&
	      fabs(json_real_value(json_object_get(ov, "noise_pct")) - 100) < 1e-6,
	      "overhead_same_condition_noise", "%s", json_dumps(ov, JSON_COMPACT));
	check(!strcmp(json_string_value(json_object_get(ov, "verdict")) ?: "", "unresolved"),
	      "overhead_verdict_unresolved", "an interval of [0, 30] %% is neither within 5 %% "
	      "nor outside: %s", json_dumps(ov, JSON_COMPACT));
	/* no probe hit in QEMU: 0, whatever a hit costs; the guest's estimate is
	 * unknown (no guest trace), so their sum is null */
	check(json_real_value(json_object_get(json_object_get(ov, "qemu_probe_estimate"),
					      "pct_of_untraced")) == 0 &&
	      json_is_null(json_object_get(ov, "probe_estimate_pct")),
	      "overhead_qemu_estimate_no_hits", "%s", json_dumps(ov, JSON_COMPACT));
	ov = json_object_get(json_object_get(json_object_get(summary, "t"), "touch"),
			     "tracing_overhead");
	check(!strcmp(json_string_value(json_object_get(ov, "verdict")) ?: "", "within_target"),
	      "overhead_verdict_within", "1 %% in every pair: %s", json_dumps(ov, JSON_COMPACT));
	/* hits, but no hit cost measured in this process: null with why */
	check(json_is_null(json_object_get(json_object_get(ov, "qemu_probe_estimate"),
					   "probe_ns_median")) &&
	      json_real_value(json_object_get(json_object_get(ov, "qemu_probe_estimate"),
					      "hits_median")) == 500,
	      "overhead_qemu_estimate_unknown_cost", "%s", json_dumps(ov, JSON_COMPACT));
	ov = json_object_get(json_object_get(json_object_get(summary, "t"), "install"),
			     "tracing_overhead");
	check(!strcmp(json_string_value(json_object_get(ov, "verdict")) ?: "", "outside_target"),
	      "overhead_verdict_outside", "20 %% in every pair: %s", json_dumps(ov, JSON_COMPACT));

	/* a pair with a round missing is left out, not counted as 0 */
	ov = json_object_get(json_object_get(json_object_get(summary, "t"), "shrink"),
			     "tracing_overhead");
	check(json_array_size(json_object_get(ov, "pair_overhead_pct")) == 3,
	      "overhead_missing_round_left_out", "%s", json_dumps(ov, JSON_COMPACT));
	test_pooled(summary);
	json_decref(summary);

	/* no paired VM: no comparison, pooled or not */
	res[0].npaired = 0;
	summary = json_pack("{s:{s:{}}}", "t", "grow");
	overhead_summary(summary, res, &o);
	check(!json_object_get(summary, "tracing_overhead_pooled"), "overhead_pooled_needs_pairs",
	      "%s", json_dumps(summary, JSON_COMPACT));
	json_decref(summary);
}

int main(void)
{
	plan(26);
	test_schedule();
	test_abba();
	test_summary();
	return check_exit();
}
