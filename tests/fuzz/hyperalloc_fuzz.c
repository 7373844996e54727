/* libFuzzer target for the host side of virtio-hyperalloc: the same
 * hyperalloc-validate.c that QEMU compiles, on the allocator core.
 *
 * The input is a guest RAM layout (1-3 extents with holes in a 128 MiB
 * window) and a script of operations: zone registrations (plausible ones whose
 * metadata a guest llfree_init() wrote, or raw descriptors), FINISH, shrink,
 * return, soft reclaim, raw install requests, hostile writes into metadata,
 * guest allocations and frees (which install what they got, as the driver
 * would) and resets.  Discard and populate are the real madvise() on the fake
 * RAM, after checks.
 *
 * Invariants, each a trap when broken:
 * - a discard lies inside one RAM extent, on whole children of a registered
 *   zone that are inside it, and over no zone's metadata; a populate inside RAM;
 * - per child only legal host state changes per operation (shrink:
 *   installed/soft -> hard; return: hard -> soft, or installed for a child
 *   that was never discarded; soft reclaim: installed -> soft; install:
 *   soft -> installed; anything else: none);
 * - a hard child was discarded, or is counted as one we could not discard;
 * - every counter equals a census of the children's states;
 * - a guest that only allocates and frees gets OK for every install.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hyperalloc-validate.h"

#define MiB (1ull << 20)
#define WINDOW (128 * MiB)
#define MAX_EXTENTS 3
#define MAX_CHILDREN (WINDOW / HA_CHILD_BYTES + 16) /* plus the 4 MiB base and tree rounding */
#define MAX_BLOCKS 64
#define MAX_DIRTY 64
#define FRAMES (WINDOW >> LLFREE_FRAME_SHIFT)

enum op { REGISTER, REGISTER_RAW, FINISH, SHRINK, RETURN, SOFT, INSTALL, CORRUPT, GET, PUT,
	  RESET, OPS };

struct guest_zone {
	bool live, corrupt;
	bool rewritten; /* written again while the host held the zone */
	struct llfree ll;
	struct llfree_local local;
	uint64_t meta_gpa, meta_len;
};

struct block {
	unsigned zone, order;
	uint64_t pfn;
};

static struct {
	char *ram;
	struct { uint64_t start, end; } ext[MAX_EXTENTS];
	unsigned next;
	struct hyperalloc ha;
	struct guest_zone guest[VIRTIO_HYPERALLOC_MAX_ZONES];
	struct block blocks[MAX_BLOCKS];
	unsigned nblocks;
	struct { uint64_t start, end; } dirty[MAX_DIRTY]; /* metadata written */
	unsigned ndirty;
	uint8_t before[VIRTIO_HYPERALLOC_MAX_ZONES][MAX_CHILDREN];
} w;

static void fuzz_check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "hyperalloc fuzz: invariant broken: %s\n", what);
		__builtin_trap();
	}
}

static int extent_of(uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < w.next; i++) {
		if (gpa >= w.ext[i].start && len <= w.ext[i].end - gpa && gpa < w.ext[i].end)
			return (int)i;
	}
	return -1;
}

static void *translate(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque;
	return len && extent_of(gpa, len) >= 0 ? w.ram + gpa : NULL;
}

static void guest_corrupt(uint64_t gpa, uint64_t len)
{
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		struct guest_zone *g = &w.guest[id];

		if (g->live && gpa < g->meta_gpa + g->meta_len && g->meta_gpa < gpa + len)
			g->corrupt = true;
	}
}

static int fake_discard(void *opaque, uint64_t gpa, uint64_t len, bool soft)
{
	(void)opaque;
	(void)soft;
	fuzz_check(len && extent_of(gpa, len) >= 0, "discard inside one RAM extent");
	fuzz_check(gpa % HA_CHILD_BYTES == 0 && len % HA_CHILD_BYTES == 0,
		   "discard of whole children");
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		const struct ha_zone *z = w.ha.zones[id];

		if (!z)
			continue;
		fuzz_check(!(gpa < z->meta_gpa + z->meta_len && z->meta_gpa < gpa + len),
			   "discard over metadata");
	}
	for (uint64_t a = gpa; a < gpa + len; a += HA_CHILD_BYTES) {
		bool owned = false;

		for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES && !owned; id++) {
			const struct ha_zone *z = w.ha.zones[id];

			owned = z && a >= z->base_gpa &&
				(a - z->base_gpa) / HA_CHILD_BYTES < z->children &&
				!ha_child_never(z, (a - z->base_gpa) / HA_CHILD_BYTES);
		}
		fuzz_check(owned, "discard of a child that is not a zone's to give back");
	}
	fuzz_check(!madvise(w.ram + gpa, len, MADV_DONTNEED), "madvise");
	/* Metadata no registered zone owns, in memory a registered zone had free:
	 * a guest that frees what it uses loses it, as it would on a real host. */
	guest_corrupt(gpa, len);
	return 0;
}

