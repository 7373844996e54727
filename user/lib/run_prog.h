/* Runs a program from an argv, never through a shell. */
#ifndef HATRACE_RUN_PROG_H
#define HATRACE_RUN_PROG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Runs argv[0] (searched on PATH when it has no '/') with stdin and stderr on
 * /dev/null; out (NUL-terminated) receives the start of its stdout, the rest is
 * read and dropped. It is killed after timeout_ns. Returns its exit status, or
 * -ETIMEDOUT, -EINTR (Ctrl-C) or another -errno (e.g. -ENOENT). */
int run_capture(const char *const argv[], uint64_t timeout_ns, char *out, size_t len);

/* Starts argv[0] in the background, stdout and stderr to the file log.
 * Returns its pid or -errno. */
pid_t run_background(const char *const argv[], const char *log);
/* SIGINT, then SIGKILL after timeout_ns; reaps it. Returns its exit status
 * (128 + signal), or -ETIMEDOUT when it had to be killed. */
int run_stop(pid_t pid, uint64_t timeout_ns);

#endif
