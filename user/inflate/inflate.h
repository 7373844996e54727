/* hatrace inflate: the HyperAlloc paper's inflate benchmark. Each iteration
 * boots a fresh VM: [shrink_untouched, grow_untouched,] touch, shrink, grow,
 * install, touch2. Shared by the runner, the sampler, the breakdown, the
 * results writers and the command line; techniques see technique.h. */
#ifndef HATRACE_INFLATE_H
#define HATRACE_INFLATE_H

#include "vm.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SEC 1000000000ull
#define MSEC 1000000ull
/* How phases are timed (meta.json "thresholds"; README "How phases are measured"). */
#define POLL_NS (5 * MSEC)             /* QMP size polling while a resize runs */
#define RSS_SAMPLE_NS (100 * MSEC)     /* rss.csv sampling */
#define RSS_FALL_BYTES (8 * MiB)       /* a new RSS minimum this far down is a fall */
#define RSS_QUIET_NS (500 * MSEC)      /* a shrink settles after this long without one */
#define RSS_POLL_NS (20 * MSEC)        /* RSS polling while settling */
#define PASSIVE_QUIET_NS (5 * SEC)     /* the same for a passive technique's shrink */
#define PHASE_TIMEOUT_NS (1200 * SEC)
#define STALL_NS (60 * SEC) /* a resize that makes no progress for this long failed */
/* Phases start from an idle guest: QEMU under this much of a CPU, in a row. */
#define IDLE_CPU_PCT 8
#define IDLE_WINDOW_NS (250 * MSEC)
#define IDLE_WINDOWS 2
#define IDLE_MAX_NS (10 * SEC)

struct technique;

enum phase { PH_BOOT, PH_SHRINK_UNTOUCHED, PH_GROW_UNTOUCHED, PH_TOUCH, PH_SHRINK, PH_GROW,
	     PH_INSTALL, PH_TOUCH2, PH_MAX };
extern const char *const phase_names[PH_MAX];

/* The host counters of the QEMU process, one name each in every output
 * (iterations.csv <phase>_host_<name>, summary.json breakdown.host.<name>,
 * trace.json args.<name>). */
enum host_field { HF_MADVISE_N, HF_MADVISE_NS, HF_FALLOCATE_N, HF_FALLOCATE_NS,
		  HF_DISCARD_BYTES, HF_RAM_FAULTS, HF_KVM_EXITS, HF_KVM_PAGE_FAULTS, HF_NR };
extern const char *const host_field_names[HF_NR];

/* Cumulative host totals; phases difference them. */
struct host_totals {
	uint64_t v[HF_NR];
};

/* QEMU's own view of a resize phase, from the USDT probes of hatrace's QEMU
 * (qemu_phases.c): from the request handled in QEMU to the target reached
 * (free page reporting: from the first report in the phase to the last). */
struct qemu_window {
	bool seen;                      /* a start was recorded in the phase */
	bool reached;                   /* and its end */
	uint64_t start_ns, end_ns;      /* host CLOCK_MONOTONIC */
	uint64_t requests, request_ns;  /* virtqueue requests; balloon: untimed */
	uint64_t request_pages;         /* balloon: 4 KiB pages the requests moved */
	uint64_t discards, discard_ns, discard_bytes; /* QEMU's madvise/fallocate discards */
	uint64_t reports, report_bytes; /* free page reports */
	/* virtio-hyperalloc install requests from the phase's start to its end:
	 * count, 2 MiB children asked for, total time and log2 latency slots (ns) */
	uint64_t installs, install_children, install_ns;
	uint64_t install_hist[64];
	bool discards_timed;            /* the discard syscalls were traced (per_event) */
	bool discards_counted;          /* discards and their bytes are known: timed, or
					 * virtio-hyperalloc's own hyperalloc_discard events */
	uint64_t probe_hits;            /* hits of the attached USDT probes in the phase */
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
	bool host_measured;   /* host holds BPF counters (else no probes ran) */
	const char *host_why; /* why not, when known (a timed iteration: by design) */
	const char *not_measured; /* a phase the technique has not: why (done is false) */
	struct qemu_window qemu;
};

