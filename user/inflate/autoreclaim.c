/* inflate --workload build|blender: the auto-reclaim footprint benchmark. The
 * guest runs ht-build (memory rising and falling like a parallel compiler
 * build, or three renderer bursts) while each technique runs in its automatic
 * mode: free page reporting by itself, HyperAlloc's own auto mode (turned on
 * by the technique's auto_start), balloon and virtio-mem with a host-side
 * controller that follows the guest's available memory in steps of 1/16 of
 * RAM, and a static VM (no reclamation) as the baseline; --auto is this
 * benchmark over the techniques with an automatic mode of their own. QEMU's
 * RSS comes from `hatrace footprint` (event-driven) and its CPU time per thread
 * from perf task-clock counters. */
#include "agent.h"
#include "common.h"
#include "rss_series.h"
#include "run_prog.h"
#include "stats.h"
#include "taskclock.h"
#include "technique.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL_NS (500 * 1000000ull)

static void configure_static(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
}

static const struct guest_func no_funcs[] = { { 0 } };

/* The baseline of the footprint benchmark only: no device, no reclamation. */
const struct technique tech_static = {
	.name = "static",
	.kernel = "baseline",
	.configure = configure_static,
	.passive_note = "no reclamation: the baseline",
	.guest_funcs = no_funcs,
};

/* The host controller drives a technique the host resizes that has no
 * automatic mode of its own. */
static bool controlled(const struct technique *t)
{
	return t->set_size && !t->auto_start;
}

const char *autoreclaim_mode(const struct technique *t)
{
	if (t == &tech_static)
		return "no reclamation: the baseline";
	if (t->auto_start)
		return t->auto_note;
	if (!t->set_size)
		return "passive: the guest hands back what it frees by itself";
	return "host controller: every 0.5 s, size - MemAvailable + 2 steps of RAM/16, "
	       "in steps of RAM/16";
}

/* Turns on the technique's own automatic mode, if it has one. */
int autoreclaim_begin(struct run *r)
{
	int err = r->t->auto_start ? r->t->auto_start(r) : 0;

	if (err)
		ht_err("%s: cannot turn on its automatic mode (%s)", r->t->name, strerror(-err));
	return err;
}

/* The controller's size: what the guest uses plus two steps of headroom, in
 * whole steps of RAM/16, between --shrink-to and --mem. */
static uint64_t controller_target(const struct opts *o, uint64_t size, uint64_t available)
{
	uint64_t step = o->mem / 16, want = (size > available ? size - available : 0) + 2 * step;

	want = (want + step - 1) / step * step;
	return want < o->shrink_to ? o->shrink_to : want > o->mem ? o->mem : want;
}

/* One controller round; appends [t_ns, available, size, target] to rows. */
int autoreclaim_control(struct run *r, uint64_t *target, json_t *rows)
{
	uint64_t available, size = r->o->mem, want = 0;
	int err;

	if ((err = agent_meminfo(r->vm->agent, "MemAvailable", &available)))
		return failed(r, err);
	if (r->t->get_size && (err = r->t->get_size(r, &size)))
		return failed(r, err);
	if (controlled(r->t)) {
		want = controller_target(r->o, size, available);
		if (want != *target && (err = r->t->set_size(r, want)))
			return failed(r, err);
		*target = want;
	}
	json_array_append_new(rows, json_pack("[I,I,I,I]", (json_int_t)now_ns(),
					      (json_int_t)available, (json_int_t)size,
					      (json_int_t)want));
	return 0;
}

/* ht-build status: NULL while it runs, else its result (checked: guest data). */
int build_status(struct run *r, json_t **done)
{
	const char *argv[] = { "ht-build", "status", NULL };
	json_t *res = NULL, *running;
	int err = agent_run(r->vm->agent, argv, 60, &res, NULL);

	*done = NULL;
	if (err) {
		json_decref(res);
		return failed(r, err);
	}
	running = json_object_get(res, "running");
	if (!json_is_boolean(running)) {
		json_decref(res);
		ht_err("ht-build status: no \"running\" in its result");
		return -EPROTO;
	}
	if (json_is_true(running))
		json_decref(res);
	else
		*done = res;
	return 0;
}

