/* hatrace hist: live log2 latency histograms of reclaim syscalls, user faults,
 * KVM faults, exits and MMU activity, per process. */
#include "cmds.h"
#include "common.h"
#include "hostprobes.h"
#include "log2hist.h"
#include "metric_names.h"
#include "qemu_usdt.h"
#include "vmfind.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hist_opts {
	int pids[MAX_PIDS];
	int npids;
	const char *qmp_sockets[MAX_PIDS]; /* TCG QEMUs: guest RAM from QMP */
	int nqmp;
	struct vm_info vms[MAX_PIDS]; /* from --vm, and any VM among -p */
	int nvms;
	enum out_fmt fmt;
	uint64_t duration_ns, interval_s, count;
	bool timestamp;
};

/* A traced QEMU of hatrace's build: its USDT histograms, and the snapshot
 * the last interval printed. */
struct usdt_qemu {
	int pid;
	struct qemu_usdt *u;
	char why[PATH_MAX + 128]; /* not attached: why */
	unsigned long long prev[QEMU_HIST_NR][QEMU_USDT_HIST_SLOTS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace hist [-p PID]... [--vm NAME]... [--qmp SOCKET]... [-o text|json]\n"
		"                    [-d SECONDS] [-T] [interval [count]]\n\n"
		"Live log2 histograms of what memory reclamation costs a process or VM:\n"
		"madvise/fallocate/process_madvise latency by advice or mode, user page faults\n"
		"(those in guest RAM apart), KVM page faults (latency and GPA), KVM exits by\n"
		"reason with exit-to-entry latency, kvm_unmap_hva_range sizes and kvmmmu events.\n"
		"A traced QEMU built by hatrace (USDT probes) adds virtio-mem plug/unplug request\n"
		"latency, balloon pages per request and discard sizes; the discard probe fires\n"
		"once per discarded 4 KiB balloon page, which slows such a balloon.\n\n"
		"  -p, --pid PID      trace only this process (repeatable; default: all)\n"
		"      --vm NAME      trace this VM, by name or PID (repeatable)\n"
		"      --qmp SOCKET   a TCG QEMU's QMP socket, to learn its guest RAM (KVM VMs\n"
		"                     need none: their memslots are read from the kernel)\n"
		"  -o, --output FMT   text (default) or json (one object per line)\n"
		"  -d, --duration S   stop after S seconds\n"
		"  -T, --timestamp    print a timestamp with each interval\n"
		"  interval [count]   print (and reset) every interval seconds, count times\n\n"
		"Without an interval, histograms are printed once at the end (-d or Ctrl-C).\n"
		"JSON lines: {\"type\":\"start\",\"time_ns\":..} first; with an interval, each\n"
		"one begins with {\"type\":\"interval\",\"time_ns\":..}; then \"hist\" and \"count\"\n"
		"lines, one \"probe\" line per probe, and {\"type\":\"summary\",\"drops\":N} last.\n"
		"Examples:\n"
		"  hatrace hist --vm guest0 1          # every second, for one VM\n"
		"  hatrace hist -p 1234 -o json 5 3    # three 5-second JSON snapshots\n");
}

static int add_pid(struct hist_opts *o, int pid)
{
	for (int i = 0; i < o->npids; i++)
		if (o->pids[i] == pid)
			return 0;
	if (o->npids == MAX_PIDS) {
		ht_err("at most %d processes can be traced at once", MAX_PIDS);
		return -E2BIG;
	}
	o->pids[o->npids++] = pid;
	return 0;
}

