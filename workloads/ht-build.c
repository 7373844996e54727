/* ht-build: guest memory that rises and falls like a parallel compiler build
 * (our open substitute for the HyperAlloc paper's clang build), or like a
 * renderer (three bursts with idle gaps). Seeded: every technique sees the
 * same sequence of processes, heap sizes and files.
 *
 *   build    --jobs J compile jobs run by --threads P worker slots. Each job is
 *            a process that takes a heap of heavy-tailed size (Pareto, alpha
 *            1.3, median RAM/32, at most RAM/4), writes it, reads it back,
 *            holds it 100-600 ms, writes an object file of 1/16 of it (at most
 *            8 MiB) to tmpfs and exits. After every 16 jobs a link step reads
 *            every object so far and holds a RAM/8 heap for a second. At the
 *            end the objects are deleted: memory falls back.
 *   blender  three bursts, each one process holding 40 % of RAM for 3 s of
 *            repeated passes, with 5 s idle before each.
 *
 * usage: ht-build start [--profile build|blender] [--jobs J] [--threads P]
 *                       [--seed S] [--ram SIZE] [--dir DIR]
 *        ht-build status [--dir DIR]
 * "start" runs the workload in a daemon and returns at once; "status" prints
 * its progress, or its result once done. DIR (default /run/ht-build) holds
 * the daemon's files, and the objects go to DIR/obj (tmpfs in the guest).
 * Sizes scale with --ram (default: this system's RAM), so that every technique
 * runs the same sequence on a VM of the same size.
 * results: start  {"workload":"ht-build","op":"start","pid"}
 *          status {"workload":"ht-build","op":"status","running":true,"jobs_done"}
 *                 or {"workload":"ht-build","op":"status","running":false,"profile",
 *                 "seed","jobs","failed_jobs","peak_heap_bytes","start_ns","end_ns"}
 *                 (start_ns, end_ns: guest CLOCK_MONOTONIC)
 * A job killed by the OOM killer counts in failed_jobs; the run goes on. */
#include "common.h"
#include "wl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000ull

struct opts {
	const char *profile, *dir;
	unsigned jobs, threads;
	uint64_t seed;
};

struct job {
	uint64_t heap, object, hold_ms;
	bool link;
};

static uint64_t ram_bytes;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
	return (splitmix(s) >> 11) * 0x1.0p-53;
}

/* Job i of the build, the same for a given seed on a VM of the same size. */
static struct job build_job(uint64_t seed, unsigned i)
{
	uint64_t s = seed * 1000003 + i, median = ram_bytes / 32;
	double xm = median / pow(2, 1 / 1.3), heap = xm / pow(1 - uniform(&s), 1 / 1.3);
	struct job j = { .hold_ms = 100 + splitmix(&s) % 500 };

	j.heap = heap < ram_bytes / 4 ? (uint64_t)heap & ~(WL_PAGE - 1) : ram_bytes / 4;
	j.heap = j.heap < WL_PAGE ? WL_PAGE : j.heap;
	j.object = j.heap / 16 < 8 << 20 ? j.heap / 16 : 8 << 20;
	return j;
}

static void write_file(const char *path, uint64_t bytes)
{
	static char buf[1 << 16];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	memset(buf, 0x6f, sizeof(buf));
	for (uint64_t done = 0; fd >= 0 && done < bytes; done += sizeof(buf))
		if (write(fd, buf, bytes - done < sizeof(buf) ? bytes - done : sizeof(buf)) < 0)
			break;
	if (fd >= 0)
		close(fd);
}

static uint64_t read_file(const char *path)
{
	static char buf[1 << 16];
	uint64_t total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (fd >= 0)
		close(fd);
	return total;
}

