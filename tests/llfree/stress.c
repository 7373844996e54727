/* Concurrency stress: guest threads allocate and free at every order while a
 * host thread hard-reclaims, returns, installs and soft-reclaims on the same
 * metadata through its own handle.  Guests also use get_at, drain their own
 * and each other's reservations, drain and retry after ENOMEM, and hand
 * blocks, or halves of blocks, to another guest that frees them from its own
 * core (cross-CPU frees; halves of huge blocks race to split the child).
 * Two phases: 2 guests on 512 MiB, then 4 guests on a zone of under 3 trees
 * (too small for reservations) that starts and ends off tree boundaries.
 * Checked on every allocation and reclaim, and after every round (all
 * threads stopped):
 *   - no frame is handed out twice;
 *   - a child the host holds hard is never handed to the guest;
 *   - a child the host just reclaimed (hard or soft) holds no frame a guest owns;
 *   - every frame from reclaimed (discarded) memory is reported for install;
 *   - the counters equal a full recount and the metadata validates.
 * A guest sets the owner of a block only after installing its reclaimed
 * children (install takes host_lock), so while the host holds host_lock after
 * a reclaim, an owned frame in that child was owned before the reclaim.
 * A phase fails if it did not exercise every path (get_at, order 10 where a
 * guest may hold one, drain, remote drain, retry, hand-over, split, soft,
 * hard and bulk reclaim, install).
 * Built plain, with ThreadSanitizer and with ASan+UBSan. */
#include "check.h"
#include "zone.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_GUESTS 4
#define MAX_FRAMES (512u * 256)                  /* 512 MiB, 32 trees */
#define MAX_CHILDREN (MAX_FRAMES / LLFREE_CHILD_FRAMES + LLFREE_TREE_CHILDREN)
#define MAX_OWN (MAX_FRAMES / 3 / 2)             /* blocks a guest keeps at most */
#define INBOX 64
#define ROUNDS 4
#define MAX_ROUNDS 12
#define ROUND_MS 600

/* The phase's zone. */
static struct zone z;
static unsigned nguests;
static uint64_t zstart, nframes, nchildren, own_max;

static atomic_uchar owner[MAX_FRAMES];      /* guest + 1 holding the frame, by pfn - zstart */
static atomic_uchar held[MAX_CHILDREN];     /* host holds the child hard */
static atomic_uchar discarded[MAX_CHILDREN]; /* memory gone until installed */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER; /* one user of z.host */
static atomic_int stop;
static atomic_int errors;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];

struct block {
	uint64_t pfn;
	unsigned order;
};

/* Blocks handed to a guest by another one, to be freed by it. */
struct inbox {
	pthread_mutex_t lock;
	unsigned n;
	uint64_t frames;
	struct block blocks[INBOX];
};

struct guest {
	unsigned core;
	uint64_t rng, owned_frames, gets, puts, enomem, installs;
	uint64_t gets_at, gets_max_order, drains, remote_drains, retries, retried_gets;
	uint64_t handed, split;
	unsigned nblocks;
	struct block blocks[MAX_OWN];
};

