/* The results of `hatrace inflate`: iterations.csv, guest-events.csv,
 * rss.csv, summary.json, meta.json, trace.json and the printed report
 * (report.txt). A phase's values and host counters are named by one table
 * each (phase_field_names, host_field_names), used by every writer; a value
 * that was not measured is an empty CSV cell, or null in JSON with its reason
 * in the object's "why_null" (docs/results.md). */
#include "common.h"
#include "hostcaps.h"
#include "qemu_usdt.h"
#include "stats.h"
#include "technique.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef HATRACE_GIT_REV
#define HATRACE_GIT_REV "unknown"
#endif

/* meta.json "schema_version": bumped when a file's columns or keys change meaning. */
#define RESULTS_SCHEMA_VERSION 2

/* The phases of summary.json, in report order. */
static const enum phase summary_phases[] = { PH_SHRINK, PH_GROW, PH_INSTALL, PH_TOUCH2,
					     PH_SHRINK_UNTOUCHED };

/* A phase's own values: iterations.csv <phase>_<name>; trace.json args.<name>
 * (the slice itself carries ns). */
enum phase_field { PF_NS, PF_HOST_NS, PF_BYTES, PF_RSS_BEFORE, PF_RSS_AFTER, PF_NR };
static const char *const phase_field_names[PF_NR] = {
	[PF_NS] = "ns", [PF_HOST_NS] = "host_ns", [PF_BYTES] = "bytes",
	[PF_RSS_BEFORE] = "rss_before", [PF_RSS_AFTER] = "rss_after",
};

#define TOUCH2_WHY "install and touch2 are two passes of one guest run: the host sees the " \
	"whole run only (install's host_ns, host counters and guest events)"

/* Why a phase's own value was not measured, or NULL. */
static const char *phase_field_missing(enum phase p, int f)
{
	if (p == PH_BOOT && f == PF_BYTES)
		return "boot moves no memory";
	if (p == PH_BOOT && f == PF_RSS_BEFORE)
		return "QEMU is not running before boot";
	if (p == PH_TOUCH2 && (f == PF_HOST_NS || f == PF_RSS_BEFORE))
		return TOUCH2_WHY;
	return NULL;
}

/* Why a host counter of a phase was not measured, or NULL. */
static const char *host_field_missing(const struct opts *o, enum phase p,
				      const struct phase_result *r, int f)
{
	if (p == PH_BOOT)
		return "the host probes attach after boot";
	if (p == PH_TOUCH2)
		return TOUCH2_WHY;
	if (!r->host_measured)
		return r->host_why ?: "no host probes ran (BPF needs root; see the run's warnings)";
	if (o->accel != ACCEL_KVM && (f == HF_KVM_EXITS || f == HF_KVM_PAGE_FAULTS))
		return "TCG: QEMU runs no KVM, so there are no KVM exits or KVM page faults";
	return NULL;
}

/* Why a phase has no guest breakdown, or NULL. */
static const char *guest_missing(enum phase p, const struct phase_result *r)
{
	if (p == PH_BOOT)
		return "guest tracing starts after boot";
	if (p == PH_TOUCH2)
		return TOUCH2_WHY;
	if (!r->guest)
		return "no guest tracing (see the run's warnings)";
	return NULL;
}

#define UNTIMED_WHY "counted, not timed (a tracepoint)"

void summary_set_null(json_t *obj, const char *key, const char *why)
{
	json_t *w = json_object_get(obj, "why_null");

	if (!w) {
		w = json_object();
		json_object_set_new(obj, "why_null", w);
	}
	json_object_set_new(obj, key, json_null());
	json_object_set_new(w, key, json_string(why));
}

bool event_timed(json_t *ev)
{
	return !json_is_false(json_object_get(ev, "timed"));
}

static void phase_values(const struct phase_result *r, uint64_t v[PF_NR])
{
	v[PF_NS] = r->wall_ns;
	v[PF_HOST_NS] = r->host_ns ? r->host_ns : r->t1 - r->t0;
	v[PF_BYTES] = r->bytes;
	v[PF_RSS_BEFORE] = r->rss0;
	v[PF_RSS_AFTER] = r->rss1;
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* Guest times plus the clock offset, held within int64_t. */
static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t s;

	if (__builtin_add_overflow(a, b, &s))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return s;
}