/* The body of one job's process: heap, passes, hold, object file. */
static void run_job(const struct opts *o, unsigned i, const struct job *j, unsigned passes)
{
	char *mem = mmap(NULL, j->heap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t sum = 0, end;
	char path[PATH_MAX];

	if (mem == MAP_FAILED)
		_exit(3);
	for (unsigned p = 0; p < passes; p++) {
		memset(mem, 0x42 + p, j->heap);
		for (uint64_t off = 0; off < j->heap; off += WL_PAGE)
			sum += mem[off];
	}
	if (j->link) {
		for (unsigned k = 0; k < i; k++) {
			snprintf(path, sizeof(path), "%s/obj/%u.o", o->dir, k);
			sum += read_file(path);
		}
	}
	end = now_ns() + j->hold_ms * MS;
	while (now_ns() < end)
		usleep(10000);
	if (j->object) {
		snprintf(path, sizeof(path), "%s/obj/%u.o", o->dir, i);
		write_file(path, j->object);
	}
	_exit(sum == 1 ? 4 : 0); /* sum keeps the reads */
}

struct state {
	unsigned done, failed;
	uint64_t heap_in_use, peak_heap;
	pid_t pids[WL_MAX_THREADS];
	uint64_t heaps[WL_MAX_THREADS];
};

static void write_progress(const struct opts *o, const struct state *st)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/progress", o->dir);
	snprintf(tmp, sizeof(tmp), "%s/progress.tmp", o->dir);
	if ((f = fopen(tmp, "w"))) {
		fprintf(f, "%u\n", st->done);
		fclose(f);
		rename(tmp, path);
	}
}

/* Waits for one job's process and books it. */
static void reap(const struct opts *o, struct state *st)
{
	int status;
	pid_t pid = wait(&status);

	for (unsigned k = 0; pid > 0 && k < WL_MAX_THREADS; k++) {
		if (st->pids[k] != pid)
			continue;
		st->pids[k] = 0;
		st->heap_in_use -= st->heaps[k];
		st->done++;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			st->failed++;
		write_progress(o, st);
	}
}

static void start_job(const struct opts *o, struct state *st, unsigned i, const struct job *j,
		      unsigned passes)
{
	unsigned k = 0;
	pid_t pid;

	while (st->pids[k])
		k++;
	pid = fork();
	if (pid == 0)
		run_job(o, i, j, passes);
	if (pid < 0) {
		st->failed++;
		return;
	}
	st->pids[k] = pid;
	st->heaps[k] = j->heap;
	st->heap_in_use += j->heap;
	if (st->heap_in_use > st->peak_heap)
		st->peak_heap = st->heap_in_use;
}

static void run_build(const struct opts *o, struct state *st)
{
	struct job link = { .heap = ram_bytes / 8, .hold_ms = 1000, .link = true };
	unsigned running = 0;

	for (unsigned i = 0; i < o->jobs; i++) {
		struct job j = build_job(o->seed, i);

		if (i && i % 16 == 0) {
			/* link: alone, after every job so far; not a job itself */
			for (; running; running--)
				reap(o, st);
			start_job(o, st, i, &link, 1);
			reap(o, st);
			st->done--;
		}
		if (running == o->threads) {
			reap(o, st);
			running--;
		}
		start_job(o, st, i, &j, 2);
		running++;
	}
	for (; running; running--)
		reap(o, st);
	for (unsigned i = 0; i < o->jobs; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/obj/%u.o", o->dir, i);
		unlink(path);
	}
}

static void run_blender(const struct opts *o, struct state *st)
{
	struct job scene = { .heap = ram_bytes * 2 / 5 & ~(WL_PAGE - 1) };

	for (unsigned b = 0; b < 3; b++) {
		uint64_t end;

		sleep(5);
		end = now_ns() + 3000 * MS;
		/* the renderer's passes over the scene, 3 s of them */
		do {
			start_job(o, st, b, &scene, 1);
			reap(o, st);
		} while (now_ns() < end);
	}
}

static char *path_in(const struct opts *o, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", o->dir, name);
	return buf;
}

static int daemon_main(const struct opts *o)
{
	struct state st = { 0 };
	char path[PATH_MAX], tmp[PATH_MAX];
	uint64_t start = now_ns();
	json_t *result;
	FILE *f;

	if (!strcmp(o->profile, "build"))
		run_build(o, &st);
	else
		run_blender(o, &st);
	result = json_pack("{s:s,s:s,s:b,s:s,s:I,s:i,s:i,s:I,s:I,s:I}", "workload", "ht-build",
			   "op", "status", "running", 0, "profile", o->profile, "seed",
			   (json_int_t)o->seed, "jobs", st.done, "failed_jobs", st.failed,
			   "peak_heap_bytes", (json_int_t)st.peak_heap, "start_ns",
			   (json_int_t)start, "end_ns", (json_int_t)now_ns());
	f = fopen(path_in(o, "result.tmp", tmp, sizeof(tmp)), "w");
	if (!f)
		return 1;
	json_println(f, result);
	json_decref(result);
	if (fclose(f))
		return 1;
	return rename(tmp, path_in(o, "result.json", path, sizeof(path))) ? 1 : 0;
}

