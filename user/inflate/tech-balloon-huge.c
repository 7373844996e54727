/* virtio-balloon-huge: the balloon in 2 MiB units (hatrace's QEMU patch 0002
 * and guest kernel patch 0001): each PFN names a 2 MiB unit that QEMU
 * discards at once. Sizes stay in bytes, as for virtio-balloon. */
#include "technique.h"

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	qemu_args_add(args, "-device", "virtio-balloon-pci,id=balloon0,huge-pages=on");
}

static const struct guest_func guest_funcs[] = { BALLOON_GUEST_FUNCS, { 0 } };

/* Without deflate-on-oom, adjust_managed_page_count runs once per 2 MiB unit
 * given (in 4 KiB mode once per page, so only this technique names it). Its
 * 768 calls in a 1.5 GiB shrink, timed, doubled the shrink under TCG (+95 %,
 * 31 against 16 ms untraced). */
static const struct guest_func breakdown_guest_funcs[] = {
	{ "balloon_unit_managed", "adjust_managed_page_count", "balloon_size_work" },
	{ 0 },
};

const struct technique tech_balloon_huge = {
	.name = "virtio-balloon-huge",
	.kernel = "baseline",
	.qemu_property = "virtio-balloon-pci.huge-pages",
	.configure = configure,
	.get_size = balloon_get_size,
	.set_size = balloon_set_size,
	.guest_funcs = guest_funcs,
	.breakdown_guest_funcs = breakdown_guest_funcs,
};