struct iteration {
	struct phase_result ph[PH_MAX];
	char guest_kernel[128];
	int64_t integrity_pages, integrity_bad; /* -1: not checked */
	json_t *workload;      /* --workload stream|ftq: the guest's result */
	int64_t clock_offset;  /* host - guest monotonic */
	char qemu_why[256];   /* why QEMU-internal timing is unavailable ("": it is not) */
	/* What one traced guest function call costs in probes (the agent's
	 * calibration at trace_start), or why it is unknown ("": it is known). */
	double probe_call_ns;
	char probe_why[160];
	unsigned run;          /* 1-based place in its technique's sequence of iterations */
	unsigned round;        /* a paired VM's round, 1 to PAIRED_ROUNDS (0: not one) */
	bool traced;           /* a paired round: its probes were on */
};

/* Which probes an iteration runs (overhead.c has the order they run in):
 * timed, the medians: only probes that fire per phase or per request (QEMU's
 * USDT phase probes, the guest's function timing and vmstat counters);
 * paired: one VM runs the phases in PAIRED_ROUNDS rounds, with the timed
 * iterations' probes on and off in ABBA order, the tracing overhead; breakdown:
 * every probe, the per-syscall and per-fault host probes too. Only the timed
 * iterations are in the medians. */
enum iter_kind { IT_TIMED, IT_PAIRED, IT_BREAKDOWN };
extern const char *const iter_kind_names[];
#define PAIRED_ROUNDS 4

/* The results of one technique: its iterations and the clock offset of the first. */
struct tech_results {
	const struct technique *t;
	struct iteration *its;
	int64_t clock_offset;
	json_t *qemu_argv;   /* the first iteration's QEMU command line */
	/* Not in the medians: the rounds of the --paired VMs, PAIRED_ROUNDS per
	 * VM (npaired VMs ran), the tracing overhead, and one iteration with every
	 * probe on, the host breakdown (has_breakdown: it ran). */
	struct iteration *paired;
	unsigned npaired;
	struct iteration breakdown;
	bool has_breakdown;
};

struct opts {
	const struct technique **tech; /* selected, in table order, NULL-terminated */
	uint64_t mem, shrink_to, integrity;
	unsigned vcpus, iterations;
	unsigned paired;       /* --paired: VMs that run the phases traced and untraced */
	bool untouched, live;
	enum accel accel;
	char accel_why[160];
	char *out_dir;
	char *qemu, *initrd;
	char **kernels;   /* the guest kernel of each technique in tech */
	time_t started;
	const char *append;
	uint64_t boot_timeout_ns;
	bool progress; /* stderr is a terminal */
	/* --workload stream|ftq (NULL: the inflate phases) and its schedule. */
	const char *workload;
	uint64_t workload_bytes, seconds_ns, shrink_at_ns, grow_at_ns;
	uint64_t tail_ns;      /* build|blender: measured on after the workload ends */
	unsigned build_jobs;   /* ht-build --jobs */
	unsigned vms;          /* build|blender: VMs sharing --budget (1: no budget) */
	unsigned cycles;       /* --cycles: the soak's shrink/grow cycles (0: none) */
	uint64_t budget, stagger_ns;
	const char *tmp_dir;   /* the results being written (DIR.tmp-XXXXXX) */
};

/* --workload build|blender: the auto-reclaim footprint benchmark. */
static inline bool workload_is_auto(const struct opts *o)
{
	return o->workload && (!strcmp(o->workload, "build") || !strcmp(o->workload, "blender"));
}

struct host_probes;
struct hist_entry;
struct memcg;
struct qemu_phases;

/* Everything about the VM being measured right now. */
struct run {
	const struct opts *o;
	const struct technique *t;
	const char *kernel;
	unsigned iter;
	enum iter_kind kind;
	char label[32];            /* "2/5", "paired 1/2 r3 untraced" or "breakdown" */
	struct vm *vm;
	struct host_probes *hp;
	struct qemu_phases *qp;
	bool host_ok, guest_trace_ok;
	const char *host_why;      /* why host probes are off by design, or NULL */
	bool per_event;            /* host probes per syscall/fault (and QEMU's discards) on */
	struct host_totals host_prev;
	json_t *guest_prev;        /* last trace_read events */
	int64_t clock_offset;      /* host - guest monotonic */
	enum phase phase;
	uint64_t live_last;
	struct hist_entry *live_base;
	int nlive_base;
	pthread_t sampler;
	bool sampling;
	bool death_reported;
	struct memcg *memcg;       /* multi-VM: the budget QEMU joins at start */
	bool quiet;                /* phases print no line (the soak's cycles) */
};

