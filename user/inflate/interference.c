/* inflate --workload stream|ftq: the interference benchmark. After the touch
 * phase the guest runs ht-stream or ht-ftq for --seconds while the host shrinks
 * at --shrink-at and grows at --grow-at (seconds after the workload was
 * started). The marks are the measured windows of those phases, moved onto the
 * guest's clock, so they line up with the workload's intervals. */
#include "agent.h"
#include "common.h"
#include "deficit.h"
#include "stats.h"
#include "technique.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct workload_thread {
	struct run *r;
	const char *const *argv;
	json_t *result;
	int err;
};

static void *workload_main(void *p)
{
	struct workload_thread *w = p;
	unsigned timeout_s = w->r->o->seconds_ns / SEC + PHASE_TIMEOUT_NS / SEC;

	w->err = agent_run(w->r->vm->agent, w->argv, timeout_s, &w->result, NULL);
	return NULL;
}

/* Sleeps until host time t, or returns early when the VM died or on a signal. */
static int sleep_until(struct run *r, uint64_t t)
{
	int err;

	while (now_ns() < t) {
		if ((err = vm_gone(r)))
			return err;
		progress(r, "%s running, %.1f s to the next resize", r->o->workload,
			 (t - now_ns()) / 1e9);
		usleep(20 * 1000);
	}
	return 0;
}

int run_interference(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	char bytes_s[32], threads_s[16], seconds_s[32];
	const char *argv[10] = { 0 };
	struct workload_thread w = { .r = r, .argv = argv };
	uint64_t start, guest_start;
	pthread_t thread;
	int err;

	snprintf(bytes_s, sizeof(bytes_s), "%llu", (unsigned long long)o->workload_bytes);
	snprintf(threads_s, sizeof(threads_s), "%u", o->vcpus);
	snprintf(seconds_s, sizeof(seconds_s), "%llu", (unsigned long long)(o->seconds_ns / SEC));
	if (!strcmp(o->workload, "stream")) {
		const char *a[] = { "ht-stream", "--bytes", bytes_s, "--threads", threads_s,
				    "--seconds", seconds_s, NULL };
		memcpy(argv, a, sizeof(a));
	} else {
		const char *a[] = { "ht-ftq", "--threads", threads_s, "--seconds", seconds_s,
				    "--interval-ms", "10", NULL };
		memcpy(argv, a, sizeof(a));
	}
	/* The agent is the workload thread's alone until it returns. */
	start = now_ns();
	if (pthread_create(&thread, NULL, workload_main, &w)) {
		ht_err("cannot start the workload thread");
		return -EAGAIN;
	}
	err = sleep_until(r, start + o->shrink_at_ns) ?:
	      phase_shrink(r, PH_SHRINK, &it->ph[PH_SHRINK], 0) ?:
	      sleep_until(r, start + o->grow_at_ns) ?:
	      phase_grow(r, PH_GROW, &it->ph[PH_GROW]);
	/* On an error the workload's call ends too: with the VM, on a signal, or
	 * with the workload itself. */
	pthread_join(thread, NULL);
	if (!err && w.err)
		err = failed(r, w.err);
	if (err) {
		json_decref(w.result);
		return err;
	}
	if (!agent_u64(w.result, "start_ns", &guest_start) ||
	    it->ph[PH_GROW].t1 > guest_start + r->clock_offset + o->seconds_ns)
		ht_warn("%s: the workload ended before the grow did; its figures cover only "
			"part of the resizes (raise --seconds)", r->t->name);
	it->workload = w.result;
	it->clock_offset = r->clock_offset;
	return 0;
}

/* The guest's series, checked: guest data. */
static int parse_series(json_t *result, unsigned threads, struct series *s, uint64_t **buf,
			uint64_t *start_ns)
{
	json_t *rows = json_object_get(result, "series"), *row, *v;
	uint64_t interval;
	size_t t, k, n;

	if (!agent_u64(result, "start_ns", start_ns) ||
	    !agent_u64(result, "interval_ns", &interval) || !interval ||
	    !json_is_array(rows) || json_array_size(rows) != threads ||
	    !json_is_array(json_array_get(rows, 0)))
		return -EPROTO;
	n = json_array_size(json_array_get(rows, 0));
	if (!n || n > 100000)
		return -EPROTO;
	*buf = calloc(threads * n, sizeof(**buf));
	*s = (struct series){ .threads = threads, .intervals = n, .interval_ns = interval,
			      .amount = *buf };
	json_array_foreach(rows, t, row) {
		if (!json_is_array(row) || json_array_size(row) != n)
			return -EPROTO;
		json_array_foreach(row, k, v) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return -EPROTO;
			(*buf)[t * n + k] = json_integer_value(v);
		}
	}
	return 0;
}

