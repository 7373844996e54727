#include "hostprobes.h"
#include "common.h"
#include "hostcaps.h"
#include "hist.skel.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KVMMMU 32

struct host_probes {
	struct hist_bpf *skel;
	struct bpf_link *links[2 * P_MAX + 2]; /* the probes' programs, fexit, exec */
	int nlinks;
	struct bpf_link *kvmmmu_links[MAX_KVMMMU];
	char kvmmmu_names[MAX_KVMMMU][64];
	unsigned nr_kvmmmu;
	int ncpus;
	int pids[MAX_PIDS]; /* priority processes, by slot in fault_counts */
	char comms[MAX_PIDS][16];
	int npids;
	bool fault_latency;
	struct probe_status status[P_MAX];
	/* histograms and names of exited processes, moved out of the kernel */
	struct hist_entry *retired;
	int nretired, retired_cap;
	struct retired_comm {
		unsigned pid;
		char comm[16];
	} *retired_comms;
	int nretired_comms, retired_comms_cap;
};

/* Each probe's programs and the tracepoints they attach to (kvmmmu: every
 * event of the category, attached by cookie). */
static const struct {
	enum probe_id id;
	const char *name;
	struct tracepoint_ref tps[2];
	const char *progs[2];
} probe_table[] = {
	{ P_MADVISE, "madvise",
	  { { "syscalls", "sys_enter_madvise" }, { "syscalls", "sys_exit_madvise" } },
	  { "madvise_enter", "madvise_exit" } },
	{ P_FALLOCATE, "fallocate",
	  { { "syscalls", "sys_enter_fallocate" }, { "syscalls", "sys_exit_fallocate" } },
	  { "fallocate_enter", "fallocate_exit" } },
	{ P_PROCESS_MADVISE, "process_madvise",
	  { { "syscalls", "sys_enter_process_madvise" },
	    { "syscalls", "sys_exit_process_madvise" } },
	  { "process_madvise_enter", "process_madvise_exit" } },
	{ P_USER_FAULT, "user_fault", { { "exceptions", "page_fault_user" } }, { "user_fault" } },
	{ P_KVM_PAGE_FAULT, "kvm_page_fault", { { "kvm", "kvm_page_fault" } },
	  { "kvm_page_fault" } },
	{ P_KVM_EXIT, "kvm_exit", { { "kvm", "kvm_exit" } }, { "kvm_exit" } },
	{ P_KVM_ENTRY, "kvm_entry", { { "kvm", "kvm_entry" } }, { "kvm_entry" } },
	{ P_KVM_UNMAP_HVA, "kvm_unmap_hva_range", { { "kvm", "kvm_unmap_hva_range" } },
	  { "kvm_unmap_hva_range" } },
	{ P_KVMMMU, "kvmmmu", { { "kvmmmu", NULL } }, { "kvmmmu_event" } },
};

int host_probes_tracepoints(struct tracepoint_ref *out, int max)
{
	int n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(probe_table); i++)
		for (int t = 0; t < 2 && probe_table[i].tps[t].event && n < max; t++)
			out[n++] = probe_table[i].tps[t];
	return n;
}

static void set_status(struct host_probes *hp, enum probe_id id, const char *name, bool ok,
		       const char *reason)
{
	hp->status[id].name = name;
	hp->status[id].attached = ok;
	snprintf(hp->status[id].reason, sizeof(hp->status[id].reason), "%s", reason);
}

static void list_kvmmmu(struct host_probes *hp)
{
	char path[512];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/events/kvmmmu", tracefs_dir());
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)) && hp->nr_kvmmmu < MAX_KVMMMU) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(hp->kvmmmu_names[hp->nr_kvmmmu++], sizeof(hp->kvmmmu_names[0]), "%.63s",
			 e->d_name);
	}
	closedir(d);
}

/* Disables the programs of probes whose tracepoints this kernel lacks, so the
 * rest still load; records why. */
static void select_programs(struct host_probes *hp)
{
	struct bpf_object *obj = hp->skel->obj;
	struct feature f;

	for (size_t i = 0; i < ARRAY_SIZE(probe_table); i++) {
		const struct tracepoint_ref *tp = &probe_table[i].tps[0];
		bool present = tp->event ? tracepoint_exists(tp->category, tp->event) :
					   hp->nr_kvmmmu > 0;

		set_status(hp, probe_table[i].id, probe_table[i].name, present,
			   present ? "" : "tracepoint not available in this kernel");
		for (int p = 0; p < 2 && probe_table[i].progs[p]; p++)
			bpf_program__set_autoload(
				bpf_object__find_program_by_name(obj, probe_table[i].progs[p]),
				present);
	}
	/* kvmmmu events are told apart by attach cookie */
	if (hp->status[P_KVMMMU].attached && !feature_attach_cookie(&f)) {
		set_status(hp, P_KVMMMU, "kvmmmu", false, f.detail);
		bpf_program__set_autoload(hp->skel->progs.kvmmmu_event, false);
	}
	bpf_program__set_autoload(hp->skel->progs.renamed,
				  tracepoint_exists("sched", "sched_process_exec"));
	hp->fault_latency = hp->status[P_USER_FAULT].attached &&
			    feature_fentry("handle_mm_fault", &f);
	bpf_program__set_autoload(hp->skel->progs.user_fault_done, hp->fault_latency);
	hp->skel->rodata->fault_latency = hp->fault_latency;
}

