/* hatrace inflate: the command line. */
#include "agent.h"
#include "cmds.h"
#include "common.h"
#include "technique.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace inflate [OPTIONS]\n\n"
		"The inflate benchmark: per iteration a fresh VM touches most of its RAM and\n"
		"frees it, is shrunk to --shrink-to, grown back, and allocates its memory again\n"
		"twice (install, touch2). Reports the host's wall time per phase, a host (BPF)\n"
		"and guest (agent trace) breakdown, and medians with an order-statistic interval\n"
		"[x(k), x(n+1-k)] and its exact coverage (>= 95%% from 6 samples; below that\n"
		"[min, max]: 93.75%% for 5 samples).\n"
		"With hatrace's QEMU, QEMU's own start and end of each resize (USDT) are shown\n"
		"next to the phases. Timed iterations run only the probes that fire per phase\n"
		"or request (QEMU's USDT phases, the guest's function timing and counters);\n"
		"every probe, the host's per-syscall and per-fault ones too, runs in one more\n"
		"iteration first, the breakdown iteration. Paired VMs, interleaved with the\n"
		"timed ones, run the phases in an untraced warm-up round, then 4 rounds with\n"
		"the timed probes on and every probe off in ABBA order: the tracing overhead\n"
		"per phase is the median of the adjacent rounds' ratios. Neither is in the\n"
		"medians (nor runs with -w, --cycles). Techniques run round robin: iteration\n"
		"k of each before iteration k+1 of any.\n\n"
		"  -t, --technique LIST  comma-separated techniques (below) or all (default all)\n"
		"  -m, --mem SIZE        VM memory (default 2G)\n"
		"  -s, --shrink-to SIZE  shrink target (default 512M)\n"
		"  -c, --vcpus N         vCPUs and workload threads (default 2)\n"
		"  -n, --iterations N    timed iterations per technique (default 5; with the\n"
		"                        breakdown and paired ones a default run with\n"
		"                        --untouched takes about 30 minutes under TCG on 2 cores)\n"
		"      --paired N        paired VMs per technique, 4 compared rounds each (default:\n"
		"                        as many as timed iterations, at most 2)\n"
		"  -u, --untouched       also shrink each fresh VM before it is touched\n"
		"                        (phases shrink_untouched, grow_untouched)\n"
		"  -a, --accel MODE      auto|kvm|tcg (default auto: KVM only where /dev/kvm runs\n"
		"                        a stock guest, TCG on PVM hosts; TCG is multi-threaded)\n"
		"  -l, --live            live log2 histograms of reclaim syscalls and faults\n"
		"  -o, --output DIR      results directory (default results/inflate); replaced\n"
		"                        only if empty or an earlier run's results directory\n"
		"      --qemu PATH       QEMU binary (default $HATRACE_QEMU, else hatrace's own\n"
		"                        build/qemu/qemu-system-x86_64, else qemu-system-x86_64\n"
		"                        on PATH)\n"
		"      --kernel PATH     guest kernel for every technique (default: each\n"
		"                        technique's flavour, build/guest/bzImage-FLAVOUR)\n"
		"      --initrd PATH     guest initramfs (default build/guest/initramfs.cpio.gz)\n"
		"      --append ARGS     guest kernel command line (default build/guest/cmdline)\n"
		"      --boot-timeout S  seconds to wait for the guest agent (default 300)\n"
		"      --integrity SIZE  keep SIZE of patterned memory in the guest through all\n"
		"                        phases and fail if any page of it changed\n"
		"  -w, --workload NAME   touch (default: the phases above), or stream or ftq:\n"
		"                        after touch, the guest runs ht-stream (triad bandwidth\n"
		"                        per 100 ms) or ht-ftq (work per 10 ms quantum) for\n"
		"                        --seconds while the host shrinks and grows it; or\n"
		"                        build or blender: the auto-reclaim footprint benchmark\n"
		"                        (ht-build in the guest, each technique in its automatic\n"
		"                        mode: its own (fpr, hyperalloc) or a host controller\n"
		"                        (balloon, virtio-mem); a static VM first as baseline)\n"
		"      --seconds S       stream|ftq run time (default 20)\n"
		"      --stream-bytes SIZE  stream: ht-stream's arrays in all (default 1/75 of\n"
		"                        the memory moved, --mem minus --shrink-to, in 2 MiB:\n"
		"                        the paper's 240 MB of arrays against its 18 GiB)\n"
		"      --shrink-at S     shrink S seconds after the workload started (default 4)\n"
		"      --grow-at S       grow S seconds after it started (default 12)\n"
		"      --tail S          build|blender: measure S seconds past the workload's end\n"
		"                        (default 15)\n"
		"      --jobs N          build: compile jobs of ht-build (default 48)\n"
		"      --vms N           build|blender: N VMs per technique share --budget in one\n"
		"                        memory cgroup, workloads --stagger S apart (default 10);\n"
		"                        then the extra VMs the summed peak leaves room for are\n"
		"                        started under the same budget to check that they fit\n"
		"      --budget SIZE     the memory cgroup's limit (default 3/4 of N x --mem)\n"
		"      --stagger S       seconds between the VMs' workload starts (default 10)\n"
		"      --auto            the footprint over time of each technique's automatic\n"
		"                        mode while the guest allocates and frees: -w build (or\n"
		"                        -w blender) over the techniques with a mode of their\n"
		"                        own (fpr; hyperalloc: a soft-reclaim round of every\n"
		"                        free 2 MiB child every 5 s), static first as baseline\n"
		"      --cycles N        the soak: after touch, N shrink/grow cycles with the\n"
		"                        --integrity buffer (default 64M) verified every 50 and\n"
		"                        at the end, and the guest console checked for kernel\n"
		"                        errors; soak.json sums them up\n\n"
		"Timing (CLOCK_MONOTONIC): shrink/grow run from the QMP request until QMP,\n"
		"polled every 5 ms, reports the target and, for a shrink, QEMU's RSS (/proc,\n"
		"polled every 20 ms) has not fallen by 8 MiB for 500 ms; it ends at the later\n"
		"of the two. FPR's shrink runs from the end of touch to RSS's last fall (5 s\n"
		"quiet); FPR has no grow and no untouched shrink (null in summary.json).\n"
		"install and touch2 are the guest-timed passes of one ht-alloc-install run; the\n"
		"host breakdown of both is install's. Not measured is null (JSON) or an empty\n"
		"cell (CSV), with the reason in why_null: see docs/results.md.\n\n"
		"With --workload stream|ftq, DIR also gets workload.csv (per thread and interval),\n"
		"marks.csv (the measured shrink and grow windows on the workload's clock) and\n"
		"interference.json (time lost, 1%% quantile, work lost per resize). With build or\n"
		"blender it gets footprint.json (GiB*min of QEMU's RSS, peak, runtime against\n"
		"static, QEMU CPU seconds), footprint-TECH-N.csv (hatrace footprint) and\n"
		"controller.csv; with --vms, multivm-TECH-base|verify-N.csv (hatrace footprint of\n"
		"all QEMUs) and footprint.json's \"multivm\" part.\n\n"
		"DIR gets meta.json, iterations.csv, guest-events.csv, rss.csv, summary.json,\n"
		"trace.json, report.txt (the printed report), consoles/ and inflate-speed /\n"
		"inflate-rss plots (PNG, SVG).\n\n"
		"Techniques (guest kernel flavour, QEMU property they need):\n");
	for (const struct technique *const *t = techniques; *t; t++)
		fprintf(f, "  %-20s %s%s%s\n", (*t)->name, (*t)->kernel,
			(*t)->qemu_property ? ", " : "", (*t)->qemu_property ?: "");
}