int build_start(struct run *r)
{
	char threads_s[16], ram_s[32];
	char jobs_s[16];
	const char *argv[] = { "ht-build", "start", "--profile", r->o->workload, "--threads",
			       threads_s, "--ram", ram_s, "--jobs", jobs_s, NULL };
	int err;

	snprintf(threads_s, sizeof(threads_s), "%u", 2 * r->o->vcpus);
	snprintf(ram_s, sizeof(ram_s), "%llu", (unsigned long long)r->o->mem);
	snprintf(jobs_s, sizeof(jobs_s), "%u", r->o->build_jobs);
	err = agent_run(r->vm->agent, argv, 60, NULL, NULL);
	return err ? failed(r, err) : 0;
}

pid_t footprint_start(const int *pids, int n, const char *csv, const char *log)
{
	char *self = exe_relative("hatrace"), pid_s[16][16];
	const char *argv[6 + 2 * 16 + 1] = { self, "footprint", "-o", "csv", "-w", csv };
	int argc = 6;
	pid_t pid;

	for (int i = 0; i < n && i < 16; i++) {
		snprintf(pid_s[i], sizeof(pid_s[i]), "%d", pids[i]);
		argv[argc++] = "-p";
		argv[argc++] = pid_s[i];
	}
	argv[argc] = NULL;
	pid = self ? run_background(argv, log) : -ENOENT;
	free(self);
	if (pid < 0)
		ht_warn("cannot run hatrace footprint (%s): the footprint comes from the RSS "
			"samples", strerror(-pid));
	return pid;
}

/* The name of a process's main thread (QEMU's main loop, where its devices'
 * timers run); its other threads are named by QEMU (debug-threads=on). */
static int thread_comm(int pid, char *out, size_t len)
{
	char path[64];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (!(f = fopen(path, "r")))
		return -errno;
	ok = fgets(out, len, f);
	fclose(f);
	out[strcspn(out, "\n")] = 0;
	return ok && *out ? 0 : -ENODATA;
}

int run_autoreclaim(struct run *r, struct iteration *it)
{
	json_t *rows = json_array(), *result = NULL;
	uint64_t target = 0, t0, t_end = 0, last_status = 0;
	struct taskclock tc;
	char csv[PATH_MAX] = "";
	char main_thread[32] = "";
	bool counting;
	pid_t fp = -1;
	int err;

	if ((err = autoreclaim_begin(r))) {
		json_decref(rows);
		return err;
	}
	if (geteuid() == 0) {
		char log[PATH_MAX];

		snprintf(csv, sizeof(csv), "%s/footprint-%s-%u.csv", r->o->tmp_dir, r->t->name,
			 r->iter + 1);
		snprintf(log, sizeof(log), "%s/footprint-%s-%u.log", r->o->tmp_dir, r->t->name,
			 r->iter + 1);
		fp = footprint_start(&r->vm->pid, 1, csv, log);
	}
	counting = !taskclock_open(&tc, r->vm->pid);
	if (!counting)
		ht_warn("no perf task-clock counters on QEMU's threads: no CPU time");
	/* The tracer's BPF programs attach in well under a second. */
	usleep(fp > 0 ? 1000000 : 0);
	t0 = now_ns();
	err = build_start(r);
	while (!err) {
		uint64_t now = now_ns();

		if ((err = vm_gone(r)) || (err = autoreclaim_control(r, &target, rows)))
			break;
		if (!result && now - last_status >= SEC) {
			last_status = now;
			if ((err = build_status(r, &result)))
				break;
			if (result)
				t_end = now_ns();
		}
		if (result && now_ns() >= t_end + r->o->tail_ns)
			break;
		if (now_ns() - t0 > PHASE_TIMEOUT_NS) {
			ht_err("%s: ht-build did not finish within %llu s", r->t->name,
			       (unsigned long long)(PHASE_TIMEOUT_NS / SEC));
			err = -ETIMEDOUT;
			break;
		}
		progress(r, "%s running, %llu s, RSS %llu MiB", r->o->workload,
			 (unsigned long long)((now_ns() - t0) / SEC),
			 (unsigned long long)(vm_rss(r->vm) / MiB));
		usleep(CONTROL_NS / 1000);
	}
	if (fp > 0 && run_stop(fp, 10 * SEC) < 0)
		ht_warn("hatrace footprint did not stop on SIGINT; killed it");
	if (!err) {
		it->workload = json_pack("{s:I, s:I, s:I, s:o, s:o, s:s?}", "start_ns", (json_int_t)t0,
					 "end_ns", (json_int_t)t_end, "window_end_ns",
					 (json_int_t)(t_end + r->o->tail_ns), "result", result,
					 "controller", rows, "footprint_csv",
					 *csv && fp > 0 ? strrchr(csv, '/') + 1 : NULL);
		json_object_set_new(it->workload, "cpu_s",
				    counting ? taskclock_read(&tc) : json_null());
		if (counting && !thread_comm(r->vm->pid, main_thread, sizeof(main_thread)))
			json_object_set_new(it->workload, "main_thread", json_string(main_thread));
		fprintf(stderr, "%s[%s %u/%u] %-16s %9.3f s  RSS now %llu MiB\n",
			r->o->progress ? "\r\033[K" : "", r->t->name, r->iter + 1,
			r->o->iterations, r->o->workload, (t_end - t0) / 1e9,
			(unsigned long long)(vm_rss(r->vm) / MiB));
	} else {
		json_decref(result);
		json_decref(rows);
	}
	if (counting)
		taskclock_close(&tc);
	return err;
}

