/* Test driver of user/lib/qemu_usdt.c, for tests/qemu_usdt.py.
 *   qemu_usdt_attach --find BINARY
 *       one JSON line: how many of hatrace's QEMU probes BINARY has, and which
 *       are missing; exit 1 if BINARY is not a readable ELF file.
 *   qemu_usdt_attach --hit-ns
 *       one JSON line: what one USDT probe hit costs this process (the
 *       calibration inflate's QEMU probe estimate uses); exit 1 if unknown.
 *   qemu_usdt_attach [--per-page] [--records] PID
 *       attaches to the running QEMU PID, prints {"attached":true}, then one JSON
 *       line per phase (and per record with --records) until SIGINT/SIGTERM or
 *       QEMU's exit, then {"totals":{...},"drops":N}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "common.h"
#include "qemu_usdt.h"

static json_t *totals_json(const struct qemu_usdt_total *t)
{
	json_t *o = json_object();

	for (int e = 0; e < QEMU_USDT_NR; e++)
		if (t[e].count)
			json_object_set_new(o, qemu_usdt_name(e),
					    json_pack("{sIsIsI}", "count", (json_int_t)t[e].count,
						      "sum", (json_int_t)t[e].sum, "ns",
						      (json_int_t)t[e].ns));
	return o;
}

static void print_record(void *ctx, enum qemu_usdt_event event, const struct qemu_usdt_record *r)
{
	json_t *args = json_array();

	for (int i = 0; i < QEMU_USDT_ARGS; i++)
		json_array_append_new(args, json_integer((json_int_t)r->args[i]));
	json_println(stdout, json_pack("{sssIsIso}", "record", qemu_usdt_name(event),
				       "time_ns", (json_int_t)r->time_ns, "tid", (json_int_t)r->tid,
				       "args", args));
}

static void print_phase(void *ctx, const struct qemu_phase *p)
{
	json_println(stdout, json_pack("{sssbsIsIsIso}", "phase", p->device, "reached", p->reached,
				       "start_ns", (json_int_t)p->start_ns,
				       "end_ns", (json_int_t)p->end_ns,
				       "target_bytes", (json_int_t)p->target_bytes,
				       "work", totals_json(p->work)));
}

static int find(const char *binary)
{
	bool present[QEMU_USDT_NR];
	json_t *missing = json_array();
	int n = qemu_usdt_find(binary, present);

	if (n < 0) {
		json_decref(missing);
		return 1;
	}
	for (int e = 0; e < QEMU_USDT_PROBES; e++)
		if (!present[e])
			json_array_append_new(missing, json_string(qemu_usdt_name(e)));
	json_println(stdout, json_pack("{sssisiso}", "binary", binary, "probes", n,
				       "wanted", QEMU_USDT_PROBES, "missing", missing));
	return 0;
}

static int hit_ns(void)
{
	char why[128];
	double ns;

	if (qemu_usdt_hit_ns(&ns, why, sizeof(why))) {
		json_println(stdout, json_pack("{ss}", "error", why));
		return 1;
	}
	json_println(stdout, json_pack("{sf}", "hit_ns", ns));
	return 0;
}

int main(int argc, char **argv)
{
	struct qemu_usdt_handlers h = { .phase = print_phase };
	struct qemu_usdt_total totals[QEMU_USDT_NR];
	unsigned flags = QEMU_USDT_DISCARDS;
	struct qemu_usdt *u;
	int i, pid, pidfd;

	if (argc == 3 && !strcmp(argv[1], "--find"))
		return find(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "--hit-ns"))
		return hit_ns();
	for (i = 1; i < argc - 1; i++) {
		if (!strcmp(argv[i], "--per-page"))
			flags |= QEMU_USDT_PER_PAGE;
		else if (!strcmp(argv[i], "--records"))
			h.record = print_record;
		else
			break;
	}
	if (i != argc - 1 || parse_pid(argv[i], &pid)) {
		fprintf(stderr, "usage: %s --find BINARY | [--per-page] [--records] PID\n", argv[0]);
		return 2;
	}
	setup_libbpf();
	install_signal_handlers();
	pidfd = pid_watch(pid);
	u = qemu_usdt_attach(pid, NULL, flags, &h);
	if (!u)
		return 1;
	json_println(stdout, json_pack("{sb}", "attached", 1));
	while (!exiting && !pid_exited(pid, pidfd)) {
		int err = qemu_usdt_drain(u);

		if (err < 0 && err != -EINTR) {
			ht_err("reading the QEMU USDT ring buffer: %s", strerror(-err));
			break;
		}
		usleep(100 * 1000);
	}
	qemu_usdt_drain(u);
	qemu_usdt_totals(u, totals);
	json_println(stdout, json_pack("{sosI}", "totals", totals_json(totals),
				       "drops", (json_int_t)qemu_usdt_drops(u)));
	qemu_usdt_detach(u);
	return 0;
}
