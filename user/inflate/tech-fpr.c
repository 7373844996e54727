/* Free page reporting: passive. The guest reports pages that have been free
 * for 2 s and QEMU discards them; nothing asks for a size, nothing grows. */
#include "technique.h"

static void configure(const struct opts *o, struct vm_config *cfg, struct qemu_args *args)
{
	qemu_args_add(args, "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on");
}

/* The phase runs from since (the touch workload freed its memory) to the
 * last fall of QEMU's RSS, after PASSIVE_QUIET_NS without one. */
static int reclaim(struct run *r, enum phase p, struct phase_result *pr, uint64_t since)
{
	uint64_t t_last, rss;
	int err;

	if ((err = phase_begin(r, p, pr)))
		return err;
	pr->t0 = since;
	if ((err = wait_rss_settled(r, pr->t0, PASSIVE_QUIET_NS, &t_last)))
		return err;
	rss = vm_rss(r->vm);
	pr->bytes = pr->rss0 > rss ? pr->rss0 - rss : 0;
	return phase_end(r, pr, t_last);
}

static const struct guest_func guest_funcs[] = {
	{ "page_reporting_process", "page_reporting_process", NULL },
	{ "balloon_free_page_report", "virtballoon_free_page_report", "page_reporting_process" },
	{ 0 },
};

const struct technique tech_fpr = {
	.name = "fpr",
	.kernel = "baseline",
	.configure = configure,
	.reclaim = reclaim,
	.passive_note = "free page reporting is passive: nothing requests a size, so it has "
			"no grow and no share of a request; reported pages come back on the "
			"guest's next touch (install)",
	.guest_funcs = guest_funcs,
};
