/* Unit tests of the allocator core: every operation at every order, counters,
 * partial and last trees, exhaustion, double frees, and the host API. */
#include "check.h"
#include "zone.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#define ORDERS (LLFREE_MAX_ORDER + 1)
#define MIB (1024 * 1024 / 4096)

/* On the first failed condition, records a message into why. */
#define EXPECT(cond, ...)                                                  \
	do {                                                               \
		if (!(cond) && !*why)                                      \
			snprintf(why, sizeof(why), __VA_ARGS__);           \
	} while (0)

static void test_layout(void)
{
	struct llfree_layout l;
	bool ok = true;

	for (uint64_t start = 0; start < 5000; start += 997) {
		for (uint64_t frames = 1; frames < 200000; frames = frames * 3 + 7) {
			ok &= llfree_layout_init(&l, start, frames);
			ok &= l.child_off % 64 == 0 && l.tree_off % 64 == 0 && l.size % 64 == 0;
			ok &= l.trees * LLFREE_TREE_FRAMES >= l.offset + frames;
			ok &= (l.trees - 1) * LLFREE_TREE_FRAMES < l.offset + frames;
			ok &= l.offset == start % LLFREE_BASE_FRAMES;
		}
	}
	check(ok, "layout offsets aligned and sized", "bad layout");
	check(!llfree_metadata_size(0, 0) && !llfree_metadata_size(0, (uint64_t)1 << 50),
	      "layout rejects empty and huge zones", "accepted");
	/* 20 GiB: a header, 32 KiB bitfields per GiB plus 4 KiB child words
	 * (64 B per tree) and 1/8 KiB tree words. */
	CHECK_EQ_U64(llfree_metadata_size(0, 20ull << 18), 64 + 20 * (32 + 4) * 1024 + 20 * 128,
		     "metadata size of a 20 GiB zone");
	ok = llfree_layout_init(&l, 0, 40 * LLFREE_TREE_FRAMES);
	for (uint64_t c = 0; c < 40 * LLFREE_TREE_CHILDREN; c++) {
		size_t at = l.child_off + llfree_pair_index(c) * 4;

		ok &= at / 64 == (l.child_off / 64 + c / LLFREE_TREE_CHILDREN) && at < l.tree_off;
	}
	check(ok && l.child_off % 64 == 0, "child words of each tree in their own cache line",
	      "shared");
}

/* The header: the host refuses metadata without the magic, version and
 * geometry it expects; recovery checks it too. */
static void test_header(void)
{
	struct zone z;
	struct llfree_host h;
	struct llfree_local local;
	struct llfree_header *hdr;
	uint64_t state[64];
	char why[160] = "";

	zone_init(&z, 1, 1024, 64 * MIB, LLFREE_INIT_FREE);
	hdr = z.meta;
	EXPECT(hdr->magic == LLFREE_MAGIC && hdr->version == LLFREE_VERSION &&
		       hdr->start_pfn == 1024 && hdr->frames == 64 * MIB && !hdr->hard,
	       "header not written");
	EXPECT(!llfree_host_init(&h, z.meta, z.meta_size, 1024, 64 * MIB, state), "host init");
	hdr->version++;
	EXPECT(llfree_host_init(&h, z.meta, z.meta_size, 1024, 64 * MIB, state) == LLFREE_EINVAL,
	       "wrong version accepted");
	EXPECT(llfree_init(&z.ll, 1, &local, 1024, 64 * MIB, LLFREE_INIT_RECOVER, z.meta) ==
		       LLFREE_EINVAL,
	       "recovery of a wrong version");
	hdr->version--;
	hdr->magic ^= 1;
	EXPECT(llfree_host_init(&h, z.meta, z.meta_size, 1024, 64 * MIB, state) == LLFREE_EINVAL,
	       "wrong magic accepted");
	hdr->magic ^= 1;
	hdr->frames--;
	EXPECT(llfree_host_init(&h, z.meta, z.meta_size, 1024, 64 * MIB, state) == LLFREE_EINVAL,
	       "wrong geometry accepted");
	check(!*why, "host checks the header's magic, version and geometry", "%s", why);
	zone_free(&z);
}

/* The O(1) free counter follows guest gets and puts and host hard reclaim
 * and return, with reservations and caches held. */
static void test_free_counter(void)
{
	struct llfree_alloc a[40];
	struct llfree_range r[8];
	struct zone z;
	uint64_t frames = 16 * LLFREE_TREE_FRAMES + 333, n, child;
	size_t nr;
	bool already;
	char why[160] = "";

	zone_init(&z, 2, 100, frames, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 40; i++)
		EXPECT(!llfree_get(&z.ll, i % 2, i % 11, i % 3 ? LLFREE_MOVABLE : 0, &a[i]), "get");
	for (unsigned i = 0; i < 40; i += 3)
		EXPECT(!llfree_put(&z.ll, (i + 1) % 2, a[i].pfn, i % 11), "put");
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, 20, r, 8, &nr, &n) && n, "bulk");
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already), "reclaim");
	EXPECT(!llfree_host_return(&z.host, child), "return");
	EXPECT(((struct llfree_header *)z.meta)->hard == n, "header counts %lu hard, not %lu",
	       ((struct llfree_header *)z.meta)->hard, n);
	EXPECT(llfree_free_frames(&z.ll) == zone_recount(&z), "counter %lu, recount %lu",
	       llfree_free_frames(&z.ll), zone_recount(&z));
	EXPECT(!llfree_validate(&z.ll), "invalid");
	check(!*why, "O(1) free counter includes host reclaim and return", "%s", why);
	zone_free(&z);
}

