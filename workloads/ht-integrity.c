/* ht-integrity: keeps memory filled with a known pattern across shrink/grow and
 * checks later that no page changed. "fill" starts a daemon that holds the
 * memory; "verify" and "stop" talk to it over a FIFO in DIR.
 *
 * usage: ht-integrity fill --bytes N [--threads T] [--seed S] [--dir DIR]
 *        ht-integrity verify [--threads T] [--dir DIR]
 *        ht-integrity stop [--threads T] [--dir DIR]   (verifies, then frees and ends)
 * DIR defaults to /run/ht-integrity.
 * results: fill   {"workload":"ht-integrity","op":"fill","bytes","pages","pid","fill_ns"}
 *          verify {"workload":"ht-integrity","op":"verify"|"stop","pages","bad_pages",
 *                  "zero_pages","first_bad_page","verify_ns"}
 * verify and stop exit 1 when a page is bad.
 *
 * Every 8-byte word of page i is a function of (seed, i, word index), so a
 * page that was lost (comes back zeroed) or mixed up with another is found. */
#include "common.h"
#include "wl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WORDS (WL_PAGE / 8)

struct opts {
	uint64_t bytes, seed;
	unsigned threads;
	const char *dir;
};

static uint64_t pattern_seed;

static uint64_t page_start(size_t page)
{
	/* splitmix64 of (seed, page): distinct, non-zero streams per page */
	uint64_t z = pattern_seed + (page + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) | 1;
}

static inline uint64_t next_word(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill_pages(char *base, size_t first, size_t count, void *arg)
{
	for (size_t p = first; p < first + count; p++) {
		uint64_t *w = (uint64_t *)(base + p * WL_PAGE), x = page_start(p);

		for (size_t i = 0; i < WORDS; i++)
			w[i] = next_word(&x);
	}
}

struct verify_result {
	atomic_ulong bad, zero;
	atomic_ulong first_bad; /* ULONG_MAX: none */
};

static void verify_pages(char *base, size_t first, size_t count, void *arg)
{
	struct verify_result *res = arg;

	for (size_t p = first; p < first + count; p++) {
		const uint64_t *w = (const uint64_t *)(base + p * WL_PAGE);
		uint64_t x = page_start(p), diff = 0, any = 0;

		for (size_t i = 0; i < WORDS; i++) {
			diff |= w[i] ^ next_word(&x);
			any |= w[i];
		}
		if (!diff)
			continue;
		atomic_fetch_add(&res->bad, 1);
		if (!any)
			atomic_fetch_add(&res->zero, 1);
		for (unsigned long cur = atomic_load(&res->first_bad);
		     p < cur && !atomic_compare_exchange_weak(&res->first_bad, &cur, p);)
			;
	}
}

static char *dir_path(const struct opts *o, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", o->dir, name);
	return buf;
}

/* ---- the daemon ---------------------------------------------------------------- */

static json_t *verify(char *mem, size_t pages, unsigned threads, const char *op, bool *clean)
{
	struct verify_result res = { .first_bad = ULONG_MAX };
	uint64_t ns = wl_parallel(mem, pages, threads, verify_pages, &res).ns;

	*clean = res.bad == 0;
	return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "workload", "ht-integrity", "op", op,
			 "pages", (json_int_t)pages, "bad_pages", (json_int_t)res.bad,
			 "zero_pages", (json_int_t)res.zero, "first_bad_page",
			 (json_int_t)(res.bad ? (long long)res.first_bad : -1), "verify_ns",
			 (json_int_t)ns);
}

