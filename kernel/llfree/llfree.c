/* Guest side of the HyperAlloc allocator core.  See llfree.h and llfree_layout.h.
 *
 * Counting rule: a tree's counter plus the reservation and cache counts that
 * name it never exceed the free frames of its children.  get() lowers one of
 * them before taking frames from a child (and raises it again if the child
 * CAS fails), put() raises one after returning them, and so does the host.
 * Moving frames between a tree's counter, a reservation and a cache
 * therefore never counts a frame twice.  Reservation words are changed only
 * by CAS (any core may take frames or end them); a cache only by its core.
 */
#include "llfree.h"

#define CHILD_FULL ((uint16_t)LLFREE_CHILD_FRAMES)

_Static_assert(LLFREE_TREE_CHILDREN == 8, "llfree_dump() prints 8 children per tree");

static inline uint64_t children_total(const struct llfree *self)
{
	return self->layout.trees * LLFREE_TREE_CHILDREN;
}

static inline uint16_t child_word(uint32_t *pairs, uint64_t child)
{
	return llfree_pair_get(llfree_load(&pairs[llfree_pair_index(child)]), child & 1);
}

/* ---- bitfields ---- */

/* Bits at the start of every aligned run of 2^order bits, order <= 6. */
static const uint64_t run_starts[7] = {
	~0ull, 0x5555555555555555ull, 0x1111111111111111ull, 0x0101010101010101ull,
	0x0001000100010001ull, 0x0000000100000001ull, 1ull,
};

static inline uint64_t run_mask(unsigned order)
{
	return order == 6 ? ~0ull : (1ull << (1u << order)) - 1;
}

/* Starts of aligned runs of 2^order zero bits in w. */
static uint64_t free_runs(uint64_t w, unsigned order)
{
	uint64_t x = ~w;

	for (unsigned s = 1; s < (1u << order); s <<= 1)
		x &= x >> s;
	return x & run_starts[order];
}

/* Sets count whole words from 0 to ~0, all or none. */
static bool words_take(uint64_t *words, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		uint64_t zero = 0;

		if (!llfree_cas(&words[i], &zero, ~0ull)) {
			while (i--)
				llfree_store(&words[i], 0);
			return false;
		}
	}
	return true;
}

/* Clears count whole words that must all be ~0; checks before it clears. */
static bool words_put(uint64_t *words, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		if (llfree_load(&words[i]) != ~0ull)
			return false;
	}
	for (unsigned i = 0; i < count; i++) {
		uint64_t full = ~0ull;

		if (!llfree_cas(&words[i], &full, 0))
			return false;
	}
	return true;
}

/* Takes any aligned run of 2^order frames (order < 9); frame index or -1. */
static int bits_take(struct llfree_bitfield *bf, unsigned order)
{
	unsigned words = order > 6 ? 1u << (order - 6) : 1;

	for (unsigned i = 0; i < LLFREE_BITFIELD_WORDS; i += words) {
		uint64_t w = llfree_load(&bf->words[i]);

		if (order > 6) {
			if (w == 0 && words_take(&bf->words[i], words))
				return (int)i * 64;
			continue;
		}
		for (uint64_t runs; (runs = free_runs(w, order));) {
			unsigned bit = (unsigned)llfree_ctz(runs);

			if (llfree_cas(&bf->words[i], &w, w | run_mask(order) << bit))
				return (int)(i * 64 + bit);
		}
	}
	return -1;
}

/* Sets (take) or clears (put) the frames of an aligned run, only if all of
 * them are in the opposite state; false otherwise (taken, or a double free). */
static bool bits_flip(struct llfree_bitfield *bf, unsigned frame, unsigned order, bool take)
{
	uint64_t *word = &bf->words[frame / 64], mask, want, w;

	if (order > 6)
		return take ? words_take(word, 1u << (order - 6)) : words_put(word, 1u << (order - 6));
	mask = run_mask(order) << (frame % 64);
	want = take ? 0 : mask;
	w = llfree_load(word);
	do {
		if ((w & mask) != want)
			return false;
	} while (!llfree_cas(word, &w, w ^ mask));
	return true;
}

/* Bits of frames outside the zone in word `word` of child `child`. */
static uint64_t outside_bits(const struct llfree_layout *l, uint64_t child, unsigned word)
{
	uint64_t first = child * LLFREE_CHILD_FRAMES + word * 64;
	uint64_t lo = l->offset > first ? l->offset - first : 0;
	uint64_t end = l->offset + l->frames;
	uint64_t hi = end > first ? end - first : 0;
	uint64_t inside;

	lo = lo > 64 ? 64 : lo;
	hi = hi > 64 ? 64 : hi;
	if (hi <= lo)
		return ~0ull;
	inside = (hi - lo == 64 ? ~0ull : (1ull << (hi - lo)) - 1) << lo;
	return ~inside;
}

/* ---- child words ---- */

/* Takes n < 512 frames from a child's counter; *before is the old word.
 * The `avoid` bits of the child word must be clear. */
static bool child_take(uint32_t *pw, unsigned half, uint32_t n, bool avoid_reclaimed,
		       uint16_t *before)
{
	uint16_t avoid = LLFREE_CHILD_HUGE | (avoid_reclaimed ? LLFREE_CHILD_RECLAIMED : 0);
	uint32_t pair = llfree_load(pw);

	for (;;) {
		uint16_t c = llfree_pair_get(pair, half);

		if ((c & avoid) || llfree_child_free(c) < n)
			return false;
		if (llfree_cas(pw, &pair, llfree_pair_set(pair, half, (uint16_t)(c - n)))) {
			*before = c;
			return true;
		}
	}
}

