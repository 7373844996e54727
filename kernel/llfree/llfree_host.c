/* Host side of the HyperAlloc allocator core (runs in QEMU).  See llfree.h.
 *
 * The metadata lives in guest memory, so a hostile guest can write anything
 * at any time.  Every word read is validated before use, every CAS loop is
 * bounded, and all addresses come from the host's own layout, never from the
 * metadata.  Only child and tree words are ever written.
 *
 * Hard reclaim lowers the tree counter first (only while the tree is
 * unreserved) and then marks the child allocated; a failed child CAS gives the
 * frames back.  So the counter never exceeds the children's free frames, the
 * same rule the guest follows, and a tree reserved meanwhile takes the already
 * lowered counter: nothing is counted twice.
 */
#include "llfree.h"

#define RETRIES 256
#define HARD_CHILD ((uint16_t)(LLFREE_CHILD_HUGE | LLFREE_CHILD_RECLAIMED))

static inline uint64_t children_total(const struct llfree_host *h)
{
	return h->layout.trees * LLFREE_TREE_CHILDREN;
}

static bool child_valid(const struct llfree_host *h, uint64_t child, uint16_t c)
{
	uint32_t free = llfree_child_free(c);

	return free <= llfree_child_capacity(&h->layout, child) &&
	       !((c & LLFREE_CHILD_HUGE) && free);
}

static bool tree_valid(const struct llfree_host *h, uint64_t tree, uint16_t t)
{
	return llfree_tree_free(t) <= llfree_tree_capacity(&h->layout, tree) &&
	       llfree_tree_kind(t) < LLFREE_KINDS;
}

static inline bool reclaimable(uint16_t c, bool hard)
{
	return (c & ~LLFREE_CHILD_RECLAIMED) == LLFREE_CHILD_FRAMES &&
	       (hard || !(c & LLFREE_CHILD_RECLAIMED));
}

/* Records a child held hard; the caller adds it to the header's count. */
static inline void hold(struct llfree_host *h, uint64_t child, bool held)
{
	if (held)
		h->hard[child / 64] |= 1ull << (child % 64);
	else
		h->hard[child / 64] &= ~(1ull << (child % 64));
}

/* Adds delta (may be negative) to an unreserved tree's counter, or with
 * any_state to any tree's.  0 when done, 1 when the tree is reserved or
 * lacks the frames, or an error. */
static int tree_add(struct llfree_host *h, uint64_t tree, int32_t delta, bool any_state)
{
	uint16_t t = llfree_load(&h->trees[tree]);

	for (unsigned i = 0; i < RETRIES; i++) {
		int64_t free = (int64_t)llfree_tree_free(t) + delta;

		if (!tree_valid(h, tree, t) || free > llfree_tree_capacity(&h->layout, tree))
			return LLFREE_ECORRUPT;
		if (free < 0 || (!any_state && (t & LLFREE_TREE_RESERVED)))
			return 1;
		if (llfree_cas(&h->trees[tree], &t,
			       (uint16_t)((t & ~LLFREE_TREE_FREE_MASK) | (uint16_t)free)))
			return 0;
	}
	return LLFREE_ERETRY;
}

/* A counter raise that failed (contention or a bad tree word) is owed to
 * the tree and paid by a later call: the guest never loses the frames. */
static void tree_raise(struct llfree_host *h, uint64_t tree, uint32_t frames)
{
	if (!h->owed[tree] && tree_add(h, tree, (int32_t)frames, true) == 0)
		return;
	h->owed_trees += !h->owed[tree];
	h->owed[tree] += frames;
}

uint64_t llfree_host_settle(struct llfree_host *h)
{
	uint64_t owed = 0;

	for (uint64_t tree = 0; h->owed_trees && tree < h->layout.trees; tree++) {
		if (!h->owed[tree])
			continue;
		if (tree_add(h, tree, (int32_t)h->owed[tree], true) == 0) {
			h->owed[tree] = 0;
			h->owed_trees--;
		} else {
			owed += h->owed[tree];
		}
	}
	return owed;
}

/* Children reclaimed in one tree. */
struct batch {
	unsigned n;
	uint64_t child[LLFREE_TREE_CHILDREN];
	bool already[LLFREE_TREE_CHILDREN];
};

/* Reclaims up to want children of one unreserved tree into b. */
static int reclaim_tree(struct llfree_host *h, uint64_t tree, bool hard, unsigned want,
			struct batch *b)
{
	uint64_t first = tree * LLFREE_TREE_CHILDREN;
	uint16_t t = llfree_load(&h->trees[tree]);
	unsigned found = 0, take;
	int err = 0;