/* Allocates until exhaustion at one order; checks every frame; frees all. */
static void exhaust_order(uint64_t start, uint64_t frames, unsigned order, unsigned cores)
{
	uint64_t n = 1ull << order, count = 0, max = frames / n + 1;
	uint64_t *pfns = calloc(max, sizeof(*pfns));
	unsigned char *seen = calloc(frames, 1);
	struct llfree_alloc a;
	char name[96], why[160] = "";
	struct zone z;
	uint64_t expect = 0;
	int err;

	EXPECT(!zone_init(&z, cores, start, frames, LLFREE_INIT_FREE), "init failed");
	/* Aligned blocks fully inside the zone. */
	for (uint64_t p = (start + n - 1) / n * n; p + n <= start + frames; p += n)
		expect++;
	while (!*why) {
		err = llfree_get(&z.ll, (unsigned)(count % cores), order, 0, &a);
		if (err == LLFREE_ENOMEM) { /* other cores may hold frames in reservations */
			for (unsigned c = 0; c < cores; c++)
				llfree_drain(&z.ll, c);
			err = llfree_get(&z.ll, (unsigned)(count % cores), order, 0, &a);
		}
		if (err)
			break;
		EXPECT(count < max, "more blocks than fit");
		EXPECT(a.pfn % n == 0, "pfn %lu not aligned", a.pfn);
		EXPECT(a.pfn >= start && a.pfn + n <= start + frames, "pfn %lu outside", a.pfn);
		EXPECT(!a.install, "install reported without reclaim");
		for (uint64_t i = 0; !*why && i < n; i++) {
			EXPECT(!seen[a.pfn - start + i], "frame %lu handed out twice", a.pfn + i);
			seen[a.pfn - start + i] = 1;
		}
		if (*why)
			break;
		pfns[count++] = a.pfn;
	}
	EXPECT(*why || err == LLFREE_ENOMEM, "get ended with %d", err);
	EXPECT(count == expect, "got %lu blocks, expected %lu", count, expect);
	EXPECT(llfree_free_frames(&z.ll) == frames - count * n, "free %lu after exhaustion",
	       llfree_free_frames(&z.ll));
	EXPECT(llfree_validate(&z.ll) == 0, "invalid after exhaustion");
	for (uint64_t i = 0; i < count; i++)
		EXPECT(llfree_put(&z.ll, (unsigned)(i % cores), pfns[i], order) == 0,
		       "put %lu failed", pfns[i]);
	if (count)
		EXPECT(llfree_put(&z.ll, 0, pfns[0], order) == LLFREE_EDOUBLE,
		       "double free not detected");
	for (unsigned c = 0; c < cores; c++)
		llfree_drain(&z.ll, c);
	EXPECT(llfree_free_frames(&z.ll) == frames, "free %lu after put", llfree_free_frames(&z.ll));
	EXPECT(zone_recount(&z) == frames, "recount %lu", zone_recount(&z));
	EXPECT(llfree_validate(&z.ll) == 0, "invalid after put");
	snprintf(name, sizeof(name), "get/put order %u, start %lu, %lu frames, %u cores", order,
		 start, frames, cores);
	check(!*why, name, "%s", why);
	zone_free(&z);
	free(pfns);
	free(seen);
}

static void test_exhaustion(void)
{
	for (unsigned order = 0; order < ORDERS; order++) {
		exhaust_order(0, 64 * MIB, order, 1);              /* 4 whole trees */
		exhaust_order(1024 + 333, 40 * MIB + 77, order, 3); /* partial first and last tree */
	}
	exhaust_order(7, 3, 0, 1); /* a zone smaller than one child */
	/* More than 32 trees: the partial-tree scan looks at 32 only. */
	for (unsigned order = 0; order < ORDERS; order += 3)
		exhaust_order(5000, 40 * LLFREE_TREE_FRAMES + 600, order, 3);
}

/* Mixed orders in one zone, freed in a different order. */
static void test_mixed(void)
{
	struct zone z;
	struct llfree_alloc a;
	uint64_t pfns[ORDERS * 8];
	unsigned orders[ORDERS * 8], n = 0;
	char why[160] = "";

	zone_init(&z, 2, 0, 128 * MIB, LLFREE_INIT_FREE);
	for (unsigned round = 0; round < 8; round++) {
		for (unsigned order = 0; order < ORDERS; order++) {
			EXPECT(!llfree_get(&z.ll, round & 1, order, round & 2 ? LLFREE_MOVABLE : 0, &a),
			       "get order %u", order);
			pfns[n] = a.pfn;
			orders[n++] = order;
		}
	}
	EXPECT(!llfree_validate(&z.ll), "invalid with reservations");
	uint64_t used = 0;
	for (unsigned i = 0; i < n; i++)
		used += 1ull << orders[i];
	EXPECT(llfree_free_frames(&z.ll) == 128 * MIB - used, "free count %lu",
	       llfree_free_frames(&z.ll));
	for (unsigned i = n; i-- > 0;)
		EXPECT(!llfree_put(&z.ll, i & 1, pfns[i], orders[i]), "put %u", i);
	llfree_drain(&z.ll, 0);
	llfree_drain(&z.ll, 1);
	EXPECT(llfree_free_frames(&z.ll) == 128 * MIB && !llfree_validate(&z.ll), "not restored");
	EXPECT(llfree_free_huge(&z.ll) == 128 * MIB / LLFREE_CHILD_FRAMES, "free huge %lu",
	       llfree_free_huge(&z.ll));
	check(!*why, "mixed orders and kinds on two cores", "%s", why);
	zone_free(&z);
}

static void test_get_at(void)
{
	for (unsigned order = 0; order < ORDERS; order++) {
		struct zone z;
		struct llfree_alloc a;
		uint64_t n = 1ull << order, pfn = 3 * LLFREE_TREE_FRAMES + 2 * n * 7 % 4096;
		char why[160] = "", name[64];

		pfn = pfn / n * n;
		zone_init(&z, 1, 0, 64 * MIB, LLFREE_INIT_FREE);
		EXPECT(!llfree_get_at(&z.ll, 0, pfn, order, &a) && a.pfn == pfn && !a.install,
		       "get_at failed");
		EXPECT(llfree_get_at(&z.ll, 0, pfn, order, &a) == LLFREE_ENOMEM, "taken twice");
		EXPECT(!order || llfree_get_at(&z.ll, 0, pfn + n / 2, 0, &a) == LLFREE_ENOMEM,
		       "inner frame taken");
		EXPECT(!order || llfree_get_at(&z.ll, 0, pfn + 1, order, &a) == LLFREE_EINVAL,
		       "misaligned accepted");
		EXPECT(llfree_free_frames(&z.ll) == 64 * MIB - n, "free %lu", llfree_free_frames(&z.ll));
		EXPECT(!llfree_validate(&z.ll), "invalid");
		EXPECT(!llfree_put(&z.ll, 0, pfn, order), "put failed");
		EXPECT(llfree_free_frames(&z.ll) == 64 * MIB && !llfree_validate(&z.ll), "not restored");
		snprintf(name, sizeof(name), "get_at order %u", order);
		check(!*why, name, "%s", why);
		zone_free(&z);
	}
}

