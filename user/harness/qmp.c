#include "qmp.h"
#include "common.h"
#include "jsonl.h"
#include "safe_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define QMP_MAX_LINE (4 << 20)

struct qmp {
	struct jsonl c;
	int next_id;
};

int qmp_open(struct qmp **out, const char *path, int qemu_pid, uint64_t timeout_ns)
{
	struct qmp *q = calloc(1, sizeof(*q));
	json_t *greeting;
	int err;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	err = jsonl_connect(&q->c, "QMP", path, QMP_MAX_LINE, qemu_pid, timeout_ns);
	if (err) {
		free(q);
		return err;
	}
	err = jsonl_read(&q->c, now_ns() + timeout_ns, &greeting);
	if (!err && !json_object_get(greeting, "QMP")) {
		ht_err("QMP: unexpected greeting");
		err = -EPROTO;
	}
	json_decref(greeting);
	if (!err)
		err = qmp_call(q, "qmp_capabilities", NULL, NULL, timeout_ns);
	if (err) {
		qmp_close(q);
		return err;
	}
	*out = q;
	return 0;
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret, uint64_t timeout_ns)
{
	json_t *req = json_pack("{s:s}", "execute", cmd), *msg, *error;
	int err;

	if (ret)
		*ret = NULL;
	if (req && args)
		json_object_set_new(req, "arguments", args);
	else
		json_decref(args);
	err = jsonl_call(&q->c, req, ++q->next_id, now_ns() + timeout_ns, &msg);
	json_decref(req);
	if (err == -EPIPE)
		ht_err("QMP %s: QEMU closed the connection (did it exit?)", cmd);
	else if (err == -ETIMEDOUT)
		ht_err("QMP %s: no reply within %.1f s", cmd, timeout_ns / 1e9);
	if (err)
		return err;
	error = json_object_get(msg, "error");
	if (error) {
		const char *desc = json_string_value(json_object_get(error, "desc"));
		char shown[256];

		ht_err("QMP %s failed: %s", cmd,
		       desc ? term_safe(shown, sizeof(shown), desc, strlen(desc)) : "(no description)");
		json_decref(msg);
		return -EREMOTEIO;
	}
	if (ret)
		*ret = json_incref(json_object_get(msg, "return"));
	json_decref(msg);
	return 0;
}

int qmp_balloon(struct qmp *q, uint64_t target)
{
	return qmp_call(q, "balloon", json_pack("{s:I}", "value", (json_int_t)target), NULL,
			10000000000ull);
}

int qmp_balloon_actual(struct qmp *q, uint64_t *bytes)
{
	json_t *ret;
	int err = qmp_call(q, "query-balloon", NULL, &ret, 5000000000ull);
	json_t *v;

	if (err)
		return err;
	v = json_object_get(ret, "actual");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		ht_err("QMP query-balloon: no integer 'actual'");
		err = -EPROTO;
	} else {
		*bytes = json_integer_value(v);
	}
	json_decref(ret);
	return err;
}

int qmp_qom_get_u64(struct qmp *q, const char *path, const char *prop, uint64_t *out)
{
	json_t *ret;
	int err = qmp_call(q, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop),
			   &ret, 5000000000ull);

	if (err)
		return err;
	if (!json_is_integer(ret) || json_integer_value(ret) < 0) {
		ht_err("QMP qom-get %s.%s: not a non-negative integer", path, prop);
		err = -EPROTO;
	} else {
		*out = json_integer_value(ret);
	}
	json_decref(ret);
	return err;
}

int qmp_qom_set_u64(struct qmp *q, const char *path, const char *prop, uint64_t val)
{
	return qmp_call(q, "qom-set",
			json_pack("{s:s, s:s, s:I}", "path", path, "property", prop, "value",
				  (json_int_t)val),
			NULL, 5000000000ull);
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	jsonl_close(&q->c);
	free(q);
}
