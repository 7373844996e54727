/* hatrace inflate: the HyperAlloc paper's inflate benchmark on the stock
 * techniques. Each iteration boots a fresh VM: [shrink_untouched, grow,]
 * touch, shrink, grow, install, touch2. Wall times are seen by the host; host
 * BPF probes and the guest agent's trace counters break each phase down. */
#include "agent.h"
#include "cmds.h"
#include "common.h"
#include "hostprobes.h"
#include "log2hist.h"
#include "metric_names.h"
#include "qmp.h"
#include "stats.h"
#include "vm.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stddef.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef HATRACE_GIT_REV
#define HATRACE_GIT_REV "unknown"
#endif

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SEC 1000000000ull
#define POLL_NS (5 * 1000000ull)
#define RSS_SAMPLE_NS (100 * 1000000ull)
#define PHASE_TIMEOUT_NS (1200 * SEC)
#define STALL_NS (60 * SEC) /* a resize that makes no progress for this long failed */
#define VMEM_PATH "/machine/peripheral/vmem0"
/* Marks a results directory as hatrace's: -o replaces only those (or empty ones). */
#define RESULTS_MARKER ".hatrace-results"

enum kind { K_BALLOON, K_FPR, K_VMEM };

static const struct technique {
	const char *name;
	enum kind kind;
} techniques[] = {
	{ "virtio-balloon", K_BALLOON },
	{ "fpr", K_FPR },
	{ "virtio-mem", K_VMEM },
};
#define NTECH ARRAY_SIZE(techniques)

enum phase { PH_BOOT, PH_SHRINK_UNTOUCHED, PH_GROW_UNTOUCHED, PH_TOUCH, PH_SHRINK, PH_GROW,
	     PH_INSTALL, PH_TOUCH2, PH_MAX };
static const char *const phase_names[PH_MAX] = {
	"boot", "shrink_untouched", "grow_untouched", "touch", "shrink", "grow", "install", "touch2",
};
/* The phases of summary.json, in report order. */
static const enum phase summary_phases[] = { PH_SHRINK, PH_GROW, PH_INSTALL, PH_TOUCH2,
					     PH_SHRINK_UNTOUCHED };

/* Host totals of the QEMU process, cumulative; phases difference them. */
struct host_totals {
	uint64_t madvise_n, madvise_ns, fallocate_n, fallocate_ns, discard_bytes;
	uint64_t ram_faults, kvm_exits, kvm_page_faults;
};

struct phase_result {
	bool done;
	uint64_t t0, t1;      /* host CLOCK_MONOTONIC */
	uint64_t wall_ns;     /* t1 - t0, or the guest's time of one pass */
	uint64_t host_ns;     /* install: the host's view of the whole run */
	uint64_t bytes;       /* memory the phase moves */
	uint64_t rss0, rss1;
	struct host_totals host;
	json_t *guest;        /* {"event": {"count":N,"sum_ns":N}} deltas */
};

struct iteration {
	struct phase_result ph[PH_MAX];
	char guest_kernel[128];
	int64_t integrity_pages, integrity_bad; /* -1: not checked */
};

struct rss_sample {
	uint64_t t;
	uint64_t rss;
	unsigned tech, iter;
	enum phase phase;
};

struct opts {
	bool tech[NTECH];
	uint64_t mem, shrink_to, integrity;
	unsigned vcpus, iterations;
	bool untouched, live;
	enum accel accel;
	char accel_why[160];
	char *out_dir;
	char *qemu, *kernel, *initrd;
	const char *append;
	uint64_t boot_timeout_ns;
	bool progress; /* stderr is a terminal */
};

/* Everything about the VM being measured right now. */
struct run {
	const struct opts *o;
	const struct technique *t;
	unsigned tech_idx, iter;
	struct vm *vm;
	struct host_probes *hp;
	bool host_ok, guest_trace_ok;
	struct host_totals host_prev;
	json_t *guest_prev;        /* last trace_read events */
	int64_t clock_offset;      /* host - guest monotonic */
	uint64_t vmem_boot;        /* virtio-mem: boot memory outside the device */
	enum phase phase;
	uint64_t live_last;
	struct hist_entry *live_base;
	int nlive_base;
	pthread_t sampler;
	bool sampling;
	bool death_reported;
};

/* RSS sampler: a thread that reads /proc/PID/status while a VM runs. */
static struct {
	pthread_mutex_t lock;
	struct rss_sample *s;
	size_t n, cap;
	unsigned tech, iter;
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

static void set_phase(struct run *r, enum phase p)
{
	pthread_mutex_lock(&rss.lock); /* the sampler's live_print reads r->phase */
	r->phase = p;
	rss.phase = p;
	pthread_mutex_unlock(&rss.lock);
}

/* ---- host and guest breakdown ---- */

static bool discards(const struct hist_key *k)
{
	if (k->metric == M_MADVISE || k->metric == M_PROCESS_MADVISE)
		return k->sub == 4 /* DONTNEED */ || k->sub == 8 /* FREE */ ||
		       k->sub == 9 /* REMOVE */;
	return k->metric == M_FALLOCATE && (k->sub & 0x02) /* PUNCH_HOLE */;
}

static int host_read(struct run *r, struct host_totals *t)
{
	struct hist_entry *e;
	int n;

	memset(t, 0, sizeof(*t));
	if (!r->host_ok)
		return 0;
	n = host_probes_read(r->hp, &e);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		const struct hist_key *k = &e[i].key;
		const struct hist *h = &e[i].val;

		if ((int)k->pid != r->vm->pid)
			continue;
		switch (k->metric) {
		case M_MADVISE:
		case M_PROCESS_MADVISE:
			t->madvise_n += h->count;
			t->madvise_ns += h->sum;
			break;
		case M_FALLOCATE:
			t->fallocate_n += h->count;
			t->fallocate_ns += h->sum;
			break;
		case M_USER_FAULT:
			if (k->sub == 1)
				t->ram_faults += h->count;
			break;
		case M_KVM_EXIT:
			t->kvm_exits += h->count;
			break;
		case M_KVM_PAGE_FAULT:
			t->kvm_page_faults += h->count;
			break;
		}
		if (discards(k))
			t->discard_bytes += h->bytes;
	}
	free(e);
	return 0;
}

static void host_delta(const struct host_totals *a, const struct host_totals *b,
		       struct host_totals *d)
{
	d->madvise_n = b->madvise_n - a->madvise_n;
	d->madvise_ns = b->madvise_ns - a->madvise_ns;
	d->fallocate_n = b->fallocate_n - a->fallocate_n;
	d->fallocate_ns = b->fallocate_ns - a->fallocate_ns;
	d->discard_bytes = b->discard_bytes - a->discard_bytes;
	d->ram_faults = b->ram_faults - a->ram_faults;
	d->kvm_exits = b->kvm_exits - a->kvm_exits;
	d->kvm_page_faults = b->kvm_page_faults - a->kvm_page_faults;
}

