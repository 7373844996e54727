/* The phase runner: boots a VM for a technique, runs the phases of one
 * iteration through the technique's ops, and keeps each phase's window,
 * RSS and breakdown. */
#include "agent.h"
#include "common.h"
#include "hostprobes.h"
#include "memcg.h"
#include "qmp.h"
#include "technique.h"
#include "vmfind.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const phase_names[PH_MAX] = {
	"boot", "shrink_untouched", "grow_untouched", "touch", "shrink", "grow", "install", "touch2",
};

void progress(const struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->o->progress)
		return;
	fprintf(stderr, "\r\033[K[%s %s] %s: ", r->t->name, r->label, phase_names[r->phase]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

int vm_gone(struct run *r)
{
	char why[96];

	if (exiting)
		return -EINTR;
	if (vm_alive(r->vm))
		return 0;
	if (r->death_reported)
		return -EPIPE;
	r->death_reported = true;
	ht_err("QEMU died during %s, iteration %s, phase %s: %s", r->t->name, r->label,
	       phase_names[r->phase], vm_exit_reason(r->vm, why, sizeof(why)));
	vm_print_console_tail(r->vm, stderr, 15);
	return -EPIPE;
}

/* After a failed call: if QEMU is dying, say so rather than the call's error. */
int failed(struct run *r, int err)
{
	if (err != -EINTR && vm_alive(r->vm))
		vm_wait_exit(r->vm, 2 * SEC);
	return vm_gone(r) ?: err;
}

int phase_begin(struct run *r, enum phase p, struct phase_result *pr)
{
	int err;

	set_phase(r, p);
	memset(pr, 0, sizeof(*pr));
	if ((err = host_read(r, &r->host_prev)))
		return err;
	live_phase_begin(r);
	qemu_phases_begin(r);
	pr->rss0 = vm_rss(r->vm);
	pr->t0 = now_ns();
	return 0;
}

int phase_end(struct run *r, struct phase_result *pr, uint64_t t1)
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
	pr->host_measured = r->host_ok;
	pr->host_why = r->host_why;
	qemu_phases_end(r, pr);
	if ((err = guest_read(r, &g)))
		return failed(r, err);
	if (g) {
		pr->guest = agent_trace_delta(r->guest_prev, g);
		json_decref(r->guest_prev);
		r->guest_prev = g;
	}
	pr->done = true;
	live_phase_end(r);
	if (r->o->progress)
		fprintf(stderr, "\r\033[K");
	if (r->phase == PH_INSTALL || r->quiet)
		return 0; /* reported with touch2 */
	fprintf(stderr, "[%s %s] %-16s %9.3f s", r->t->name, r->label, phase_names[r->phase],
		pr->wall_ns / 1e9);
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
	fprintf(stderr, "[%s %s] %-16s %9.3f s  %7.3f GiB/s  (guest-timed passes of one %.3f s run)\n",
		r->t->name, r->label, "install/touch2", install_ns / 1e9,
		bytes / (double)GiB / (install_ns / 1e9), in->host_ns / 1e9);
	return 0;
}