struct sample_filter {
	const struct technique *t;
	unsigned iter;
	struct points *p;
};

static void add_sample(const struct rss_sample *s, void *arg)
{
	struct sample_filter *f = arg;

	if (s->tech == f->t && s->iter == f->iter)
		points_add(f->p, s->t, s->rss);
}

enum fm { FM_GIB_MIN, FM_PEAK, FM_RUNTIME, FM_CPU, FM_MAIN_CPU, FM_NR };
static const char *const fm_names[FM_NR] = { "gib_min", "peak_rss_bytes", "runtime_s",
					     "qemu_cpu_s", "main_loop_cpu_s" };

static int iteration_figures(const char *dir, const struct tech_results *res, unsigned i,
			     double m[FM_NR], const char **source)
{
	json_t *w = res->its[i].workload, *cpu, *v;
	char path[PATH_MAX];
	uint64_t a, b, peak;
	struct points p = { 0 };
	const char *csv = json_string_value(json_object_get(w, "footprint_csv")), *key;

	if (!w)
		return -ENODATA;
	a = json_integer_value(json_object_get(w, "start_ns"));
	b = json_integer_value(json_object_get(w, "window_end_ns"));
	*source = "hatrace footprint";
	snprintf(path, sizeof(path), "%s/%s", dir, csv ?: "");
	if (!csv || footprint_csv_points(path, &p)) {
		struct sample_filter f = { .t = res->t, .iter = i, .p = &p };

		p.n = 0;
		*source = "RSS samples every 100 ms (hatrace footprint unavailable)";
		rss_foreach(add_sample, &f);
	}
	m[FM_GIB_MIN] = p.n ? points_integral(&p, a, b, &peak) / GiB / 60 : NAN;
	m[FM_PEAK] = p.n ? peak : NAN;
	m[FM_RUNTIME] = (json_integer_value(json_object_get(json_object_get(w, "result"),
							    "end_ns")) -
			 json_integer_value(json_object_get(json_object_get(w, "result"),
							    "start_ns"))) / 1e9;
	cpu = json_object_get(w, "cpu_s");
	m[FM_CPU] = json_is_object(cpu) ? 0 : NAN;
	json_object_foreach(cpu, key, v)
		m[FM_CPU] += json_number_value(v);
	v = json_object_get(cpu, json_string_value(json_object_get(w, "main_thread")) ?: "");
	m[FM_MAIN_CPU] = json_number_or_nan(v);
	points_free(&p);
	return 0;
}

json_t *figure_json(const double *x, unsigned n, double scale)
{
	json_t *samples = json_array();
	uint64_t v[n ? n : 1];
	struct median_ci ci;
	size_t k = 0;

	for (unsigned i = 0; i < n; i++) {
		json_array_append_new(samples, isnan(x[i]) ? json_null() : json_real(x[i]));
		if (!isnan(x[i]))
			v[k++] = llround(x[i] * scale);
	}
	if (!k)
		return json_pack("{s:o, s:n, s:s}", "samples", samples, "median", "why",
				 "not measured in any iteration");
	median_ci95(v, k, &ci);
	return json_pack("{s:o, s:f, s:[f,f], s:f}", "samples", samples, "median",
			 ci.median / scale, "interval", ci.lo / scale, ci.hi / scale,
			 "interval_coverage", ci.coverage);
}

