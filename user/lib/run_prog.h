/* Runs a program from an argv, never through a shell. */
#ifndef HATRACE_RUN_PROG_H
#define HATRACE_RUN_PROG_H

#include <stddef.h>
#include <stdint.h>

/* Runs argv[0] (searched on PATH when it has no '/') with stdin and stderr on
 * /dev/null; out (NUL-terminated) receives the start of its stdout, the rest is
 * read and dropped. It is killed after timeout_ns. Returns its exit status, or
 * -ETIMEDOUT, -EINTR (Ctrl-C) or another -errno (e.g. -ENOENT). */
int run_capture(const char *const argv[], uint64_t timeout_ns, char *out, size_t len);

#endif