static int parse_args(int argc, char **argv, struct hist_opts *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },  { "vm", required_argument, NULL, 'V' },
		{ "qmp", required_argument, NULL, 'Q' },
		{ "output", required_argument, NULL, 'o' }, { "duration", required_argument, NULL, 'd' },
		{ "timestamp", no_argument, NULL, 'T' },  { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },       {},
	};
	int c, pid;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:o:d:Tvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, &pid) || add_pid(o, pid))
				return -EINVAL;
			break;
		case 'V':
			if (o->nvms == MAX_PIDS || vm_lookup(optarg, &o->vms[o->nvms]))
				return -EINVAL;
			if (add_pid(o, o->vms[o->nvms++].pid))
				return -EINVAL;
			break;
		case 'o':
			if (parse_out_fmt(optarg, 1 << OUT_TEXT | 1 << OUT_JSON, &o->fmt))
				return -EINVAL;
			break;
		case 'd':
			if (parse_seconds_ns("-d", optarg, 1000000, 86400ULL * 1000000000, &o->duration_ns))
				return -EINVAL;
			break;
		case 'T':
			o->timestamp = true;
			break;
		case 'Q':
			if (o->nqmp == MAX_PIDS) {
				ht_err("--qmp: at most %d sockets", MAX_PIDS);
				return -EINVAL;
			}
			o->qmp_sockets[o->nqmp++] = optarg;
			break;
		default:
			if (c == '?' && optopt >= '0' && optopt <= '9') {
				ht_err("interval: negative values are not allowed ('-%c...')", optopt);
				return -EINVAL;
			}
			if (common_option(c, argv, usage))
				return -EINVAL;
		}
	}
	return parse_interval_count(argc, argv, optind, &o->interval_s, &o->count);
}

/* cur -= prev, entry by entry; both sorted by key. */
static void subtract(struct hist_entry *cur, int ncur, const struct hist_entry *prev, int nprev)
{
	for (int i = 0, j = 0; i < ncur && j < nprev;) {
		int d = hist_entry_cmp(&cur[i], &prev[j]);

		if (d < 0) {
			i++;
		} else if (d > 0) {
			j++;
		} else {
			for (int s = 0; s < HIST_SLOTS; s++)
				cur[i].val.slots[s] -= prev[j].val.slots[s];
			cur[i].val.count -= prev[j].val.count;
			cur[i].val.sum -= prev[j].val.sum;
			cur[i].val.bytes -= prev[j].val.bytes;
			i++, j++;
		}
	}
}

static const char *vm_name_of(const struct hist_opts *o, int pid)
{
	for (int i = 0; i < o->nvms; i++)
		if (o->vms[i].pid == pid)
			return o->vms[i].name;
	return NULL;
}

static void print_text_entry(struct host_probes *hp, const struct hist_opts *o,
			     const struct hist_entry *e, unsigned *last_pid)
{
	const char *unit = metric_unit(e->key.metric, host_probes_fault_latency(hp));
	const char *vm = vm_name_of(o, e->key.pid);
	char name[128], comm[16] = "?";

	if (e->key.pid != *last_pid) {
		host_probes_comm(hp, e->key.pid, comm, sizeof(comm));
		printf("\npid %u (%s)%s%s\n", e->key.pid, comm, vm ? " vm " : "", vm ? vm : "");
		*last_pid = e->key.pid;
	}
	hist_name(&e->key, host_probes_kvmmmu_name(hp, e->key.sub), name, sizeof(name));
	if (!strcmp(unit, "events")) {
		printf("%-40s %llu events\n", name, e->val.count);
		return;
	}
	printf("%s: count %llu", name, e->val.count);
	if (!strcmp(unit, "ns"))
		printf(", avg %.1f us", e->val.count ? e->val.sum / 1e3 / e->val.count : 0.0);
	if (e->val.bytes)
		printf(", %.1f MiB named", e->val.bytes / 1048576.0);
	putchar('\n');
	print_log2_hist(stdout, e->val.slots, HIST_SLOTS, !strcmp(unit, "ns") ? "nsecs" : unit);
}

static json_t *entry_json(struct host_probes *hp, const struct hist_opts *o,
			  const struct hist_entry *e)
{
	const char *unit = metric_unit(e->key.metric, host_probes_fault_latency(hp));
	const char *vm = vm_name_of(o, e->key.pid);
	char name[128], comm[16];
	json_t *doc;

	hist_name(&e->key, host_probes_kvmmmu_name(hp, e->key.sub), name, sizeof(name));
	host_probes_comm(hp, e->key.pid, comm, sizeof(comm));
	doc = json_pack("{s:s,s:s,s:i,s:o,s:o,s:I}", "type", "hist", "name", name, "pid",
			(int)e->key.pid, "comm", json_string_lossy(comm), "vm", json_string_lossy(vm),
			"count", (json_int_t)e->val.count);
	if (!strcmp(unit, "events")) {
		json_object_set_new(doc, "type", json_string("count"));
		return doc;
	}
	json_object_set_new(doc, "unit", json_string(unit));
	json_object_set_new(doc, "sum", json_integer(e->val.sum));
	json_object_set_new(doc, "bytes", json_integer(e->val.bytes));
	json_object_set_new(doc, "buckets", log2_hist_json(e->val.slots, HIST_SLOTS));
	return doc;
}