	b->n = 0;
	if (!tree_valid(h, tree, t))
		return LLFREE_ECORRUPT;
	if (t & LLFREE_TREE_RESERVED)
		return 0;
	for (uint64_t c = first; c < first + LLFREE_TREE_CHILDREN; c++) {
		uint16_t word = llfree_pair_get(llfree_load(&h->pairs[llfree_pair_index(c)]), c & 1);

		if (!child_valid(h, c, word))
			return LLFREE_ECORRUPT;
		found += reclaimable(word, hard);
	}
	take = found < want ? found : want;
	if (hard) {
		uint32_t room = llfree_tree_free(t) / LLFREE_CHILD_FRAMES;

		take = take < room ? take : room;
		if (!take)
			return 0;
		err = tree_add(h, tree, -(int32_t)(take * LLFREE_CHILD_FRAMES), false);
		if (err)
			return err < 0 ? err : 0;
	}
	for (uint64_t c = first; c < first + LLFREE_TREE_CHILDREN && b->n < take && !err; c++) {
		uint32_t *pw = &h->pairs[llfree_pair_index(c)], pair = llfree_load(pw);
		unsigned i;

		for (i = 0; i < RETRIES; i++) {
			uint16_t word = llfree_pair_get(pair, c & 1);

			if (!child_valid(h, c, word)) {
				err = LLFREE_ECORRUPT;
				break;
			}
			if (!reclaimable(word, hard))
				break;
			if (llfree_cas(pw, &pair,
				       llfree_pair_set(pair, c & 1,
						       hard ? HARD_CHILD :
							      word | LLFREE_CHILD_RECLAIMED))) {
				b->child[b->n] = c;
				b->already[b->n++] = word & LLFREE_CHILD_RECLAIMED;
				if (hard)
					hold(h, c, true);
				break;
			}
		}
		if (i == RETRIES)
			err = LLFREE_ERETRY;
	}
	if (hard && b->n) /* the guest's free counter subtracts these */
		llfree_add(&h->header->hard, b->n);
	if (hard && b->n < take)
		tree_raise(h, tree, (take - b->n) * LLFREE_CHILD_FRAMES);
	return err;
}

size_t llfree_host_state_size(uint64_t start_pfn, uint64_t frames)
{
	struct llfree_layout l;

	if (!llfree_layout_init(&l, start_pfn, frames))
		return 0;
	return ((l.trees * LLFREE_TREE_CHILDREN + 63) / 64 + (l.trees + 1) / 2) * sizeof(uint64_t);
}

int llfree_host_init(struct llfree_host *h, void *meta, size_t meta_size, uint64_t start_pfn,
		     uint64_t frames, uint64_t *state)
{
	char *m = meta;

	if (!meta || !state || (uintptr_t)meta % 64 ||
	    !llfree_layout_init(&h->layout, start_pfn, frames) || meta_size != h->layout.size)
		return LLFREE_EINVAL;
	h->header = (struct llfree_header *)m;
	if (llfree_load(&h->header->magic) != LLFREE_MAGIC ||
	    llfree_load(&h->header->version) != LLFREE_VERSION ||
	    llfree_load(&h->header->start_pfn) != start_pfn ||
	    llfree_load(&h->header->frames) != frames)
		return LLFREE_EINVAL;
	h->pairs = (uint32_t *)(m + h->layout.child_off);
	h->trees = (uint16_t *)(m + h->layout.tree_off);
	h->hard = state;
	h->owed = (uint32_t *)(state + (children_total(h) + 63) / 64);
	h->cursor = 0;
	h->owed_trees = 0;
	h->invalid = 0;
	for (uint64_t i = 0; i < (children_total(h) + 63) / 64 + (h->layout.trees + 1) / 2; i++)
		state[i] = 0;
	return 0;
}

uint64_t llfree_host_children(const struct llfree_host *h)
{
	return children_total(h);
}

/* A tree that failed: a bad word is skipped and counted, contention is
 * remembered; either way the scan goes on. */
static void tree_failed(struct llfree_host *h, int err, int *contended)
{
	if (err == LLFREE_ECORRUPT)
		h->invalid++;
	else if (err)
		*contended = err;
}