static void test_bad_put(void)
{
	struct zone z;
	struct llfree_alloc a;
	char why[160] = "";

	zone_init(&z, 1, 2048, 16 * MIB, LLFREE_INIT_FREE);
	EXPECT(llfree_put(&z.ll, 0, 2048 + 5, 0) == LLFREE_EDOUBLE, "free of a free frame");
	EXPECT(llfree_put(&z.ll, 0, 2048, 9) == LLFREE_EDOUBLE, "free of a free child");
	EXPECT(llfree_put(&z.ll, 0, 2048, 10) == LLFREE_EDOUBLE, "free of a free pair");
	EXPECT(llfree_put(&z.ll, 0, 2047, 0) == LLFREE_EINVAL, "below the zone");
	EXPECT(llfree_put(&z.ll, 0, 2048 + 16 * MIB, 0) == LLFREE_EINVAL, "beyond the zone");
	EXPECT(llfree_put(&z.ll, 0, 2048 + 2, 2) == LLFREE_EINVAL, "misaligned");
	EXPECT(llfree_put(&z.ll, 0, 2048, 11) == LLFREE_EINVAL, "order 11");
	EXPECT(llfree_put(&z.ll, 1, 2048, 0) == LLFREE_EINVAL, "bad core");
	EXPECT(llfree_get(&z.ll, 0, 11, 0, &a) == LLFREE_EINVAL, "get order 11");
	EXPECT(llfree_get(&z.ll, 0, 99, 0, &a) == LLFREE_EINVAL &&
		       llfree_get_at(&z.ll, 0, 2048, 99, &a) == LLFREE_EINVAL &&
		       llfree_put(&z.ll, 0, 2048, 99) == LLFREE_EINVAL,
	       "order 99");
	EXPECT(!llfree_get(&z.ll, 0, 3, 0, &a), "get");
	EXPECT(llfree_put(&z.ll, 0, a.pfn, 2) == 0, "put part of a block");
	EXPECT(llfree_put(&z.ll, 0, a.pfn, 3) == LLFREE_EDOUBLE, "half-freed block freed again");
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a), "get order 9");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 9) && llfree_put(&z.ll, 0, a.pfn, 9) == LLFREE_EDOUBLE,
	       "order 9 double free");
	EXPECT(llfree_put(&z.ll, 0, a.pfn, 0) == LLFREE_EDOUBLE, "order 0 free in a free child");
	EXPECT(!llfree_get(&z.ll, 0, 10, 0, &a), "get order 10");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 10) &&
		       llfree_put(&z.ll, 0, a.pfn, 10) == LLFREE_EDOUBLE,
	       "order 10 double free");
	EXPECT(!llfree_validate(&z.ll), "invalid after rejected frees");
	check(!*why, "double frees and bad arguments detected", "%s", why);
	zone_free(&z);
}

/* Frees of parts of an order 9 or 10 block (split_page, THP split,
 * alloc_pages_exact) split the huge child into a bitfield. */
static void test_partial_free(void)
{
	struct zone z;
	struct llfree_alloc a, b;
	uint64_t frames = 32 * MIB, child;
	bool already;
	char why[160] = "";

	zone_init(&z, 2, 0, frames, LLFREE_INIT_FREE);
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a), "get order 9");
	for (uint64_t f = 0; f < 512; f += 2)
		EXPECT(!llfree_put(&z.ll, f / 2 % 2, a.pfn + f, 0), "put frame %lu", f);
	EXPECT(llfree_put(&z.ll, 0, a.pfn + 2, 0) == LLFREE_EDOUBLE, "double free after split");
	EXPECT(llfree_free_frames(&z.ll) == frames - 256 && !llfree_validate(&z.ll),
	       "half freed: free %lu", llfree_free_frames(&z.ll));
	EXPECT(llfree_get_at(&z.ll, 1, a.pfn + 4, 0, &b) == 0, "freed part allocated again");
	EXPECT(!llfree_put(&z.ll, 1, a.pfn + 4, 0), "put again");
	for (uint64_t f = 1; f < 512; f += 2)
		EXPECT(!llfree_put(&z.ll, 1, a.pfn + f, 0), "put frame %lu", f);
	EXPECT(!llfree_get(&z.ll, 0, 10, 0, &a), "get order 10");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn + 512, 9), "upper half at order 9");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 8) && !llfree_put(&z.ll, 0, a.pfn + 256, 3),
	       "lower half in parts");
	EXPECT(llfree_put(&z.ll, 0, a.pfn, 10) == LLFREE_EDOUBLE, "order 10 put of a split block");
	for (uint64_t f = 264; f < 512; f += 8)
		EXPECT(!llfree_put(&z.ll, 0, a.pfn + f, 3), "put order 3 at %lu", f);
	llfree_drain(&z.ll, 0);
	llfree_drain(&z.ll, 1);
	EXPECT(llfree_free_frames(&z.ll) == frames && llfree_free_huge(&z.ll) == frames / 512 &&
		       !llfree_validate(&z.ll),
	       "not restored: free %lu", llfree_free_frames(&z.ll));
	/* Reclaimed, not installed: never split. */
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already), "hard reclaim");
	EXPECT(llfree_put(&z.ll, 0, child * 512 + 8, 3) == LLFREE_EDOUBLE, "split of a held child");
	EXPECT(llfree_host_return(&z.host, child) == 0, "return after a refused split");
	while (!llfree_get(&z.ll, 0, 9, 0, &a) && !a.install)
		;
	EXPECT(a.install && llfree_put(&z.ll, 0, a.pfn, 0) == LLFREE_EDOUBLE,
	       "split of a child not installed");
	EXPECT(llfree_host_install(&z.host, llfree_child_of(&z.ll, a.pfn)) == 1 &&
		       !llfree_put(&z.ll, 0, a.pfn, 0),
	       "split after install");
	EXPECT(!llfree_validate(&z.ll), "invalid at end");
	check(!*why, "partial frees split order 9 and 10 blocks, never reclaimed ones", "%s", why);
	zone_free(&z);
}

struct put_args {
	struct zone *z;
	uint64_t pfn;
	int err;
};

static void *put_thread(void *arg)
{
	struct put_args *p = arg;

	p->err = llfree_put(&p->z->ll, 1, p->pfn, 0);
	return NULL;
}

/* A put into a huge child that another CPU is splitting: huge_split has set
 * the bits but not yet cleared `huge`.  The put may clear its bit, but the
 * child's counter rises only once the split is done. */
static void test_put_during_split(void)
{
	struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };
	struct zone z;
	struct llfree_alloc a;
	struct put_args p = { .z = &z, .err = -1 };
	pthread_t thread;
	uint64_t child;
	uint32_t *pw;
	uint16_t c;
	char why[160] = "";

	zone_init(&z, 2, 0, 32 * MIB, LLFREE_INIT_FREE);
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a), "get order 9");
	child = llfree_child_of(&z.ll, a.pfn);
	pw = &z.ll.pairs[llfree_pair_index(child)];
	for (unsigned w = 0; w < LLFREE_BITFIELD_WORDS; w++) /* the split, halfway */
		__atomic_store_n(&z.ll.bitfields[child].words[w], ~0ull, __ATOMIC_SEQ_CST);
	p.pfn = a.pfn + 100;
	if (pthread_create(&thread, NULL, put_thread, &p))
		abort();
	nanosleep(&pause, NULL);
	c = llfree_pair_get(__atomic_load_n(pw, __ATOMIC_SEQ_CST), child & 1);
	EXPECT(c == LLFREE_CHILD_HUGE, "counter raised during the split: child word %#x", c);
	__atomic_store_n(pw, llfree_pair_set(__atomic_load_n(pw, __ATOMIC_SEQ_CST), child & 1, 0),
			 __ATOMIC_SEQ_CST); /* the split ends */
	pthread_join(thread, NULL);
	EXPECT(!p.err, "put during the split: %d", p.err);
	c = llfree_pair_get(__atomic_load_n(pw, __ATOMIC_SEQ_CST), child & 1);
	EXPECT(c == 1 && !llfree_validate(&z.ll), "after the split: child word %#x", c);
	check(!*why, "a put racing a split counts its frame only after the split", "%s", why);
	zone_free(&z);
}