static struct guest guests[MAX_GUESTS];
static struct inbox inboxes[MAX_GUESTS];
static uint64_t host_ops, host_reclaimed, host_errors, host_soft, host_hard, host_bulk;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&errors, 1))
		return;
	pthread_mutex_lock(&report_lock);
	va_start(ap, fmt);
	vsnprintf(first_error, sizeof(first_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&report_lock);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static atomic_uchar *owner_of(uint64_t pfn)
{
	return pfn >= zstart && pfn < zstart + nframes ? &owner[pfn - zstart] : NULL;
}

/* Moves the frames of b from guest `from` + 1 to `to` (0: nobody). */
static void set_owner(struct block b, unsigned char from, unsigned char to)
{
	for (uint64_t f = 0; f < 1ull << b.order; f++) {
		unsigned char was = from;

		if (!atomic_compare_exchange_strong(owner_of(b.pfn + f), &was, to))
			fail("frame %lu owned by %u, not %u", b.pfn + f, was, from);
	}
}

static void install(uint64_t child)
{
	int r;

	pthread_mutex_lock(&host_lock);
	atomic_store(&discarded[child], 0); /* before `reclaimed` is cleared */
	r = llfree_host_install(&z.host, child);
	pthread_mutex_unlock(&host_lock);
	if (r < 0)
		fail("install of child %lu: %d", child, r);
}

static void guest_get(struct guest *g)
{
	static const unsigned char orders[] = { 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10 };
	unsigned order = orders[next_rand(&g->rng) % sizeof(orders)];
	uint64_t n = 1ull << order, first;
	struct llfree_alloc a;
	int err;

	if (g->owned_frames + n > own_max)
		return;
	if (next_rand(&g->rng) % 16) {
		unsigned flags = next_rand(&g->rng) & LLFREE_MOVABLE;

		err = llfree_get(&z.ll, g->core, order, flags, &a);
		if (err == LLFREE_ENOMEM) { /* perhaps only in this core's cache */
			g->enomem++;
			llfree_drain(&z.ll, g->core);
			g->drains++;
			err = llfree_get(&z.ll, g->core, order, flags, &a);
			g->retries++;
			g->retried_gets += !err;
		}
	} else {
		uint64_t pfn = (zstart + next_rand(&g->rng) % nframes) / n * n;

		err = llfree_get_at(&z.ll, g->core, pfn, order, &a);
		if (err == LLFREE_EINVAL && (pfn < zstart || pfn + n > zstart + nframes))
			return; /* the block sticks out of the zone */
		g->gets_at += !err;
	}
	if (err == LLFREE_ENOMEM) /* full, or get_at: taken */
		return;
	if (err) {
		fail("get order %u: %d", order, err);
		return;
	}
	g->gets++;
	g->gets_max_order += order == LLFREE_MAX_ORDER;
	if (a.pfn % n || a.pfn < zstart || a.pfn + n > zstart + nframes) {
		fail("get order %u returned bad pfn %lu", order, a.pfn);
		return;
	}
	first = llfree_child_of(&z.ll, a.pfn);
	for (uint64_t c = first; c < first + (order == LLFREE_MAX_ORDER ? 2 : 1); c++) {
		unsigned bit = 1u << (c - first);

		if (atomic_load(&held[c]))
			fail("child %lu held by the host was handed out", c);
		if (!(a.install & bit) && atomic_load(&discarded[c]))
			fail("frame %lu from reclaimed child %lu not reported for install",
			     a.pfn, c);
		if (a.install & bit) {
			install(c);
			g->installs++;
		}
	}
	set_owner((struct block){ a.pfn, order }, 0, (unsigned char)(g->core + 1));
	g->blocks[g->nblocks++] = (struct block){ a.pfn, order };
	g->owned_frames += n;
}

/* Hands b to another guest to free; false if its inbox is full. */
static bool hand_over(struct guest *g, struct block b)
{
	unsigned to = (g->core + 1 + (unsigned)(next_rand(&g->rng) % (nguests - 1))) % nguests;
	struct inbox *in = &inboxes[to];
	bool room;

	pthread_mutex_lock(&in->lock);
	room = in->n < INBOX;
	if (room) {
		set_owner(b, (unsigned char)(g->core + 1), (unsigned char)(to + 1));
		in->blocks[in->n++] = b;
		in->frames += 1ull << b.order;
		g->owned_frames -= 1ull << b.order;
		g->handed++;
	}
	pthread_mutex_unlock(&in->lock);
	return room;
}

/* Takes the blocks other guests handed over, while there is room. */
static void take_inbox(struct guest *g)
{
	struct inbox *in = &inboxes[g->core];

	pthread_mutex_lock(&in->lock);
	while (in->n && g->nblocks < MAX_OWN) {
		struct block b = in->blocks[--in->n];

		in->frames -= 1ull << b.order;
		g->owned_frames += 1ull << b.order;
		g->blocks[g->nblocks++] = b;
	}
	pthread_mutex_unlock(&in->lock);
}

static void put_block(struct guest *g, struct block b)
{
	int err;

	set_owner(b, (unsigned char)(g->core + 1), 0);
	g->owned_frames -= 1ull << b.order;
	err = llfree_put(&z.ll, g->core, b.pfn, b.order);
	if (err)
		fail("put %lu order %u: %d", b.pfn, b.order, err);
	g->puts++;
}

static void guest_put(struct guest *g)
{
	unsigned i = (unsigned)(next_rand(&g->rng) % g->nblocks);
	struct block b = g->blocks[i];
	uint64_t r = next_rand(&g->rng) % 8;

	g->blocks[i] = g->blocks[--g->nblocks];
	if (r == 0 && b.order && nguests > 1) {
		/* The upper half goes to another guest first: both halves of a
		 * huge block may then be freed at once, each splitting it. */
		struct block lower = { b.pfn, b.order - 1 }, upper = { b.pfn + (1ull << lower.order),
								       lower.order };

		g->split++;
		if (!hand_over(g, upper))
			put_block(g, upper);
		put_block(g, lower);
		return;
	}
	if (r == 1 && nguests > 1 && hand_over(g, b))
		return;
	put_block(g, b);
}

static void *guest_main(void *arg)
{
	struct guest *g = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t r = next_rand(&g->rng) % 1000;

		take_inbox(g);
		if (r < 2) { /* its own, or another core's (host request) */
			if (r)
				llfree_drain_remote(&z.ll, (g->core + 1) % nguests);
			else
				llfree_drain(&z.ll, g->core);
			g->drains++;
			g->remote_drains += r;
		}
		if (g->nblocks && (next_rand(&g->rng) % 100 < 45 || g->owned_frames > own_max / 2))
			guest_put(g);
		else
			guest_get(g);
	}
	return NULL;
}