/* Guest trace counters (cumulative), or nothing when the guest does not trace. */
static int guest_read(struct run *r, json_t **out)
{
	*out = NULL;
	return r->guest_trace_ok ? agent_trace_read(r->vm->agent, out) : 0;
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

/* ---- phases ---- */

static void progress(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->o->progress)
		return;
	fprintf(stderr, "\r\033[K[%s %u/%u] %s: ", r->t->name, r->iter + 1, r->o->iterations,
		phase_names[r->phase]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

static int vm_gone(struct run *r)
{
	char why[96];

	if (exiting)
		return -EINTR;
	if (vm_alive(r->vm))
		return 0;
	if (r->death_reported)
		return -EPIPE;
	r->death_reported = true;
	ht_err("QEMU died during %s, iteration %u, phase %s: %s", r->t->name, r->iter + 1,
	       phase_names[r->phase], vm_exit_reason(r->vm, why, sizeof(why)));
	vm_print_console_tail(r->vm, stderr, 15);
	return -EPIPE;
}

/* After a failed call: if QEMU is dying, say so rather than the call's error. */
static int failed(struct run *r, int err)
{
	if (err != -EINTR && vm_alive(r->vm))
		vm_wait_exit(r->vm, 2 * SEC);
	return vm_gone(r) ?: err;
}

/* --live: log2 histograms of the reclaim syscalls and faults of this phase.
 * Called with rss.lock held, which guards live_base and host_ok. */
static void live_print(struct run *r, bool force)
{
	struct hist_entry *e;
	int n;

	bool header = false;

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

/* Samples QEMU's RSS while the VM runs and, with --live, prints the phase's
 * histograms once a second (the main thread may be blocked in a workload). */
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
		if (v)
			rss_record(now_ns(), v);
		usleep(RSS_SAMPLE_NS / 1000);
	}
	return NULL;
}

static int phase_begin(struct run *r, enum phase p, struct phase_result *pr)
{
	int err;

	set_phase(r, p);
	memset(pr, 0, sizeof(*pr));
	if ((err = host_read(r, &r->host_prev)))
		return err;
	pthread_mutex_lock(&rss.lock);
	if (r->o->live && r->host_ok) {
		free(r->live_base);
		r->nlive_base = host_probes_read(r->hp, &r->live_base);
		if (r->nlive_base < 0)
			r->nlive_base = 0;
		r->live_last = now_ns();
	}
	pthread_mutex_unlock(&rss.lock);
	pr->rss0 = vm_rss(r->vm);
	pr->t0 = now_ns();
	return 0;
}

static int phase_end(struct run *r, struct phase_result *pr, uint64_t t1)
{
	struct host_totals now;
	json_t *g;
	int err;

	pr->t1 = t1 ? t1 : now_ns();
	if (!pr->wall_ns)
		pr->wall_ns = pr->t1 - pr->t0;
	pr->rss1 = vm_rss(r->vm);
	if ((err = host_read(r, &now)))
		return err;
	host_delta(&r->host_prev, &now, &pr->host);
	if ((err = guest_read(r, &g)))
		return failed(r, err);
	if (g) {
		pr->guest = agent_trace_delta(r->guest_prev, g);
		json_decref(r->guest_prev);
		r->guest_prev = g;
	}
	pr->done = true;
	pthread_mutex_lock(&rss.lock);
	live_print(r, true);
	pthread_mutex_unlock(&rss.lock);
	if (r->o->progress)
		fprintf(stderr, "\r\033[K");
	if (r->phase == PH_INSTALL)
		return 0; /* reported with touch2 */
	fprintf(stderr, "[%s %u/%u] %-16s %9.3f s", r->t->name, r->iter + 1, r->o->iterations,
		phase_names[r->phase], pr->wall_ns / 1e9);
	if (pr->bytes)
		fprintf(stderr, "  %7.3f GiB/s", pr->wall_ns ?
			pr->bytes / (double)GiB / (pr->wall_ns / 1e9) : 0);
	fprintf(stderr, "  RSS %6.0f -> %6.0f MiB\n", pr->rss0 / (double)MiB, pr->rss1 / (double)MiB);
	return 0;
}

/* Runs a guest workload; the phase is the host's view of the whole request. */
static int phase_workload(struct run *r, enum phase p, struct phase_result *pr,
			  const char *const *argv, uint64_t bytes, json_t **result)
{
	int err;

	if ((err = phase_begin(r, p, pr)))
		return err;
	pr->bytes = bytes;
	progress(r, "running %s in the guest", argv[0]);
	err = agent_run(r->vm->agent, argv, PHASE_TIMEOUT_NS / SEC, result, NULL);
	if (err)
		return failed(r, err);
	return phase_end(r, pr, 0);
}

/* A guest-reported duration; guest data, so checked. */
static int result_ns(json_t *result, const char *key, uint64_t *ns)
{
	json_t *v = json_object_get(result, key);

	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		ht_err("guest workload result lacks a positive '%s'", key);
		return -EPROTO;
	}
	*ns = json_integer_value(v);
	return 0;
}

/* ht-alloc-install writes every page twice in one run: the first pass is
 * install, the second touch2. The host sees only the whole request (kept as
 * the install phase's window and breakdown), so each phase's time is the
 * guest's time of its pass. */
static int phase_install_touch2(struct run *r, struct iteration *it, const char *const *argv,
				uint64_t bytes)
{
	struct phase_result *in = &it->ph[PH_INSTALL], *t2 = &it->ph[PH_TOUCH2];
	json_t *result = NULL;
	uint64_t install_ns, touch2_ns;
	int err;

	err = phase_workload(r, PH_INSTALL, in, argv, bytes, &result);
	if (!err)
		err = result_ns(result, "install_ns", &install_ns) ?:
		      result_ns(result, "touch2_ns", &touch2_ns);
	json_decref(result);
	if (err)
		return err;
	in->host_ns = in->wall_ns;
	in->wall_ns = install_ns;
	*t2 = (struct phase_result){
		.done = true, .bytes = bytes, .wall_ns = touch2_ns, .rss0 = in->rss1,
		.rss1 = in->rss1, .t0 = in->t0 + install_ns, .t1 = in->t0 + install_ns + touch2_ns,
	};
	fprintf(stderr, "[%s %u/%u] %-16s %9.3f s  %7.3f GiB/s  (guest-timed passes of one %.3f s run)\n",
		r->t->name, r->iter + 1, r->o->iterations, "install/touch2", install_ns / 1e9,
		bytes / (double)GiB / (install_ns / 1e9), in->host_ns / 1e9);
	return 0;
}

/* The guest's memory as the technique sees it: balloon "actual", or boot
 * memory plus the virtio-mem device's plugged size. */
static int current_size(struct run *r, uint64_t *size)
{
	uint64_t plugged;
	int err;

	if (r->t->kind != K_VMEM)
		return qmp_balloon_actual(r->vm->qmp, size);
	err = qmp_qom_get_u64(r->vm->qmp, VMEM_PATH, "size", &plugged);
	*size = r->vmem_boot + plugged;
	return err;
}

static int request_size(struct run *r, uint64_t target)
{
	if (r->t->kind == K_VMEM)
		return qmp_qom_set_u64(r->vm->qmp, VMEM_PATH, "requested-size",
				       target - r->vmem_boot);
	return qmp_call(r->vm->qmp, "balloon", json_pack("{s:I}", "value", (json_int_t)target),
			NULL, 10 * SEC);
}

/* Polls until the technique reports target; *t_done is when it first did. */
static int wait_size(struct run *r, uint64_t target, uint64_t *t_done)
{
	uint64_t deadline = now_ns() + PHASE_TIMEOUT_NS, size = 0, last_print = 0;
	uint64_t last_size = UINT64_MAX, last_change = now_ns();
	int err;

	for (;;) {
		if ((err = vm_gone(r)))
			return err;
		if ((err = current_size(r, &size)))
			return failed(r, err);
		if (size == target) {
			*t_done = now_ns();
			return 0;
		}
		if (size != last_size) {
			last_size = size;
			last_change = now_ns();
		}
		if (now_ns() > deadline || now_ns() - last_change > STALL_NS) {
			ht_err("%s: the guest did not reach %llu MiB (stuck at %llu MiB for %.0f s; "
			       "is --shrink-to below what the guest needs?)",
			       r->t->name, (unsigned long long)(target / MiB),
			       (unsigned long long)(size / MiB), (now_ns() - last_change) / 1e9);
			vm_print_console_tail(r->vm, stderr, 10);
			return -ETIMEDOUT;
		}
		if (now_ns() - last_print > 200 * 1000000ull) {
			last_print = now_ns();
			progress(r, "%llu -> %llu MiB, RSS %llu MiB", (unsigned long long)(size / MiB),
				 (unsigned long long)(target / MiB),
				 (unsigned long long)(vm_rss(r->vm) / MiB));
		}
		usleep(POLL_NS / 1000);
	}
}

/* Waits until QEMU's RSS stops falling for quiet_ns; returns the time of the
 * last fall (a fall is a new minimum at least 8 MiB below the previous one). */
static int wait_rss_settled(struct run *r, uint64_t since, uint64_t quiet_ns, uint64_t *t_last)
{
	uint64_t deadline = now_ns() + PHASE_TIMEOUT_NS, min = vm_rss(r->vm);
	int err;

	*t_last = since;
	for (;;) {
		uint64_t v = vm_rss(r->vm), t = now_ns();

		if ((err = vm_gone(r)))
			return err;
		if (v + 8 * MiB <= min) {
			min = v;
			*t_last = t;
		}
		if (t - (*t_last > since ? *t_last : since) >= quiet_ns || t > deadline)
			return 0;
		progress(r, "waiting for QEMU's RSS to settle: %llu MiB",
			 (unsigned long long)(v / MiB));
		usleep(20 * 1000);
	}
}

