// SPDX-License-Identifier: GPL-2.0
/* Host probes behind `hatrace hist`: reclaim syscalls, user faults, KVM faults,
 * exits and MMU activity, aggregated into per-CPU log2 histograms in the kernel. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "hist.h"

char LICENSE[] SEC("license") = "GPL";

/* Priority tgids (the -p processes, or the VMs when every process is traced),
 * each with a slot in fault_counts and maps of their own, so that other
 * processes cannot crowd them out. The first INLINE_PIDS are constants after
 * load, compared without a map lookup; any further ones are in `pids`. */
const volatile unsigned int nr_pids = 0;
const volatile unsigned int inline_pids[INLINE_PIDS];
/* Whether processes other than the priority ones are traced too. */
const volatile bool trace_others = true;
/* Set when fexit/handle_mm_fault is loaded: faults then get a latency. */
const volatile bool fault_latency = false;
/* An interval whose start is older than this is stale: dropped, not recorded. */
const volatile unsigned long long max_inflight_ns = MAX_INFLIGHT_NS;

/* Guest RAM ranges, written by user space before the programs are attached. */
struct ram_range guest_ram[MAX_RAM_RANGES];
unsigned int nr_guest_ram;

/* Traced tgids and their slot in fault_counts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PIDS);
	__type(key, u32);
	__type(value, u32);
} pids SEC(".maps");

/* The hottest event, a user fault of a traced process, is counted here by
 * slot * 2 + in_guest_ram: an array slot costs less than a hash update. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PIDS * 2);
	__type(key, u32);
	__type(value, u64);
} fault_counts SEC(".maps");

/* Shared by all CPUs (atomic adds), so its size does not grow with the CPU
 * count. Priority processes have `hists`; every other process shares
 * `other_hists`, whose entries user space removes once their process exited. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_HIST_ENTRIES);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_HIST_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* filled only when every process is traced */
	__type(key, struct hist_key);
	__type(value, struct hist);
} other_hists SEC(".maps");

/* Command names, taken when a process gets its first histogram, so that
 * processes that have exited by print time are still named. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_HIST_ENTRIES);
	__type(key, u32);
	__type(value, char[16]);
} comms SEC(".maps");

/* Events lost to full maps or to stale in-flight starts, by metric. */
unsigned long long drops[M_MAX];

/* One in-flight interval per thread and kind (syscall, exit, kvm fault, user fault). */
enum slot { S_SYSCALL, S_KVM_EXIT, S_KVM_FAULT, S_USER_FAULT };

struct inflight {
	u64 ts;
	u64 bytes;
	u64 addr;	/* user fault: the faulting address its handler must name */
	u32 tgid;	/* the thread ID may have been reused by another process */
	u32 sub;
	u16 metric;
	u16 isa;
};

/* LRU: a start whose end never comes (the thread died, a fault was never
 * handled) is evicted instead of filling the map. Priority processes have
 * their own map, which other processes cannot flush. */
struct inflight_map {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, u64);
	__type(value, struct inflight);
};
struct inflight_map inflight SEC(".maps"), other_inflight SEC(".maps");

/* Slot of a traced tgid in fault_counts, or -1. */
static __always_inline int pid_slot(u32 tgid)
{
	u32 *slot;

	for (int i = 0; i < INLINE_PIDS; i++)
		if (i < nr_pids && inline_pids[i] == tgid)
			return i;
	if (nr_pids <= INLINE_PIDS)
		return -1;
	slot = bpf_map_lookup_elem(&pids, &tgid);
	return slot ? (int)*slot : -1;
}

#define OTHER_PROCESS (-2)

/* A priority process's slot, OTHER_PROCESS for another traced process, or -1. */
static __always_inline int classify(u32 tgid)
{
	int slot = pid_slot(tgid);

	return slot >= 0 ? slot : trace_others ? OTHER_PROCESS : -1;
}

static __always_inline u32 log2_slot(u64 v)
{
	u32 r = 0;

	/* floor(log2(v)), as in libbpf-tools' log2l(); 0 and 1 share slot 0 */
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	r |= v >> 1;
	return r;
}