/* An order-10 put with one bad half frees neither. */
static void test_pair_put_atomic(void)
{
	struct zone z;
	struct llfree_alloc a;
	char why[160] = "";

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	EXPECT(!llfree_get(&z.ll, 0, 10, 0, &a), "get order 10");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn + 512, 9), "upper half freed alone");
	EXPECT(llfree_put(&z.ll, 0, a.pfn, 10) == LLFREE_EDOUBLE, "order 10 put accepted");
	EXPECT(!llfree_is_free(&z.ll, a.pfn, 9) && llfree_free_frames(&z.ll) == 16 * MIB - 512,
	       "the lower half was freed by a failed order 10 put");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 9) && !llfree_validate(&z.ll), "lower half");
	check(!*why, "order 10 put frees both halves or neither", "%s", why);
	zone_free(&z);
}

/* is_free and the free-block walk (buddyinfo). */
static void test_free_walk(void)
{
	struct zone z;
	struct llfree_alloc a;
	uint64_t counts[ORDERS], sum = 0, pfn, start = 3 * 512 + 40;
	unsigned order;
	char why[160] = "";

	zone_init(&z, 1, 0, 64 * MIB, LLFREE_INIT_FREE);
	llfree_free_blocks(&z.ll, counts);
	EXPECT(counts[10] == 64 * MIB / 1024 && !counts[9] && !counts[0], "free zone: %lu order 10",
	       counts[10]);
	EXPECT(!llfree_get_at(&z.ll, 0, 5, 0, &a), "get_at");
	llfree_free_blocks(&z.ll, counts);
	for (order = 0; order < 9; order++)
		EXPECT(counts[order] == 1, "order %u: %lu blocks", order,
		       counts[order]);
	EXPECT(counts[9] == 1 && counts[10] == 64 * MIB / 1024 - 1, "orders 9/10: %lu %lu",
	       counts[9], counts[10]);
	EXPECT(llfree_is_free(&z.ll, 4, 0) && !llfree_is_free(&z.ll, 4, 1) &&
		       !llfree_is_free(&z.ll, 0, 9) && llfree_is_free(&z.ll, 512, 9) &&
		       !llfree_is_free(&z.ll, 0, 10) && llfree_is_free(&z.ll, 1024, 10) &&
		       llfree_is_free(&z.ll, 256, 8) && !llfree_is_free(&z.ll, 0, 6) &&
		       llfree_is_free(&z.ll, 64, 6) && !llfree_is_free(&z.ll, 5, 0),
	       "is_free");
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a) && !llfree_is_free(&z.ll, a.pfn, 0) &&
		       !llfree_is_free(&z.ll, a.pfn + 64, 6),
	       "inside a huge child");
	/* Sum of the walk = free frames, on a zone with partial ends. */
	zone_free(&z);
	zone_init(&z, 1, start, 5 * LLFREE_TREE_FRAMES + 77, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 200; i++)
		llfree_get(&z.ll, 0, i % 11, 0, &a);
	for (pfn = 0; !llfree_next_free(&z.ll, &pfn, &order); pfn += 1ull << order) {
		EXPECT(pfn % (1ull << order) == 0 && pfn >= start && llfree_is_free(&z.ll, pfn, order),
		       "walk gave %lu order %u", pfn, order);
		sum += 1ull << order;
	}
	EXPECT(sum == llfree_free_frames(&z.ll), "walk found %lu of %lu free", sum,
	       llfree_free_frames(&z.ll));
	check(!*why, "is_free and the free-block walk", "%s", why);
	zone_free(&z);
}

/* All allocated at init, then handed over by put() at every order. */
static void test_init_alloc(void)
{
	for (unsigned order = 0; order < ORDERS; order++) {
		uint64_t frames = 48 * MIB, n = 1ull << order;
		struct zone z;
		struct llfree_alloc a;
		char why[160] = "", name[64];

		zone_init(&z, 1, 0, frames, LLFREE_INIT_ALLOC);
		EXPECT(llfree_free_frames(&z.ll) == 0 && !llfree_validate(&z.ll), "not all allocated");
		EXPECT(llfree_get(&z.ll, 0, 0, 0, &a) == LLFREE_ENOMEM, "got from a full zone");
		for (uint64_t p = 0; p < frames; p += n)
			EXPECT(!llfree_put(&z.ll, 0, p, order), "put %lu", p);
		llfree_drain(&z.ll, 0);
		EXPECT(llfree_free_frames(&z.ll) == frames, "free %lu", llfree_free_frames(&z.ll));
		EXPECT(llfree_free_huge(&z.ll) == frames / LLFREE_CHILD_FRAMES, "huge %lu",
		       llfree_free_huge(&z.ll));
		EXPECT(!llfree_validate(&z.ll), "invalid");
		EXPECT(!llfree_get(&z.ll, 0, 10, 0, &a), "order 10 after hand over");
		snprintf(name, sizeof(name), "init allocated, hand over at order %u", order);
		check(!*why, name, "%s", why);
		zone_free(&z);
	}
}

static void test_recover(void)
{
	struct zone z, r;
	struct llfree_alloc a, keep[64];
	char why[160] = "";
	uint64_t free_before;

	zone_init(&z, 2, 512, 96 * MIB, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 64; i++)
		EXPECT(!llfree_get(&z.ll, i & 1, i % ORDERS, 0, &keep[i]), "get %u", i);
	free_before = llfree_free_frames(&z.ll);
	zone_init(&r, 1, 512, 96 * MIB, LLFREE_INIT_FREE);
	memcpy(r.meta, z.meta, z.meta_size); /* e.g. after a reboot, reservations lost */
	EXPECT(!llfree_init(&r.ll, 1, r.locals, 512, 96 * MIB, LLFREE_INIT_RECOVER, r.meta),
	       "recover failed");
	EXPECT(llfree_free_frames(&r.ll) == free_before, "free %lu, expected %lu",
	       llfree_free_frames(&r.ll), free_before);
	EXPECT(!llfree_validate(&r.ll), "invalid after recovery");
	for (unsigned i = 0; i < 64; i++) {
		EXPECT(llfree_get_at(&r.ll, 0, keep[i].pfn, 0, &a) == LLFREE_ENOMEM,
		       "allocated frame free after recovery");
		EXPECT(!llfree_put(&r.ll, 0, keep[i].pfn, i % ORDERS), "put %u", i);
	}
	llfree_drain(&r.ll, 0);
	EXPECT(llfree_free_frames(&r.ll) == 96 * MIB && !llfree_validate(&r.ll), "not restored");
	check(!*why, "recover from existing metadata", "%s", why);
	zone_free(&z);
	zone_free(&r);
}