static int phase_resize(struct run *r, enum phase p, struct phase_result *pr, uint64_t target)
{
	uint64_t from, t_size, t_rss;
	int err;

	if ((err = current_size(r, &from)))
		return failed(r, err);
	if ((err = phase_begin(r, p, pr)))
		return err;
	pr->bytes = from > target ? from - target : target - from;
	if ((err = request_size(r, target)) || (err = wait_size(r, target, &t_size)))
		return failed(r, err);
	/* The discards can trail the guest's report: wait for the host to see them. */
	if (target < from) {
		if ((err = wait_rss_settled(r, t_size, 500 * 1000000ull, &t_rss)))
			return err;
		if (t_rss > t_size)
			t_size = t_rss;
	}
	if ((err = phase_end(r, pr, t_size)))
		return err;
	/* The host's word, not QMP's: a touched guest's RSS must fall with it. */
	if (p == PH_SHRINK && pr->rss0 < pr->rss1 + (from - target) * 9 / 10)
		ht_warn("%s: QEMU's RSS fell only %llu MiB of the %llu MiB shrink QMP reported",
			r->t->name,
			(unsigned long long)((pr->rss0 > pr->rss1 ? pr->rss0 - pr->rss1 : 0) / MiB),
			(unsigned long long)((from - target) / MiB));
	return 0;
}

/* FPR: the guest frees the memory (the touch workload did) and reports it
 * once it has been free for 2 s; the phase ends at the last fall of RSS. */
static int phase_fpr_shrink(struct run *r, enum phase p, struct phase_result *pr,
			    uint64_t since)
{
	uint64_t t_last;
	int err;

	if ((err = phase_begin(r, p, pr)))
		return err;
	if (since)
		pr->t0 = since;
	if ((err = wait_rss_settled(r, pr->t0, 5 * SEC, &t_last)))
		return err;
	pr->bytes = pr->rss0 > vm_rss(r->vm) ? pr->rss0 - vm_rss(r->vm) : 0;
	return phase_end(r, pr, t_last);
}

/* FPR has nothing to grow: reported pages come back on the guest's next touch. */
static int phase_noop(struct run *r, enum phase p, struct phase_result *pr)
{
	int err;

	if ((err = phase_begin(r, p, pr)))
		return err;
	return phase_end(r, pr, pr->t0);
}

/* ---- one VM, one iteration ---- */

static int start_probes(struct run *r)
{
	uint64_t s[MAX_RAM_RANGES], e[MAX_RAM_RANGES];
	struct ram_range ram[MAX_RAM_RANGES];
	int n, pid = r->vm->pid;

	if (geteuid() != 0) {
		if (r->tech_idx == 0 && r->iter == 0)
			ht_warn("not root: no host breakdown (BPF needs CAP_BPF and CAP_PERFMON)");
		return 0;
	}
	n = vm_ram_ranges(r->vm, 64 * MiB, s, e, MAX_RAM_RANGES);
	for (int i = 0; i < n; i++)
		ram[i] = (struct ram_range){ .pid = pid, .start = s[i], .end = e[i] };
	if (host_probes_start(&r->hp, &pid, 1, false, ram, n > 0 ? n : 0)) {
		ht_warn("host probes unavailable: no host breakdown");
		return 0;
	}
	pthread_mutex_lock(&rss.lock);
	r->host_ok = true;
	pthread_mutex_unlock(&rss.lock);
	return 0;
}

static int start_guest_trace(struct run *r)
{
	json_t *reply;
	int err = agent_call(r->vm->agent, json_pack("{s:s}", "cmd", "trace_start"), 60 * SEC,
			     &reply);

	json_decref(reply);
	if (err == -EREMOTEIO) {
		ht_warn("guest tracing unavailable: no guest breakdown");
		return 0;
	}
	if (err)
		return err;
	r->guest_trace_ok = true;
	return guest_read(r, &r->guest_prev);
}

static void vmem_sizes(const struct opts *o, uint64_t *boot)
{
	/* A small boot memory and the rest in the device, never more than the target. */
	*boot = o->shrink_to < 512 * MiB ? o->shrink_to : 512 * MiB;
}

static int boot_vm(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	char dev[256], obj[128];
	const char *devices[8] = { 0 };
	struct vm_config cfg = {
		.qemu = o->qemu, .kernel = o->kernel, .initrd = o->initrd, .append = o->append,
		.accel = o->accel, .vcpus = o->vcpus, .mem = o->mem, .agent = true,
	};
	uint64_t t0 = now_ns(), guest_rtt;
	int err;

	switch (r->t->kind) {
	case K_BALLOON:
	case K_FPR:
		snprintf(dev, sizeof(dev), "virtio-balloon-pci,id=balloon0%s",
			 r->t->kind == K_FPR ? ",free-page-reporting=on" : "");
		devices[0] = "-device";
		devices[1] = dev;
		break;
	case K_VMEM:
		vmem_sizes(o, &r->vmem_boot);
		cfg.mem = r->vmem_boot;
		cfg.maxmem = o->mem;
		snprintf(obj, sizeof(obj), "memory-backend-ram,id=vmem0mem,size=%lluM",
			 (unsigned long long)((o->mem - r->vmem_boot) / MiB));
		snprintf(dev, sizeof(dev), "virtio-mem-pci,id=vmem0,memdev=vmem0mem,requested-size=%lluM",
			 (unsigned long long)((o->mem - r->vmem_boot) / MiB));
		devices[0] = "-object";
		devices[1] = obj;
		devices[2] = "-device";
		devices[3] = dev;
		break;
	}
	cfg.devices = devices;
	set_phase(r, PH_BOOT);
	progress(r, "booting");
	if ((err = vm_start(&r->vm, &cfg)))
		return err;
	pthread_mutex_lock(&rss.lock);
	rss.tech = r->tech_idx;
	rss.iter = r->iter;
	rss.stop = false;
	pthread_mutex_unlock(&rss.lock);
	r->sampling = !pthread_create(&r->sampler, NULL, rss_thread, r);
	if ((err = vm_wait_ready(r->vm, o->boot_timeout_ns, it->guest_kernel,
				 sizeof(it->guest_kernel))))
		return err;
	if (!agent_plain_name(it->guest_kernel))
		snprintf(it->guest_kernel, sizeof(it->guest_kernel), "unknown");
	if (r->t->kind == K_VMEM) {
		uint64_t t;

		/* The guest plugs the device's memory while it boots. */
		if ((err = wait_size(r, o->mem, &t)))
			return err;
	}
	if ((err = agent_clock_offset(r->vm->agent, 5, &r->clock_offset, &guest_rtt)))
		return failed(r, err);
	if (verbose)
		ht_warn("clock offset host - guest %lld ns (rtt %llu ns)", (long long)r->clock_offset,
			(unsigned long long)guest_rtt);
	if ((err = start_probes(r)) || (err = start_guest_trace(r)))
		return failed(r, err);
	it->ph[PH_BOOT] = (struct phase_result){ .done = true, .t0 = t0, .t1 = now_ns(),
						 .rss1 = vm_rss(r->vm) };
	it->ph[PH_BOOT].wall_ns = it->ph[PH_BOOT].t1 - t0;
	fprintf(stderr, "%s[%s %u/%u] %-16s %9.3f s\n", r->o->progress ? "\r\033[K" : "",
		r->t->name, r->iter + 1, r->o->iterations, "boot", it->ph[PH_BOOT].wall_ns / 1e9);
	return 0;
}

static void end_vm(struct run *r, bool clean)
{
	pthread_mutex_lock(&rss.lock);
	rss.stop = true;
	pthread_mutex_unlock(&rss.lock);
	if (r->sampling)
		pthread_join(r->sampler, NULL);
	r->sampling = false;
	host_probes_stop(r->hp);
	r->hp = NULL;
	r->host_ok = r->guest_trace_ok = false;
	json_decref(r->guest_prev);
	r->guest_prev = NULL;
	free(r->live_base);
	r->live_base = NULL;
	r->nlive_base = 0;
	if (r->vm) {
		if (!clean)
			vm_destroy(r->vm);
		else if (vm_shutdown(r->vm, 30 * SEC))
			ht_warn("QEMU did not power off within 30 s; killed it");
	}
	r->vm = NULL;
}