static __always_inline void count_drop(u16 metric)
{
	if (metric < M_MAX)
		__sync_fetch_and_add(&drops[metric], 1);
}

static __always_inline void record(u32 tgid, int cls, u16 metric, u16 isa, u32 sub, u64 value,
				   u64 bytes, bool count_only)
{
	struct hist_key key = { .pid = tgid, .metric = metric, .isa = isa, .sub = sub };
	void *map = cls >= 0 ? (void *)&hists : (void *)&other_hists;
	static const struct hist zero;
	struct hist *h;

	h = bpf_map_lookup_elem(map, &key);
	if (!h) {
		if ((bpf_get_current_pid_tgid() >> 32) == tgid) {
			char comm[16];

			bpf_get_current_comm(comm, sizeof(comm));
			bpf_map_update_elem(&comms, &tgid, comm, BPF_NOEXIST);
		}
		bpf_map_update_elem(map, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(map, &key);
		if (!h) {
			count_drop(metric);
			return;
		}
	}
	__sync_fetch_and_add(&h->count, 1);
	if (bytes)
		__sync_fetch_and_add(&h->bytes, bytes);
	if (count_only)
		return;
	if (metric != M_KVM_FAULT_GPA) /* a sum of addresses means nothing */
		__sync_fetch_and_add(&h->sum, value);
	/* the mask, not a comparison, bounds the index for older verifiers (6.1) */
	__sync_fetch_and_add(&h->slots[log2_slot(value) & (HIST_SLOTS - 1)], 1);
}

static __always_inline u64 slot_key(u32 tid, enum slot s)
{
	return (u64)tid << 2 | s;
}

static __always_inline void *inflight_of(int cls)
{
	return cls >= 0 ? (void *)&inflight : (void *)&other_inflight;
}

static __always_inline void begin(u64 id, int cls, enum slot s, u16 metric, u16 isa, u32 sub,
				  u64 bytes, u64 addr)
{
	struct inflight v = { .ts = bpf_ktime_get_ns(), .bytes = bytes, .addr = addr,
			      .tgid = id >> 32, .sub = sub, .metric = metric, .isa = isa };
	u64 key = slot_key((u32)id, s);

	if (bpf_map_update_elem(inflight_of(cls), &key, &v, BPF_ANY))
		count_drop(metric);
}

/* Ends the thread's interval of kind s. A start of another process (the
 * thread ID was reused), older than max_inflight_ns, or (user faults) for
 * another address is stale: it is dropped, never taken as a latency. */
static __always_inline void end(u64 id, int cls, enum slot s, u64 addr)
{
	u64 key = slot_key((u32)id, s), now;
	void *map = inflight_of(cls);
	struct inflight *v = bpf_map_lookup_elem(map, &key);
	u32 tgid = id >> 32;

	if (!v)
		return;
	now = bpf_ktime_get_ns();
	if (v->tgid != tgid || v->addr != addr || now - v->ts > max_inflight_ns)
		count_drop(v->metric);
	else
		record(tgid, cls, v->metric, v->isa, v->sub, now - v->ts, v->bytes, false);
	bpf_map_delete_elem(map, &key);
}

/* ---- reclaim syscalls ---- */

static __always_inline int syscall_enter(u16 metric, u32 sub, u64 bytes)
{
	u64 id = bpf_get_current_pid_tgid();
	int cls = classify(id >> 32);

	if (cls != -1)
		begin(id, cls, S_SYSCALL, metric, 0, sub, bytes, 0);
	return 0;
}

static __always_inline int syscall_exit(void)
{
	u64 id = bpf_get_current_pid_tgid();
	int cls = classify(id >> 32);

	if (cls != -1)
		end(id, cls, S_SYSCALL, 0);
	return 0;
}

/* Handlers take the tracepoint's record, so tests can feed them recorded ones. */
static __always_inline int handle_madvise_enter(struct trace_event_raw_sys_enter *ctx)
{
	/* madvise(start, len, advice) */
	return syscall_enter(M_MADVISE, (u32)ctx->args[2], ctx->args[1]);
}

SEC("tp/syscalls/sys_enter_madvise")
int madvise_enter(struct trace_event_raw_sys_enter *ctx)
{
	return handle_madvise_enter(ctx);
}

SEC("tp/syscalls/sys_exit_madvise")
int madvise_exit(void *ctx)
{
	return syscall_exit();
}

static __always_inline int handle_fallocate_enter(struct trace_event_raw_sys_enter *ctx)
{
	/* fallocate(fd, mode, offset, len) */
	return syscall_enter(M_FALLOCATE, (u32)ctx->args[1], ctx->args[3]);
}

SEC("tp/syscalls/sys_enter_fallocate")
int fallocate_enter(struct trace_event_raw_sys_enter *ctx)
{
	return handle_fallocate_enter(ctx);
}

SEC("tp/syscalls/sys_exit_fallocate")
int fallocate_exit(void *ctx)
{
	return syscall_exit();
}

SEC("tp/syscalls/sys_enter_process_madvise")
int process_madvise_enter(struct trace_event_raw_sys_enter *ctx)
{
	/* process_madvise(pidfd, iovec, vlen, advice, flags): bytes are in the iovec */
	return syscall_enter(M_PROCESS_MADVISE, (u32)ctx->args[3], 0);
}

SEC("tp/syscalls/sys_exit_process_madvise")
int process_madvise_exit(void *ctx)
{
	return syscall_exit();
}

/* ---- user page faults ---- */

static __always_inline bool in_guest_ram(u32 tgid, u64 addr)
{
	unsigned int n = nr_guest_ram;

	if (!n)
		return false;
	for (unsigned int i = 0; i < MAX_RAM_RANGES && i < n; i++) {
		struct ram_range *r = &guest_ram[i];

		if (r->pid == tgid && addr >= r->start && addr < r->end)
			return true;
	}
	return false;
}

/* The struct was renamed from x86_exceptions to exceptions in 6.x; CO-RE picks
 * whichever this kernel has. */
struct trace_event_raw_x86_exceptions___old {
	unsigned long address;
} __attribute__((preserve_access_index));

static __always_inline int handle_user_fault(void *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	int slot = classify(tgid);
	bool guest;
	u64 addr;

	if (slot == -1)
		return 0;
	/* a direct context load where the type has today's name, no helper call */
	if (!nr_guest_ram && !fault_latency)
		addr = 0;
	else if (bpf_core_type_exists(struct trace_event_raw_exceptions))
		addr = ((struct trace_event_raw_exceptions *)ctx)->address;
	else
		addr = BPF_CORE_READ((struct trace_event_raw_x86_exceptions___old *)ctx, address);
	guest = in_guest_ram(tgid, addr);
	if (fault_latency) {
		begin(id, slot, S_USER_FAULT, M_USER_FAULT, 0, guest, 0, addr);
	} else if (slot >= 0) {
		u32 idx = (u32)slot * 2 + guest;
		u64 *count = bpf_map_lookup_elem(&fault_counts, &idx);

		if (count)
			(*count)++;
	} else {
		record(tgid, slot, M_USER_FAULT, 0, guest, 0, 0, true);
	}
	return 0;
}

SEC("tp/exceptions/page_fault_user")
int user_fault(void *ctx)
{
	return handle_user_fault(ctx);
}

/* A traced process that execs gets its new name (its first events may come
 * from the shell that forked it). */
SEC("tp/sched/sched_process_exec")
int renamed(void *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	char comm[16];

	if (!bpf_map_lookup_elem(&comms, &tgid))
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	bpf_map_update_elem(&comms, &tgid, comm, BPF_EXIST);
	return 0;
}

/* A return of handle_mm_fault: the end of the user fault begun at address,
 * unless the handler asks to be called again (VM_FAULT_RETRY). A kernel-mode
 * fault (no FAULT_FLAG_USER) or another address means the started fault
 * never reached its handler: that start is stale. */
static __always_inline int handle_fault_done(u64 address, u32 flags, u32 ret)
{
	u64 id = bpf_get_current_pid_tgid();
	int cls = classify(id >> 32);

	if (cls == -1)
		return 0;
	if (!(flags & bpf_core_enum_value(enum fault_flag, FAULT_FLAG_USER)))
		address = ~0ULL; /* never a user fault's address */
	else if (ret & bpf_core_enum_value(enum vm_fault_reason, VM_FAULT_RETRY))
		return 0;
	end(id, cls, S_USER_FAULT, address);
	return 0;
}

/* Load-time upgrade where fexit works: the fault's latency up to its handler's return. */
SEC("fexit/handle_mm_fault")
int BPF_PROG(user_fault_done, struct vm_area_struct *vma, unsigned long address,
	     unsigned int flags, struct pt_regs *regs, vm_fault_t ret)
{
	return handle_fault_done(address, flags, ret);
}

/* ---- KVM ---- */

#define PFERR_WRITE_MASK 2

static __always_inline int handle_kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	int cls = classify(id >> 32);
	u16 isa = KVM_ISA_VMX;

	if (cls == -1)
		return 0;
	if (bpf_core_field_exists(ctx->isa))
		isa = ctx->isa;
	begin(id, cls, S_KVM_EXIT, M_KVM_EXIT, isa, ctx->exit_reason, 0, 0);
	return 0;
}

