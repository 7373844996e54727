/* hatrace reproduce: every benchmark in one resumable run, then a report.
 * Each step writes DIR/STEP/ (its results) and DIR/STEP.log; DIR/STEP.done
 * marks it finished, so a rerun skips it. A failed step is reported at the end
 * and the others go on. */
#include "cmds.h"
#include "common.h"
#include "run_prog.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 32

/* A step: `hatrace ARGS -o DIR/NAME`, or with make set, `make -C ROOT ARGS`:
 * benchmark targets, each writing results/TARGET.json, copied into DIR/NAME,
 * and VAR=VALUE settings for them. */
struct step {
	const char *name, *what;
	bool make;
	const char *fast[MAX_ARGS], *full[MAX_ARGS];
};

/* The techniques the host resizes (fpr has no resize to interfere with). */
#define INTERFERENCE_TECHS "virtio-balloon,virtio-balloon-huge,virtio-mem,hyperalloc"
/* The fast tier's footprint: each of the paper's techniques in its natural
 * automatic mode (static is always added); --full runs all. */
#define FOOTPRINT_TECHS "virtio-balloon,fpr,virtio-mem,hyperalloc"

static const struct step steps[] = {
	{ "inflate", "inflate, every technique, touched and untouched",
	  .fast = { "inflate", "-t", "all", "-n", "3", "--paired", "1", "--untouched" },
	  .full = { "inflate", "-t", "all", "-m", "20G", "-s", "2G", "-c", "12", "-n", "5",
		    "--untouched" } },
	{ "stream", "STREAM bandwidth while shrinking and growing",
	  .fast = { "inflate", "-w", "stream", "-t", INTERFERENCE_TECHS, "--seconds", "16",
		    "--grow-at", "10", "-n", "1" },
	  .full = { "inflate", "-w", "stream", "-t", INTERFERENCE_TECHS, "-m", "20G", "-s", "2G",
		    "-c", "12", "--seconds", "120", "--shrink-at", "20", "--grow-at", "90", "-n",
		    "3" } },
	{ "ftq", "FTQ work per quantum while shrinking and growing",
	  .fast = { "inflate", "-w", "ftq", "-t", INTERFERENCE_TECHS, "--seconds", "16",
		    "--grow-at", "10", "-n", "1" },
	  .full = { "inflate", "-w", "ftq", "-t", INTERFERENCE_TECHS, "-m", "20G", "-s", "2G",
		    "-c", "12", "--seconds", "120", "--shrink-at", "20", "--grow-at", "90", "-n",
		    "3" } },
	{ "build", "auto-reclaim footprint of a build-like workload",
	  .fast = { "inflate", "-w", "build", "-t", FOOTPRINT_TECHS, "--jobs", "24", "-n", "1" },
	  .full = { "inflate", "-w", "build", "-t", "all", "-m", "16G", "-s", "2G", "-c", "12",
		    "--jobs", "600", "-n", "3" } },
	{ "blender", "auto-reclaim footprint of three bursts with idle gaps",
	  .fast = { "inflate", "-w", "blender", "-t", "fpr,hyperalloc", "-n", "1" },
	  .full = { "inflate", "-w", "blender", "-t", "all", "-m", "16G", "-s", "2G", "-c", "12",
		    "-n", "3" } },
	{ "multivm", "VMs under one memory budget, and how many more fit",
	  .fast = { "inflate", "-w", "build", "--vms", "3", "-m", "1G", "-s", "256M", "--jobs",
		    "12", "--stagger", "5", "-t", "fpr,hyperalloc", "-n", "1" },
	  .full = { "inflate", "-w", "build", "--vms", "3", "-m", "16G", "-s", "2G", "-c", "12",
		    "--budget", "48G", "--jobs", "600", "--stagger", "120", "-t", "all", "-n",
		    "1" } },
	/* make bench without bench-inflate: the inflate step above measures the
	 * same tracing overhead (paired traced and untraced rounds) */
	{ "bench", "allocator and tracer benchmarks", .make = true,
	  .fast = { "bench-alloc", "bench-guest-alloc", "bench-tracer", "BENCH_MIN_ROUNDS=3",
		    "BENCH_MAX_ROUNDS=5", "BENCH_REAL_ROUNDS=5" },
	  .full = { "bench-alloc", "bench-guest-alloc", "bench-tracer" } },
};