static bool any_attachable(const struct host_probes *hp)
{
	for (int i = 0; i < P_MAX; i++)
		if (hp->status[i].attached)
			return true;
	return false;
}

static void attach_all(struct host_probes *hp)
{
	for (size_t i = 0; i < ARRAY_SIZE(probe_table); i++) {
		struct probe_status *st = &hp->status[probe_table[i].id];

		if (!st->attached || probe_table[i].id == P_KVMMMU)
			continue;
		for (int p = 0; p < 2 && probe_table[i].progs[p]; p++) {
			struct bpf_program *prog =
				bpf_object__find_program_by_name(hp->skel->obj, probe_table[i].progs[p]);

			struct bpf_link *link = bpf_program__attach(prog);

			if (!link) {
				set_status(hp, probe_table[i].id, probe_table[i].name, false,
					   strerror(errno));
				break;
			}
			hp->links[hp->nlinks++] = link;
		}
	}
	if (bpf_program__autoload(hp->skel->progs.renamed)) {
		struct bpf_link *link = bpf_program__attach(hp->skel->progs.renamed);

		if (link) /* without it, a process is named as it was when first seen */
			hp->links[hp->nlinks++] = link;
	}
	if (hp->fault_latency) {
		struct bpf_link *link = bpf_program__attach(hp->skel->progs.user_fault_done);

		if (link)
			hp->links[hp->nlinks++] = link;
		else /* the fault handler already waits for fexit: say faults are lost */
			set_status(hp, P_USER_FAULT, "user_fault", false, strerror(errno));
	}

	for (unsigned k = 0; k < hp->nr_kvmmmu; k++) {
		LIBBPF_OPTS(bpf_tracepoint_opts, opts, .bpf_cookie = k);

		hp->kvmmmu_links[k] = bpf_program__attach_tracepoint_opts(
			hp->skel->progs.kvmmmu_event, "kvmmmu", hp->kvmmmu_names[k], &opts);
		if (!hp->kvmmmu_links[k])
			set_status(hp, P_KVMMMU, "kvmmmu", false, strerror(errno));
	}
}

/* Before attach only: the programs read the table without synchronisation. */
static void set_ram(struct host_probes *hp, const struct ram_range *ram, int nram)
{
	if (nram > MAX_RAM_RANGES) {
		ht_warn("only the first %d of %d guest RAM ranges are classified", MAX_RAM_RANGES,
			nram);
		nram = MAX_RAM_RANGES;
	}
	hp->skel->bss->nr_guest_ram = 0;
	if (nram > 0)
		memcpy(hp->skel->bss->guest_ram, ram, nram * sizeof(*ram));
	hp->skel->bss->nr_guest_ram = nram;
}

int host_probes_start(struct host_probes **out, const int *pids, int npids, bool others,
		      const struct ram_range *ram, int nram)
{
	struct host_probes *hp;
	int err;

	if (npids > MAX_PIDS) {
		ht_err("at most %d processes can be traced at once", MAX_PIDS);
		return -E2BIG;
	}
	if ((err = ensure_tracefs()))
		return err;
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return -ENOMEM;
	hp->ncpus = libbpf_num_possible_cpus();
	hp->skel = hist_bpf__open();
	if (!hp->skel) {
		err = -errno;
		ht_err("cannot open the host BPF programs: %s", strerror(errno));
		goto fail;
	}
	hp->skel->rodata->nr_pids = npids;
	hp->skel->rodata->trace_others = others || !npids;
	for (int i = 0; i < npids && i < INLINE_PIDS; i++)
		hp->skel->rodata->inline_pids[i] = pids[i];
	list_kvmmmu(hp);
	select_programs(hp);
	if (!any_attachable(hp)) {
		ht_err("none of the tracepoints hatrace hist uses exists under %s/events",
		       tracefs_dir());
		err = -ENOENT;
		goto fail;
	}
	err = hist_bpf__load(hp->skel);
	if (err) {
		ht_err("cannot load the host BPF programs: %s (run with -v for the verifier log)",
		       strerror(-err));
		goto fail;
	}
	for (int i = 0; i < npids; i++) {
		__u32 pid = pids[i], slot = i;

		bpf_map__update_elem(hp->skel->maps.pids, &pid, sizeof(pid), &slot, sizeof(slot), 0);
		read_comm(pids[i], hp->comms[hp->npids], sizeof(hp->comms[0]));
		hp->pids[hp->npids++] = pids[i];
	}
	set_ram(hp, ram, nram);
	attach_all(hp);
	*out = hp;
	return 0;
fail:
	host_probes_stop(hp);
	return err;
}