SEC("tp/kvm/kvm_exit")
int kvm_exit(struct trace_event_raw_kvm_exit *ctx)
{
	return handle_kvm_exit(ctx);
}

static __always_inline int handle_kvm_page_fault(struct trace_event_raw_kvm_page_fault *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	int cls = classify(tgid);

	if (cls == -1)
		return 0;
	record(tgid, cls, M_KVM_FAULT_GPA, 0, 0, ctx->fault_address, 0, false);
	begin(id, cls, S_KVM_FAULT, M_KVM_PAGE_FAULT, 0,
	      (ctx->error_code & PFERR_WRITE_MASK) ? 1 : 0, 0, 0);
	return 0;
}

SEC("tp/kvm/kvm_page_fault")
int kvm_page_fault(struct trace_event_raw_kvm_page_fault *ctx)
{
	return handle_kvm_page_fault(ctx);
}

static __always_inline int handle_kvm_entry(void *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	int cls = classify(id >> 32);

	if (cls == -1)
		return 0;
	end(id, cls, S_KVM_FAULT, 0);
	end(id, cls, S_KVM_EXIT, 0);
	return 0;
}

SEC("tp/kvm/kvm_entry")
int kvm_entry(void *ctx)
{
	return handle_kvm_entry(ctx);
}

/* The VM whose guest RAM overlaps [start, end), or 0. */
static __always_inline u32 ram_owner(u64 start, u64 end)
{
	unsigned int n = nr_guest_ram;

	for (unsigned int i = 0; i < MAX_RAM_RANGES && i < n; i++) {
		struct ram_range *r = &guest_ram[i];

		if (start < r->end && end > r->start)
			return r->pid;
	}
	return 0;
}

static __always_inline int handle_kvm_unmap_hva_range(struct trace_event_raw_kvm_unmap_hva_range *ctx)
{
	u64 start = ctx->start, end = ctx->end, bytes = end - start;
	/* kswapd, khugepaged or KSM may unmap a VM's memory: credit the VM */
	u32 owner = ram_owner(start, end);
	int cls;

	if (!owner)
		owner = bpf_get_current_pid_tgid() >> 32;
	if ((cls = classify(owner)) == -1)
		return 0;
	record(owner, cls, M_KVM_UNMAP_HVA, 0, 0, bytes, bytes, false);
	return 0;
}

SEC("tp/kvm/kvm_unmap_hva_range")
int kvm_unmap_hva_range(struct trace_event_raw_kvm_unmap_hva_range *ctx)
{
	return handle_kvm_unmap_hva_range(ctx);
}

/* Attached by user space to every kvmmmu tracepoint; the attach cookie names it. */
SEC("tp")
int kvmmmu_event(void *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	int cls = classify(tgid);

	if (cls == -1)
		return 0;
	record(tgid, cls, M_KVMMMU, 0, (u32)bpf_get_attach_cookie(ctx), 0, 0, true);
	return 0;
}