/* "model name" of /proc/cpuinfo's first CPU. */
static json_t *cpu_model(void)
{
	char line[512], *v = NULL;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && !v && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(v = strchr(line, ':')))
			continue;
		v += 1 + strspn(v + 1, " \t");
		v[strcspn(v, "\n")] = 0;
	}
	if (f)
		fclose(f);
	return v ? json_string_lossy(v) : json_null();
}

/* How phases are timed: inflate.h's thresholds. */
static json_t *thresholds_json(void)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "size_poll_ns", (json_int_t)POLL_NS,
			 "rss_fall_bytes", (json_int_t)RSS_FALL_BYTES,
			 "rss_quiet_ns", (json_int_t)RSS_QUIET_NS,
			 "rss_poll_ns", (json_int_t)RSS_POLL_NS,
			 "passive_quiet_ns", (json_int_t)PASSIVE_QUIET_NS,
			 "rss_sample_ns", (json_int_t)RSS_SAMPLE_NS,
			 "phase_timeout_ns", (json_int_t)PHASE_TIMEOUT_NS,
			 "stall_ns", (json_int_t)STALL_NS);
}

/* Per technique: its guest kernel (flavour, image, what it said it is) and
 * QEMU's command line in the first iteration. */
static json_t *techniques_json(const struct tech_results *res, const struct opts *o)
{
	json_t *all = json_object();

	for (size_t i = 0; res[i].t; i++) {
		const char *uname = res[i].its[0].guest_kernel;

		json_object_set_new(all, res[i].t->name,
				    json_pack("{s:s, s:o, s:o, s:O}", "kernel_flavour",
					      res[i].t->kernel, "guest_kernel_image",
					      json_string_lossy(o->kernels[i]), "guest_kernel",
					      *uname ? json_string_lossy(uname) : json_null(),
					      "qemu_argv", res[i].qemu_argv ?: json_null()));
	}
	return all;
}

/* null unless this host reports free pages to an outer hypervisor. */
static json_t *host_reporting_json(void)
{
	struct host_reporting r;

	host_page_reporting(&r);
	if (!r.reporting)
		return json_null();
	return json_pack("{s:s, s:i, s:i, s:s}", "device", r.device, "order", r.order,
			 "min_free_ms", r.min_free_ms, "effect",
			 "memory QEMU discards is reclaimed by the outer hypervisor too; "
			 "faulting it in again (install, touch) includes an outer fault");
}

json_t *meta_json(const struct tech_results *res, const struct opts *o, int argc, char **argv)
{
	char date[32];
	struct utsname u;
	char thp[128], line[4096] = "";
	char *qv = qemu_version(o->qemu), *cmd = NULL;
	bool usdt[QEMU_USDT_NR];
	json_error_t jerr;
	json_t *m, *params;
	FILE *f;

	uname(&u);
	host_thp_mode(thp, sizeof(thp));
	for (int i = 0; i < argc; i++) {
		char *n;

		if (asprintf(&n, "%s %s", cmd ? cmd : "hatrace", argv[i]) < 0)
			break;
		free(cmd);
		cmd = n;
	}
	f = fopen("/proc/cmdline", "r");
	line[0] = 0;
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
	}
	line[strcspn(line, "\n")] = 0;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&o->started));
	/* Paths, arguments and QEMU's version are not always UTF-8. */
	m = json_pack_ex(&jerr, 0,
			 "{s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:s,"
			 " s:o, s:o, s:s}",
			 "schema_version", RESULTS_SCHEMA_VERSION, "date", date, "host", u.nodename,
			 "kernel", u.release, "machine", u.machine, "cmdline",
			 json_string_lossy(cmd ? cmd : ""), "host_cmdline", json_string_lossy(line),
			 "thp", thp, "accel", accel_name(o->accel), "accel_reason", o->accel_why,
			 "qemu", json_string_lossy(o->qemu), "qemu_version", json_string_lossy(qv),
			 "guest_initrd", json_string_lossy(o->initrd), "hatrace_revision",
			 HATRACE_GIT_REV, "cpu_model", cpu_model(), "techniques",
			 techniques_json(res, o), "clock", "CLOCK_MONOTONIC");
	params = m ? json_pack_ex(&jerr, 0, "{s:I, s:I, s:i, s:i, s:b, s:o, s:I}", "mem_bytes",
				  (json_int_t)o->mem, "shrink_to_bytes", (json_int_t)o->shrink_to,
				  "vcpus", (int)o->vcpus, "iterations", (int)o->iterations,
				  "untouched", o->untouched, "guest_append", json_string_lossy(o->append),
				  "integrity_bytes", (json_int_t)o->integrity) : NULL;
	free(qv);
	free(cmd);
	if (!params) {
		ht_err("meta.json: %s", jerr.text);
		json_decref(m);
		return NULL;
	}
	json_object_set_new(params, "paired", json_integer(o->workload || o->cycles ? 0 : o->paired));
	json_object_set_new(m, "params", params);
	json_object_set_new(m, "thresholds", thresholds_json());
	json_object_set_new(m, "qemu_usdt_probes", json_integer(qemu_usdt_find(o->qemu, usdt)));
	json_object_set_new(m, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(m, "host_page_reporting", host_reporting_json());
	if (workload_is_auto(o))
		json_object_set_new(m, "workload",
				    json_pack("{s:s, s:f, s:s}", "name", o->workload, "tail_s",
					      o->tail_ns / 1e9, "controller",
					      "every 0.5 s: size - MemAvailable + 2 steps of RAM/16, "
					      "rounded up to a step, between --shrink-to and --mem"));
	else if (o->workload) {
		json_t *w = json_pack("{s:s, s:f, s:f, s:f}", "name", o->workload, "seconds",
				      o->seconds_ns / 1e9, "shrink_at_s", o->shrink_at_ns / 1e9,
				      "grow_at_s", o->grow_at_ns / 1e9);

		if (o->workload_bytes) /* ht-stream's arrays */
			json_object_set_new(w, "bytes", json_integer((json_int_t)o->workload_bytes));
		json_object_set_new(m, "workload", w);
	}
	json_object_set_new(m, "host_mem_bytes",
			    json_integer((json_int_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE)));
	return m;
}