static void test_counters(void)
{
	struct zone z;
	struct llfree_alloc a;
	char why[160] = "";

	zone_init(&z, 2, 0, 32 * MIB + 100, LLFREE_INIT_FREE); /* 2 trees + a partial one */
	EXPECT(z.ll.layout.trees == 3, "trees %lu", z.ll.layout.trees);
	EXPECT(llfree_free_in_tree(&z.ll, 2) == 100, "last tree %u", llfree_free_in_tree(&z.ll, 2));
	EXPECT(llfree_free_huge(&z.ll) == 16, "huge %lu", llfree_free_huge(&z.ll));
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a), "get");
	uint64_t tree = llfree_child_of(&z.ll, a.pfn) / LLFREE_TREE_CHILDREN;
	EXPECT(llfree_free_in_tree(&z.ll, tree) == LLFREE_TREE_FRAMES - 1, "tree %u",
	       llfree_free_in_tree(&z.ll, tree));
	EXPECT(llfree_free_huge(&z.ll) == 15, "huge after get %lu", llfree_free_huge(&z.ll));
	/* Another core frees into the reserved tree: the shared counter takes it. */
	EXPECT(!llfree_put(&z.ll, 1, a.pfn, 0), "put from core 1");
	EXPECT(llfree_free_frames(&z.ll) == 32 * MIB + 100 && !llfree_validate(&z.ll),
	       "counters after a foreign put");
	/* The last, partial tree serves the remaining frames. */
	for (unsigned i = 0; i < 100; i++)
		EXPECT(!llfree_get_at(&z.ll, 1, 32 * MIB + i, 0, &a), "last tree frame %u", i);
	EXPECT(llfree_free_in_tree(&z.ll, 2) == 0, "last tree not empty");
	EXPECT(llfree_frames(&z.ll) == 32 * MIB + 100, "frames");
	check(!*why, "counters: total, huge, per tree", "%s", why);
	llfree_dump(&z.ll);
	zone_free(&z);
}

static void test_validate_detects(void)
{
	struct zone z;

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	z.ll.bitfields[3].words[2] |= 1;
	check(llfree_validate(&z.ll) == LLFREE_ECORRUPT, "validate detects a stray bit", "passed");
	zone_free(&z);
}

/* Frames in another core's reservation are reachable: no ENOMEM while a
 * block of the order is free, and get_at works inside reserved trees. */
static void test_reservations_reachable(void)
{
	uint64_t frames = 8 * LLFREE_TREE_FRAMES, got;
	struct llfree_alloc a;
	struct zone z;
	char why[160] = "";

	for (unsigned order = 0; order <= LLFREE_MAX_ORDER; order += 9) {
		zone_init(&z, 2, 0, frames, LLFREE_INIT_FREE);
		EXPECT(z.ll.reserve, "8 trees and 2 cores: reservations expected");
		/* core 0 reserves a tree of every kind */
		EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && !llfree_get(&z.ll, 0, 0, LLFREE_MOVABLE, &a) &&
			       !llfree_get(&z.ll, 0, 9, 0, &a),
		       "core 0 gets");
		EXPECT(!llfree_get_at(&z.ll, 1, a.pfn + 512, 0, &a), "get_at in a tree core 0 reserved");
		for (got = 0; !llfree_get(&z.ll, 1, order, 0, &a); got++)
			;
		EXPECT(order ? !llfree_free_huge(&z.ll) : !llfree_free_frames(&z.ll),
		       "order %u: ENOMEM with %lu free, %lu free children", order,
		       llfree_free_frames(&z.ll), llfree_free_huge(&z.ll));
		EXPECT(!llfree_validate(&z.ll), "invalid");
		zone_free(&z);
	}
	/* A zone too small to reserve a tree per core: one tree, two cores. */
	zone_init(&z, 2, 0, LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	EXPECT(!z.ll.reserve, "reservations in a one-tree zone");
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && !llfree_get(&z.ll, 0, 0, 0, &a), "core 0 gets");
	for (got = 0; !llfree_get(&z.ll, 1, 0, 0, &a); got++)
		;
	EXPECT(got == LLFREE_TREE_FRAMES - 2, "core 1 got %lu of %u", got, LLFREE_TREE_FRAMES - 2);
	EXPECT(!llfree_validate(&z.ll), "invalid");
	check(!*why, "reservations reachable from other cores, none on small zones", "%s", why);
	zone_free(&z);
}

/* A drain from another CPU ends the reservations; the owner goes on. */
static void test_drain_remote(void)
{
	struct llfree_alloc a, b;
	struct zone z;
	char why[160] = "";

	zone_init(&z, 2, 0, 8 * LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 3; i++) /* the last one through the core's cache */
		EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a), "get");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn - 1, 0) && !llfree_put(&z.ll, 0, a.pfn - 2, 0), "put");
	llfree_drain_remote(&z.ll, 0);
	EXPECT(!(z.ll.trees[llfree_child_of(&z.ll, a.pfn) / 8] & LLFREE_TREE_RESERVED),
	       "tree still reserved");
	EXPECT(!llfree_validate(&z.ll), "invalid after remote drain");
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &b) && !llfree_put(&z.ll, 0, a.pfn, 0) &&
		       !llfree_put(&z.ll, 1, b.pfn, 0),
	       "owner after drain");
	llfree_drain(&z.ll, 0);
	EXPECT(llfree_free_frames(&z.ll) == 8 * LLFREE_TREE_FRAMES && !llfree_validate(&z.ll),
	       "not restored");
	check(!*why, "drain of another core's reservations", "%s", why);
	zone_free(&z);
}