/* A host window [t0, t1) relative to the series' start on the guest clock. */
static void window(const struct phase_result *p, int64_t offset, uint64_t start,
		   uint64_t *from, uint64_t *to)
{
	int64_t a = (int64_t)p->t0 - offset - (int64_t)start, b = (int64_t)p->t1 - offset - (int64_t)start;

	*from = a > 0 ? a : 0;
	*to = b > 0 ? b : 0;
}

enum metric { M_TIME_LOST, M_P1_RATE, M_SHRINK_LOST, M_GROW_LOST, M_NR };
static const char *const metric_names[M_NR] = {
	"time_lost_s", "p1_rate_per_s", "shrink_work_lost_thread_s", "grow_work_lost_thread_s",
};

/* Metrics of one iteration; NAN where the series has no baseline. */
static int iteration_metrics(const struct iteration *it, int64_t offset, unsigned threads,
			     double m[M_NR], uint64_t marks[4])
{
	struct series s;
	uint64_t *buf = NULL, start;
	double base;
	int err = parse_series(it->workload, threads, &s, &buf, &start);

	if (!err) {
		window(&it->ph[PH_SHRINK], offset, start, &marks[0], &marks[1]);
		window(&it->ph[PH_GROW], offset, start, &marks[2], &marks[3]);
		m[M_TIME_LOST] = series_baseline(&s, marks[0], &base)
					 ? series_time_lost(&s, base, marks[0]) : NAN;
		m[M_P1_RATE] = series_quantile_rate(&s, 0.01);
		m[M_SHRINK_LOST] = series_work_lost(&s, marks[0], marks[0], marks[1]);
		m[M_GROW_LOST] = series_work_lost(&s, marks[0], marks[2], marks[3]);
		for (int i = M_SHRINK_LOST; i <= M_GROW_LOST; i++)
			if (m[i] < 0)
				m[i] = NAN;
	}
	free(buf);
	return err;
}

/* Per technique: each metric's samples (micro-units), median and interval. */
json_t *interference_summary(const struct tech_results *res, const struct opts *o)
{
	json_t *s = json_object();

	for (; res->t; res++) {
		json_t *tj = json_object();
		double m[o->iterations][M_NR];
		uint64_t marks[4];

		for (unsigned i = 0; i < o->iterations; i++)
			if (iteration_metrics(&res->its[i], res->its[i].clock_offset, o->vcpus, m[i],
					      marks))
				for (int k = 0; k < M_NR; k++)
					m[i][k] = NAN;
		for (int k = 0; k < M_NR; k++) {
			json_t *samples = json_array();
			uint64_t v[o->iterations];
			struct median_ci ci;
			size_t n = 0;

			for (unsigned i = 0; i < o->iterations; i++) {
				json_array_append_new(samples, isnan(m[i][k]) ? json_null()
									       : json_real(m[i][k]));
				if (!isnan(m[i][k]))
					v[n++] = llround(m[i][k] * 1e6);
			}
			if (!n) {
				json_object_set_new(tj, metric_names[k],
						    json_pack("{s:o, s:n, s:s}", "samples", samples,
							      "median", "why",
							      "no interval before the shrink to "
							      "take a baseline from"));
				continue;
			}
			median_ci95(v, n, &ci);
			json_object_set_new(tj, metric_names[k],
					    json_pack("{s:o, s:f, s:[f,f], s:f}", "samples", samples,
						      "median", ci.median / 1e6, "interval",
						      ci.lo / 1e6, ci.hi / 1e6, "interval_coverage",
						      ci.coverage));
		}
		json_object_set_new(s, res->t->name, tj);
	}
	return s;
}

