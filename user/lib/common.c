#include "common.h"

#include <bpf/libbpf.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

bool verbose;
volatile int exiting;

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "hatrace: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ht_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void ht_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

/* A whole-string decimal number, no sign or space; no message. */
static int strict_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int err = strict_u64(s, &v);

	if (err == -EINVAL) {
		ht_err("%s: '%s' is not a non-negative integer", opt, s ? s : "");
		return err;
	}
	if (err || v < min || v > max) {
		ht_err("%s: %s is out of range [%llu, %llu]", opt, s, (unsigned long long)min,
		       (unsigned long long)max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int parse_size(const char *opt, const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	char num[32];
	size_t n = s ? strlen(s) : 0;
	const char *u;
	uint64_t v, mult = 1;
	int err = -EINVAL;

	if (n > 0 && n < sizeof(num)) {
		memcpy(num, s, n + 1);
		/* accept "MB"/"GiB"-less "GB" too */
		if (n > 1 && (num[n - 1] == 'B' || num[n - 1] == 'b') &&
		    strchr(units, num[n - 2] & ~0x20))
			num[--n] = 0;
		u = strchr(units, num[n - 1] & ~0x20);
		if (u && num[n - 1] > '9') {
			mult = 1ULL << (10 * (u - units + 1));
			num[--n] = 0;
		}
		err = strict_u64(num, &v);
		if (!err && v > UINT64_MAX / mult)
			err = -ERANGE;
	}
	if (err == -ERANGE)
		ht_err("%s: %s is too large", opt, s);
	else if (err)
		ht_err("%s: '%s' is not a size (e.g. 512M, 2G)", opt, s ? s : "");
	else
		*out = v * mult;
	return err;
}

int parse_seconds_ns(const char *opt, const char *s, uint64_t min_ns, uint64_t max_ns,
		     uint64_t *out)
{
	size_t whole = s ? strspn(s, "0123456789") : 0, frac = 0;
	double v;

	/* digits with an optional fraction: no sign, exponent, hex, inf or nan */
	if (s && s[whole] == '.')
		frac = strspn(s + whole + 1, "0123456789");
	if (!s || (!whole && !frac) || s[whole + (s[whole] == '.') + frac]) {
		ht_err("%s: '%s' is not a non-negative number of seconds", opt, s ? s : "");
		return -EINVAL;
	}
	v = strtod(s, NULL);
	if (v * 1e9 < (double)min_ns || v * 1e9 > (double)max_ns) {
		ht_err("%s: %s s is out of range [%g, %g] s", opt, s, min_ns / 1e9, max_ns / 1e9);
		return -ERANGE;
	}
	*out = (uint64_t)(v * 1e9);
	return 0;
}

/* The Tgid line of /proc/PID/status: the process a thread belongs to. */
static int tgid_of(int pid)
{
	static const char *const key[] = { "Tgid" };
	char path[64];
	uint64_t tgid;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	return proc_fields(path, key, &tgid, 1) == 1 ? (int)tgid : -1;
}

int parse_pid(const char *s, int *pid)
{
	uint64_t v;
	int tgid;

	if (parse_u64("-p", s, 1, INT_MAX, &v))
		return -EINVAL;
	tgid = tgid_of((int)v);
	if (tgid < 0) {
		ht_err("-p: no process with PID %llu", (unsigned long long)v);
		return -ESRCH;
	}
	if (tgid != (int)v) {
		ht_err("-p: %llu is a thread of process %d; pass the process ID",
		       (unsigned long long)v, tgid);
		return -EINVAL;
	}
	*pid = (int)v;
	return 0;
}

int pid_watch(int pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

bool pid_exited(int pid, int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	/* a pidfd is readable once the process has exited, zombie or not */
	if (pidfd >= 0)
		return poll(&p, 1, 0) > 0;
	return !pid_alive(pid);
}

static const char *const fmt_names[] = {
	[OUT_TEXT] = "text", [OUT_JSON] = "json", [OUT_CSV] = "csv", [OUT_PERFETTO] = "perfetto",
};

int parse_out_fmt(const char *s, unsigned allowed, enum out_fmt *out)
{
	char list[64] = "";

	for (unsigned i = 0; i < ARRAY_SIZE(fmt_names); i++) {
		if (!(allowed & (1u << i)))
			continue;
		if (!strcmp(s, fmt_names[i])) {
			*out = i;
			return 0;
		}
		if (*list)
			strcat(list, "|");
		strcat(list, fmt_names[i]);
	}
	ht_err("-o: unknown output format '%s' (expected %s)", s, list);
	return -EINVAL;
}

int parse_interval_count(int argc, char **argv, int optind, uint64_t *interval_s,
			 uint64_t *count)
{
	if (optind < argc && parse_u64("interval", argv[optind++], 1, 86400, interval_s))
		return -EINVAL;
	if (optind < argc && parse_u64("count", argv[optind++], 1, UINT32_MAX, count))
		return -EINVAL;
	if (optind < argc) {
		ht_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int common_option(int c, char **argv, void (*usage)(FILE *))
{
	switch (c) {
	case 'v':
		verbose = true;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	case ':': /* optstrings start with ':' so a missing value is told apart */
		ht_err("option %s needs a value (see 'hatrace %s --help')", argv[optind - 1],
		       argv[0]);
		return -EINVAL;
	default:
		if (optopt)
			ht_err("unknown option -%c (see 'hatrace %s --help')", optopt, argv[0]);
		else
			ht_err("unknown option '%s' (see 'hatrace %s --help')", argv[optind - 1],
			       argv[0]);
		return -EINVAL;
	}
}

int no_operands(int argc, char **argv)
{
	if (optind >= argc)
		return 0;
	ht_err("unexpected argument '%s'", argv[optind]);
	return -EINVAL;
}

int require_root(const char *what)
{
	if (geteuid() == 0)
		return 0;
	ht_err("%s needs root (CAP_BPF and CAP_PERFMON): run it with sudo", what);
	return -EPERM;
}

const char *tracefs_dir(void)
{
	const char *dir = getenv("HATRACE_TRACEFS");

	return dir && *dir ? dir : "/sys/kernel/tracing";
}

int ensure_tracefs(void)
{
	char events[512];
	struct stat st;

	snprintf(events, sizeof(events), "%s/events", tracefs_dir());
	if (stat(events, &st) == 0)
		return 0;
	if (getenv("HATRACE_TRACEFS")) {
		ht_err("HATRACE_TRACEFS=%s has no events directory", tracefs_dir());
		return -ENOENT;
	}
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) && errno != EBUSY) {
		int err = -errno; /* ht_err may change errno */

		ht_err("tracefs is not mounted and mounting it failed: %s", strerror(-err));
		return err;
	}
	return 0;
}

bool tracepoint_exists(const char *category, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/events/%s/%s", tracefs_dir(), category, name);
	return access(path, F_OK) == 0;
}

/* Quiet unless -v: hatrace reports failures itself, with the reason. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return verbose ? vfprintf(stderr, fmt, ap) : 0;
}

void setup_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}

static void on_signal(int sig)
{
	exiting = 1;
}

void install_signal_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL); /* the terminal went away: finish as for Ctrl-C */
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

bool pid_alive(int pid)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	return access(path, F_OK) == 0;
}

int read_comm(int pid, char *buf, size_t len)
{
	char path[32];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* Length of the valid UTF-8 sequence s starts with, or 0 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid, as for jansson). */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned n, min, cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, min = 0x80, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, min = 0x800, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, min = 0x10000, cp = s[0] & 0x07;
	else
		return 0;
	for (unsigned i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

json_t *json_string_lossy(const char *s)
{
	json_t *str;
	char *clean, *o;

	if (!s)
		return json_null();
	if ((str = json_string(s)))
		return str;
	o = clean = malloc(strlen(s) * 3 + 1);
	if (!clean)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_seq_len(p);

		if (n) {
			memcpy(o, p, n);
			o += n, p += n;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD for one bad byte */
			o += 3, p++;
		}
	}
	*o = 0;
	str = json_string(clean);
	free(clean);
	return str;
}

double json_number_or_nan(const json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : NAN;
}

void json_println(FILE *f, json_t *doc)
{
	json_dumpf(doc, f, JSON_COMPACT);
	fputc('\n', f);
	fflush(f);
	json_decref(doc);
}

/* Where a replaced output goes: path itself, or a symlink's target (the link
 * stays). Character devices and FIFOs are written in place (*direct). */
static int out_target(const char *path, char **target, bool *direct)
{
	struct stat st;
	int err;

	*target = NULL;
	*direct = false;
	if (!*path) {
		ht_err("cannot write to an empty path");
		return -EINVAL;
	}
	if (lstat(path, &st)) {
		if (errno != ENOENT)
			goto err;
		*target = strdup(path); /* a new file */
		return *target ? 0 : -ENOMEM;
	}
	if (stat(path, &st)) {
		if (errno == ENOENT) {
			ht_err("cannot write %s: it is a symbolic link to a missing file", path);
			return -ENOENT;
		}
		goto err;
	}
	if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
		*direct = true;
		*target = strdup(path);
		return *target ? 0 : -ENOMEM;
	}
	if (S_ISDIR(st.st_mode)) {
		ht_err("cannot write %s: it is a directory", path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode)) {
		ht_err("cannot write %s: it is not a regular file, character device or FIFO", path);
		return -EINVAL;
	}
	*target = realpath(path, NULL);
	if (*target)
		return 0;
err:
	err = -errno; /* ht_err may change errno */
	ht_err("cannot write %s: %s", path, strerror(-err));
	return err;
}

int out_file_check(const char *path)
{
	char *target;
	bool direct;
	int err;

	if (!path || !strcmp(path, "-"))
		return 0;
	err = out_target(path, &target, &direct);
	free(target);
	return err;
}

int out_file_open(struct out_file *of, const char *path)
{
	bool direct;
	mode_t mask;
	int fd, err;

	memset(of, 0, sizeof(*of));
	if (!path || !strcmp(path, "-")) {
		of->f = stdout;
		return 0;
	}
	if ((err = out_target(path, &of->path, &direct)))
		return err;
	if (direct) {
		/* a FIFO blocks here until a reader opens it, as in the shell */
		fd = open(path, O_WRONLY | O_CLOEXEC);
		of->f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!of->f) {
			err = -errno;
			ht_err("cannot write %s: %s", path, strerror(-err));
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		return 0;
	}
	if (asprintf(&of->tmp, "%s.XXXXXX", of->path) < 0) {
		of->tmp = NULL;
		err = -ENOMEM;
		goto fail;
	}
	fd = mkstemp(of->tmp);
	if (fd < 0) {
		err = -errno;
		ht_err("cannot create %s: %s", path, strerror(errno));
		goto fail;
	}
	mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask); /* mkstemp creates 0600; give it the usual mode */
	of->f = fdopen(fd, "w");
	if (!of->f) {
		err = -errno;
		ht_err("cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(of->tmp);
		goto fail;
	}
	return 0;
fail:
	free(of->tmp);
	free(of->path);
	memset(of, 0, sizeof(*of));
	return err;
}

int out_file_commit(struct out_file *of)
{
	bool write_failed = ferror(of->f);
	struct stat st;
	int err = 0;

	errno = 0;
	if (of->f == stdout)
		return fflush(of->f) || write_failed ? (errno ? -errno : -EIO) : 0;
	/* a short write (full disk) must not be renamed into place */
	if (fclose(of->f) || write_failed) {
		err = errno ? -errno : -EIO;
		ht_err("cannot write %s: %s", of->path, strerror(-err));
		if (of->tmp)
			unlink(of->tmp);
	} else if (of->tmp && !lstat(of->path, &st) && !S_ISREG(st.st_mode)) {
		err = -EEXIST;
		ht_err("%s is no longer a regular file: not replaced; the output is in %s", of->path,
		       of->tmp);
	} else if (of->tmp && rename(of->tmp, of->path)) {
		err = -errno;
		ht_err("cannot rename %s to %s: %s; the output is in %s", of->tmp, of->path,
		       strerror(errno), of->tmp);
	}
	free(of->tmp);
	free(of->path);
	memset(of, 0, sizeof(*of));
	return err;
}

void out_file_abort(struct out_file *of)
{
	if (of->f && of->f != stdout)
		fclose(of->f);
	if (of->tmp)
		unlink(of->tmp);
	free(of->tmp);
	free(of->path);
	memset(of, 0, sizeof(*of));
}

/* A path relative to the directory of the running binary, malloc'ed. */
char *exe_relative(const char *rel)
{
	char exe[PATH_MAX], *p, *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	if (asprintf(&p, "%s/%s", exe, rel) < 0)
		return NULL;
	return p;
}

int proc_fields(const char *path, const char *const *keys, uint64_t *vals, int n)
{
	char line[256], key[64], unit[8];
	unsigned long long v;
	int found = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	for (int i = 0; i < n; i++)
		vals[i] = 0;
	while (fgets(line, sizeof(line), f)) {
		int m = sscanf(line, "%63[^:]: %llu %7s", key, &v, unit);

		if (m < 2)
			continue;
		for (int i = 0; i < n; i++) {
			if (strcmp(key, keys[i]))
				continue;
			vals[i] = m == 3 && !strcmp(unit, "kB") ? v << 10 : v;
			found++;
		}
	}
	fclose(f);
	return found;
}