static int cmd_start(const struct opts *o)
{
	char path[PATH_MAX];
	pid_t pid;
	FILE *f;
	int fd;

	if (!ram_bytes)
		ram_bytes = (uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
	if (mkdir(o->dir, 0755) && errno != EEXIST) {
		ht_err("ht-build: cannot create %s: %s", o->dir, strerror(errno));
		return 1;
	}
	unlink(path_in(o, "result.json", path, sizeof(path)));
	unlink(path_in(o, "progress", path, sizeof(path)));
	unlink(path_in(o, "pid", path, sizeof(path)));
	if (mkdir(path_in(o, "obj", path, sizeof(path)), 0755) && errno != EEXIST) {
		ht_err("ht-build: cannot create %s: %s", path, strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		ht_err("ht-build: fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		/* Off the agent's pipes, in its own session: "start" returns now. */
		setsid();
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
		_exit(daemon_main(o));
	}
	f = fopen(path_in(o, "pid", path, sizeof(path)), "w");
	if (!f || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f)) {
		ht_err("ht-build: cannot write %s", path);
		return 1;
	}
	json_println(stdout, json_pack("{s:s,s:s,s:i}", "workload", "ht-build", "op", "start",
				       "pid", (int)pid));
	return 0;
}

/* A zombie is gone too: the guest's init may not reap the orphaned daemon. */
static bool alive(int pid)
{
	char path[64], buf[256], *paren;
	FILE *f;
	bool up = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r"))) {
		if (fgets(buf, sizeof(buf), f) && (paren = strrchr(buf, ')')))
			up = paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
		fclose(f);
	}
	return up;
}

static int cmd_status(const struct opts *o)
{
	char path[PATH_MAX], line[64] = "0";
	int pid;
	json_error_t jerr;
	json_t *result;
	FILE *f;

	result = json_load_file(path_in(o, "result.json", path, sizeof(path)), 0, &jerr);
	if (result) {
		json_println(stdout, result);
		return 0;
	}
	if (!(f = fopen(path_in(o, "pid", path, sizeof(path)), "r"))) {
		ht_err("ht-build status: no run was started in %s", o->dir);
		return 1;
	}
	if (fscanf(f, "%d", &pid) != 1 || pid <= 0 || !alive(pid)) {
		fclose(f);
		ht_err("ht-build status: the daemon ended without a result (killed?)");
		return 1;
	}
	fclose(f);
	if ((f = fopen(path_in(o, "progress", path, sizeof(path)), "r"))) {
		if (!fgets(line, sizeof(line), f))
			strcpy(line, "0");
		fclose(f);
	}
	json_println(stdout, json_pack("{s:s,s:s,s:b,s:i}", "workload", "ht-build", "op",
				       "status", "running", 1, "jobs_done", atoi(line)));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "threads", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "ram", required_argument, NULL, 'r' },
		{},
	};
	struct opts o = { .profile = "build", .dir = "/run/ht-build", .jobs = 48, .threads = 4,
			  .seed = 1 };
	uint64_t v;
	int c;

	if (argc < 2 || (strcmp(argv[1], "start") && strcmp(argv[1], "status"))) {
		ht_err("usage: ht-build start|status [options] (see workloads/ht-build.c)");
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "p:j:t:s:d:r:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (strcmp(optarg, "build") && strcmp(optarg, "blender")) {
				ht_err("ht-build: --profile: '%s' is neither build nor blender", optarg);
				return 2;
			}
			o.profile = optarg;
			break;
		case 'j':
			if (parse_u64("--jobs", optarg, 1, 100000, &v))
				return 2;
			o.jobs = v;
			break;
		case 't':
			if (parse_u64("--threads", optarg, 1, WL_MAX_THREADS, &v))
				return 2;
			o.threads = v;
			break;
		case 's':
			if (parse_u64("--seed", optarg, 0, UINT64_MAX, &o.seed))
				return 2;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'r':
			if (parse_size("--ram", optarg, &ram_bytes))
				return 2;
			break;
		default:
			ht_err("ht-build: unknown option (see workloads/ht-build.c)");
			return 2;
		}
	}
	if (optind < argc) {
		ht_err("ht-build: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	return !strcmp(argv[1], "start") ? cmd_start(&o) : cmd_status(&o);
}
