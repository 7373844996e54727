/* The state shared between the guest allocator and the host (QEMU).
 *
 * This header is the single definition of that state: every side computes the
 * same offsets from (start_pfn, frames) and reads the same words through these
 * shifts and masks.  Per-CPU reservations are private to each side and are not
 * part of it.
 *
 * Metadata of a zone, one contiguous block, 64-byte aligned:
 *   header      64 B                           struct llfree_header
 *   bitfields   trees * 8 children * 8 x u64   one bit per 4 KiB frame
 *   child words trees * 64 B                   8 x u16 {free:14, huge:1, reclaimed:1}
 *                                              per tree, then 48 B of padding, so
 *                                              CPUs working in different trees never
 *                                              share a cache line of child words
 *   tree words  trees x u16                    {free:13, reserved:1, kind:2}
 *
 * Frame index 0 is the zone start aligned down to 4 MiB.  Frames below the zone
 * start and beyond its end are permanently allocated (bits set), so the last
 * child and tree may be partial and padding children never become free.
 * Children 2p and 2p+1 share one aligned 32-bit word, so an order-10
 * allocation takes both with one CAS; child 2p is its low half.
 */
#ifndef LLFREE_LAYOUT_H
#define LLFREE_LAYOUT_H

#include "llfree_platform.h"

#define LLFREE_FRAME_SHIFT 12
#define LLFREE_CHILD_ORDER 9
#define LLFREE_CHILD_FRAMES (1u << LLFREE_CHILD_ORDER) /* 512 x 4 KiB = 2 MiB */
#define LLFREE_TREE_CHILDREN 8
#define LLFREE_TREE_FRAMES (LLFREE_TREE_CHILDREN * LLFREE_CHILD_FRAMES)
#define LLFREE_MAX_ORDER 10
#define LLFREE_BASE_FRAMES (1u << LLFREE_MAX_ORDER) /* base alignment, 4 MiB */
#define LLFREE_BITFIELD_WORDS (LLFREE_CHILD_FRAMES / 64)

/* Child word. */
#define LLFREE_CHILD_FREE_MASK 0x3fffu
#define LLFREE_CHILD_HUGE (1u << 14)
#define LLFREE_CHILD_RECLAIMED (1u << 15)

/* Tree word. */
#define LLFREE_TREE_FREE_MASK 0x1fffu
#define LLFREE_TREE_RESERVED (1u << 13)
#define LLFREE_TREE_KIND_SHIFT 14
#define LLFREE_TREE_KIND_MASK (3u << LLFREE_TREE_KIND_SHIFT)

enum llfree_kind { LLFREE_KIND_FIXED, LLFREE_KIND_MOVABLE, LLFREE_KIND_HUGE, LLFREE_KINDS };

/* Header, written by the guest at init; the host checks magic, version and
 * geometry before it touches anything else. */
#define LLFREE_MAGIC 0x464c4148u /* "HALF" */
#define LLFREE_VERSION 2u

struct llfree_header {
	uint32_t magic;
	uint32_t version;
	uint64_t start_pfn;
	uint64_t frames;
	uint64_t hard; /* children the host holds hard-reclaimed; only the host changes it */
	uint64_t unused[4];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct llfree_header) == 64, "header is one cache line");

/* Pair word: child 2p in the low half, 2p+1 in the high half. */
#define LLFREE_PAIR_SHIFT 16
#define LLFREE_PAIR_LOW 0xffffu

struct llfree_bitfield {
	uint64_t words[LLFREE_BITFIELD_WORDS];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct llfree_bitfield) == 64, "bitfield is one cache line");
_Static_assert(LLFREE_CHILD_FRAMES <= LLFREE_CHILD_FREE_MASK, "child free fits 14 bits");
_Static_assert(LLFREE_TREE_FRAMES <= LLFREE_TREE_FREE_MASK, "tree free fits 13 bits");
_Static_assert(LLFREE_KINDS <= (LLFREE_TREE_KIND_MASK >> LLFREE_TREE_KIND_SHIFT) + 1,
	       "kind fits 2 bits");