static int write_json(const char *dir, const char *name, json_t *doc)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!doc) {
		ht_err("%s not written: its data could not be encoded (see above)", path);
		return -EINVAL;
	}
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	/* 17 digits: a median of ns is exact (10 would round 3582261811.5) */
	if (json_dumpf(doc, of.f, JSON_INDENT(1) | JSON_REAL_PRECISION(17))) {
		ht_err("cannot write %s: JSON encoding failed", path);
		out_file_abort(&of);
		return -EIO;
	}
	fputc('\n', of.f);
	return out_file_commit(&of);
}

static int write_csv(const char *dir, const struct tech_results *res, const struct opts *o)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/iterations.csv", dir);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fprintf(of.f, "technique,iteration,guest_kernel,integrity_pages,integrity_bad_pages");
	for (int p = 0; p < PH_MAX; p++) {
		for (int f = 0; f < PF_NR; f++)
			fprintf(of.f, ",%s_%s", phase_names[p], phase_field_names[f]);
		for (int f = 0; f < HF_NR; f++)
			fprintf(of.f, ",%s_host_%s", phase_names[p], host_field_names[f]);
	}
	fprintf(of.f, ",kind,run,round,traced\n");
	for (; res->t; res++) {
		/* the timed iterations, then those outside the medians */
		unsigned nr = res->npaired * PAIRED_ROUNDS;

		for (unsigned i = 0; i < o->iterations + nr + res->has_breakdown; i++) {
			enum iter_kind kind = i < o->iterations ? IT_TIMED :
					      i < o->iterations + nr ? IT_PAIRED : IT_BREAKDOWN;
			const struct iteration *it = kind == IT_TIMED ? &res->its[i] :
						     kind == IT_PAIRED ?
						     &res->paired[i - o->iterations] : &res->breakdown;
			unsigned index = kind == IT_TIMED ? i + 1 :
					 kind == IT_PAIRED ? (i - o->iterations) / PAIRED_ROUNDS + 1 : 1;

			fprintf(of.f, "%s,%u,%s,", res->t->name, index, it->guest_kernel);
			if (it->integrity_pages >= 0)
				fprintf(of.f, "%lld,%lld", (long long)it->integrity_pages,
					(long long)it->integrity_bad);
			else
				fprintf(of.f, ",");
			for (int p = 0; p < PH_MAX; p++) {
				const struct phase_result *r = &it->ph[p];
				uint64_t v[PF_NR];

				/* not measured: an empty cell */
				phase_values(r, v);
				for (int f = 0; f < PF_NR; f++)
					r->done && !phase_field_missing(p, f)
						? fprintf(of.f, ",%llu", (unsigned long long)v[f])
						: fputc(',', of.f);
				for (int f = 0; f < HF_NR; f++)
					r->done && !host_field_missing(o, p, r, f)
						? fprintf(of.f, ",%llu", (unsigned long long)r->host.v[f])
						: fputc(',', of.f);
			}
			fprintf(of.f, ",%s,%u,", iter_kind_names[kind], it->run);
			if (it->round)
				fprintf(of.f, "%u,%d\n", it->round, it->traced);
			else
				fprintf(of.f, ",\n");
		}
	}
	return out_file_commit(&of);
}