/* Sum over CPUs of fault_counts[idx]. */
static uint64_t read_fault_count(struct host_probes *hp, __u32 idx)
{
	uint64_t vals[hp->ncpus], sum = 0;

	if (bpf_map__lookup_elem(hp->skel->maps.fault_counts, &idx, sizeof(idx), vals, sizeof(vals),
				 0))
		return 0;
	for (int c = 0; c < hp->ncpus; c++)
		sum += vals[c];
	return sum;
}

/* Folds the per-slot user fault counters into M_USER_FAULT entries. */
static int add_fault_counts(struct host_probes *hp, struct hist_entry *entries, int n)
{
	for (int slot = 0; slot < hp->npids; slot++)
		for (unsigned guest = 0; guest < 2; guest++) {
			uint64_t count = read_fault_count(hp, slot * 2 + guest);

			if (!count)
				continue;
			memset(&entries[n], 0, sizeof(entries[0]));
			entries[n].key = (struct hist_key){ .pid = hp->pids[slot],
							    .metric = M_USER_FAULT, .sub = guest };
			entries[n++].val.count = count;
		}
	return n;
}

/* Appends every entry of a kernel map; returns the new count. */
static int read_map(struct bpf_map *map, struct hist_entry *entries, int n, int cap)
{
	struct hist_key key, next, *prev = NULL;

	while (n < cap && !bpf_map__get_next_key(map, prev, &next, sizeof(next))) {
		key = next;
		prev = &key;
		if (bpf_map__lookup_elem(map, &key, sizeof(key), &entries[n].val,
					 sizeof(entries[n].val), 0))
			continue;
		entries[n++].key = key;
	}
	return n;
}

int hist_entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct hist_entry *)a)->key, &((const struct hist_entry *)b)->key,
		      sizeof(struct hist_key));
}

static void hist_add(struct hist *to, const struct hist *from)
{
	for (int s = 0; s < HIST_SLOTS; s++)
		to->slots[s] += from->slots[s];
	to->count += from->count;
	to->sum += from->sum;
	to->bytes += from->bytes;
}

int host_probes_read(struct host_probes *hp, struct hist_entry **out)
{
	int cap = 2 * MAX_HIST_ENTRIES + hp->nretired + 2 * hp->npids, n = 0, merged = 0;
	struct hist_entry *entries = calloc(cap, sizeof(*entries));

	if (!entries)
		return -ENOMEM;
	n = read_map(hp->skel->maps.hists, entries, n, MAX_HIST_ENTRIES);
	n = read_map(hp->skel->maps.other_hists, entries, n, 2 * MAX_HIST_ENTRIES);
	memcpy(entries + n, hp->retired, hp->nretired * sizeof(*entries));
	n = add_fault_counts(hp, entries, n + hp->nretired);
	/* sorted, one entry per key (a PID reused after its entries retired) */
	qsort(entries, n, sizeof(*entries), hist_entry_cmp);
	for (int i = 0; i < n; i++) {
		if (merged && !hist_entry_cmp(&entries[merged - 1], &entries[i]))
			hist_add(&entries[merged - 1].val, &entries[i].val);
		else
			entries[merged++] = entries[i];
	}
	*out = entries;
	return merged;
}

static int grow(void **arr, int *cap, int need, size_t size)
{
	void *bigger;

	if (need <= *cap)
		return 0;
	bigger = realloc(*arr, (size_t)(*cap = need * 2) * size);
	if (!bigger)
		return -ENOMEM;
	*arr = bigger;
	return 0;
}

static void retire_comm(struct host_probes *hp, unsigned pid)
{
	struct retired_comm *rc;

	if (grow((void **)&hp->retired_comms, &hp->retired_comms_cap, hp->nretired_comms + 1,
		 sizeof(*rc)))
		return;
	rc = &hp->retired_comms[hp->nretired_comms];
	if (bpf_map__lookup_elem(hp->skel->maps.comms, &pid, sizeof(pid), rc->comm,
				 sizeof(rc->comm), 0))
		return;
	rc->pid = pid;
	hp->nretired_comms++;
	bpf_map__delete_elem(hp->skel->maps.comms, &pid, sizeof(pid), 0);
}