#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

struct opts {
	bool full;
	char *dir;
	bool only[NSTEPS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace reproduce [--full] [-o DIR] [--only STEP,...]\n\n"
		"Runs every benchmark, one step after another, and writes a report:\n");
	for (size_t i = 0; i < NSTEPS; i++)
		fprintf(f, "  %-9s %s\n", steps[i].name, steps[i].what);
	fprintf(f,
		"\nResumable: each finished step leaves DIR/STEP.done and is skipped when the\n"
		"same DIR is run again; a failed step is reported at the end, the others go on.\n"
		"The default (fast) tier is sized for 2 cores under TCG (about 30 minutes);\n"
		"--full is the paper's scale, for a KVM host with 12+ cores and 64+ GiB.\n\n"
		"  -o, --output DIR  results (default results/reproduce-YYYY-MM-DD, today's)\n"
		"      --full        the paper's scale\n"
		"      --only LIST   run just these steps (the report covers what DIR holds)\n\n"
		"DIR gets one folder and log per step, meta.json, steps.json (status and\n"
		"duration of each step) and report.html (every table and figure, the paper's\n"
		"figures next to ours). Durations are kept in ~/.cache/hatrace for the ETA of\n"
		"the next run.\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "full", no_argument, NULL, 'F' },
		{ "only", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool only = false;
	char *copy, *tok, *save;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!*optarg) {
				ht_err("--output: empty path");
				return -EINVAL;
			}
			free(o->dir);
			o->dir = strdup(optarg);
			break;
		case 'F':
			o->full = true;
			break;
		case 'O':
			only = true;
			copy = strdup(optarg);
			for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				size_t i;

				for (i = 0; i < NSTEPS && strcmp(steps[i].name, tok); i++)
					;
				if (i == NSTEPS) {
					ht_err("--only: unknown step '%s' (see --help)", tok);
					free(copy);
					return -EINVAL;
				}
				o->only[i] = true;
			}
			free(copy);
			break;
		default:
			if (common_option(c, argv, usage))
				return -EINVAL;
		}
	}
	if (no_operands(argc, argv))
		return -EINVAL;
	for (size_t i = 0; !only && i < NSTEPS; i++)
		o->only[i] = true;
	if (!o->dir) {
		char name[64];
		time_t now = time(NULL);

		strftime(name, sizeof(name), "results/reproduce-%Y-%m-%d", localtime(&now));
		o->dir = strdup(name);
	}
	return 0;
}

static void path_of(char *buf, size_t len, const char *dir, const char *name, const char *ext)
{
	snprintf(buf, len, "%s/%s%s", dir, name, ext);
}

