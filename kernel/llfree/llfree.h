/* HyperAlloc allocator core: a lock-free frame allocator whose state is a
 * compact array of atomics (llfree_layout.h), shared by the guest, which
 * allocates and frees, and the host, which reclaims, returns and installs.
 *
 * Guest side (llfree.c): one handle per zone with per-core reservations.
 * get/put/get_at/drain for a core must be called by one context at a time
 * (e.g. that CPU with preemption and interrupts off in the kernel); other
 * cores reach its reservations through atomics, and llfree_drain_remote()
 * is safe from anywhere.
 *
 * Host side (llfree_host.c): its own handle on the same metadata with private
 * state.  It treats the metadata as untrusted: every word it reads is
 * validated, CAS loops are bounded, and it touches only child and tree words.
 * Calls on one host handle must be serialised by the caller.
 */
#ifndef LLFREE_H
#define LLFREE_H

#include "llfree_layout.h"

/* Errors (negative return values). */
#define LLFREE_ENOMEM (-1)   /* nothing free that fits */
#define LLFREE_EINVAL (-2)   /* bad argument */
#define LLFREE_EDOUBLE (-3)  /* frame was not allocated (double free) */
#define LLFREE_ECORRUPT (-4) /* inconsistent metadata */
#define LLFREE_ERETRY (-5)   /* host: too much contention, try again later */

/* get() flags. */
#define LLFREE_MOVABLE 1u
#define LLFREE_NORECLAIMED 2u /* never from reclaimed children (no install; atomic context) */

enum llfree_init_mode {
	LLFREE_INIT_FREE,    /* every frame of the zone free */
	LLFREE_INIT_ALLOC,   /* every frame allocated; memory is handed over by put() */
	LLFREE_INIT_RECOVER, /* keep the bitfields, rebuild counters, drop reservations */
};

/* Per-core state, a cache line each, private to one side.  A reservation is
 * one atomic word, so other cores can take frames from it and a drain can
 * take it away from any CPU: bits 0-31 the tree (LLFREE_NONE: none), bits
 * 32-63 the frames taken from that tree's counter.  In front of it, a cache
 * only the core itself touches (same encoding) holds at most
 * LLFREE_CACHE_MAX frames taken from the reservation, so most gets and puts
 * need no atomic update of the reservation. */
struct llfree_local {
	uint64_t reserved[LLFREE_KINDS];
	uint64_t cache[LLFREE_KINDS];
	int64_t freed; /* frames this core freed minus those it allocated */
} __attribute__((aligned(64)));
#define LLFREE_NONE ((uint32_t)~0u)
#define LLFREE_CACHE_MAX 32
#define LLFREE_CACHE_BATCH 16
/* A core reserves trees only when the zone has this many trees per core;
 * smaller zones allocate from the shared tree counters alone. */
#define LLFREE_TREES_PER_CORE 4

struct llfree {
	struct llfree_layout layout;
	struct llfree_header *header;
	uint64_t base; /* pfn of frame index 0 */
	struct llfree_bitfield *bitfields;
	uint32_t *pairs; /* child words, two per 32-bit word */
	uint16_t *trees;
	struct llfree_local *locals;
	unsigned cores;
	bool reserve; /* per-core reservations in use (zone large enough) */
	int64_t init_free; /* free frames at init, hard-reclaimed ones included */
};

/* A successful get(): the first frame and which of its children (bit 0: the
 * child of pfn, bit 1: the next child, order 10 only) were reclaimed by the
 * host and must be installed before the memory is touched. */
struct llfree_alloc {
	uint64_t pfn;
	unsigned install;
};

/* Bytes of shared metadata for a zone (layout in llfree_layout.h); 0 if the
 * zone is invalid. */
size_t llfree_metadata_size(uint64_t start_pfn, uint64_t frames);
/* meta must hold llfree_metadata_size() bytes, 64-byte aligned; locals holds
 * one entry per core. */
int llfree_init(struct llfree *self, unsigned cores, struct llfree_local *locals,
		uint64_t start_pfn, uint64_t frames, enum llfree_init_mode mode, void *meta);

/* Allocates 2^order frames (order <= 10), aligned.  flags: LLFREE_MOVABLE
 * picks movable trees for orders below 9; orders 9 and 10 use huge trees;
 * LLFREE_NORECLAIMED skips reclaimed children.  0, LLFREE_ENOMEM or
 * LLFREE_EINVAL.  It falls back from the core's reservation to unreserved
 * trees, then to any tree's shared counter and to other cores'
 * reservations, so ENOMEM means no block of this order is free outside the
 * per-core caches (short of races).  Orders 9 and 10 are never cached. */
int llfree_get(struct llfree *self, unsigned core, unsigned order, unsigned flags,
	       struct llfree_alloc *out);
/* Allocates the block at pfn, wherever its tree's frames are counted;
 * LLFREE_ENOMEM if any of it is not free. */
int llfree_get_at(struct llfree *self, unsigned core, uint64_t pfn, unsigned order,
		  struct llfree_alloc *out);
/* Frees a block, or part of one: a lower order into an order 9 or 10 block
 * splits it.  LLFREE_EDOUBLE if it was not allocated, or lies in a child
 * allocated whole while reclaimed (held by the host or not installed).
 * A partial free may spin briefly while another CPU splits the same block,
 * so it must not interrupt a put on its own CPU (callers disable interrupts). */
int llfree_put(struct llfree *self, unsigned core, uint64_t pfn, unsigned order);
/* Gives up the core's reservations and its cache.  Called by the core
 * itself, or by any CPU once the core is offline (CPU hot-unplug). */
