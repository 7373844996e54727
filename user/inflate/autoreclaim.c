/* inflate --workload build|blender: the auto-reclaim footprint benchmark. The
 * guest runs ht-build (memory rising and falling like a parallel compiler
 * build, or three renderer bursts) while each technique runs in its automatic
 * mode: free page reporting by itself, balloon and virtio-mem with a host-side
 * controller that follows the guest's available memory in steps of 1/16 of
 * RAM, and a static VM (no reclamation) as the baseline. QEMU's RSS comes from
 * `hatrace footprint` (event-driven) and its CPU time per thread from perf
 * task-clock counters. */
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
	if (r->t->set_size) {
		if ((err = r->t->get_size(r, &size)))
			return failed(r, err);
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

int run_autoreclaim(struct run *r, struct iteration *it)
{
	json_t *rows = json_array(), *result = NULL;
	uint64_t target = 0, t0, t_end = 0, last_status = 0;
	struct taskclock tc;
	char csv[PATH_MAX] = "";
	bool counting;
	pid_t fp = -1;
	int err;

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

enum fm { FM_GIB_MIN, FM_PEAK, FM_RUNTIME, FM_CPU, FM_NR };
static const char *const fm_names[FM_NR] = { "gib_min", "peak_rss_bytes", "runtime_s",
					     "qemu_cpu_s" };

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

/* footprint.json: per technique GiB-min, peak, runtime (and against static),
 * QEMU CPU seconds, and the paper's figures next to them. */
json_t *autoreclaim_summary(const char *dir, const struct tech_results *res, const struct opts *o)
{
	json_t *s = json_object(), *techs = json_object();
	double static_runtime = NAN;
	const char *source = "none";

	for (; res->t; res++) {
		double m[FM_NR][o->iterations];
		json_t *tj = json_object(), *cpu;

		for (unsigned i = 0; i < o->iterations; i++) {
			double one[FM_NR];

			if (iteration_figures(dir, res, i, one, &source))
				for (int k = 0; k < FM_NR; k++)
					one[k] = NAN;
			for (int k = 0; k < FM_NR; k++)
				m[k][i] = one[k];
		}
		cpu = json_object_get(res->its[o->iterations - 1].workload, "cpu_s");
		for (int k = 0; k < FM_NR; k++)
			json_object_set_new(tj, fm_names[k],
					    figure_json(m[k], o->iterations, k == FM_PEAK ? 1 : 1e6));
		if (res->t == &tech_static)
			static_runtime = json_number_value(
				json_object_get(json_object_get(tj, "runtime_s"), "median"));
		json_object_set_new(tj, "runtime_vs_static",
				    isnan(static_runtime) ? json_null() :
				    json_real(json_number_value(json_object_get(
					    json_object_get(tj, "runtime_s"), "median")) /
					      static_runtime));
		json_object_set_new(tj, "qemu_cpu_s_per_thread_last_iteration",
				    cpu ? json_incref(cpu) : json_null());
		json_object_set_new(tj, "rss_source", json_string(source));
		json_object_set_new(tj, "window_ns", windows(res, o->iterations));
		json_object_set_new(techs, res->t->name, tj);
	}
	json_object_set_new(s, "techniques", techs);
	json_object_set_new(s, "paper_gib_min",
			    json_pack("{s:i, s:i, s:i, s:s}", "static", 659, "fpr", 433,
				      "hyperalloc", 356, "note",
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
				if (res->t->set_size)
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

void autoreclaim_print(FILE *f, json_t *summary)
{
	json_t *techs = json_object_get(summary, "techniques"), *tj, *vs;
	const char *name;

	fprintf(f, "\nauto-reclaim footprint (medians):\n");
	fprintf(f, "%-22s %10s %10s %10s %10s %12s  %s\n", "technique", "GiB*min", "peak MiB",
	       "runtime s", "vs static", "QEMU CPU s", "RSS from");
	json_object_foreach(techs, name, tj) {
		double v[FM_NR];

		for (int k = 0; k < FM_NR; k++) {
			json_t *med = json_object_get(json_object_get(tj, fm_names[k]), "median");

			v[k] = json_is_number(med) ? json_number_value(med) : NAN;
		}
		vs = json_object_get(tj, "runtime_vs_static");
		fprintf(f, "%-22s", name);
		print_value(f, v[FM_GIB_MIN], 10, 3);
		print_value(f, v[FM_PEAK] / MiB, 10, 0);
		print_value(f, v[FM_RUNTIME], 10, 1);
		print_value(f, json_is_number(vs) ? json_number_value(vs) : NAN, 10, 2);
		print_value(f, v[FM_CPU], 12, 1);
		fprintf(f, "  %s\n", json_string_value(json_object_get(tj, "rss_source")));
	}
}