static void child_give(uint32_t *pw, unsigned half, uint32_t n)
{
	uint32_t pair = llfree_load(pw);
	uint16_t c;

	do {
		c = llfree_pair_get(pair, half);
		llfree_assert(!(c & LLFREE_CHILD_HUGE) &&
			      llfree_child_free(c) + n <= LLFREE_CHILD_FRAMES);
	} while (!llfree_cas(pw, &pair, llfree_pair_set(pair, half, (uint16_t)(c + n))));
}

static inline bool child_is_free(uint16_t c)
{
	return (c & ~LLFREE_CHILD_RECLAIMED) == CHILD_FULL;
}

static inline uint16_t child_as_huge(uint16_t c)
{
	return LLFREE_CHILD_HUGE | (c & LLFREE_CHILD_RECLAIMED);
}

/* Order 9: a whole free child becomes huge. */
static bool huge_take(uint32_t *pw, unsigned half, bool avoid_reclaimed, uint16_t *before)
{
	uint32_t pair = llfree_load(pw);

	for (;;) {
		uint16_t c = llfree_pair_get(pair, half);

		if (!child_is_free(c) || (avoid_reclaimed && (c & LLFREE_CHILD_RECLAIMED)))
			return false;
		if (llfree_cas(pw, &pair, llfree_pair_set(pair, half, child_as_huge(c)))) {
			*before = c;
			return true;
		}
	}
}

/* Order 10: both children of a pair with one CAS; returns the install mask. */
static bool pair_take(uint32_t *pw, bool avoid_reclaimed, unsigned *install)
{
	uint32_t pair = llfree_load(pw);

	for (;;) {
		uint16_t lo = llfree_pair_get(pair, 0), hi = llfree_pair_get(pair, 1);
		uint32_t taken = child_as_huge(lo) | (uint32_t)child_as_huge(hi) << LLFREE_PAIR_SHIFT;

		if (!child_is_free(lo) || !child_is_free(hi) ||
		    (avoid_reclaimed && (pair & LLFREE_CHILD_RECLAIMED * 0x10001u)))
			return false;
		if (llfree_cas(pw, &pair, taken)) {
			*install = (lo & LLFREE_CHILD_RECLAIMED ? 1u : 0) | (hi & LLFREE_CHILD_RECLAIMED ? 2u : 0);
			return true;
		}
	}
}

/* Frees a whole child: a huge one, or one whose frames are all allocated. */
static int huge_put(struct llfree *self, uint64_t child)
{
	uint32_t *pw = &self->pairs[llfree_pair_index(child)], pair = llfree_load(pw);
	unsigned half = child & 1;

	for (;;) {
		uint16_t c = llfree_pair_get(pair, half);

		if (!(c & LLFREE_CHILD_HUGE))
			break;
		if (llfree_child_free(c))
			return LLFREE_EDOUBLE;
		if (llfree_cas(pw, &pair,
			       llfree_pair_set(pair, half, CHILD_FULL | (c & LLFREE_CHILD_RECLAIMED))))
			return 0;
	}
	if (llfree_child_free(llfree_pair_get(pair, half)) ||
	    !words_put(self->bitfields[child].words, LLFREE_BITFIELD_WORDS))
		return LLFREE_EDOUBLE;
	child_give(pw, half, LLFREE_CHILD_FRAMES);
	return 0;
}

static bool words_full(uint64_t *words)
{
	for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++) {
		if (llfree_load(&words[w]) != ~0ull)
			return false;
	}
	return true;
}

/* Order 10: frees both children of a pair with one CAS, so a failure never
 * leaves half of the block freed.  Each half is a huge child or a fully
 * allocated bitfield (after an order-10 hand-over at init); bitfields are
 * cleared first, while the counters still say allocated. */
static int pair_put(struct llfree *self, uint64_t child)
{
	uint32_t *pw = &self->pairs[llfree_pair_index(child)], pair = llfree_load(pw);
	bool bits[2];

	for (unsigned half = 0; half < 2; half++) {
		uint16_t c = llfree_pair_get(pair, half);

		bits[half] = !(c & LLFREE_CHILD_HUGE);
		if (llfree_child_free(c) || (bits[half] && !words_full(self->bitfields[child + half].words)))
			return LLFREE_EDOUBLE;
	}
	for (unsigned half = 0; half < 2; half++) {
		if (bits[half] && !words_put(self->bitfields[child + half].words, LLFREE_BITFIELD_WORDS)) {
			for (unsigned h = 0; h < half; h++) { /* a concurrent double free */
				if (bits[h])
					for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++)
						llfree_store(&self->bitfields[child + h].words[w], ~0ull);
			}
			return LLFREE_EDOUBLE;
		}
	}
	for (;;) { /* only `reclaimed` may change meanwhile (install) */
		uint32_t freed = 0;

		for (unsigned half = 0; half < 2; half++) {
			uint16_t c = llfree_pair_get(pair, half);

			freed = llfree_pair_set(freed, half, CHILD_FULL | (c & LLFREE_CHILD_RECLAIMED));
		}
		if (llfree_cas(pw, &pair, freed))
			return 0;
	}
}

