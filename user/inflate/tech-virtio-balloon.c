/* virtio-balloon: QEMU asks for a target; the guest hands over 4 KiB pages,
 * which QEMU discards. */
#include "qmp.h"
#include "technique.h"

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	qemu_args_add(args, "-device", "virtio-balloon-pci,id=balloon0");
}

int balloon_get_size(struct run *r, uint64_t *size)
{
	return qmp_balloon_actual(r->vm->qmp, size);
}

int balloon_set_size(struct run *r, uint64_t target)
{
	return qmp_balloon(r->vm->qmp, target);
}

/* Pages are counted by the guest's vmstat balloon_inflate/balloon_deflate, not
 * by a probe on the per-page balloon_page_enqueue (see guest_func). */
static const struct guest_func guest_funcs[] = { BALLOON_GUEST_FUNCS, { 0 } };

const struct technique tech_virtio_balloon = {
	.name = "virtio-balloon",
	.kernel = "baseline",
	.configure = configure,
	.get_size = balloon_get_size,
	.set_size = balloon_set_size,
	.guest_funcs = guest_funcs,
};