/* The guest's per-event breakdown, one row per iteration, phase and event. */
static int write_guest_csv(const char *dir, const struct tech_results *res, const struct opts *o)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/guest-events.csv", dir);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fprintf(of.f, "technique,iteration,phase,event,count,sum_ns,kind\n");
	for (; res->t; res++) {
		/* the timed iterations, then the breakdown iteration */
		for (unsigned i = 0; i < o->iterations + res->has_breakdown; i++) {
			bool timed = i < o->iterations;
			const struct iteration *it = timed ? &res->its[i] : &res->breakdown;

			for (int p = 0; p < PH_MAX; p++) {
				const char *name;
				json_t *v;

				json_object_foreach(it->ph[p].guest, name, v) {
					fprintf(of.f, "%s,%u,%s,%s,%lld,", res->t->name,
						timed ? i + 1 : 1, phase_names[p], name,
						(long long)jint(v, "count"));
					if (event_timed(v)) /* else not timed: an empty cell */
						fprintf(of.f, "%lld", (long long)jint(v, "sum_ns"));
					fprintf(of.f, ",%s\n",
						iter_kind_names[timed ? IT_TIMED : IT_BREAKDOWN]);
				}
			}
		}
	}
	return out_file_commit(&of);
}

static void rss_csv_row(const struct rss_sample *s, void *f)
{
	fprintf(f, "%s,%u,%s,%llu,%llu\n", s->tech->name, s->iter + 1, phase_names[s->phase],
		(unsigned long long)s->t, (unsigned long long)s->rss);
}

static int write_rss_csv(const char *dir)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/rss.csv", dir);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fprintf(of.f, "technique,iteration,phase,t_ns,rss_bytes\n");
	rss_foreach(rss_csv_row, of.f);
	return out_file_commit(&of);
}

double median_u64(uint64_t *v, unsigned n)
{
	struct median_ci ci;

	return median_ci95(v, n, &ci) ? 0 : ci.median;
}

/* Medians over the iterations that ran phase p: of the host totals and of
 * each guest event; null with the reason where they were not measured. */
static json_t *breakdown_medians(const struct iteration *its, unsigned n, enum phase p,
				  const struct opts *o)
{
	json_t *host = json_object(), *guest = json_object(), *names = json_object(), *v, *bd;
	const char *name, *why = NULL;
	uint64_t vals[n];
	unsigned m;

	for (int f = 0; f < HF_NR; f++) {
		const char *missing = NULL;

		m = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!its[i].ph[p].done)
				continue;
			missing = missing ?: host_field_missing(o, p, &its[i].ph[p], f);
			vals[m++] = its[i].ph[p].host.v[f];
		}
		if (missing)
			summary_set_null(host, host_field_names[f], missing);
		else if (m)
			json_object_set_new(host, host_field_names[f], json_real(median_u64(vals, m)));
	}
	for (unsigned i = 0; i < n; i++) {
		if (!its[i].ph[p].done)
			continue;
		why = why ?: guest_missing(p, &its[i].ph[p]);
		json_object_update(names, its[i].ph[p].guest);
	}
	json_object_foreach(names, name, v) {
		uint64_t sums[n];
		json_t *e;

		m = 0;
		for (unsigned i = 0; i < n; i++) {
			e = json_object_get(its[i].ph[p].guest, name);
			if (!its[i].ph[p].done)
				continue;
			vals[m] = e ? jint(e, "count") : 0;
			sums[m++] = e ? jint(e, "sum_ns") : 0;
		}
		e = json_pack("{s:f, s:f}", "count_median", median_u64(vals, m), "sum_ns_median",
			      median_u64(sums, m));
		if (!event_timed(v))
			summary_set_null(e, "sum_ns_median", UNTIMED_WHY);
		json_object_set_new(guest, name, e);
	}
	json_decref(names);
	bd = json_pack("{s:o, s:o}", "host", host, "guest", guest);
	if (why)
		summary_set_null(bd, "guest", why);
	return bd;
}

