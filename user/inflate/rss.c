/* The RSS sampler: a thread that reads QEMU's RSS while a VM runs and, with
 * --live, prints the phase's log2 histograms once a second (the main thread
 * may be blocked in a guest workload). */
#include "common.h"
#include "hostprobes.h"
#include "inflate.h"
#include "log2hist.h"
#include "metric_names.h"
#include "technique.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	pthread_mutex_t lock;
	struct rss_sample *s;
	size_t n, cap;
	const struct technique *tech;
	unsigned iter;
	enum phase phase;
	bool stop;
} rss = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void rss_record(uint64_t t, uint64_t v)
{
	pthread_mutex_lock(&rss.lock);
	if (rss.n == rss.cap) {
		size_t cap = rss.cap ? rss.cap * 2 : 4096;
		struct rss_sample *s = realloc(rss.s, cap * sizeof(*s));

		if (s) {
			rss.s = s;
			rss.cap = cap;
		}
	}
	if (rss.n < rss.cap)
		rss.s[rss.n++] = (struct rss_sample){ t, v, rss.tech, rss.iter, rss.phase };
	pthread_mutex_unlock(&rss.lock);
}

void rss_foreach(void (*fn)(const struct rss_sample *s, void *arg), void *arg)
{
	pthread_mutex_lock(&rss.lock);
	for (size_t i = 0; i < rss.n; i++)
		fn(&rss.s[i], arg);
	pthread_mutex_unlock(&rss.lock);
}

void set_phase(struct run *r, enum phase p)
{
	pthread_mutex_lock(&rss.lock); /* the sampler's live_print reads r->phase */
	r->phase = p;
	rss.phase = p;
	pthread_mutex_unlock(&rss.lock);
}

void rss_mark_host_ok(struct run *r)
{
	pthread_mutex_lock(&rss.lock);
	r->host_ok = true;
	pthread_mutex_unlock(&rss.lock);
}

/* --live: log2 histograms of the reclaim syscalls and faults of this phase.
 * Called with rss.lock held, which guards live_base and host_ok. */
static void live_print(struct run *r, bool force)
{
	struct hist_entry *e;
	bool header = false;
	int n;

	if (!r->o->live || !r->host_ok || r->phase == PH_BOOT ||
	    (!force && now_ns() - r->live_last < SEC))
		return;
	r->live_last = now_ns();
	n = host_probes_read(r->hp, &e);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		const struct hist_key *k = &e[i].key;
		struct hist h = e[i].val;
		char name[96];
		const char *unit;
		bool shown = k->metric == M_MADVISE || k->metric == M_FALLOCATE ||
			     (k->metric == M_USER_FAULT && k->sub) || k->metric == M_KVM_EXIT;

		if ((int)k->pid != r->vm->pid || !shown)
			continue;
		for (int j = 0; j < r->nlive_base; j++) {
			const struct hist_entry *b = &r->live_base[j];

			if (memcmp(&b->key, k, sizeof(*k)))
				continue;
			for (int s = 0; s < HIST_SLOTS; s++)
				h.slots[s] -= b->val.slots[s];
			h.count -= b->val.count;
		}
		if (!h.count)
			continue;
		if (!header)
			fprintf(stderr, "%s--- %s %s, %s ---\n", r->o->progress ? "\r\033[K" : "",
				r->t->name, phase_names[r->phase],
				force ? "whole phase" : "since the phase began");
		header = true;
		fprintf(stderr, "%s: %llu events\n", hist_name(k, NULL, name, sizeof(name)), h.count);
		unit = metric_unit(k->metric, host_probes_fault_latency(r->hp));
		if (strcmp(unit, "events")) /* count-only metrics have no distribution */
			print_log2_hist(stderr, h.slots, HIST_SLOTS, unit);
	}
	free(e);
}

void live_phase_begin(struct run *r)
{
	pthread_mutex_lock(&rss.lock);
	if (r->o->live && r->host_ok) {
		free(r->live_base);
		r->nlive_base = host_probes_read(r->hp, &r->live_base);
		if (r->nlive_base < 0)
			r->nlive_base = 0;
		r->live_last = now_ns();
	}
	pthread_mutex_unlock(&rss.lock);
}

void live_phase_end(struct run *r)
{
	pthread_mutex_lock(&rss.lock);
	live_print(r, true);
	pthread_mutex_unlock(&rss.lock);
}

static void *rss_thread(void *arg)
{
	struct run *r = arg;

	for (unsigned tick = 1;; tick++) {
		pthread_mutex_lock(&rss.lock);
		bool stop = rss.stop;
		if (!stop && tick % (SEC / RSS_SAMPLE_NS) == 0)
			live_print(r, false);
		pthread_mutex_unlock(&rss.lock);
		if (stop)
			break;
		uint64_t v = vm_rss(r->vm);
		/* the iterations outside the medians sample alike (the same cost) but keep nothing */
		if (v && r->kind == IT_TIMED)
			rss_record(now_ns(), v);
		usleep(RSS_SAMPLE_NS / 1000);
	}
	return NULL;
}

void rss_sampler_start(struct run *r)
{
	pthread_mutex_lock(&rss.lock);
	rss.tech = r->t;
	rss.iter = r->iter;
	rss.stop = false;
	pthread_mutex_unlock(&rss.lock);
	r->sampling = !pthread_create(&r->sampler, NULL, rss_thread, r);
}

void rss_sampler_stop(struct run *r)
{
	pthread_mutex_lock(&rss.lock);
	rss.stop = true;
	pthread_mutex_unlock(&rss.lock);
	if (r->sampling)
		pthread_join(r->sampler, NULL);
	r->sampling = false;
}