/* Records children the host newly reclaimed; called with host_lock held. */
static void host_track(uint64_t child, bool hard)
{
	uint64_t first = z.ll.base + child * LLFREE_CHILD_FRAMES;

	for (uint64_t f = first; f < first + LLFREE_CHILD_FRAMES; f++) {
		atomic_uchar *o = owner_of(f);
		unsigned who = o ? atomic_load(o) : 0;

		if (!o) {
			fail("%s-reclaimed child %lu sticks out of the zone at %lu",
			     hard ? "hard" : "soft", child, f);
			break;
		}
		if (who) {
			fail("%s-reclaimed child %lu holds frame %lu owned by guest %u",
			     hard ? "hard" : "soft", child, f, who - 1);
			break;
		}
	}
	if (hard)
		atomic_store(&held[child], 1);
	atomic_store(&discarded[child], 1);
}

static void host_step(uint64_t *rng)
{
	uint64_t r = next_rand(rng), child = r / 16 % nchildren, n;
	struct llfree_range ranges[16];
	size_t nr;
	bool already;
	int err = 0, cmd = (int)(r % 8);

	pthread_mutex_lock(&host_lock);
	switch (cmd) {
	case 0:
	case 1: /* hard or soft reclaim of one child */
		err = llfree_host_reclaim(&z.host, cmd == 0, &child, &already);
		if (!err) {
			host_track(child, cmd == 0);
			host_reclaimed++;
			host_hard += cmd == 0;
			host_soft += cmd == 1;
		}
		break;
	case 2: /* bulk hard reclaim */
		err = llfree_host_reclaim_bulk(&z.host, true, 1 + r / 16 % 24, ranges, 16, &nr, &n);
		for (uint64_t c = 0; c < nchildren; c++) {
			if (llfree_host_holds(&z.host, c) && !atomic_load(&held[c]))
				host_track(c, true);
		}
		for (size_t i = 0; i < nr; i++) {
			for (uint64_t c = ranges[i].child; c < ranges[i].child + ranges[i].count; c++)
				if (c >= nchildren || !llfree_host_holds(&z.host, c))
					fail("bulk range covers child %lu not held", c);
		}
		host_reclaimed += n;
		host_bulk += n > 0;
		break;
	case 3:
	case 4:
	case 5: /* return a held child */
		for (uint64_t i = 0; i < nchildren; i++, child = (child + 1) % nchildren) {
			if (!atomic_load(&held[child]))
				continue;
			if (llfree_host_is_reclaimed(&z.host, child) != 1)
				fail("held child %lu not marked reclaimed", child);
			atomic_store(&held[child], 0); /* before the guest can see it free */
			err = llfree_host_return(&z.host, child);
			break;
		}
		break;
	case 6: /* install a child the guest has not asked for (growth ahead of use) */
		if (!atomic_load(&held[child])) {
			atomic_store(&discarded[child], 0);
			err = llfree_host_install(&z.host, child) < 0;
		}
		break;
	default:
		err = llfree_host_is_reclaimed(&z.host, child) < 0;
		break;
	}
	if (err == LLFREE_ENOMEM)
		err = 0;
	if (err == LLFREE_ERETRY) /* heavy contention: allowed, counted */
		host_errors++, err = 0;
	pthread_mutex_unlock(&host_lock);
	if (err)
		fail("host op %d: %d", cmd, err);
	host_ops++;
}

