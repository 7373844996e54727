/* A memory-reclamation technique that `hatrace inflate` measures. Each lives
 * in one tech-<name>.c and is one line of the table in techniques.c. */
#ifndef HATRACE_TECHNIQUE_H
#define HATRACE_TECHNIQUE_H

#include "inflate.h"

/* QEMU arguments a technique adds (e.g. "-device", "virtio-balloon-pci,..."). */
struct qemu_args {
	const char *argv[9]; /* NULL-terminated */
	char buf[8][256];
	unsigned n;
};
void qemu_args_add(struct qemu_args *a, const char *opt, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A guest kernel function the agent times: its probe name, the kernel symbol,
 * and the probe whose time already includes it (NULL: none, "any": any caller).
 * Each probe hit runs emulated under TCG: name no function called per page
 * (the runner counts pages from the guest's /proc/vmstat instead). */
struct guest_func {
	const char *name, *func, *within;
};

struct technique {
	const char *name;
	/* The guest kernel flavour it needs (kernel/patches/<flavour>/). */
	const char *kernel;
	/* A QEMU device property only hatrace's QEMU has ("device.property"), or NULL. */
	const char *qemu_property;
	/* Refuses options it cannot run with (clear error), or NULL. */
	int (*check_opts)(const struct opts *o);
	/* Its devices and memory layout (cfg->mem, cfg->maxmem). */
	void (*configure)(const struct opts *o, struct vm_config *cfg, struct qemu_args *args);
	/* What to wait for once the guest is up, or NULL. */
	int (*after_boot)(struct run *r);
	/* The guest's memory as the technique sees it, and a request to change it.
	 * Absent for a passive technique, which the guest drives. */
	int (*get_size)(struct run *r, uint64_t *size);
	int (*set_size)(struct run *r, uint64_t target);
	/* Passive: waits for the guest to hand back memory it freed at since. */
	int (*reclaim)(struct run *r, enum phase p, struct phase_result *pr, uint64_t since);
	/* Passive: why it has no grow phase and no RSS drop relative to a request
	 * (summary.json why_null). */
	const char *passive_note;
	/* Its QEMU device installs memory the guest asks for (virtio-hyperalloc):
	 * the breakdown counts and times the install requests. */
	bool qemu_installs;
	/* The guest functions to trace (trace_start "functions"), ending with { 0 },
	 * and those called per unit of a resize, which would slow it: traced in
	 * the breakdown iteration only, outside the medians (NULL: none). */
	const struct guest_func *guest_funcs, *breakdown_guest_funcs;
	/* Its own automatic mode, which the footprint benchmark (-w build|blender,
	 * --auto) turns on in the booted VM instead of the host controller, and
	 * what it does (footprint.json "mode"); NULL: none. */
	int (*auto_start)(struct run *r);
	const char *auto_note;
};

/* The balloon's size and request, and the guest functions of its worker, for
 * every balloon-based technique (tech-virtio-balloon.c). */
int balloon_get_size(struct run *r, uint64_t *size);
int balloon_set_size(struct run *r, uint64_t target);
#define BALLOON_GUEST_FUNCS                                                         \
	{ "balloon_changed", "virtballoon_changed", NULL },                         \
	{ "balloon_size_work", "update_balloon_size_func", NULL },                  \
	{ "balloon_leak", "leak_balloon", "balloon_size_work" },                    \
	{ "balloon_tell_host", "tell_host", "balloon_size_work" }

/* HyperAlloc's options check, size, request, registration wait and (no) guest
 * functions, for both of its techniques (tech-hyperalloc.c). */
int hyperalloc_check_opts(const struct opts *o);
int hyperalloc_get_size(struct run *r, uint64_t *size);
int hyperalloc_set_size(struct run *r, uint64_t target);
int hyperalloc_after_boot(struct run *r);
extern const struct guest_func hyperalloc_guest_funcs[];
/* What hyperalloc and hyperalloc-fault share, in their struct technique. */
#define HYPERALLOC_TECHNIQUE                                                        \
	.kernel = "hyperalloc", .qemu_property = "virtio-hyperalloc-pci.install",  \
	.check_opts = hyperalloc_check_opts, .after_boot = hyperalloc_after_boot,   \
	.get_size = hyperalloc_get_size, .set_size = hyperalloc_set_size,           \
	.qemu_installs = true, .guest_funcs = hyperalloc_guest_funcs

/* techniques.c: every technique, in report order. */
extern const struct technique *const techniques[];
const struct technique *technique_find(const char *name);
/* "virtio-balloon, ..." for messages. */
const char *technique_names(void);

#endif
