/* ht-stress: allocator stress for the guest kernel tests, one mode a run.
 *
 * usage: ht-stress fork --procs N [--parallel P] [--bytes B]
 *            N children in all, at most P at a time, each writing and checking
 *            B bytes of its own (default 1M) plus a page inherited copy-on-write.
 *        ht-stress tmpfs --bytes B [--dir D]
 *            writes B bytes of files with a per-page pattern to D (default /tmp,
 *            a tmpfs), syncs, drops caches (/proc/sys/vm/drop_caches), checks
 *            every page and removes the files.
 *        ht-stress hugetlb --pages N
 *            raises /proc/sys/vm/nr_hugepages to N, maps and checks the pool's
 *            2 MiB pages (MAP_HUGETLB), and lowers it to 0 again.
 *        ht-stress memhog --bytes B
 *            a child writes B bytes (more than RAM), so the OOM killer must end
 *            it; the parent survives and reports how the child ended.
 * results: {"workload":"ht-stress","mode",...,"bad_pages","ns"}: fork: "procs",
 *          "failed" (children that did not exit 0); tmpfs: "pages"; hugetlb:
 *          "pages" (raised to), "got" (the pool reached), "after" (the pool
 *          after lowering); memhog: "killed_by" (signal that ended the child,
 *          0 if it exited). Exit 1 on a bad page or a failed child. */
#include "common.h"
#include "wl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE_PAGE (2ul << 20)

struct opts {
	uint64_t procs, parallel, bytes, pages;
	const char *dir;
};

static uint64_t word_of(uint64_t tag, uint64_t page)
{
	return (tag + 1) * 0x9e3779b97f4a7c15ull ^ page * 0xc2b2ae3d27d4eb4full;
}

static void fill(char *mem, size_t pages, uint64_t tag)
{
	for (size_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(mem + p * WL_PAGE);

		w[0] = word_of(tag, p);
		w[WL_PAGE / 8 - 1] = ~word_of(tag, p);
	}
}

static uint64_t count_bad(const char *mem, size_t pages, uint64_t tag)
{
	uint64_t bad = 0;

	for (size_t p = 0; p < pages; p++) {
		const uint64_t *w = (const uint64_t *)(mem + p * WL_PAGE);

		bad += w[0] != word_of(tag, p) || w[WL_PAGE / 8 - 1] != ~word_of(tag, p);
	}
	return bad;
}

static char *map_anon(size_t bytes, int extra_flags)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags,
		       -1, 0);

	if (p == MAP_FAILED) {
		ht_err("cannot map %zu bytes: %s", bytes, strerror(errno));
		return NULL;
	}
	return p;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY), err = 0;

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		err = -errno;
	if (fd >= 0)
		close(fd);
	if (err)
		ht_err("%s: %s", path, strerror(-err));
	return err;
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* A child: its own memory plus a page shared copy-on-write with the parent. */
static int child_main(char *shared, uint64_t bytes, uint64_t tag)
{
	size_t pages = bytes / WL_PAGE;
	char *mem = map_anon(bytes, 0);
	int bad;

	if (!mem)
		return 1;
	fill(mem, pages, tag);
	bad = count_bad(mem, pages, tag) || count_bad(shared, 1, 0);
	fill(shared, 1, tag); /* breaks the COW share */
	bad |= count_bad(shared, 1, tag) != 0;
	return bad ? 1 : 0;
}

static int mode_fork(const struct opts *o, json_t *res)
{
	uint64_t started = 0, running = 0, failed = 0, bad = 0;
	char *shared = map_anon(WL_PAGE, 0);
	int status;

	if (!shared)
		return 1;
	fill(shared, 1, 0);
	while (started < o->procs || running) {
		if (started < o->procs && running < o->parallel) {
			pid_t pid = fork();

			if (pid == 0)
				_exit(child_main(shared, o->bytes, started + 1));
			if (pid < 0) {
				/* EAGAIN/ENOMEM: wait for a child and retry */
				if (!running) {
					ht_err("fork: %s", strerror(errno));
					return 1;
				}
			} else {
				started++;
				running++;
				continue;
			}
		}
		if (wait(&status) < 0) {
			ht_err("wait: %s", strerror(errno));
			return 1;
		}
		running--;
		failed += !WIFEXITED(status) || WEXITSTATUS(status);
	}
	bad = count_bad(shared, 1, 0);
	json_object_set_new(res, "procs", json_integer(started));
	json_object_set_new(res, "failed", json_integer(failed));
	json_object_set_new(res, "bad_pages", json_integer(bad));
	return failed || bad;
}

