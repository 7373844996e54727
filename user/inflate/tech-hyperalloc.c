/* HyperAlloc: the guest allocator's state lives in guest RAM, shared with
 * QEMU; QEMU shrinks by claiming free 2 MiB children there and discarding
 * them (no guest work), returns them on grow, and installs a child when the
 * guest allocates it (virtio-hyperalloc-pci, hatrace's QEMU and guest kernel). */
#include "common.h"
#include "qmp.h"
#include "technique.h"

#include <errno.h>
#include <unistd.h>

int hyperalloc_check_opts(const struct opts *o)
{
	/* Single-threaded TCG does not make guest atomics atomic against QEMU. */
	if (o->vcpus < 2 && o->accel == ACCEL_TCG) {
		ht_err("hyperalloc: under TCG it needs --vcpus 2 or more (multi-threaded TCG)");
		return -EINVAL;
	}
	return 0;
}

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	qemu_args_add(args, "-device", "virtio-hyperalloc-pci,id=ha0");
}

int hyperalloc_get_size(struct run *r, uint64_t *size)
{
	json_t *info = NULL;
	int err = qmp_call(r->vm->qmp, "query-hyperalloc", NULL, &info, 10 * SEC);
	json_t *actual = json_object_get(info, "actual");

	if (!err && (!json_is_integer(actual) || json_integer_value(actual) < 0))
		err = -EPROTO;
	if (!err)
		*size = json_integer_value(actual);
	json_decref(info);
	return err;
}

/* Synchronous: QEMU replies when the shrink or return is done. */
int hyperalloc_set_size(struct run *r, uint64_t target)
{
	return qmp_call(r->vm->qmp, "hyperalloc-resize",
			json_pack("{s:I}", "value", (json_int_t)target), NULL, PHASE_TIMEOUT_NS);
}

/* The guest driver registers its zones at probe. */
int hyperalloc_after_boot(struct run *r)
{
	uint64_t deadline = now_ns() + 60 * SEC;

	while (now_ns() < deadline) {
		json_t *info = NULL;
		int err = qmp_call(r->vm->qmp, "query-hyperalloc", NULL, &info, 10 * SEC);
		bool registered = json_is_true(json_object_get(info, "registered"));

		json_decref(info);
		if (err)
			return failed(r, err);
		if (registered)
			return 0;
		usleep(50000);
	}
	ht_err("hyperalloc: the guest driver did not register its zones within 60 s");
	return -ETIMEDOUT;
}

/* Auto mode as the paper's artifact ran it: a soft-reclaim round every 5 s
 * that takes every free 2 MiB child (one batch of all trees of the VM). */
#define AUTO_INTERVAL_MS 5000

static int auto_start(struct run *r)
{
	static const char path[] = "/machine/peripheral/ha0/virtio-backend";
	uint64_t trees = (r->o->mem + 16 * MiB - 1) / (16 * MiB); /* 8 children of 2 MiB */
	int err = qmp_call(r->vm->qmp, "qom-set",
			   json_pack("{s:s, s:s, s:I}", "path", path, "property", "auto-batch-trees",
				     "value", (json_int_t)trees), NULL, 10 * SEC);

	if (!err)
		err = qmp_call(r->vm->qmp, "qom-set",
			       json_pack("{s:s, s:s, s:i}", "path", path, "property",
					 "auto-interval-ms", "value", AUTO_INTERVAL_MS), NULL, 10 * SEC);
	return err ? failed(r, err) : 0;
}

/* The install path is traced by the guest's hyperalloc tracepoints (not yet
 * named by inflate); no per-page functions are timed. */
const struct guest_func hyperalloc_guest_funcs[] = { { 0 } };

const struct technique tech_hyperalloc = {
	.name = "hyperalloc",
	HYPERALLOC_TECHNIQUE,
	.configure = configure,
	.auto_start = auto_start,
	.auto_note = "auto mode: every 5 s QEMU soft-reclaims every free 2 MiB child "
		     "(auto-interval-ms=5000, auto-batch-trees covering all of RAM; the "
		     "paper's artifact's interval)",
};
