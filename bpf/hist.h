/* Types shared by bpf/hist.bpf.c and user space. */
#ifndef HATRACE_HIST_H
#define HATRACE_HIST_H

#define HIST_SLOTS 64      /* log2 buckets of a u64: an index masked with 63 passes every verifier */
#define MAX_HIST_ENTRIES 16384
#define MAX_PIDS 64
#define INLINE_PIDS 4 /* traced PIDs compared without a map lookup */
#define MAX_RAM_RANGES 32
#define MAX_INFLIGHT 16384 /* per in-flight map (priority processes, others) */
/* Longer intervals are taken for stale starts (e.g. a thread ID reused). */
#define MAX_INFLIGHT_NS (60ULL * 1000000000)

/* What a histogram measures; `sub` refines it. */
enum metric {
	M_MADVISE,          /* ns, sub = advice */
	M_FALLOCATE,        /* ns, sub = mode */
	M_PROCESS_MADVISE,  /* ns, sub = advice */
	M_USER_FAULT,       /* ns (fexit) or count only, sub = 1 if in guest RAM */
	M_KVM_PAGE_FAULT,   /* ns from fault to next entry, sub = 1 for a write */
	M_KVM_EXIT,         /* ns from exit to entry, sub = exit reason, isa in key.isa */
	M_KVM_FAULT_GPA,    /* guest physical address of each KVM page fault */
	M_KVM_UNMAP_HVA,    /* bytes per event */
	M_KVMMMU,           /* count, sub = kvmmmu event index */
	M_MAX,
};

#define KVM_ISA_VMX 1 /* kvm_exit's isa field */
#define KVM_ISA_SVM 2

struct hist_key {
	unsigned int pid;   /* tgid */
	unsigned short metric;
	unsigned short isa; /* kvm_exit: KVM_ISA_VMX or KVM_ISA_SVM */
	unsigned int sub;
};

struct hist {
	unsigned long long slots[HIST_SLOTS];
	unsigned long long count;
	unsigned long long sum;   /* of the histogrammed value (ns or bytes) */
	unsigned long long bytes; /* reclaim syscalls: bytes named by the call */
};

struct ram_range {
	unsigned int pid;
	unsigned int pad;
	unsigned long long start, end; /* HVA [start, end) */
};

/* The probes, each reported as not attached (with why), attached but silent,
 * or with its event count (derived from its histograms). */
enum probe_id {
	P_MADVISE, P_FALLOCATE, P_PROCESS_MADVISE, P_USER_FAULT, P_KVM_PAGE_FAULT,
	P_KVM_EXIT, P_KVM_ENTRY, P_KVM_UNMAP_HVA, P_KVMMMU, P_MAX,
};

#endif