/* Only an entirely free tree changes its kind. */
static void test_kind_policy(void)
{
	struct llfree_alloc a;
	struct zone z;
	char why[160] = "";

	zone_init(&z, 1, 0, 4 * LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	EXPECT(!llfree_get(&z.ll, 0, 0, LLFREE_MOVABLE, &a) && a.pfn < LLFREE_TREE_FRAMES,
	       "movable get");
	EXPECT(llfree_tree_kind(z.ll.trees[0]) == LLFREE_KIND_MOVABLE, "tree 0 not movable");
	for (uint64_t p = LLFREE_TREE_FRAMES; p < 4 * LLFREE_TREE_FRAMES; p += 1024)
		EXPECT(!llfree_get_at(&z.ll, 0, p, 10, &a), "fill %lu", p);
	llfree_drain(&z.ll, 0);
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && a.pfn < LLFREE_TREE_FRAMES, "fixed get");
	EXPECT(llfree_tree_kind(z.ll.trees[0]) == LLFREE_KIND_MOVABLE,
	       "one fixed frame turned the movable tree %u", llfree_tree_kind(z.ll.trees[0]));
	check(!*why, "a partly used movable tree stays movable", "%s", why);
	zone_free(&z);
}

/* LLFREE_NORECLAIMED never hands out reclaimed memory. */
static void test_noreclaimed(void)
{
	struct llfree_alloc a;
	struct zone z;
	uint64_t child;
	bool already;
	char why[160] = "";

	zone_init(&z, 1, 0, LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 7; i++)
		EXPECT(!llfree_host_reclaim(&z.host, false, &child, &already), "soft %u", i);
	EXPECT(!llfree_get(&z.ll, 0, 9, LLFREE_NORECLAIMED, &a) && !a.install, "the one installed");
	EXPECT(llfree_get(&z.ll, 0, 0, LLFREE_NORECLAIMED, &a) == LLFREE_ENOMEM &&
		       llfree_get(&z.ll, 0, 9, LLFREE_NORECLAIMED, &a) == LLFREE_ENOMEM &&
		       llfree_get(&z.ll, 0, 10, LLFREE_NORECLAIMED, &a) == LLFREE_ENOMEM,
	       "reclaimed memory handed out");
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && a.install, "plain get");
	check(!*why, "no-reclaimed flag avoids reclaimed children", "%s", why);
	zone_free(&z);
}

/* ---- host ---- */

static void test_host_hard(void)
{
	struct zone z;
	struct llfree_alloc a;
	uint64_t child, frames = 32 * MIB;
	bool already;
	char why[160] = "";

	zone_init(&z, 1, 0, frames, LLFREE_INIT_FREE);
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already) && !already, "reclaim");
	EXPECT(llfree_host_holds(&z.host, child), "not held");
	EXPECT(llfree_host_is_reclaimed(&z.host, child) == 1, "not marked");
	EXPECT(llfree_free_frames(&z.ll) == frames - 512, "guest free %lu", llfree_free_frames(&z.ll));
	EXPECT(llfree_free_huge(&z.ll) == frames / 512 - 1, "guest huge %lu", llfree_free_huge(&z.ll));
	EXPECT(!llfree_validate(&z.ll), "invalid after reclaim");
	/* The guest never gets the held child. */
	while (!llfree_get(&z.ll, 0, 9, 0, &a))
		EXPECT(llfree_child_of(&z.ll, a.pfn) != child && !a.install, "held child handed out");
	EXPECT(llfree_get_at(&z.ll, 0, child * 512, 0, &a) == LLFREE_ENOMEM, "get_at of held");
	EXPECT(llfree_host_install(&z.host, child) == LLFREE_EINVAL, "install of held child");
	EXPECT(!llfree_host_return(&z.host, child) && !llfree_host_holds(&z.host, child), "return");
	EXPECT(llfree_host_return(&z.host, child) == LLFREE_EINVAL, "double return");
	EXPECT(llfree_host_is_reclaimed(&z.host, child) == 1, "return cleared reclaimed");
	/* The returned child is the only free one now; its frames need install. */
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && llfree_child_of(&z.ll, a.pfn) == child &&
		       a.install == 1,
	       "order 0 from reclaimed child without install");
	EXPECT(llfree_host_install(&z.host, child) == 1, "install");
	EXPECT(llfree_host_install(&z.host, child) == 0, "install twice");
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a) && !a.install, "install reported after install");
	EXPECT(!llfree_validate(&z.ll), "invalid at end");
	check(!*why, "host hard reclaim, return, install", "%s", why);
	zone_free(&z);
}

/* Order 10 from a pair of reclaimed children must install both. */
static void test_host_order10(void)
{
	struct zone z;
	struct llfree_range r[8];
	struct llfree_alloc a;
	uint64_t n;
	size_t nr;
	char why[160] = "";

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, 8, r, 8, &nr, &n) && n == 8 && nr == 1,
	       "bulk %lu", n);
	EXPECT(llfree_get(&z.ll, 0, 0, 0, &a) == LLFREE_ENOMEM, "got from a reclaimed zone");
	for (uint64_t c = 0; c < 8; c++)
		EXPECT(!llfree_host_return(&z.host, c), "return %lu", c);
	EXPECT(!llfree_get(&z.ll, 0, 10, 0, &a) && a.install == 3, "order 10 install mask %u",
	       a.install);
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a) && a.install == 1, "order 9 install mask %u",
	       a.install);
	EXPECT(llfree_host_install(&z.host, 2) == 1, "install");
	EXPECT(!llfree_get_at(&z.ll, 0, 2 * 512 + 512, 9, &a) && a.install == 1, "get_at install");
	EXPECT(!llfree_validate(&z.ll), "invalid");
	check(!*why, "order 10 from reclaimed memory installs both children", "%s", why);
	zone_free(&z);
}

static void test_host_soft(void)
{
	struct zone z;
	struct llfree_alloc a;
	uint64_t child, second;
	bool already;
	char why[160] = "";

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	EXPECT(!llfree_host_reclaim(&z.host, false, &child, &already) && !already, "soft");
	EXPECT(!llfree_host_holds(&z.host, child) &&
		       llfree_host_is_reclaimed(&z.host, child) == 1,
	       "soft state");
	EXPECT(llfree_free_frames(&z.ll) == 16 * MIB && llfree_free_huge(&z.ll) == 8,
	       "soft reclaim changed guest counters");
	EXPECT(!llfree_host_reclaim(&z.host, false, &second, &already) && second != child,
	       "soft reclaimed the same child twice");
	EXPECT(!llfree_host_reclaim(&z.host, true, &second, &already) && second == child && already,
	       "hard reclaim of a soft child: %lu already %d", second, already);
	EXPECT(!llfree_host_return(&z.host, child), "return");
	EXPECT(!llfree_get_at(&z.ll, 0, child * 512 + 7, 0, &a) && a.install == 1, "install");
	EXPECT(llfree_host_install(&z.host, child) == 1, "install");
	/* A partly used child is never reclaimed. */
	for (unsigned i = 0; i < 8; i++)
		llfree_host_reclaim(&z.host, false, &second, &already);
	EXPECT(!llfree_host_is_reclaimed(&z.host, child), "used child soft reclaimed");
	EXPECT(!llfree_validate(&z.ll), "invalid");
	check(!*why, "host soft reclaim", "%s", why);
	zone_free(&z);
}