static void *host_main(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		host_step(&rng);
	return NULL;
}

/* Frames the guests own, handed-over ones included. */
static uint64_t owned_total(void)
{
	uint64_t frames = 0;

	for (unsigned i = 0; i < nguests; i++)
		frames += guests[i].owned_frames + inboxes[i].frames;
	return frames;
}

static uint64_t held_total(void)
{
	uint64_t held_children = 0;

	for (uint64_t c = 0; c < nchildren; c++)
		held_children += llfree_host_holds(&z.host, c);
	return held_children;
}

/* All threads stopped: counters against a recount and the expected value.
 * Keeps the first problem in why. */
static void check_quiescent(const char *when, char *why, size_t size)
{
	uint64_t free = llfree_free_frames(&z.ll), recount = zone_recount(&z);
	uint64_t expect = nframes - owned_total() - held_total() * LLFREE_CHILD_FRAMES;

	if (why[0])
		return;
	if (free != recount || free != expect)
		snprintf(why, size, "%s: free %lu, recount %lu, expected %lu", when, free, recount,
			 expect);
	else if (llfree_validate(&z.ll))
		snprintf(why, size, "%s: metadata invalid, see the llfree: line above", when);
}

static void run_round(void)
{
	pthread_t threads[MAX_GUESTS + 1];
	struct timespec ts = { ROUND_MS / 1000, ROUND_MS % 1000 * 1000000L };

	atomic_store(&stop, 0);
	for (unsigned i = 0; i < nguests; i++)
		pthread_create(&threads[i], NULL, guest_main, &guests[i]);
	pthread_create(&threads[nguests], NULL, host_main, NULL);
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (unsigned i = 0; i <= nguests; i++)
		pthread_join(threads[i], NULL);
}

struct totals {
	uint64_t gets, puts, installs, enomem, at, max_order, drains, remote_drains, retries,
		retried_gets, handed, split;
};

static struct totals guest_totals(void)
{
	struct totals t = { 0 };

	for (unsigned i = 0; i < nguests; i++) {
		t.gets += guests[i].gets;
		t.puts += guests[i].puts;
		t.installs += guests[i].installs;
		t.enomem += guests[i].enomem;
		t.at += guests[i].gets_at;
		t.max_order += guests[i].gets_max_order;
		t.drains += guests[i].drains;
		t.remote_drains += guests[i].remote_drains;
		t.retries += guests[i].retries;
		t.retried_gets += guests[i].retried_gets;
		t.handed += guests[i].handed;
		t.split += guests[i].split;
	}
	return t;
}