static int workload_bytes(struct run *r, uint64_t *bytes)
{
	uint64_t avail;
	int err = agent_meminfo(r->vm->agent, "MemAvailable", &avail);

	if (err)
		return failed(r, err);
	if (avail > r->o->mem) {
		ht_err("the guest reports %llu bytes MemAvailable, more than its %llu bytes of RAM",
		       (unsigned long long)avail, (unsigned long long)r->o->mem);
		return failed(r, -EPROTO);
	}
	/* "Most of RAM": what the guest can give without swapping or OOM. */
	*bytes = avail > 160 * MiB ? (avail - 128 * MiB) & ~(2 * MiB - 1) : avail / 2;
	return 0;
}

/* --integrity: a daemon in the guest holds a patterned buffer through every
 * phase; at the end it checks that no page was lost or mixed up. */
static int integrity_fill(struct run *r)
{
	char bytes_s[32];
	const char *argv[] = { "ht-integrity", "fill", "--bytes", bytes_s, NULL };

	snprintf(bytes_s, sizeof(bytes_s), "%llu", (unsigned long long)r->o->integrity);
	progress(r, "integrity: filling %llu MiB", (unsigned long long)(r->o->integrity / MiB));
	int err = agent_run(r->vm->agent, argv, PHASE_TIMEOUT_NS / SEC, NULL, NULL);

	return err ? failed(r, err) : 0;
}

static int integrity_check(struct run *r, struct iteration *it)
{
	const char *argv[] = { "ht-integrity", "stop", NULL };
	uint64_t pages, bad;
	json_t *res = NULL;
	int err = agent_run(r->vm->agent, argv, PHASE_TIMEOUT_NS / SEC, &res, NULL);

	if (err) {
		json_decref(res);
		if (!vm_gone(r))
			ht_err("%s: guest memory was corrupted across shrink/grow (see above)",
			       r->t->name);
		return failed(r, err);
	}
	if (!agent_u64(res, "pages", &pages) || !agent_u64(res, "bad_pages", &bad) ||
	    bad > pages) {
		ht_err("ht-integrity stop: result lacks counts 0 <= bad_pages <= pages");
		json_decref(res);
		return -EPROTO;
	}
	it->integrity_pages = pages;
	it->integrity_bad = bad;
	json_decref(res);
	fprintf(stderr, "[%s %u/%u] integrity        %lld pages verified, %lld bad\n", r->t->name,
		r->iter + 1, r->o->iterations, (long long)it->integrity_pages,
		(long long)it->integrity_bad);
	if (it->integrity_bad) {
		ht_err("%s: %lld guest pages corrupted", r->t->name, (long long)it->integrity_bad);
		return -EIO;
	}
	return 0;
}

static int run_iteration(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	char bytes_s[32], threads_s[16];
	uint64_t bytes = 0;
	int err;

	if ((err = boot_vm(r, it)))
		return err;
	if (o->untouched) {
		if (r->t->kind == K_FPR)
			err = phase_fpr_shrink(r, PH_SHRINK_UNTOUCHED, &it->ph[PH_SHRINK_UNTOUCHED], 0) ?:
			      phase_noop(r, PH_GROW_UNTOUCHED, &it->ph[PH_GROW_UNTOUCHED]);
		else
			err = phase_resize(r, PH_SHRINK_UNTOUCHED, &it->ph[PH_SHRINK_UNTOUCHED],
					   o->shrink_to) ?:
			      phase_resize(r, PH_GROW_UNTOUCHED, &it->ph[PH_GROW_UNTOUCHED], o->mem);
		if (err)
			return err;
	}
	if (o->integrity && (err = integrity_fill(r)))
		return err;
	if ((err = workload_bytes(r, &bytes)))
		return err;
	snprintf(bytes_s, sizeof(bytes_s), "%llu", (unsigned long long)bytes);
	snprintf(threads_s, sizeof(threads_s), "%u", o->vcpus);
	const char *touch[] = { "ht-touch", "--bytes", bytes_s, "--threads", threads_s, NULL };
	const char *install[] = { "ht-alloc-install", "--bytes", bytes_s, "--threads", threads_s,
				  NULL };

	if ((err = phase_workload(r, PH_TOUCH, &it->ph[PH_TOUCH], touch, bytes, NULL)))
		return err;
	if (r->t->kind == K_FPR)
		err = phase_fpr_shrink(r, PH_SHRINK, &it->ph[PH_SHRINK], it->ph[PH_TOUCH].t1) ?:
		      phase_noop(r, PH_GROW, &it->ph[PH_GROW]);
	else
		err = phase_resize(r, PH_SHRINK, &it->ph[PH_SHRINK], o->shrink_to) ?:
		      phase_resize(r, PH_GROW, &it->ph[PH_GROW], o->mem);
	if (err)
		return err;
	/* install: first allocation of every page after the grow; touch2: again. */
	if ((err = phase_install_touch2(r, it, install, bytes)))
		return err;
	return o->integrity ? integrity_check(r, it) : 0;
}

/* ---- results ---- */

static json_t *meta_json(const struct opts *o, int argc, char **argv, const char *guest_kernel)
{
	struct utsname u;
	char thp[128] = "unknown", line[4096] = "";
	char *qv = qemu_version(o->qemu), *cmd = NULL;
	json_error_t jerr;
	json_t *m, *params;
	FILE *f;

	uname(&u);
	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;

			if (a && b)
				snprintf(thp, sizeof(thp), "%.*s", (int)(b - a - 1), a + 1);
		}
		fclose(f);
	}
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
	/* Paths, arguments and QEMU's version are not always UTF-8. */
	m = json_pack_ex(&jerr, 0,
			 "{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s}",
			 "host", u.nodename, "kernel", u.release, "machine", u.machine, "cmdline",
			 json_string_lossy(cmd ? cmd : ""), "host_cmdline", json_string_lossy(line),
			 "thp", thp, "accel", accel_name(o->accel), "accel_reason", o->accel_why,
			 "qemu", json_string_lossy(o->qemu), "qemu_version", json_string_lossy(qv),
			 "guest_kernel", json_string_lossy(guest_kernel), "guest_kernel_image",
			 json_string_lossy(o->kernel), "guest_initrd", json_string_lossy(o->initrd),
			 "hatrace_revision", HATRACE_GIT_REV);
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
	json_object_set_new(m, "params", params);
	json_object_set_new(m, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
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
	if (json_dumpf(doc, of.f, JSON_INDENT(1) | JSON_REAL_PRECISION(10))) {
		ht_err("cannot write %s: JSON encoding failed", path);
		out_file_abort(&of);
		return -EIO;
	}
	fputc('\n', of.f);
	return out_file_commit(&of);
}

static uint64_t wall(const struct phase_result *p)
{
	return p->wall_ns;
}

static int write_csv(const char *dir, struct iteration *res[NTECH], const struct opts *o)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/iterations.csv", dir);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fprintf(of.f, "technique,iteration,guest_kernel,integrity_pages,integrity_bad_pages");
	for (int p = 0; p < PH_MAX; p++)
		fprintf(of.f,
			",%1$s_ns,%1$s_host_ns,%1$s_bytes,%1$s_rss_before,%1$s_rss_after,%1$s_host_madvise_n,"
			"%1$s_host_madvise_ns,%1$s_host_fallocate_n,%1$s_host_fallocate_ns,"
			"%1$s_host_discard_bytes,%1$s_host_ram_faults,%1$s_host_kvm_exits,"
			"%1$s_host_kvm_page_faults",
			phase_names[p]);
	fputc('\n', of.f);
	for (unsigned t = 0; t < NTECH; t++) {
		for (unsigned i = 0; res[t] && i < o->iterations; i++) {
			const struct iteration *it = &res[t][i];

			fprintf(of.f, "%s,%u,%s,", techniques[t].name, i + 1, it->guest_kernel);
			if (it->integrity_pages >= 0)
				fprintf(of.f, "%lld,%lld", (long long)it->integrity_pages,
					(long long)it->integrity_bad);
			else
				fprintf(of.f, ",");
			for (int p = 0; p < PH_MAX; p++) {
				const struct phase_result *r = &it->ph[p];

				if (!r->done) {
					fprintf(of.f, ",,,,,,,,,,,,,");
					continue;
				}
				fprintf(of.f, ",%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu",
					(unsigned long long)wall(r),
					(unsigned long long)(r->host_ns ? r->host_ns : r->t1 - r->t0),
					(unsigned long long)r->bytes,
					(unsigned long long)r->rss0, (unsigned long long)r->rss1,
					(unsigned long long)r->host.madvise_n,
					(unsigned long long)r->host.madvise_ns,
					(unsigned long long)r->host.fallocate_n,
					(unsigned long long)r->host.fallocate_ns,
					(unsigned long long)r->host.discard_bytes,
					(unsigned long long)r->host.ram_faults,
					(unsigned long long)r->host.kvm_exits,
					(unsigned long long)r->host.kvm_page_faults);
			}
			fputc('\n', of.f);
		}
	}
	return out_file_commit(&of);
}