static void test_host_reserved_and_bulk(void)
{
	struct zone z;
	struct llfree_alloc a;
	struct llfree_range r[64];
	uint64_t n, reserved_tree, total = 64 * MIB / 512;
	size_t nr;
	char why[160] = "";

	zone_init(&z, 1, 0, 64 * MIB, LLFREE_INIT_FREE);
	EXPECT(!llfree_get(&z.ll, 0, 0, 0, &a), "get"); /* reserves a tree */
	reserved_tree = llfree_child_of(&z.ll, a.pfn) / 8;
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, total, r, 64, &nr, &n), "bulk");
	EXPECT(n == total - 8, "reclaimed %lu of %lu", n, total - 8);
	for (uint64_t c = reserved_tree * 8; c < reserved_tree * 8 + 8; c++)
		EXPECT(!llfree_host_holds(&z.host, c), "child %lu of a reserved tree taken", c);
	EXPECT(nr == (reserved_tree == 0 || reserved_tree == 3 ? 1 : 2), "%zu ranges", nr);
	EXPECT(llfree_free_frames(&z.ll) == LLFREE_TREE_FRAMES - 1, "guest free %lu",
	       llfree_free_frames(&z.ll));
	EXPECT(!llfree_validate(&z.ll), "invalid after bulk");
	/* Return all, free the frame, drain: a hole in child 2 splits the ranges. */
	for (uint64_t c = 0; c < total; c++)
		if (llfree_host_holds(&z.host, c))
			EXPECT(!llfree_host_return(&z.host, c), "return %lu", c);
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 0), "put");
	llfree_drain(&z.ll, 0);
	for (uint64_t c = 0; c < total; c++)
		llfree_host_install(&z.host, c);
	EXPECT(!llfree_get_at(&z.ll, 0, 2 * 512, 0, &a), "get_at");
	llfree_drain(&z.ll, 0);
	EXPECT(!llfree_host_reclaim_bulk(&z.host, false, total, r, 64, &nr, &n) && n == total - 1 &&
		       nr == 2 && r[0].child == 0 && r[0].count == 2 && r[1].child == 3,
	       "soft bulk: %lu children, %zu ranges", n, nr);
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, total, r, 64, &nr, &n) && n == total - 1 &&
		       nr == 0,
	       "hard bulk over soft: %lu children, %zu ranges", n, nr);
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, total, r, 3, &nr, &n) && n == 0,
	       "bulk with too few ranges reclaimed %lu", n);
	EXPECT(!llfree_validate(&z.ll), "invalid at end");
	check(!*why, "host bulk skips reserved trees and coalesces ranges", "%s", why);
	zone_free(&z);
}

static void test_host_untrusted(void)
{
	struct zone z;
	uint64_t child, n;
	bool already;
	size_t nr;
	struct llfree_range r[8];
	char why[160] = "";
	uint64_t state[4];
	struct llfree_host other;

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	EXPECT(llfree_host_init(&other, z.meta, z.meta_size - 64, 0, 16 * MIB, state) ==
		       LLFREE_EINVAL,
	       "wrong metadata size accepted");
	EXPECT(llfree_host_install(&z.host, 8) == LLFREE_EINVAL &&
		       llfree_host_return(&z.host, 1000) == LLFREE_EINVAL &&
		       llfree_host_is_reclaimed(&z.host, (uint64_t)-1) == LLFREE_EINVAL,
	       "out of range child accepted");
	z.ll.trees[0] = 3u << LLFREE_TREE_KIND_SHIFT; /* kind 3 does not exist */
	EXPECT(llfree_host_reclaim(&z.host, true, &child, &already) == LLFREE_ENOMEM &&
		       z.host.invalid == 1,
	       "bad kind");
	z.ll.trees[0] = 4097;
	EXPECT(llfree_host_reclaim_bulk(&z.host, true, 8, r, 8, &nr, &n) == 0 && n == 0 &&
		       z.host.invalid == 2,
	       "tree counter above capacity");
	z.ll.trees[0] = 4096;
	z.ll.pairs[1] = 513; /* child 2: free 513 */
	EXPECT(llfree_host_reclaim(&z.host, false, &child, &already) == LLFREE_ENOMEM &&
		       z.host.invalid == 3,
	       "child counter above capacity");
	EXPECT(llfree_host_is_reclaimed(&z.host, 2) == LLFREE_ECORRUPT, "is_reclaimed");
	z.ll.pairs[1] = 512 | LLFREE_CHILD_HUGE;
	EXPECT(llfree_host_install(&z.host, 2) == LLFREE_ECORRUPT, "huge with free frames");
	z.ll.pairs[1] = 512 | 512 << 16;
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already) && child == 0, "reclaim");
	z.ll.pairs[0] = 512; /* the guest "frees" a held child behind the host's back */
	EXPECT(llfree_host_return(&z.host, 0) == LLFREE_ECORRUPT, "return of a tampered child");
	check(!*why, "host rejects corrupted metadata", "%s", why);
	zone_free(&z);
}

/* Host operations on a zone that starts inside a tree and ends inside a
 * child: only children wholly inside are ever reclaimed. */
static void test_host_offset_zone(void)
{
	uint64_t start = 3 * 1024 + 700, frames = 2 * LLFREE_TREE_FRAMES + 1500, n, total = 0;
	uint64_t children;
	struct llfree_range r[64];
	struct llfree_alloc a;
	struct zone z;
	size_t nr;
	char why[160] = "";

	zone_init(&z, 2, start, frames, LLFREE_INIT_FREE);
	children = llfree_host_children(&z.host);
	for (int hard = 0; hard < 2; hard++) {
		total = 0;
		while (!llfree_host_reclaim_bulk(&z.host, hard, 1000, r, 64, &nr, &n) && n) {
			total += n;
			for (size_t i = 0; i < nr; i++)
				for (uint64_t c = r[i].child; c < r[i].child + r[i].count; c++)
					EXPECT(llfree_child_capacity(&z.ll.layout, c) == 512,
					       "child %lu reclaimed, not wholly inside", c);
		}
		for (uint64_t c = 0; c < children; c++)
			EXPECT(llfree_child_capacity(&z.ll.layout, c) == 512 ||
				       !llfree_host_is_reclaimed(&z.host, c),
			       "edge child %lu marked reclaimed", c);
	}
	/* First whole child: frames 3*1024+700.. -> child 8 starts at 4096. */
	EXPECT(total == (start + frames) / 512 - (start + 511) / 512, "hard reclaimed %lu", total);
	EXPECT(llfree_free_frames(&z.ll) == frames - total * 512 && !llfree_validate(&z.ll),
	       "guest free %lu", llfree_free_frames(&z.ll));
	for (uint64_t c = 0; c < children; c++)
		if (llfree_host_holds(&z.host, c))
			EXPECT(!llfree_host_return(&z.host, c), "return %lu", c);
	EXPECT(!llfree_get(&z.ll, 1, 10, 0, &a) && a.install == 3 &&
		       llfree_host_install(&z.host, llfree_child_of(&z.ll, a.pfn)) == 1 &&
		       llfree_host_install(&z.host, llfree_child_of(&z.ll, a.pfn) + 1) == 1,
	       "order 10 with install");
	EXPECT(!llfree_put(&z.ll, 0, a.pfn, 10), "put");
	llfree_drain(&z.ll, 1);
	EXPECT(llfree_free_frames(&z.ll) == frames && !llfree_validate(&z.ll), "not restored");
	check(!*why, "host on a zone with partial first and last children", "%s", why);
	zone_free(&z);
}

