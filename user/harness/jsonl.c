#include "jsonl.h"
#include "common.h"
#include "safe_text.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define POLL_SLICE_MS 200 /* longest wait between two looks at Ctrl-C */

static void reset(struct jsonl *c, const char *peer, int fd, size_t max_line)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->peer = peer;
	c->max_line = max_line;
}

void jsonl_attach(struct jsonl *c, const char *peer, int fd, size_t max_line)
{
	reset(c, peer, fd, max_line);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Whether process pid is gone, counting a child that exited but was not reaped yet. */
static bool gone(int pid)
{
	siginfo_t si = { 0 };

	if (!waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT))
		return si.si_pid == pid;
	return !pid_alive(pid);
}

int jsonl_connect(struct jsonl *c, const char *peer, const char *path, size_t max_line,
		  int watch_pid, uint64_t timeout_ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = now_ns() + timeout_ns;
	int fd, err;

	reset(c, peer, -1, max_line);
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		/* Non-blocking: a listener with a full backlog gives EAGAIN, not a hang. */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			c->fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
		if (exiting)
			return -EINTR;
		if (watch_pid && gone(watch_pid))
			return -ESRCH;
		if (now_ns() > deadline)
			return err;
		usleep(20000);
	}
}

/* Waits until fd is ready for events; 0, -ETIMEDOUT, -EINTR (Ctrl-C) or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		uint64_t now = now_ns();
		uint64_t wait_ms;
		int r;

		if (exiting)
			return -EINTR;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		wait_ms = (deadline_ns - now) / 1000000 + 1;
		r = poll(&pfd, 1, wait_ms > POLL_SLICE_MS ? POLL_SLICE_MS : (int)wait_ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			return 0;
	}
}

/* The next complete line, NUL-terminated in place (valid until the next read),
 * or NULL. The search resumes where the previous one stopped. */
static char *next_line(struct jsonl *c, size_t *len)
{
	char *from = c->buf + c->scan, *nl = NULL, *line;

	if (c->tail > c->scan)
		nl = memchr(from, '\n', c->tail - c->scan);
	if (!nl) {
		c->scanned += c->tail - c->scan;
		c->scan = c->tail;
		return NULL;
	}
	c->scanned += nl + 1 - from;
	line = c->buf + c->head;
	*nl = 0;
	*len = nl - line;
	c->head = c->scan = nl + 1 - c->buf;
	return line;
}

/* Room for one more read at the tail. Compaction moves the pending bytes only
 * when at least as many were consumed since, so moves never exceed receipts. */
static int make_room(struct jsonl *c)
{
	size_t pending = c->tail - c->head, cap;
	char *b;

	if (c->cap - c->tail >= READ_CHUNK)
		return 0;
	if (c->head >= pending) {
		memmove(c->buf, c->buf + c->head, pending);
		c->moved += pending;
		c->scan -= c->head;
		c->tail = pending;
		c->head = 0;
		if (c->cap - c->tail >= READ_CHUNK)
			return 0;
	}
	cap = c->cap ? c->cap * 2 : 2 * READ_CHUNK;
	b = realloc(c->buf, cap);
	if (!b)
		return -ENOMEM;
	c->buf = b;
	c->cap = cap;
	return 0;
}

static int parse_line(struct jsonl *c, char *line, size_t len, json_t **out)
{
	char shown[96], why[JSON_ERROR_TEXT_LENGTH];
	json_error_t jerr;
	const char *what;

	*out = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (json_is_object(*out))
		return 0;
	what = *out ? "not an object" : jerr.text; /* quotes the line: guest text */
	ht_err("%s sent a line that is not a JSON object (%s): %s", c->peer,
	       term_safe(why, sizeof(why), what, strlen(what)),
	       term_safe(shown, sizeof(shown), line, len));
	json_decref(*out);
	*out = NULL;
	return -EPROTO;
}

int jsonl_read(struct jsonl *c, uint64_t deadline_ns, json_t **out)
{
	size_t len;
	char *line;
	ssize_t n;
	int err;

	*out = NULL;
	for (;;) {
		if (exiting)
			return -EINTR;
		if (now_ns() >= deadline_ns)
			return -ETIMEDOUT;
		line = next_line(c, &len);
		if (line) {
			while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
				       line[len - 1] == '\t'))
				len--;
			if (len > c->max_line)
				goto too_long;
			if (len)
				return parse_line(c, line, len, out);
			continue;
		}
		if (c->tail - c->head > c->max_line)
			goto too_long;
		if (c->head == c->tail)
			c->head = c->tail = c->scan = 0;
		if ((err = make_room(c)))
			return err;
		n = read(c->fd, c->buf + c->tail, c->cap - c->tail);
		if (n > 0) {
			c->tail += n;
			c->received += n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EAGAIN || errno == EINTR) {
			if ((err = wait_fd(c->fd, POLLIN, deadline_ns)))
				return err;
			continue;
		}
		return errno == ECONNRESET ? -EPIPE : -errno;
	}
too_long:
	ht_err("%s sent a line longer than %zu bytes", c->peer, c->max_line);
	return -EMSGSIZE;
}

int jsonl_send(struct jsonl *c, json_t *obj, uint64_t deadline_ns)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	size_t len, off = 0;
	int err = 0;

	if (!s)
		return -ENOMEM;
	len = strlen(s);
	s[len++] = '\n'; /* overwrites the NUL; length is tracked */
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			off += n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((err = wait_fd(c->fd, POLLOUT, deadline_ns)))
				break;
		} else {
			err = -EPIPE;
			break;
		}
	}
	free(s);
	return err;
}

int jsonl_wait(struct jsonl *c, uint64_t deadline_ns, bool (*match)(json_t *msg, void *arg),
	       void *arg, json_t **out)
{
	json_t *msg;
	int err;

	*out = NULL;
	for (unsigned skipped = 0; skipped < JSONL_MAX_SKIPPED; skipped++) {
		if ((err = jsonl_read(c, deadline_ns, &msg)))
			return err;
		if (match(msg, arg)) {
			*out = msg;
			return 0;
		}
		json_decref(msg);
	}
	ht_err("%s sent %d messages without the one awaited", c->peer, JSONL_MAX_SKIPPED);
	return -EPROTO;
}

static bool id_matches(json_t *msg, void *id)
{
	json_t *jid = json_object_get(msg, "id");

	return json_is_integer(jid) && json_integer_value(jid) == *(json_int_t *)id;
}

int jsonl_call(struct jsonl *c, json_t *req, json_int_t id, uint64_t deadline_ns, json_t **reply)
{
	int err;

	*reply = NULL;
	if (!req || json_object_set_new(req, "id", json_integer(id)))
		return -ENOMEM;
	err = jsonl_send(c, req, deadline_ns);
	return err ?: jsonl_wait(c, deadline_ns, id_matches, &id, reply);
}

void jsonl_close(struct jsonl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	reset(c, NULL, -1, 0);
}