/* A partial free into a huge child (split_page, THP split, alloc_pages_exact)
 * first turns it into a fully allocated bitfield child (huge=0, free=0).  The
 * bitfield of a huge child is all zero; whoever sets its word 0 first does the
 * split, the others wait for it.  A caller that set word 0 after an earlier
 * split (the word emptied by frees since) sees the child no longer huge and
 * clears it again; its own frame, still allocated, keeps the child from
 * becoming huge again meanwhile.  A reclaimed huge child is refused: it is
 * either held by the host or was never installed. */
static int huge_split(struct llfree *self, uint64_t child)
{
	uint32_t *pw = &self->pairs[llfree_pair_index(child)];
	uint64_t *words = self->bitfields[child].words;
	unsigned half = child & 1;

	for (;;) {
		uint16_t c = child_word(self->pairs, child);
		uint64_t zero = 0, full = ~0ull;
		uint32_t pair;

		if (!(c & LLFREE_CHILD_HUGE)) {
			llfree_fence(); /* see the bits of the split before clearing one */
			return 0;
		}
		if ((c & LLFREE_CHILD_RECLAIMED) || llfree_child_free(c))
			return LLFREE_EDOUBLE;
		if (!llfree_cas(&words[0], &zero, ~0ull)) {
			llfree_relax(); /* another CPU splits it */
			continue;
		}
		pair = llfree_load(pw);
		c = llfree_pair_get(pair, half);
		if (!(c & LLFREE_CHILD_HUGE) || (c & LLFREE_CHILD_RECLAIMED)) {
			llfree_cas(&words[0], &full, 0); /* late: word 0 was free */
			continue;
		}
		for (unsigned w = 1; w < LLFREE_BITFIELD_WORDS; w++)
			llfree_store(&words[w], ~0ull);
		while (!llfree_cas(pw, &pair, llfree_pair_set(pair, half, 0)))
			; /* only `reclaimed` of the other half may change */
		return 0;
	}
}

/* huge_split sets the bits of a huge child before it clears `huge`, so a put
 * into another part of the block can clear its bits in that window.  The
 * child's counter rises only after the split: wait for it.  It ends soon, and
 * the put's frames, now clear but not counted, keep the child from becoming
 * huge again. */
static void split_wait(struct llfree *self, uint64_t child)
{
	while (child_word(self->pairs, child) & LLFREE_CHILD_HUGE)
		llfree_relax();
}

/* ---- tree words ---- */

/* Lowers a tree's counter by n, reserved or not. */
static bool tree_take(struct llfree *self, uint64_t tree, uint32_t n)
{
	uint16_t t = llfree_load(&self->trees[tree]);

	do {
		if (llfree_tree_free(t) < n)
			return false;
	} while (!llfree_cas(&self->trees[tree], &t, (uint16_t)(t - n)));
	return true;
}

/* Raises a tree's counter by n and, with unreserve, clears reserved. */
static void tree_give(struct llfree *self, uint64_t tree, uint32_t n, bool unreserve)
{
	uint16_t t = llfree_load(&self->trees[tree]), next;

	do {
		llfree_assert(llfree_tree_free(t) + n <= llfree_tree_capacity(&self->layout, tree));
		next = (uint16_t)(t + n);
		if (unreserve)
			next &= (uint16_t)~LLFREE_TREE_RESERVED;
	} while (!llfree_cas(&self->trees[tree], &t, next));
}

enum reserve_pass {
	PASS_PARTIAL, /* unreserved, same kind, partly used, plenty free */
	PASS_EMPTY,   /* unreserved, entirely free */
	PASS_ANY,     /* unreserved, enough free */
	PASSES,
};

/* Reserves a tree, taking its whole counter; returns the frames taken or 0.
 * Only an entirely free tree takes the new kind: one fixed allocation must
 * not turn a movable tree fixed (that costs the host reclaimable children). */
static uint32_t tree_reserve(struct llfree *self, uint64_t tree, unsigned kind, uint32_t n,
			     enum reserve_pass pass)
{
	uint32_t cap = llfree_tree_capacity(&self->layout, tree);
	uint16_t t = llfree_load(&self->trees[tree]);

	for (;;) {
		uint32_t free = llfree_tree_free(t);
		uint16_t kind_bits = free == cap ? (uint16_t)(kind << LLFREE_TREE_KIND_SHIFT) :
						   (uint16_t)(t & LLFREE_TREE_KIND_MASK);

		if ((t & LLFREE_TREE_RESERVED) || free < n || free == 0)
			return 0;
		if (pass == PASS_PARTIAL &&
		    (llfree_tree_kind(t) != kind || free == cap || free < LLFREE_TREE_FRAMES / 8))
			return 0;
		if (pass == PASS_EMPTY && free != cap)
			return 0;
		if (llfree_cas(&self->trees[tree], &t, (uint16_t)(LLFREE_TREE_RESERVED | kind_bits)))
			return free;
	}
}

/* Takes a tree's whole shared counter, reserved or not. */
static uint32_t tree_take_all(struct llfree *self, uint64_t tree)
{
	uint16_t t = llfree_load(&self->trees[tree]);

	while (llfree_tree_free(t) &&
	       !llfree_cas(&self->trees[tree], &t, (uint16_t)(t & ~LLFREE_TREE_FREE_MASK)))
		;
	return llfree_tree_free(t);
}

/* ---- allocation inside one tree ---- */

/* Installed children first: memory from reclaimed ones costs an install. */
static bool tree_alloc(struct llfree *self, uint64_t tree, unsigned order, bool avoid_reclaimed,
		       struct llfree_alloc *out)
{
	uint64_t first = tree * LLFREE_TREE_CHILDREN;

