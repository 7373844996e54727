/* virtio-hyperalloc, host side without QEMU.  See hyperalloc-validate.h. */
#include <stdlib.h>
#include <string.h>

#include "hyperalloc-validate.h"

#define BITMAP_WORDS(n) (((n) + 63) / 64)

static bool test_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void assign_bit(uint64_t *map, uint64_t i, bool on)
{
	if (on)
		map[i / 64] |= 1ull << (i % 64);
	else
		map[i / 64] &= ~(1ull << (i % 64));
}

static void guest_error(struct hyperalloc *ha, const char *what, uint64_t a, uint64_t b)
{
	ha->guest_errors++;
	ha->ops.guest_error(ha->ops.opaque, what, a, b);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

uint64_t ha_child_gpa(const struct ha_zone *z, uint64_t child)
{
	return z->base_gpa + child * HA_CHILD_BYTES;
}

bool ha_child_never(const struct ha_zone *z, uint64_t child)
{
	return test_bit(z->never, child);
}

enum ha_child_state ha_child_state(const struct ha_zone *z, uint64_t child)
{
	if (test_bit(z->held, child))
		return HA_HARD;
	return test_bit(z->discarded, child) ? HA_SOFT : HA_INSTALLED;
}

/* The zone counters, and the device's, from a census of the bitmaps. */
static void recount(struct hyperalloc *ha)
{
	ha->hard = ha->soft = 0;
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		struct ha_zone *z = ha->zones[id];

		if (!z)
			continue;
		z->hard = z->soft = 0;
		for (uint64_t w = 0; w < BITMAP_WORDS(z->children); w++) {
			z->hard += (uint64_t)__builtin_popcountll(z->held[w]);
			z->soft += (uint64_t)__builtin_popcountll(z->discarded[w] & ~z->held[w]);
		}
		ha->hard += z->hard;
		ha->soft += z->soft;
	}
}

static void zone_free(struct ha_zone *z)
{
	if (!z)
		return;
	free(z->host_state);
	free(z->never);
	free(z->discarded);
	free(z->held);
	free(z);
}

void ha_init(struct hyperalloc *ha, const struct ha_ops *ops, uint64_t ram_top)
{
	memset(ha, 0, sizeof(*ha));
	ha->ops = *ops;
	ha->ram_top = ram_top;
}

void ha_reset(struct hyperalloc *ha)
{
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		struct ha_zone *z = ha->zones[id];

		if (!z)
			continue;
		/* After a driver reset the guest runs on with this metadata, so
		 * what the host held becomes free again (still reclaimed); after
		 * a system reset the next boot rewrites it anyway. */
		ha_return_zone(ha, z, z->children);
		zone_free(z);
		ha->zones[id] = NULL;
	}
	ha->nzones = 0;
	ha->finished = false;
	recount(ha);
}

/* Marks z's children that lie over [gpa, gpa + len) as never discardable. */
static void never_over(struct ha_zone *z, uint64_t gpa, uint64_t len)
{
	uint64_t first, last;

	if (gpa + len <= z->base_gpa)
		return;
	first = gpa > z->base_gpa ? (gpa - z->base_gpa) / HA_CHILD_BYTES : 0;
	last = (gpa + len - 1 - z->base_gpa) / HA_CHILD_BYTES;
	for (uint64_t c = first; c <= last && c < z->children; c++)
		assign_bit(z->never, c, true);
}

/* A child is ours to discard only if its 2 MiB is whole plain RAM inside its
 * zone and holds no zone's metadata. */
