/* hatrace-guest: the agent inside a hatrace guest VM. It speaks the line
 * protocol of user/harness/agent_proto.h over the virtio-serial port AGENT_PORT_NAME
 * (or stdin/stdout with --stdio), runs workloads without blocking other
 * requests, and loads the guest BPF counters of bpf/guest/guest_trace.bpf.c.
 *
 * usage: hatrace-guest [--stdio | --device PATH] [-v]
 */
#include "agent_proto.h"
#include "common.h"
#include "guest/guest_trace.h"
#include "guest/guest_trace.skel.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 8
#define OUT_KEEP 65536 /* bytes of a workload's stdout kept (its last line is the result) */
#define ERR_KEEP 4096  /* bytes of stderr tail returned on failure */
#define MAX_TIMEOUT_S 86400

static int port_in = -1, port_out = -1;

/* ---- output --------------------------------------------------------------------- */

static void send_doc(json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT);
	size_t len, off = 0;

	json_decref(doc);
	if (!s)
		return;
	len = strlen(s);
	s[len++] = '\n'; /* json_dumps leaves room: overwrite the NUL */
	while (off < len) {
		ssize_t n = write(port_out, s + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ht_warn("writing to the host: %s", n < 0 ? strerror(errno) : "short write");
			break;
		}
		off += n;
	}
	free(s);
}

/* Text from workloads or errors goes into JSON strings, which must be UTF-8:
 * keep printable ASCII, newlines and tabs, replace the rest. */
static void make_printable(char *s)
{
	for (unsigned char *c = (unsigned char *)s; *c; c++)
		if ((*c < 0x20 && *c != '\n' && *c != '\t') || *c >= 0x7f)
			*c = '?';
}

static json_t *reply_ok(json_t *id)
{
	return json_pack("{s:O,s:b}", "id", id ? id : json_null(), "ok", 1);
}

static void send_error(json_t *id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	make_printable(msg);
	send_doc(json_pack("{s:O,s:b,s:s}", "id", id ? id : json_null(), "ok", 0, "error", msg));
}

/* ---- run: workloads as children, served from the main poll loop ------------------ */

struct run {
	bool used;
	json_t *id;
	pid_t pid;
	int pidfd, out_fd, err_fd;
	uint64_t start_ns, deadline_ns;
	bool timed_out;
	char out[OUT_KEEP];
	size_t out_len;
	char err[ERR_KEEP];
	size_t err_len;
};

static struct run runs[MAX_RUNS];

/* Appends data keeping only the newest cap bytes. */
static void keep_tail(char *buf, size_t *len, size_t cap, const char *data, size_t n)
{
	if (n >= cap) {
		memcpy(buf, data + n - cap, cap);
		*len = cap;
		return;
	}
	if (*len + n > cap) {
		size_t drop = *len + n - cap;

		memmove(buf, buf + drop, *len - drop);
		*len -= drop;
	}
	memcpy(buf + *len, data, n);
	*len += n;
}