_Static_assert(LLFREE_TREE_CHILDREN % 2 == 0, "pairs never straddle trees");
_Static_assert(LLFREE_TREE_CHILDREN * 2 <= 64, "child words of a tree fit a cache line");
_Static_assert(sizeof(uint32_t) == 2 * sizeof(uint16_t), "pair word holds two child words");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pair word layout is little endian");

/* Placement of one zone's metadata. */
struct llfree_layout {
	uint64_t offset; /* frames between the 4 MiB aligned base and the zone start */
	uint64_t frames; /* frames of the zone */
	uint64_t trees;
	size_t bitfield_off, child_off, tree_off, size; /* bytes; the header is at 0 */
};

#define LLFREE_TREE_CHILD_BYTES 64 /* child words of one tree, padded */
#define LLFREE_TREE_PAIRS (LLFREE_TREE_CHILD_BYTES / sizeof(uint32_t))

/* Index of the pair word holding child, in u32 from child_off. */
static inline uint64_t llfree_pair_index(uint64_t child)
{
	return child / LLFREE_TREE_CHILDREN * LLFREE_TREE_PAIRS +
	       child % LLFREE_TREE_CHILDREN / 2;
}

#define LLFREE_ALIGN_UP(x, a) (((x) + (a)-1) / (a) * (a))

/* Returns false for an empty zone or one whose metadata size would overflow. */
static inline bool llfree_layout_init(struct llfree_layout *l, uint64_t start_pfn, uint64_t frames)
{
	uint64_t span;

	l->offset = start_pfn % LLFREE_BASE_FRAMES;
	l->frames = frames;
	if (frames == 0 || frames > ((uint64_t)1 << 40))
		return false;
	span = l->offset + frames;
	l->trees = (span + LLFREE_TREE_FRAMES - 1) / LLFREE_TREE_FRAMES;
	if (l->trees > (size_t)-1 / (LLFREE_TREE_CHILDREN * sizeof(struct llfree_bitfield) + 256))
		return false;
	l->bitfield_off = sizeof(struct llfree_header);
	l->child_off = l->bitfield_off +
		       l->trees * LLFREE_TREE_CHILDREN * sizeof(struct llfree_bitfield);
	l->tree_off = l->child_off + l->trees * LLFREE_TREE_CHILD_BYTES;
	l->size = l->tree_off + LLFREE_ALIGN_UP(l->trees * 2, 64);
	return true;
}

/* Valid frames of a child or tree: those inside [offset, offset + frames). */
static inline uint32_t llfree_layout_valid(const struct llfree_layout *l, uint64_t first,
					   uint64_t count)
{
	uint64_t lo = first > l->offset ? first : l->offset;
	uint64_t end = first + count, zone_end = l->offset + l->frames;
	uint64_t hi = end < zone_end ? end : zone_end;

	return hi > lo ? (uint32_t)(hi - lo) : 0;
}

static inline uint32_t llfree_child_capacity(const struct llfree_layout *l, uint64_t child)
{
	return llfree_layout_valid(l, child * LLFREE_CHILD_FRAMES, LLFREE_CHILD_FRAMES);
}

static inline uint32_t llfree_tree_capacity(const struct llfree_layout *l, uint64_t tree)
{
	return llfree_layout_valid(l, tree * LLFREE_TREE_FRAMES, LLFREE_TREE_FRAMES);
}

static inline uint32_t llfree_child_free(uint16_t c)
{
	return c & LLFREE_CHILD_FREE_MASK;
}

static inline uint32_t llfree_tree_free(uint16_t t)
{
	return t & LLFREE_TREE_FREE_MASK;
}

static inline unsigned llfree_tree_kind(uint16_t t)
{
	return (t & LLFREE_TREE_KIND_MASK) >> LLFREE_TREE_KIND_SHIFT;
}

static inline uint16_t llfree_pair_get(uint32_t pair, unsigned half)
{
	return (uint16_t)(pair >> (half * LLFREE_PAIR_SHIFT));
}

static inline uint32_t llfree_pair_set(uint32_t pair, unsigned half, uint16_t c)
{
	unsigned shift = half * LLFREE_PAIR_SHIFT;

	return (pair & ~(LLFREE_PAIR_LOW << shift)) | ((uint32_t)c << shift);
}

#endif