static void reply_to(const struct opts *o, long client, json_t *doc)
{
	char name[64], path[PATH_MAX];
	char *s = json_dumps(doc, JSON_COMPACT);
	int fd;

	json_decref(doc);
	snprintf(name, sizeof(name), "reply.%ld", client);
	fd = open(dir_path(o, name, path, sizeof(path)), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && s) {
		/* one short line: a single write to a FIFO */
		if (write(fd, s, strlen(s)) < 0 || write(fd, "\n", 1) < 0)
			ht_warn("replying to %ld: %s", client, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	free(s);
}

static void serve(const struct opts *o, int ctl, char *mem, size_t pages)
{
	char buf[256], cmd[16];
	size_t len = 0;
	long client;
	unsigned threads;
	bool clean;

	for (;;) {
		ssize_t n = read(ctl, buf + len, sizeof(buf) - 1 - len);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		len += n;
		while ((nl = memchr(buf, '\n', len))) {
			*nl = 0;
			if (sscanf(buf, "%15s %ld %u", cmd, &client, &threads) == 3 && client > 0 &&
			    threads >= 1 && threads <= WL_MAX_THREADS) {
				bool stop = !strcmp(cmd, "stop");

				if (stop || !strcmp(cmd, "verify"))
					reply_to(o, client, verify(mem, pages, threads, cmd, &clean));
				if (stop)
					return;
			}
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf) - 1)
			len = 0; /* garbage without newline */
	}
}

/* The daemon side of fill; status goes to the parent through fd `report`. */
static int daemon_main(const struct opts *o, int report)
{
	char path[PATH_MAX];
	size_t pages = o->bytes / WL_PAGE;
	int lock, ctl, devnull;
	uint64_t fill_ns;
	char *mem;
	FILE *rep = fdopen(report, "w");

	setsid();
	if (mkdir(o->dir, 0700) && errno != EEXIST) {
		ht_err("fill: cannot create %s: %s", o->dir, strerror(errno));
		return 1;
	}
	lock = open(dir_path(o, "lock", path, sizeof(path)), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
		ht_err("fill: an ht-integrity daemon already runs in %s (stop it first)", o->dir);
		return 1;
	}
	dir_path(o, "ctl", path, sizeof(path));
	unlink(path);
	if (mkfifo(path, 0600) || (ctl = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		ht_err("fill: cannot create the FIFO %s: %s", path, strerror(errno));
		return 1;
	}
	mem = wl_map(o->bytes);
	if (!mem)
		return 1;
	pattern_seed = o->seed;
	fill_ns = wl_parallel(mem, pages, o->threads, fill_pages, NULL).ns;
	json_println(rep, json_pack("{s:s,s:s,s:I,s:I,s:i,s:I}", "workload", "ht-integrity", "op",
				    "fill", "bytes", (json_int_t)o->bytes, "pages",
				    (json_int_t)pages, "pid", (int)getpid(), "fill_ns",
				    (json_int_t)fill_ns));
	fclose(rep);
	/* Detach from the caller's pipes so that it sees EOF and returns. */
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		close(devnull);
	}
	serve(o, ctl, mem, pages);
	unlink(dir_path(o, "ctl", path, sizeof(path)));
	return 0;
}

static int cmd_fill(const struct opts *o)
{
	char line[512];
	int pipefd[2];
	pid_t pid;
	FILE *f;

	if (!o->bytes) {
		ht_err("fill: --bytes is required");
		return 2;
	}
	if (pipe(pipefd)) {
		ht_err("fill: pipe: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ht_err("fill: fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(pipefd[0]);
		_exit(daemon_main(o, pipefd[1]));
	}
	close(pipefd[1]);
	f = fdopen(pipefd[0], "r");
	if (!f || !fgets(line, sizeof(line), f)) {
		ht_err("fill: the daemon ended before filling its memory (see above)");
		return 1;
	}
	fputs(line, stdout);
	return 0;
}

/* ---- the clients ---------------------------------------------------------------- */

static bool daemon_gone(const struct opts *o)
{
	char path[PATH_MAX];
	int fd = open(dir_path(o, "lock", path, sizeof(path)), O_RDWR | O_CLOEXEC);
	bool gone = fd < 0 || flock(fd, LOCK_SH | LOCK_NB) == 0;

	if (fd >= 0)
		close(fd);
	return gone;
}

static int cmd_request(const struct opts *o, const char *cmd)
{
	char name[64], reply_path[PATH_MAX], ctl_path[PATH_MAX], line[1024];
	size_t len = 0;
	json_t *doc, *bad;
	int ctl, rfd, rc = 1;

	snprintf(name, sizeof(name), "reply.%d", (int)getpid());
	dir_path(o, name, reply_path, sizeof(reply_path));
	ctl = open(dir_path(o, "ctl", ctl_path, sizeof(ctl_path)), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (ctl < 0 || daemon_gone(o)) {
		ht_err("%s: no ht-integrity daemon runs in %s (start one with fill)", cmd, o->dir);
		return 1;
	}
	unlink(reply_path);
	/* O_RDWR: opening never blocks and reads never see EOF while we wait. */
	if (mkfifo(reply_path, 0600) || (rfd = open(reply_path, O_RDWR | O_CLOEXEC)) < 0) {
		ht_err("%s: cannot create %s: %s", cmd, reply_path, strerror(errno));
		return 1;
	}
	dprintf(ctl, "%s %d %u\n", cmd, (int)getpid(), o->threads);
	close(ctl);
	while (!memchr(line, '\n', len)) {
		struct pollfd pfd = { .fd = rfd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 1000) == 0) {
			if (daemon_gone(o)) {
				ht_err("%s: the ht-integrity daemon ended without replying", cmd);
				goto out;
			}
			continue;
		}
		n = read(rfd, line + len, sizeof(line) - 1 - len);
		if (n <= 0 || len + n == sizeof(line) - 1) {
			ht_err("%s: bad reply from the daemon", cmd);
			goto out;
		}
		len += n;
	}
	line[len] = 0;
	doc = json_loads(line, 0, NULL);
	bad = json_object_get(doc, "bad_pages");
	if (!json_is_integer(bad)) {
		ht_err("%s: bad reply from the daemon", cmd);
		json_decref(doc);
		goto out;
	}
	rc = json_integer_value(bad) ? 1 : 0;
	/* stop returns once the daemon has freed its memory and dropped its lock,
	 * so that the next fill in DIR can start at once */
	for (int waited_ms = 0; !strcmp(cmd, "stop") && !daemon_gone(o); waited_ms += 10) {
		if (waited_ms == 60000) {
			ht_err("stop: the ht-integrity daemon replied but still runs after 60 s");
			rc = 1;
			break;
		}
		usleep(10000);
	}
	json_println(stdout, doc);
out:
	close(rfd);
	unlink(reply_path);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{},
	};
	struct opts o = { .threads = 1, .seed = 1, .dir = "/run/ht-integrity" };
	const char *op = argc > 1 ? argv[1] : "";
	bool fill = !strcmp(op, "fill");
	uint64_t v;
	int c;

	if (!fill && strcmp(op, "verify") && strcmp(op, "stop")) {
		fprintf(stderr, "usage: ht-integrity fill|verify|stop [--bytes N] [--threads T] "
				"[--seed S] [--dir DIR]\n");
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "b:t:s:d:", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!fill) {
				ht_err("%s: --bytes only applies to fill", op);
				return 2;
			}
			if (parse_size("--bytes", optarg, &o.bytes))
				return 2;
			if (o.bytes < WL_PAGE || o.bytes % WL_PAGE) {
				ht_err("fill: --bytes must be a positive multiple of 4096");
				return 2;
			}
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
		default:
			return 2;
		}
	}
	if (optind < argc) {
		ht_err("%s: unexpected argument '%s'", op, argv[optind]);
		return 2;
	}
	return fill ? cmd_fill(&o) : cmd_request(&o, op);
}