/* Names the paths this phase has not taken yet, into buf (empty once all were). */
static void missed_paths(char *buf, size_t size)
{
	struct totals t = guest_totals();
	const char *const names[] = { "get_at", "order 10", "drain", "remote drain",
				      "retry after drain", "hand-over", "split", "install",
				      "hard reclaim", "soft reclaim", "bulk reclaim" };
	const uint64_t counts[] = { t.at, own_max < 1024 || t.max_order, t.drains,
				    t.remote_drains, t.retries, t.handed, t.split, t.installs,
				    host_hard, host_soft, host_bulk };
	size_t len = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]) && len < size; i++)
		if (!counts[i])
			len += snprintf(buf + len, size - len, " %s", names[i]);
}

/* One phase: five checks, named with its label. */
static void run_phase(const char *label, unsigned guests_n, uint64_t start, uint64_t frames)
{
	char when[32], missed[160] = "", rounds_bad[256] = "", end_bad[256] = "", name[160];
	struct totals t;
	unsigned round;

	nguests = guests_n;
	zstart = start;
	nframes = frames;
	own_max = frames / 3 / guests_n;
	memset(guests, 0, sizeof(guests));
	memset(held, 0, sizeof(held));
	memset(discarded, 0, sizeof(discarded));
	host_ops = host_reclaimed = host_errors = host_soft = host_hard = host_bulk = 0;
	if (zone_init(&z, guests_n, start, frames, LLFREE_INIT_FREE)) {
		fail("%s: zone_init failed", label);
		return;
	}
	nchildren = llfree_host_children(&z.host);
	for (unsigned i = 0; i < nguests; i++) {
		guests[i] = (struct guest){ .core = i, .rng = 0x2545f4914f6cdd1dull * (i + 1) };
		inboxes[i].n = 0;
		inboxes[i].frames = 0;
		pthread_mutex_init(&inboxes[i].lock, NULL);
	}
	/* ROUNDS, and more (a slow sanitizer build) until every path ran */
	for (round = 1; round <= ROUNDS || (missed[0] && round <= MAX_ROUNDS); round++) {
		run_round();
		snprintf(when, sizeof(when), "round %u", round);
		check_quiescent(when, rounds_bad, sizeof(rounds_bad));
		missed_paths(missed, sizeof(missed));
	}
	snprintf(name, sizeof(name), "stress %s: after every round the counters equal a recount "
		 "and the metadata validates", label);
	check(!rounds_bad[0], name, "%s", rounds_bad);
	/* Give everything back. */
	for (unsigned i = 0; i < nguests; i++) {
		do {
			take_inbox(&guests[i]);
			while (guests[i].nblocks)
				put_block(&guests[i], guests[i].blocks[--guests[i].nblocks]);
		} while (inboxes[i].n);
		llfree_drain(&z.ll, i);
	}
	for (uint64_t c = 0; c < nchildren; c++) {
		if (llfree_host_holds(&z.host, c) && llfree_host_return(&z.host, c))
			fail("final return of %lu", c);
	}
	check_quiescent("end", end_bad, sizeof(end_bad));
	snprintf(name, sizeof(name), "stress %s end: counters equal a recount, metadata valid",
		 label);
	check(!end_bad[0], name, "%s", end_bad);
	snprintf(name, sizeof(name), "stress %s end: everything free again", label);
	check(llfree_free_frames(&z.ll) == frames, name, "free %lu of %lu",
	      llfree_free_frames(&z.ll), frames);
	t = guest_totals();
	printf("# %s, %u rounds: %lu gets (%lu get_at, %lu order 10), %lu puts, %lu handed over, "
	       "%lu split, %lu installs, %lu enomem, %lu drains (%lu remote), %lu retries (%lu got); "
	       "host %lu ops, %lu reclaimed (%lu hard, %lu soft, %lu bulk calls), %lu ERETRY\n",
	       label, round - 1, t.gets, t.at, t.max_order, t.puts, t.handed, t.split, t.installs,
	       t.enomem, t.drains, t.remote_drains, t.retries, t.retried_gets, host_ops,
	       host_reclaimed, host_hard, host_soft, host_bulk, host_errors);
	snprintf(name, sizeof(name), "stress %s exercised every path", label);
	check(t.gets > 1000 && !missed[0], name, "%lu gets; never took:%s", t.gets, missed);
	snprintf(name, sizeof(name), "stress %s: no frame twice, held never handed out, reclaimed "
		 "children hold no owned frame, installs reported", label);
	check(!atomic_load(&errors), name, "%d errors, first: %s", atomic_load(&errors),
	      first_error);
	zone_free(&z);
}