/* The traced QEMUs that run hatrace's build get its USDT programs, per-page
 * probes included (discard sizes); others are listed with the reason. */
static int usdt_attach_all(const int *pids, int npids, struct usdt_qemu **out)
{
	struct usdt_qemu *q = calloc(npids ? npids : 1, sizeof(*q));
	int n = 0;

	*out = q;
	if (!q)
		return -ENOMEM;
	for (int i = 0; i < npids; i++) {
		char link[64], exe[PATH_MAX];
		const char *base;
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/%d/exe", pids[i]);
		len = readlink(link, exe, sizeof(exe) - 1);
		if (len < 0)
			continue;
		exe[len] = 0;
		base = strrchr(exe, '/');
		if (strncmp(base ? base + 1 : exe, "qemu-system-", 12))
			continue; /* not a QEMU */
		q[n].pid = pids[i];
		if (!qemu_usdt_unavailable(exe, q[n].why, sizeof(q[n].why)) &&
		    !(q[n].u = qemu_usdt_attach(pids[i], exe, QEMU_USDT_PER_PAGE | QEMU_USDT_DISCARDS,
						     NULL)))
			snprintf(q[n].why, sizeof(q[n].why), "attaching the USDT programs failed");
		n++;
	}
	return n;
}

/* One QEMU's USDT histograms since the last interval. */
static void print_usdt(const struct hist_opts *o, struct usdt_qemu *q)
{
	for (int h = 0; q->u && h < QEMU_HIST_NR; h++) {
		unsigned long long cur[QEMU_USDT_HIST_SLOTS], count = 0;
		const char *unit, *name = qemu_usdt_hist_name(h, &unit);
		const char *vm = vm_name_of(o, q->pid);

		qemu_usdt_hist(q->u, h, cur);
		for (int i = 0; i < QEMU_USDT_HIST_SLOTS; i++) {
			unsigned long long c = cur[i];

			cur[i] -= q->prev[h][i];
			q->prev[h][i] = c;
			count += cur[i];
		}
		if (!count)
			continue;
		if (o->fmt == OUT_JSON) {
			json_println(stdout, json_pack("{s:s,s:s,s:i,s:o,s:I,s:s,s:o}", "type", "hist",
						       "name", name, "pid", q->pid, "vm",
						       json_string_lossy(vm), "count", (json_int_t)count,
						       "unit", unit, "buckets",
						       log2_hist_json(cur, QEMU_USDT_HIST_SLOTS)));
			continue;
		}
		printf("\npid %d%s%s %s: count %llu\n", q->pid, vm ? " vm " : "", vm ? vm : "", name,
		       count);
		print_log2_hist(stdout, cur, QEMU_USDT_HIST_SLOTS, !strcmp(unit, "ns") ? "nsecs" : unit);
	}
}

static void print_usdt_probes(const struct usdt_qemu *q, int n, enum out_fmt fmt)
{
	for (int i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "qemu_usdt:%d", q[i].pid);
		if (fmt == OUT_JSON)
			json_println(stdout, json_pack("{s:s,s:s,s:b,s:s?}", "type", "probe", "name", name,
						       "attached", q[i].u != NULL, "reason",
						       q[i].u ? NULL : q[i].why));
		else if (q[i].u)
			printf("  %-20s attached\n", name);
		else
			printf("  %-20s not attached: %s\n", name, q[i].why);
	}
}