static void drain(int *fd, char *buf, size_t *len, size_t cap)
{
	char chunk[4096];
	ssize_t n;

	while (*fd >= 0) {
		n = read(*fd, chunk, sizeof(chunk));
		if (n > 0) {
			keep_tail(buf, len, cap, chunk, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
	}
}

/* The workload's result: its last non-empty stdout line, if it is a JSON object. */
static json_t *last_json_line(char *buf, size_t len)
{
	char *line;
	json_t *doc;

	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	if (!len)
		return NULL;
	buf[len] = 0;
	line = memrchr(buf, '\n', len);
	line = line ? line + 1 : buf;
	doc = json_loads(line, 0, NULL);
	if (doc && !json_is_object(doc)) {
		json_decref(doc);
		doc = NULL;
	}
	return doc;
}

static void finish_run(struct run *r)
{
	siginfo_t si = { 0 };
	json_t *reply, *result;

	drain(&r->out_fd, r->out, &r->out_len, sizeof(r->out) - 1);
	drain(&r->err_fd, r->err, &r->err_len, sizeof(r->err) - 1);
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	waitid(P_PID, r->pid, &si, WEXITED);
	close(r->pidfd);

	reply = reply_ok(r->id);
	json_object_set_new(reply, "start_ns", json_integer(r->start_ns));
	json_object_set_new(reply, "elapsed_ns", json_integer(now_ns() - r->start_ns));
	if (si.si_code == CLD_EXITED) {
		json_object_set_new(reply, "exit", json_integer(si.si_status));
	} else {
		json_object_set_new(reply, "exit", json_integer(128 + si.si_status));
		json_object_set_new(reply, "signal", json_integer(si.si_status));
	}
	if (r->timed_out)
		json_object_set_new(reply, "timed_out", json_true());
	result = last_json_line(r->out, r->out_len);
	if (result)
		json_object_set_new(reply, "result", result);
	if (si.si_code != CLD_EXITED || si.si_status != 0) {
		r->err[r->err_len] = 0;
		make_printable(r->err);
		json_object_set_new(reply, "stderr", json_string(r->err));
	}
	send_doc(reply);
	json_decref(r->id);
	memset(r, 0, sizeof(*r));
}

static void start_run(json_t *id, json_t *req)
{
	json_t *argv_j = json_object_get(req, "argv"), *t = json_object_get(req, "timeout_s");
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, exec_pipe[2] = { -1, -1 };
	uint64_t timeout_s = 600;
	struct run *r = NULL;
	size_t i, argc;
	char **argv;
	int exec_errno = 0;
	ssize_t n;

	if (!json_is_array(argv_j) || !(argc = json_array_size(argv_j)))
		return send_error(id, "run: \"argv\" must be a non-empty array of strings");
	for (i = 0; i < argc; i++)
		if (!json_is_string(json_array_get(argv_j, i)))
			return send_error(id, "run: argv[%zu] is not a string", i);
	if (t) {
		if (!json_is_integer(t) || json_integer_value(t) < 1 ||
		    json_integer_value(t) > MAX_TIMEOUT_S)
			return send_error(id, "run: \"timeout_s\" must be an integer in [1, %d]",
					  MAX_TIMEOUT_S);
		timeout_s = json_integer_value(t);
	}
	for (i = 0; i < MAX_RUNS && !r; i++)
		if (!runs[i].used)
			r = &runs[i];
	if (!r)
		return send_error(id, "run: %d workloads are already running", MAX_RUNS);

	argv = calloc(argc + 1, sizeof(*argv));
	if (!argv)
		return send_error(id, "run: out of memory");
	for (i = 0; i < argc; i++)
		argv[i] = (char *)json_string_value(json_array_get(argv_j, i));
	if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC) ||
	    pipe2(exec_pipe, O_CLOEXEC)) {
		send_error(id, "run: pipe: %s", strerror(errno));
		goto out;
	}
	r->start_ns = now_ns();
	r->pid = fork();
	if (r->pid < 0) {
		send_error(id, "run: fork: %s", strerror(errno));
		goto out;
	}
	if (r->pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (null_fd >= 0)
			dup2(null_fd, 0); /* never the agent's input */
		dup2(out_pipe[1], 1);
		dup2(err_pipe[1], 2);
		execvp(argv[0], argv);
		exec_errno = errno;
		if (write(exec_pipe[1], &exec_errno, sizeof(exec_errno)) < 0)
			_exit(126);
		_exit(127);
	}
	close(exec_pipe[1]);
	exec_pipe[1] = -1;
	n = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
	if (n == sizeof(exec_errno)) {
		waitpid(r->pid, NULL, 0);
		send_error(id, "run: cannot execute %s: %s", argv[0], strerror(exec_errno));
		goto out;
	}
	r->pidfd = pidfd_open(r->pid, 0);
	if (r->pidfd < 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		send_error(id, "run: pidfd_open: %s", strerror(errno));
		goto out;
	}
	r->used = true;
	r->id = json_incref(id);
	r->out_fd = out_pipe[0];
	r->err_fd = err_pipe[0];
	out_pipe[0] = err_pipe[0] = -1;
	fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
	r->deadline_ns = r->start_ns + timeout_s * 1000000000ull;
out:
	for (i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
		if (exec_pipe[i] >= 0)
			close(exec_pipe[i]);
	}
	free(argv);
}

/* ---- meminfo ---------------------------------------------------------------------- */

static void cmd_meminfo(json_t *id)
{
	static const char *const keys[] = { "MemTotal", "MemFree", "MemAvailable" };
	uint64_t vals[ARRAY_SIZE(keys)];
	int found = proc_fields("/proc/meminfo", keys, vals, ARRAY_SIZE(keys));
	json_t *reply;

	if (found < 0)
		return send_error(id, "meminfo: /proc/meminfo: %s", strerror(-found));
	if (found != ARRAY_SIZE(keys))
		return send_error(id, "meminfo: /proc/meminfo lacks MemTotal/MemFree/MemAvailable");
	reply = reply_ok(id);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		json_object_set_new(reply, keys[i], json_integer(vals[i]));
	send_doc(reply);
}

/* ---- tracing ---------------------------------------------------------------------- */

/* Timed kernel functions, one per BPF function slot, as the host named them in
 * trace_start (the agent knows no technique). `within` names the function
 * whose time already includes this one's ("any": any caller), so that the host
 * sums only the outermost ones. A function the compiler inlined everywhere
 * cannot be traced and is reported so. */
#define TRACE_NAME_LEN 64
struct trace_func {
	char name[TRACE_NAME_LEN], func[TRACE_NAME_LEN], within[TRACE_NAME_LEN];
};
static struct trace_func trace_funcs[GT_NR_FUNCS + 1];
static int ntrace_funcs;

/* The calibration probe (slot GT_CALIB): function index CALIB, on a syscall
 * that does next to nothing; one with an argument, whose wrapper is its own
 * function in BTF (getppid's is an alias BTF lacks). */
#define CALIB GT_NR_FUNCS
#define CALIB_FUNC "__x64_sys_getpgid"
#define CALIB_CALLS 2000
#define CALIB_ROUNDS 3

enum probe_mode { MODE_NONE, MODE_TRACEPOINT, MODE_FENTRY, MODE_KPROBE };
static const char *const mode_names[] = { "none", "tracepoint", "fentry", "kprobe" };