	for (unsigned pass = 0; pass < (avoid_reclaimed ? 1u : 2u); pass++) {
		for (uint64_t c = first; c < first + LLFREE_TREE_CHILDREN; c++) {
			uint32_t *pw = &self->pairs[llfree_pair_index(c)];
			unsigned half = c & 1;
			uint32_t pair = llfree_load(pw);
			bool reclaimed = order == LLFREE_MAX_ORDER ?
						 pair & (LLFREE_CHILD_RECLAIMED * 0x10001u) :
						 llfree_pair_get(pair, half) & LLFREE_CHILD_RECLAIMED;
			uint16_t before;
			int frame = 0;

			if ((order == LLFREE_MAX_ORDER && half) || reclaimed != (pass == 1))
				continue;
			if (order == LLFREE_MAX_ORDER) {
				if (!pair_take(pw, avoid_reclaimed, &out->install))
					continue;
			} else if (order == LLFREE_CHILD_ORDER) {
				if (!huge_take(pw, half, avoid_reclaimed, &before))
					continue;
				out->install = !!(before & LLFREE_CHILD_RECLAIMED);
			} else {
				if (!child_take(pw, half, 1u << order, avoid_reclaimed, &before))
					continue;
				frame = bits_take(&self->bitfields[c], order);
				if (frame < 0) {
					child_give(pw, half, 1u << order);
					continue;
				}
				out->install = !!(before & LLFREE_CHILD_RECLAIMED);
			}
			out->pfn = self->base + c * LLFREE_CHILD_FRAMES + (unsigned)frame;
			return true;
		}
	}
	return false;
}

/* ---- per-core reservations ---- */

static inline uint32_t res_tree(uint64_t r)
{
	return (uint32_t)r;
}

static inline uint32_t res_free(uint64_t r)
{
	return (uint32_t)(r >> 32);
}

#define RES_NONE ((uint64_t)LLFREE_NONE)

static unsigned kind_of(unsigned order, unsigned flags)
{
	if (order >= LLFREE_CHILD_ORDER)
		return LLFREE_KIND_HUGE;
	return flags & LLFREE_MOVABLE ? LLFREE_KIND_MOVABLE : LLFREE_KIND_FIXED;
}

/* Adds delta frames to a reservation if it still holds tree and stays >= 0.
 * Any core may call it. */
static bool res_add(uint64_t *res, uint64_t tree, int64_t delta)
{
	uint64_t r = llfree_load(res);

	do {
		if (res_tree(r) != tree || (int64_t)res_free(r) + delta < 0)
			return false;
	} while (!llfree_cas(res, &r, r + ((uint64_t)delta << 32)));
	return true;
}

/* Ends a reservation: the frames go back to the tree, which becomes free for
 * any core to reserve.  Any core may call it. */
static void unreserve(struct llfree *self, uint64_t *res)
{
	uint64_t r = llfree_load(res);

	while (res_tree(r) != LLFREE_NONE && !llfree_cas(res, &r, RES_NONE))
		;
	if (res_tree(r) != LLFREE_NONE)
		tree_give(self, res_tree(r), res_free(r), true);
}

/* The core's reservation holding tree, or NULL. */
static uint64_t *res_of(struct llfree_local *l, uint64_t tree)
{
	for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
		if (res_tree(llfree_load(&l->reserved[kind])) == tree)
			return &l->reserved[kind];
	}
	return NULL;
}

/* Returns the core's cached frames of kind to their reservation or tree. */
static void cache_flush(struct llfree *self, struct llfree_local *l, unsigned kind)
{
	uint64_t c = llfree_load(&l->cache[kind]), tree = res_tree(c);

	if (tree == LLFREE_NONE)
		return;
	llfree_store(&l->cache[kind], RES_NONE);
	if (res_free(c) && !res_add(&l->reserved[kind], tree, res_free(c)))
		tree_give(self, tree, res_free(c), false);
}

/* Takes at least n, up to a batch of frames from the reservation of tree,
 * refilling it from the tree's counter once; returns how many or 0. */
static uint32_t res_grab(struct llfree *self, uint64_t *res, uint64_t tree, uint32_t n)
{
	uint32_t want = n > LLFREE_CACHE_BATCH ? n : LLFREE_CACHE_BATCH;
	uint64_t r = llfree_load(res);

	for (bool refilled = false;;) {
		uint32_t avail = res_free(r), take = avail < want ? avail : want, more;

		if (res_tree(r) != tree)
			return 0;
		if (avail >= n) {
			if (llfree_cas(res, &r, r - ((uint64_t)take << 32)))
				return take;
			continue;
		}
		if (refilled || !(more = tree_take_all(self, tree)))
			return 0;
		refilled = true;
		if (!res_add(res, tree, more)) { /* drained meanwhile */
			tree_give(self, tree, more, false);
			return 0;
		}
		r = llfree_load(res);
	}
}

static inline void count_freed(struct llfree_local *l, int64_t n)
{
	llfree_store(&l->freed, llfree_load(&l->freed) + n);
}

/* Takes n frames counted for tree: from this core's cache, the shared
 * counter or a core's reservation.  Give them back with tree_give. */
static bool counter_take(struct llfree *self, unsigned core, uint64_t tree, uint32_t n)
{
	struct llfree_local *l = &self->locals[core];

	for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
		uint64_t c = llfree_load(&l->cache[kind]);

		if (res_tree(c) == tree && res_free(c) >= n) {
			llfree_store(&l->cache[kind], c - ((uint64_t)n << 32));
			return true;
		}
	}
	if (tree_take(self, tree, n))
		return true;
	for (unsigned i = 0; i < self->cores; i++) {
		uint64_t *res = res_of(&self->locals[(core + i) % self->cores], tree);

		if (res && res_add(res, tree, -(int64_t)n))
			return true;
	}
	return false;
}

