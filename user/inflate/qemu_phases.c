/* QEMU-internal phase timing in `hatrace inflate`: the USDT programs of
 * user/lib/qemu_usdt.c on the VM's QEMU report when QEMU handled each resize
 * request and when it reached the target, with the virtqueue requests and
 * discards in between. summary.json and the printed report put these next to
 * the phase as timed from QMP and /proc; the gap is QMP's polling and the RSS
 * settling. virtio-hyperalloc's install requests are counted and timed per
 * phase (the breakdown's qemu_installs). A QEMU without the probes (Debian's)
 * is said once, and summary.json carries the reason. */
#include "common.h"
#include "log2hist.h"
#include "qemu_usdt.h"
#include "technique.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* QEMU phases and free page reports held until the phase that holds them
 * ends; a phase has one resize, and a VM reports a few hundred times. */
#define MAX_PHASES 64
#define MAX_REPORTS 8192

struct report {
	uint64_t time_ns, bytes;
	struct qemu_usdt_total discards; /* running total at the report */
};

struct qemu_phases {
	struct qemu_usdt *u;
	struct qemu_phase phases[MAX_PHASES];
	unsigned nphases;
	struct report reports[MAX_REPORTS];
	unsigned nreports;
	uint64_t lost; /* phases or reports beyond the arrays, or out of range */
	uint64_t mem_bytes; /* guest RAM: no report is larger */
	struct qemu_usdt_total base[QEMU_USDT_NR]; /* totals when the last phase ended */
	/* totals and install latency slots when the phase under way began */
	struct qemu_usdt_total begin[QEMU_USDT_NR];
	unsigned long long begin_hist[QEMU_USDT_HIST_SLOTS];
};

_Static_assert(ARRAY_SIZE(((struct qemu_window *)0)->install_hist) == QEMU_USDT_HIST_SLOTS,
	       "qemu_window.install_hist holds every log2 slot");

/* The resize phases summary.json reports QEMU's view of. */
static const enum phase resize_phases[] = { PH_SHRINK, PH_GROW, PH_SHRINK_UNTOUCHED };
/* The phases whose installs it reports (touch2 shares install's window). */
static const enum phase install_phases[] = { PH_SHRINK_UNTOUCHED, PH_SHRINK, PH_GROW,
					     PH_INSTALL };

static void on_phase(void *ctx, const struct qemu_phase *p)
{
	struct qemu_phases *qp = ctx;

	if (qp->nphases < MAX_PHASES)
		qp->phases[qp->nphases++] = *p;
	else
		qp->lost++;
}

static void on_record(void *ctx, enum qemu_usdt_event event, const struct qemu_usdt_record *r)
{
	struct qemu_phases *qp = ctx;

	if (event != QEMU_BALLOON_FREE_PAGE_REPORT)
		return;
	/* QEMU is an untrusted peer: a report larger than guest RAM is not kept */
	if (qp->nreports == MAX_REPORTS || r->args[1] > qp->mem_bytes) {
		qp->lost++;
		return;
	}
	qp->reports[qp->nreports++] = (struct report){
		.time_ns = r->time_ns, .bytes = r->args[1],
		.discards = r->totals[QEMU_DISCARD_SYSCALL],
	};
}

/* What one probe hit costs, measured once, when QEMU is first attached to. */
static bool hit_tried;
static double hit_ns = -1;
static char hit_why[128] = "no QEMU was attached to";

double qemu_phases_hit_ns(const char **why)
{
	*why = hit_why;
	return hit_ns;
}

