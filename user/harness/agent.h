/* Host side of the hatrace-guest agent protocol (see agent_proto.h). Every
 * reply is guest-controlled input: types are checked, never trusted. */
#ifndef HATRACE_AGENT_H
#define HATRACE_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent;

int agent_open(struct agent **a, const char *path, int qemu_pid, uint64_t timeout_ns);
/* Waits for the guest's "ready" event; kernel (may be NULL) receives uname -r. */
int agent_wait_ready(struct agent *a, uint64_t timeout_ns, char *kernel, size_t len);
/* Sends req (stolen) with a fresh id and waits for its reply; a reply with
 * "ok": false is printed and returns -EREMOTEIO. */
int agent_call(struct agent *a, json_t *req, uint64_t timeout_ns, json_t **reply);
/* host CLOCK_MONOTONIC - guest CLOCK_MONOTONIC, from the best of n pings. */
int agent_clock_offset(struct agent *a, int n, int64_t *offset_ns, uint64_t *rtt_ns);
/* Runs a guest program; *result (may be NULL) gets its JSON result object,
 * *elapsed_ns the guest-measured run time. A non-zero exit is an error. */
int agent_run(struct agent *a, const char *const *argv, unsigned timeout_s, json_t **result,
	      uint64_t *elapsed_ns);
/* A guest-reported count or time: an integer in [0, 2^63). */
bool agent_u64(json_t *obj, const char *key, uint64_t *out);
/* A guest-provided name that is safe as a CSV field and a JSON key. */
bool agent_plain_name(const char *s);
/* Guest trace counters (cumulative since trace_start) as {"name": {"count",
 * "sum_ns", "first_ns", "last_ns", "timed"}}, every value in [0, 2^63) and
 * first_ns <= last_ns; timed is false for a count-only probe (a tracepoint),
 * whose sum_ns is no time. Events that do not parse are left out with a warning. */
int agent_trace_read(struct agent *a, json_t **events);
/* cur - prev per event, for events that counted anything; never negative. */
json_t *agent_trace_delta(json_t *prev, json_t *cur);
/* guest-reported bytes of a meminfo field, e.g. "MemFree". */
int agent_meminfo(struct agent *a, const char *field, uint64_t *bytes);
int agent_poweroff(struct agent *a);
void agent_close(struct agent *a);

#endif
