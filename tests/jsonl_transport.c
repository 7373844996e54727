/* The JSON-lines transport (user/harness/jsonl.c) against a peer at the other end of
 * a socketpair: the work it does is linear in what it receives (counted in
 * bytes moved and searched, not timed), every wait ends at its deadline or on
 * Ctrl-C, and lines and skipped messages are bounded. Also term_safe(). */
#include "check.h"
#include "common.h"
#include "jsonl.h"
#include "safe_text.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000ull
#define MiB (1u << 20)
#define HANG_S 30 /* a case that takes this long hangs */

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			_exit(0); /* the reader gave up */
		p += w;
		n -= w;
	}
}

static void write_repeated(int fd, char ch, size_t n)
{
	static char chunk[MiB];

	memset(chunk, ch, sizeof(chunk));
	for (size_t done = 0; done < n; done += sizeof(chunk))
		write_all(fd, chunk, n - done < sizeof(chunk) ? n - done : sizeof(chunk));
}

/* Runs peer(fd) in a child at the other end of c's socket. */
static pid_t start_peer(struct jsonl *c, size_t max_line, void (*peer)(int fd))
{
	int sv[2];
	pid_t pid;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pid = fork();
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		close(sv[0]);
		peer(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	jsonl_attach(c, "test peer", sv[0], max_line);
	return pid;
}

static void stop_peer(struct jsonl *c, pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	jsonl_close(c);
}

/* 1 MiB without a newline, then 4 Mi empty lines, then the object. */
static void flood_then_object(int fd)
{
	write_repeated(fd, ' ', MiB);
	write_repeated(fd, '\n', 4 * MiB);
	write_all(fd, "{\"id\":7}\n", 9);
	pause();
}

static void case_linear(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, 4 * MiB, flood_then_object);
	json_t *msg;
	int err = jsonl_read(&c, now_ns() + HANG_S * 1000 * MS, &msg);

	check(!err && json_integer_value(json_object_get(msg, "id")) == 7, "jsonl_flood_read",
	      "read returned %d", err);
	check(c.moved + c.scanned <= 2 * c.received && c.received >= 5 * MiB,
	      "jsonl_work_linear", "moved %llu + scanned %llu bytes for %llu received",
	      (unsigned long long)c.moved, (unsigned long long)c.scanned,
	      (unsigned long long)c.received);
	json_decref(msg);
	stop_peer(&c, pid);
}

/* 20000 objects of about 1 KiB, written in pieces that end inside lines. */
static void many_objects(int fd)
{
	char line[1100];
	size_t n = snprintf(line, sizeof(line), "{\"event\":\"x\",\"pad\":\"%01000d\"}\n", 0);
	char *all = malloc(20000 * n);

	for (int i = 0; i < 20000; i++)
		memcpy(all + i * n, line, n);
	for (size_t off = 0; off < 20000 * n; off += 4093)
		write_all(fd, all + off, 20000 * n - off < 4093 ? 20000 * n - off : 4093);
	pause();
}

static void case_partial_lines(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, many_objects);
	uint64_t deadline = now_ns() + HANG_S * 1000 * MS;
	json_t *msg;
	int n = 0;

	while (n < 20000 && !jsonl_read(&c, deadline, &msg)) {
		json_decref(msg);
		n++;
	}
	check(n == 20000, "jsonl_partial_lines_read", "read %d of 20000 objects", n);
	check(c.moved > 0 && c.moved + c.scanned <= 2 * c.received, "jsonl_compaction_linear",
	      "moved %llu + scanned %llu bytes for %llu received", (unsigned long long)c.moved,
	      (unsigned long long)c.scanned, (unsigned long long)c.received);
	stop_peer(&c, pid);
}

static void endless_newlines(int fd)
{
	for (;;)
		write_repeated(fd, '\n', MiB);
}

static void case_deadline(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, endless_newlines);
	uint64_t t0 = now_ns();
	json_t *msg;
	int err = jsonl_read(&c, t0 + 300 * MS, &msg);

	check(err == -ETIMEDOUT && now_ns() - t0 < 10000 * MS, "jsonl_empty_lines_deadline",
	      "read returned %d after %.1f s (deadline 0.3 s)", err, (now_ns() - t0) / 1e9);
	stop_peer(&c, pid);
}