static int fake_populate(void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque;
	fuzz_check(extent_of(gpa, len) >= 0, "populate inside RAM");
	return 0;
}

static void ignore_error(void *opaque, const char *what, uint64_t a, uint64_t b)
{
	(void)opaque;
	(void)what;
	(void)a;
	(void)b;
}

static const struct ha_ops ops = {
	.translate = translate,
	.discard = fake_discard,
	.populate = fake_populate,
	.guest_error = ignore_error,
};

/* Input bytes, zero once used up. */
struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		uint64_t b = in->left ? (in->left--, *in->p++) : 0;

		v |= b << (8 * i);
	}
	return v;
}

static void snapshot(void)
{
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		const struct ha_zone *z = w.ha.zones[id];

		for (uint64_t c = 0; z && c < z->children; c++)
			w.before[id][c] = (uint8_t)ha_child_state(z, c);
	}
}

static bool legal(enum op op, const struct ha_zone *z, uint64_t c, unsigned from, unsigned to)
{
	if (from == to)
		return true;
	switch (op) {
	case SHRINK:
		return to == HA_HARD;
	case RETURN:
		return from == HA_HARD && (to == HA_SOFT || ha_child_never(z, c));
	case SOFT:
		return from == HA_INSTALLED && to == HA_SOFT;
	case INSTALL:
	case GET: /* installs what it got */
		return from == HA_SOFT && to == HA_INSTALLED;
	default:
		return false;
	}
}

static void check_world(enum op op, const bool *existed)
{
	uint64_t hard = 0, soft = 0;

	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		const struct ha_zone *z = w.ha.zones[id];
		uint64_t zh = 0, zs = 0;

		if (!z)
			continue;
		fuzz_check(z->children <= MAX_CHILDREN, "zone inside the window");
		for (uint64_t c = 0; c < z->children; c++) {
			unsigned s = ha_child_state(z, c);

			zh += s == HA_HARD;
			zs += s == HA_SOFT;
			fuzz_check(llfree_host_holds(&z->host, c) == (s == HA_HARD),
				   "hard state follows the core");
			if (s != HA_INSTALLED)
				fuzz_check(!ha_child_never(z, c) || s == HA_HARD,
					   "a child we may not discard is never soft");
			if (existed[id])
				fuzz_check(legal(op, z, c, w.before[id][c], s), "legal state change");
		}
		fuzz_check(zh == z->hard && zs == z->soft, "zone counters equal the census");
		hard += zh;
		soft += zs;
	}
	fuzz_check(hard == w.ha.hard && soft == w.ha.soft, "device counters equal the census");
}

static void set_layout(struct input *in)
{
	unsigned n = 1 + (unsigned)take(in, 1) % MAX_EXTENTS;
	uint64_t top = 0;

	w.next = 0;
	for (unsigned i = 0; i < n; i++) {
		/* 512 KiB units, so children straddle holes. */
		uint64_t start = take(in, 1) * (512 << 10), len = (1 + take(in, 1)) * (512 << 10);
		bool clash = false;

		if (start + len > WINDOW)
			len = WINDOW - start;
		for (unsigned j = 0; j < w.next; j++)
			clash |= start < w.ext[j].end + (512 << 10) && w.ext[j].start < start + len;
		if (clash || !len)
			continue;
		w.ext[w.next].start = start;
		w.ext[w.next++].end = start + len;
		top = top > start + len ? top : start + len;
	}
	ha_init(&w.ha, &ops, top);
}

/* A zone as a guest would describe it, its metadata written by llfree_init()
 * where it lies in RAM, with some fields spoilt on request. */