/* ---- API ---- */

size_t llfree_metadata_size(uint64_t start_pfn, uint64_t frames)
{
	struct llfree_layout l;

	return llfree_layout_init(&l, start_pfn, frames) ? l.size : 0;
}

int llfree_init(struct llfree *self, unsigned cores, struct llfree_local *locals,
		uint64_t start_pfn, uint64_t frames, enum llfree_init_mode mode, void *meta)
{
	struct llfree_layout *l = &self->layout;
	char *m = meta;

	if (!cores || !locals || !meta || (uintptr_t)meta % 64 || mode > LLFREE_INIT_RECOVER ||
	    !llfree_layout_init(l, start_pfn, frames))
		return LLFREE_EINVAL;
	self->header = (struct llfree_header *)m;
	if (mode == LLFREE_INIT_RECOVER &&
	    (self->header->magic != LLFREE_MAGIC || self->header->version != LLFREE_VERSION ||
	     self->header->start_pfn != start_pfn || self->header->frames != frames))
		return LLFREE_EINVAL;
	self->base = start_pfn - l->offset;
	self->bitfields = (struct llfree_bitfield *)(m + l->bitfield_off);
	self->pairs = (uint32_t *)(m + l->child_off);
	self->trees = (uint16_t *)(m + l->tree_off);
	self->locals = locals;
	self->cores = cores;
	self->reserve = l->trees >= (uint64_t)cores * LLFREE_TREES_PER_CORE;
	self->init_free = 0;
	for (unsigned core = 0; core < cores; core++) {
		for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
			llfree_store(&locals[core].reserved[kind], RES_NONE);
			llfree_store(&locals[core].cache[kind], RES_NONE);
		}
		llfree_store(&locals[core].freed, 0);
	}
	for (uint64_t tree = 0; tree < l->trees; tree++) {
		uint16_t t = mode == LLFREE_INIT_RECOVER ? llfree_load(&self->trees[tree]) : 0;
		uint32_t tree_free = 0, pair = 0;

		for (uint64_t c = tree * LLFREE_TREE_CHILDREN; c < (tree + 1) * LLFREE_TREE_CHILDREN;
		     c++) {
			uint64_t *words = self->bitfields[c].words;
			uint16_t child = 0;

			if (mode == LLFREE_INIT_RECOVER) {
				child = child_word(self->pairs, c) &
					(LLFREE_CHILD_HUGE | LLFREE_CHILD_RECLAIMED);
				if (!(child & LLFREE_CHILD_HUGE)) {
					uint32_t used = 0;

					for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++)
						used += (uint32_t)llfree_popcount(
							llfree_load(&words[w]));
					child |= (uint16_t)(LLFREE_CHILD_FRAMES - used);
				}
			} else {
				for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++)
					llfree_store(&words[w], mode == LLFREE_INIT_ALLOC ?
									~0ull :
									outside_bits(l, c, w));
				if (mode == LLFREE_INIT_FREE)
					child = (uint16_t)llfree_child_capacity(l, c);
			}
			tree_free += llfree_child_free(child);
			pair = llfree_pair_set(pair, c & 1, child);
			if (c & 1)
				llfree_store(&self->pairs[llfree_pair_index(c)], pair);
		}
		llfree_store(&self->trees[tree], (uint16_t)((t & LLFREE_TREE_KIND_MASK) | tree_free));
		self->init_free += tree_free;
	}
	if (mode != LLFREE_INIT_RECOVER) {
		*self->header = (struct llfree_header){ .magic = LLFREE_MAGIC,
							.version = LLFREE_VERSION,
							.start_pfn = start_pfn,
							.frames = frames };
	}
	self->init_free += (int64_t)llfree_load(&self->header->hard) * LLFREE_CHILD_FRAMES;
	return 0;
}

static bool frame_valid(const struct llfree *self, uint64_t pfn, unsigned order)
{
	uint64_t first = self->base + self->layout.offset;

	return order <= LLFREE_MAX_ORDER && pfn >= first && pfn % (1u << order) == 0 &&
	       pfn - first + (1u << order) <= self->layout.frames;
}

/* Through the core's reservation of kind: the reserved tree, then new
 * reservations.  The start tree for the fallback goes to *start. */
static bool get_reserved(struct llfree *self, unsigned core, unsigned kind, unsigned order,
			 bool avoid_reclaimed, struct llfree_alloc *out, uint64_t *start)
{
	struct llfree_local *l = &self->locals[core];
	uint64_t *res = &l->reserved[kind], c = llfree_load(&l->cache[kind]);
	uint64_t tree = res_tree(c), trees = self->layout.trees;
	uint32_t n = 1u << order, got;

	if (tree != LLFREE_NONE && res_free(c) >= n) { /* the fast path */
		llfree_store(&l->cache[kind], c - ((uint64_t)n << 32));
		if (tree_alloc(self, tree, order, avoid_reclaimed, out))
			return true;
		llfree_store(&l->cache[kind], c);
	}
	cache_flush(self, l, kind);
	tree = res_tree(llfree_load(res));
	if (tree != LLFREE_NONE) {
		got = res_grab(self, res, tree, n);
		if (got) {
			llfree_store(&l->cache[kind], tree | (uint64_t)(got - n) << 32);
			if (tree_alloc(self, tree, order, avoid_reclaimed, out))
				return true;
			llfree_store(&l->cache[kind], tree | (uint64_t)got << 32);
			cache_flush(self, l, kind);
		}
		unreserve(self, res);
		*start = tree + 1;
	} else {
		*start = (uint64_t)core * trees / self->cores;
	}
	for (enum reserve_pass pass = 0; pass < PASSES; pass++) {
		/* Partly used trees only nearby: one cache line of tree words. */
		uint64_t scan = pass == PASS_PARTIAL && trees > 32 ? 32 : trees;

		for (uint64_t i = 0; i < scan; i++) {
			uint64_t t = (*start + i) % trees;
			uint32_t free = tree_reserve(self, t, kind, n, pass);

			if (!free)
				continue;
			if (tree_alloc(self, t, order, avoid_reclaimed, out)) {
				/* Only this core sets its empty reservation. */
				llfree_store(res, t | (uint64_t)(free - n) << 32);
				return true;
			}
			tree_give(self, t, free, true);
		}
	}
	return false;
}

