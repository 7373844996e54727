/* The QMP client, on the JSON-lines transport of jsonl.h. */
#ifndef HATRACE_QMP_H
#define HATRACE_QMP_H

#include <jansson.h>
#include <stdint.h>

struct qmp;

/* Connects, reads the greeting and negotiates capabilities. */
int qmp_open(struct qmp **q, const char *path, int qemu_pid, uint64_t timeout_ns);
/* Executes cmd with args (stolen; may be NULL). *ret (may be NULL) receives
 * the "return" value. A QMP error is printed (made safe for a terminal) and
 * returns -EREMOTEIO. */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret, uint64_t timeout_ns);
/* Convenience for integer results: query-balloon "actual", qom-get of an int. */
int qmp_balloon_actual(struct qmp *q, uint64_t *bytes);
/* Asks the balloon to leave the guest target bytes. */
int qmp_balloon(struct qmp *q, uint64_t target);
int qmp_qom_get_u64(struct qmp *q, const char *path, const char *prop, uint64_t *out);
int qmp_qom_set_u64(struct qmp *q, const char *path, const char *prop, uint64_t val);
void qmp_close(struct qmp *q);

#endif