/* One invalid tree does not stop reclaim of the others; a counter raise that
 * fails is owed, not lost; a bulk call takes at most LLFREE_HOST_BATCH. */
static void test_host_robust(void)
{
	struct llfree_range r[64];
	struct zone z;
	uint64_t child, n, total = 0, calls = 0;
	uint16_t good;
	size_t nr;
	bool already;
	char why[160] = "";

	zone_init(&z, 1, 0, 8 * LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	good = z.ll.trees[0];
	z.ll.trees[0] = 3u << LLFREE_TREE_KIND_SHIFT;
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already) && child >= 8 &&
		       z.host.invalid == 1,
	       "reclaim stopped at an invalid tree");
	EXPECT(!llfree_host_reclaim_bulk(&z.host, true, 20, r, 64, &nr, &n) && n == 20,
	       "bulk stopped at an invalid tree: %lu", n);
	/* The return's counter raise meets the bad tree word: owed, then paid. */
	z.ll.trees[0] = good;
	EXPECT(!llfree_host_return(&z.host, child), "return");
	for (uint64_t c = 0; c < 64; c++)
		if (llfree_host_holds(&z.host, c))
			EXPECT(!llfree_host_return(&z.host, c), "return %lu", c);
	EXPECT(!llfree_validate(&z.ll), "invalid after returns");
	/* Bounded batches. */
	while (!llfree_host_reclaim_bulk(&z.host, true, 1000, r, 64, &nr, &n) && n) {
		EXPECT(n <= LLFREE_HOST_BATCH, "batch of %lu", n);
		total += n;
		calls++;
	}
	EXPECT(total == 64 && calls == 64 / LLFREE_HOST_BATCH, "%lu children in %lu calls", total,
	       calls);
	zone_free(&z);
	/* The return's counter raise meets a bad tree word: owed, paid later. */
	zone_init(&z, 1, 0, LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	EXPECT(!llfree_host_reclaim(&z.host, true, &child, &already), "reclaim");
	good = z.ll.trees[0];
	z.ll.trees[0] = 3u << LLFREE_TREE_KIND_SHIFT;
	EXPECT(!llfree_host_return(&z.host, child), "return into a bad tree");
	EXPECT(llfree_host_settle(&z.host) == 512, "owed %lu", llfree_host_settle(&z.host));
	z.ll.trees[0] = good;
	EXPECT(!llfree_host_settle(&z.host), "still owed after the tree word is good again");
	EXPECT(!llfree_validate(&z.ll) && llfree_free_frames(&z.ll) == LLFREE_TREE_FRAMES,
	       "counter leaked: free %lu", llfree_free_frames(&z.ll));
	check(!*why, "host skips invalid trees, owes failed counter raises, bounded batches", "%s",
	      why);
	zone_free(&z);
}

/* The guest prefers installed children; reclaimed ones are used last. */
static void test_prefer_installed(void)
{
	struct zone z;
	struct llfree_alloc a;
	uint64_t child;
	bool already;
	char why[160] = "";

	zone_init(&z, 1, 0, 16 * MIB, LLFREE_INIT_FREE);
	for (unsigned i = 0; i < 7; i++)
		EXPECT(!llfree_host_reclaim(&z.host, false, &child, &already), "soft %u", i);
	for (unsigned order = 0; order < LLFREE_CHILD_ORDER; order += 2) {
		EXPECT(!llfree_get(&z.ll, 0, order, 0, &a) && !a.install &&
			       llfree_child_of(&z.ll, a.pfn) == 7,
		       "order %u from child %lu, install %u", order, llfree_child_of(&z.ll, a.pfn),
		       a.install);
	}
	EXPECT(!llfree_get(&z.ll, 0, 9, 0, &a) && a.install == 1, "order 9 without install");
	check(!*why, "installed children are used before reclaimed ones", "%s", why);
	zone_free(&z);
}

/* Hand-over of a zone that starts and ends inside children. */
static void test_init_alloc_partial(void)
{
	uint64_t start = 300, frames = 3 * LLFREE_TREE_FRAMES + 1000;
	struct zone z;
	char why[160] = "";

	zone_init(&z, 1, start, frames, LLFREE_INIT_ALLOC);
	for (uint64_t p = start; p < start + frames; p++)
		EXPECT(!llfree_put(&z.ll, 0, p, 0), "put %lu", p);
	llfree_drain(&z.ll, 0);
	EXPECT(llfree_free_frames(&z.ll) == frames, "free %lu", llfree_free_frames(&z.ll));
	EXPECT(!llfree_validate(&z.ll), "invalid");
	EXPECT(llfree_put(&z.ll, 0, start - 1, 0) == LLFREE_EINVAL, "frame before the zone");
	check(!*why, "init allocated, hand over of a partial zone", "%s", why);
	zone_free(&z);
}

int main(void)
{
	plan(77); /* every check runs unconditionally; loops run over fixed tables */
	test_layout();
	test_header();
	test_free_counter();
	test_exhaustion();
	test_mixed();
	test_get_at();
	test_bad_put();
	test_partial_free();
	test_put_during_split();
	test_pair_put_atomic();
	test_free_walk();
	test_reservations_reachable();
	test_drain_remote();
	test_kind_policy();
	test_noreclaimed();
	test_init_alloc();
	test_init_alloc_partial();
	test_recover();
	test_counters();
	test_validate_detects();
	test_host_hard();
	test_host_order10();
	test_host_soft();
	test_prefer_installed();
	test_host_reserved_and_bulk();
	test_host_untrusted();
	test_host_robust();
	test_host_offset_zone();
	return check_exit();
}