/* Runs argv with stdout and stderr to log; its exit status, or -errno. */
static int run_logged(const char *const *argv, const char *log)
{
	pid_t pid = run_background(argv, log);
	int status;

	if (pid < 0)
		return pid;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
		if (exiting)
			kill(pid, SIGINT); /* inflate keeps what it measured */
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Durations of the previous run, for the ETA: ~/.cache/hatrace/reproduce-TIER.json. */
static char *durations_path(bool full)
{
	const char *home = getenv("HOME") ?: "/root";
	char *p;

	if (asprintf(&p, "%s/.cache/hatrace/reproduce-%s.json", home, full ? "full" : "fast") < 0)
		return NULL;
	return p;
}

static void print_cmd(const char *const *argv)
{
	fprintf(stderr, "  $");
	for (int i = 0; argv[i]; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\n");
}

/* The argv of a step: hatrace (or make) and its arguments. */
static void step_argv(const struct step *s, const struct opts *o, const char *self,
		      const char *root, const char *out, const char **argv)
{
	const char *const *args = o->full ? s->full : s->fast;
	int n = 0;

	if (s->make) {
		argv[n++] = "make";
		argv[n++] = "-C";
		argv[n++] = root;
		argv[n++] = "--no-print-directory";
	} else {
		argv[n++] = self;
	}
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	if (!s->make) {
		argv[n++] = "-o";
		argv[n++] = out;
	}
	argv[n] = NULL;
}

/* Each benchmark target writes ROOT/results/TARGET.json. With copy false, the
 * old files go (no stale result can pass for a new one); with copy true, the
 * new ones go into out, and a missing one fails the step. */
static int bench_files(const char *root, const char *out, const char *const *targets, bool copy)
{
	/* paths go in as arguments, never into the script text */
	const char *argv[MAX_ARGS + 8] = {
		"sh", "-c",
		copy ? "r=$1/results o=$2; shift 2; mkdir -p \"$o\" && "
		       "for t; do cp \"$r/$t.json\" \"$o/\" || exit 1; done" :
		       "r=$1/results; shift 2; for t; do rm -f \"$r/$t.json\"; done",
		"sh", root, out,
	};
	char sink[256];
	int n = 6;

	for (int i = 0; targets[i]; i++)
		if (!strchr(targets[i], '='))
			argv[n++] = targets[i];
	argv[n] = NULL;
	return run_capture(argv, 60 * 1000000000ull, sink, sizeof(sink));
}

static void write_steps_json(const char *dir, json_t *status)
{
	char path[PATH_MAX];

	path_of(path, sizeof(path), dir, "steps", ".json");
	if (json_dump_file(status, path, JSON_INDENT(1)))
		ht_warn("cannot write %s", path);
}

/* meta.json of the whole run: host, kernel, THP, git revision, tier. */
static void write_meta(const char *dir, const struct opts *o, const char *root)
{
	char path[PATH_MAX], thp[128] = "unknown", rev[64] = "unknown", uname_r[128] = "";
	const char *git[] = { "git", "-C", root, "describe", "--always", "--dirty", NULL };
	const char *un[] = { "uname", "-r", NULL };
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	json_t *m;

	if (f) {
		if (!fgets(thp, sizeof(thp), f))
			strcpy(thp, "unknown");
		fclose(f);
	}
	thp[strcspn(thp, "\n")] = 0;
	if (run_capture(git, 10 * 1000000000ull, rev, sizeof(rev)))
		strcpy(rev, "unknown");
	rev[strcspn(rev, "\n")] = 0;
	run_capture(un, 10 * 1000000000ull, uname_r, sizeof(uname_r));
	uname_r[strcspn(uname_r, "\n")] = 0;
	m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:I}", "schema_version", 1, "tier",
		      o->full ? "full" : "fast", "git_revision", rev, "host_kernel", uname_r,
		      "thp_enabled", thp, "host_cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
		      "host_mem_bytes",
		      (json_int_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE));
	json_object_set_new(m, "note", json_string("accelerator, QEMU binary and probes, and guest "
						   "kernel are in each step's meta.json"));
	path_of(path, sizeof(path), dir, "meta", ".json");
	if (json_dump_file(m, path, JSON_INDENT(1)))
		ht_warn("cannot write %s", path);
	json_decref(m);
}

