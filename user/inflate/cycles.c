/* inflate --cycles N: the soak. After the touch phase a technique shrinks and
 * grows the VM N times while ht-integrity holds its patterned memory, and the
 * guest touches and frees half of the shrink's bytes before each cycle, so
 * that every shrink takes back touched memory; the
 * buffer is verified every VERIFY_EVERY cycles and at the end, and the guest
 * console must stay free of kernel errors. Phases print nothing per cycle. */
#include "agent.h"
#include "common.h"
#include "technique.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_EVERY 50

/* What in the guest console is a kernel error. */
static const char *const kernel_errors[] = {
	"BUG:", "WARNING:", "Bad page", "soft lockup", "hung task", "Oops", "Kernel panic",
	"page allocation failure", NULL,
};

static int touch(struct run *r)
{
	char bytes_s[32], threads_s[16];
	const char *argv[] = { "ht-touch", "--bytes", bytes_s, "--threads", threads_s, NULL };
	int err;

	snprintf(bytes_s, sizeof(bytes_s), "%llu",
		 (unsigned long long)((r->o->mem - r->o->shrink_to) / 2 & ~(2 * MiB - 1)));
	snprintf(threads_s, sizeof(threads_s), "%u", r->o->vcpus);
	err = agent_run(r->vm->agent, argv, PHASE_TIMEOUT_NS / SEC, NULL, NULL);
	return err ? failed(r, err) : 0;
}

static int verify(struct run *r, unsigned cycle)
{
	const char *argv[] = { "ht-integrity", "verify", NULL };
	json_t *res = NULL;
	uint64_t bad = 0;
	int err = agent_run(r->vm->agent, argv, PHASE_TIMEOUT_NS / SEC, &res, NULL);

	if (!err && agent_u64(res, "bad_pages", &bad) && bad) {
		ht_err("%s: %llu guest pages corrupted by cycle %u", r->t->name,
		       (unsigned long long)bad, cycle);
		err = -EIO;
	}
	json_decref(res);
	return err ? failed(r, err) : 0;
}

int run_cycles(struct run *r, struct iteration *it)
{
	const struct opts *o = r->o;
	json_t *shrink = json_array(), *grow = json_array();
	char line[256];
	unsigned c;
	int err = 0;

	r->quiet = true;
	for (c = 1; c <= o->cycles && !err; c++) {
		struct phase_result s, g;

		progress(r, "cycle %u of %u", c, o->cycles);
		err = touch(r) ?: phase_shrink(r, PH_SHRINK, &s, 0) ?: phase_grow(r, PH_GROW, &g);
		if (!err) {
			json_array_append_new(shrink, json_integer(s.wall_ns));
			json_array_append_new(grow, json_integer(g.wall_ns));
			it->ph[PH_SHRINK] = s;
			it->ph[PH_GROW] = g;
		}
		if (!err && (c % VERIFY_EVERY == 0 || c == o->cycles) && o->integrity)
			err = verify(r, c);
		if (!err && vm_console_grep(r->vm, kernel_errors, line, sizeof(line))) {
			ht_err("%s: the guest kernel reported an error by cycle %u: %s", r->t->name, c,
			       line);
			err = -EIO;
		}
		/* Without a terminal (a log), a line every VERIFY_EVERY cycles. */
		if (!err && !o->progress && c % VERIFY_EVERY == 0 && c < o->cycles)
			fprintf(stderr, "[%s %u/%u] cycles           %u of %u, console clean%s\n",
				r->t->name, r->iter + 1, o->iterations, c, o->cycles,
				o->integrity ? ", integrity verified" : "");
	}
	r->quiet = false;
	it->workload = json_pack("{s:i, s:o, s:o, s:b}", "cycles", c - 1 - (err != 0), "shrink_ns",
				 shrink, "grow_ns", grow, "console_clean", !err);
	if (!err)
		fprintf(stderr, "%s[%s %u/%u] %-16s %u shrink/grow cycles, console clean\n",
			o->progress ? "\r\033[K" : "", r->t->name, r->iter + 1, o->iterations,
			"cycles", o->cycles);
	return err;
}

/* soak.json: per technique the cycles run, pages verified, bad pages and the
 * median shrink and grow time. */
json_t *cycles_summary(const struct tech_results *res, const struct opts *o)
{
	json_t *techs = json_object();

	for (; res->t; res++) {
		uint64_t cycles = 0, pages = 0, bad = 0;
		bool clean = true;

		for (unsigned i = 0; i < o->iterations; i++) {
			json_t *w = res->its[i].workload;

			cycles += json_integer_value(json_object_get(w, "cycles"));
			clean &= w && json_is_true(json_object_get(w, "console_clean"));
			pages += res->its[i].integrity_pages > 0 ? res->its[i].integrity_pages : 0;
			bad += res->its[i].integrity_bad > 0 ? res->its[i].integrity_bad : 0;
		}
		json_object_set_new(techs, res->t->name,
				    json_pack("{s:I, s:I, s:I, s:b}", "cycles", (json_int_t)cycles,
					      "integrity_pages_verified", (json_int_t)pages,
					      "bad_pages", (json_int_t)bad, "console_clean", clean));
	}
	return json_pack("{s:i, s:I, s:I, s:o}", "cycles_per_iteration", o->cycles, "mem_bytes",
			 (json_int_t)o->mem, "shrink_to_bytes", (json_int_t)o->shrink_to,
			 "techniques", techs);
}