struct probe {
	const char *name, *target, *within;
	enum probe_mode mode;
	char reason[200];
	struct bpf_link *links[2];
};

static struct guest_trace_bpf *skel;
static struct probe probes[GT_NR_SLOTS];

/* /proc/vmstat counters the host named in trace_start, reported by trace_read
 * as count-only events "vmstat_NAME": per-page work counted without a probe. */
#define VMSTAT_MAX 16
#define VMSTAT_NAME_LEN 48
static char vmstat_names[VMSTAT_MAX][VMSTAT_NAME_LEN];
static int nvmstat;
/* The tracepoint slots: the kmem ones by default, HyperAlloc's (tp_btf) only
 * when trace_start names them, and only where the kernel has them. */
struct tracepoint_slot {
	const char *name, *target, *prog;
	bool on_request;
};
static const struct tracepoint_slot tracepoints[GT_FUNC0] = {
	[GT_PAGE_ALLOC] = { "mm_page_alloc", "kmem:mm_page_alloc", "page_alloc", false },
	[GT_PAGE_FREE] = { "mm_page_free", "kmem:mm_page_free", "page_free", false },
#define HA_TRACEPOINT(slot, name) [slot] = { name, "hyperalloc:" name, name, true }
	HA_TRACEPOINT(GT_HA_GET, "hyperalloc_get"),
	HA_TRACEPOINT(GT_HA_PUT, "hyperalloc_put"),
	HA_TRACEPOINT(GT_HA_RECLAIMED_SEEN, "hyperalloc_reclaimed_seen"),
	HA_TRACEPOINT(GT_HA_INSTALL_START, "hyperalloc_install_start"),
	HA_TRACEPOINT(GT_HA_INSTALL_END, "hyperalloc_install_end"),
	HA_TRACEPOINT(GT_HA_DRAIN, "hyperalloc_drain"),
	HA_TRACEPOINT(GT_HA_RECONCILE, "hyperalloc_reconcile"),
#undef HA_TRACEPOINT
};

static struct bpf_program *slot_prog(const char *kind, int i)
{
	char name[32];

	snprintf(name, sizeof(name), "%s_%d", kind, i);
	return bpf_object__find_program_by_name(skel->obj, name);
}

/* Marks found[i] for every wanted traced function that /proc/kallsyms lists as
 * text (one pass: the file is long and slow to read under TCG). */
static void find_in_kallsyms(const bool *wanted, bool *found)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[512], sym[256], type;

	memset(found, 0, (GT_NR_FUNCS + 1) * sizeof(*found));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %c %255s", &type, sym) != 2 || (type != 't' && type != 'T'))
			continue;
		for (int i = 0; i < ntrace_funcs; i++)
			if (wanted[GT_FUNC0 + i] && !strcmp(sym, trace_funcs[i].func))
				found[i] = true;
		if (wanted[GT_CALIB] && !strcmp(sym, CALIB_FUNC))
			found[CALIB] = true;
	}
	fclose(f);
}

static void trace_stop(void)
{
	for (int i = 0; i < GT_NR_SLOTS; i++)
		for (int j = 0; j < 2; j++)
			bpf_link__destroy(probes[i].links[j]);
	memset(probes, 0, sizeof(probes));
	guest_trace_bpf__destroy(skel);
	skel = NULL;
	nvmstat = 0;
}

/* Opens and loads the object; tracepoint slot s is enabled where use_tp[s],
 * function slot i with fentry where use_fentry[i], with kprobes where
 * use_kprobe[i]. */
static int trace_load(const bool *use_tp, const bool *use_fentry, const bool *use_kprobe)
{
	int err;

	skel = guest_trace_bpf__open();
	if (!skel)
		return -errno;
	for (int slot = 0; slot < GT_FUNC0; slot++) {
		struct bpf_program *prog =
			bpf_object__find_program_by_name(skel->obj, tracepoints[slot].prog);

		if (!prog) {
			guest_trace_bpf__destroy(skel);
			skel = NULL;
			return -ENOENT;
		}
		bpf_program__set_autoload(prog, use_tp[slot]);
	}
	for (int i = 0; i <= CALIB; i++) {
		struct bpf_program *fentry = slot_prog("fentry", i), *fexit = slot_prog("fexit", i);

		if (!fentry || !fexit || !slot_prog("kprobe", i) || !slot_prog("kretprobe", i)) {
			guest_trace_bpf__destroy(skel);
			skel = NULL;
			return -ENOENT; /* the object lacks slot i */
		}
		bpf_program__set_autoload(fentry, use_fentry[i]);
		bpf_program__set_autoload(fexit, use_fentry[i]);
		if (use_fentry[i]) {
			bpf_program__set_attach_target(fentry, 0, trace_funcs[i].func);
			bpf_program__set_attach_target(fexit, 0, trace_funcs[i].func);
		}
		bpf_program__set_autoload(slot_prog("kprobe", i), use_kprobe[i]);
		bpf_program__set_autoload(slot_prog("kretprobe", i), use_kprobe[i]);
	}
	err = guest_trace_bpf__load(skel);
	if (err) {
		guest_trace_bpf__destroy(skel);
		skel = NULL;
	}
	return err;
}