/* Split race: two cores free interleaved order-3 parts of one order-9 block
 * at the same moment, so both find the child huge and split it. */
static pthread_barrier_t split_barrier;
static atomic_uint_fast64_t split_go, split_pfn;
static atomic_int split_stop;

/* Core 1's half; the main thread frees core 0's. */
static void *split_main(void *arg)
{
	for (uint64_t iter = 1;; iter++) {
		pthread_barrier_wait(&split_barrier); /* block allocated, or stop */
		if (atomic_load(&split_stop))
			return NULL;
		while (atomic_load(&split_go) != iter)
			;
		for (uint64_t f = 8; f < LLFREE_CHILD_FRAMES; f += 16) {
			int err = llfree_put(&z.ll, 1, atomic_load(&split_pfn) + f, 3);

			if (err)
				fail("split race: put of frame %lu: %d", f, err);
		}
		pthread_barrier_wait(&split_barrier); /* both done */
	}
}

static void split_race(void)
{
	struct timespec start, now;
	pthread_t other;
	uint64_t iters = 0;
	char why[sizeof(first_error)] = "";
	struct llfree_alloc a;

	atomic_store(&errors, 0);
	zone_init(&z, 2, 0, 4 * LLFREE_TREE_FRAMES, LLFREE_INIT_FREE);
	pthread_barrier_init(&split_barrier, NULL, 2);
	pthread_create(&other, NULL, split_main, NULL);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		if (llfree_get(&z.ll, 0, 9, 0, &a)) {
			snprintf(why, sizeof(why), "get order 9 failed");
			break;
		}
		atomic_store(&split_pfn, a.pfn);
		pthread_barrier_wait(&split_barrier);
		atomic_store(&split_go, ++iters);
		for (uint64_t f = 0; f < LLFREE_CHILD_FRAMES; f += 16)
			if (llfree_put(&z.ll, 0, a.pfn + f, 3))
				fail("split race: put of frame %lu", f);
		pthread_barrier_wait(&split_barrier);
		if (llfree_validate(&z.ll) || !llfree_is_free(&z.ll, a.pfn, 9))
			snprintf(why, sizeof(why), "after %lu races the child is not free and valid",
				 iters);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!why[0] && !atomic_load(&errors) &&
		 (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 <
			 ROUND_MS);
	atomic_store(&split_stop, 1);
	pthread_barrier_wait(&split_barrier);
	pthread_join(other, NULL);
	if (!why[0] && atomic_load(&errors))
		snprintf(why, sizeof(why), "%s", first_error);
	printf("# split race: %lu rounds\n", iters);
	check(!why[0] && iters >= 100, "stress: two cores split one huge block at once",
	      "%lu rounds: %s", iters, why);
	pthread_barrier_destroy(&split_barrier);
	zone_free(&z);
}

int main(void)
{
	plan(11);
	split_race();
	run_phase("2 guests, 512 MiB", 2, 0, MAX_FRAMES);
	/* Starts 300 frames into a tree, ends 700 frames into the third. */
	run_phase("4 guests, small zone", MAX_GUESTS, 5 * 1024 + 300,
		  2 * LLFREE_TREE_FRAMES + 400);
	return check_exit();
}
