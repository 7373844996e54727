/* hyperalloc-fault: HyperAlloc with install off (the device's feature bit,
 * virtio-hyperalloc-pci,install=off). Shrink and grow are hyperalloc's; the
 * guest driver then asks QEMU for no install, and the guest's first write to
 * a reclaimed child faults it back in on the host: the "install vs fault"
 * variant, same guest kernel. */
#include "technique.h"

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	qemu_args_add(args, "-device", "virtio-hyperalloc-pci,id=ha0,install=off");
}

const struct technique tech_hyperalloc_fault = {
	.name = "hyperalloc-fault",
	HYPERALLOC_TECHNIQUE,
	.configure = configure,
};