/* Polls until the technique reports target; *t_done is when it first did. */
int wait_size(struct run *r, uint64_t target, uint64_t *t_done)
{
	uint64_t deadline = now_ns() + PHASE_TIMEOUT_NS, size = 0, last_print = 0;
	uint64_t last_size = UINT64_MAX, last_change = now_ns();
	int err;

	for (;;) {
		if ((err = vm_gone(r)))
			return err;
		qemu_phases_poll(r);
		if ((err = r->t->get_size(r, &size)))
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
 * last fall (a fall is a new minimum RSS_FALL_BYTES below the previous one). */
int wait_rss_settled(struct run *r, uint64_t since, uint64_t quiet_ns, uint64_t *t_last)
{
	uint64_t deadline = now_ns() + PHASE_TIMEOUT_NS, min = vm_rss(r->vm);
	int err;

	*t_last = since;
	for (;;) {
		uint64_t v = vm_rss(r->vm), t = now_ns();

		if ((err = vm_gone(r)))
			return err;
		qemu_phases_poll(r);
		if (v + RSS_FALL_BYTES <= min) {
			min = v;
			*t_last = t;
		}
		if (t - (*t_last > since ? *t_last : since) >= quiet_ns || t > deadline)
			return 0;
		progress(r, "waiting for QEMU's RSS to settle: %llu MiB",
			 (unsigned long long)(v / MiB));
		usleep(RSS_POLL_NS / 1000);
	}
}

static int phase_resize(struct run *r, enum phase p, struct phase_result *pr, uint64_t target)
{
	uint64_t from, t_size, t_rss;
	int err;

	if ((err = r->t->get_size(r, &from)))
		return failed(r, err);
	if ((err = phase_begin(r, p, pr)))
		return err;
	pr->bytes = from > target ? from - target : target - from;
	if ((err = r->t->set_size(r, target)) || (err = wait_size(r, target, &t_size)))
		return failed(r, err);
	/* The discards can trail the guest's report: wait for the host to see them. */
	if (target < from) {
		if ((err = wait_rss_settled(r, t_size, RSS_QUIET_NS, &t_rss)))
			return err;
		if (t_rss > t_size)
			t_size = t_rss;
	}
	if ((err = phase_end(r, pr, t_size)))
		return err;
	/* The host's word, not QMP's: a touched guest's RSS must fall with it. */
	if (p == PH_SHRINK && !r->quiet && pr->rss0 < pr->rss1 + (from - target) * 9 / 10)
		ht_warn("%s: QEMU's RSS fell only %llu MiB of the %llu MiB shrink QMP reported",
			r->t->name,
			(unsigned long long)((pr->rss0 > pr->rss1 ? pr->rss0 - pr->rss1 : 0) / MiB),
			(unsigned long long)((from - target) / MiB));
	return 0;
}

/* A phase a passive technique has not: no values, and why. */
static int phase_not_measured(struct phase_result *pr, const char *why)
{
	*pr = (struct phase_result){ .not_measured = why };
	return 0;
}

int phase_shrink(struct run *r, enum phase p, struct phase_result *pr, uint64_t since)
{
	if (r->t->set_size)
		return phase_resize(r, p, pr, r->o->shrink_to);
	if (p == PH_SHRINK_UNTOUCHED)
		return phase_not_measured(pr, "a passive shrink ends at QEMU's last RSS fall; an "
					      "untouched guest's free memory was never backed by "
					      "the host, so nothing falls to time");
	return r->t->reclaim(r, p, pr, since);
}

int phase_grow(struct run *r, enum phase p, struct phase_result *pr)
{
	if (!r->t->set_size)
		return phase_not_measured(pr, r->t->passive_note);
	return phase_resize(r, p, pr, r->o->mem);
}

static int start_probes(struct run *r)
{
	uint64_t s[MAX_RAM_RANGES], e[MAX_RAM_RANGES];
	struct ram_range ram[MAX_RAM_RANGES];
	int n, pid = r->vm->pid;

	if (geteuid() != 0) {
		static bool warned;

		if (!warned)
			ht_warn("not root: no host breakdown (BPF needs CAP_BPF and CAP_PERFMON)");
		warned = true;
		return 0;
	}
	n = vm_ram_ranges(r->vm, 64 * MiB, s, e, MAX_RAM_RANGES);
	for (int i = 0; i < n; i++)
		ram[i] = (struct ram_range){ .pid = pid, .start = s[i], .end = e[i] };
	if (host_probes_start(&r->hp, &pid, 1, false, ram, n > 0 ? n : 0)) {
		ht_warn("host probes unavailable: no host breakdown");
		return 0;
	}
	rss_mark_host_ok(r);
	return 0;
}

/* The guest times the technique's functions and counts pages by its vmstat:
 * no per-page probe (mm_page_alloc/free, balloon_page_enqueue), each of which
 * runs emulated under TCG and slowed the balloon ~3x. */
static int start_guest_trace(struct run *r, struct iteration *it)
{
	static const char *const vmstat[] = {
		"pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_movable", "pgfree",
		"balloon_inflate", "balloon_deflate",
	};
	json_t *funcs = json_array(), *counters = json_array(), *reply;
	int err;

	for (size_t i = 0; i < ARRAY_SIZE(vmstat); i++)
		json_array_append_new(counters, json_string(vmstat[i]));
	for (int l = 0; l < 2; l++) {
		const struct guest_func *f = l ? r->t->breakdown_guest_funcs : r->t->guest_funcs;

		if (l && r->kind != IT_BREAKDOWN)
			break;
		for (; f && f->name; f++) {
			json_t *o = json_pack("{s:s, s:s}", "name", f->name, "func", f->func);

			if (f->within)
				json_object_set_new(o, "within", json_string(f->within));
			json_array_append_new(funcs, o);
		}
	}
	err = agent_call(r->vm->agent,
			 json_pack("{s:s, s:o, s:[], s:o}", "cmd", "trace_start", "functions", funcs,
				   "tracepoints", "vmstat", counters), 60 * SEC,
			 &reply);

	if (!err) {
		json_t *cost = json_object_get(reply, "probe_cost");
		json_t *call = json_object_get(cost, "call_ns");

		if (json_is_number(call) && json_number_value(call) > 0)
			it->probe_call_ns = json_number_value(call);
		else if (json_is_number(call))
			snprintf(it->probe_why, sizeof(it->probe_why),
				 "the guest agent's calibration measured no cost (%.0f ns a call)",
				 json_number_value(call));
		else
			snprintf(it->probe_why, sizeof(it->probe_why), "the guest agent: %s",
				 json_string_value(json_object_get(cost, "error"))
					 ?: "no probe_cost in trace_start's reply");
	}
	json_decref(reply);
	if (err == -EREMOTEIO) {
		ht_warn("guest tracing unavailable: no guest breakdown");
		snprintf(it->probe_why, sizeof(it->probe_why), "no guest tracing");
		return 0;
	}
	if (err)
		return err;
	r->guest_trace_ok = true;
	return guest_read(r, &r->guest_prev);
}

/* Waits until the guest is idle: QEMU uses at most IDLE_CPU_PCT of a CPU in
 * IDLE_WINDOWS windows of IDLE_WINDOW_NS in a row (at most IDLE_MAX_NS).
 * Starting tracing keeps the guest busy for seconds after the agent answers
 * (loading BPF, and what it leaves the guest kernel to finish): a phase
 * started then paid for it, the balloon's untouched shrink 12-14 % in paired
 * rounds. So each phase group starts from an idle guest, traced or not. */
static int wait_guest_idle(struct run *r)
{
	uint64_t deadline = now_ns() + IDLE_MAX_NS, cpu = proc_cpu_ns(r->vm->pid);
	unsigned quiet = 0;
	int err;

	progress(r, "waiting for the guest to idle");
	while (quiet < IDLE_WINDOWS && now_ns() < deadline) {
		uint64_t prev = cpu;

		usleep(IDLE_WINDOW_NS / 1000);
		if ((err = vm_gone(r)))
			return err;
		cpu = proc_cpu_ns(r->vm->pid);
		quiet = cpu - prev <= IDLE_WINDOW_NS * IDLE_CPU_PCT / 100 ? quiet + 1 : 0;
	}
	if (quiet < IDLE_WINDOWS && verbose)
		ht_warn("%s %s: the guest did not idle within %.0f s", r->t->name, r->label,
			IDLE_MAX_NS / 1e9);
	return 0;
}

/* A paired VM's round runs with the timed iterations' probes (QEMU's USDT,
 * the guest trace), started afresh, or with every probe off. */
static int paired_tracing(struct run *r, struct iteration *it, bool on)
{
	json_t *reply;
	int err;

	qemu_phases_stop(r);
	if (r->guest_trace_ok) {
		r->guest_trace_ok = false;
		json_decref(r->guest_prev);
		r->guest_prev = NULL;
		err = agent_call(r->vm->agent, json_pack("{s:s}", "cmd", "trace_stop"), 60 * SEC,
				 &reply);
		json_decref(reply);
		if (err)
			return failed(r, err);
	}
	it->traced = on;
	if (!on) {
		snprintf(it->qemu_why, sizeof(it->qemu_why), "tracing off in this round");
		snprintf(it->probe_why, sizeof(it->probe_why), "tracing off in this round");
		return 0;
	}
	if ((err = start_guest_trace(r, it)))
		return failed(r, err);
	qemu_phases_start(r, it);
	return 0;
}

int boot_vm(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	struct qemu_args args = { 0 };
	struct vm_config cfg = {
		.qemu = o->qemu, .kernel = r->kernel, .initrd = o->initrd, .append = o->append,
		.accel = o->accel, .vcpus = o->vcpus, .mem = o->mem, .agent = true,
	};
	uint64_t t0 = now_ns(), guest_rtt;
	int err;

	r->t->configure(o, &cfg, &args);
	cfg.devices = args.argv;
	set_phase(r, PH_BOOT);
	progress(r, "booting");
	if ((err = vm_start(&r->vm, &cfg)))
		return err;
	/* Multi-VM: the group's summed RSS comes from hatrace footprint instead. */
	if (r->memcg && (err = memcg_add(r->memcg, r->vm->pid)))
		return err;
	if (!r->memcg)
		rss_sampler_start(r);
	if ((err = vm_wait_ready(r->vm, o->boot_timeout_ns, it->guest_kernel,
				 sizeof(it->guest_kernel))))
		return err;
	if (!agent_plain_name(it->guest_kernel))
		snprintf(it->guest_kernel, sizeof(it->guest_kernel), "unknown");
	if (r->t->after_boot && (err = r->t->after_boot(r)))
		return err;
	if ((err = agent_clock_offset(r->vm->agent, 5, &r->clock_offset, &guest_rtt)))
		return failed(r, err);
	if (verbose)
		ht_warn("clock offset host - guest %lld ns (rtt %llu ns)", (long long)r->clock_offset,
			(unsigned long long)guest_rtt);
	if (r->kind != IT_PAIRED) {
		/* With a workload running, the agent is the workload's alone. The
		 * footprint benchmarks (build|blender, multi-VM) use neither the host
		 * breakdown nor USDT: their probes would only slow QEMU's faults and
		 * madvise calls under the figures. The host probes fire per syscall
		 * and per fault of QEMU (a 4 KiB balloon's grow makes ~400k madvise
		 * calls): they run in the breakdown iteration, in timed ones only
		 * where they are all there is (-w, --cycles) or asked for (--live). */
		bool footprint_only = workload_is_auto(o);
		bool host = !footprint_only && (r->kind == IT_BREAKDOWN || o->live ||
						o->workload || o->cycles);

		r->per_event = host;
		if ((host && (err = start_probes(r))) ||
		    (!o->workload && !o->cycles && (err = start_guest_trace(r, it))))
			return failed(r, err);
		if (!footprint_only)
			qemu_phases_start(r, it);
		if (r->guest_trace_ok && (err = wait_guest_idle(r)))
			return err;
	}
	/* A timed iteration and a paired VM's traced rounds, by design. */
	if (!workload_is_auto(o) && !r->per_event && geteuid() == 0)
		r->host_why = "per-syscall and per-fault host probes run in the breakdown "
			      "iteration only (iterations.csv kind=breakdown)";
	it->ph[PH_BOOT] = (struct phase_result){ .done = true, .t0 = t0, .t1 = now_ns(),
						 .rss1 = vm_rss(r->vm) };
	it->ph[PH_BOOT].wall_ns = it->ph[PH_BOOT].t1 - t0;
	fprintf(stderr, "%s[%s %s] %-16s %9.3f s%s\n", r->o->progress ? "\r\033[K" : "",
		r->t->name, r->label, "boot", it->ph[PH_BOOT].wall_ns / 1e9,
		r->kind == IT_PAIRED ? "  (rounds with the timed probes on and off; not in the medians)" :
		r->kind == IT_BREAKDOWN ? "  (every probe on; not in the medians)" : "");
	return 0;
}

void end_vm(struct run *r, bool clean)
{
	rss_sampler_stop(r);
	qemu_phases_stop(r);
	host_probes_stop(r->hp);
	r->hp = NULL;
	r->host_ok = r->guest_trace_ok = false;
	r->host_why = NULL;
	r->per_event = false;
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
	fprintf(stderr, "[%s %s] integrity        %lld pages verified, %lld bad\n", r->t->name,
		r->label, (long long)it->integrity_pages,
		(long long)it->integrity_bad);
	if (it->integrity_bad) {
		ht_err("%s: %lld guest pages corrupted", r->t->name, (long long)it->integrity_bad);
		return -EIO;
	}
	return 0;
}

/* A paired VM's round k: 0 is the warm-up, untraced and kept nowhere, so that
 * no compared round is the VM's first (its first touched shrink and install
 * are faster than every later one: up to 30 % for the balloon); rounds 1 to
 * PAIRED_ROUNDS are it[0 ..), traced or not in ABBA order. Sets the round's
 * probes and label and returns where its phases go. */
static struct iteration *paired_round(struct run *r, struct iteration *it,
				      struct iteration *warm, unsigned k, int *err)
{
	struct iteration *ik = k ? &it[k - 1] : warm;
	bool on = k && paired_round_traced(r->iter, k - 1);

	if (k)
		snprintf(r->label, sizeof(r->label), "paired %u/%u r%u %s", r->iter + 1,
			 r->o->paired, k, on ? "traced" : "untraced");
	else
		snprintf(r->label, sizeof(r->label), "paired %u/%u warm-up", r->iter + 1,
			 r->o->paired);
	ik->round = k;
	ik->run = it[0].run;
	ik->integrity_pages = ik->integrity_bad = -1;
	memcpy(ik->guest_kernel, it[0].guest_kernel, sizeof(ik->guest_kernel));
	*err = paired_tracing(r, ik, on) ?: wait_guest_idle(r);
	return ik;
}

int run_iteration(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	bool paired = r->kind == IT_PAIRED;
	unsigned rounds = paired ? PAIRED_ROUNDS + 1 : 1;
	struct iteration warm = { 0 }, *ik = it;
	char bytes_s[32], threads_s[16];
	uint64_t bytes = 0;
	int err;

	if (paired)
		snprintf(r->label, sizeof(r->label), "paired %u/%u", r->iter + 1, o->paired);
	else if (r->kind == IT_BREAKDOWN)
		snprintf(r->label, sizeof(r->label), "breakdown");
	else
		snprintf(r->label, sizeof(r->label), "%u/%u", r->iter + 1, o->iterations);
	if (o->vms > 1)
		return run_multivm(r, it);
	if ((err = boot_vm(r, it)))
		return err;
	if (workload_is_auto(o))
		return run_autoreclaim(r, it);
	/* untouched shrinks first: a paired VM's rounds of them before any touch */
	for (unsigned k = 0; o->untouched && k < rounds; k++) {
		if (paired && (ik = paired_round(r, it, &warm, k, &err), err))
			return err;
		err = phase_shrink(r, PH_SHRINK_UNTOUCHED, &ik->ph[PH_SHRINK_UNTOUCHED], now_ns()) ?:
		      phase_grow(r, PH_GROW_UNTOUCHED, &ik->ph[PH_GROW_UNTOUCHED]);
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

	for (unsigned k = 0; k < rounds; k++) {
		if (paired && (ik = paired_round(r, it, &warm, k, &err), err))
			return err;
		if ((err = phase_workload(r, PH_TOUCH, &ik->ph[PH_TOUCH], touch, bytes, NULL)))
			return err;
		if (o->workload)
			return run_interference(r, it);
		if (o->cycles)
			return run_cycles(r, it) ?: (o->integrity ? integrity_check(r, it) : 0);
		err = phase_shrink(r, PH_SHRINK, &ik->ph[PH_SHRINK], ik->ph[PH_TOUCH].t1) ?:
		      phase_grow(r, PH_GROW, &ik->ph[PH_GROW]);
		if (err)
			return err;
		/* install: first allocation of every page after the grow; touch2: again. */
		if ((err = phase_install_touch2(r, ik, install, bytes)))
			return err;
	}
	return o->integrity ? integrity_check(r, it) : 0;
}