int llfree_host_reclaim(struct llfree_host *h, bool hard, uint64_t *child, bool *already)
{
	int contended = 0;
	struct batch b;

	llfree_host_settle(h);
	for (uint64_t i = 0; i < h->layout.trees; i++) {
		int err = reclaim_tree(h, h->cursor, hard, 1, &b);

		if (b.n) {
			*child = b.child[0];
			*already = b.already[0];
			return 0;
		}
		tree_failed(h, err, &contended);
		h->cursor = (h->cursor + 1) % h->layout.trees;
	}
	return contended ? contended : LLFREE_ENOMEM;
}

int llfree_host_reclaim_bulk(struct llfree_host *h, bool hard, uint64_t want,
			     struct llfree_range *ranges, size_t max_ranges, size_t *nranges,
			     uint64_t *reclaimed)
{
	int contended = 0;

	*nranges = 0;
	*reclaimed = 0;
	llfree_host_settle(h);
	want = want < LLFREE_HOST_BATCH ? want : LLFREE_HOST_BATCH;
	/* A tree adds at most LLFREE_TREE_CHILDREN / 2 ranges. */
	for (uint64_t i = 0; i < h->layout.trees && *reclaimed < want &&
			     max_ranges - *nranges >= LLFREE_TREE_CHILDREN / 2;
	     i++) {
		uint64_t left = want - *reclaimed;
		struct batch b;
		int err = reclaim_tree(h, h->cursor, hard,
				       left < LLFREE_TREE_CHILDREN ? (unsigned)left :
								     LLFREE_TREE_CHILDREN,
				       &b);

		for (unsigned j = 0; j < b.n; j++) {
			struct llfree_range *last = *nranges ? &ranges[*nranges - 1] : NULL;

			if (b.already[j])
				continue;
			if (last && last->child + last->count == b.child[j])
				last->count++;
			else
				ranges[(*nranges)++] = (struct llfree_range){ b.child[j], 1 };
		}
		*reclaimed += b.n;
		tree_failed(h, err, &contended);
		if (*reclaimed < want || err)
			h->cursor = (h->cursor + 1) % h->layout.trees;
	}
	return *reclaimed ? 0 : contended;
}

int llfree_host_return(struct llfree_host *h, uint64_t child)
{
	uint32_t *pw, pair;
	unsigned i;

	if (!llfree_host_holds(h, child))
		return LLFREE_EINVAL;
	pw = &h->pairs[llfree_pair_index(child)];
	pair = llfree_load(pw);
	for (i = 0; i < RETRIES; i++) {
		if (llfree_pair_get(pair, child & 1) != HARD_CHILD)
			return LLFREE_ECORRUPT;
		if (llfree_cas(pw, &pair,
			       llfree_pair_set(pair, child & 1,
					       LLFREE_CHILD_FRAMES | LLFREE_CHILD_RECLAIMED)))
			break;
	}
	if (i == RETRIES)
		return LLFREE_ERETRY;
	hold(h, child, false);
	llfree_add(&h->header->hard, (uint64_t)-1);
	llfree_host_settle(h);
	tree_raise(h, child / LLFREE_TREE_CHILDREN, LLFREE_CHILD_FRAMES);
	return 0;
}

int llfree_host_install(struct llfree_host *h, uint64_t child)
{
	uint32_t *pw, pair;

	if (child >= children_total(h) || llfree_host_holds(h, child))
		return LLFREE_EINVAL;
	pw = &h->pairs[llfree_pair_index(child)];
	pair = llfree_load(pw);
	for (unsigned i = 0; i < RETRIES; i++) {
		uint16_t c = llfree_pair_get(pair, child & 1);

		if (!child_valid(h, child, c))
			return LLFREE_ECORRUPT;
		if (!(c & LLFREE_CHILD_RECLAIMED))
			return 0;
		if (llfree_cas(pw, &pair,
			       llfree_pair_set(pair, child & 1,
					       (uint16_t)(c & ~LLFREE_CHILD_RECLAIMED))))
			return 1;
	}
	return LLFREE_ERETRY;
}

int llfree_host_is_reclaimed(const struct llfree_host *h, uint64_t child)
{
	uint16_t c;

	if (child >= children_total(h))
		return LLFREE_EINVAL;
	c = llfree_pair_get(llfree_load(&h->pairs[llfree_pair_index(child)]), child & 1);
	if (!child_valid(h, child, c))
		return LLFREE_ECORRUPT;
	return !!(c & LLFREE_CHILD_RECLAIMED);
}

bool llfree_host_holds(const struct llfree_host *h, uint64_t child)
{
	return child < children_total(h) && (h->hard[child / 64] >> (child % 64) & 1);
}
