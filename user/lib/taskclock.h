/* CPU time of every thread of a process, counted by the kernel (perf
 * task-clock software counters, one per thread), not sampled. */
#ifndef HATRACE_TASKCLOCK_H
#define HATRACE_TASKCLOCK_H

#include <jansson.h>
#include <stdint.h>

#define TASKCLOCK_MAX_THREADS 256

struct taskclock {
	int n;
	int tid[TASKCLOCK_MAX_THREADS], fd[TASKCLOCK_MAX_THREADS];
	char comm[TASKCLOCK_MAX_THREADS][16];
};

/* Opens a counter on every thread pid has now. -errno if none could be opened
 * (perf_event_open needs CAP_PERFMON or perf_event_paranoid <= 1). */
int taskclock_open(struct taskclock *tc, int pid);
/* {"thread name": seconds, ...}, threads of one name summed ("CPU 0/TCG" ...). */
json_t *taskclock_read(const struct taskclock *tc);
void taskclock_close(struct taskclock *tc);

#endif