int llfree_get(struct llfree *self, unsigned core, unsigned order, unsigned flags,
	       struct llfree_alloc *out)
{
	bool avoid_reclaimed = flags & LLFREE_NORECLAIMED;
	uint64_t trees = self->layout.trees, start;
	uint32_t n;

	if (core >= self->cores || order > LLFREE_MAX_ORDER)
		return LLFREE_EINVAL;
	n = 1u << order;
	start = LLFREE_NONE; /* from the reserved tree, else spread by core */
	if (self->reserve &&
	    get_reserved(self, core, kind_of(order, flags), order, avoid_reclaimed, out, &start))
		goto got;
	if (start == LLFREE_NONE)
		start = (uint64_t)core * trees / self->cores;
	/* Any tree's shared counter: unreserved trees (all of them in a small
	 * zone) and frames freed into reserved ones. */
	for (uint64_t i = 0; i < trees; i++) {
		uint64_t tree = (start + i) % trees;

		if (!tree_take(self, tree, n))
			continue;
		if (tree_alloc(self, tree, order, avoid_reclaimed, out))
			goto got;
		tree_give(self, tree, n, false);
	}
	/* Frames held in reservations, this core's other kinds included. */
	for (unsigned c = 0; c < self->cores; c++) {
		for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
			uint64_t *res = &self->locals[(core + c) % self->cores].reserved[kind];
			uint64_t tree = res_tree(llfree_load(res));

			if (tree == LLFREE_NONE || !res_add(res, tree, -(int64_t)n))
				continue;
			if (tree_alloc(self, tree, order, avoid_reclaimed, out))
				goto got;
			tree_give(self, tree, n, false);
		}
	}
	return LLFREE_ENOMEM;
got:
	count_freed(&self->locals[core], -(int64_t)n);
	return 0;
}

int llfree_get_at(struct llfree *self, unsigned core, uint64_t pfn, unsigned order,
		  struct llfree_alloc *out)
{
	uint64_t frame, child, tree;
	uint32_t *pw, n;
	uint16_t before = 0;
	unsigned half;
	bool taken;

	if (core >= self->cores || !frame_valid(self, pfn, order))
		return LLFREE_EINVAL;
	n = 1u << order;
	frame = pfn - self->base;
	child = frame / LLFREE_CHILD_FRAMES;
	tree = child / LLFREE_TREE_CHILDREN;
	pw = &self->pairs[llfree_pair_index(child)];
	half = child & 1;
	if (!counter_take(self, core, tree, n))
		return LLFREE_ENOMEM;

	out->install = 0;
	if (order == LLFREE_MAX_ORDER) {
		taken = pair_take(pw, false, &out->install);
	} else if (order == LLFREE_CHILD_ORDER) {
		taken = huge_take(pw, half, false, &before);
	} else {
		taken = child_take(pw, half, n, false, &before);
		if (taken && !bits_flip(&self->bitfields[child], frame % LLFREE_CHILD_FRAMES,
					order, true)) {
			child_give(pw, half, n);
			taken = false;
		}
	}
	if (!taken) {
		tree_give(self, tree, n, false);
		return LLFREE_ENOMEM;
	}
	out->install |= !!(before & LLFREE_CHILD_RECLAIMED);
	out->pfn = pfn;
	count_freed(&self->locals[core], -(int64_t)n);
	return 0;
}

int llfree_put(struct llfree *self, unsigned core, uint64_t pfn, unsigned order)
{
	uint64_t frame, child, tree, *res;
	struct llfree_local *l;
	uint32_t n;

	if (core >= self->cores || !frame_valid(self, pfn, order))
		return LLFREE_EINVAL;
	n = 1u << order;
	frame = pfn - self->base;
	child = frame / LLFREE_CHILD_FRAMES;
	tree = child / LLFREE_TREE_CHILDREN;
	if (order < LLFREE_CHILD_ORDER) {
		struct llfree_bitfield *bf = &self->bitfields[child];
		unsigned at = frame % LLFREE_CHILD_FRAMES;

		if (!bits_flip(bf, at, order, false) &&
		    (huge_split(self, child) || !bits_flip(bf, at, order, false)))
			return LLFREE_EDOUBLE;
		split_wait(self, child);
		child_give(&self->pairs[llfree_pair_index(child)], child & 1, n);
	} else {
		int err = order == LLFREE_MAX_ORDER ? pair_put(self, child) : huge_put(self, child);

		if (err)
			return err;
	}
	l = &self->locals[core];
	for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
		uint64_t c = llfree_load(&l->cache[kind]);

		if (res_tree(c) == tree && res_free(c) + n <= LLFREE_CACHE_MAX) {
			llfree_store(&l->cache[kind], c + ((uint64_t)n << 32));
			goto done;
		}
	}
	res = res_of(l, tree);
	if (!res || !res_add(res, tree, n))
		tree_give(self, tree, n, false);
