/* The host/guest breakdown of a phase: the QEMU process's reclaim syscalls,
 * discards and faults (host BPF), and the guest agent's trace counters. */
#include "agent.h"
#include "hostprobes.h"
#include "inflate.h"
#include "metric_names.h"

#include <stdlib.h>
#include <string.h>

const char *const host_field_names[HF_NR] = {
	[HF_MADVISE_N] = "madvise_n",
	[HF_MADVISE_NS] = "madvise_ns",
	[HF_FALLOCATE_N] = "fallocate_n",
	[HF_FALLOCATE_NS] = "fallocate_ns",
	[HF_DISCARD_BYTES] = "discard_bytes",
	[HF_RAM_FAULTS] = "ram_faults",
	[HF_KVM_EXITS] = "kvm_exits",
	[HF_KVM_PAGE_FAULTS] = "kvm_page_faults",
};

static bool discards(const struct hist_key *k)
{
	if (k->metric == M_MADVISE || k->metric == M_PROCESS_MADVISE)
		return k->sub == 4 /* DONTNEED */ || k->sub == 8 /* FREE */ ||
		       k->sub == 9 /* REMOVE */;
	return k->metric == M_FALLOCATE && (k->sub & 0x02) /* PUNCH_HOLE */;
}

int host_read(struct run *r, struct host_totals *t)
{
	struct hist_entry *e;
	int n;

	memset(t, 0, sizeof(*t));
	if (!r->host_ok)
		return 0;
	n = host_probes_read(r->hp, &e);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		const struct hist_key *k = &e[i].key;
		const struct hist *h = &e[i].val;

		if ((int)k->pid != r->vm->pid)
			continue;
		switch (k->metric) {
		case M_MADVISE:
		case M_PROCESS_MADVISE:
			t->v[HF_MADVISE_N] += h->count;
			t->v[HF_MADVISE_NS] += h->sum;
			break;
		case M_FALLOCATE:
			t->v[HF_FALLOCATE_N] += h->count;
			t->v[HF_FALLOCATE_NS] += h->sum;
			break;
		case M_USER_FAULT:
			if (k->sub == 1)
				t->v[HF_RAM_FAULTS] += h->count;
			break;
		case M_KVM_EXIT:
			t->v[HF_KVM_EXITS] += h->count;
			break;
		case M_KVM_PAGE_FAULT:
			t->v[HF_KVM_PAGE_FAULTS] += h->count;
			break;
		}
		if (discards(k))
			t->v[HF_DISCARD_BYTES] += h->bytes;
	}
	free(e);
	return 0;
}

void host_delta(const struct host_totals *a, const struct host_totals *b, struct host_totals *d)
{
	for (int f = 0; f < HF_NR; f++)
		d->v[f] = b->v[f] - a->v[f];
}

/* Guest trace counters (cumulative), or nothing when the guest does not trace. */
int guest_read(struct run *r, json_t **out)
{
	*out = NULL;
	return r->guest_trace_ok ? agent_trace_read(r->vm->agent, out) : 0;
}