/* The measured window of every iteration: [workload start, end + tail]. */
static json_t *windows(const struct tech_results *res, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < n; i++) {
		json_t *w = res->its[i].workload;

		json_array_append_new(a, w ? json_pack("[O,O]", json_object_get(w, "start_ns"),
						       json_object_get(w, "window_end_ns"))
					   : json_null());
	}
	return a;
}

static double median_of(json_t *tj, const char *figure)
{
	return json_number_or_nan(json_object_get(json_object_get(tj, figure), "median"));
}

static json_t *ratio_json(double a, double b)
{
	return isnan(a) || isnan(b) || b <= 0 ? json_null() : json_real(a / b);
}

/* The paper's clang build (GiB*min): FPR and HyperAlloc against static. */
#define PAPER_STATIC 659
#define PAPER_FPR 433
#define PAPER_HYPERALLOC 356

/* "against_static": FPR's and HyperAlloc's GiB*min as a share of static's,
 * ours next to the paper's. */
static json_t *against_static(json_t *techs)
{
	double base = median_of(json_object_get(techs, "static"), "gib_min");
	double fpr = median_of(json_object_get(techs, "fpr"), "gib_min");
	double ha = median_of(json_object_get(techs, "hyperalloc"), "gib_min");

	return json_pack("{s:{s:o, s:f}, s:{s:o, s:f}, s:{s:o, s:f}, s:s}",
			 "fpr", "ours", ratio_json(fpr, base), "paper",
			 (double)PAPER_FPR / PAPER_STATIC,
			 "hyperalloc", "ours", ratio_json(ha, base), "paper",
			 (double)PAPER_HYPERALLOC / PAPER_STATIC,
			 "hyperalloc_vs_fpr", "ours", ratio_json(ha, fpr), "paper",
			 (double)PAPER_HYPERALLOC / PAPER_FPR, "note",
			 "GiB*min as a share of static's in the same run; the paper: 433 (FPR) "
			 "and 356 (HyperAlloc) against 659 GiB*min, clang build on KVM");
}

/* footprint.json: per technique GiB-min, peak, runtime (and against static),
 * QEMU CPU seconds (all threads, and the main loop, where the devices' timers
 * and the controller's requests run), and the paper's figures next to them. */
json_t *autoreclaim_summary(const char *dir, const struct tech_results *res, const struct opts *o)
{
	json_t *s = json_object(), *techs = json_object(), *base = NULL;
	const char *source = "none";

	for (; res->t; res++) {
		double m[FM_NR][o->iterations], window_s;
		json_t *tj = json_object(), *cpu, *w;

		for (unsigned i = 0; i < o->iterations; i++) {
			double one[FM_NR];

			if (iteration_figures(dir, res, i, one, &source))
				for (int k = 0; k < FM_NR; k++)
					one[k] = NAN;
			for (int k = 0; k < FM_NR; k++)
				m[k][i] = one[k];
		}
		w = res->its[o->iterations - 1].workload;
		cpu = json_object_get(w, "cpu_s");
		json_object_set_new(tj, "mode", json_string(autoreclaim_mode(res->t)));
		for (int k = 0; k < FM_NR; k++)
			json_object_set_new(tj, fm_names[k],
					    figure_json(m[k], o->iterations, k == FM_PEAK ? 1 : 1e6));
		if (res->t == &tech_static)
			base = tj;
		json_object_set_new(tj, "runtime_vs_static",
				    ratio_json(median_of(tj, "runtime_s"), median_of(base, "runtime_s")));
		json_object_set_new(tj, "gib_min_vs_static",
				    ratio_json(median_of(tj, "gib_min"), median_of(base, "gib_min")));
		/* The main loop's extra CPU against static's, in % of one core over
		 * the measured window. */
		window_s = (json_integer_value(json_object_get(w, "window_end_ns")) -
			    json_integer_value(json_object_get(w, "start_ns"))) / 1e9;
		json_object_set_new(tj, "main_loop_cpu_vs_static_pct",
				    ratio_json(100 * (median_of(tj, "main_loop_cpu_s") -
						      median_of(base, "main_loop_cpu_s")),
					       window_s));
		json_object_set_new(tj, "qemu_cpu_s_per_thread_last_iteration",
				    cpu ? json_incref(cpu) : json_null());
		json_object_set_new(tj, "rss_source", json_string(source));
		json_object_set_new(tj, "window_ns", windows(res, o->iterations));
		json_object_set_new(techs, res->t->name, tj);
	}
	json_object_set_new(s, "techniques", techs);
	json_object_set_new(s, "against_static", against_static(techs));
	json_object_set_new(s, "paper_gib_min",
			    json_pack("{s:i, s:i, s:i, s:s}", "static", PAPER_STATIC, "fpr", PAPER_FPR,
				      "hyperalloc", PAPER_HYPERALLOC, "note",
				      "HyperAlloc paper, clang build on KVM; our workload and "
				      "scale differ, compare ratios to static"));
	return s;
}