static void find_never(struct hyperalloc *ha, struct ha_zone *z)
{
	uint64_t base_pfn = z->base_gpa >> LLFREE_FRAME_SHIFT;

	for (uint64_t c = 0; c < z->children; c++) {
		uint64_t pfn = base_pfn + c * LLFREE_CHILD_FRAMES;
		bool inside = pfn >= z->start_pfn &&
			      pfn + LLFREE_CHILD_FRAMES <= z->start_pfn + z->pages;

		if (!inside || !ha->ops.translate(ha->ops.opaque, ha_child_gpa(z, c), HA_CHILD_BYTES))
			assign_bit(z->never, c, true);
	}
	never_over(z, z->meta_gpa, z->meta_len);
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		struct ha_zone *other = ha->zones[id];

		if (!other)
			continue;
		never_over(z, other->meta_gpa, other->meta_len);
		never_over(other, z->meta_gpa, z->meta_len);
	}
}

static int refuse(struct hyperalloc *ha, const char *what, uint64_t a, uint64_t b)
{
	guest_error(ha, what, a, b);
	return VIRTIO_HYPERALLOC_S_INVALID;
}

/* Checks a zone descriptor against the device's rules and the other zones. */
static int check_zone(struct hyperalloc *ha, const struct virtio_hyperalloc_zone_desc *d)
{
	uint64_t ram_pages = ha->ram_top >> LLFREE_FRAME_SHIFT;
	struct llfree_layout l;

	if (d->reserved[0] || d->reserved[1])
		return refuse(ha, "zone descriptor reserved fields not zero", d->reserved[0],
			      d->reserved[1]);
	if (d->zone_id >= VIRTIO_HYPERALLOC_MAX_ZONES)
		return refuse(ha, "zone id out of range", d->zone_id, VIRTIO_HYPERALLOC_MAX_ZONES);
	if (ha->zones[d->zone_id])
		return refuse(ha, "duplicate zone id", d->zone_id, 0);
	if (!d->pages || d->pages > ram_pages || d->start_pfn > ram_pages - d->pages)
		return refuse(ha, "zone pages outside guest RAM", d->start_pfn, d->pages);
	if (!llfree_layout_init(&l, d->start_pfn, d->pages))
		return refuse(ha, "zone size has no layout", d->start_pfn, d->pages);
	if (d->meta_len != l.size)
		return refuse(ha, "metadata length does not match the zone", d->meta_len, l.size);
	if (d->meta_gpa % 64 || d->meta_gpa > UINT64_MAX - d->meta_len)
		return refuse(ha, "metadata address misaligned or wrapping", d->meta_gpa,
			      d->meta_len);
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		const struct ha_zone *z = ha->zones[id];

		if (!z)
			continue;
		if (overlaps(d->start_pfn, d->pages, z->start_pfn, z->pages))
			return refuse(ha, "zone overlaps another zone", d->zone_id, id);
		if (overlaps(d->meta_gpa, d->meta_len, z->meta_gpa, z->meta_len))
			return refuse(ha, "metadata overlaps another zone's", d->zone_id, id);
	}
	if (!ha->ops.translate(ha->ops.opaque, d->meta_gpa, d->meta_len))
		return refuse(ha, "metadata is not plain guest RAM", d->meta_gpa, d->meta_len);
	return VIRTIO_HYPERALLOC_S_OK;
}