static void attach_func(int i, bool try_fentry, bool try_kprobe)
{
	struct probe *p = &probes[GT_FUNC0 + i];
	const char *fn = trace_funcs[i].func;
	struct bpf_link *a, *b;
	int err = 0;

	if (try_fentry) {
		a = bpf_program__attach(slot_prog("fentry", i));
		b = a ? bpf_program__attach(slot_prog("fexit", i)) : NULL;
		if (a && b) {
			p->mode = MODE_FENTRY;
			p->links[0] = a, p->links[1] = b;
			return;
		}
		err = errno;
		bpf_link__destroy(a);
		if (!*p->reason)
			snprintf(p->reason, sizeof(p->reason), "fentry attach: %s", strerror(err));
	}
	if (!try_kprobe) {
		if (!*p->reason)
			snprintf(p->reason, sizeof(p->reason),
				 "%s is neither in BTF nor in kallsyms (inlined?)", fn);
		return;
	}
	a = bpf_program__attach_kprobe(slot_prog("kprobe", i), false, fn);
	b = a ? bpf_program__attach_kprobe(slot_prog("kretprobe", i), true, fn) : NULL;
	if (a && b) {
		p->mode = MODE_KPROBE;
		p->links[0] = a, p->links[1] = b;
		return;
	}
	err = errno;
	bpf_link__destroy(a);
	snprintf(p->reason + strlen(p->reason), sizeof(p->reason) - strlen(p->reason),
		 "%skprobe attach: %s", *p->reason ? "; " : "", strerror(err));
}

static json_t *probe_list(void)
{
	json_t *list = json_array();

	for (int i = 0; i < GT_NR_SLOTS; i++) {
		struct probe *p = &probes[i];
		json_t *o;

		if (!p->name)
			continue; /* a function slot the host did not use */
		o = json_pack("{s:s,s:s,s:b,s:s}", "name", p->name, "target", p->target,
				      "attached", p->mode != MODE_NONE, "mode", mode_names[p->mode]);

		if (*p->reason)
			json_object_set_new(o, "reason", json_string(p->reason));
		if (p->within)
			json_object_set_new(o, "within", json_string(p->within));
		json_array_append_new(list, o);
	}
	return list;
}

static const char *slot_name(int slot)
{
	return slot >= GT_FUNC0 ? trace_funcs[slot - GT_FUNC0].name : tracepoints[slot].name;
}

/* Whether the kernel has the raw tracepoint name (tp_btf attaches by it). */
static bool has_btf_tracepoint(const struct btf *btf, const char *name)
{
	char type[TRACE_NAME_LEN + 16];

	snprintf(type, sizeof(type), "btf_trace_%s", name);
	return btf__find_by_name_kind(btf, type, BTF_KIND_TYPEDEF) >= 0;
}

/* A kernel symbol or probe name: 1 to 63 of [A-Za-z0-9_]. */
static bool plain_identifier(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n && n < TRACE_NAME_LEN && strspn(s, "abcdefghijklmnopqrstuvwxyz"
						   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

/* "functions": [{"name","func"[,"within"]}, ...], at most GT_NR_FUNCS, into
 * out; guest input is the host's, but checked all the same. */
static int parse_functions(json_t *id, json_t *arr, struct trace_func *out, int *n)
{
	json_t *f;
	size_t i;

	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > GT_NR_FUNCS) {
		send_error(id, "trace_start: \"functions\" must be an array of at most %d objects",
			   GT_NR_FUNCS);
		return -1;
	}
	json_array_foreach(arr, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *func = json_string_value(json_object_get(f, "func"));
		json_t *within = json_object_get(f, "within");

		if (!plain_identifier(name) || !plain_identifier(func) ||
		    (within && !plain_identifier(json_string_value(within)))) {
			send_error(id, "trace_start: function %zu needs \"name\" and \"func\" (and "
				   "an optional \"within\") of 1 to %d letters, digits or _", i,
				   TRACE_NAME_LEN - 1);
			return -1;
		}
		for (int slot = 0; slot < GT_FUNC0 + *n; slot++) {
			if (!strcmp(name, slot < GT_FUNC0 ? slot_name(slot) : out[slot - GT_FUNC0].name)) {
				send_error(id, "trace_start: probe name '%s' given twice", name);
				return -1;
			}
		}
		snprintf(out[i].name, TRACE_NAME_LEN, "%s", name);
		snprintf(out[i].func, TRACE_NAME_LEN, "%s", func);
		snprintf(out[i].within, TRACE_NAME_LEN, "%s", within ? json_string_value(within) : "");
		(*n)++;
	}
	for (int k = 0; k < *n; k++) {
		bool known = !*out[k].within || !strcmp(out[k].within, "any");

		for (int m = 0; m < *n && !known; m++)
			known = m != k && !strcmp(out[k].within, out[m].name);
		if (!known) {
			send_error(id, "trace_start: '%s' is within '%s', which is not a traced "
				   "function (nor \"any\")", out[k].name, out[k].within);
			return -1;
		}
	}
	return 0;
}

/* The optional "vmstat" selection: counter names of /proc/vmstat. */
static int select_vmstat(json_t *id, json_t *sel, char names[VMSTAT_MAX][VMSTAT_NAME_LEN], int *n)
{
	json_t *name;
	size_t i;

	*n = 0;
	if (!sel)
		return 0;
	if (!json_is_array(sel) || json_array_size(sel) > VMSTAT_MAX) {
		send_error(id, "trace_start: \"vmstat\" must be an array of at most %d counter names",
			   VMSTAT_MAX);
		return -1;
	}
	json_array_foreach(sel, i, name) {
		const char *s = json_string_value(name);

		if (!plain_identifier(s) || strlen(s) >= VMSTAT_NAME_LEN) {
			send_error(id, "trace_start: vmstat counter %zu must be 1 to %d letters, digits "
				   "or _", i, VMSTAT_NAME_LEN - 1);
			return -1;
		}
		snprintf(names[(*n)++], VMSTAT_NAME_LEN, "%s", s);
	}
	return 0;
}

/* Appends the selected /proc/vmstat counters to events; a counter this kernel
 * lacks is left out. */
static void vmstat_events(json_t *events)
{
	char line[256], key[64];
	unsigned long long v;
	FILE *f = nvmstat ? fopen("/proc/vmstat", "r") : NULL;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %llu", key, &v) != 2)
			continue;
		for (int i = 0; i < nvmstat; i++) {
			char name[VMSTAT_NAME_LEN + 8];

			if (strcmp(key, vmstat_names[i]))
				continue;
			snprintf(name, sizeof(name), "vmstat_%s", key);
			json_array_append_new(events, json_pack("{s:s,s:s,s:I,s:I}", "name", name,
								"mode", "vmstat", "count",
								(json_int_t)v, "sum_ns", (json_int_t)0));
		}
	}
	if (f)
		fclose(f);
}