static int mode_tmpfs(const struct opts *o, json_t *res)
{
	size_t pages = o->bytes / WL_PAGE, per_file = 256, files = (pages + per_file - 1) / per_file;
	char *buf = map_anon(per_file * WL_PAGE, 0), path[4096];
	uint64_t bad = 0;

	if (!buf)
		return 1;
	for (size_t f = 0; f < files; f++) {
		size_t n = pages - f * per_file < per_file ? pages - f * per_file : per_file;
		int fd;

		snprintf(path, sizeof(path), "%s/ht-stress.%zu", o->dir, f);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		fill(buf, n, f + 1);
		if (fd < 0 || write(fd, buf, n * WL_PAGE) != (ssize_t)(n * WL_PAGE)) {
			ht_err("%s: %s", path, strerror(errno));
			return 1;
		}
		close(fd);
	}
	sync();
	if (write_file("/proc/sys/vm/drop_caches", "3"))
		return 1;
	for (size_t f = 0; f < files; f++) {
		size_t n = pages - f * per_file < per_file ? pages - f * per_file : per_file;
		int fd;

		snprintf(path, sizeof(path), "%s/ht-stress.%zu", o->dir, f);
		fd = open(path, O_RDONLY);
		memset(buf, 0, n * WL_PAGE);
		if (fd < 0 || read(fd, buf, n * WL_PAGE) != (ssize_t)(n * WL_PAGE)) {
			ht_err("%s: %s", path, strerror(errno));
			return 1;
		}
		close(fd);
		bad += count_bad(buf, n, f + 1);
		unlink(path);
	}
	json_object_set_new(res, "pages", json_integer(pages));
	json_object_set_new(res, "bad_pages", json_integer(bad));
	return bad != 0;
}

static int mode_hugetlb(const struct opts *o, json_t *res)
{
	const char *knob = "/proc/sys/vm/nr_hugepages";
	char text[32];
	long got, after;
	uint64_t bad = 0;
	char *mem;

	snprintf(text, sizeof(text), "%llu", (unsigned long long)o->pages);
	if (write_file(knob, text))
		return 1;
	got = read_long(knob);
	if (got > 0) {
		mem = map_anon(got * HUGE_PAGE, MAP_HUGETLB);
		if (!mem)
			return 1;
		for (long i = 0; i < got; i++)
			fill(mem + i * HUGE_PAGE, HUGE_PAGE / WL_PAGE, i + 1);
		for (long i = 0; i < got; i++)
			bad += count_bad(mem + i * HUGE_PAGE, HUGE_PAGE / WL_PAGE, i + 1);
		munmap(mem, got * HUGE_PAGE);
	}
	if (write_file(knob, "0"))
		return 1;
	after = read_long(knob);
	json_object_set_new(res, "pages", json_integer(o->pages));
	json_object_set_new(res, "got", json_integer(got));
	json_object_set_new(res, "after", json_integer(after));
	json_object_set_new(res, "bad_pages", json_integer(bad));
	return got <= 0 || after != 0 || bad;
}

static int mode_memhog(const struct opts *o, json_t *res)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		ht_err("fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		char *mem;

		/* the OOM killer's first choice, whatever else runs */
		write_file("/proc/self/oom_score_adj", "1000");
		mem = map_anon(o->bytes, MAP_NORESERVE);

		if (!mem)
			_exit(2);
		for (uint64_t off = 0; off < o->bytes; off += WL_PAGE)
			mem[off] = 1;
		_exit(0); /* not killed: RAM was larger than asked */
	}
	if (waitpid(pid, &status, 0) < 0) {
		ht_err("waitpid: %s", strerror(errno));
		return 1;
	}
	json_object_set_new(res, "killed_by", json_integer(WIFSIGNALED(status) ? WTERMSIG(status) : 0));
	json_object_set_new(res, "bad_pages", json_integer(0));
	return !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "procs", required_argument, NULL, 'n' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "pages", required_argument, NULL, 'g' },
		{ "dir", required_argument, NULL, 'd' },
		{ 0 },
	};
	struct opts o = { .parallel = 16, .bytes = 1 << 20, .dir = "/tmp" };
	const char *mode = argc > 1 ? argv[1] : "";
	uint64_t t0;
	json_t *res;
	int c, rc;

	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'd')
			o.dir = optarg;
		else if (c != 'n' && c != 'p' && c != 'b' && c != 'g')
			goto usage;
		else if (c == 'n'   ? parse_u64("--procs", optarg, 1, 100000, &o.procs)
			 : c == 'p' ? parse_u64("--parallel", optarg, 1, 1024, &o.parallel)
			 : c == 'b' ? parse_size("--bytes", optarg, &o.bytes)
				    : parse_u64("--pages", optarg, 1, 100000, &o.pages))
			return 2; /* the parser said why */
	}
	if (optind != argc || o.bytes < WL_PAGE)
		goto usage;
	res = json_pack("{s:s,s:s}", "workload", "ht-stress", "mode", mode);
	t0 = now_ns();
	if (!strcmp(mode, "fork") && o.procs)
		rc = mode_fork(&o, res);
	else if (!strcmp(mode, "tmpfs"))
		rc = mode_tmpfs(&o, res);
	else if (!strcmp(mode, "hugetlb") && o.pages)
		rc = mode_hugetlb(&o, res);
	else if (!strcmp(mode, "memhog"))
		rc = mode_memhog(&o, res);
	else {
		json_decref(res);
		goto usage;
	}
	json_object_set_new(res, "ns", json_integer(now_ns() - t0));
	json_println(stdout, res);
	return rc;
usage:
	ht_err("usage: ht-stress fork --procs N [--parallel P] [--bytes B] | tmpfs --bytes B "
	       "[--dir D] | hugetlb --pages N | memhog --bytes B");
	return 2;
}