void qemu_phases_start(struct run *r, struct iteration *it)
{
	static bool said;
	struct qemu_usdt_handlers h = { .record = on_record, .phase = on_phase };
	struct qemu_phases *qp = NULL;
	const char *why;

	if (geteuid() != 0)
		why = "not root: USDT programs need CAP_BPF and CAP_PERFMON";
	else
		why = qemu_usdt_unavailable(r->o->qemu, it->qemu_why, sizeof(it->qemu_why));
	if (!why) {
		qp = calloc(1, sizeof(*qp));
		if (qp)
			qp->mem_bytes = r->o->mem;
		h.ctx = qp;
		if (qp && !(qp->u = qemu_usdt_attach(r->vm->pid, NULL,
						       r->per_event ? QEMU_USDT_DISCARDS : 0, &h)))
			why = "attaching the USDT programs to QEMU failed (see the error above)";
	}
	if (!why && !qp)
		why = "out of memory";
	if (why) {
		if (why != it->qemu_why)
			snprintf(it->qemu_why, sizeof(it->qemu_why), "%s", why);
		if (!said)
			ht_warn("QEMU-internal timing unavailable: %s; phases are timed from QMP and "
				"/proc only", it->qemu_why);
		said = true;
		free(qp);
		return;
	}
	it->qemu_why[0] = 0;
	if (!hit_tried) {
		hit_tried = true;
		if (!qemu_usdt_hit_ns(&hit_ns, hit_why, sizeof(hit_why)))
			hit_why[0] = 0;
		else
			ht_warn("the cost of a USDT probe hit is unknown (%s): no QEMU probe "
				"estimate", hit_why);
	}
	qemu_usdt_totals(qp->u, qp->base);
	r->qp = qp;
	qemu_phases_begin(r);
}

/* A phase begins: its installs count from here. */
void qemu_phases_begin(struct run *r)
{
	struct qemu_phases *qp = r->qp;

	if (!qp)
		return;
	qemu_usdt_totals(qp->u, qp->begin);
	qemu_usdt_hist(qp->u, QEMU_HIST_HA_INSTALL_NS, qp->begin_hist);
}

void qemu_phases_poll(struct run *r)
{
	if (r->qp)
		qemu_usdt_drain(r->qp->u);
}

/* The first QEMU phase that started in the window: a resize. */
static bool resize_window(struct qemu_phases *qp, const struct phase_result *pr,
			  struct qemu_window *w)
{
	for (unsigned i = 0; i < qp->nphases; i++) {
		const struct qemu_phase *p = &qp->phases[i];
		const struct qemu_usdt_total *work = p->work;

		if (p->start_ns < pr->t0 || p->start_ns > pr->t1)
			continue;
		*w = (struct qemu_window){
			.seen = true, .reached = p->reached, .start_ns = p->start_ns,
			.end_ns = p->end_ns,
			.discards = work[QEMU_DISCARD_SYSCALL].count,
			.discard_bytes = work[QEMU_DISCARD_SYSCALL].sum,
			.discard_ns = work[QEMU_DISCARD_SYSCALL].ns,
		};
		if (!strcmp(p->device, "virtio-hyperalloc")) {
			/* its own event per discard call: a few per resize, always on */
			w->discards = work[QEMU_HA_DISCARD].count;
			w->discard_bytes = work[QEMU_HA_DISCARD].sum;
			w->discards_counted = true;
		} else if (!strcmp(p->device, "virtio-mem")) {
			w->requests = work[QEMU_MEM_PLUG_REQUEST].count +
				      work[QEMU_MEM_UNPLUG_REQUEST].count;
			w->request_ns = work[QEMU_MEM_REQUEST].ns;
		} else if (!strcmp(p->device, "virtio-balloon")) {
			w->requests = work[QEMU_BALLOON_SET_CONFIG].count;
			w->request_pages = work[QEMU_BALLOON_SET_CONFIG].sum;
		}
		return true;
	}
	return false;
}

/* Free page reports in the window: from the first to the last. */
static bool report_window(struct qemu_phases *qp, const struct phase_result *pr,
			  struct qemu_window *w)
{
	const struct report *last = NULL;