/* Whether the technique traces guest function name in its breakdown iteration only. */
static bool breakdown_only_func(const struct technique *t, const char *name)
{
	for (const struct guest_func *f = t->breakdown_guest_funcs; f && f->name; f++)
		if (!strcmp(f->name, name))
			return true;
	return false;
}

/* The guest's over the timed iterations; the host's from the breakdown
 * iteration, where the per-syscall and per-fault host probes ran, and so did
 * the guest functions traced there only (marked "breakdown_only"). An event
 * that merely happened there and in no timed iteration (a vmstat counter that
 * ticked once) is in no median. */
static json_t *breakdown_json(const struct tech_results *res, enum phase p, const struct opts *o)
{
	json_t *bd = breakdown_medians(res->its, o->iterations, p, o), *b, *guest, *v;
	const char *name;

	if (!res->has_breakdown || !res->breakdown.ph[p].done)
		return bd;
	b = breakdown_medians(&res->breakdown, 1, p, o);
	json_object_set(bd, "host", json_object_get(b, "host"));
	guest = json_object_get(bd, "guest");
	json_object_foreach(json_object_get(b, "guest"), name, v) {
		if (!json_is_object(guest) || json_object_get(guest, name) ||
		    !breakdown_only_func(res->t, name))
			continue;
		json_object_set_new(v, "breakdown_only", json_true());
		json_object_set(guest, name, v);
	}
	json_object_set_new(bd, "host_iteration",
			    json_pack("{s:s, s:i, s:b}", "kind", iter_kind_names[IT_BREAKDOWN],
				      "run", (int)res->breakdown.run, "in_medians", 0));
	json_decref(b);
	return bd;
}

/* QEMU's RSS fall (from /proc) in a shrink phase, per iteration: in bytes,
 * and relative to the request (an active technique only; a passive one has
 * no request). */
static void rss_drops_json(json_t *pj, const struct tech_results *res, const struct opts *o,
			   enum phase p)
{
	json_t *bytes = json_array(), *pct = json_array();

	for (unsigned i = 0; i < o->iterations; i++) {
		const struct phase_result *r = &res->its[i].ph[p];
		double drop = (double)r->rss0 - (double)r->rss1;

		if (!r->done)
			continue;
		json_array_append_new(bytes, json_integer((json_int_t)r->rss0 - (json_int_t)r->rss1));
		json_array_append_new(pct, json_real(100.0 * drop / (o->mem - o->shrink_to)));
	}
	json_object_set_new(pj, "rss_drop_bytes", bytes);
	json_object_set_new(pj, "rss_drop_pct_of_request", pct);
	if (!res->t->set_size)
		summary_set_null(pj, "rss_drop_pct_of_request", res->t->passive_note);
}

/* The keys of a phase that a technique does not have, each null. */
static const char *const phase_keys[] = { "samples_ns", "median_ns", "median_interval_ns",
					  "median_interval_ranks", "median_interval_coverage",
					  "bytes_median", "breakdown" };