/* The guest's per-event breakdown, one row per iteration, phase and event. */
static int write_guest_csv(const char *dir, struct iteration *res[NTECH], const struct opts *o)
{
	struct out_file of;
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/guest-events.csv", dir);
	if ((err = out_file_open(&of, path)))
		return err;
	fchmod(fileno(of.f), 0644);
	fprintf(of.f, "technique,iteration,phase,event,count,sum_ns\n");
	for (unsigned t = 0; t < NTECH; t++) {
		for (unsigned i = 0; res[t] && i < o->iterations; i++) {
			for (int p = 0; p < PH_MAX; p++) {
				const char *name;
				json_t *v;

				json_object_foreach(res[t][i].ph[p].guest, name, v)
					fprintf(of.f, "%s,%u,%s,%s,%lld,%lld\n", techniques[t].name, i + 1,
						phase_names[p], name, (long long)jint(v, "count"),
						(long long)jint(v, "sum_ns"));
			}
		}
	}
	return out_file_commit(&of);
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
	pthread_mutex_lock(&rss.lock);
	for (size_t i = 0; i < rss.n; i++)
		fprintf(of.f, "%s,%u,%s,%llu,%llu\n", techniques[rss.s[i].tech].name,
			rss.s[i].iter + 1, phase_names[rss.s[i].phase],
			(unsigned long long)rss.s[i].t, (unsigned long long)rss.s[i].rss);
	pthread_mutex_unlock(&rss.lock);
	return out_file_commit(&of);
}

static double median_u64(uint64_t *v, unsigned n)
{
	struct median_ci ci;

	return median_ci95(v, n, &ci) ? 0 : ci.median;
}

/* Medians over the iterations of the host totals and of each guest event. */
static json_t *breakdown_json(const struct iteration *its, unsigned n, enum phase p)
{
	static const struct {
		const char *name;
		size_t off;
	} host_fields[] = {
		{ "madvise_n", offsetof(struct host_totals, madvise_n) },
		{ "madvise_ns", offsetof(struct host_totals, madvise_ns) },
		{ "fallocate_n", offsetof(struct host_totals, fallocate_n) },
		{ "fallocate_ns", offsetof(struct host_totals, fallocate_ns) },
		{ "discard_bytes", offsetof(struct host_totals, discard_bytes) },
		{ "guest_ram_faults", offsetof(struct host_totals, ram_faults) },
		{ "kvm_exits", offsetof(struct host_totals, kvm_exits) },
		{ "kvm_page_faults", offsetof(struct host_totals, kvm_page_faults) },
	};
	json_t *host = json_object(), *guest = json_object(), *names = json_object(), *v;
	uint64_t vals[n];
	const char *name;
	unsigned m;

	for (unsigned f = 0; f < ARRAY_SIZE(host_fields); f++) {
		m = 0;
		for (unsigned i = 0; i < n; i++)
			if (its[i].ph[p].done)
				vals[m++] = *(const uint64_t *)((const char *)&its[i].ph[p].host +
								host_fields[f].off);
		if (m)
			json_object_set_new(host, host_fields[f].name,
					    json_real(median_u64(vals, m)));
	}
	for (unsigned i = 0; i < n; i++)
		if (its[i].ph[p].guest)
			json_object_update(names, its[i].ph[p].guest);
	json_object_foreach(names, name, v) {
		uint64_t sums[n];

		m = 0;
		for (unsigned i = 0; i < n; i++) {
			json_t *e = json_object_get(its[i].ph[p].guest, name);

			if (!its[i].ph[p].done)
				continue;
			vals[m] = e ? jint(e, "count") : 0;
			sums[m++] = e ? jint(e, "sum_ns") : 0;
		}
		json_object_set_new(guest, name, json_pack("{s:f, s:f}", "count_median",
							   median_u64(vals, m), "sum_ns_median",
							   median_u64(sums, m)));
	}
	json_decref(names);
	return json_pack("{s:o, s:o}", "host", host, "guest", guest);
}

static json_t *summary_json(struct iteration *res[NTECH], const struct opts *o)
{
	json_t *s = json_object();
	uint64_t v[o->iterations], w[o->iterations];

	for (unsigned t = 0; t < NTECH; t++) {
		json_t *tj;

		if (!res[t])
			continue;
		tj = json_object();
		for (unsigned pi = 0; pi < ARRAY_SIZE(summary_phases); pi++) {
			enum phase p = summary_phases[pi];
			json_t *samples = json_array(), *pj;
			struct median_ci ci;
			unsigned n = 0;

			for (unsigned i = 0; i < o->iterations; i++) {
				const struct phase_result *r = &res[t][i].ph[p];

				if (!r->done)
					continue;
				json_array_append_new(samples, json_integer(wall(r)));
				v[n] = wall(r);
				w[n++] = r->bytes;
			}
			if (!n) {
				json_decref(samples);
				continue;
			}
			median_ci95(v, n, &ci);
			pj = json_pack("{s:o, s:f, s:[I,I], s:f, s:f}", "samples_ns", samples,
				       "median_ns", ci.median, "ci95_ns", (json_int_t)ci.lo,
				       (json_int_t)ci.hi, "ci_coverage", ci.coverage, "bytes_median",
				       median_u64(w, n));
			json_object_set_new(pj, "breakdown", breakdown_json(res[t], o->iterations, p));
			if (techniques[t].kind == K_FPR && (p == PH_GROW))
				json_object_set_new(pj, "note",
						    json_string("free-page reporting has no grow step"));
			if (p == PH_SHRINK || p == PH_SHRINK_UNTOUCHED) {
				json_t *drops = json_array();

				for (unsigned i = 0; i < o->iterations; i++) {
					const struct phase_result *r = &res[t][i].ph[p];

					/* QEMU's RSS fall (from /proc) relative to the requested shrink. */
					if (r->done)
						json_array_append_new(
							drops, json_real(100.0 *
									 ((double)r->rss0 - (double)r->rss1) /
									 (double)(o->mem - o->shrink_to)));
				}
				json_object_set_new(pj, "rss_drop_pct_of_request", drops);
			}
			json_object_set_new(tj, phase_names[p], pj);
		}
		json_object_set_new(s, techniques[t].name, tj);
	}
	return s;
}

/* Chrome trace: each technique's first iteration, host phases and guest events
 * on the host clock. */
