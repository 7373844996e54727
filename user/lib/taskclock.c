#include "taskclock.h"

#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_counter(int tid)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_TASK_CLOCK,
		.exclude_hv = 1,
	};

	return syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static void thread_name(int pid, int tid, char *out, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	snprintf(out, len, "?");
	if ((f = fopen(path, "r"))) {
		if (fgets(out, len, f))
			out[strcspn(out, "\n")] = 0;
		fclose(f);
	}
}

int taskclock_open(struct taskclock *tc, int pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int err = -ESRCH;

	tc->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (!(dir = opendir(path)))
		return -errno;
	while ((d = readdir(dir)) && tc->n < TASKCLOCK_MAX_THREADS) {
		int tid = atoi(d->d_name), fd;

		if (tid <= 0)
			continue;
		if ((fd = open_counter(tid)) < 0) {
			err = -errno;
			continue;
		}
		tc->tid[tc->n] = tid;
		tc->fd[tc->n] = fd;
		thread_name(pid, tid, tc->comm[tc->n], sizeof(tc->comm[0]));
		tc->n++;
	}
	closedir(dir);
	return tc->n ? 0 : err;
}

json_t *taskclock_read(const struct taskclock *tc)
{
	json_t *out = json_object();

	for (int i = 0; i < tc->n; i++) {
		uint64_t ns;
		json_t *prev = json_object_get(out, tc->comm[i]);

		if (read(tc->fd[i], &ns, sizeof(ns)) != sizeof(ns))
			continue;
		json_object_set_new(out, tc->comm[i],
				    json_real(json_number_value(prev) + ns / 1e9));
	}
	return out;
}

void taskclock_close(struct taskclock *tc)
{
	for (int i = 0; i < tc->n; i++)
		close(tc->fd[i]);
	tc->n = 0;
}