done:
	count_freed(l, n);
	return 0;
}

void llfree_drain(struct llfree *self, unsigned core)
{
	if (core >= self->cores)
		return;
	for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
		cache_flush(self, &self->locals[core], kind);
		unreserve(self, &self->locals[core].reserved[kind]);
	}
}

void llfree_drain_remote(struct llfree *self, unsigned core)
{
	if (core >= self->cores)
		return;
	for (unsigned kind = 0; kind < LLFREE_KINDS; kind++)
		unreserve(self, &self->locals[core].reserved[kind]);
}

uint64_t llfree_frames(const struct llfree *self)
{
	return self->layout.frames;
}

uint32_t llfree_free_in_tree(const struct llfree *self, uint64_t tree)
{
	uint32_t free;

	if (tree >= self->layout.trees)
		return 0;
	free = llfree_tree_free(llfree_load(&self->trees[tree]));
	for (unsigned core = 0; core < self->cores; core++) {
		for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
			uint64_t r = llfree_load(&self->locals[core].reserved[kind]);
			uint64_t c = llfree_load(&self->locals[core].cache[kind]);

			if (res_tree(r) == tree)
				free += res_free(r);
			if (res_tree(c) == tree)
				free += res_free(c);
		}
	}
	return free;
}

uint64_t llfree_free_frames(const struct llfree *self)
{
	/* Modular: the host's count is not trusted to be sane. */
	uint64_t free = (uint64_t)self->init_free -
			llfree_load(&self->header->hard) * LLFREE_CHILD_FRAMES;

	for (unsigned core = 0; core < self->cores; core++)
		free += (uint64_t)llfree_load(&self->locals[core].freed);
	if ((int64_t)free < 0)
		return 0;
	return free < self->layout.frames ? free : self->layout.frames;
}

/* Free frames summed from the tree counters and reservations. */
static uint64_t free_recount(const struct llfree *self)
{
	uint64_t free = 0;

	for (uint64_t tree = 0; tree < self->layout.trees; tree++)
		free += llfree_tree_free(llfree_load(&self->trees[tree]));
	for (unsigned core = 0; core < self->cores; core++) {
		for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
			uint64_t r = llfree_load(&self->locals[core].reserved[kind]);
			uint64_t c = llfree_load(&self->locals[core].cache[kind]);

			if (res_tree(r) != LLFREE_NONE)
				free += res_free(r);
			if (res_tree(c) != LLFREE_NONE)
				free += res_free(c);
		}
	}
	return free;
}

uint64_t llfree_free_huge(const struct llfree *self)
{
	uint64_t huge = 0;

	for (uint64_t c = 0; c < children_total(self); c++)
		huge += child_is_free(child_word(self->pairs, c));
	return huge;
}

/* Whether the aligned run of 2^order frames at frame `at` of a bitfield
 * child is free (order < 9). */
static bool bits_free(const struct llfree_bitfield *bf, unsigned at, unsigned order)
{
	const uint64_t *word = &bf->words[at / 64];

	if (order > 6) {
		for (unsigned i = 0; i < 1u << (order - 6); i++) {
			if (llfree_load(&word[i]))
				return false;
		}
		return true;
	}
	return !(llfree_load(word) & run_mask(order) << (at % 64));
}

/* Whether the block is free at this order: whole free children for orders 9
 * and 10, free bits of a bitfield child below.  A snapshot. */
static bool block_free(const struct llfree *self, uint64_t frame, unsigned order)
{
	uint64_t child = frame / LLFREE_CHILD_FRAMES;
	uint16_t c = child_word(self->pairs, child);

	if (order == LLFREE_MAX_ORDER)
		return child_is_free(c) && child_is_free(child_word(self->pairs, child + 1));
	if (order == LLFREE_CHILD_ORDER)
		return child_is_free(c);
	return !(c & LLFREE_CHILD_HUGE) &&
	       bits_free(&self->bitfields[child], frame % LLFREE_CHILD_FRAMES, order);
}

bool llfree_is_free(const struct llfree *self, uint64_t pfn, unsigned order)
{
	return frame_valid(self, pfn, order) && block_free(self, pfn - self->base, order);
}

int llfree_next_free(const struct llfree *self, uint64_t *pfn, unsigned *order)
{
	uint64_t first = self->base + self->layout.offset;
	uint64_t end = first + self->layout.frames, frame;

	if (*pfn < first)
		*pfn = first;
	for (frame = *pfn - self->base; frame + self->base < end;) {
		uint64_t child = frame / LLFREE_CHILD_FRAMES;
		uint16_t c = child_word(self->pairs, child);
		int o;

		if ((c & LLFREE_CHILD_HUGE) || !llfree_child_free(c)) {
			frame = (child + 1) * LLFREE_CHILD_FRAMES;
			continue;
		}
		if (!bits_free(&self->bitfields[child], frame % LLFREE_CHILD_FRAMES, 0)) {
			uint64_t w = llfree_load(&self->bitfields[child].words[frame % 512 / 64]);

			frame = w == ~0ull ? (frame / 64 + 1) * 64 : frame + 1;
			continue;
		}
		/* The largest aligned free block starting here. */
		for (o = LLFREE_MAX_ORDER; o >= 0; o--) {
			if (frame % (1u << o) == 0 && frame + self->base + (1u << o) <= end &&
			    block_free(self, frame, (unsigned)o))
				break;
		}
		if (o >= 0) {
			*pfn = frame + self->base;
			*order = (unsigned)o;
			return 0;
		}
		frame++;
	}
	return LLFREE_ENOMEM;
}

