#include "agent.h"
#include "agent_proto.h"
#include "common.h"
#include "qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct agent {
	struct jconn c;
	int next_id;
};

int agent_open(struct agent **out, const char *path, int qemu_pid, uint64_t timeout_ns)
{
	struct agent *a = calloc(1, sizeof(*a));
	int err;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	err = jconn_connect(&a->c, "guest agent", path, AGENT_MAX_LINE, qemu_pid, timeout_ns);
	if (err) {
		free(a);
		return err;
	}
	*out = a;
	return 0;
}

int agent_wait_ready(struct agent *a, uint64_t timeout_ns, char *kernel, size_t len)
{
	uint64_t deadline = now_ns() + timeout_ns;
	json_t *msg;
	int err;

	while (!(err = jconn_read(&a->c, deadline, &msg))) {
		const char *ev = json_string_value(json_object_get(msg, "event"));

		if (ev && !strcmp(ev, "ready")) {
			const char *k = json_string_value(json_object_get(msg, "kernel"));

			if (kernel && len)
				snprintf(kernel, len, "%s", k ? k : "unknown");
			json_decref(msg);
			return 0;
		}
		json_decref(msg);
	}
	return err;
}

int agent_call(struct agent *a, json_t *req, uint64_t timeout_ns, json_t **reply)
{
	uint64_t deadline = now_ns() + timeout_ns;
	int id = ++a->next_id;
	char cmd[32];
	json_t *msg;
	int err;

	*reply = NULL;
	snprintf(cmd, sizeof(cmd), "%s", json_string_value(json_object_get(req, "cmd")) ?: "?");
	json_object_set_new(req, "id", json_integer(id));
	err = jconn_send(&a->c, req);
	json_decref(req);
	while (!err && !(err = jconn_read(&a->c, deadline, &msg))) {
		json_t *jid = json_object_get(msg, "id");

		if (!json_is_integer(jid) || json_integer_value(jid) != id) {
			json_decref(msg); /* events, stale replies */
			continue;
		}
		if (!json_is_true(json_object_get(msg, "ok"))) {
			const char *e = json_string_value(json_object_get(msg, "error"));
			const char *tail = json_string_value(json_object_get(msg, "stderr"));

			ht_err("guest agent %s failed: %s%s%.400s", cmd, e ? e : "(no error text)",
			       tail ? "; stderr: " : "", tail ? tail : "");
			*reply = msg;
			return -EREMOTEIO;
		}
		*reply = msg;
		return 0;
	}
	if (err == -EPIPE)
		ht_err("guest agent %s: connection closed (did QEMU exit?)", cmd);
	else if (err == -ETIMEDOUT)
		ht_err("guest agent %s: no reply within %.0f s", cmd, timeout_ns / 1e9);
	return err;
}

static int get_u64(json_t *obj, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		ht_err("guest agent: reply lacks a non-negative integer '%s'", key);
		return -EPROTO;
	}
	*out = json_integer_value(v);
	return 0;
}

int agent_clock_offset(struct agent *a, int n, int64_t *offset_ns, uint64_t *rtt_ns)
{
	uint64_t best = UINT64_MAX;
	int err;

	for (int i = 0; i < n; i++) {
		json_t *reply;
		uint64_t t0 = now_ns(), t1, guest;

		err = agent_call(a, json_pack("{s:s}", "cmd", "ping"), 10000000000ull, &reply);
		t1 = now_ns();
		if (!err)
			err = get_u64(reply, "mono_ns", &guest);
		json_decref(reply);
		if (err)
			return err;
		if (t1 - t0 < best) {
			best = t1 - t0;
			*offset_ns = (int64_t)(t0 + (t1 - t0) / 2) - (int64_t)guest;
		}
	}
	*rtt_ns = best;
	return 0;
}

int agent_run(struct agent *a, const char *const *argv, unsigned timeout_s, json_t **result,
	      uint64_t *elapsed_ns)
{
	json_t *args = json_array(), *reply, *res, *ex;
	int err;

	if (result)
		*result = NULL;
	for (int i = 0; argv[i]; i++)
		json_array_append_new(args, json_string(argv[i]));
	err = agent_call(a,
			 json_pack("{s:s, s:o, s:i}", "cmd", "run", "argv", args, "timeout_s",
				   (int)timeout_s),
			 (timeout_s + 30) * 1000000000ull, &reply);
	if (err) {
		json_decref(reply);
		return err;
	}
	ex = json_object_get(reply, "exit");
	if (!json_is_integer(ex) || json_integer_value(ex) != 0) {
		const char *tail = json_string_value(json_object_get(reply, "stderr"));

		ht_err("guest: %s exited with status %lld%s%.400s", argv[0],
		       json_is_integer(ex) ? (long long)json_integer_value(ex) : -1LL,
		       tail ? "; stderr: " : "", tail ? tail : "");
		json_decref(reply);
		return -EREMOTEIO;
	}
	if (elapsed_ns && get_u64(reply, "elapsed_ns", elapsed_ns))
		*elapsed_ns = 0;
	res = json_object_get(reply, "result");
	if (result && json_is_object(res))
		*result = json_incref(res);
	json_decref(reply);
	return 0;
}

int agent_meminfo(struct agent *a, const char *field, uint64_t *bytes)
{
	json_t *reply;
	int err = agent_call(a, json_pack("{s:s}", "cmd", "meminfo"), 10000000000ull, &reply);

	if (!err)
		err = get_u64(reply, field, bytes);
	json_decref(reply);
	return err;
}

int agent_poweroff(struct agent *a)
{
	json_t *reply;
	int err = agent_call(a, json_pack("{s:s}", "cmd", "poweroff"), 10000000000ull, &reply);

	json_decref(reply);
	return err;
}

void agent_close(struct agent *a)
{
	if (!a)
		return;
	jconn_close(&a->c);
	free(a);
}