static void print_probes(struct host_probes *hp, enum out_fmt fmt)
{
	const struct probe_status *st;
	int n = host_probes_status(hp, &st);

	if (fmt == OUT_TEXT)
		printf("\nprobes:\n");
	for (int i = 0; i < n; i++) {
		if (fmt == OUT_JSON) {
			json_println(stdout, json_pack("{s:s,s:s,s:b,s:I,s:s?}", "type", "probe", "name",
						       st[i].name, "attached", st[i].attached,
						       "events", (json_int_t)st[i].events, "reason",
						       st[i].attached ? NULL : st[i].reason));
		} else if (!st[i].attached) {
			printf("  %-20s not attached: %s\n", st[i].name, st[i].reason);
		} else if (!st[i].events) {
			printf("  %-20s attached, no events yet\n", st[i].name);
		} else {
			printf("  %-20s %llu events\n", st[i].name, (unsigned long long)st[i].events);
		}
	}
	if (fmt == OUT_TEXT && !host_probes_fault_latency(hp))
		printf("  (user faults are counted without latency: fexit/handle_mm_fault unavailable)\n");
}

static int print_interval(struct host_probes *hp, const struct hist_opts *o,
			  struct hist_entry **prev, int *nprev, struct usdt_qemu *uq, int nuq)
{
	struct hist_entry *cur;
	unsigned last_pid = 0;
	int n = host_probes_read(hp, &cur);

	if (n < 0)
		return n;
	/* keep the cumulative snapshot, print the difference */
	struct hist_entry *snap = malloc(sizeof(*cur) * (n ? n : 1));
	if (!snap) {
		free(cur);
		return -ENOMEM;
	}
	memcpy(snap, cur, sizeof(*cur) * n);
	subtract(cur, n, *prev, *nprev);
	free(*prev);
	*prev = snap;
	*nprev = n;

	if (o->fmt == OUT_TEXT && o->interval_s && isatty(STDOUT_FILENO))
		printf("\033[H\033[J"); /* redraw in place */
	if (o->fmt == OUT_JSON && o->interval_s)
		json_println(stdout, json_pack("{s:s,s:I}", "type", "interval", "time_ns",
					       (json_int_t)now_ns()));
	if (o->timestamp && o->fmt == OUT_TEXT) {
		time_t t = time(NULL);
		char ts[16];

		strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
		printf("%s\n", ts);
	}
	for (int i = 0; i < n; i++) {
		if (!cur[i].val.count)
			continue;
		if (o->fmt == OUT_JSON)
			json_println(stdout, entry_json(hp, o, &cur[i]));
		else
			print_text_entry(hp, o, &cur[i], &last_pid);
	}
	for (int i = 0; i < nuq; i++)
		print_usdt(o, &uq[i]);
	print_probes(hp, o->fmt);
	print_usdt_probes(uq, nuq, o->fmt);
	fflush(stdout);
	free(cur);
	return 0;
}

static bool pid_traced(const struct hist_opts *o, int pid)
{
	for (int i = 0; i < o->npids; i++)
		if (o->pids[i] == pid)
			return true;
	return !o->npids;
}

/* The guest RAM ranges of the traced VMs, all of them (host_probes_start
 * says if they do not fit); *out is malloc'ed. */
static int traced_ram_ranges(const struct hist_opts *o, const struct vm_info *vms, int n,
			     struct ram_range **out)
{
	int k = 0;