int ha_register(struct hyperalloc *ha, const void *buf, size_t len, struct ha_zone **zone)
{
	struct virtio_hyperalloc_zone_desc d;
	struct ha_zone *z;
	uint64_t words;
	size_t state;
	void *meta;
	int ret;

	*zone = NULL;
	if (len != sizeof(d)) {
		guest_error(ha, "zone descriptor of the wrong size", len, sizeof(d));
		return HA_BROKEN;
	}
	memcpy(&d, buf, sizeof(d));
	if (d.magic != VIRTIO_HYPERALLOC_DESC_MAGIC || d.version != VIRTIO_HYPERALLOC_DESC_VERSION)
		return refuse(ha, "zone descriptor with bad magic or version", d.magic, d.version);
	if (ha->finished)
		return refuse(ha, "zone descriptor after FINISH", d.type, d.zone_id);
	if (d.type == VIRTIO_HYPERALLOC_DESC_FINISH) {
		ha->finished = true;
		return VIRTIO_HYPERALLOC_S_OK;
	}
	if (d.type != VIRTIO_HYPERALLOC_DESC_ZONE)
		return refuse(ha, "zone descriptor of unknown type", d.type, 0);
	ret = check_zone(ha, &d);
	if (ret != VIRTIO_HYPERALLOC_S_OK)
		return ret;

	z = calloc(1, sizeof(*z));
	if (!z)
		return refuse(ha, "no host memory for the zone", d.zone_id, 0);
	z->id = d.zone_id;
	z->node = d.node;
	z->start_pfn = d.start_pfn;
	z->pages = d.pages;
	z->meta_gpa = d.meta_gpa;
	z->meta_len = d.meta_len;
	z->base_gpa = (d.start_pfn - d.start_pfn % LLFREE_BASE_FRAMES) << LLFREE_FRAME_SHIFT;
	state = llfree_host_state_size(d.start_pfn, d.pages);
	z->host_state = calloc(1, state);
	meta = ha->ops.translate(ha->ops.opaque, d.meta_gpa, d.meta_len);
	if (!z->host_state || !meta) {
		zone_free(z);
		return refuse(ha, "no host memory for the zone", d.zone_id, 0);
	}
	if (llfree_host_init(&z->host, meta, d.meta_len, d.start_pfn, d.pages, z->host_state)) {
		zone_free(z);
		return refuse(ha, "metadata header does not match the zone", d.start_pfn, d.pages);
	}
	z->children = llfree_host_children(&z->host);
	words = BITMAP_WORDS(z->children);
	z->never = calloc(words, sizeof(uint64_t));
	z->discarded = calloc(words, sizeof(uint64_t));
	z->held = calloc(words, sizeof(uint64_t));
	if (!z->never || !z->discarded || !z->held) {
		zone_free(z);
		return refuse(ha, "no host memory for the zone", d.zone_id, 0);
	}
	find_never(ha, z);
	ha->zones[z->id] = z;
	ha->nzones++;
	*zone = z;
	return VIRTIO_HYPERALLOC_S_OK;
}

static void discard(struct hyperalloc *ha, struct ha_zone *z, uint64_t first, uint64_t count,
		    bool soft)
{
	uint64_t gpa = ha_child_gpa(z, first), len = count * HA_CHILD_BYTES;

	/* Adjacent children in one call, unless the range crosses RAM blocks. */
	if (count > 1 && !ha->ops.translate(ha->ops.opaque, gpa, len)) {
		for (uint64_t c = first; c < first + count; c++)
			discard(ha, z, c, 1, soft);
		return;
	}
	ha->discard_calls++;
	if (ha->ops.discard(ha->ops.opaque, gpa, len, soft)) {
		ha->discard_errors++;
		return;
	}
	for (uint64_t c = first; c < first + count; c++)
		assign_bit(z->discarded, c, true);
}

/* Discards the children of [first, first + count) that are ours to discard,
 * each run of adjacent ones with one call. */
static void discard_children(struct hyperalloc *ha, struct ha_zone *z, uint64_t first,
			     uint64_t count, bool soft)
{
	uint64_t run = first;

	for (uint64_t c = first; c <= first + count; c++) {
		if (c < first + count && !ha_child_never(z, c))
			continue;
		if (c > run)
			discard(ha, z, run, c - run, soft);
		run = c + 1;
	}
}

/* Takes in the children the core newly holds hard: discards those not yet
 * discarded (the guest may have marked them reclaimed itself), counts those
 * that are not ours to discard, and forgets those it let go. */
static void sync_held(struct hyperalloc *ha, struct ha_zone *z)
{
	for (uint64_t w = 0; w < BITMAP_WORDS(z->children); w++) {
		uint64_t now = z->host.hard[w], fresh = now & ~z->held[w];

		z->held[w] = now;
		while (fresh) {
			uint64_t c = w * 64 + (uint64_t)__builtin_ctzll(fresh);

			fresh &= fresh - 1;
			if (ha_child_never(z, c)) {
				ha->never_held++;
				guest_error(ha, "free child is not RAM the host may discard",
					    z->id, c);
			} else if (!test_bit(z->discarded, c)) {
				discard(ha, z, c, 1, false);
			}
		}
	}
}

