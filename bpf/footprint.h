/* Types shared by bpf/footprint.bpf.c and user space. */
#ifndef HATRACE_FOOTPRINT_H
#define HATRACE_FOOTPRINT_H

#define FP_MAX_PIDS 64
#define FP_MAX_MMS 4096

/* mm counters, as include/linux/mm_types_task.h numbers them */
enum { FP_FILE, FP_ANON, FP_SWAP, FP_SHMEM, FP_NR };

struct fp_event {
	unsigned long long ts;          /* bpf_ktime_get_ns */
	unsigned int pid;
	unsigned int mm_id;
	long long bytes[FP_NR];     /* -1: not seen since tracing began */
};

#endif