	for (unsigned i = 0; i < qp->nreports; i++) {
		const struct report *rep = &qp->reports[i];

		if (rep->time_ns < pr->t0 || rep->time_ns > pr->t1)
			continue;
		if (!w->seen)
			*w = (struct qemu_window){ .seen = true, .reached = true,
						   .start_ns = rep->time_ns };
		w->end_ns = rep->time_ns;
		w->reports++;
		w->report_bytes += rep->bytes;
		last = rep;
	}
	if (last) {
		const struct qemu_usdt_total *b = &qp->base[QEMU_DISCARD_SYSCALL];

		w->discards = last->discards.count - b->count;
		w->discard_bytes = last->discards.sum - b->sum;
		w->discard_ns = last->discards.ns - b->ns;
	}
	return w->seen;
}

/* virtio-hyperalloc's install requests since the phase began. */
static void install_window(struct qemu_phases *qp, struct qemu_window *w)
{
	const struct qemu_usdt_total *b = &qp->begin[QEMU_HA_INSTALL];
	struct qemu_usdt_total now[QEMU_USDT_NR];
	unsigned long long hist[QEMU_USDT_HIST_SLOTS];

	qemu_usdt_totals(qp->u, now);
	qemu_usdt_hist(qp->u, QEMU_HIST_HA_INSTALL_NS, hist);
	w->installs = now[QEMU_HA_INSTALL].count - b->count;
	w->install_children = now[QEMU_HA_INSTALL].sum - b->sum;
	w->install_ns = now[QEMU_HA_INSTALL].ns - b->ns;
	for (int i = 0; i < QEMU_USDT_HIST_SLOTS; i++)
		w->install_hist[i] = hist[i] - qp->begin_hist[i];
}

/* Hits of the attached probes since the phase began (a probe not attached
 * counts none). */
static uint64_t probe_hits(const struct qemu_phases *qp)
{
	struct qemu_usdt_total now[QEMU_USDT_NR];
	uint64_t hits = 0;

	qemu_usdt_totals(qp->u, now);
	for (int e = 0; e < QEMU_USDT_PROBES; e++)
		hits += now[e].count - qp->begin[e].count;
	return hits;
}

void qemu_phases_end(struct run *r, struct phase_result *pr)
{
	struct qemu_phases *qp = r->qp;

	if (!qp)
		return;
	qemu_usdt_drain(qp->u);
	memset(&pr->qemu, 0, sizeof(pr->qemu));
	if (!resize_window(qp, pr, &pr->qemu))
		report_window(qp, pr, &pr->qemu);
	install_window(qp, &pr->qemu);
	pr->qemu.probe_hits = probe_hits(qp);
	pr->qemu.discards_timed = r->per_event;
	pr->qemu.discards_counted |= r->per_event;
	qp->nphases = qp->nreports = 0;
	qemu_usdt_totals(qp->u, qp->base);
}

