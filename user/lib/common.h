/* Shared helpers of the hatrace CLI: errors, strict number parsing, output formats. */
#ifndef HATRACE_COMMON_H
#define HATRACE_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

extern bool verbose;
extern volatile int exiting; /* set by SIGINT/SIGTERM/SIGHUP */

void ht_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ht_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whole-string unsigned parse in [min, max]; errors name the option. */
int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Sizes such as 512M, 2G, 4096 (bytes, binary suffixes K M G T). */
int parse_size(const char *opt, const char *s, uint64_t *out);
/* Seconds with an optional fraction, e.g. "1.5"; result in ns. */
int parse_seconds_ns(const char *opt, const char *s, uint64_t min_ns, uint64_t max_ns,
		     uint64_t *out);
/* A process ID (not a thread's) of a live process. */
int parse_pid(const char *s, int *pid);
/* A pidfd for pid (-1 where pidfd_open is missing) and whether it exited;
 * a pidfd is not fooled by zombies or by the PID being reused. */
int pid_watch(int pid);
bool pid_exited(int pid, int pidfd);

enum out_fmt { OUT_TEXT, OUT_JSON, OUT_CSV, OUT_PERFETTO };
/* allowed is a bitmask of (1 << OUT_*). */
int parse_out_fmt(const char *s, unsigned allowed, enum out_fmt *out);

/* Parses the trailing libbpf-tools style `interval [count]` operands. */
int parse_interval_count(int argc, char **argv, int optind, uint64_t *interval_s,
			 uint64_t *count);

/* The options every subcommand shares, for the default branch of its getopt
 * loop (whose optstring starts with ':'): -v sets verbose, -h prints usage and
 * exits 0, anything else is an error naming the option. 0 or -EINVAL. */
int common_option(int c, char **argv, void (*usage)(FILE *));
/* An error for operands a subcommand does not take. */
int no_operands(int argc, char **argv);
/* rel relative to the directory of the running binary (malloc'ed; NULL if unknown). */
char *exe_relative(const char *rel);
/* The values of keys in a "Key: N [kB]" file (/proc/PID/status, /proc/meminfo),
 * kB ones in bytes, others as they are, 0 if absent. Returns how many keys were
 * found, or -errno. */
int proc_fields(const char *path, const char *const *keys, uint64_t *vals, int n);

int require_root(const char *what);
/* tracefs mount point: $HATRACE_TRACEFS, else /sys/kernel/tracing (mounted if needed). */
const char *tracefs_dir(void);
int ensure_tracefs(void);
bool tracepoint_exists(const char *category, const char *name);
void setup_libbpf(void);
void install_signal_handlers(void);
uint64_t now_ns(void); /* CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() uses */
bool pid_alive(int pid);
int read_comm(int pid, char *buf, size_t len);

/* A JSON string of any C string (NULL: null): each byte that is not part of
 * valid UTF-8 becomes U+FFFD. For names from the kernel or a guest, which may
 * be cut in the middle of a character. */
json_t *json_string_lossy(const char *s);
/* Writes one compact JSON document and a newline, then frees it. */
void json_println(FILE *f, json_t *doc);
/* A JSON number's value, NAN for anything else (null, absent). */
double json_number_or_nan(const json_t *v);

/* An output file. A regular file (or a new one) is written to a temporary name
 * and renamed over it on success, so that an error never leaves a partial file
 * behind; a symlink to a regular file has its target replaced. Character
 * devices and FIFOs are written in place; other kinds of file, a dangling
 * symlink and "" are refused when opened. NULL or "-" is stdout. */
struct out_file {
	FILE *f;
	char *path;
	char *tmp;
};
/* The checks of out_file_open without creating anything, to refuse a bad path early. */
int out_file_check(const char *path);
int out_file_open(struct out_file *of, const char *path);
int out_file_commit(struct out_file *of);
void out_file_abort(struct out_file *of);

#endif
