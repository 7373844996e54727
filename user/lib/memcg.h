/* A memory cgroup that holds a budget around processes: cgroup v2's
 * memory.max where the unified hierarchy has the memory controller, else v1's
 * memory.limit_in_bytes (/sys/fs/cgroup/memory). */
#ifndef HATRACE_MEMCG_H
#define HATRACE_MEMCG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct memcg {
	char path[256];
	bool v2;
};

/* Creates hatrace-<our pid>-<tag> with the limit; removes stale hatrace-*
 * groups of processes that are gone. -errno with a message on failure. */
int memcg_create(struct memcg *cg, const char *tag, uint64_t limit);
int memcg_add(const struct memcg *cg, pid_t pid);
/* Processes the kernel's OOM killer killed inside the group, or -errno. */
long memcg_oom_kills(const struct memcg *cg);
/* Removes the group (it must be empty: its processes have ended). */
int memcg_destroy(struct memcg *cg);

#endif