static void trace_add_iteration(json_t *events, unsigned tech, const struct iteration *it,
				int64_t offset)
{
	int pid = tech + 1;

	json_array_append_new(events, json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name",
						"process_name", "ph", "M", "pid", pid, "tid", 0,
						"args", "name", techniques[tech].name));
	json_array_append_new(events, json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name",
						"thread_name", "ph", "M", "pid", pid, "tid", 1, "args",
						"name", "host: phases"));
	json_array_append_new(events, json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name",
						"thread_name", "ph", "M", "pid", pid, "tid", 2, "args",
						"name", "guest: trace events"));
	for (int p = 0; p < PH_MAX; p++) {
		const struct phase_result *r = &it->ph[p];
		const char *name;
		json_t *v;

		if (!r->done)
			continue;
		json_array_append_new(
			events,
			json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
				  "name", phase_names[p], "cat", "host", "ph", "X", "ts", r->t0 / 1e3,
				  "dur", (r->t1 - r->t0) / 1e3, "pid", pid, "tid", 1, "args", "bytes",
				  (json_int_t)r->bytes, "rss_before", (json_int_t)r->rss0,
				  "rss_after", (json_int_t)r->rss1, "madvise_n",
				  (json_int_t)r->host.madvise_n, "madvise_ns",
				  (json_int_t)r->host.madvise_ns, "fallocate_n",
				  (json_int_t)r->host.fallocate_n, "discard_bytes",
				  (json_int_t)r->host.discard_bytes, "guest_ram_faults",
				  (json_int_t)r->host.ram_faults, "kvm_exits",
				  (json_int_t)r->host.kvm_exits, "kvm_page_faults",
				  (json_int_t)r->host.kvm_page_faults));
		json_object_foreach(r->guest, name, v) {
			json_int_t first = jint(v, "first_ns"), last = jint(v, "last_ns");
			double ts = (double)sat_add(first, offset) / 1e3;

			/* Clip to the phase: first_ns is cumulative since trace_start. */
			if (sat_add(first, offset) < (json_int_t)r->t0)
				ts = r->t0 / 1e3;
			if (sat_add(last, offset) < ts * 1e3)
				continue;
			json_array_append_new(
				events, json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:{s:s, s:I, s:I}}",
						  "name", name, "cat", "guest", "ph", "X", "ts", ts,
						  "dur", sat_add(last, offset) / 1e3 - ts, "pid", pid, "tid",
						  2, "args", "phase", phase_names[p], "count",
						  jint(v, "count"), "sum_ns", jint(v, "sum_ns")));
		}
	}
	pthread_mutex_lock(&rss.lock);
	for (size_t i = 0; i < rss.n; i++) {
		if (rss.s[i].tech != tech || rss.s[i].iter != 0)
			continue;
		json_array_append_new(events, json_pack("{s:s, s:s, s:f, s:i, s:{s:f}}", "name",
							"QEMU RSS", "ph", "C", "ts",
							rss.s[i].t / 1e3, "pid", pid, "args", "MiB",
							rss.s[i].rss / (double)MiB));
	}
	pthread_mutex_unlock(&rss.lock);
}

static void print_table(struct iteration *res[NTECH], const struct opts *o)
{
	printf("\n%-15s %-17s %12s %25s %9s %9s\n", "technique", "phase", "median", "95% CI",
	       "GiB/s", "RSS drop");
	for (unsigned t = 0; t < NTECH; t++) {
		for (unsigned pi = 0; res[t] && pi < ARRAY_SIZE(summary_phases); pi++) {
			enum phase p = summary_phases[pi];
			uint64_t v[o->iterations], b[o->iterations], drop[o->iterations];
			struct median_ci ci;
			unsigned n = 0;
			char cis[64], drops[16] = "";

			for (unsigned i = 0; i < o->iterations; i++) {
				const struct phase_result *r = &res[t][i].ph[p];

				if (!r->done)
					continue;
				b[n] = r->bytes;
				drop[n] = r->rss0 > r->rss1 ? r->rss0 - r->rss1 : 0;
				v[n++] = wall(r);
			}
			/* QEMU's RSS fall (from /proc) as a share of the requested shrink. */
			if (techniques[t].kind == K_FPR && (p == PH_SHRINK || p == PH_SHRINK_UNTOUCHED))
				snprintf(drops, sizeof(drops), "%.0f MiB", median_u64(drop, n) / MiB);
			else if (p == PH_SHRINK || p == PH_SHRINK_UNTOUCHED)
				snprintf(drops, sizeof(drops), "%.1f%%",
					 100 * median_u64(drop, n) / (double)(o->mem - o->shrink_to));
			if (!n)
				continue;
			median_ci95(v, n, &ci);
			snprintf(cis, sizeof(cis), "[%.3f, %.3f] s%s", ci.lo / 1e9, ci.hi / 1e9,
				 ci.coverage < 0.95 ? "*" : "");
			printf("%-15s %-17s %10.3f s %25s %9.3f %9s\n", techniques[t].name,
			       phase_names[p], ci.median / 1e9, cis,
			       ci.median > 0 ? median_u64(b, n) / (double)GiB / (ci.median / 1e9) : 0,
			       drops);
		}
	}
	if (o->iterations < 6)
		printf("* fewer than 6 samples: [min, max], coverage %.1f%%\n",
		       100 * (1 - 2 * binom_half_cdf(o->iterations, 0)));
}

/* Medians of the per-phase breakdown: host BPF totals and the guest events
 * that took longest. */
static void print_breakdown(json_t *summary, bool kvm)
{
	const char *tech, *phase;
	json_t *tj, *pj;

	printf("\nbreakdown (medians): host = QEMU's reclaim syscalls and faults (BPF), guest = "
	       "driver/allocator events (agent trace)\n");
	printf("%-15s %-17s %9s %9s %9s %9s %9s  %s\n", "technique", "phase", "madvise", "madv ms",
	       "disc MiB", "RAM flt", "kvm exit", "guest: top events by time (ms)");
	json_object_foreach(summary, tech, tj) {
		json_object_foreach(tj, phase, pj) {
			json_t *h = json_object_get(json_object_get(pj, "breakdown"), "host");
			json_t *g = json_object_get(json_object_get(pj, "breakdown"), "guest");
			char top[160] = "";
			const char *used[3] = { 0 };

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
			char exits[16] = "n/a"; /* under TCG there are no KVM exits to count */

			if (kvm)
				snprintf(exits, sizeof(exits), "%.0f",
					 json_real_value(json_object_get(h, "kvm_exits")));
			printf("%-15s %-17s %9.0f %9.1f %9.0f %9.0f %9s  %s\n", tech, phase,
			       json_real_value(json_object_get(h, "madvise_n")),
			       json_real_value(json_object_get(h, "madvise_ns")) / 1e6,
			       json_real_value(json_object_get(h, "discard_bytes")) / MiB,
			       json_real_value(json_object_get(h, "guest_ram_faults")), exits, top);
		}
	}
}

static char *exe_relative(const char *rel)
{
	char exe[PATH_MAX], *p, *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	if (asprintf(&p, "%s/%s", exe, rel) < 0)
		return NULL;
	return p;
}

/* Plots are best-effort: a failure is a warning and the data is kept. Ctrl-C
 * (or SIGHUP, SIGTERM) stops the plotter; the data is kept then too. */
static int run_plots(const char *dir)
{
	char *script = getenv("HATRACE_ANALYSIS") ? strdup(getenv("HATRACE_ANALYSIS"))
						    : exe_relative("../analysis/inflate_plots.py");
	const char *py = getenv("HATRACE_PYTHON") ?: "/usr/bin/python3";
	bool stopped = false;
	int status = -1;
	pid_t pid;

	if (exiting) {
		ht_warn("interrupted: no plots");
		free(script);
		return -EINTR;
	}
	if (!script || access(script, R_OK)) {
		ht_warn("no plots: plot script not found: %s", script ? script : "(none)");
		free(script);
		return -ENOENT;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execl(py, py, script, dir, (char *)NULL);
		fprintf(stderr, "hatrace: cannot run %s: %s\n", py, strerror(errno));
		_exit(127);
	}
	free(script);
	if (pid < 0) {
		ht_warn("no plots: cannot fork: %s", strerror(errno));
		return -EAGAIN;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			break;
		if (exiting && !stopped)
			stopped = !kill(pid, SIGTERM);
	}
	if (exiting) {
		ht_warn("interrupted while plotting: no plots");
		return -EINTR;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		ht_warn("no plots: %s failed (is python3-matplotlib installed?)", py);
		return -EIO;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) ? -errno : 0;
}

static void remove_tree(const char *dir)
{
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
		ht_warn("could not remove %s: %s", dir, strerror(errno));
}

/* -o DIR is replaced only if it does not exist, is empty or is a results
 * directory of an earlier run (it holds RESULTS_MARKER); checked before the
 * run and again before the replacement (!at_start). */
static int out_dir_replaceable(const char *dir, bool at_start)
{
	char marker[PATH_MAX];
	struct dirent *e;
	struct stat st;
	int entries = 0, err;
	DIR *d;

	if (lstat(dir, &st)) {
		if (errno == ENOENT)
			return 0;
		err = -errno; /* ht_err may change errno */
		ht_err("--output: cannot use %s: %s", dir, strerror(-err));
		return err;
	}
	if (S_ISLNK(st.st_mode)) {
		ht_err("--output: %s is a symbolic link; name the directory itself", dir);
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		ht_err("--output: %s exists and is not a directory", dir);
		return -ENOTDIR;
	}
	snprintf(marker, sizeof(marker), "%s/" RESULTS_MARKER, dir);
	if (!lstat(marker, &st) && S_ISREG(st.st_mode))
		return 0;
	d = opendir(dir);
	if (!d) {
		err = -errno;
		ht_err("--output: cannot read %s: %s", dir, strerror(-err));
		return err;
	}
	while ((e = readdir(d)))
		entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	if (!entries)
		return 0;
	ht_err("--output: %s %s files of its own and no " RESULTS_MARKER
	       ": hatrace replaces only empty directories and its own results directories%s",
	       dir, at_start ? "has" : "now has",
	       at_start ? "; remove it or name another one" : ", so it was left alone");
	return -EEXIST;
}