/* The optional "tracepoints" selection; when absent, both. */
/* The optional "tracepoints" selection; when absent, the kmem ones. */
static int select_tracepoints(json_t *id, json_t *sel, bool *wanted)
{
	json_t *name;
	size_t i;
	int slot;

	for (slot = 0; slot < GT_FUNC0; slot++)
		wanted[slot] = !sel && !tracepoints[slot].on_request;
	if (!sel)
		return 0;
	if (!json_is_array(sel)) {
		send_error(id, "trace_start: \"tracepoints\" must be an array of tracepoint names");
		return -1;
	}
	json_array_foreach(sel, i, name) {
		const char *s = json_string_value(name);

		for (slot = 0; s && slot < GT_FUNC0 && strcmp(s, slot_name(slot)); slot++)
			;
		if (!s || slot == GT_FUNC0) {
			send_error(id, "trace_start: unknown tracepoint %s%s%s", s ? "'" : "(not a string)",
				   s ? s : "", s ? "'" : "");
			return -1;
		}
		wanted[slot] = true;
	}
	return 0;
}

/* Nanoseconds per getpgid(0) call: the median of CALIB_ROUNDS rounds. */
static double getpgid_ns(void)
{
	double v[CALIB_ROUNDS], t;

	for (int r = 0; r < CALIB_ROUNDS; r++) {
		uint64_t t0 = now_ns();

		for (int i = 0; i < CALIB_CALLS; i++)
			syscall(SYS_getpgid, 0);
		v[r] = (double)(now_ns() - t0) / CALIB_CALLS;
		for (int k = r; k > 0 && v[k] < v[k - 1]; k--)
			t = v[k], v[k] = v[k - 1], v[k - 1] = t;
	}
	return v[CALIB_ROUNDS / 2];
}

/* A slot's per-CPU stats (vals: ncpus of them) and their sum; -1 if unread. */
static int slot_sum(__u32 slot, struct gt_stat *vals, int ncpus, struct gt_stat *sum)
{
	memset(sum, 0, sizeof(*sum));
	if (bpf_map__lookup_elem(skel->maps.stats, &slot, sizeof(slot), vals,
				 sizeof(*vals) * ncpus, 0))
		return -1;
	for (int c = 0; c < ncpus; c++) {
		struct gt_stat *v = &vals[c];

		sum->drops += v->drops;
		sum->errors += v->errors;
		if (!v->count)
			continue;
		if (!sum->count || v->first_ns < sum->first_ns)
			sum->first_ns = v->first_ns;
		if (v->last_ns > sum->last_ns)
			sum->last_ns = v->last_ns;
		sum->count += v->count;
		sum->sum_ns += v->sum_ns;
		sum->pages += v->pages;
	}
	return 0;
}

static uint64_t slot_count(__u32 slot)
{
	int ncpus = libbpf_num_possible_cpus();
	struct gt_stat *vals = ncpus > 0 ? calloc(ncpus, sizeof(*vals)) : NULL, sum = { 0 };

	if (vals)
		slot_sum(slot, vals, ncpus, &sum);
	free(vals);
	return sum.count;
}

/* What one call of a traced function costs in probes here (under TCG every
 * probe runs emulated): getpgid(0) in a loop with the calibration probe on,
 * entry and exit the way the traced functions have theirs, against with it
 * off. The host multiplies it by the calls it counted in a phase. */