static void op_register(struct input *in)
{
	unsigned id = (unsigned)take(in, 1) % (VIRTIO_HYPERALLOC_MAX_ZONES + 2);
	uint64_t start = take(in, 2) * 16 % FRAMES, pages = 1 + take(in, 2) % FRAMES;
	uint64_t meta_gpa = take(in, 2) * 2048;
	unsigned spoil = (unsigned)take(in, 1);
	struct virtio_hyperalloc_zone_desc d = {
		.magic = VIRTIO_HYPERALLOC_DESC_MAGIC,
		.version = VIRTIO_HYPERALLOC_DESC_VERSION,
		.type = VIRTIO_HYPERALLOC_DESC_ZONE,
		.zone_id = id,
		.start_pfn = start,
		.pages = pages,
		.meta_gpa = meta_gpa + (spoil & 1 ? 8 : 0),
		.meta_len = llfree_metadata_size(start, pages) + (spoil & 2 ? 64 : 0),
	};
	struct ha_zone *z;
	size_t size = llfree_metadata_size(start, pages);

	if (spoil & 4)
		d.reserved[1] = 1;
	if (spoil & 64) { /* beyond any RAM; the guest does not set it up */
		d.pages += (uint64_t)1 << 30;
		d.meta_len = llfree_metadata_size(start, d.pages);
		spoil |= 8;
	}
	if (id < VIRTIO_HYPERALLOC_MAX_ZONES && size && translate(NULL, meta_gpa, size) &&
	    !(spoil & 8)) {
		struct guest_zone *g = &w.guest[id];

		guest_corrupt(meta_gpa, size);
		if (w.ndirty < MAX_DIRTY)
			w.dirty[w.ndirty] = (typeof(w.dirty[0])){ meta_gpa, meta_gpa + size };
		w.ndirty++;
		g->live = !llfree_init(&g->ll, 1, &g->local, start, pages,
				       spoil & 16 ? LLFREE_INIT_ALLOC : LLFREE_INIT_FREE,
				       w.ram + meta_gpa);
		g->corrupt = false;
		g->rewritten = w.ha.zones[id];
		g->meta_gpa = meta_gpa;
		g->meta_len = size;
		if (spoil & 32)
			((struct llfree_header *)(w.ram + meta_gpa))->magic ^= 1;
		for (unsigned i = 0; i < w.nblocks; i++) {
			if (w.blocks[i].zone == id)
				w.blocks[i--] = w.blocks[--w.nblocks];
		}
	}
	ha_register(&w.ha, &d, sizeof(d), &z);
	fuzz_check(!z || (z->id == id && w.ha.zones[id] == z), "registered zone by its id");
}

static struct ha_zone *zone_arg(struct input *in)
{
	return w.ha.zones[take(in, 1) % VIRTIO_HYPERALLOC_MAX_ZONES];
}

static void install(unsigned id, uint64_t child, unsigned count, bool honest)
{
	struct virtio_hyperalloc_install_req req = { id, count, child };
	uint32_t status = ha_install(&w.ha, &req, sizeof(req));

	if (honest)
		fuzz_check(status == VIRTIO_HYPERALLOC_S_OK, "install of what the guest got");
}

/* After every operation: a guest zone whose metadata a host registration covers
 * that is not the one of this very instance (another id or address, or metadata
 * the guest wrote again under it) gets host writes it cannot make sense of, now
 * or until that registration goes, and stays spoilt after (a reset included).
 * That is the guest's own fault and the host's invariants still hold, but its
 * core is no longer run on that metadata. */
static void spoil_foreign(void)
{
	for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++) {
		struct guest_zone *g = &w.guest[id];

		for (unsigned k = 0; g->live && k < VIRTIO_HYPERALLOC_MAX_ZONES; k++) {
			const struct ha_zone *z = w.ha.zones[k];

			if (z && z->meta_gpa < g->meta_gpa + g->meta_len &&
			    g->meta_gpa < z->meta_gpa + z->meta_len &&
			    (k != id || z->meta_gpa != g->meta_gpa || g->rewritten))
				g->corrupt = true;
		}
	}
}

static bool guest_usable(unsigned id)
{
	return w.guest[id].live && !w.guest[id].corrupt;
}

static void op_get(struct input *in)
{
	unsigned id = (unsigned)take(in, 1) % VIRTIO_HYPERALLOC_MAX_ZONES;
	unsigned order = (unsigned)take(in, 1) % 3, orders[] = { 0, 9, 10 };
	struct guest_zone *g = &w.guest[id];
	struct llfree_alloc a;

	if (!guest_usable(id) || w.nblocks == MAX_BLOCKS)
		return;
	order = orders[order];
	if (llfree_get(&g->ll, 0, order, 0, &a))
		return;
	w.blocks[w.nblocks++] = (struct block){ id, order, a.pfn };
	for (unsigned i = 0; i < 2; i++) {
		/* Honest when the host took this zone from the metadata the guest
		 * uses and the guest never spoilt it. */
		const struct ha_zone *z = w.ha.zones[id];
		bool honest = z && w.ha.finished && z->meta_gpa == g->meta_gpa && !g->rewritten;

		if (a.install >> i & 1)
			install(id, llfree_child_of(&g->ll, a.pfn) + i, 1, honest);
	}
}