/* Results go to DIR.tmp-* and replace DIR only when everything is written. */
static int commit_dir(const char *tmp, const char *dir)
{
	char old[PATH_MAX];
	bool had_old;
	int err;

	if ((err = out_dir_replaceable(dir, false)))
		return err;
	snprintf(old, sizeof(old), "%s.old-%d", dir, (int)getpid());
	had_old = !rename(dir, old);
	if (!had_old && errno != ENOENT) {
		err = -errno;
		ht_err("cannot replace %s: %s", dir, strerror(errno));
		return err;
	}
	if (rename(tmp, dir)) {
		err = -errno;
		ht_err("cannot rename %s to %s: %s", tmp, dir, strerror(errno));
		if (had_old)
			rename(old, dir); /* put the previous results back */
		return err;
	}
	if (had_old)
		remove_tree(old);
	return 0;
}

/* Writes every results file into tmp, carrying on past a failure so that as
 * much as possible is kept; returns the first error. */
static int write_results(const char *tmp, struct iteration *res[NTECH], const int64_t *offsets,
			 const struct opts *o, json_t *summary, json_t *meta)
{
	json_t *trace = json_object(), *events = json_array();
	int err, e;

	for (unsigned t = 0; t < NTECH; t++)
		if (res[t])
			trace_add_iteration(events, t, &res[t][0], offsets[t]);
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
	json_decref(trace);
	return err;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace inflate [OPTIONS]\n\n"
		"The inflate benchmark: per iteration a fresh VM touches most of its RAM and\n"
		"frees it, is shrunk to --shrink-to, grown back, and allocates its memory again\n"
		"twice (install, touch2). Reports the host's wall time per phase, a host (BPF)\n"
		"and guest (agent trace) breakdown, and medians with a distribution-free 95%% CI.\n\n"
		"  -t, --technique LIST  virtio-balloon,fpr,virtio-mem or all (default all)\n"
		"  -m, --mem SIZE        VM memory (default 2G)\n"
		"  -s, --shrink-to SIZE  shrink target (default 512M)\n"
		"  -c, --vcpus N         vCPUs and workload threads (default 2)\n"
		"  -n, --iterations N    iterations per technique (default 5; a default run with\n"
		"                        --untouched takes about 8 minutes under TCG on 2 cores)\n"
		"  -u, --untouched       also shrink each fresh VM before it is touched\n"
		"                        (phase shrink_untouched)\n"
		"  -a, --accel MODE      auto|kvm|tcg (default auto: KVM only where /dev/kvm runs\n"
		"                        a stock guest, TCG on PVM hosts; TCG is multi-threaded)\n"
		"  -l, --live            live log2 histograms of reclaim syscalls and faults\n"
		"  -o, --output DIR      results directory (default results/inflate); replaced\n"
		"                        only if empty or an earlier run's results directory\n"
		"      --qemu PATH       QEMU binary (default $HATRACE_QEMU, else\n"
		"                        qemu-system-x86_64 on PATH)\n"
		"      --kernel PATH     guest kernel (default build/guest/bzImage)\n"
		"      --initrd PATH     guest initramfs (default build/guest/initramfs.cpio.gz)\n"
		"      --append ARGS     guest kernel command line (default build/guest/cmdline)\n"
		"      --boot-timeout S  seconds to wait for the guest agent (default 300)\n"
		"      --integrity SIZE  keep SIZE of patterned memory in the guest through all\n"
		"                        phases and fail if any page of it changed\n\n"
		"Timing: shrink/grow run from the QMP command until QMP reports the target and,\n"
		"for a shrink, QEMU's RSS (/proc) has stopped falling. FPR's shrink runs from\n"
		"the end of touch (the guest freed its memory) to RSS's last fall; FPR has no\n"
		"grow. install and touch2 are the guest-timed passes of one ht-alloc-install run.\n\n"
		"DIR gets meta.json, iterations.csv, guest-events.csv, rss.csv, summary.json,\n"
		"trace.json, consoles/ and inflate-speed / inflate-rss plots (PNG, SVG).\n");
}

static int parse_techniques(const char *s, bool *sel)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int err = 0, n = 0;

	memset(sel, 0, NTECH * sizeof(*sel));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool found = false;

		for (unsigned t = 0; t < NTECH; t++) {
			if (!strcmp(tok, "all") || !strcmp(tok, techniques[t].name)) {
				sel[t] = true;
				found = true;
			}
		}
		if (!found) {
			ht_err("--technique: unknown technique '%s' (expected virtio-balloon, fpr, "
			       "virtio-mem or all)", tok);
			err = -EINVAL;
			break;
		}
		n++;
	}
	free(copy);
	if (!err && !n) {
		ht_err("--technique: no technique given (expected virtio-balloon, fpr, virtio-mem "
		       "or all)");
		err = -EINVAL;
	}
	return err;
}

static char *default_file(const char *opt, const char *rel, const char *alt)
{
	char *p = exe_relative(rel);

	if (p && !access(p, R_OK))
		return p;
	free(p);
	p = exe_relative(alt);
	if (p && !access(p, R_OK))
		return p;
	free(p);
	p = exe_relative(rel);
	ht_err("%s: %s not found (build the guest with 'make', or pass %s PATH)", opt,
	       p ? p : rel, opt);
	free(p);
	return NULL;
}

static uint64_t host_mem_available(void)
{
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kb << 10;
}

/* The guest build's kernel command line (build/guest/cmdline), else its default. */
static const char *guest_cmdline(void)
{
	static char line[1024];
	char *path = exe_relative("guest/cmdline");
	FILE *f = path ? fopen(path, "r") : NULL;

	free(path);
	snprintf(line, sizeof(line), "console=ttyS0 memhp_default_state=online_movable panic=-1");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		line[strcspn(line, "\n")] = 0;
	}
	return line;
}

