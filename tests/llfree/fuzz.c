/* libFuzzer target: the input is a zone geometry followed by a sequence of
 * guest operations, host operations and hostile writes to metadata words
 * (arbitrary bits, or plausible child and tree words at the zone edges).
 *
 * The metadata and the host's private state each end at a PROT_NONE guard
 * page, so any access past them faults.  Until the first corruption every
 * invariant is checked after every operation (no frame handed out twice, held
 * children never handed out, installs reported, counters equal a recount,
 * validate passes).  After it, only the host runs on the hostile metadata:
 * it must return an error or a result inside the zone (every child it
 * reclaims lies wholly inside), never write a bitfield, and never crash or
 * hang (libFuzzer's -timeout). */
#include "zone.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FRAMES (5 * LLFREE_TREE_FRAMES)
#define MAX_CHILDREN (6 * LLFREE_TREE_CHILDREN)
#define CORES 2
#define MAX_BLOCKS 256

struct block {
	uint64_t pfn;
	unsigned order;
};

/* One input's world. */
static struct {
	struct llfree ll;
	struct llfree_host host;
	struct llfree_local locals[CORES];
	struct llfree_layout layout;
	uint64_t start, frames;
	bool corrupt;
	unsigned char owned[MAX_FRAMES];
	bool held[MAX_CHILDREN], discarded[MAX_CHILDREN];
	struct block blocks[MAX_BLOCKS];
	unsigned nblocks;
} w;

static void fuzz_check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "llfree fuzz: invariant broken: %s\n", what);
		__builtin_trap();
	}
}