json_t *summary_json(const struct tech_results *res, const struct opts *o)
{
	json_t *s = json_object();
	uint64_t v[o->iterations], w[o->iterations];

	for (; res->t; res++) {
		json_t *tj = json_object();

		for (unsigned pi = 0; pi < ARRAY_SIZE(summary_phases); pi++) {
			enum phase p = summary_phases[pi];
			json_t *samples = json_array(), *pj;
			const char *not_measured = NULL;
			struct median_ci ci;
			unsigned n = 0;

			for (unsigned i = 0; i < o->iterations; i++) {
				const struct phase_result *r = &res->its[i].ph[p];

				not_measured = not_measured ?: r->not_measured;
				if (!r->done)
					continue;
				json_array_append_new(samples, json_integer(r->wall_ns));
				v[n] = r->wall_ns;
				w[n++] = r->bytes;
			}
			if (!n) {
				json_decref(samples);
				if (!not_measured)
					continue; /* not run (e.g. shrink_untouched without --untouched) */
				pj = json_object();
				for (unsigned k = 0; k < ARRAY_SIZE(phase_keys); k++)
					summary_set_null(pj, phase_keys[k], not_measured);
				json_object_set_new(tj, phase_names[p], pj);
				continue;
			}
			median_ci95(v, n, &ci);
			pj = json_pack("{s:o, s:f, s:[I,I], s:[I,I], s:f, s:f}", "samples_ns", samples,
				       "median_ns", ci.median, "median_interval_ns", (json_int_t)ci.lo,
				       (json_int_t)ci.hi, "median_interval_ranks", (json_int_t)ci.k,
				       (json_int_t)(n + 1 - ci.k), "median_interval_coverage",
				       ci.coverage, "bytes_median", median_u64(w, n));
			json_object_set_new(pj, "breakdown", breakdown_json(res, p, o));
			if (p == PH_SHRINK || p == PH_SHRINK_UNTOUCHED)
				rss_drops_json(pj, res, o, p);
			json_object_set_new(tj, phase_names[p], pj);
		}
		json_object_set_new(s, res->t->name, tj);
	}
	return s;
}

struct trace_rss {
	json_t *events;
	const struct technique *t;
	int pid;
};

static void trace_rss_counter(const struct rss_sample *s, void *arg)
{
	struct trace_rss *tr = arg;

	if (s->tech == tr->t && s->iter == 0)
		json_array_append_new(tr->events,
				      json_pack("{s:s, s:s, s:f, s:i, s:{s:f}}", "name", "QEMU RSS",
						"ph", "C", "ts", s->t / 1e3, "pid", tr->pid, "args",
						"MiB", s->rss / (double)MiB));
}

static json_t *track_name(const char *meta, int pid, int tid, const char *name)
{
	return json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name", meta, "ph", "M", "pid", pid,
			 "tid", tid, "args", "name", name);
}

/* Chrome trace: a technique's first iteration (process pid), host phases and
 * guest events on the host clock. A guest event's slice spans its first to
 * its last occurrence in the phase. */
static void trace_add_iteration(json_t *events, int pid, const struct tech_results *res,
				const struct opts *o)
{
	const struct iteration *it = &res->its[0];
	int64_t offset = res->clock_offset;
	struct trace_rss tr = { events, res->t, pid };

	json_array_append_new(events, track_name("process_name", pid, 0, res->t->name));
	json_array_append_new(events, track_name("thread_name", pid, 1, "host: phases"));
	json_array_append_new(events, track_name("thread_name", pid, 2, "guest: trace events"));
	for (int p = 0; p < PH_MAX; p++) {
		const struct phase_result *r = &it->ph[p];
		json_t *v, *args = json_object();
		uint64_t pv[PF_NR];
		const char *name;

		if (!r->done) {
			json_decref(args);
			continue;
		}
		phase_values(r, pv);
		for (int f = PF_BYTES; f < PF_NR; f++) {
			const char *why = phase_field_missing(p, f);

			why ? summary_set_null(args, phase_field_names[f], why)
			    : (void)json_object_set_new(args, phase_field_names[f],
							json_integer(pv[f]));
		}
		for (int f = 0; f < HF_NR; f++) {
			const char *why = host_field_missing(o, p, r, f);

			why ? summary_set_null(args, host_field_names[f], why)
			    : (void)json_object_set_new(args, host_field_names[f],
							json_integer(r->host.v[f]));
		}
		json_array_append_new(events,
				      json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:o}", "name",
						phase_names[p], "cat", "host", "ph", "X", "ts",
						r->t0 / 1e3, "dur", (r->t1 - r->t0) / 1e3, "pid", pid,
						"tid", 1, "args", args));
		json_object_foreach(r->guest, name, v) {
			json_int_t first = jint(v, "first_ns"), last = jint(v, "last_ns");
			double ts = (double)sat_add(first, offset) / 1e3;
			json_t *ev;

			/* Clip to the phase: first_ns is cumulative since trace_start. */
			if (sat_add(first, offset) < (json_int_t)r->t0)
				ts = r->t0 / 1e3;
			if (sat_add(last, offset) < ts * 1e3)
				continue;
			ev = json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:{s:s, s:I, s:I}}", "name",
				       name, "cat", "guest", "ph", "X", "ts", ts, "dur",
				       sat_add(last, offset) / 1e3 - ts, "pid", pid, "tid", 2, "args",
				       "phase", phase_names[p], "count", jint(v, "count"), "sum_ns",
				       jint(v, "sum_ns"));
			if (!event_timed(v))
				summary_set_null(json_object_get(ev, "args"), "sum_ns", UNTIMED_WHY);
			json_array_append_new(events, ev);
		}
	}
	rss_foreach(trace_rss_counter, &tr);
}