static json_t *probe_cost(bool fentry, bool kprobe)
{
	struct probe *p = &probes[GT_CALIB];
	bool any_fentry = false, any_kprobe = false;
	enum probe_mode mode;
	double off, on;
	uint64_t hits;

	for (int i = 0; i < ntrace_funcs; i++) {
		any_fentry |= probes[GT_FUNC0 + i].mode == MODE_FENTRY;
		any_kprobe |= probes[GT_FUNC0 + i].mode == MODE_KPROBE;
	}
	/* the traced functions' mode, fentry where any has it */
	mode = any_fentry ? MODE_FENTRY : any_kprobe ? MODE_KPROBE : MODE_NONE;
	if (mode == MODE_NONE)
		return json_pack("{s:s}", "error", "no traced function is attached");
	off = getpgid_ns();
	attach_func(CALIB, fentry && mode == MODE_FENTRY, kprobe && mode == MODE_KPROBE);
	if (p->mode == MODE_NONE) {
		json_t *e = json_pack("{s:s, s:s}", "error", "calibration probe not attached",
				      "reason", p->reason);

		memset(p, 0, sizeof(*p));
		return e;
	}
	on = getpgid_ns();
	hits = slot_count(GT_CALIB);
	bpf_link__destroy(p->links[0]);
	bpf_link__destroy(p->links[1]);
	memset(p, 0, sizeof(*p));
	if (hits < (uint64_t)CALIB_ROUNDS * CALIB_CALLS)
		return json_pack("{s:s, s:I}", "error", "the calibration probe missed calls",
				 "hits", (json_int_t)hits);
	return json_pack("{s:s, s:f, s:f, s:f, s:i}", "mode", mode_names[mode], "call_ns", on - off,
			 "syscall_ns", off, "syscall_traced_ns", on, "calls",
			 CALIB_ROUNDS * CALIB_CALLS);
}

static void cmd_trace_start(json_t *id, json_t *req)
{
	bool use_fentry[GT_NR_FUNCS + 1], use_kprobe[GT_NR_FUNCS + 1], wanted[GT_NR_SLOTS];
	bool use_tp[GT_FUNC0];
	bool fentry_load_failed = false, kprobes_only;
	json_t *kprobes_j = json_object_get(req, "kprobes");
	struct trace_func funcs[GT_NR_FUNCS];
	char vmstat[VMSTAT_MAX][VMSTAT_NAME_LEN];
	struct btf *btf;
	char load_err[128] = "";
	json_t *reply;
	int err, nfuncs, nvmstat_new;

	if (kprobes_j && !json_is_boolean(kprobes_j))
		return send_error(id, "trace_start: \"kprobes\" must be true or false");
	kprobes_only = json_is_true(kprobes_j);
	if (select_tracepoints(id, json_object_get(req, "tracepoints"), wanted) ||
	    parse_functions(id, json_object_get(req, "functions"), funcs, &nfuncs) ||
	    select_vmstat(id, json_object_get(req, "vmstat"), vmstat, &nvmstat_new))
		return;
	if (skel)
		trace_stop(); /* a new start resets the counters */
	memcpy(vmstat_names, vmstat, sizeof(vmstat));
	nvmstat = nvmstat_new;
	memcpy(trace_funcs, funcs, sizeof(funcs));
	ntrace_funcs = nfuncs;
	for (int i = 0; i < GT_NR_FUNCS; i++)
		wanted[GT_FUNC0 + i] = i < nfuncs;
	trace_funcs[CALIB] = (struct trace_func){ "probe_calibration", CALIB_FUNC, "" };
	wanted[GT_CALIB] = nfuncs > 0;
	btf = btf__load_vmlinux_btf();
	for (int slot = 0; slot < GT_FUNC0; slot++)
		use_tp[slot] = wanted[slot] && (!tracepoints[slot].on_request ||
						(btf && has_btf_tracepoint(btf, slot_name(slot))));
	for (int i = 0; i <= CALIB; i++)
		use_fentry[i] = wanted[GT_FUNC0 + i] && !kprobes_only && btf &&
				btf__find_by_name_kind(btf, trace_funcs[i].func, BTF_KIND_FUNC) >= 0;
	btf__free(btf);
	find_in_kallsyms(wanted, use_kprobe);

	err = trace_load(use_tp, use_fentry, use_kprobe);
	if (err) {
		/* Some kernels refuse tracing programs (e.g. no BPF trampolines): retry
		 * with kprobes only. */
		snprintf(load_err, sizeof(load_err), "fentry load: %s", strerror(-err));
		fentry_load_failed = true;
		memset(use_fentry, 0, sizeof(use_fentry));
		err = trace_load(use_tp, use_fentry, use_kprobe);
	}
	if (err)
		return send_error(id, "trace_start: loading guest_trace.bpf.o: %s",
				  strerror(-err));

	for (int slot = 0; slot < GT_FUNC0 + nfuncs; slot++) {
		struct probe *p = &probes[slot];
		int i = slot - GT_FUNC0;

		if (i < 0 && !wanted[slot] && tracepoints[slot].on_request)
			continue; /* listed only when asked for */
		p->name = slot_name(slot);
		p->target = i >= 0 ? trace_funcs[i].func : tracepoints[slot].target;
		p->within = i >= 0 && *trace_funcs[i].within ? trace_funcs[i].within : NULL;
		if (!wanted[slot]) {
			snprintf(p->reason, sizeof(p->reason), "not requested");
		} else if (i < 0 && !use_tp[slot]) {
			snprintf(p->reason, sizeof(p->reason),
				 "not in this kernel (its BTF has no btf_trace_%s)", p->name);
		} else if (i < 0) {
			p->links[0] = bpf_program__attach(
				bpf_object__find_program_by_name(skel->obj, tracepoints[slot].prog));
			if (p->links[0])
				p->mode = MODE_TRACEPOINT;
			else
				snprintf(p->reason, sizeof(p->reason), "tracepoint attach: %s",
					 strerror(errno));
		} else {
			if (fentry_load_failed && use_kprobe[i])
				snprintf(p->reason, sizeof(p->reason), "%s", load_err);
			attach_func(i, use_fentry[i], use_kprobe[i]);
		}
	}
	reply = reply_ok(id);
	json_object_set_new(reply, "probes", probe_list());
	json_object_set_new(reply, "probe_cost", probe_cost(use_fentry[CALIB], use_kprobe[CALIB]));
	send_doc(reply);
}