/* -o DIR: trailing slashes are dropped; "", "/", "." and ".." are refused. */
static int parse_out_dir(const char *arg, struct opts *o)
{
	size_t n = strlen(arg);
	const char *base;

	while (n > 1 && arg[n - 1] == '/')
		n--;
	if (!n) {
		ht_err("--output: empty path");
		return -EINVAL;
	}
	if (n > PATH_MAX - 64) {
		ht_err("--output: path too long");
		return -ENAMETOOLONG;
	}
	free(o->out_dir);
	o->out_dir = strndup(arg, n);
	base = strrchr(o->out_dir, '/');
	base = base ? base + 1 : o->out_dir;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		ht_err("--output: '%s' is not a directory hatrace can replace; name one, e.g. "
		       "results/run1", arg);
		return -EINVAL;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_QEMU = 256, O_KERNEL, O_INITRD, O_APPEND, O_BOOT_TIMEOUT, O_INTEGRITY };
	static const struct option longopts[] = {
		{ "technique", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "shrink-to", required_argument, NULL, 's' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "untouched", no_argument, NULL, 'u' },
		{ "accel", required_argument, NULL, 'a' },
		{ "live", no_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		{ "qemu", required_argument, NULL, O_QEMU },
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "append", required_argument, NULL, O_APPEND },
		{ "boot-timeout", required_argument, NULL, O_BOOT_TIMEOUT },
		{ "integrity", required_argument, NULL, O_INTEGRITY },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *qemu = NULL, *kernel = NULL, *initrd = NULL;
	uint64_t v;
	int c;

	for (unsigned t = 0; t < NTECH; t++)
		o->tech[t] = true;
	o->mem = 2 * GiB;
	o->shrink_to = 512 * MiB;
	o->vcpus = 2;
	o->iterations = 5;
	o->out_dir = strdup("results/inflate");
	o->boot_timeout_ns = 300 * SEC;
	o->append = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:m:s:c:n:ua:lo:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_techniques(optarg, o->tech))
				return -EINVAL;
			break;
		case 'm':
			if (parse_size("--mem", optarg, &o->mem))
				return -EINVAL;
			break;
		case 's':
			if (parse_size("--shrink-to", optarg, &o->shrink_to))
				return -EINVAL;
			break;
		case 'c':
			if (parse_u64("--vcpus", optarg, 1, 64, &v))
				return -EINVAL;
			o->vcpus = v;
			break;
		case 'n':
			if (parse_u64("--iterations", optarg, 1, 1000, &v))
				return -EINVAL;
			o->iterations = v;
			break;
		case 'u':
			o->untouched = true;
			break;
		case 'a':
			if (parse_accel(optarg, &o->accel))
				return -EINVAL;
			break;
		case 'l':
			o->live = true;
			break;
		case 'o':
			if (parse_out_dir(optarg, o))
				return -EINVAL;
			break;
		case O_QEMU:
			qemu = optarg;
			break;
		case O_KERNEL:
			kernel = optarg;
			break;
		case O_INITRD:
			initrd = optarg;
			break;
		case O_APPEND:
			o->append = optarg;
			break;
		case O_BOOT_TIMEOUT:
			if (parse_seconds_ns("--boot-timeout", optarg, SEC, 3600 * SEC,
					     &o->boot_timeout_ns))
				return -EINVAL;
			break;
		case O_INTEGRITY:
			if (parse_size("--integrity", optarg, &o->integrity))
				return -EINVAL;
			break;
		default:
			if (common_option(c, argv, usage))
				return -EINVAL;
		}
	}
	if (no_operands(argc, argv) || out_dir_replaceable(o->out_dir, true))
		return -EINVAL;
	if (o->mem % (128 * MiB) || o->mem < 256 * MiB) {
		ht_err("--mem: %llu MiB is not a multiple of 128 MiB of at least 256 MiB",
		       (unsigned long long)(o->mem / MiB));
		return -EINVAL;
	}
	if (o->shrink_to % (2 * MiB) || o->shrink_to < 128 * MiB) {
		ht_err("--shrink-to: must be a multiple of 2 MiB and at least 128 MiB");
		return -EINVAL;
	}
	if (o->shrink_to >= o->mem) {
		ht_err("--shrink-to (%llu MiB) must be smaller than --mem (%llu MiB)",
		       (unsigned long long)(o->shrink_to / MiB), (unsigned long long)(o->mem / MiB));
		return -EINVAL;
	}
	if (o->tech[2] && o->shrink_to % (128 * MiB) && o->shrink_to < 512 * MiB) {
		ht_err("--shrink-to: virtio-mem boots with the target as its boot memory below "
		       "512 MiB, so it must be a multiple of 128 MiB");
		return -EINVAL;
	}
	if (o->mem > host_mem_available() / 10 * 9) {
		ht_err("--mem: %llu MiB does not fit in this host's available memory (%llu MiB)",
		       (unsigned long long)(o->mem / MiB),
		       (unsigned long long)(host_mem_available() / MiB));
		return -EINVAL;
	}
	if (o->integrity > o->shrink_to / 4) {
		ht_err("--integrity: at most a quarter of --shrink-to (%llu MiB), or the shrink "
		       "cannot reach its target", (unsigned long long)(o->shrink_to / 4 / MiB));
		return -EINVAL;
	}
	if (o->accel == ACCEL_KVM && accel_resolve(ACCEL_AUTO, o->accel_why,
						   sizeof(o->accel_why)) != ACCEL_KVM)
		ht_warn("--accel kvm: %s; the guest will probably never boot", o->accel_why);
	o->accel = accel_resolve(o->accel, o->accel_why, sizeof(o->accel_why));
	if (!(o->qemu = qemu_find(qemu)))
		return -ENOENT;
	o->kernel = kernel ? realpath(kernel, NULL) : default_file("--kernel", "guest/bzImage",
								   "guest/bzImage-baseline");
	if (!o->kernel) {
		if (kernel)
			ht_err("--kernel: %s: %s", kernel, strerror(errno));
		return -ENOENT;
	}
	o->initrd = initrd ? realpath(initrd, NULL)
			   : default_file("--initrd", "guest/initramfs.cpio.gz",
					  "guest/initramfs.cpio.gz");
	if (!o->initrd) {
		if (initrd)
			ht_err("--initrd: %s: %s", initrd, strerror(errno));
		return -ENOENT;
	}
	if (!o->append)
		o->append = guest_cmdline();
	o->progress = isatty(2);
	return 0;
}

static int write_marker(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/" RESULTS_MARKER, dir);
	f = fopen(path, "w");
	if (f) {
		fputs("hatrace inflate results: a later run with -o naming this directory "
		      "replaces it\n", f);
		if (!ferror(f) & !fclose(f))
			return 0;
	}
	err = errno ? -errno : -EIO; /* ht_err may change errno */
	ht_err("cannot write %s: %s", path, strerror(-err));
	return err;
}

int cmd_inflate(int argc, char **argv)
{
	struct opts o = { 0 };
	struct iteration *res[NTECH] = { 0 };
	int64_t offsets[NTECH] = { 0 };
	char tmp[PATH_MAX], guest_kernel[128] = "unknown", path[PATH_MAX];
	int err = 0;

	if (parse_args(argc, argv, &o))
		return 1;
	install_signal_handlers();
	setup_libbpf();
	fprintf(stderr, "hatrace inflate: %s (%s); %llu MiB VM -> %llu MiB, %u vCPUs, %u iterations\n",
		accel_name(o.accel), o.accel_why, (unsigned long long)(o.mem / MiB),
		(unsigned long long)(o.shrink_to / MiB), o.vcpus, o.iterations);
	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", o.out_dir);
	{
		char *slash = strrchr(tmp, '/');

		if (slash) {
			*slash = 0;
			mkdir(tmp, 0755); /* parent, e.g. results/ */
			*slash = '/';
		}
	}
	if (!mkdtemp(tmp)) {
		ht_err("cannot create %s: %s", tmp, strerror(errno));
		return 1;
	}
	chmod(tmp, 0755);
	snprintf(path, sizeof(path), "%s/consoles", tmp);
	mkdir(path, 0755);
	err = write_marker(tmp);

	for (unsigned t = 0; t < NTECH && !err; t++) {
		struct run r = { .o = &o, .t = &techniques[t], .tech_idx = t };

		if (!o.tech[t])
			continue;
		res[t] = calloc(o.iterations, sizeof(**res));
		for (unsigned i = 0; i < o.iterations; i++)
			res[t][i].integrity_pages = res[t][i].integrity_bad = -1;
		for (unsigned i = 0; i < o.iterations && !err; i++) {
			r.iter = i;
			err = run_iteration(&r, &res[t][i]);
			if (!err) {
				snprintf(path, sizeof(path), "%s/consoles/%s-%u.log", tmp,
					 techniques[t].name, i + 1);
				vm_save_console(r.vm, path);
				snprintf(guest_kernel, sizeof(guest_kernel), "%s", res[t][i].guest_kernel);
				if (i == 0)
					offsets[t] = r.clock_offset;
			}
			end_vm(&r, !err);
			if (err == -EINTR)
				ht_err("interrupted");
		}
	}
	if (err) {
		remove_tree(tmp);
	} else {
		/* Measuring is done: from here on a failure keeps the data. */
		json_t *summary = summary_json(res, &o), *meta = meta_json(&o, argc, argv, guest_kernel);

		err = write_results(tmp, res, offsets, &o, summary, meta);
		if (!err) {
			run_plots(tmp);
			err = commit_dir(tmp, o.out_dir);
		}
		if (err) {
			ht_err("the data of this run is kept in %s", tmp);
		} else {
			print_table(res, &o);
			print_breakdown(summary, o.accel == ACCEL_KVM);
			printf("results are in %s\n", o.out_dir);
		}
		json_decref(summary);
		json_decref(meta);
	}
	for (unsigned t = 0; t < NTECH; t++) {
		for (unsigned i = 0; res[t] && i < o.iterations; i++)
			for (int p = 0; p < PH_MAX; p++)
				json_decref(res[t][i].ph[p].guest);
		free(res[t]);
	}
	free(o.out_dir);
	free(o.qemu);
	free(o.kernel);
	free(o.initrd);
	return err || exiting ? 1 : 0;
}
