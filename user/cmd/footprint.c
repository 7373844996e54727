/* hatrace footprint: per-process / per-VM RSS over time (anon, file, shmem),
 * event-driven from kmem:rss_stat and cross-checked by sampling /proc. */
#include "cmds.h"
#include "common.h"
#include "footprint.h"
#include "footprint.skel.h"
#include "vmfind.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fp_proc {
	int pid;
	int pidfd;
	char comm[16];
	long long bytes[FP_NR];  /* latest known, from either source */
	long long written_rss;   /* last row written */
	bool written;
};

struct fp_ctx {
	struct fp_proc procs[FP_MAX_PIDS];
	int nprocs;
	uint64_t last_ts;        /* rows are written in time order */
	enum out_fmt fmt;
	struct out_file out;
	uint64_t rows;
	int64_t sample_step;     /* sampler writes a row when RSS moved by this much */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace footprint [-p PID]... [--all-vms] [-o csv|json|perfetto] [-w FILE]\n"
		"                         [-d SECONDS] [--step BYTES] [--min-interval MS]\n"
		"                         [--sample-ms MS]\n\n"
		"RSS over time per process or VM, with anon, file and shmem apart. Driven by\n"
		"kmem:rss_stat, coalesced in the kernel: a row is emitted when RSS moved by\n"
		"--step (default 2M) or, if it changed at all, after --min-interval (100 ms).\n"
		"/proc/PID/status is also sampled every --sample-ms (default 200, 0 = off), so\n"
		"kernels that batch rss_stat (6.1 and older) still give an accurate trace.\n\n"
		"  -p, --pid PID        a process (repeatable)\n"
		"      --all-vms        every VM found by 'hatrace vms'\n"
		"  -o, --output FMT     csv (default), json (one object per line), perfetto\n"
		"                       (Chrome JSON trace, one counter track per process)\n"
		"  -w, --write FILE     write to FILE (default: stdout)\n"
		"  -d, --duration S     stop after S seconds (default: Ctrl-C or all exited)\n\n"
		"CSV columns: time_ns,pid,comm,anon_bytes,file_bytes,shmem_bytes,rss_bytes\n"
		"(time_ns is CLOCK_MONOTONIC, the clock of every hatrace trace).\n");
}

static long long rss_of(const long long *b)
{
	return b[FP_FILE] + b[FP_ANON] + b[FP_SHMEM];
}

static int sample_status(int pid, long long *b)
{
	static const char *const keys[] = { "RssAnon", "RssFile", "RssShmem", "VmSwap" };
	static const int idx[] = { FP_ANON, FP_FILE, FP_SHMEM, FP_SWAP };
	uint64_t vals[ARRAY_SIZE(keys)];
	char path[64];
	int found;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	found = proc_fields(path, keys, vals, ARRAY_SIZE(keys));
	if (found < 0)
		return found;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		b[idx[i]] = vals[i];
	return found >= 3 ? 0 : -ENODATA; /* kernel threads and zombies have no mm */
}