void llfree_free_blocks(const struct llfree *self, uint64_t counts[LLFREE_MAX_ORDER + 1])
{
	uint64_t pfn = 0;
	unsigned order;

	for (unsigned o = 0; o <= LLFREE_MAX_ORDER; o++)
		counts[o] = 0;
	while (!llfree_next_free(self, &pfn, &order)) {
		counts[order]++;
		pfn += 1u << order;
	}
}

uint64_t llfree_child_of(const struct llfree *self, uint64_t pfn)
{
	return (pfn - self->base) / LLFREE_CHILD_FRAMES;
}

#define FAIL(...)                           \
	do {                                \
		llfree_log(__VA_ARGS__);    \
		return LLFREE_ECORRUPT;     \
	} while (0)

int llfree_validate(const struct llfree *self)
{
	const struct llfree_layout *l = &self->layout;

	for (uint64_t tree = 0; tree < l->trees; tree++) {
		uint16_t t = llfree_load(&self->trees[tree]);
		uint32_t sum = 0, holders = 0, held = 0;

		for (uint64_t c = tree * LLFREE_TREE_CHILDREN; c < (tree + 1) * LLFREE_TREE_CHILDREN;
		     c++) {
			uint16_t child = child_word(self->pairs, c);
			uint32_t free = llfree_child_free(child), used = 0;
			uint64_t outside = 0;

			for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++) {
				uint64_t bits = llfree_load(&self->bitfields[c].words[w]);

				used += (uint32_t)llfree_popcount(bits);
				outside |= outside_bits(l, c, w) & ~bits;
			}
			if (free > llfree_child_capacity(l, c))
				FAIL("child %llu: free %u above capacity\n", (unsigned long long)c,
				     free);
			if ((child & LLFREE_CHILD_HUGE) && (free || used))
				FAIL("child %llu: huge with free %u, %u bits set\n",
				     (unsigned long long)c, free, used);
			if (!(child & LLFREE_CHILD_HUGE) && (free != LLFREE_CHILD_FRAMES - used || outside))
				FAIL("child %llu: free %u but %u bits set\n", (unsigned long long)c,
				     free, used);
			sum += free;
		}
		for (unsigned core = 0; core < self->cores; core++) {
			for (unsigned kind = 0; kind < LLFREE_KINDS; kind++) {
				uint64_t r = llfree_load(&self->locals[core].reserved[kind]);
				uint64_t c = llfree_load(&self->locals[core].cache[kind]);

				if (res_tree(c) == tree)
					held += res_free(c);
				if (res_tree(r) != tree)
					continue;
				holders++;
				held += res_free(r);
			}
		}
		if (llfree_tree_kind(t) >= LLFREE_KINDS)
			FAIL("tree %llu: bad kind\n", (unsigned long long)tree);
		if (holders != !!(t & LLFREE_TREE_RESERVED))
			FAIL("tree %llu: reserved flag %d but %u reservations\n",
			     (unsigned long long)tree, !!(t & LLFREE_TREE_RESERVED), holders);
		if (llfree_tree_free(t) + held != sum)
			FAIL("tree %llu: counter %u + reserved %u but children hold %u\n",
			     (unsigned long long)tree, llfree_tree_free(t), held, sum);
	}
	if (llfree_free_frames(self) != free_recount(self))
		FAIL("free counter %llu but trees and reservations hold %llu\n",
		     (unsigned long long)llfree_free_frames(self),
		     (unsigned long long)free_recount(self));
	return 0;
}

void llfree_dump(const struct llfree *self)
{
	const struct llfree_layout *l = &self->layout;

	llfree_log("base pfn %llu, offset %llu, frames %llu, trees %llu, free %llu, free huge %llu\n",
		   (unsigned long long)self->base, (unsigned long long)l->offset,
		   (unsigned long long)l->frames, (unsigned long long)l->trees,
		   (unsigned long long)llfree_free_frames(self),
		   (unsigned long long)llfree_free_huge(self));
	for (uint64_t tree = 0; tree < l->trees; tree++) {
		uint16_t t = llfree_load(&self->trees[tree]), c[LLFREE_TREE_CHILDREN];

		for (unsigned i = 0; i < LLFREE_TREE_CHILDREN; i++)
			c[i] = child_word(self->pairs, tree * LLFREE_TREE_CHILDREN + i);
		/* Children as free count, h = huge, r = reclaimed. */
#define C(i) llfree_child_free(c[i]), c[i] & LLFREE_CHILD_HUGE ? "h" : "", \
	     c[i] & LLFREE_CHILD_RECLAIMED ? "r" : ""
		llfree_log("tree %llu: free %u kind %u%s | %u%s%s %u%s%s %u%s%s %u%s%s %u%s%s %u%s%s "
			   "%u%s%s %u%s%s\n",
			   (unsigned long long)tree, llfree_tree_free(t), llfree_tree_kind(t),
			   t & LLFREE_TREE_RESERVED ? " reserved" : "", C(0), C(1), C(2), C(3),
			   C(4), C(5), C(6), C(7));
#undef C
	}
}
