/* JSON-lines over a unix socket, and the QMP client built on it. */
#ifndef HATRACE_QMP_H
#define HATRACE_QMP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One JSON object per line, either direction (QMP, the hatrace agent). */
struct jconn {
	int fd;
	char *buf;
	size_t len, cap, max_line;
	const char *peer; /* for messages, e.g. "QMP" */
};

/* Connects to a listening socket, retrying until timeout_ns while process
 * watch_pid (0 = none) lives. */
int jconn_connect(struct jconn *c, const char *peer, const char *path, size_t max_line,
		  int watch_pid, uint64_t timeout_ns);
/* Reads the next object. Returns 0 and *out, -ETIMEDOUT, -EPIPE (peer closed),
 * -EINTR (Ctrl-C) or -EPROTO (not a JSON object). */
int jconn_read(struct jconn *c, uint64_t deadline_ns, json_t **out);
int jconn_send(struct jconn *c, json_t *obj); /* does not steal obj */
void jconn_close(struct jconn *c);

struct qmp;

/* Connects, reads the greeting and negotiates capabilities. */
int qmp_open(struct qmp **q, const char *path, int qemu_pid, uint64_t timeout_ns);
/* Executes cmd with args (stolen; may be NULL). *ret (may be NULL) receives
 * the "return" value. A QMP error is printed and returns -EREMOTEIO. */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret, uint64_t timeout_ns);
/* Convenience for integer results: query-balloon "actual", qom-get of an int. */
int qmp_balloon_actual(struct qmp *q, uint64_t *bytes);
int qmp_qom_get_u64(struct qmp *q, const char *path, const char *prop, uint64_t *out);
int qmp_qom_set_u64(struct qmp *q, const char *path, const char *prop, uint64_t val);
void qmp_close(struct qmp *q);

#endif