/* The medians of each phase with their order-statistic intervals. */
static void print_table(FILE *f, const struct tech_results *res, const struct opts *o)
{
	double min_cov = 1;

	fprintf(f, "\n%-19s %-17s %12s %28s %9s %9s\n", "technique", "phase", "median",
		"interval of the median", "GiB/s", "RSS drop");
	for (; res->t; res++) {
		for (unsigned pi = 0; pi < ARRAY_SIZE(summary_phases); pi++) {
			enum phase p = summary_phases[pi];
			uint64_t v[o->iterations], b[o->iterations], drop[o->iterations];
			const char *not_measured = NULL;
			struct median_ci ci;
			unsigned n = 0;
			char cis[64], drops[16] = "";

			for (unsigned i = 0; i < o->iterations; i++) {
				const struct phase_result *r = &res->its[i].ph[p];

				not_measured = not_measured ?: r->not_measured;
				if (!r->done)
					continue;
				b[n] = r->bytes;
				drop[n] = r->rss0 > r->rss1 ? r->rss0 - r->rss1 : 0;
				v[n++] = r->wall_ns;
			}
			if (!n && not_measured)
				fprintf(f, "%-19s %-17s %12s %28s %9s %9s\n", res->t->name,
					phase_names[p], "-", "not measured (summary.json)", "-", "-");
			if (!n)
				continue;
			/* QEMU's RSS fall (from /proc): a share of the requested shrink, or
			 * MiB for a passive technique. */
			if (p == PH_SHRINK || p == PH_SHRINK_UNTOUCHED) {
				if (res->t->set_size)
					snprintf(drops, sizeof(drops), "%.1f%%",
						 100 * median_u64(drop, n) / (double)(o->mem - o->shrink_to));
				else
					snprintf(drops, sizeof(drops), "%.0f MiB", median_u64(drop, n) / MiB);
			}
			median_ci95(v, n, &ci);
			if (ci.coverage < min_cov)
				min_cov = ci.coverage;
			snprintf(cis, sizeof(cis), "[%.3f, %.3f] s %5.1f%%", ci.lo / 1e9, ci.hi / 1e9,
				 100 * ci.coverage);
			fprintf(f, "%-19s %-17s %10.3f s %28s %9.3f %9s\n", res->t->name,
				phase_names[p], ci.median / 1e9, cis,
				ci.median > 0 ? median_u64(b, n) / (double)GiB / (ci.median / 1e9) : 0,
				drops);
		}
	}
	fprintf(f, "interval: order statistics [x(k), x(n+1-k)] around the median, with their "
		"coverage%s\n", min_cov < 0.95 ? "; below 6 samples [min, max], under 95 %" : "");
}

/* "%.*f" of a median scaled by div, or "n/a" where it is null. */
static const char *fmt_median(char *buf, size_t len, json_t *v, double div, int prec)
{
	if (json_is_null(v) || !v)
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.*f", prec, json_real_value(v) / div);
	return buf;
}

/* Medians of the per-phase breakdown: host BPF totals and the guest events
 * that took longest. */
