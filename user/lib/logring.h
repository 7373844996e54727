/* Output of a child process (QEMU's stdout and stderr, the guest console)
 * drained from pipes by a thread into memory rings that keep the last bytes:
 * a guest that writes without end costs a fixed amount of RAM, no disk. */
#ifndef HATRACE_LOGRING_H
#define HATRACE_LOGRING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_STREAMS_MAX 2

struct logring {
	char *buf;
	size_t cap;
	uint64_t total; /* bytes ever written; the last min(total, cap) are kept */
};

struct log_drain {
	int nstreams;
	int fds[LOG_STREAMS_MAX]; /* read ends, owned */
	struct logring rings[LOG_STREAMS_MAX];
	int stop[2];              /* a pipe that tells the thread to finish */
	pthread_mutex_t lock;
	pthread_t thread;
	bool running;
};

/* Takes ownership of the read ends fds[0, n) and drains stream i into a ring
 * of caps[i] bytes until log_drain_stop(). */
int log_drain_start(struct log_drain *d, int n, const int *fds, const size_t *caps);
/* Reads what is left in the pipes, stops the thread; the rings stay readable. */
void log_drain_stop(struct log_drain *d);
/* The kept bytes of stream i, oldest first, in a malloc'ed buffer (*len bytes);
 * *dropped (may be NULL) receives how many older bytes were discarded. */
char *log_drain_copy(struct log_drain *d, int i, size_t *len, uint64_t *dropped);
void log_drain_free(struct log_drain *d);

#endif
