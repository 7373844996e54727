#include "agent.h"
#include "agent_proto.h"
#include "common.h"
#include "jsonl.h"
#include "safe_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct agent {
	struct jsonl c;
	int next_id;
};

int agent_open(struct agent **out, const char *path, int qemu_pid, uint64_t timeout_ns)
{
	struct agent *a = calloc(1, sizeof(*a));
	int err;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	err = jsonl_connect(&a->c, "guest agent", path, AGENT_MAX_LINE, qemu_pid, timeout_ns);
	if (err) {
		free(a);
		return err;
	}
	*out = a;
	return 0;
}

static bool is_ready_event(json_t *msg, void *unused)
{
	const char *ev = json_string_value(json_object_get(msg, "event"));

	return ev && !strcmp(ev, "ready");
}

int agent_wait_ready(struct agent *a, uint64_t timeout_ns, char *kernel, size_t len)
{
	json_t *msg;
	int err = jsonl_wait(&a->c, now_ns() + timeout_ns, is_ready_event, NULL, &msg);
	const char *k = json_string_value(json_object_get(msg, "kernel"));

	if (!err && kernel && len)
		term_safe(kernel, len, k ? k : "unknown", strlen(k ? k : "unknown"));
	json_decref(msg);
	return err;
}

/* A string of the reply, or "", made safe for the terminal. */
static const char *shown(json_t *reply, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(reply, key));

	return term_safe(buf, len, s ? s : "", s ? strlen(s) : 0);
}

int agent_call(struct agent *a, json_t *req, uint64_t timeout_ns, json_t **reply)
{
	char cmd[32], error[256], tail[404];
	int err;

	*reply = NULL;
	shown(req, "cmd", cmd, sizeof(cmd));
	err = jsonl_call(&a->c, req, ++a->next_id, now_ns() + timeout_ns, reply);
	json_decref(req);
	if (err == -EPIPE)
		ht_err("guest agent %s: connection closed (did QEMU exit?)", cmd);
	else if (err == -ETIMEDOUT)
		ht_err("guest agent %s: no reply within %.0f s", cmd, timeout_ns / 1e9);
	if (err)
		return err;
	if (!json_is_true(json_object_get(*reply, "ok"))) {
		shown(*reply, "error", error, sizeof(error));
		shown(*reply, "stderr", tail, sizeof(tail));
		ht_err("guest agent %s failed: %s%s%s", cmd, *error ? error : "(no error text)",
		       *tail ? "; stderr: " : "", tail);
		return -EREMOTEIO;
	}
	return 0;
}

bool agent_u64(json_t *obj, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = json_integer_value(v);
	return true;
}

static int get_u64(json_t *obj, const char *key, uint64_t *out)
{
	char name[72];

	if (agent_u64(obj, key, out))
		return 0;
	ht_err("guest agent: reply lacks a non-negative integer '%s'",
	       term_safe(name, sizeof(name), key, strlen(key)));
	return -EPROTO;
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
			/* Both clocks are below 2^63: the difference cannot overflow. */
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
		char prog[64], tail[404];

		ht_err("guest: %s exited with status %lld%s%s",
		       term_safe(prog, sizeof(prog), argv[0], strlen(argv[0])),
		       json_is_integer(ex) ? (long long)json_integer_value(ex) : -1LL,
		       json_is_string(json_object_get(reply, "stderr")) ? "; stderr: " : "",
		       shown(reply, "stderr", tail, sizeof(tail)));
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

bool agent_plain_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:+-") == n;
}

/* Absent (0) or an agent_u64. */
static bool optional_u64(json_t *obj, const char *key, uint64_t *out)
{
	return !json_object_get(obj, key) || agent_u64(obj, key, out);
}

int agent_trace_read(struct agent *a, json_t **events)
{
	json_t *reply, *ev, *res;
	unsigned dropped = 0;
	size_t i;
	int err;

	*events = NULL;
	err = agent_call(a, json_pack("{s:s}", "cmd", "trace_read"), 30000000000ull, &reply);
	if (err) {
		json_decref(reply);
		return err;
	}
	res = json_object();
	json_array_foreach(json_object_get(reply, "events"), i, ev) {
		const char *name = json_string_value(json_object_get(ev, "name"));
		const char *mode = json_string_value(json_object_get(ev, "mode"));
		uint64_t count, sum, first = 0, last = 0;

		if (!agent_plain_name(name) || !agent_u64(ev, "count", &count) ||
		    !agent_u64(ev, "sum_ns", &sum) || !optional_u64(ev, "first_ns", &first) ||
		    !optional_u64(ev, "last_ns", &last) || first > last) {
			dropped++; /* guest data: what does not parse or is out of range */
			continue;
		}
		/* A tracepoint or vmstat counter is counted, not timed: its sum_ns means nothing. */
		json_object_set_new(res, name,
				    json_pack("{s:I, s:I, s:I, s:I, s:b}", "count", (json_int_t)count,
					      "sum_ns", (json_int_t)sum, "first_ns", (json_int_t)first,
					      "last_ns", (json_int_t)last, "timed",
					      !mode || (strcmp(mode, "tracepoint") && strcmp(mode, "vmstat"))));
	}
	json_decref(reply);
	if (dropped)
		ht_warn("guest agent trace_read: %u events ignored (malformed or out of range)",
			dropped);
	*events = res;
	return 0;
}

/* cur - prev of a guest counter; 0 if it went backwards (a guest bug). */
static json_int_t counter_delta(json_t *cur, json_t *prev, const char *key)
{
	json_int_t c = json_integer_value(json_object_get(cur, key));
	json_int_t p = json_integer_value(json_object_get(prev, key));

	return c > p ? c - p : 0;
}

json_t *agent_trace_delta(json_t *prev, json_t *cur)
{
	json_t *d = json_object(), *v;
	const char *name;

	json_object_foreach(cur, name, v) {
		json_t *p = json_object_get(prev, name);
		json_int_t dc = counter_delta(v, p, "count");

		if (!dc)
			continue;
		json_object_set_new(d, name,
				    json_pack("{s:I, s:I, s:O, s:O, s:b}", "count", dc, "sum_ns",
					      counter_delta(v, p, "sum_ns"), "first_ns",
					      json_object_get(v, "first_ns"), "last_ns",
					      json_object_get(v, "last_ns"), "timed",
					      !json_is_false(json_object_get(v, "timed"))));
	}
	return d;
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
	jsonl_close(&a->c);
	free(a);
}