static void print_breakdown(FILE *f, json_t *summary)
{
	const char *tech, *phase;
	json_t *tj, *pj;

	fprintf(f, "\nbreakdown: host = QEMU's reclaim syscalls and faults (BPF; in the "
		"breakdown iteration, outside the medians), guest = driver/allocator events "
		"(agent trace; medians); n/a: not measured (summary.json why_null)\n");
	fprintf(f, "%-19s %-17s %9s %9s %9s %9s %9s  %s\n", "technique", "phase", "madvise",
		"madv ms", "disc MiB", "RAM flt", "kvm exit", "guest: top events by time (ms)");
	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *h = json_object_get(json_object_get(pj, "breakdown"), "host");
			json_t *g = json_object_get(json_object_get(pj, "breakdown"), "guest");
			char top[160] = "", c[5][24];
			const char *used[3] = { 0 };

			if (!json_is_object(json_object_get(pj, "breakdown")))
				continue; /* a phase the technique has not */
			for (int k = 0; k < 3; k++) {
				const char *name, *best = NULL;
				double best_ns = 0;
				json_t *e;

				json_object_foreach(g, name, e) {
					double ns = json_real_value(json_object_get(e, "sum_ns_median"));

					if (ns > best_ns && name != used[0] && name != used[1]) {
						best = name;
						best_ns = ns;
					}
				}
				if (!best)
					break;
				used[k] = best;
				snprintf(top + strlen(top), sizeof(top) - strlen(top), "%s%s %.1f",
					 k ? ", " : "", best, best_ns / 1e6);
			}
			fprintf(f, "%-19s %-17s %9s %9s %9s %9s %9s  %s\n", tech, phase,
				fmt_median(c[0], 24, json_object_get(h, "madvise_n"), 1, 0),
				fmt_median(c[1], 24, json_object_get(h, "madvise_ns"), 1e6, 1),
				fmt_median(c[2], 24, json_object_get(h, "discard_bytes"), MiB, 0),
				fmt_median(c[3], 24, json_object_get(h, "ram_faults"), 1, 0),
				fmt_median(c[4], 24, json_object_get(h, "kvm_exits"), 1, 0),
				json_is_null(g) ? "n/a" : top);
		}
	}
}

void print_report(FILE *f, const struct tech_results *res, const struct opts *o, json_t *summary)
{
	json_t *s;

	if (o->vms > 1) {
		s = multivm_summary(res, o);
		multivm_print(f, s);
	} else if (workload_is_auto(o)) {
		s = autoreclaim_summary(o->tmp_dir, res, o);
		autoreclaim_print(f, s);
	} else {
		print_table(f, res, o);
		print_breakdown(f, summary);
		qemu_phases_print(f, summary);
		overhead_print(f, summary);
		limits_print(f, summary);
		ratios_print(f, summary);
		s = o->workload ? interference_summary(res, o) : NULL;
		if (s)
			interference_print(f, s, o);
	}
	json_decref(s);
}

/* Writes every results file into tmp, carrying on past a failure so that as
 * much as possible is kept; returns the first error. */
static int write_text(const char *dir, const char *name, const char *text)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fputs(text, of.f);
	return out_file_commit(&of);
}

int write_results(const char *tmp, const struct tech_results *res, const struct opts *o,
		  json_t *summary, json_t *meta, const char *report)
{
	json_t *trace = json_object(), *events = json_array();
	int err, e;

	for (int i = 0; res[i].t; i++)
		trace_add_iteration(events, i + 1, &res[i], o);
	json_object_set_new(trace, "traceEvents", events);
	json_object_set_new(trace, "displayTimeUnit", json_string("ms"));
	/* the raw data first */
	err = write_csv(tmp, res, o);
	if ((e = write_guest_csv(tmp, res, o)) && !err)
		err = e;
	if ((e = write_rss_csv(tmp)) && !err)
		err = e;
	if ((e = write_json(tmp, "meta.json", meta)) && !err)
		err = e;
	if ((e = write_json(tmp, "summary.json", summary)) && !err)
		err = e;
	if ((e = write_json(tmp, "trace.json", trace)) && !err)
		err = e;
	if ((e = write_text(tmp, "report.txt", report)) && !err)
		err = e;
	json_decref(trace);
	if (o->cycles) {
		json_t *soak = cycles_summary(res, o);

		if ((e = write_json(tmp, "soak.json", soak)) && !err)
			err = e;
		json_decref(soak);
	}
	if (workload_is_auto(o)) {
		json_t *footprint = o->vms > 1 ? multivm_summary(res, o)
					       : autoreclaim_summary(tmp, res, o);

		if (o->vms == 1 && (e = autoreclaim_write(tmp, res, o)) && !err)
			err = e;
		if ((e = write_json(tmp, "footprint.json", footprint)) && !err)
			err = e;
		json_decref(footprint);
	} else if (o->workload) {
		json_t *interference = interference_summary(res, o);

		if ((e = interference_write(tmp, res, o)) && !err)
			err = e;
		if ((e = write_json(tmp, "interference.json", interference)) && !err)
			err = e;
		json_decref(interference);
	}
	return err;
}