/* QEMU's command line, as a JSON array of its arguments. */
static json_t *qemu_argv_json(const struct vm *vm)
{
	json_t *a = json_array();

	for (char **p = vm->argv; p && *p; p++)
		json_array_append_new(a, json_string_lossy(*p));
	return a;
}

/* LIST: names or "all"; the selection keeps the table's order. */
static int parse_techniques(const char *list, const struct technique ***sel)
{
	char *copy = strdup(list), *tok, *save = NULL;
	size_t ntech = 0, n = 0;
	bool all = false;
	int err = 0;

	while (techniques[ntech])
		ntech++;
	free(*sel);
	*sel = calloc(ntech + 1, sizeof(**sel));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
		if (strcmp(tok, "all") && !technique_find(tok)) {
			ht_err("--technique: unknown technique '%s' (expected %s or all)", tok,
			       technique_names());
			err = -EINVAL;
			break;
		}
		all |= !strcmp(tok, "all");
	}
	if (!err && !n) {
		ht_err("--technique: no technique given (expected %s or all)", technique_names());
		err = -EINVAL;
	}
	for (size_t t = 0, k = 0; !err && t < ntech; t++) {
		bool named = all;

		strcpy(copy, list);
		for (tok = strtok_r(copy, ",", &save); tok && !named; tok = strtok_r(NULL, ",", &save))
			named = !strcmp(tok, techniques[t]->name);
		if (named)
			(*sel)[k++] = techniques[t];
	}
	free(copy);
	return err;
}