/* workload.csv (one row per thread and interval) and marks.csv. */
int interference_write(const char *dir, const struct tech_results *res, const struct opts *o)
{
	char path[4096];
	FILE *f, *mf;
	int err = 0;

	snprintf(path, sizeof(path), "%s/workload.csv", dir);
	f = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/marks.csv", dir);
	mf = fopen(path, "w");
	if (!f || !mf) {
		ht_err("%s: %s", path, strerror(errno));
		err = -errno;
		goto out;
	}
	fprintf(f, "technique,iteration,thread,interval,t_s,amount,rate_per_s\n");
	fprintf(mf, "technique,iteration,phase,start_s,end_s\n");
	for (; res->t; res++) {
		for (unsigned i = 0; i < o->iterations; i++) {
			const struct iteration *it = &res->its[i];
			struct series s;
			uint64_t *buf = NULL, start, from, to;

			if (parse_series(it->workload, o->vcpus, &s, &buf, &start)) {
				free(buf);
				continue;
			}
			for (unsigned t = 0; t < s.threads; t++)
				for (unsigned k = 0; k < s.intervals; k++) {
					uint64_t a = s.amount[t * s.intervals + k];

					fprintf(f, "%s,%u,%u,%u,%.3f,%llu,%.1f\n", res->t->name, i + 1,
						t, k, k * s.interval_ns / 1e9, (unsigned long long)a,
						a * 1e9 / s.interval_ns);
				}
			for (enum phase p = PH_SHRINK; p <= PH_GROW; p++) {
				window(&it->ph[p], it->clock_offset, start, &from, &to);
				fprintf(mf, "%s,%u,%s,%.6f,%.6f\n", res->t->name, i + 1, phase_names[p],
					from / 1e9, to / 1e9);
			}
			free(buf);
		}
	}
	if (ferror(f) || ferror(mf)) {
		ht_err("cannot write the workload series to %s", dir);
		err = -EIO;
	}
out:
	if (f && fclose(f) && !err)
		err = -errno;
	if (mf && fclose(mf) && !err)
		err = -errno;
	return err;
}

static double time_lost(json_t *tj)
{
	json_t *m = json_object_get(json_object_get(tj, "time_lost_s"), "median");

	return json_is_number(m) ? json_number_value(m) : INFINITY;
}

static int by_time_lost(const void *a, const void *b)
{
	double x = time_lost(*(json_t *const *)a), y = time_lost(*(json_t *const *)b);

	return (x > y) - (x < y);
}

/* "ordering by time lost: a 0.01 s < b 0.12 s < c 3.4 s" (unmeasured last). */
static void interference_print_order(FILE *f, json_t *summary)
{
	size_t n = json_object_size(summary), k = 0;
	json_t *tjs[n ? n : 1], *tj;
	const char *names[n ? n : 1], *key;

	json_object_foreach(summary, key, tj)
		tjs[k++] = tj;
	qsort(tjs, n, sizeof(*tjs), by_time_lost);
	for (k = 0; k < n; k++)
		json_object_foreach(summary, key, tj)
			if (tj == tjs[k])
				names[k] = key;
	fprintf(f, "ordering by time lost (least first):");
	for (k = 0; k < n; k++) {
		double v = time_lost(tjs[k]);

		fprintf(f, "%s %s", k ? " <" : "", names[k]);
		if (isfinite(v))
			fprintf(f, " %.3f s", v);
		else
			fprintf(f, " (not measured)");
	}
	fprintf(f, "\n");
}

void interference_print(FILE *f, json_t *summary, const struct opts *o)
{
	const char *key;
	json_t *tj;

	fprintf(f, "\n%s while shrinking at %.0f s and growing at %.0f s (median of %u):\n",
	       o->workload, o->shrink_at_ns / 1e9, o->grow_at_ns / 1e9, o->iterations);
	fprintf(f, "%-22s %14s %18s %20s %20s\n", "technique", "time lost s",
	       !strcmp(o->workload, "stream") ? "1% bandwidth MB/s" : "1% work units/s",
	       "shrink lost thread-s", "grow lost thread-s");
	json_object_foreach(summary, key, tj) {
		fprintf(f, "%-22s", key);
		for (int k = 0; k < M_NR; k++) {
			json_t *med = json_object_get(json_object_get(tj, metric_names[k]), "median");
			double v = json_number_value(med);

			if (k == M_P1_RATE && !strcmp(o->workload, "stream"))
				v /= 1e6;
			if (json_is_null(med))
				fprintf(f, " %*s", k ? (k == M_P1_RATE ? 18 : 20) : 14, "-");
			else
				fprintf(f, " %*.3f", k ? (k == M_P1_RATE ? 18 : 20) : 14, v);
		}
		fprintf(f, "\n");
	}
	interference_print_order(f, summary);
}