void qemu_phases_stop(struct run *r)
{
	struct qemu_phases *qp = r->qp;

	if (!qp)
		return;
	if (qemu_usdt_drops(qp->u) || qp->lost)
		ht_warn("%s iteration %s: %llu QEMU USDT records dropped, %llu phases or reports "
			"not kept: QEMU-internal timing may miss some", r->t->name, r->label,
			(unsigned long long)qemu_usdt_drops(qp->u), (unsigned long long)qp->lost);
	qemu_usdt_detach(qp->u);
	free(qp);
	r->qp = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double median_i64(int64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* A QEMU window's values in summary.json (<name>_median). The phase is the
 * host's (QMP and /proc) window; gap = phase - qemu; start_delay: from the
 * phase's start (the QMP command) to QEMU handling it; end_delay: from QEMU
 * reaching the target to the phase's end (QMP polling, RSS settling). */
enum window_field { WF_QEMU, WF_PHASE, WF_GAP, WF_START_DELAY, WF_END_DELAY, WF_REQUESTS,
		    WF_REQUEST_NS, WF_REQUEST_PAGES, WF_DISCARDS, WF_DISCARD_NS,
		    WF_DISCARD_BYTES, WF_REPORTS, WF_REPORT_BYTES, WF_NR };
static const char *const window_field_names[WF_NR] = {
	[WF_QEMU] = "qemu_ns", [WF_PHASE] = "phase_ns", [WF_GAP] = "gap_ns",
	[WF_START_DELAY] = "start_delay_ns", [WF_END_DELAY] = "end_delay_ns",
	[WF_REQUESTS] = "requests", [WF_REQUEST_NS] = "request_ns",
	[WF_REQUEST_PAGES] = "request_pages", [WF_DISCARDS] = "discards",
	[WF_DISCARD_NS] = "discard_ns", [WF_DISCARD_BYTES] = "discard_bytes",
	[WF_REPORTS] = "reports", [WF_REPORT_BYTES] = "report_bytes",
};

static void window_values(const struct phase_result *pr, int64_t v[WF_NR])
{
	const struct qemu_window *w = &pr->qemu;

	v[WF_QEMU] = w->end_ns - w->start_ns;
	v[WF_PHASE] = pr->wall_ns;
	v[WF_GAP] = (int64_t)pr->wall_ns - v[WF_QEMU];
	v[WF_START_DELAY] = (int64_t)(w->start_ns - pr->t0);
	v[WF_END_DELAY] = (int64_t)(pr->t1 - w->end_ns);
	v[WF_REQUESTS] = w->requests;
	v[WF_REQUEST_NS] = w->request_ns;
	v[WF_REQUEST_PAGES] = w->request_pages;
	v[WF_DISCARDS] = w->discards;
	v[WF_DISCARD_NS] = w->discard_ns;
	v[WF_DISCARD_BYTES] = w->discard_bytes;
	v[WF_REPORTS] = w->reports;
	v[WF_REPORT_BYTES] = w->report_bytes;
}

static json_t *phase_json(const struct tech_results *res, const struct opts *o, enum phase p)
{
	unsigned n = o->iterations, m = 0;
	int64_t vals[WF_NR][n];
	json_t *j, *samples = json_array();
	bool discards_timed = false, discards_counted = false;

	for (unsigned i = 0; i < n; i++) {
		const struct phase_result *pr = &res->its[i].ph[p];
		int64_t v[WF_NR];

		if (!pr->done)
			continue;
		if (!pr->qemu.seen || !pr->qemu.reached) {
			json_array_append_new(samples, json_null());
			continue;
		}
		window_values(pr, v);
		discards_timed |= pr->qemu.discards_timed;
		discards_counted |= pr->qemu.discards_counted;
		json_array_append_new(samples, json_integer(v[WF_QEMU]));
		for (int f = 0; f < WF_NR; f++)
			vals[f][m] = v[f];
		m++;
	}
	if (!m) {
		json_decref(samples);
		return json_pack("{s:s}", "unavailable",
				 res->t->set_size ? "QEMU recorded no completed resize in this phase"
						  : "QEMU recorded no free page report in this phase");
	}
	j = json_pack("{s:s, s:o}", "source",
		      res->t->set_size ? "USDT: request handled in QEMU to target reached"
				       : "USDT: first to last free page report in the phase",
		      "qemu_samples_ns", samples);
	for (int f = 0; f < WF_NR; f++) {
		char key[48];

		snprintf(key, sizeof(key), "%s_median", window_field_names[f]);
		bool known = f == WF_DISCARD_NS ? discards_timed
			     : f == WF_DISCARDS || f == WF_DISCARD_BYTES ? discards_counted : true;

		json_object_set_new(j, key, known ? json_real(median_i64(vals[f], m)) : json_null());
		if (!json_is_null(json_object_get(j, key)))
			continue;
		if (!json_object_get(j, "why_null"))
			json_object_set_new(j, "why_null", json_object());
		json_object_set_new(json_object_get(j, "why_null"), key,
				    json_string(f == WF_DISCARD_NS && discards_counted
						? "QEMU's discard syscalls are timed in the breakdown iteration "
						  "only (breakdown.host has their time)"
						: "QEMU's discard syscalls are traced in the breakdown "
						  "iteration only (breakdown.host has its discards)"));
	}
	return j;
}

/* A phase's install requests (breakdown.qemu_installs): medians per
 * iteration, and the latency of every request of every iteration. */
static json_t *installs_json(const struct tech_results *res, const struct opts *o, enum phase p)
{
	unsigned n = o->iterations, m = 0;
	int64_t count[n], children[n], ns[n];
	unsigned long long hist[QEMU_USDT_HIST_SLOTS] = { 0 }, all_count = 0, all_ns = 0;
	const char *why = "no traced iteration ran this phase";
	json_t *samples = json_array(), *j;

	for (unsigned i = 0; i < n; i++) {
		const struct qemu_window *w = &res->its[i].ph[p].qemu;

		if (!res->its[i].ph[p].done)
			continue;
		if (res->its[i].qemu_why[0]) {
			why = res->its[i].qemu_why;
			json_array_append_new(samples, json_null());
			continue;
		}
		json_array_append_new(samples, json_integer(w->installs));
		count[m] = w->installs;
		children[m] = w->install_children;
		ns[m++] = w->install_ns;
		all_count += w->installs;
		all_ns += w->install_ns;
		for (int s = 0; s < QEMU_USDT_HIST_SLOTS; s++)
			hist[s] += w->install_hist[s];
	}
	if (!m) {
		json_decref(samples);
		return json_pack("{s:s}", "unavailable", why);
	}
	j = json_pack("{s:s, s:o, s:f, s:f, s:f, s:o}", "source",
		      "USDT: hyperalloc_install_start to _end, per install request",
		      "installs_samples", samples, "installs_median", median_i64(count, m),
		      "children_median", median_i64(children, m), "install_ns_median",
		      median_i64(ns, m), "latency_hist_ns", log2_hist_json(hist, QEMU_USDT_HIST_SLOTS));
	if (all_count)
		json_object_set_new(j, "latency_mean_ns", json_real((double)all_ns / all_count));
	return j;
}

void qemu_phases_summary(json_t *summary, const struct tech_results *res, const struct opts *o)
{
	for (; res->t; res++) {
		json_t *tj = json_object_get(summary, res->t->name);
		const char *why = res->its[0].qemu_why;

		for (size_t k = 0; k < ARRAY_SIZE(resize_phases); k++) {
			json_t *pj = json_object_get(tj, phase_names[resize_phases[k]]);

			if (!pj)
				continue;
			json_object_set_new(pj, "qemu_internal",
					    why[0] ? json_pack("{s:s}", "unavailable", why)
						   : phase_json(res, o, resize_phases[k]));
		}
		for (size_t k = 0; k < ARRAY_SIZE(install_phases) && res->t->qemu_installs; k++) {
			json_t *bd = json_object_get(json_object_get(tj, phase_names[install_phases[k]]),
						     "breakdown");

			if (json_is_object(bd))
				json_object_set_new(bd, "qemu_installs",
						    installs_json(res, o, install_phases[k]));
		}
	}
}

static double num(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* The install phase's latency histogram of a technique's breakdown. */
static void install_latency_print(FILE *f, const char *tech, json_t *tj)
{
	json_t *q = json_object_get(json_object_get(json_object_get(tj, phase_names[PH_INSTALL]),
						    "breakdown"), "qemu_installs");
	json_t *latency = json_object_get(q, "latency_hist_ns"), *b;
	unsigned long long slots[QEMU_USDT_HIST_SLOTS] = { 0 };
	size_t i;

	if (!json_array_size(latency))
		return;
	json_array_foreach(latency, i, b) {
		uint64_t low = json_integer_value(json_object_get(b, "low"));

		/* slot 0 holds [0, 1], slot i [2^i, 2^(i+1)) */
		slots[low ? 63 - __builtin_clzll(low) : 0] =
			json_integer_value(json_object_get(b, "count"));
	}
	fprintf(f, "\n%s install latency (every request of every iteration):\n", tech);
	print_log2_hist(f, slots, QEMU_USDT_HIST_SLOTS, "nsecs");
}

/* The breakdown's qemu_installs: a row per phase, then the latency of the
 * install phase's requests. */
static void installs_print(FILE *f, json_t *summary)
{
	const char *tech, *phase;
	json_t *tj, *pj;
	bool header = false;

	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *q = json_object_get(json_object_get(pj, "breakdown"), "qemu_installs");
			const char *why = json_string_value(json_object_get(q, "unavailable"));
			json_t *mean = json_object_get(q, "latency_mean_ns");
			char mean_us[24];

			if (!q)
				continue;
			if (!header)
				fprintf(f, "\nQEMU installs (virtio-hyperalloc USDT, medians): requests, "
					"2 MiB children asked for, their total time and mean latency\n"
					"%-19s %-17s %9s %9s %9s %9s\n", "technique", "phase",
					"installs", "children", "total ms", "mean us");
			header = true;
			if (why) {
				fprintf(f, "%-19s %-17s unavailable: %s\n", tech, phase, why);
				break; /* the run's reason, once */
			}
			snprintf(mean_us, sizeof(mean_us), mean ? "%.1f" : "n/a",
				 json_number_value(mean) / 1e3);
			fprintf(f, "%-19s %-17s %9.0f %9.0f %9.1f %9s\n", tech, phase,
				num(q, "installs_median"), num(q, "children_median"),
				num(q, "install_ns_median") / 1e6, mean_us);
		}
	}
	json_object_foreach(summary, tech, tj)
		install_latency_print(f, tech, tj);
}

void qemu_phases_print(FILE *f, json_t *summary)
{
	const char *tech, *phase, *unavailable = NULL;
	json_t *tj, *pj;

	fprintf(f, "\nQEMU-internal timing (USDT, medians, ms): QEMU = request handled in QEMU to "
	       "target reached (fpr: first to last report); phase = QMP and /proc; gap = "
	       "phase - QEMU\n");
	fprintf(f, "%-19s %-17s %9s %9s %9s %9s %9s %8s %8s %9s %9s\n", "technique", "phase", "phase",
	       "QEMU", "gap", "start+", "end+", "requests", "req ms", "discards", "disc ms");
	json_object_foreach(summary, tech, tj) {
		unavailable = NULL;
		json_object_foreach(tj, phase, pj) {
			json_t *q = json_object_get(pj, "qemu_internal");
			const char *why = json_string_value(json_object_get(q, "unavailable"));

			if (!q)
				continue;
			if (why) {
				/* the run's reason once per technique, a phase's own each time */
				if (!unavailable || strcmp(why, unavailable))
					fprintf(f, "%-19s %-17s unavailable: %s\n", tech, phase, why);
				unavailable = why;
				continue;
			}
			unavailable = NULL;
			/* null: QEMU's discards were traced in the breakdown iteration only */
			char disc[2][16] = { "n/a", "n/a" };

			if (!json_is_null(json_object_get(q, "discards_median"))) {
				snprintf(disc[0], sizeof(disc[0]), "%.0f", num(q, "discards_median"));
				if (!json_is_null(json_object_get(q, "discard_ns_median")))
					snprintf(disc[1], sizeof(disc[1]), "%.1f",
						 num(q, "discard_ns_median") / 1e6);
			}
			fprintf(f, "%-19s %-17s %9.1f %9.1f %9.1f %9.1f %9.1f %8.0f %8.1f %9s %9s\n",
			       tech, phase, num(q, "phase_ns_median") / 1e6,
			       num(q, "qemu_ns_median") / 1e6, num(q, "gap_ns_median") / 1e6,
			       num(q, "start_delay_ns_median") / 1e6,
			       num(q, "end_delay_ns_median") / 1e6,
			       num(q, "requests_median") + num(q, "reports_median"),
			       num(q, "request_ns_median") / 1e6, disc[0], disc[1]);
		}
	}
	installs_print(f, summary);
}
