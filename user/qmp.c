#include "qmp.h"
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QMP_MAX_LINE (4 << 20)

int jconn_connect(struct jconn *c, const char *peer, const char *path, size_t max_line,
		  int watch_pid, uint64_t timeout_ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = now_ns() + timeout_ns;
	int err;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->peer = peer;
	c->max_line = max_line;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return -errno;
		if (!connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
			return 0;
		err = -errno;
		close(c->fd);
		c->fd = -1;
		if (exiting)
			return -EINTR;
		if (watch_pid && !pid_alive(watch_pid))
			return -ESRCH;
		if (now_ns() > deadline)
			return err;
		usleep(20000);
	}
}

/* Pops one complete line off the buffer, if there is one. */
static char *take_line(struct jconn *c, size_t *len)
{
	char *nl = memchr(c->buf, '\n', c->len);
	char *line;

	if (!nl)
		return NULL;
	*len = nl - c->buf;
	line = malloc(*len + 1);
	if (!line)
		return NULL;
	memcpy(line, c->buf, *len);
	line[*len] = 0;
	c->len -= *len + 1;
	memmove(c->buf, nl + 1, c->len);
	return line;
}

int jconn_read(struct jconn *c, uint64_t deadline_ns, json_t **out)
{
	json_error_t jerr;
	size_t len;
	char *line;

	*out = NULL;
	for (;;) {
		line = take_line(c, &len);
		if (line) {
			while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
				line[--len] = 0;
			if (!len) {
				free(line);
				continue;
			}
			*out = json_loadb(line, len, 0, &jerr);
			if (!*out || !json_is_object(*out)) {
				ht_err("%s sent a line that is not a JSON object: %.80s", c->peer, line);
				json_decref(*out);
				*out = NULL;
				free(line);
				return -EPROTO;
			}
			free(line);
			return 0;
		}
		if (c->len >= c->max_line) {
			ht_err("%s sent a line longer than %zu bytes", c->peer, c->max_line);
			return -EPROTO;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 131072;
			char *b = realloc(c->buf, cap);

			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}
		uint64_t now = now_ns();
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int wait_ms;

		if (exiting)
			return -EINTR;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		wait_ms = (deadline_ns - now) / 1000000 + 1;
		if (wait_ms > 200)
			wait_ms = 200; /* re-check Ctrl-C */
		int r = poll(&pfd, 1, wait_ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -EPIPE;
		c->len += n;
	}
}

int jconn_send(struct jconn *c, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	size_t len, off = 0;
	int err = 0;

	if (!s)
		return -ENOMEM;
	len = strlen(s);
	s[len++] = '\n'; /* overwrites the NUL; length is tracked */
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = -EPIPE;
			break;
		}
		off += n;
	}
	free(s);
	return err;
}

void jconn_close(struct jconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

struct qmp {
	struct jconn c;
	int next_id;
};

int qmp_open(struct qmp **out, const char *path, int qemu_pid, uint64_t timeout_ns)
{
	struct qmp *q = calloc(1, sizeof(*q));
	json_t *greeting;
	int err;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	err = jconn_connect(&q->c, "QMP", path, QMP_MAX_LINE, qemu_pid, timeout_ns);
	if (err) {
		free(q);
		return err;
	}
	err = jconn_read(&q->c, now_ns() + timeout_ns, &greeting);
	if (!err && !json_object_get(greeting, "QMP")) {
		ht_err("QMP: unexpected greeting");
		err = -EPROTO;
	}
	json_decref(greeting);
	if (!err)
		err = qmp_call(q, "qmp_capabilities", NULL, NULL, timeout_ns);
	if (err) {
		qmp_close(q);
		return err;
	}
	*out = q;
	return 0;
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret, uint64_t timeout_ns)
{
	uint64_t deadline = now_ns() + timeout_ns;
	int id = ++q->next_id;
	json_t *req = json_pack("{s:s, s:i}", "execute", cmd, "id", id);
	int err;

	if (ret)
		*ret = NULL;
	if (args)
		json_object_set_new(req, "arguments", args);
	err = jconn_send(&q->c, req);
	json_decref(req);
	while (!err) {
		json_t *msg, *jid;

		err = jconn_read(&q->c, deadline, &msg);
		if (err)
			break;
		jid = json_object_get(msg, "id");
		if (!jid || json_integer_value(jid) != id) {
			json_decref(msg); /* an event, or a late reply to an abandoned call */
			continue;
		}
		if (json_object_get(msg, "error")) {
			const char *desc = json_string_value(
				json_object_get(json_object_get(msg, "error"), "desc"));
			ht_err("QMP %s failed: %s", cmd, desc ? desc : "(no description)");
			json_decref(msg);
			return -EREMOTEIO;
		}
		if (ret) {
			*ret = json_incref(json_object_get(msg, "return"));
		}
		json_decref(msg);
		return 0;
	}
	if (err == -EPIPE)
		ht_err("QMP %s: QEMU closed the connection (did it exit?)", cmd);
	else if (err == -ETIMEDOUT)
		ht_err("QMP %s: no reply within %.1f s", cmd, timeout_ns / 1e9);
	return err;
}

int qmp_balloon_actual(struct qmp *q, uint64_t *bytes)
{
	json_t *ret;
	int err = qmp_call(q, "query-balloon", NULL, &ret, 5000000000ull);
	json_t *v;

	if (err)
		return err;
	v = json_object_get(ret, "actual");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		ht_err("QMP query-balloon: no integer 'actual'");
		err = -EPROTO;
	} else {
		*bytes = json_integer_value(v);
	}
	json_decref(ret);
	return err;
}

int qmp_qom_get_u64(struct qmp *q, const char *path, const char *prop, uint64_t *out)
{
	json_t *ret;
	int err = qmp_call(q, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop),
			   &ret, 5000000000ull);

	if (err)
		return err;
	if (!json_is_integer(ret) || json_integer_value(ret) < 0) {
		ht_err("QMP qom-get %s.%s: not a non-negative integer", path, prop);
		err = -EPROTO;
	} else {
		*out = json_integer_value(ret);
	}
	json_decref(ret);
	return err;
}

int qmp_qom_set_u64(struct qmp *q, const char *path, const char *prop, uint64_t val)
{
	return qmp_call(q, "qom-set",
			json_pack("{s:s, s:s, s:I}", "path", path, "property", prop, "value",
				  (json_int_t)val),
			NULL, 5000000000ull);
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	jconn_close(&q->c);
	free(q);
}
