#include "logring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ring_put(struct logring *r, const char *p, size_t n)
{
	size_t at, first;

	if (n > r->cap) {
		r->total += n - r->cap;
		p += n - r->cap;
		n = r->cap;
	}
	at = r->total % r->cap;
	first = n < r->cap - at ? n : r->cap - at;
	memcpy(r->buf + at, p, first);
	memcpy(r->buf, p + first, n - first);
	r->total += n;
}

/* Reads what fd has now into its ring; false at EOF or on an error. */
static bool drain_once(struct log_drain *d, int i)
{
	char chunk[65536];
	ssize_t n = read(d->fds[i], chunk, sizeof(chunk));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	pthread_mutex_lock(&d->lock);
	ring_put(&d->rings[i], chunk, n);
	pthread_mutex_unlock(&d->lock);
	return true;
}

static void *drain_thread(void *arg)
{
	struct log_drain *d = arg;
	struct pollfd pfd[LOG_STREAMS_MAX + 1];
	bool open[LOG_STREAMS_MAX], stopping = false;
	int left = d->nstreams;

	for (int i = 0; i < d->nstreams; i++)
		open[i] = true;
	while (left) {
		for (int i = 0; i < d->nstreams; i++)
			pfd[i] = (struct pollfd){ .fd = open[i] ? d->fds[i] : -1, .events = POLLIN };
		pfd[d->nstreams] = (struct pollfd){ .fd = stopping ? -1 : d->stop[0], .events = POLLIN };
		/* Once told to stop, take only what is already in the pipes. */
		if (poll(pfd, d->nstreams + 1, stopping ? 0 : -1) < 0 && errno != EINTR)
			break;
		if (pfd[d->nstreams].revents)
			stopping = true;
		int ready = 0;

		for (int i = 0; i < d->nstreams; i++) {
			if (!open[i] || !pfd[i].revents)
				continue;
			ready++;
			if (!drain_once(d, i)) {
				open[i] = false;
				left--;
			}
		}
		if (stopping && !ready && !pfd[d->nstreams].revents)
			break;
	}
	return NULL;
}

int log_drain_start(struct log_drain *d, int n, const int *fds, const size_t *caps)
{
	int err;

	memset(d, 0, sizeof(*d));
	d->nstreams = n < LOG_STREAMS_MAX ? n : LOG_STREAMS_MAX;
	n = d->nstreams;
	d->stop[0] = d->stop[1] = -1;
	pthread_mutex_init(&d->lock, NULL);
	for (int i = 0; i < n; i++) {
		d->fds[i] = fds[i];
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	}
	for (int i = 0; i < n; i++) {
		d->rings[i].cap = caps[i];
		d->rings[i].buf = malloc(caps[i]);
		if (!d->rings[i].buf)
			return -ENOMEM;
	}
	if (pipe2(d->stop, O_CLOEXEC))
		return -errno;
	err = -pthread_create(&d->thread, NULL, drain_thread, d);
	d->running = !err;
	return err;
}

void log_drain_stop(struct log_drain *d)
{
	if (d->running) {
		close(d->stop[1]); /* the thread sees POLLHUP */
		d->stop[1] = -1;
		pthread_join(d->thread, NULL);
		d->running = false;
	}
}

char *log_drain_copy(struct log_drain *d, int i, size_t *len, uint64_t *dropped)
{
	struct logring *r = &d->rings[i];
	size_t kept, start, first;
	char *out;

	pthread_mutex_lock(&d->lock);
	kept = r->total < r->cap ? r->total : r->cap;
	out = malloc(kept + 1);
	if (out) {
		start = (r->total - kept) % (r->cap ?: 1);
		first = kept < r->cap - start ? kept : r->cap - start;
		memcpy(out, r->buf + start, first);
		memcpy(out + first, r->buf, kept - first);
		out[kept] = 0;
		*len = kept;
		if (dropped)
			*dropped = r->total - kept;
	}
	pthread_mutex_unlock(&d->lock);
	return out;
}

void log_drain_free(struct log_drain *d)
{
	if (!d->nstreams)
		return;
	log_drain_stop(d);
	for (int i = 0; i < d->nstreams; i++) {
		if (d->fds[i] >= 0)
			close(d->fds[i]);
		free(d->rings[i].buf);
	}
	for (int i = 0; i < 2; i++)
		if (d->stop[i] >= 0)
			close(d->stop[i]);
	pthread_mutex_destroy(&d->lock);
	memset(d, 0, sizeof(*d));
}
