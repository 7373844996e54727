/* Host-side probes as a library: the programs behind `hatrace hist`, with
 * cumulative in-kernel totals that callers (hist, inflate) difference. */
#ifndef HATRACE_HOSTPROBES_H
#define HATRACE_HOSTPROBES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hist.h"

struct host_probes;

struct tracepoint_ref {
	const char *category, *event;
};

/* The fixed tracepoints the probes attach to (the kvmmmu category comes on
 * top, every event of it); returns how many were written to out. */
int host_probes_tracepoints(struct tracepoint_ref *out, int max);

struct probe_status {
	const char *name;   /* e.g. "madvise", "kvm_exit" */
	bool attached;
	char reason[128];   /* why it did not attach */
	uint64_t events;    /* events seen since attach */
};

/* One cumulative histogram as read from the kernel. */
struct hist_entry {
	struct hist_key key;
	struct hist val;
};

/* Orders hist_entry by key (for qsort). */
int hist_entry_cmp(const void *a, const void *b);

/* pids: the priority processes, with maps of their own that other processes
 * cannot fill; others: trace every other process too (always when npids is 0).
 * ram: guest RAM ranges (HVA) that tell guest-RAM faults apart and credit
 * unmaps of guest RAM to the VM. */
int host_probes_start(struct host_probes **hp, const int *pids, int npids, bool others,
		      const struct ram_range *ram, int nram);
/* Reads all histograms (cumulative), sorted by key, retired ones included;
 * returns the number of entries or -errno. *out is malloc'ed and owned by the caller. */
int host_probes_read(struct host_probes *hp, struct hist_entry **out);
/* Moves the histograms of exited non-priority processes out of the kernel
 * maps into user space, so that those maps only hold live processes. */
int host_probes_sweep(struct host_probes *hp);
/* Frees the retired histograms once printed (interval mode). */
void host_probes_forget_retired(struct host_probes *hp);
int host_probes_status(struct host_probes *hp, const struct probe_status **st);
uint64_t host_probes_drops(struct host_probes *hp);
/* Command name of a traced process, also after it exited. */
void host_probes_comm(struct host_probes *hp, unsigned pid, char *buf, size_t len);
/* Name of a kvmmmu tracepoint from its M_KVMMMU sub index. */
const char *host_probes_kvmmmu_name(struct host_probes *hp, unsigned idx);
/* True when user faults carry a latency (fexit upgrade loaded). */
bool host_probes_fault_latency(struct host_probes *hp);
void host_probes_stop(struct host_probes *hp);

#endif