/* controller.csv: every controller round. */
int autoreclaim_write(const char *dir, const struct tech_results *res, const struct opts *o)
{
	char path[PATH_MAX];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/controller.csv", dir);
	if (!(f = fopen(path, "w"))) {
		ht_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "technique,iteration,time_ns,mem_available_bytes,size_bytes,target_bytes\n");
	for (; res->t; res++) {
		for (unsigned i = 0; i < o->iterations; i++) {
			json_t *rows = json_object_get(res->its[i].workload, "controller"), *row;
			size_t k;

			json_array_foreach(rows, k, row) {
				fprintf(f, "%s,%u,%lld,%lld,%lld,", res->t->name, i + 1,
					json_integer_value(json_array_get(row, 0)),
					json_integer_value(json_array_get(row, 1)),
					json_integer_value(json_array_get(row, 2)));
				if (controlled(res->t))
					fprintf(f, "%lld\n", json_integer_value(json_array_get(row, 3)));
				else
					fprintf(f, "\n"); /* no controller */
			}
		}
	}
	if (ferror(f))
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		ht_err("cannot write %s", path);
	return err;
}

static void print_value(FILE *f, double v, int width, int precision)
{
	if (isnan(v))
		fprintf(f, " %*s", width, "-");
	else
		fprintf(f, " %*.*f", width, precision, v);
}

/* "0.66 (paper 0.54)" for one row of against_static. */
static void print_share(FILE *f, const char *what, json_t *row)
{
	double ours = json_number_or_nan(json_object_get(row, "ours"));

	fprintf(f, "  %-26s", what);
	if (isnan(ours))
		fprintf(f, "        -");
	else
		fprintf(f, " %8.2f", ours);
	fprintf(f, "  (paper %.2f)\n", json_number_or_nan(json_object_get(row, "paper")));
}

void autoreclaim_print(FILE *f, json_t *summary)
{
	json_t *techs = json_object_get(summary, "techniques"), *tj;
	json_t *vs = json_object_get(summary, "against_static");
	const char *name;

	fprintf(f, "\nauto-reclaim footprint (medians; CPU: QEMU's threads, and its main loop "
		   "against static in %% of one core):\n");
	fprintf(f, "%-22s %9s %9s %9s %9s %9s %10s %9s %9s  %s\n", "technique", "GiB*min",
		"vs static", "peak MiB", "runtime s", "vs static", "QEMU CPU s", "main s",
		"main +%", "RSS from");
	json_object_foreach(techs, name, tj) {
		fprintf(f, "%-22s", name);
		print_value(f, median_of(tj, "gib_min"), 9, 3);
		print_value(f, json_number_or_nan(json_object_get(tj, "gib_min_vs_static")), 9, 2);
		print_value(f, median_of(tj, "peak_rss_bytes") / MiB, 9, 0);
		print_value(f, median_of(tj, "runtime_s"), 9, 1);
		print_value(f, json_number_or_nan(json_object_get(tj, "runtime_vs_static")), 9, 2);
		print_value(f, median_of(tj, "qemu_cpu_s"), 10, 1);
		print_value(f, median_of(tj, "main_loop_cpu_s"), 9, 2);
		print_value(f, json_number_or_nan(json_object_get(tj, "main_loop_cpu_vs_static_pct")), 9, 2);
		fprintf(f, "  %s\n", json_string_value(json_object_get(tj, "rss_source")));
	}
	fprintf(f, "GiB*min against static (the paper: clang build, 433 and 356 against 659):\n");
	print_share(f, "fpr / static", json_object_get(vs, "fpr"));
	print_share(f, "hyperalloc / static", json_object_get(vs, "hyperalloc"));
	print_share(f, "hyperalloc / fpr", json_object_get(vs, "hyperalloc_vs_fpr"));
	fprintf(f, "modes:\n");
	json_object_foreach(techs, name, tj)
		fprintf(f, "  %-20s %s\n", name, json_string_value(json_object_get(tj, "mode")));
}