	*out = calloc(n > 0 ? n * VM_MAX_REGIONS : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		if (pid_traced(o, vms[i].pid))
			k += vm_info_ram_ranges(&vms[i], 1, *out + k, VM_MAX_REGIONS);
	return k;
}

int cmd_hist(int argc, char **argv)
{
	struct hist_opts o = { .fmt = OUT_TEXT };
	struct ram_range *ram = NULL;
	struct host_probes *hp = NULL;
	struct hist_entry *prev = NULL;
	struct vm_info *all = NULL;
	struct usdt_qemu *uq = NULL;
	int nprev = 0, nall, nram, err, pidfds[MAX_PIDS], exited = 0, nuq = 0;
	int priority[MAX_PIDS], npriority = 0;
	uint64_t start, next, next_sweep, printed = 0;

	if (parse_args(argc, argv, &o))
		return -EINVAL;
	if ((err = require_root("hatrace hist")))
		return err;
	setup_libbpf();

	for (int i = 0; i < o.npids; i++)
		pidfds[i] = pid_watch(o.pids[i]);

	/* guest RAM ranges tell faults in guest RAM apart */
	nall = vm_scan(&all);
	if (nall > 0)
		vm_read_memslots(all, nall);
	for (int q = 0; q < o.nqmp && nall > 0; q++)
		if (vm_read_qmp_socket(all, nall, o.qmp_sockets[q]) < 0) {
			free(all);
			return -EINVAL;
		}
	for (int i = 0; i < nall; i++)
		for (int k = 0; k < o.npids; k++)
			if (all[i].pid == o.pids[k] && !vm_name_of(&o, all[i].pid) && o.nvms < MAX_PIDS)
				o.vms[o.nvms++] = all[i];
	/* traced processes have maps of their own; when every process is
	 * traced, the VMs do, so that no other process can crowd them out */
	if (o.npids)
		memcpy(priority, o.pids, (npriority = o.npids) * sizeof(int));
	for (int i = 0; !o.npids && i < nall && npriority < MAX_PIDS; i++)
		priority[npriority++] = all[i].pid;
	nram = traced_ram_ranges(&o, all, nall > 0 ? nall : 0, &ram);
	free(all);
	if (nram < 0)
		return nram;

	err = host_probes_start(&hp, priority, npriority, !o.npids, ram, nram);
	free(ram);
	if (err)
		goto cleanup;
	if ((nuq = usdt_attach_all(priority, npriority, &uq)) < 0) {
		err = nuq;
		nuq = 0;
		goto cleanup;
	}
	install_signal_handlers();
	if (o.fmt == OUT_TEXT)
		printf("Tracing%s... %s\n", o.npids ? "" : " all processes",
		       o.interval_s ? "" : "Hit Ctrl-C to end.");
	else
		json_println(stdout, json_pack("{s:s,s:I}", "type", "start", "time_ns",
					       (json_int_t)now_ns()));
	fflush(stdout);
	start = now_ns();
	next = start + o.interval_s * 1000000000ULL;
	next_sweep = start + 1000000000ULL;
	while (!exiting) {
		uint64_t now;

		usleep(50000);
		now = now_ns();
		if (o.duration_ns && now - start >= o.duration_ns)
			break;
		if (now >= next_sweep) { /* exited processes leave the kernel maps */
			if ((err = host_probes_sweep(hp)))
				goto cleanup;
			next_sweep = now + 1000000000ULL;
		}
		for (int i = 0; i < o.npids; i++)
			if (pidfds[i] != -2 && pid_exited(o.pids[i], pidfds[i])) {
				ht_warn("process %d exited", o.pids[i]);
				if (pidfds[i] >= 0)
					close(pidfds[i]);
				pidfds[i] = -2; /* reported */
				if (++exited == o.npids)
					exiting = 1;
			}
		for (int i = 0; i < nuq; i++)
			if (uq[i].u)
				qemu_usdt_drain(uq[i].u); /* only the histograms are used */
		if (o.interval_s && now >= next) {
			if ((err = print_interval(hp, &o, &prev, &nprev, uq, nuq)))
				goto cleanup;
			host_probes_forget_retired(hp); /* printed */
			next += o.interval_s * 1000000000ULL;
			if (o.count && ++printed >= o.count)
				goto cleanup;
		}
	}
	err = print_interval(hp, &o, &prev, &nprev, uq, nuq);
cleanup:
	if (hp) {
		uint64_t drops = host_probes_drops(hp);

		if (o.fmt == OUT_JSON)
			json_println(stdout, json_pack("{s:s,s:I}", "type", "summary", "drops",
						       (json_int_t)drops));
		else
			printf("drops: %llu\n", (unsigned long long)drops);
	}
	free(prev);
	for (int i = 0; i < nuq; i++)
		qemu_usdt_detach(uq[i].u);
	free(uq);
	host_probes_stop(hp);
	for (int i = 0; i < o.npids; i++)
		if (pidfds[i] >= 0)
			close(pidfds[i]);
	return err;
}
