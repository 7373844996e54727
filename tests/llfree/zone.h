/* A test zone: metadata, per-core state and a host handle on the same memory. */
#ifndef LLFREE_TEST_ZONE_H
#define LLFREE_TEST_ZONE_H

#include "llfree.h"

#include <stdlib.h>
#include <string.h>

struct zone {
	struct llfree ll;
	struct llfree_host host;
	struct llfree_local *locals;
	uint64_t *host_state;
	void *meta;
	size_t meta_size;
	uint64_t start, frames;
};

static inline void zone_free(struct zone *z)
{
	free(z->locals);
	free(z->host_state);
	free(z->meta);
	memset(z, 0, sizeof(*z));
}

/* 0 or the first error of llfree_init / llfree_host_init. */
static inline int zone_init(struct zone *z, unsigned cores, uint64_t start, uint64_t frames,
			    enum llfree_init_mode mode)
{
	int err;

	memset(z, 0, sizeof(*z));
	z->start = start;
	z->frames = frames;
	z->meta_size = llfree_metadata_size(start, frames);
	if (!z->meta_size)
		return LLFREE_EINVAL;
	z->meta = aligned_alloc(64, z->meta_size);
	z->locals = aligned_alloc(64, cores * sizeof(*z->locals));
	z->host_state = calloc(1, llfree_host_state_size(start, frames));
	if (!z->meta || !z->locals || !z->host_state)
		abort();
	memset(z->meta, 0, z->meta_size);
	err = llfree_init(&z->ll, cores, z->locals, start, frames, mode, z->meta);
	if (!err)
		err = llfree_host_init(&z->host, z->meta, z->meta_size, start, frames,
				       z->host_state);
	return err;
}

/* Free frames recounted from the child words. */
static inline uint64_t zone_recount(const struct zone *z)
{
	uint64_t free = 0;

	for (uint64_t c = 0; c < llfree_host_children(&z->host); c++)
		free += llfree_child_free(llfree_pair_get(z->ll.pairs[llfree_pair_index(c)], c & 1));
	return free;
}

#endif
