/* One JSON object per line over a unix socket, each way: the request/reply
 * transport of QMP and of the hatrace guest agent. Everything read is
 * peer-controlled, so lines and messages are bounded, reading is linear in the
 * bytes received, and every wait (read, send, connect) ends at a deadline or
 * on Ctrl-C. */
#ifndef HATRACE_JSONL_H
#define HATRACE_JSONL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages a peer may send while a call waits for its reply (events, stale
 * replies) before the call gives up. */
#define JSONL_MAX_SKIPPED 4096

struct jsonl {
	int fd;
	const char *peer;     /* for messages, e.g. "QMP" */
	size_t max_line;
	char *buf;
	size_t cap;
	size_t head, tail;    /* unread bytes are buf[head, tail) */
	size_t scan;          /* buf[head, scan) holds no newline */
	/* Work done, for the tests: bytes received, moved inside the buffer and
	 * searched for a newline. Each stays within a small multiple of received. */
	uint64_t received, moved, scanned;
};

/* Connects to a listening socket, retrying until timeout_ns while process
 * watch_pid (0 = none) lives. */
int jsonl_connect(struct jsonl *c, const char *peer, const char *path, size_t max_line,
		  int watch_pid, uint64_t timeout_ns);
/* Uses an already connected stream socket (made non-blocking). */
void jsonl_attach(struct jsonl *c, const char *peer, int fd, size_t max_line);
/* Reads the next object. Returns 0 and *out, or -ETIMEDOUT, -EPIPE (peer
 * closed), -EINTR (Ctrl-C), -EMSGSIZE (line over max_line) or -EPROTO (not a
 * JSON object); the last two print what the peer sent. */
int jsonl_read(struct jsonl *c, uint64_t deadline_ns, json_t **out);
/* Sends obj (not stolen) as one line; -ETIMEDOUT if the peer does not take it. */
int jsonl_send(struct jsonl *c, json_t *obj, uint64_t deadline_ns);
/* Reads until match(msg, arg) holds; -EPROTO after JSONL_MAX_SKIPPED others. */
int jsonl_wait(struct jsonl *c, uint64_t deadline_ns, bool (*match)(json_t *msg, void *arg),
	       void *arg, json_t **out);
/* Sets req's "id" to id, sends it and waits for the message with that id. */
int jsonl_call(struct jsonl *c, json_t *req, json_int_t id, uint64_t deadline_ns, json_t **reply);
void jsonl_close(struct jsonl *c);

#endif