static void cmd_trace_read(json_t *id)
{
	int ncpus = libbpf_num_possible_cpus();
	struct gt_stat *vals;
	json_t *reply, *events;

	if (!skel)
		return send_error(id, "trace_read: tracing is not started (send trace_start)");
	if (ncpus <= 0)
		return send_error(id, "trace_read: cannot count CPUs: %s", strerror(-ncpus));
	vals = calloc(ncpus, sizeof(*vals));
	if (!vals)
		return send_error(id, "trace_read: out of memory");
	reply = reply_ok(id);
	events = json_array();
	for (__u32 slot = 0; slot < GT_NR_SLOTS; slot++) {
		struct gt_stat sum;
		json_t *ev;

		if (probes[slot].mode == MODE_NONE || slot_sum(slot, vals, ncpus, &sum))
			continue;
		ev = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "name", probes[slot].name, "mode",
			       mode_names[probes[slot].mode], "count", (json_int_t)sum.count,
			       "sum_ns", (json_int_t)sum.sum_ns, "first_ns",
			       (json_int_t)sum.first_ns, "last_ns", (json_int_t)sum.last_ns);
		if (probes[slot].mode == MODE_TRACEPOINT)
			json_object_set_new(ev, "pages", json_integer(sum.pages));
		else
			json_object_set_new(ev, "drops", json_integer(sum.drops));
		if (slot < GT_FUNC0 && tracepoints[slot].on_request)
			json_object_set_new(ev, "errors", json_integer(sum.errors));
		if (slot == GT_HA_GET || slot == GT_HA_PUT) {
			json_t *orders = json_array();

			for (int o = 0; o < GT_ORDERS; o++) {
				__u64 n = 0;

				for (int c = 0; c < ncpus; c++)
					n += vals[c].orders[o];
				json_array_append_new(orders, json_integer(n));
			}
			json_object_set_new(ev, "orders", orders);
		}
		if (probes[slot].within)
			json_object_set_new(ev, "within", json_string(probes[slot].within));
		json_array_append_new(events, ev);
	}
	free(vals);
	vmstat_events(events);
	/* taken after reading: no event in the reply is later than mono_ns */
	json_object_set_new(reply, "mono_ns", json_integer(now_ns()));
	json_object_set_new(reply, "events", events);
	send_doc(reply);
}

/* ---- dispatch --------------------------------------------------------------------- */

static bool poweroff_requested;

static void handle_line(char *line)
{
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr), *id;
	const char *cmd;

	if (!req || !json_is_object(req)) {
		send_error(NULL, "bad request: %s", req ? "not a JSON object" : jerr.text);
		json_decref(req);
		return;
	}
	id = json_object_get(req, "id");
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!json_is_integer(id))
		send_error(id, "request lacks an integer \"id\"");
	else if (!cmd)
		send_error(id, "request lacks a string \"cmd\"");
	else if (!strcmp(cmd, "ping"))
		send_doc(json_pack("{s:O,s:b,s:I}", "id", id, "ok", 1, "mono_ns",
				   (json_int_t)now_ns()));
	else if (!strcmp(cmd, "run"))
		start_run(id, req);
	else if (!strcmp(cmd, "meminfo"))
		cmd_meminfo(id);
	else if (!strcmp(cmd, "trace_start"))
		cmd_trace_start(id, req);
	else if (!strcmp(cmd, "trace_read"))
		cmd_trace_read(id);
	else if (!strcmp(cmd, "trace_stop")) {
		trace_stop();
		send_doc(reply_ok(id));
	} else if (!strcmp(cmd, "poweroff")) {
		send_doc(reply_ok(id));
		poweroff_requested = true;
	} else
		send_error(id, "unknown cmd '%s'", cmd);
	json_decref(req);
}