/* runner.c: one iteration on a fresh VM (a paired one: it[0 .. PAIRED_ROUNDS),
 * its rounds); end_vm releases it. */
int run_iteration(struct run *r, struct iteration *it);
/* Boots r's VM and waits for its agent (and joins r->memcg, if set). */
int boot_vm(struct run *r, struct iteration *it);
void end_vm(struct run *r, bool clean);
void progress(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* If QEMU died, says so once and returns -EPIPE (-EINTR on a signal), else 0. */
int vm_gone(struct run *r);
/* After a failed call: if QEMU is dying, say so rather than the call's error. */
int failed(struct run *r, int err);
int phase_begin(struct run *r, enum phase p, struct phase_result *pr);
int phase_end(struct run *r, struct phase_result *pr, uint64_t t1);
/* Waits until QEMU's RSS stops falling for quiet_ns; *t_last is the last fall. */
int wait_rss_settled(struct run *r, uint64_t since, uint64_t quiet_ns, uint64_t *t_last);
/* Polls the technique's size until it is target; *t_done is when it first was. */
int wait_size(struct run *r, uint64_t target, uint64_t *t_done);

/* Shrink to --shrink-to (a passive technique: wait for the guest, which freed
 * its memory at since, 0: now) and grow back to --mem. */
int phase_shrink(struct run *r, enum phase p, struct phase_result *pr, uint64_t since);
int phase_grow(struct run *r, enum phase p, struct phase_result *pr);

/* interference.c: --workload stream|ftq runs the workload while shrinking and growing. */
int run_interference(struct run *r, struct iteration *it);
json_t *interference_summary(const struct tech_results *res, const struct opts *o);
int interference_write(const char *dir, const struct tech_results *res, const struct opts *o);
void interference_print(FILE *f, json_t *summary, const struct opts *o);

/* autoreclaim.c: --workload build|blender (and --auto); static is its baseline
 * technique. */
extern const struct technique tech_static;
int run_autoreclaim(struct run *r, struct iteration *it);
json_t *autoreclaim_summary(const char *dir, const struct tech_results *res, const struct opts *o);
int autoreclaim_write(const char *dir, const struct tech_results *res, const struct opts *o);
void autoreclaim_print(FILE *f, json_t *summary);
/* Its parts, shared with multivm.c: a controller round (appends a row), ht-build
 * start and status (*done: its result once finished), and `hatrace footprint`
 * on processes in the background. */
int autoreclaim_control(struct run *r, uint64_t *target, json_t *rows);
/* Turns on the technique's own automatic mode (auto_start), if it has one, and
 * says which automatic mode a technique runs in (footprint.json "mode"). */
int autoreclaim_begin(struct run *r);
const char *autoreclaim_mode(const struct technique *t);
int build_start(struct run *r);
int build_status(struct run *r, json_t **done);
pid_t footprint_start(const int *pids, int n, const char *csv, const char *log);

/* Samples (NAN: not measured, written null), median and interval of a figure;
 * scale sets the resolution the median is taken at (1e6: micro-units). */
json_t *figure_json(const double *x, unsigned n, double scale);

/* cycles.c: --cycles N shrink/grow cycles with the integrity buffer held. */
int run_cycles(struct run *r, struct iteration *it);
json_t *cycles_summary(const struct tech_results *res, const struct opts *o);

/* multivm.c: --vms N under --budget, then the extra VMs that should fit. */
int run_multivm(struct run *r, struct iteration *it);
json_t *multivm_summary(const struct tech_results *res, const struct opts *o);
void multivm_print(FILE *f, json_t *summary);
/* qemu_phases.c: QEMU-internal phase timing (USDT) while a VM runs, and its
 * part of summary.json and of the printed report. */
void qemu_phases_start(struct run *r, struct iteration *it);
void qemu_phases_begin(struct run *r);
void qemu_phases_poll(struct run *r);
void qemu_phases_end(struct run *r, struct phase_result *pr);
void qemu_phases_stop(struct run *r);
/* What one USDT probe hit costs on this host (qemu_usdt_hit_ns), ns, measured
 * at the first attach of the run; -1 with *why if it was not. */
double qemu_phases_hit_ns(const char **why);
void qemu_phases_summary(json_t *summary, const struct tech_results *res, const struct opts *o);
void qemu_phases_print(FILE *f, json_t *summary);

/* overhead.c: the order of a technique's iterations (step 0, 1, ... until it
 * returns false): the breakdown iteration first (without -w and --cycles),
 * then timed and paired ones interleaved. */
bool iteration_schedule(const struct opts *o, unsigned step, enum iter_kind *kind,
			unsigned *index);
/* Whether round k (0-based) of paired VM vm runs with its probes on. */
bool paired_round_traced(unsigned vm, unsigned k);
/* The traced rounds against the untraced ones of the paired VMs, per phase. */
void overhead_summary(json_t *summary, const struct tech_results *res, const struct opts *o);
void overhead_print(FILE *f, json_t *summary);

/* limits.c: the host's own MADV_DONTNEED and MADV_POPULATE_WRITE of the
 * shrink's bytes, backed like QEMU's guest RAM (summary.json "limits"), once
 * per run before the VMs; limits_summary adds each technique's shrink and
 * install as a multiple of them and takes limits over. */
json_t *limits_measure(const struct opts *o);
void limits_summary(json_t *summary, json_t *limits);
void limits_print(FILE *f, json_t *summary);
/* The host's transparent huge page mode ("always", "madvise", "never"). */
void host_thp_mode(char *buf, size_t len);

/* ratios.c: issue 10's acceptance ratios from the medians of summary.json
 * (and its limits), each with its target and the paper's figure. */
void ratios_summary(json_t *summary, const struct opts *o);
void ratios_print(FILE *f, json_t *summary);

/* rss.c: a thread samples QEMU's RSS (and prints --live histograms) while a VM runs. */
struct rss_sample {
	uint64_t t;
	uint64_t rss;
	const struct technique *tech;
	unsigned iter;
	enum phase phase;
};
void rss_sampler_start(struct run *r);
void rss_sampler_stop(struct run *r);
void set_phase(struct run *r, enum phase p);
/* The --live histograms of the phase so far (force: now, the whole phase). */
void live_phase_begin(struct run *r);
void live_phase_end(struct run *r);
void rss_mark_host_ok(struct run *r);
/* Calls fn for every sample, under the sampler's lock. */
void rss_foreach(void (*fn)(const struct rss_sample *s, void *arg), void *arg);

/* breakdown.c: host (BPF) and guest (agent trace) counters of the QEMU process. */
int host_read(struct run *r, struct host_totals *t);
void host_delta(const struct host_totals *a, const struct host_totals *b, struct host_totals *d);
int guest_read(struct run *r, json_t **out);

/* results.c */
/* Sets obj[key] to null and obj.why_null[key] to why. */
void summary_set_null(json_t *obj, const char *key, const char *why);
/* The median of v[0..n) (0 for none). */
double median_u64(uint64_t *v, unsigned n);
/* A guest event with a time (a traced function), not a count only. */
bool event_timed(json_t *ev);
json_t *summary_json(const struct tech_results *res, const struct opts *o);
json_t *meta_json(const struct tech_results *res, const struct opts *o, int argc, char **argv);
/* The printed report: medians and their intervals, then the breakdown. */
void print_report(FILE *f, const struct tech_results *res, const struct opts *o, json_t *summary);
int write_results(const char *tmp, const struct tech_results *res, const struct opts *o,
		  json_t *summary, json_t *meta, const char *report);

/* outdir.c: -o DIR is replaced only when empty or an earlier run's results. */
int out_dir_replaceable(const char *dir, bool at_start);
int out_dir_create_tmp(const char *dir, char *tmp, size_t len);
int out_dir_commit(const char *tmp, const char *dir);
void remove_tree(const char *dir);
int run_plots(const char *dir);

#endif
