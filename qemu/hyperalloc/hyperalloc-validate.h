/* virtio-hyperalloc, host side without QEMU: registration and validation of
 * the guest's zone descriptors, and the operations on registered zones (hard
 * shrink, return, install, soft reclaim) on top of the allocator core's host
 * API (llfree_host.c).  Guest RAM is reached only through the callbacks of
 * struct ha_ops, so QEMU (hw/virtio/virtio-hyperalloc.c) and the fuzzer
 * (tests/fuzz/hyperalloc_fuzz.c) compile this same file.
 *
 * Everything the guest sends or writes is untrusted: it is validated, refused
 * with a guest error and a counter, and never asserted on.  A child is
 * discarded only when its 2 MiB is whole plain RAM inside its zone and holds
 * no zone's metadata.  Calls on one struct hyperalloc must be serialised by
 * the caller (QEMU: the BQL).
 */
#ifndef HYPERALLOC_VALIDATE_H
#define HYPERALLOC_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llfree.h"
#include "standard-headers/linux/virtio_hyperalloc.h"

#define HA_CHILD_BYTES ((uint64_t)LLFREE_CHILD_FRAMES << LLFREE_FRAME_SHIFT)

struct ha_ops {
	/* Host address of [gpa, gpa + len) if it is plain guest RAM in one
	 * piece (no hole, ROM or device memory), else NULL. */
	void *(*translate)(void *opaque, uint64_t gpa, uint64_t len);
	/* Gives [gpa, gpa + len) back to the host (translate() accepted it);
	 * soft: the guest still sees it free.  0 or -errno. */
	int (*discard)(void *opaque, uint64_t gpa, uint64_t len, bool soft);
	/* Backs [gpa, gpa + len) with writable memory again.  0 or -errno. */
	int (*populate)(void *opaque, uint64_t gpa, uint64_t len);
	/* A refused guest input, already counted in guest_errors. */
	void (*guest_error)(void *opaque, const char *what, uint64_t a, uint64_t b);
	void *opaque;
};

/* Host view of a child: derived from the core's hard bitmap and our own
 * discarded bitmap. */
enum ha_child_state { HA_INSTALLED, HA_SOFT, HA_HARD };

struct ha_zone {
	uint32_t id, node;
	uint64_t start_pfn, pages, meta_gpa, meta_len;
	uint64_t base_gpa; /* guest address of child 0 (start aligned down to 4 MiB) */
	uint64_t children;
	struct llfree_host host;
	uint64_t *host_state; /* the core's private state */
	uint64_t *never;      /* the child's 2 MiB is not ours to discard */
	uint64_t *discarded;  /* we gave the child's memory back */
	uint64_t *held;       /* the core's hard bitmap as we last counted it */
	uint64_t hard, soft;  /* census of this zone's children */
};

struct hyperalloc {
	struct ha_ops ops;
	uint64_t ram_top; /* end of the highest guest RAM; zones must end below it */
	bool finished;
	unsigned nzones;
	struct ha_zone *zones[VIRTIO_HYPERALLOC_MAX_ZONES]; /* by zone id */
	uint64_t guest_errors;
	uint64_t hard, soft;        /* children, all zones */
	uint64_t installed;         /* children installed since realize */
	uint64_t discard_calls;     /* since realize */
	uint64_t discard_errors;    /* failed discards (the memory stays) */
	uint64_t never_held;        /* hard children we could not discard (hostile guest) */
};

/* Verdicts of ha_register(): a status for the in-buffer, or NEEDS_RESET. */
#define HA_BROKEN (-1)

void ha_init(struct hyperalloc *ha, const struct ha_ops *ops, uint64_t ram_top);
/* Returns every child the host holds to the guest (free, still marked
 * reclaimed), then frees every zone; the guest registers again. */
void ha_reset(struct hyperalloc *ha);

/* One descriptor of the info queue (len bytes as the guest sent them).
 * Returns VIRTIO_HYPERALLOC_S_OK or _S_INVALID for the in-buffer, or
 * HA_BROKEN when the device must be reset (a malformed buffer).  *zone is
 * the registered zone, or NULL. */
int ha_register(struct hyperalloc *ha, const void *desc, size_t len, struct ha_zone **zone);

/* Hard-reclaims up to want children of a zone; returns how many. */
uint64_t ha_shrink_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want);
/* Returns up to want hard children of a zone; returns how many. */
uint64_t ha_return_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want);
/* Soft-reclaims up to want free children of a zone; returns how many were
 * discarded. */
uint64_t ha_soft_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want);
/* One install request (len bytes as sent); returns the status to reply. */
uint32_t ha_install(struct hyperalloc *ha, const void *req, size_t len);

enum ha_child_state ha_child_state(const struct ha_zone *z, uint64_t child);
bool ha_child_never(const struct ha_zone *z, uint64_t child);
uint64_t ha_child_gpa(const struct ha_zone *z, uint64_t child);

#endif