static void op_put(struct input *in)
{
	unsigned i = (unsigned)take(in, 1);
	struct block b;

	if (!w.nblocks)
		return;
	i %= w.nblocks;
	b = w.blocks[i];
	w.blocks[i] = w.blocks[--w.nblocks];
	if (guest_usable(b.zone))
		fuzz_check(!llfree_put(&w.guest[b.zone].ll, 0, b.pfn, b.order), "guest put");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	bool existed[VIRTIO_HYPERALLOC_MAX_ZONES];

	if (!w.ram) {
		w.ram = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		fuzz_check(w.ram != MAP_FAILED, "mmap");
	}
	/* Nothing of the last input's RAM stays: the guests wrote only metadata. */
	if (w.ndirty > MAX_DIRTY)
		madvise(w.ram, WINDOW, MADV_DONTNEED);
	for (unsigned i = 0; i < w.ndirty && w.ndirty <= MAX_DIRTY; i++)
		memset(w.ram + w.dirty[i].start, 0, w.dirty[i].end - w.dirty[i].start);
	w.ndirty = 0;
	memset(w.guest, 0, sizeof(w.guest));
	w.nblocks = 0;
	set_layout(&in);
	while (in.left) {
		enum op op = (enum op)(take(&in, 1) % OPS);
		uint8_t raw[sizeof(struct virtio_hyperalloc_zone_desc) + 8];
		struct virtio_hyperalloc_install_req req;
		struct ha_zone *z;
		uint64_t off, len;

		for (unsigned id = 0; id < VIRTIO_HYPERALLOC_MAX_ZONES; id++)
			existed[id] = w.ha.zones[id];
		snapshot();
		switch (op) {
		case REGISTER:
			op_register(&in);
			break;
		case REGISTER_RAW:
			len = take(&in, 1) % sizeof(raw);
			for (size_t i = 0; i < sizeof(raw); i++)
				raw[i] = (uint8_t)take(&in, 1);
			ha_register(&w.ha, raw, len, &z);
			break;
		case FINISH: {
			struct virtio_hyperalloc_zone_desc d = {
				.magic = VIRTIO_HYPERALLOC_DESC_MAGIC,
				.version = VIRTIO_HYPERALLOC_DESC_VERSION,
				.type = VIRTIO_HYPERALLOC_DESC_FINISH,
			};

			ha_register(&w.ha, &d, sizeof(d), &z);
			break;
		}
		case SHRINK:
		case RETURN:
		case SOFT:
			z = zone_arg(&in);
			len = take(&in, 1);
			if (z && op == SHRINK)
				fuzz_check(ha_shrink_zone(&w.ha, z, len) <= len, "shrink within want");
			else if (z && op == RETURN)
				fuzz_check(ha_return_zone(&w.ha, z, len) <= len, "return within want");
			else if (z)
				ha_soft_zone(&w.ha, z, len);
			break;
		case INSTALL:
			req.zone_id = (uint32_t)take(&in, 1);
			req.count = (uint32_t)take(&in, 1) % 4;
			req.child = take(&in, 2);
			ha_install(&w.ha, &req, take(&in, 1) & 1 ? sizeof(req) - 1 : sizeof(req));
			break;
		case CORRUPT: {
			struct guest_zone *g = &w.guest[take(&in, 1) % VIRTIO_HYPERALLOC_MAX_ZONES];
			uint64_t value = take(&in, 8);

			off = take(&in, 2);
			if (!g->live || g->meta_len < 8)
				break;
			off = off % (g->meta_len - 7);
			guest_corrupt(g->meta_gpa + off, 8);
			memcpy(w.ram + g->meta_gpa + off, &value, 8);
			break;
		}
		case GET:
			op_get(&in);
			break;
		case PUT:
			op_put(&in);
			break;
		case RESET:
			ha_reset(&w.ha);
			break;
		case OPS:
			break;
		}
		spoil_foreign();
		check_world(op, existed);
	}
	ha_reset(&w.ha);
	return 0;
}