int host_probes_sweep(struct host_probes *hp)
{
	struct bpf_map *map = hp->skel->maps.other_hists;
	struct hist_key kept, key;
	bool any_kept = false;
	unsigned last_dead = 0;
	struct hist val;

	/* the walk resumes after the last key kept, so deleting is safe */
	while (!bpf_map__get_next_key(map, any_kept ? &kept : NULL, &key, sizeof(key))) {
		if (pid_alive(key.pid) ||
		    bpf_map__lookup_elem(map, &key, sizeof(key), &val, sizeof(val), 0)) {
			kept = key;
			any_kept = true;
			continue;
		}
		if (grow((void **)&hp->retired, &hp->retired_cap, hp->nretired + 1,
			 sizeof(*hp->retired)))
			return -ENOMEM;
		hp->retired[hp->nretired++] = (struct hist_entry){ .key = key, .val = val };
		bpf_map__delete_elem(map, &key, sizeof(key), 0);
		if (key.pid != last_dead)
			retire_comm(hp, last_dead = key.pid);
	}
	return 0;
}

void host_probes_forget_retired(struct host_probes *hp)
{
	hp->nretired = 0;
	hp->nretired_comms = 0;
}

/* Which probe's events each metric counts. */
static const int probe_of_metric[M_MAX] = {
	[M_MADVISE] = P_MADVISE,         [M_FALLOCATE] = P_FALLOCATE,
	[M_PROCESS_MADVISE] = P_PROCESS_MADVISE, [M_USER_FAULT] = P_USER_FAULT,
	[M_KVM_PAGE_FAULT] = -1,         [M_KVM_EXIT] = P_KVM_EXIT,
	[M_KVM_FAULT_GPA] = P_KVM_PAGE_FAULT, [M_KVM_UNMAP_HVA] = P_KVM_UNMAP_HVA,
	[M_KVMMMU] = P_KVMMMU,
};

int host_probes_status(struct host_probes *hp, const struct probe_status **st)
{
	struct hist_entry *entries;
	int n = host_probes_read(hp, &entries);

	for (int p = 0; p < P_MAX; p++)
		hp->status[p].events = 0;
	for (unsigned m = 0; m < M_MAX; m++) /* dropped events were still seen */
		if (probe_of_metric[m] >= 0)
			hp->status[probe_of_metric[m]].events += hp->skel->bss->drops[m];
	for (int i = 0; i < n; i++) {
		unsigned m = entries[i].key.metric;

		if (m < M_MAX && probe_of_metric[m] >= 0)
			hp->status[probe_of_metric[m]].events += entries[i].val.count;
		if (m == M_KVM_EXIT) /* every completed exit is one entry */
			hp->status[P_KVM_ENTRY].events += entries[i].val.count;
	}
	if (n >= 0)
		free(entries);
	*st = hp->status;
	return P_MAX;
}

uint64_t host_probes_drops(struct host_probes *hp)
{
	uint64_t sum = 0;

	for (unsigned m = 0; m < M_MAX; m++)
		sum += hp->skel->bss->drops[m];
	return sum;
}

void host_probes_comm(struct host_probes *hp, unsigned pid, char *buf, size_t len)
{
	char comm[16];

	for (int i = 0; i < hp->npids; i++)
		if ((unsigned)hp->pids[i] == pid && hp->comms[i][0]) {
			snprintf(buf, len, "%s", hp->comms[i]);
			return;
		}
	for (int i = 0; i < hp->nretired_comms; i++)
		if (hp->retired_comms[i].pid == pid) {
			snprintf(buf, len, "%.16s", hp->retired_comms[i].comm);
			return;
		}
	if (!bpf_map__lookup_elem(hp->skel->maps.comms, &pid, sizeof(pid), comm, sizeof(comm), 0))
		snprintf(buf, len, "%.16s", comm);
	else if (read_comm(pid, buf, len))
		snprintf(buf, len, "?");
}

const char *host_probes_kvmmmu_name(struct host_probes *hp, unsigned idx)
{
	return idx < hp->nr_kvmmmu ? hp->kvmmmu_names[idx] : "?";
}

bool host_probes_fault_latency(struct host_probes *hp)
{
	return hp->fault_latency;
}

void host_probes_stop(struct host_probes *hp)
{
	if (!hp)
		return;
	while (hp->nlinks)
		bpf_link__destroy(hp->links[--hp->nlinks]);
	for (unsigned k = 0; k < hp->nr_kvmmmu; k++)
		bpf_link__destroy(hp->kvmmmu_links[k]);
	hist_bpf__destroy(hp->skel);
	free(hp->retired);
	free(hp->retired_comms);
	free(hp);
}