static char *default_file(const char *opt, const char *rel)
{
	char *p = exe_relative(rel);

	if (p && !access(p, R_OK))
		return p;
	ht_err("%s: %s not found (build the guest with 'make', or pass %s PATH)", opt,
	       p ? p : rel, opt);
	free(p);
	return NULL;
}

static uint64_t host_mem_available(void)
{
	static const char *const key[] = { "MemAvailable" };
	uint64_t avail;

	return proc_fields("/proc/meminfo", key, &avail, 1) == 1 ? avail : 0;
}

/* The guest build's kernel command line (build/guest/cmdline), else its default. */
static const char *guest_cmdline(void)
{
	static char line[1024];
	char *path = exe_relative("guest/cmdline");
	FILE *f = path ? fopen(path, "r") : NULL;

	free(path);
	snprintf(line, sizeof(line), "console=ttyS0 memhp_default_state=online_movable panic=-1 tsc=reliable no_timer_check");
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

/* A technique that needs a device property of hatrace's QEMU: clear error. */
static bool qemu_lacks_property(const struct opts *o)
{
	for (const struct technique **t = o->tech; *t; t++) {
		const char *prop = (*t)->qemu_property;
		char dev[64];

		if (!prop)
			continue;
		snprintf(dev, sizeof(dev), "%.*s", (int)(strchr(prop, '.') - prop), prop);
		if (!qemu_has_property(o->qemu, dev, strchr(prop, '.') + 1)) {
			ht_err("%s needs a QEMU whose %s has the '%s' property (hatrace's own "
			       "build: make qemu); %s lacks it (choose it with --qemu PATH)",
			       (*t)->name, dev, strchr(prop, '.') + 1, o->qemu);
			return true;
		}
	}
	return false;
}

/* --cycles: techniques the host resizes, and an integrity buffer. */
static int check_cycles(struct opts *o)
{
	if (o->workload || o->untouched) {
		ht_err("--cycles: runs without --workload and --untouched");
		return -EINVAL;
	}
	for (const struct technique **t = o->tech; *t; t++) {
		if (!(*t)->set_size) {
			ht_err("--cycles: %s has no resize the host starts; leave it out", (*t)->name);
			return -EINVAL;
		}
	}
	if (!o->integrity)
		o->integrity = 64 * MiB < o->shrink_to / 4 ? 64 * MiB : o->shrink_to / 4;
	return 0;
}

/* --auto: the footprint benchmark (-w build unless blender is named) over the
 * techniques with an automatic mode of their own (passive, or auto_start),
 * unless --technique names others (then the host controller drives them). */
static int select_auto(struct opts *o, bool tech_given)
{
	size_t k = 0;

	if (o->workload && !workload_is_auto(o)) {
		ht_err("--auto: runs the footprint workload build or blender, not %s", o->workload);
		return -EINVAL;
	}
	if (!o->workload)
		o->workload = "build";
	for (size_t i = 0; o->tech[i]; i++)
		if (tech_given || !o->tech[i]->set_size || o->tech[i]->auto_start)
			o->tech[k++] = o->tech[i];
	o->tech[k] = NULL;
	return 0;
}

/* --workload build|blender: the static baseline runs first. */
static int add_static(struct opts *o)
{
	size_t n = 0;

	while (o->tech[n])
		n++;
	o->tech = realloc(o->tech, (n + 2) * sizeof(*o->tech));
	memmove(o->tech + 1, o->tech, (n + 1) * sizeof(*o->tech));
	o->tech[0] = &tech_static;
	return 0;
}

/* --workload stream|ftq: a schedule that fits, techniques that resize. */
static int check_workload(struct opts *o)
{
	if (o->untouched || o->integrity) {
		ht_err("--workload %s: runs without --untouched and --integrity", o->workload);
		return -EINVAL;
	}
	if (o->vms > 1 && !workload_is_auto(o)) {
		ht_err("--vms: needs --workload build or blender");
		return -EINVAL;
	}
	if (o->vms > 1 && !o->budget)
		o->budget = o->vms * o->mem / 4 * 3;
	if (o->vms > 1 && o->budget < o->vms * o->shrink_to) {
		ht_err("--budget: %llu MiB cannot hold %u VMs of at least --shrink-to %llu MiB",
		       (unsigned long long)(o->budget / MiB), o->vms,
		       (unsigned long long)(o->shrink_to / MiB));
		return -EINVAL;
	}
	if (o->vms > 1 && geteuid()) {
		ht_err("--vms: the memory cgroup and hatrace footprint need root");
		return -EPERM;
	}
	if (workload_is_auto(o))
		return add_static(o);
	if (!(o->shrink_at_ns < o->grow_at_ns && o->grow_at_ns < o->seconds_ns)) {
		ht_err("--workload %s: needs --shrink-at < --grow-at < --seconds (now %.0f, %.0f, "
		       "%.0f s)", o->workload, o->shrink_at_ns / 1e9, o->grow_at_ns / 1e9,
		       o->seconds_ns / 1e9);
		return -EINVAL;
	}
	for (const struct technique **t = o->tech; *t; t++) {
		if (!(*t)->set_size) {
			ht_err("--workload %s: %s has no resize the host starts, so nothing to "
			       "interfere with; leave it out", o->workload, (*t)->name);
			return -EINVAL;
		}
	}
	/* ht-stream's arrays, in the paper's proportion to the memory moved by
	 * default; they stay in the guest through the shrink. */
	if (strcmp(o->workload, "stream"))
		return 0;
	if (!o->workload_bytes)
		o->workload_bytes = (o->mem - o->shrink_to) / 75 & ~(2 * MiB - 1);
	if (o->workload_bytes < 2 * MiB || o->workload_bytes > o->shrink_to / 2) {
		ht_err("--stream-bytes: %llu MiB; needs 2 MiB to half of --shrink-to (%llu MiB)",
		       (unsigned long long)(o->workload_bytes / MiB),
		       (unsigned long long)(o->shrink_to / 2 / MiB));
		return -EINVAL;
	}
	return 0;
}

/* The guest kernel of a technique's flavour: build/guest/bzImage-FLAVOUR,
 * never another flavour's. */
static char *default_kernel(const struct technique *t)
{
	char rel[64], *p;

	snprintf(rel, sizeof(rel), "guest/bzImage-%s", t->kernel);
	p = exe_relative(rel);
	if (p && !access(p, R_OK))
		return p;
	ht_err("%s needs the %s guest kernel: %s: %s (build it with 'make', or pass --kernel "
	       "PATH)", t->name, t->kernel, p ? p : rel, strerror(errno));
	free(p);
	return NULL;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_QEMU = 256, O_KERNEL, O_INITRD, O_APPEND, O_BOOT_TIMEOUT, O_INTEGRITY,
	       O_SECONDS, O_SHRINK_AT, O_GROW_AT, O_TAIL, O_JOBS, O_VMS, O_BUDGET, O_STAGGER,
	       O_CYCLES, O_AUTO, O_PAIRED, O_STREAM_BYTES };
	static const struct option longopts[] = {
		{ "technique", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "shrink-to", required_argument, NULL, 's' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "paired", required_argument, NULL, O_PAIRED },
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
		{ "workload", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "stream-bytes", required_argument, NULL, O_STREAM_BYTES },
		{ "shrink-at", required_argument, NULL, O_SHRINK_AT },
		{ "grow-at", required_argument, NULL, O_GROW_AT },
		{ "tail", required_argument, NULL, O_TAIL },
		{ "jobs", required_argument, NULL, O_JOBS },
		{ "vms", required_argument, NULL, O_VMS },
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "stagger", required_argument, NULL, O_STAGGER },
		{ "cycles", required_argument, NULL, O_CYCLES },
		{ "auto", no_argument, NULL, O_AUTO },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *qemu = NULL, *kernel = NULL, *initrd = NULL;
	bool auto_mode = false, tech_given = false;
	uint64_t v;
	size_t n;
	int c;

	if (parse_techniques("all", &o->tech))
		return -EINVAL;
	o->mem = 2 * GiB;
	o->shrink_to = 512 * MiB;
	o->vcpus = 2;
	o->iterations = 5;
	o->paired = 0; /* 0: the default, set once -n is known */
	o->out_dir = strdup("results/inflate");
	o->boot_timeout_ns = 300 * SEC;
	o->append = NULL;
	o->seconds_ns = 20 * SEC;
	o->shrink_at_ns = 4 * SEC;
	o->grow_at_ns = 12 * SEC;
	o->tail_ns = 15 * SEC;
	o->build_jobs = 48;
	o->vms = 1;
	o->stagger_ns = 10 * SEC;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:m:s:c:n:ua:lo:w:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_techniques(optarg, &o->tech))
				return -EINVAL;
			tech_given = true;
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
		case O_PAIRED:
			if (parse_u64("--paired", optarg, 1, 1000, &v))
				return -EINVAL;
			o->paired = v;
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
		case 'w':
			if (!strcmp(optarg, "touch")) {
				o->workload = NULL;
			} else if (!strcmp(optarg, "stream") || !strcmp(optarg, "ftq") ||
				   !strcmp(optarg, "build") || !strcmp(optarg, "blender")) {
				o->workload = optarg;
			} else {
				ht_err("--workload: unknown workload '%s' (expected touch, stream, ftq, "
				       "build or blender)", optarg);
				return -EINVAL;
			}
			break;
		case O_STREAM_BYTES:
			if (parse_size("--stream-bytes", optarg, &o->workload_bytes))
				return -EINVAL;
			break;
		case O_SECONDS:
			if (parse_seconds_ns("--seconds", optarg, 2 * SEC, 3600 * SEC, &o->seconds_ns))
				return -EINVAL;
			break;
		case O_SHRINK_AT:
			if (parse_seconds_ns("--shrink-at", optarg, SEC, 3600 * SEC, &o->shrink_at_ns))
				return -EINVAL;
			break;
		case O_GROW_AT:
			if (parse_seconds_ns("--grow-at", optarg, SEC, 3600 * SEC, &o->grow_at_ns))
				return -EINVAL;
			break;
		case O_TAIL:
			if (parse_seconds_ns("--tail", optarg, 0, 3600 * SEC, &o->tail_ns))
				return -EINVAL;
			break;
		case O_JOBS:
			if (parse_u64("--jobs", optarg, 1, 100000, &v))
				return -EINVAL;
			o->build_jobs = v;
			break;
		case O_VMS:
			if (parse_u64("--vms", optarg, 1, 8, &v))
				return -EINVAL;
			o->vms = v;
			break;
		case O_BUDGET:
			if (parse_size("--budget", optarg, &o->budget))
				return -EINVAL;
			break;
		case O_CYCLES:
			if (parse_u64("--cycles", optarg, 1, 1000000, &v))
				return -EINVAL;
			o->cycles = v;
			break;
		case O_AUTO:
			auto_mode = true;
			break;
		case O_STAGGER:
			if (parse_seconds_ns("--stagger", optarg, 0, 3600 * SEC, &o->stagger_ns))
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
	if (auto_mode && select_auto(o, tech_given))
		return -EINVAL;
	for (const struct technique **t = o->tech; *t; t++)
		if ((*t)->check_opts && (*t)->check_opts(o))
			return -EINVAL;
	if (o->vms > 1 && !o->workload) {
		ht_err("--vms: needs --workload build or blender");
		return -EINVAL;
	}
	if (!o->paired) /* 4 pairs of rounds, without doubling the run */
		o->paired = o->iterations < 2 ? o->iterations : 2;
	if (o->cycles && check_cycles(o))
		return -EINVAL;
	if (o->workload_bytes && (!o->workload || strcmp(o->workload, "stream"))) {
		ht_err("--stream-bytes: only with --workload stream");
		return -EINVAL;
	}
	if (o->workload && check_workload(o))
		return -EINVAL;
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
	if (!qemu_check(o->qemu, qemu ? "--qemu" : "QEMU") || qemu_lacks_property(o))
		return -EINVAL;
	for (n = 0; o->tech[n]; n++)
		;
	if (!(o->kernels = calloc(n, sizeof(*o->kernels))))
		return -ENOMEM;
	for (size_t t = 0; t < n; t++) {
		o->kernels[t] = kernel ? realpath(kernel, NULL) : default_kernel(o->tech[t]);
		if (!o->kernels[t]) {
			if (kernel)
				ht_err("--kernel: %s: %s", kernel, strerror(errno));
			return -ENOENT;
		}
	}
	o->initrd = initrd ? realpath(initrd, NULL)
			   : default_file("--initrd", "guest/initramfs.cpio.gz");
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