/* Finds /dev/vportNpM whose name is AGENT_PORT_NAME, waiting for the driver. */
static int open_agent_port(void)
{
	char path[300], name[128];
	struct dirent *de;
	DIR *d;
	FILE *f;

	for (int tries = 0; tries < 300; tries++) {
		d = opendir("/sys/class/virtio-ports");
		while (d && (de = readdir(d))) {
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			if (!fgets(name, sizeof(name), f))
				name[0] = 0;
			fclose(f);
			name[strcspn(name, "\n")] = 0;
			if (strcmp(name, AGENT_PORT_NAME))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", de->d_name);
			closedir(d);
			return open(path, O_RDWR | O_CLOEXEC);
		}
		if (d)
			closedir(d);
		usleep(100000);
	}
	errno = ENODEV;
	return -1;
}

static void serve(void)
{
	static char buf[AGENT_MAX_LINE + 1];
	size_t len = 0;
	bool skipping = false; /* inside an over-long line */
	struct pollfd pfd[1 + 3 * MAX_RUNS];
	struct run *owner[1 + 3 * MAX_RUNS];
	struct utsname uts;

	uname(&uts);
	send_doc(json_pack("{s:s,s:I,s:s}", "event", "ready", "mono_ns", (json_int_t)now_ns(),
			   "kernel", uts.release));
	while (!poweroff_requested) {
		uint64_t now = now_ns(), next = now + 1000000000ull;
		int nfds = 0, timeout_ms, n;

		pfd[nfds++] = (struct pollfd){ .fd = port_in, .events = POLLIN };
		for (int i = 0; i < MAX_RUNS; i++) {
			struct run *r = &runs[i];

			if (!r->used)
				continue;
			if (!r->timed_out && now >= r->deadline_ns) {
				r->timed_out = true;
				kill(-r->pid, SIGKILL);
				kill(r->pid, SIGKILL);
			}
			if (!r->timed_out && r->deadline_ns < next)
				next = r->deadline_ns;
			owner[nfds] = r;
			pfd[nfds++] = (struct pollfd){ .fd = r->pidfd, .events = POLLIN };
			owner[nfds] = r;
			pfd[nfds++] = (struct pollfd){ .fd = r->out_fd, .events = POLLIN };
			owner[nfds] = r;
			pfd[nfds++] = (struct pollfd){ .fd = r->err_fd, .events = POLLIN };
		}
		timeout_ms = (int)((next - now) / 1000000) + 1;
		n = poll(pfd, nfds, timeout_ms);
		if (n < 0 && errno != EINTR) {
			ht_err("poll: %s", strerror(errno));
			return;
		}
		for (int k = 1; n > 0 && k < nfds; k++) {
			struct run *r = owner[k];

			if (!pfd[k].revents || !r->used)
				continue;
			if (pfd[k].fd == r->pidfd)
				finish_run(r);
			else if (pfd[k].fd == r->out_fd)
				drain(&r->out_fd, r->out, &r->out_len, sizeof(r->out) - 1);
			else if (pfd[k].fd == r->err_fd)
				drain(&r->err_fd, r->err, &r->err_len, sizeof(r->err) - 1);
		}
		if (n <= 0 || !pfd[0].revents)
			continue;
		if (!(pfd[0].revents & POLLIN)) {
			/* virtio-serial reports POLLHUP while no host is connected. */
			if (port_in == 0)
				return; /* --stdio: end of input */
			usleep(200000);
			continue;
		}
		ssize_t got = read(port_in, buf + len, AGENT_MAX_LINE - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (port_in == 0)
				return;
			usleep(200000);
			continue;
		}
		len += got;
		char *start = buf, *nl;

		while ((nl = memchr(start, '\n', len - (start - buf)))) {
			*nl = 0;
			if (skipping)
				skipping = false;
			else if (nl > start)
				handle_line(start);
			start = nl + 1;
		}
		len -= start - buf;
		memmove(buf, start, len);
		if (len == AGENT_MAX_LINE) {
			if (!skipping)
				send_error(NULL, "request longer than %d bytes", AGENT_MAX_LINE);
			skipping = true;
			len = 0;
		}
	}
}

/* As PID 1, stay behind as the reaper of orphans (e.g. the ht-integrity daemon)
 * and power off when the agent ends. */
static void become_init_child(void)
{
	pid_t agent = fork();

	if (agent == 0)
		return;
	for (;;) {
		pid_t pid = wait(NULL);

		if (pid == agent || (pid < 0 && errno == ECHILD)) {
			sync();
			reboot(RB_POWER_OFF);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stdio", no_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{},
	};
	const char *device = NULL;
	bool use_stdio = false;
	int c;

	while ((c = getopt_long(argc, argv, "sd:v", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			use_stdio = true;
			break;
		case 'd':
			device = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			fprintf(stderr, "usage: hatrace-guest [--stdio | --device PATH] [-v]\n");
			return 2;
		}
	}
	if (optind < argc) {
		ht_err("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (getpid() == 1)
		become_init_child();
	signal(SIGPIPE, SIG_IGN);
	setup_libbpf();
	if (use_stdio) {
		port_in = 0;
		port_out = 1;
	} else {
		port_in = device ? open(device, O_RDWR | O_CLOEXEC) : open_agent_port();
		if (port_in < 0) {
			ht_err("cannot open the agent port %s: %s",
			       device ? device : AGENT_PORT_NAME, strerror(errno));
			return 1;
		}
		port_out = port_in;
	}
	serve();
	trace_stop();
	return 0; /* as the child of PID 1, ending powers the guest off */
}