static void *press_ctrl_c(void *unused)
{
	usleep(200000);
	exiting = 1;
	return NULL;
}

static void case_ctrl_c(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, endless_newlines);
	pthread_t t;
	json_t *msg;
	int err;

	pthread_create(&t, NULL, press_ctrl_c, NULL);
	err = jsonl_read(&c, now_ns() + HANG_S * 1000 * MS, &msg);
	pthread_join(t, NULL);
	exiting = 0;
	check(err == -EINTR, "jsonl_empty_lines_ctrl_c", "read returned %d", err);
	stop_peer(&c, pid);
}

static void endless_line(int fd)
{
	write_repeated(fd, 'x', 100 * MiB);
	pause();
}

static void case_long_line(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, endless_line);
	json_t *msg;
	int err = jsonl_read(&c, now_ns() + HANG_S * 1000 * MS, &msg);

	check(err == -EMSGSIZE && c.cap <= 4 * MiB && c.received <= 2 * MiB,
	      "jsonl_line_bounded", "read returned %d; buffer %zu bytes, %llu received", err, c.cap,
	      (unsigned long long)c.received);
	stop_peer(&c, pid);
}

static void events_then_reply(int fd)
{
	for (int i = 0; i <= JSONL_MAX_SKIPPED; i++)
		write_all(fd, "{\"event\":\"x\"}\n", 14);
	write_all(fd, "{\"id\":1}\n", 9);
	pause();
}

static void case_skipped(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, events_then_reply);
	json_t *reply;
	int err = jsonl_call(&c, json_object(), 1, now_ns() + HANG_S * 1000 * MS, &reply);

	check(err == -EPROTO && !reply, "jsonl_skipped_bounded", "call returned %d", err);
	stop_peer(&c, pid);
}

static void never_reads(int fd)
{
	pause();
}

static void case_send_deadline(void)
{
	struct jsonl c;
	pid_t pid = start_peer(&c, MiB, never_reads);
	char *big = malloc(16 * MiB + 1);
	uint64_t t0 = now_ns();
	json_t *req;
	int err;

	memset(big, 'p', 16 * MiB);
	big[16 * MiB] = 0;
	req = json_pack("{s:s}", "pad", big);
	err = jsonl_send(&c, req, t0 + 300 * MS);
	check(err == -ETIMEDOUT && now_ns() - t0 < 10000 * MS, "jsonl_send_deadline",
	      "send returned %d after %.1f s (deadline 0.3 s)", err, (now_ns() - t0) / 1e9);
	json_decref(req);
	free(big);
	stop_peer(&c, pid);
}

static void case_term_safe(void)
{
	const char in[] = "\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x1bPdcs\x1b\\\tend\r\x01\x7f"
			  "\xc2\x9b" "2J caf\xc3\xa9";
	char out[64], small[4];

	term_safe(out, sizeof(out), in, sizeof(in) - 1);
	check(!strcmp(out, "red ok end???" "?2J caf\xc3\xa9"), "term_safe_strips",
	      "got '%s'", out);
	term_safe(small, sizeof(small), "abcdef", 6);
	check(!strcmp(small, "abc"), "term_safe_bounded", "got '%s'", small);
}

/* Runs a case in a child, so that a hang is reported, not waited for. */
static void run(const char *name, void (*fn)(void))
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(check_exit());
	}
	for (int i = 0; i < HANG_S * 10 && !waitpid(pid, &status, WNOHANG); i++)
		usleep(100000);
	if (!waitpid(pid, &status, WNOHANG) && !kill(pid, SIGKILL)) {
		waitpid(pid, &status, 0);
		check(false, name, "still running after %d s", HANG_S);
	} else if (!WIFEXITED(status)) {
		check(false, name, "died: status %#x", status);
	} else if (WEXITSTATUS(status)) {
		check_failures++;
	}
}

int main(void)
{
	plan(11);
	signal(SIGPIPE, SIG_IGN);
	run("jsonl_linear", case_linear);
	run("jsonl_partial_lines", case_partial_lines);
	run("jsonl_deadline", case_deadline);
	run("jsonl_ctrl_c", case_ctrl_c);
	run("jsonl_long_line", case_long_line);
	run("jsonl_skipped", case_skipped);
	run("jsonl_send_deadline", case_send_deadline);
	run("term_safe", case_term_safe);
	return check_exit();
}