/* A command name as one CSV field (RFC 4180 quoting where needed). */
static void csv_field(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void write_row(struct fp_ctx *c, struct fp_proc *p, uint64_t ts)
{
	FILE *f = c->out.f;
	long long rss = rss_of(p->bytes);

	/* a sample taken just before a ring buffer event was drained may be
	 * stamped a little later than it: keep the output in time order */
	if (ts < c->last_ts)
		ts = c->last_ts;
	c->last_ts = ts;
	switch (c->fmt) {
	case OUT_CSV:
		fprintf(f, "%llu,%d,", (unsigned long long)ts, p->pid);
		csv_field(f, p->comm);
		fprintf(f, ",%lld,%lld,%lld,%lld\n", p->bytes[FP_ANON], p->bytes[FP_FILE],
			p->bytes[FP_SHMEM], rss);
		break;
	case OUT_JSON:
		json_println(f, json_pack("{s:I,s:i,s:o,s:I,s:I,s:I,s:I}", "time_ns", (json_int_t)ts,
					  "pid", p->pid, "comm", json_string_lossy(p->comm), "anon_bytes",
					  (json_int_t)p->bytes[FP_ANON], "file_bytes",
					  (json_int_t)p->bytes[FP_FILE], "shmem_bytes",
					  (json_int_t)p->bytes[FP_SHMEM], "rss_bytes", (json_int_t)rss));
		break;
	default: { /* perfetto: one counter track per process, series stacked */
		json_t *ev = json_pack("{s:s,s:s,s:f,s:i,s:i,s:{s:I,s:I,s:I}}", "name", "rss", "ph",
				       "C", "ts", ts / 1000.0, "pid", p->pid, "tid", p->pid, "args",
				       "anon", (json_int_t)p->bytes[FP_ANON], "file",
				       (json_int_t)p->bytes[FP_FILE], "shmem",
				       (json_int_t)p->bytes[FP_SHMEM]);

		fputs(c->rows ? ",\n" : "\n", f);
		json_dumpf(ev, f, JSON_COMPACT);
		json_decref(ev);
	}
	}
	p->written_rss = rss;
	p->written = true;
	c->rows++;
}

static struct fp_proc *find_proc(struct fp_ctx *c, int pid)
{
	for (int i = 0; i < c->nprocs; i++)
		if (c->procs[i].pid == pid)
			return &c->procs[i];
	return NULL;
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct fp_ctx *c = ctx;
	const struct fp_event *e = data;
	struct fp_proc *p = len >= sizeof(*e) ? find_proc(c, e->pid) : NULL;

	if (!p)
		return 0;
	for (int i = 0; i < FP_NR; i++)
		if (e->bytes[i] >= 0) /* -1: not seen by BPF yet, keep the sampled value */
			p->bytes[i] = e->bytes[i];
	write_row(c, p, e->ts);
	return 0;
}

static void sample_all(struct fp_ctx *c, struct ring_buffer *rb, bool force)
{
	uint64_t ts = now_ns();

	ring_buffer__consume(rb); /* events up to now come first */
	for (int i = 0; i < c->nprocs; i++) {
		struct fp_proc *p = &c->procs[i];
		long long moved;

		if (sample_status(p->pid, p->bytes))
			continue;
		moved = rss_of(p->bytes) - p->written_rss;
		if (force || !p->written || moved >= c->sample_step || -moved >= c->sample_step)
			write_row(c, p, ts);
	}
}

static int add_proc(struct fp_ctx *c, int pid)
{
	if (find_proc(c, pid))
		return 0;
	if (c->nprocs == FP_MAX_PIDS) {
		ht_err("at most %d processes can be traced at once", FP_MAX_PIDS);
		return -E2BIG;
	}
	c->procs[c->nprocs].pid = pid;
	c->procs[c->nprocs].pidfd = pid_watch(pid);
	read_comm(pid, c->procs[c->nprocs].comm, sizeof(c->procs[0].comm));
	c->nprocs++;
	return 0;
}

static bool any_alive(const struct fp_ctx *c)
{
	for (int i = 0; i < c->nprocs; i++)
		if (!pid_exited(c->procs[i].pid, c->procs[i].pidfd))
			return true;
	return false;
}

static uint64_t events_seen(struct footprint_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t vals[ncpus], sum = 0;
	__u32 zero = 0;

	if (!bpf_map__lookup_elem(skel->maps.seen, &zero, sizeof(zero), vals, sizeof(vals), 0))
		for (int c = 0; c < ncpus; c++)
			sum += vals[c];
	return sum;
}

int cmd_footprint(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all-vms", no_argument, NULL, 'A' },
		{ "output", required_argument, NULL, 'o' },
		{ "write", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "step", required_argument, NULL, 'S' },
		{ "min-interval", required_argument, NULL, 'I' },
		{ "sample-ms", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	static struct fp_ctx c;
	struct footprint_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	const char *path = NULL;
	uint64_t duration_ns = 0, step = 2 << 20, min_interval_ms = 100, sample_ms = 200, start,
		 next_sample;
	bool all_vms = false;
	int ch, pid, err = -EINVAL;

	memset(&c, 0, sizeof(c));
	c.fmt = OUT_CSV;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":p:o:w:d:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (parse_pid(optarg, &pid) || add_proc(&c, pid))
				return -EINVAL;
			break;
		case 'A':
			all_vms = true;
			break;
		case 'o':
			if (parse_out_fmt(optarg, 1 << OUT_CSV | 1 << OUT_JSON | 1 << OUT_PERFETTO,
					  &c.fmt))
				return -EINVAL;
			break;
		case 'w':
			if (!*optarg) {
				ht_err("-w: empty path (use -w - or no -w for stdout)");
				return -EINVAL;
			}
			path = optarg;
			break;
		case 'd':
			if (parse_seconds_ns("-d", optarg, 1000000, 86400ULL * 1000000000, &duration_ns))
				return -EINVAL;
			break;
		case 'S':
			if (parse_size("--step", optarg, &step) || !step) {
				if (!step)
					ht_err("--step must be at least 1 byte");
				return -EINVAL;
			}
			break;
		case 'I':
			if (parse_u64("--min-interval", optarg, 1, 3600000, &min_interval_ms))
				return -EINVAL;
			break;
		case 'M':
			if (parse_u64("--sample-ms", optarg, 0, 3600000, &sample_ms))
				return -EINVAL;
			break;
		default:
			if (common_option(ch, argv, usage))
				return -EINVAL;
		}
	}
	if (no_operands(argc, argv))
		return -EINVAL;
	if (all_vms) {
		struct vm_info *vms;
		int n;

		/* without root, other users' VMs cannot be seen: not "no VMs" */
		if ((err = require_root("hatrace footprint --all-vms")))
			return err;
		n = vm_scan(&vms);
		if (n < 0) {
			ht_err("--all-vms: cannot scan /proc for VMs: %s", strerror(-n));
			return n;
		}
		for (int i = 0; i < n; i++)
			if (add_proc(&c, vms[i].pid))
				break;
		free(vms);
	}
	if (!c.nprocs) {
		ht_err(all_vms ? "--all-vms: no VMs found on this host" :
				 "name processes with -p PID or use --all-vms");
		return -EINVAL;
	}
	if ((err = require_root("hatrace footprint")) || (err = ensure_tracefs()))
		return err;
	if (!tracepoint_exists("kmem", "rss_stat")) {
		ht_err("tracepoint kmem:rss_stat is missing from this kernel");
		return -ENOENT;
	}
	/* a bad output path is refused before anything is loaded */
	if ((err = out_file_check(path)))
		return err;
	setup_libbpf();
	c.sample_step = step;

	skel = footprint_bpf__open();
	if (!skel) {
		err = -errno;
		ht_err("cannot open the footprint BPF program: %s", strerror(errno));
		goto cleanup;
	}
	skel->rodata->step_bytes = step;
	skel->rodata->min_interval_ns = min_interval_ms * 1000000;
	if ((err = footprint_bpf__load(skel))) {
		ht_err("cannot load the footprint BPF program: %s (-v shows the verifier log)",
		       strerror(-err));
		goto cleanup;
	}
	for (int i = 0; i < c.nprocs; i++) {
		__u32 key = c.procs[i].pid;
		__u8 one = 1;

		bpf_map__update_elem(skel->maps.pids, &key, sizeof(key), &one, 1, 0);
	}
	if ((err = footprint_bpf__attach(skel))) {
		ht_err("cannot attach to kmem:rss_stat: %s", strerror(-err));
		goto cleanup;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &c, NULL);
	if (!rb) {
		err = -errno;
		ht_err("cannot create the ring buffer: %s", strerror(errno));
		goto cleanup;
	}
	if ((err = out_file_open(&c.out, path)))
		goto cleanup;
	if (c.fmt == OUT_CSV)
		fprintf(c.out.f, "time_ns,pid,comm,anon_bytes,file_bytes,shmem_bytes,rss_bytes\n");
	if (c.fmt == OUT_PERFETTO) {
		fprintf(c.out.f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
		for (int i = 0; i < c.nprocs; i++) {
			struct vm_info vm;
			json_t *meta;
			bool is_vm = vm_lookup_quiet(c.procs[i].pid, &vm);

			meta = json_pack("{s:s,s:s,s:i,s:{s:o}}", "name", "process_name", "ph", "M",
					 "pid", c.procs[i].pid, "args", "name",
					 json_string_lossy(is_vm ? vm.name : c.procs[i].comm));
			fputs(c.rows++ ? ",\n" : "\n", c.out.f);
			json_dumpf(meta, c.out.f, JSON_COMPACT);
			json_decref(meta);
		}
	}
	install_signal_handlers();
	sample_all(&c, rb, true);
	start = now_ns();
	next_sample = start + sample_ms * 1000000;
	while (!exiting && any_alive(&c)) {
		err = ring_buffer__poll(rb, 50);
		if (err == -EINTR)
			break;
		if (err < 0) {
			ht_err("ring buffer poll failed: %s", strerror(-err));
			goto cleanup;
		}
		if (sample_ms && now_ns() >= next_sample) {
			sample_all(&c, rb, false);
			next_sample += sample_ms * 1000000;
		}
		if (duration_ns && now_ns() - start >= duration_ns)
			break;
	}
	sample_all(&c, rb, true); /* final values, so the trace ends where the process is */
	if (c.fmt == OUT_PERFETTO)
		fprintf(c.out.f, "\n]}\n");
	err = out_file_commit(&c.out);
	fprintf(stderr, "footprint: %llu rows, %llu rss_stat events, %llu dropped\n",
		(unsigned long long)c.rows, (unsigned long long)events_seen(skel), skel->bss->drops);
cleanup:
	if (err)
		out_file_abort(&c.out);
	ring_buffer__free(rb);
	footprint_bpf__destroy(skel);
	for (int i = 0; i < c.nprocs; i++)
		if (c.procs[i].pidfd >= 0)
			close(c.procs[i].pidfd);
	return err;
}