int cmd_inflate(int argc, char **argv)
{
	struct opts o = { 0 };
	struct tech_results *res;
	json_t *limits;
	char tmp[PATH_MAX], path[PATH_MAX];
	size_t ntech = 0;
	int err = 0;

	if (parse_args(argc, argv, &o))
		return 1;
	o.started = time(NULL);
	install_signal_handlers();
	setup_libbpf();
	fprintf(stderr, "hatrace inflate: %s (%s); %llu MiB VM -> %llu MiB, %u vCPUs, %u iterations\n",
		accel_name(o.accel), o.accel_why, (unsigned long long)(o.mem / MiB),
		(unsigned long long)(o.shrink_to / MiB), o.vcpus, o.iterations);
	while (o.tech[ntech])
		ntech++;
	res = calloc(ntech + 1, sizeof(*res));
	if (out_dir_create_tmp(o.out_dir, tmp, sizeof(tmp)))
		return 1;
	o.tmp_dir = tmp;
	/* the host's own discard and populate, before any VM runs */
	limits = o.workload || o.cycles ? NULL : limits_measure(&o);

	for (size_t t = 0; t < ntech; t++) {
		res[t].t = o.tech[t];
		res[t].its = calloc(o.iterations, sizeof(*res[t].its));
		for (unsigned i = 0; i < o.iterations; i++)
			res[t].its[i].integrity_pages = res[t].its[i].integrity_bad = -1;
		/* the rounds of the paired VMs, the tracing overhead (inflate phases only) */
		res[t].paired = calloc(o.paired * PAIRED_ROUNDS, sizeof(*res[t].paired));
	}
	/* Round robin: step k of every technique before step k + 1 of any, so a
	 * host that drifts during the run (its own memory reclaim, other load)
	 * weighs on every technique alike and the ratios stay fair. */
	for (unsigned step = 0, i; !err; step++) {
		enum iter_kind kind;

		if (!iteration_schedule(&o, step, &kind, &i))
			break;
		for (size_t t = 0; t < ntech && !err; t++) {
			struct run r = { .o = &o, .t = o.tech[t], .kernel = o.kernels[t],
					 .kind = kind, .iter = i };
			struct iteration *it = kind == IT_TIMED ? &res[t].its[i] :
					       kind == IT_PAIRED ? &res[t].paired[i * PAIRED_ROUNDS] :
					       &res[t].breakdown;
			bool first = kind == IT_TIMED && i == 0;

			it->run = step + 1;
			err = run_iteration(&r, it);
			if (first && r.vm)
				res[t].qemu_argv = qemu_argv_json(r.vm);
			if (!err && r.vm) {
				if (kind == IT_BREAKDOWN)
					snprintf(path, sizeof(path), "%s/consoles/%s-breakdown.log", tmp,
						 r.t->name);
				else
					snprintf(path, sizeof(path), "%s/consoles/%s-%s%u.log", tmp,
						 r.t->name, kind == IT_PAIRED ? "paired-" : "",
						 i + 1);
				vm_save_console(r.vm, path);
				if (first)
					res[t].clock_offset = r.clock_offset;
				res[t].npaired += kind == IT_PAIRED;
				res[t].has_breakdown |= kind == IT_BREAKDOWN;
			}
			end_vm(&r, !err);
			if (err == -EINTR)
				ht_err("interrupted");
		}
	}
	if (err) {
		remove_tree(tmp);
		json_decref(limits);
	} else {
		/* Measuring is done: from here on a failure keeps the data. */
		json_t *summary = summary_json(res, &o), *meta = meta_json(res, &o, argc, argv);
		char *report = NULL;
		size_t report_len = 0;
		FILE *rf = open_memstream(&report, &report_len);

		overhead_summary(summary, res, &o);
		qemu_phases_summary(summary, res, &o);
		if (limits) {
			limits_summary(summary, limits);
			ratios_summary(summary, &o);
		}
		if (rf) {
			print_report(rf, res, &o, summary);
			fclose(rf);
		}
		err = report ? write_results(tmp, res, &o, summary, meta, report) : -ENOMEM;
		if (!err) {
			run_plots(tmp);
			err = out_dir_commit(tmp, o.out_dir);
		}
		if (err) {
			ht_err("the data of this run is kept in %s", tmp);
		} else {
			fputs(report, stdout);
			printf("results are in %s (report.txt: this report)\n", o.out_dir);
		}
		free(report);
		json_decref(summary);
		json_decref(meta);
	}
	for (size_t t = 0; t < ntech; t++) {
		for (unsigned i = 0; res[t].its && i < o.iterations; i++) {
			for (int p = 0; p < PH_MAX; p++)
				json_decref(res[t].its[i].ph[p].guest);
			json_decref(res[t].its[i].workload);
		}
		for (unsigned i = 0; res[t].paired && i < o.paired * PAIRED_ROUNDS; i++)
			for (int p = 0; p < PH_MAX; p++)
				json_decref(res[t].paired[i].ph[p].guest);
		for (int p = 0; p < PH_MAX; p++)
			json_decref(res[t].breakdown.ph[p].guest);
		free(res[t].paired);
		free(res[t].its);
		json_decref(res[t].qemu_argv);
		free(o.kernels ? o.kernels[t] : NULL);
	}
	free(res);
	free(o.tech);
	free(o.out_dir);
	free(o.qemu);
	free(o.kernels);
	free(o.initrd);
	return err || exiting ? 1 : 0;
}
