/* inflate --workload build|blender --vms N: N VMs of a technique share one
 * host memory budget, a memory cgroup around their QEMUs. Their ht-build runs
 * start --stagger seconds apart; each VM runs the technique's automatic mode
 * (autoreclaim.c: its own, e.g. HyperAlloc's, or the host controller). The summed RSS comes from one `hatrace footprint` on all
 * QEMUs. From the summed peak follows how many more VMs would fit; that many
 * extra VMs are then started under the same budget, and the figure counts as
 * reached only if every VM boots and its workload ends without an OOM kill. */
#include "agent.h"
#include "common.h"
#include "memcg.h"
#include "rss_series.h"
#include "run_prog.h"
#include "technique.h"

#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL_NS (500 * 1000000ull)

struct vm_slot {
	struct run r;
	struct iteration it;
	uint64_t target, start_at;
	json_t *rows, *result;
	bool started;
};

/* One run of n VMs under the budget; *out gets its figures. */
static int run_group(const struct run *proto, unsigned n, const char *tag, json_t **out)
{
	const struct opts *o = proto->o;
	struct vm_slot *vms = calloc(n, sizeof(*vms));
	struct memcg cg = { 0 };
	char csv[PATH_MAX], log[PATH_MAX];
	int pids[16], err, left;
	uint64_t t0, t_end = 0, peak = 0;
	struct points p = { 0 };
	long kills;
	pid_t fp = -1;
	json_t *per_vm = json_array();

	err = memcg_create(&cg, tag, o->budget);
	for (unsigned k = 0; k < n && !err; k++) {
		vms[k].r = *proto;
		vms[k].r.vm = NULL;
		vms[k].r.memcg = &cg;
		vms[k].rows = json_array();
		err = boot_vm(&vms[k].r, &vms[k].it) ?: autoreclaim_begin(&vms[k].r);
		if (!err)
			pids[k] = vms[k].r.vm->pid;
	}
	snprintf(csv, sizeof(csv), "%s/multivm-%s-%s-%u.csv", o->tmp_dir, proto->t->name, tag,
		 proto->iter + 1);
	snprintf(log, sizeof(log), "%s/multivm-%s-%s-%u.log", o->tmp_dir, proto->t->name, tag,
		 proto->iter + 1);
	if (!err && geteuid() == 0)
		fp = footprint_start(pids, n, csv, log);
	usleep(fp > 0 ? 1000000 : 0);
	t0 = now_ns();
	for (unsigned k = 0; k < n; k++)
		vms[k].start_at = t0 + k * o->stagger_ns;
	for (left = n; !err && left;) {
		left = 0;
		for (unsigned k = 0; k < n && !err; k++) {
			struct vm_slot *v = &vms[k];

			if (v->result)
				continue;
			left++;
			if ((err = autoreclaim_control(&v->r, &v->target, v->rows)))
				break;
			if (!v->started && now_ns() >= v->start_at) {
				err = build_start(&v->r);
				v->started = true;
			} else if (v->started) {
				err = build_status(&v->r, &v->result);
			}
		}
		if (!left && !t_end)
			t_end = now_ns();
		if (now_ns() - t0 > PHASE_TIMEOUT_NS) {
			ht_err("%s: the %u VMs did not finish within %llu s", proto->t->name, n,
			       (unsigned long long)(PHASE_TIMEOUT_NS / SEC));
			err = -ETIMEDOUT;
		}
		progress(&vms[0].r, "%u VMs, %d running, %llu s, budget %llu MiB", n, left,
			 (unsigned long long)((now_ns() - t0) / SEC),
			 (unsigned long long)(o->budget / MiB));
		usleep(CONTROL_NS / 1000);
	}
	/* The tail: the techniques take back what the workloads freed. */
	while (!err && now_ns() < t_end + o->tail_ns) {
		for (unsigned k = 0; k < n && !err; k++)
			err = autoreclaim_control(&vms[k].r, &vms[k].target, vms[k].rows);
		usleep(CONTROL_NS / 1000);
	}
	if (fp > 0)
		run_stop(fp, 10 * SEC);
	kills = cg.path[0] ? memcg_oom_kills(&cg) : -ENOENT;
	for (unsigned k = 0; k < n; k++) {
		json_array_append_new(per_vm, vms[k].result ? vms[k].result : json_null());
		json_decref(vms[k].rows);
		end_vm(&vms[k].r, !err);
		for (int ph = 0; ph < PH_MAX; ph++)
			json_decref(vms[k].it.ph[ph].guest);
	}
	memcg_destroy(&cg);
	if (!err && fp > 0 && !footprint_csv_points(csv, &p)) {
		double gib_min = points_integral(&p, t0, t_end + o->tail_ns, &peak) / GiB / 60;

		*out = json_pack("{s:i, s:I, s:f, s:I, s:I, s:I, s:I, s:s, s:o}", "vms", n, "budget_bytes",
				 (json_int_t)o->budget, "sum_gib_min", gib_min, "sum_peak_bytes",
				 (json_int_t)peak, "oom_kills", (json_int_t)kills, "start_ns",
				 (json_int_t)t0, "window_end_ns", (json_int_t)(t_end + o->tail_ns),
				 "footprint_csv", strrchr(csv, '/') + 1, "workloads", per_vm);
	} else {
		if (!err)
			ht_err("%s: no summed footprint of the %u VMs (hatrace footprint needs root)",
			       proto->t->name, n);
		/* A VM the OOM killer took is the finding of a verification run. */
		*out = json_pack("{s:i, s:I, s:s, s:o}", "vms", n, "oom_kills", (json_int_t)kills,
				 "error", strerror(err < 0 ? -err : EIO), "workloads", per_vm);
		err = err ?: -ENODATA;
	}
	points_free(&p);
	free(vms);
	return err;
}