void llfree_drain(struct llfree *self, unsigned core);
/* Gives up the core's reservations from any CPU, concurrently with that
 * core's own get/put (e.g. a host-requested drain).  Its cache, at most
 * LLFREE_CACHE_MAX frames per kind, stays until the core's own drain. */
void llfree_drain_remote(struct llfree *self, unsigned core);

uint64_t llfree_frames(const struct llfree *self);
/* Free frames, including those held by reservations and caches, less the
 * children the host holds hard-reclaimed.  O(cores): per-core counters plus
 * the host's count in the header (for watermarks and NR_FREE_PAGES). */
uint64_t llfree_free_frames(const struct llfree *self);
/* Entirely free children (soft-reclaimed ones included). */
uint64_t llfree_free_huge(const struct llfree *self);
uint32_t llfree_free_in_tree(const struct llfree *self, uint64_t tree);
/* Whether the aligned block of 2^order frames at pfn is free (a snapshot;
 * false for invalid arguments).  Orders 9 and 10 need whole free children. */
bool llfree_is_free(const struct llfree *self, uint64_t pfn, unsigned order);
/* Walks free blocks: the first free block at or after *pfn, as the largest
 * aligned free block starting at its first frame, goes to *pfn and *order;
 * continue from *pfn + 2^*order.  0, or LLFREE_ENOMEM past the last. */
int llfree_next_free(const struct llfree *self, uint64_t *pfn, unsigned *order);
/* Free blocks per order from that walk (/proc/buddyinfo): pairs of free
 * children at order 10, other free children at 9, bitfield runs below. */
void llfree_free_blocks(const struct llfree *self, uint64_t counts[LLFREE_MAX_ORDER + 1]);
/* Index of the child holding pfn, as the host API names children. */
uint64_t llfree_child_of(const struct llfree *self, uint64_t pfn);

/* Full consistency check of a quiescent allocator; logs the first problem. */
int llfree_validate(const struct llfree *self);
void llfree_dump(const struct llfree *self);

/* ---- host side ---- */

struct llfree_range {
	uint64_t child; /* first child */
	uint64_t count; /* adjacent children */
};

struct llfree_host {
	struct llfree_layout layout;
	struct llfree_header *header;
	uint32_t *pairs;
	uint16_t *trees;
	uint64_t *hard;  /* private: children this host holds hard-reclaimed */
	uint32_t *owed;  /* private: frames owed to each tree's counter */
	uint64_t owed_trees; /* trees with frames owed */
	uint64_t cursor; /* private: next tree to scan */
	uint64_t invalid; /* trees skipped for an invalid word, cumulative */
};

/* Most children one reclaim_bulk() call takes (64 MiB): the caller discards
 * them before the next call, so an install waits behind one batch at most. */
#define LLFREE_HOST_BATCH 32

/* Bytes of private host state for a zone. */
size_t llfree_host_state_size(uint64_t start_pfn, uint64_t frames);
/* meta_size must equal llfree_metadata_size(); state holds
 * llfree_host_state_size() bytes and is cleared here.  LLFREE_EINVAL unless
 * the header carries LLFREE_MAGIC, LLFREE_VERSION and this geometry. */
int llfree_host_init(struct llfree_host *h, void *meta, size_t meta_size, uint64_t start_pfn,
		     uint64_t frames, uint64_t *state);

uint64_t llfree_host_children(const struct llfree_host *h);
/* Reclaims one free child of an unreserved tree.  Hard: the guest sees it
 * allocated until returned.  Soft: it stays free, marked reclaimed.
 * *already tells whether it was reclaimed before (no discard needed).
 * Trees with an invalid word are skipped and counted in h->invalid.
 * LLFREE_ENOMEM if none is free, LLFREE_ERETRY if only contended trees
 * might have had one. */
int llfree_host_reclaim(struct llfree_host *h, bool hard, uint64_t *child, bool *already);
/* Reclaims up to want (at most LLFREE_HOST_BATCH) children, tree by tree
 * from a private cursor; call again for more.  Those that need a discard (not
 * reclaimed before) are written as ranges of adjacent children, so each
 * range takes one discard; it stops before a tree when fewer than
 * LLFREE_TREE_CHILDREN / 2 range slots are left.  *reclaimed counts all
 * reclaimed children.  Invalid trees are skipped and counted in h->invalid;
 * LLFREE_ERETRY only when nothing was reclaimed and a tree was contended. */
int llfree_host_reclaim_bulk(struct llfree_host *h, bool hard, uint64_t want,
			     struct llfree_range *ranges, size_t max_ranges, size_t *nranges,
			     uint64_t *reclaimed);
/* Hard -> free: the child becomes free again, still marked reclaimed.  If
 * its tree's counter cannot be raised now, the frames are owed and paid by
 * a later call (see llfree_host_settle). */
int llfree_host_return(struct llfree_host *h, uint64_t child);
/* Pays owed tree counters where it can; returns the frames still owed. */
uint64_t llfree_host_settle(struct llfree_host *h);
/* Clears reclaimed once the child's memory is populated again; the guest may
 * touch it from then on.  Returns 1 if it was set, 0 if not.  Callers
 * serialise install with soft reclaim and its discard (e.g. a zone mutex). */
int llfree_host_install(struct llfree_host *h, uint64_t child);
/* 1 if the child is marked reclaimed, 0 if not. */
int llfree_host_is_reclaimed(const struct llfree_host *h, uint64_t child);
bool llfree_host_holds(const struct llfree_host *h, uint64_t child);

#endif