static uint64_t reclaim(struct hyperalloc *ha, struct ha_zone *z, uint64_t want, bool hard)
{
	uint64_t got = 0;

	if (!ha->finished)
		return 0;
	while (got < want) {
		struct llfree_range ranges[LLFREE_HOST_BATCH];
		size_t n;
		uint64_t r;

		llfree_host_reclaim_bulk(&z->host, hard, want - got, ranges,
					 LLFREE_HOST_BATCH, &n, &r);
		for (size_t i = 0; i < n; i++)
			discard_children(ha, z, ranges[i].child, ranges[i].count, !hard);
		if (hard)
			sync_held(ha, z);
		if (!r)
			break;
		got += r;
	}
	if (z->host.invalid) {
		guest_error(ha, "trees with invalid metadata words skipped", z->id, z->host.invalid);
		z->host.invalid = 0;
	}
	recount(ha);
	return got;
}

uint64_t ha_shrink_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want)
{
	return reclaim(ha, z, want, true);
}

uint64_t ha_soft_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want)
{
	return reclaim(ha, z, want, false);
}

uint64_t ha_return_zone(struct hyperalloc *ha, struct ha_zone *z, uint64_t want)
{
	uint64_t got = 0;

	for (uint64_t c = 0; c < z->children && got < want; c++) {
		if (!test_bit(z->held, c))
			continue;
		if (llfree_host_return(&z->host, c) == 0) {
			got++;
		} else {
			guest_error(ha, "hard child changed by the guest", z->id, c);
		}
	}
	sync_held(ha, z);
	recount(ha);
	return got;
}

uint32_t ha_install(struct hyperalloc *ha, const void *buf, size_t len)
{
	struct virtio_hyperalloc_install_req req;
	uint32_t status = VIRTIO_HYPERALLOC_S_NOT_RECLAIMED;
	struct ha_zone *z;

	if (len != sizeof(req))
		return (uint32_t)refuse(ha, "install request of the wrong size", len, sizeof(req));
	memcpy(&req, buf, sizeof(req));
	if (!ha->finished)
		return (uint32_t)refuse(ha, "install before FINISH", req.zone_id, req.child);
	z = req.zone_id < VIRTIO_HYPERALLOC_MAX_ZONES ? ha->zones[req.zone_id] : NULL;
	if (!z)
		return (uint32_t)refuse(ha, "install in an unknown zone", req.zone_id, req.child);
	if ((req.count != 1 && req.count != 2) || req.child >= z->children ||
	    (req.count == 2 && (req.child % 2 || req.child + 1 >= z->children)))
		return (uint32_t)refuse(ha, "install of children out of range", req.child,
					req.count);
	for (uint64_t c = req.child; c < req.child + req.count; c++) {
		if (test_bit(z->held, c))
			return (uint32_t)refuse(ha, "install of a child the host holds", z->id, c);
	}
	for (uint64_t c = req.child; c < req.child + req.count; c++) {
		int r = llfree_host_is_reclaimed(&z->host, c);

		if (r < 0)
			return (uint32_t)refuse(ha, "install of a child with an invalid word", z->id,
						c);
		if (!r)
			continue;
		if (test_bit(z->discarded, c) && !ha_child_never(z, c) &&
		    ha->ops.populate(ha->ops.opaque, ha_child_gpa(z, c), HA_CHILD_BYTES)) {
			recount(ha);
			return VIRTIO_HYPERALLOC_S_FAILED;
		}
		if (llfree_host_install(&z->host, c) < 0) {
			recount(ha);
			return (uint32_t)refuse(ha, "install of a child with an invalid word", z->id,
						c);
		}
		assign_bit(z->discarded, c, false);
		ha->installed++;
		status = VIRTIO_HYPERALLOC_S_OK;
	}
	recount(ha);
	return status;
}