/* A buffer of size bytes that ends at a guard page; unmap *map, *map_len. */
static void *guarded(size_t size, void **map, size_t *map_len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (size + page - 1) / page * page;
	char *m = mmap(NULL, body + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	fuzz_check(m != MAP_FAILED, "mmap");
	mprotect(m, page, PROT_NONE);
	mprotect(m + page + body, page, PROT_NONE);
	*map = m;
	*map_len = body + 2 * page;
	return m + page + body - size;
}

static uint64_t bitfield_sum(void)
{
	uint64_t sum = 0;
	const uint64_t *words = (const uint64_t *)w.ll.bitfields;

	for (size_t i = 0; i < (w.layout.child_off - w.layout.bitfield_off) / sizeof(uint64_t); i++)
		sum = sum * 31 + words[i];
	return sum;
}

static uint64_t recount(void)
{
	uint64_t free = 0;

	for (uint64_t c = 0; c < w.layout.trees * LLFREE_TREE_CHILDREN; c++)
		free += llfree_child_free(llfree_pair_get(w.ll.pairs[llfree_pair_index(c)], c & 1));
	return free;
}

static void guest_got(const struct llfree_alloc *a, unsigned order)
{
	uint64_t n = 1ull << order, first = llfree_child_of(&w.ll, a->pfn);

	fuzz_check(a->pfn % n == 0 && a->pfn >= w.start && a->pfn + n <= w.start + w.frames,
		   "frame in zone and aligned");
	for (uint64_t i = 0; i < n; i++) {
		fuzz_check(!w.owned[a->pfn - w.start + i], "frame handed out twice");
		w.owned[a->pfn - w.start + i] = 1;
	}
	for (uint64_t c = first; c < first + (order == LLFREE_MAX_ORDER ? 2 : 1); c++) {
		bool install = a->install >> (c - first) & 1;

		fuzz_check(!w.held[c], "held child handed out");
		fuzz_check(install || !w.discarded[c], "install reported for reclaimed memory");
		if (install) {
			fuzz_check(llfree_host_install(&w.host, c) == 1, "install");
			w.discarded[c] = false;
		}
	}
	if (w.nblocks < MAX_BLOCKS) {
		w.blocks[w.nblocks++] = (struct block){ a->pfn, order };
		return;
	}
	memset(&w.owned[a->pfn - w.start], 0, n); /* no room to track it */
	fuzz_check(!llfree_put(&w.ll, 0, a->pfn, order), "put of an untracked block");
}

static void guest_op(unsigned op, const uint8_t *arg)
{
	struct llfree_alloc a;
	unsigned core = arg[0] % CORES, order = arg[1] % (LLFREE_MAX_ORDER + 1);
	int err;

	switch (op) {
	case 0:
	case 1:
	case 2:
		err = llfree_get(&w.ll, core, order, arg[2] & 1, &a);
		fuzz_check(!err || err == LLFREE_ENOMEM, "get error");
		if (!err)
			guest_got(&a, order);
		break;
	case 3:
	case 4:
		if (w.nblocks) {
			unsigned i = arg[2] % w.nblocks;
			struct block b = w.blocks[i];

			w.blocks[i] = w.blocks[--w.nblocks];
			for (uint64_t f = 0; f < 1ull << b.order; f++)
				w.owned[b.pfn - w.start + f] = 0;
			fuzz_check(!llfree_put(&w.ll, core, b.pfn, b.order), "put");
			/* the same block again is a double free */
			fuzz_check(llfree_put(&w.ll, core, b.pfn, b.order) == LLFREE_EDOUBLE,
				   "double free detected");
		}
		break;
	case 5: {
		uint64_t pfn = w.start + (arg[2] | (uint64_t)arg[0] << 8) * 37 % w.frames;

		err = llfree_get_at(&w.ll, core, pfn, order, &a);
		fuzz_check(!err || err == LLFREE_ENOMEM || err == LLFREE_EINVAL, "get_at error");
		if (!err)
			guest_got(&a, order);
		break;
	}
	default:
		llfree_drain(&w.ll, core);
		break;
	}
}

/* A child the host may discard: all of its frames inside the zone. */
static bool inside(uint64_t child)
{
	return child < llfree_host_children(&w.host) &&
	       llfree_child_capacity(&w.layout, child) == LLFREE_CHILD_FRAMES;
}

static void host_op(unsigned op, const uint8_t *arg)
{
	uint64_t children = llfree_host_children(&w.host);
	uint64_t child = (arg[0] | (uint64_t)arg[1] << 8) % (children + 2), n;
	struct llfree_range ranges[12];
	size_t nr, max = arg[2] % 12;
	bool already;
	int err;

	switch (op) {
	case 0:
	case 1:
		err = llfree_host_reclaim(&w.host, op == 0, &child, &already);
		fuzz_check(err <= 0, "reclaim result");
		if (!err) {
			fuzz_check(inside(child), "reclaimed child inside the zone");
			w.held[child] |= op == 0;
			w.discarded[child] = true;
		}
		break;
	case 2:
		err = llfree_host_reclaim_bulk(&w.host, arg[0] & 1, arg[1] % 40, ranges, max, &nr, &n);
		fuzz_check(err <= 0 && nr <= max && n <= arg[1] % 40u, "bulk result");
		for (size_t i = 0; i < nr; i++) {
			fuzz_check(ranges[i].count, "empty range");
			for (uint64_t c = ranges[i].child; c < ranges[i].child + ranges[i].count; c++)
				fuzz_check(inside(c), "reclaimed range inside the zone");
		}
		for (uint64_t c = 0; c < children; c++) {
			if (llfree_host_holds(&w.host, c) && !w.held[c])
				w.held[c] = w.discarded[c] = true;
		}
		if (!(arg[0] & 1)) { /* soft: which ones is not reported; track all marks */
			for (uint64_t c = 0; c < children; c++)
				w.discarded[c] |= llfree_host_is_reclaimed(&w.host, c) == 1;
		}
		break;
	case 3:
		already = llfree_host_holds(&w.host, child);
		err = llfree_host_return(&w.host, child);
		fuzz_check(w.corrupt || (!err) == already, "return succeeds for held children");
		if (!err) {
			fuzz_check(!llfree_host_holds(&w.host, child), "returned child released");
			w.held[child] = false;
		}
		break;
	case 4:
		err = llfree_host_install(&w.host, child);
		if (err >= 0)
			w.discarded[child] = false;
		fuzz_check(err >= -5 && err <= 1, "install result");
		break;
	default:
		err = llfree_host_is_reclaimed(&w.host, child);
		fuzz_check(err >= -5 && err <= 1, "is_reclaimed result");
		break;
	}
	fuzz_check(w.corrupt || (err != LLFREE_ECORRUPT && err != LLFREE_ERETRY),
		   "host error on valid metadata");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* llfree_validate() explains failures on stdout; keep libFuzzer's output clean. */
	return freopen("/dev/null", "w", stdout) ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	void *meta_map, *state_map;
	size_t meta_len, state_len, meta_size;
	uint64_t *state;
	char *meta;

	if (size < 4)
		return 0;
	memset(&w, 0, sizeof(w));
	w.start = (data[0] | (uint64_t)data[1] << 8) % 4096;
	w.frames = 1 + (data[2] | (uint64_t)data[3] << 8) * 5 % (MAX_FRAMES - 1024);
	data += 4;
	size -= 4;
	fuzz_check(llfree_layout_init(&w.layout, w.start, w.frames) &&
			   w.layout.trees * LLFREE_TREE_CHILDREN <= MAX_CHILDREN,
		   "geometry");
	meta_size = w.layout.size;
	meta = guarded(meta_size, &meta_map, &meta_len);
	state = guarded(llfree_host_state_size(w.start, w.frames), &state_map, &state_len);
	fuzz_check(!llfree_init(&w.ll, CORES, w.locals, w.start, w.frames, LLFREE_INIT_FREE, meta) &&
			   !llfree_host_init(&w.host, meta, meta_size, w.start, w.frames, state),
		   "init");

	for (; size >= 4; data += 4, size -= 4) {
		unsigned op = data[0] % 16;
		uint64_t bits = bitfield_sum();

		if (op < 7) {
			if (w.corrupt)
				continue;
			guest_op(op, data + 1);
		} else if (op < 13) {
			host_op(op - 7, data + 1);
			fuzz_check(bitfield_sum() == bits, "host wrote a bitfield");
		} else if (op == 13) {
			/* A hostile guest writes 16 arbitrary bits anywhere in the metadata. */
			size_t at = (data[1] | (size_t)data[2] << 8) * 2 % meta_size;

			meta[at] = (char)data[3];
			meta[at + 1] = (char)(data[3] * 7 + data[1]);
			w.corrupt = true;
		} else {
			/* ... or a plausible child or tree word where it hurts most,
			 * e.g. a child that sticks out of the zone made to look free. */
			static const uint16_t words[] = {
				512, 511, 512 | LLFREE_CHILD_RECLAIMED, LLFREE_CHILD_HUGE,
				LLFREE_CHILD_HUGE | LLFREE_CHILD_RECLAIMED, 0, 513, 4096,
				4096 | LLFREE_TREE_RESERVED, 1u << LLFREE_TREE_KIND_SHIFT | 600,
			};
			uint16_t word = words[data[3] % (sizeof(words) / sizeof(words[0]))];
			uint64_t children = w.layout.trees * LLFREE_TREE_CHILDREN;
			uint64_t i = (data[1] | (uint64_t)data[2] << 8);

			if (op == 14) {
				uint64_t c = i % 2 ? children - 1 - i / 2 % children : i / 2 % children;
				uint32_t *pw = &w.ll.pairs[llfree_pair_index(c)];

				*pw = llfree_pair_set(*pw, c & 1, word);
			} else {
				w.ll.trees[i % w.layout.trees] = word;
			}
			w.corrupt = true;
		}
		if (!w.corrupt) {
			fuzz_check(llfree_validate(&w.ll) == 0, "validate");
			fuzz_check(llfree_free_frames(&w.ll) == recount(), "counters equal recount");
		}
	}
	llfree_validate(&w.ll); /* must not crash on whatever the metadata holds */
	llfree_free_huge(&w.ll);
	munmap(meta_map, meta_len);
	munmap(state_map, state_len);
	return 0;
}
