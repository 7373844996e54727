/* virtio-mem: a small boot memory and the rest in a device whose plugged
 * size QEMU requests; the guest (un)plugs memory blocks. */
#include "common.h"
#include "qmp.h"
#include "technique.h"

#include <errno.h>

#define VMEM_PATH "/machine/peripheral/vmem0"

/* Boot memory: small, and never more than the shrink target. */
static uint64_t boot_mem(const struct opts *o)
{
	return o->shrink_to < 512 * MiB ? o->shrink_to : 512 * MiB;
}

static int check_opts(const struct opts *o)
{
	if (o->shrink_to % (128 * MiB) && o->shrink_to < 512 * MiB) {
		ht_err("--shrink-to: virtio-mem boots with the target as its boot memory below "
		       "512 MiB, so it must be a multiple of 128 MiB");
		return -EINVAL;
	}
	return 0;
}

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	unsigned long long dev_mib = (o->mem - boot_mem(o)) / MiB;

	cfg->mem = boot_mem(o);
	cfg->maxmem = o->mem;
	qemu_args_add(args, "-object", "memory-backend-ram,id=vmem0mem,size=%lluM", dev_mib);
	qemu_args_add(args, "-device",
		      "virtio-mem-pci,id=vmem0,memdev=vmem0mem,requested-size=%lluM", dev_mib);
}

static int get_size(struct run *r, uint64_t *size)
{
	uint64_t plugged;
	int err = qmp_qom_get_u64(r->vm->qmp, VMEM_PATH, "size", &plugged);

	*size = boot_mem(r->o) + plugged;
	return err;
}

static int set_size(struct run *r, uint64_t target)
{
	return qmp_qom_set_u64(r->vm->qmp, VMEM_PATH, "requested-size", target - boot_mem(r->o));
}

/* The guest plugs the device's memory while it boots. */
static int after_boot(struct run *r)
{
	uint64_t t;

	return wait_size(r, r->o->mem, &t);
}

/* virtio_mem_{,un}plug_request are inlined in our 6.1 build: the sbm
 * (sub-block) functions stand for them. */
static const struct guest_func guest_funcs[] = {
	{ "vmem_config_changed", "virtio_mem_config_changed", NULL },
	{ "vmem_work", "virtio_mem_run_wq", NULL },
	{ "vmem_plug_add_mb", "virtio_mem_sbm_plug_and_add_mb", "vmem_work" },
	{ "vmem_unplug_sb_online", "virtio_mem_sbm_unplug_sb_online", "vmem_work" },
	{ "vmem_fake_offline", "virtio_mem_fake_offline", "vmem_work" },
	{ "vmem_send_plug", "virtio_mem_send_plug_request", "vmem_work" },
	{ "vmem_send_unplug", "virtio_mem_send_unplug_request", "vmem_work" },
	{ "online_pages", "online_pages", "vmem_work" },
	{ "offline_pages", "offline_pages", "vmem_work" },
	{ 0 },
};

const struct technique tech_virtio_mem = {
	.name = "virtio-mem",
	.kernel = "baseline",
	.check_opts = check_opts,
	.configure = configure,
	.after_boot = after_boot,
	.get_size = get_size,
	.set_size = set_size,
	.guest_funcs = guest_funcs,
};