int cmd_reproduce(int argc, char **argv)
{
	struct opts o = { 0 };
	char *self = NULL, *root = NULL, *dpath = NULL, *script = NULL;
	json_t *prev = NULL, *status = json_object(), *durations = json_object();
	uint64_t t_start = now_ns();
	unsigned todo = 0, n = 0, failed = 0;
	int err = 0;

	if (parse_args(argc, argv, &o))
		return 1;
	install_signal_handlers();
	self = exe_relative("hatrace");
	root = exe_relative("..");
	script = exe_relative("../analysis/report.py");
	if (!self || !root || !script) {
		ht_err("cannot find hatrace's build tree");
		err = -ENOENT;
		goto cleanup;
	}
	if (mkdir(o.dir, 0755) && errno != EEXIST) {
		ht_err("%s: %s", o.dir, strerror(errno));
		err = -errno;
		goto cleanup;
	}
	/* steps.json keeps the status of steps this run does not touch */
	{
		char path[PATH_MAX];
		json_t *old;

		path_of(path, sizeof(path), o.dir, "steps", ".json");
		if ((old = json_load_file(path, 0, NULL)) && json_is_object(old))
			json_object_update(status, old);
		json_decref(old);
	}
	dpath = durations_path(o.full);
	prev = dpath ? json_load_file(dpath, 0, NULL) : NULL;
	for (size_t i = 0; i < NSTEPS; i++)
		todo += o.only[i];
	fprintf(stderr, "hatrace reproduce: %s tier into %s\n", o.full ? "full" : "fast", o.dir);
	for (size_t i = 0; i < NSTEPS && !exiting; i++) {
		const struct step *s = &steps[i];
		char out[PATH_MAX], log[PATH_MAX], done[PATH_MAX];
		const char *av[MAX_ARGS + 8];
		double eta = 0;
		uint64_t t0;
		int rc;

		if (!o.only[i])
			continue;
		n++;
		path_of(out, sizeof(out), o.dir, s->name, "");
		path_of(log, sizeof(log), o.dir, s->name, ".log");
		path_of(done, sizeof(done), o.dir, s->name, ".done");
		if (!access(done, F_OK)) {
			fprintf(stderr, "[%u/%u] %s: done earlier, skipped\n", n, todo, s->name);
			json_object_set_new(status, s->name, json_pack("{s:s}", "status", "done earlier"));
			continue;
		}
		for (size_t k = i; k < NSTEPS; k++)
			if (o.only[k])
				eta += json_number_value(json_object_get(prev, steps[k].name));
		step_argv(s, &o, self, root, out, av);
		fprintf(stderr, "[%u/%u] %s: %s (elapsed %.0f min%s", n, todo, s->name, s->what,
			(now_ns() - t_start) / 6e10, eta > 0 ? "" : ")\n");
		if (eta > 0)
			fprintf(stderr, ", about %.0f min left by the last run)\n", eta / 60);
		print_cmd(av);
		t0 = now_ns();
		rc = s->make ? bench_files(root, out, o.full ? s->full : s->fast, false) : 0;
		if (!rc)
			rc = run_logged(av, log);
		if (!rc && s->make)
			rc = bench_files(root, out, o.full ? s->full : s->fast, true);
		if (rc) {
			failed++;
			ht_err("step %s failed (%s %d); its log: %s", s->name,
			       rc < 0 ? "error" : "exit", rc, log);
			json_object_set_new(status, s->name,
					    json_pack("{s:s, s:i, s:f}", "status", "failed", "exit",
						      rc, "seconds", (now_ns() - t0) / 1e9));
			continue;
		}
		close(open(done, O_WRONLY | O_CREAT, 0644));
		/* the next run's ETA: finished steps only, not a failed or interrupted one */
		json_object_set_new(durations, s->name, json_real((now_ns() - t0) / 1e9));
		json_object_set_new(status, s->name, json_pack("{s:s, s:f}", "status", "done",
							      "seconds", (now_ns() - t0) / 1e9));
	}
	if (dpath) {
		json_object_update_missing(durations, prev ?: durations);
		json_dump_file(durations, dpath, JSON_INDENT(1));
	}
	write_steps_json(o.dir, status);
	write_meta(o.dir, &o, root);
	{
		const char *py[] = { "/usr/bin/python3", script, o.dir, NULL };
		char log[PATH_MAX];

		path_of(log, sizeof(log), o.dir, "report", ".log");
		print_cmd(py);
		if (run_logged(py, log)) {
			ht_err("the report failed; its log: %s", log);
			failed++;
		} else {
			fprintf(stderr, "report: %s/report.html\n", o.dir);
		}
	}
	if (exiting)
		ht_err("interrupted: run the same command again to resume");
	else if (failed)
		ht_err("%u step(s) failed: see above; a rerun retries only them", failed);
	err = failed || exiting ? -EIO : 0;
cleanup:
	json_decref(prev);
	json_decref(status);
	json_decref(durations);
	free(self);
	free(root);
	free(script);
	free(dpath);
	free(o.dir);
	return err ? 1 : 0;
}
