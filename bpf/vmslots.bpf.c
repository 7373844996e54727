// SPDX-License-Identifier: GPL-2.0
/* Reads the memory slots of KVM VMs without ptrace: iterate the task files,
 * pick the kvm-vm fds user space found in /proc, and walk kvm->memslots[0]. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "vmslots.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VMSLOTS_MAX_VMS);
	__type(key, u64);
	__type(value, u8);
} vm_files SEC(".maps");

#define ID_HASH_BUCKETS 128

/* Slots found for the current file; per CPU since iterators may run in parallel. */
struct scratch {
	struct vmslot_rec recs[VMSLOTS_MAX_SLOTS];
	unsigned int n;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct walk {
	struct kvm_memslots *slots;
	struct scratch *out;
	struct vmslot_rec tmpl;
	struct hlist_node *node; /* next slot of the current bucket's chain */
	u32 bucket;		 /* next bucket */
	int idx;
	bool done;
};

/* bpf_loop callback (5.17, commit e6f2dd0f8067): one step of the walk over
 * every id_hash chain, whatever its length: a slot, or the next bucket. */
static long walk_step(u32 i, struct walk *w)
{
	/* locals: CO-RE must relocate kernel types only */
	struct kvm_memslots *slots = w->slots;
	u32 bucket = w->bucket & (ID_HASH_BUCKETS - 1);
	struct hlist_node *node = w->node;
	struct kvm_memory_slot *slot;
	unsigned int n = w->out->n;
	struct vmslot_rec *r;

	if (!node) {
		if (w->bucket >= ID_HASH_BUCKETS) {
			w->done = true;
			return 1;
		}
		w->node = BPF_CORE_READ(slots, id_hash[bucket].first);
		w->bucket++;
		return 0;
	}
	if (n >= VMSLOTS_MAX_SLOTS)
		return 1; /* more slots than fit: reported to user space */
	slot = (void *)node - bpf_core_field_offset(struct kvm_memory_slot, id_node) -
	       w->idx * sizeof(struct hlist_node);
	r = &w->out->recs[n];
	*r = w->tmpl;
	r->gpa = BPF_CORE_READ(slot, base_gfn) << 12;
	r->size = BPF_CORE_READ(slot, npages) << 12;
	r->hva = BPF_CORE_READ(slot, userspace_addr);
	r->flags = BPF_CORE_READ(slot, flags);
	r->slot_id = (int)BPF_CORE_READ(slot, as_id) << 16 | BPF_CORE_READ(slot, id);
	w->out->n = n + 1;
	w->node = BPF_CORE_READ(node, next);
	return 0;
}

SEC("iter/task_file")
int walk_memslots(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct kvm_memslots *slots;
	struct walk w = {};
	struct kvm *kvm;
	u32 zero = 0, n;
	u64 key;

	if (!task || !file || task->pid != task->tgid)
		return 0;
	key = (u64)task->tgid << 32 | ctx->fd;
	if (!bpf_map_lookup_elem(&vm_files, &key))
		return 0;
	/* Since 5.17 (commit a54d806688fe) memslots live in hash lists and trees. */
	if (!bpf_core_field_exists(struct kvm_memslots, id_hash))
		return 0;
	w.out = bpf_map_lookup_elem(&scratch, &zero);
	if (!w.out)
		return 0;
	kvm = BPF_CORE_READ(file, private_data);
	slots = BPF_CORE_READ(kvm, memslots[0]);
	if (!slots)
		return 0;
	w.slots = slots;
	w.idx = BPF_CORE_READ(slots, node_idx) & 1;
	w.tmpl.pid = task->tgid;
	w.tmpl.fd = ctx->fd;
	w.out->n = 0;
	/* a step per bucket and per slot, and one to see the end */
	bpf_loop(ID_HASH_BUCKETS + VMSLOTS_MAX_SLOTS + 1, walk_step, &w, 0);
	n = w.out->n;
	if (n > VMSLOTS_MAX_SLOTS)
		n = VMSLOTS_MAX_SLOTS;
	bpf_seq_write(seq, w.out->recs, n * sizeof(w.out->recs[0]));
	if (!w.done) {
		w.tmpl.slot_id = VMSLOT_MORE;
		bpf_seq_write(seq, &w.tmpl, sizeof(w.tmpl));
	}
	return 0;
}