static bool group_clean(json_t *g, unsigned n)
{
	json_t *w;
	size_t k;

	if (json_integer_value(json_object_get(g, "oom_kills")) != 0 ||
	    json_array_size(json_object_get(g, "workloads")) != n)
		return false;
	json_array_foreach(json_object_get(g, "workloads"), k, w)
		if (!json_is_object(w) || json_integer_value(json_object_get(w, "failed_jobs")))
			return false;
	return true;
}

int run_multivm(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	json_t *group = NULL, *verify = NULL;
	uint64_t peak, per_vm;
	unsigned extra;
	int err = run_group(r, o->vms, "base", &group);

	if (err) {
		json_decref(group);
		return err;
	}
	peak = json_integer_value(json_object_get(group, "sum_peak_bytes"));
	per_vm = peak / o->vms;
	extra = peak < o->budget && per_vm ? (o->budget - peak) / per_vm : 0;
	if (extra + o->vms > 16)
		extra = 16 - o->vms;
	json_object_set_new(group, "extra_vms_computed", json_integer(extra));
	if (extra) {
		fprintf(stderr, "[%s %u/%u] %u more VMs should fit under %llu MiB: starting %u\n",
			r->t->name, r->iter + 1, o->iterations, extra,
			(unsigned long long)(o->budget / MiB), o->vms + extra);
		/* OOM kills and dead VMs are the answer here, not an error. */
		if (run_group(r, o->vms + extra, "verify", &verify) && !verify)
			verify = json_pack("{s:s}", "error", "did not run");
		json_object_set_new(group, "extra_vms_reached",
				    json_boolean(group_clean(verify, o->vms + extra)));
		json_object_set_new(group, "verification", verify);
	} else {
		json_object_set_new(group, "extra_vms_reached", json_null());
	}
	it->workload = group;
	return 0;
}

/* footprint.json with --vms: per technique the summed GiB*min and peak of the
 * base runs, the extra VMs computed and whether they fitted. */
json_t *multivm_summary(const struct tech_results *res, const struct opts *o)
{
	json_t *techs = json_object();

	for (; res->t; res++) {
		double gib_min[o->iterations], peak[o->iterations];
		json_t *tj = json_object(), *runs = json_array();

		for (unsigned i = 0; i < o->iterations; i++) {
			json_t *g = res->its[i].workload;

			gib_min[i] = json_is_number(json_object_get(g, "sum_gib_min"))
					     ? json_number_value(json_object_get(g, "sum_gib_min")) : NAN;
			peak[i] = json_is_integer(json_object_get(g, "sum_peak_bytes"))
					  ? json_integer_value(json_object_get(g, "sum_peak_bytes")) : NAN;
			json_array_append(runs, g ? g : json_null());
		}
		json_object_set_new(tj, "sum_gib_min", figure_json(gib_min, o->iterations, 1e6));
		json_object_set_new(tj, "sum_peak_bytes", figure_json(peak, o->iterations, 1));
		json_object_set_new(tj, "runs", runs);
		json_object_set_new(tj, "mode", json_string(autoreclaim_mode(res->t)));
		json_object_set_new(techs, res->t->name, tj);
	}
	return json_pack("{s:i, s:I, s:f, s:o}", "vms", o->vms, "budget_bytes",
			 (json_int_t)o->budget, "stagger_s", o->stagger_ns / 1e9, "techniques", techs);
}

void multivm_print(FILE *f, json_t *summary)
{
	json_t *tj, *runs;
	const char *name;

	fprintf(f, "\n%lld VMs under %lld MiB (medians; extra VMs of the first iteration):\n",
	       json_integer_value(json_object_get(summary, "vms")),
	       json_integer_value(json_object_get(summary, "budget_bytes")) / (long long)MiB);
	fprintf(f, "%-22s %12s %14s %12s %14s\n", "technique", "sum GiB*min", "sum peak MiB",
	       "extra VMs", "extra fitted");
	json_object_foreach(json_object_get(summary, "techniques"), name, tj) {
		json_t *gm = json_object_get(json_object_get(tj, "sum_gib_min"), "median");
		json_t *pk = json_object_get(json_object_get(tj, "sum_peak_bytes"), "median");
		json_t *reached;

		runs = json_array_get(json_object_get(tj, "runs"), 0);
		reached = json_object_get(runs, "extra_vms_reached");
		fprintf(f, "%-22s %12.3f %14.0f %12lld %14s\n", name, json_number_value(gm),
		       json_number_value(pk) / MiB,
		       json_integer_value(json_object_get(runs, "extra_vms_computed")),
		       json_is_null(reached) || !reached ? "-" : json_is_true(reached) ? "yes" : "no");
	}
}
