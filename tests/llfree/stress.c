/* Concurrency stress: guest threads allocate and free at every order while a
 * host thread hard-reclaims, returns, installs and soft-reclaims on the same
 * metadata through its own handle (guests also use get_at, drain their own
 * and each other's reservations, and drain and retry after ENOMEM).  Checked on every allocation and reclaim, and after
 * every round (all threads stopped):
 *   - no frame is handed out twice;
 *   - a child the host holds hard is never handed to the guest;
 *   - a child the host just reclaimed (hard or soft) holds no frame a guest owns;
 *   - every frame from reclaimed (discarded) memory is reported for install;
 *   - the counters equal a full recount and the metadata validates.
 * A guest sets the owner of a block only after installing its reclaimed
 * children (install takes host_lock), so while the host holds host_lock after
 * a reclaim, an owned frame in that child was owned before the reclaim.
 * The run fails if it did not exercise every path (get_at, order 10, drain,
 * retry, soft, hard and bulk reclaim, install).
 * Built plain, with ThreadSanitizer and with ASan+UBSan. */
#include "check.h"
#include "zone.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define GUESTS 2
#define FRAMES (512u * 256)                     /* 512 MiB, 32 trees */
#define CHILDREN (FRAMES / LLFREE_CHILD_FRAMES)
#define OWN_MAX (FRAMES / 3 / GUESTS)           /* frames a guest keeps at most */
#define ROUNDS 4
#define MAX_ROUNDS 12
#define ROUND_MS 600

static struct zone z;
static atomic_uchar owner[FRAMES];      /* guest thread + 1 holding the frame */
static atomic_uchar held[CHILDREN];     /* host holds the child hard */
static atomic_uchar discarded[CHILDREN]; /* memory gone until installed */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER; /* one user of z.host */
static atomic_int stop;
static atomic_int errors;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];

struct block {
	uint64_t pfn;
	unsigned order;
};

struct guest {
	unsigned core;
	uint64_t rng, owned_frames, gets, puts, enomem, installs;
	uint64_t gets_at, gets_max_order, drains, remote_drains, retries, retried_gets;
	unsigned nblocks;
	struct block blocks[OWN_MAX];
};

static struct guest guests[GUESTS];
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

	if (g->owned_frames + n > OWN_MAX)
		return;
	if (next_rand(&g->rng) % 16) {
		unsigned flags = next_rand(&g->rng) & LLFREE_MOVABLE;

		err = llfree_get(&z.ll, g->core, order, flags, &a);
		if (err == LLFREE_ENOMEM) { /* perhaps only in this core's reservations */
			g->enomem++;
			llfree_drain(&z.ll, g->core);
			g->drains++;
			err = llfree_get(&z.ll, g->core, order, flags, &a);
			g->retries++;
			g->retried_gets += !err;
		}
	} else {
		err = llfree_get_at(&z.ll, g->core, next_rand(&g->rng) % FRAMES / n * n, order, &a);
		g->gets_at += !err;
	}
	if (err == LLFREE_ENOMEM) /* full, or get_at: taken or in another core's reservation */
		return;
	if (err) {
		fail("get order %u: %d", order, err);
		return;
	}
	g->gets++;
	g->gets_max_order += order == LLFREE_MAX_ORDER;
	if (a.pfn % n || a.pfn + n > FRAMES) {
		fail("get order %u returned bad pfn %lu", order, a.pfn);
		return;
	}
	first = a.pfn / LLFREE_CHILD_FRAMES;
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
	for (uint64_t i = 0; i < n; i++) {
		unsigned char none = 0;

		if (!atomic_compare_exchange_strong(&owner[a.pfn + i], &none, g->core + 1))
			fail("frame %lu handed out twice (order %u, owner %u)", a.pfn + i, order,
			     none);
	}
	g->blocks[g->nblocks++] = (struct block){ a.pfn, order };
	g->owned_frames += n;
}

static void guest_put(struct guest *g)
{
	unsigned i = (unsigned)(next_rand(&g->rng) % g->nblocks);
	struct block b = g->blocks[i];
	int err;

	g->blocks[i] = g->blocks[--g->nblocks];
	for (uint64_t f = 0; f < 1ull << b.order; f++) {
		unsigned char mine = (unsigned char)(g->core + 1);

		if (!atomic_compare_exchange_strong(&owner[b.pfn + f], &mine, 0))
			fail("frame %lu owned by %u, not %u", b.pfn + f, mine, g->core + 1);
	}
	g->owned_frames -= 1ull << b.order;
	err = llfree_put(&z.ll, g->core, b.pfn, b.order);
	if (err)
		fail("put %lu order %u: %d", b.pfn, b.order, err);
	g->puts++;
}

static void *guest_main(void *arg)
{
	struct guest *g = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t r = next_rand(&g->rng) % 1000;

		if (r < 2) { /* its own, or another core's (CPU unplug, host request) */
			if (r)
				llfree_drain_remote(&z.ll, (g->core + 1) % GUESTS);
			else
				llfree_drain(&z.ll, g->core);
			g->drains++;
			g->remote_drains += r;
		}
		if (g->nblocks && (next_rand(&g->rng) % 100 < 45 || g->owned_frames > OWN_MAX / 2))
			guest_put(g);
		else
			guest_get(g);
	}
	return NULL;
}

/* Records children the host newly reclaimed; called with host_lock held. */
static void host_track(uint64_t child, bool hard)
{
	for (uint64_t f = child * LLFREE_CHILD_FRAMES; f < (child + 1) * LLFREE_CHILD_FRAMES; f++) {
		unsigned who = atomic_load(&owner[f]);

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
	uint64_t r = next_rand(rng), child = r / 16 % CHILDREN, n;
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
		for (uint64_t c = 0; c < CHILDREN; c++) {
			if (llfree_host_holds(&z.host, c) && !atomic_load(&held[c]))
				host_track(c, true);
		}
		for (size_t i = 0; i < nr; i++) {
			for (uint64_t c = ranges[i].child; c < ranges[i].child + ranges[i].count; c++)
				if (c >= CHILDREN || !llfree_host_holds(&z.host, c))
					fail("bulk range covers child %lu not held", c);
		}
		host_reclaimed += n;
		host_bulk += n > 0;
		break;
	case 3:
	case 4:
	case 5: /* return a held child */
		for (uint64_t i = 0; i < CHILDREN; i++, child = (child + 1) % CHILDREN) {
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

static uint64_t owned_total(void)
{
	uint64_t frames = 0;

	for (unsigned i = 0; i < GUESTS; i++)
		frames += guests[i].owned_frames;
	return frames;
}

static uint64_t held_total(void)
{
	uint64_t held_children = 0;

	for (uint64_t c = 0; c < CHILDREN; c++)
		held_children += llfree_host_holds(&z.host, c);
	return held_children;
}

/* All threads stopped: counters against a recount and the expected value.
 * Keeps the first problem in why. */
static void check_quiescent(const char *when, char *why, size_t size)
{
	uint64_t free = llfree_free_frames(&z.ll), recount = zone_recount(&z);
	uint64_t expect = FRAMES - owned_total() - held_total() * LLFREE_CHILD_FRAMES;

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
	pthread_t threads[GUESTS + 1];
	struct timespec ts = { ROUND_MS / 1000, ROUND_MS % 1000 * 1000000L };

	atomic_store(&stop, 0);
	for (unsigned i = 0; i < GUESTS; i++)
		pthread_create(&threads[i], NULL, guest_main, &guests[i]);
	pthread_create(&threads[GUESTS], NULL, host_main, NULL);
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (unsigned i = 0; i <= GUESTS; i++)
		pthread_join(threads[i], NULL);
}

struct totals {
	uint64_t gets, puts, installs, enomem, at, max_order, drains, remote_drains, retries,
		retried_gets;
};

static struct totals guest_totals(void)
{
	struct totals t = { 0 };

	for (unsigned i = 0; i < GUESTS; i++) {
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
	}
	return t;
}

/* Names the paths this run has not taken yet, into buf (empty once all were). */
static void missed_paths(char *buf, size_t size)
{
	struct totals t = guest_totals();
	const char *const names[] = { "get_at", "order 10", "drain", "remote drain",
				      "retry after drain", "install", "hard reclaim", "soft reclaim",
				      "bulk reclaim" };
	const uint64_t counts[] = { t.at, t.max_order, t.drains, t.remote_drains, t.retries,
				    t.installs, host_hard, host_soft, host_bulk };
	size_t len = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]) && len < size; i++)
		if (!counts[i])
			len += snprintf(buf + len, size - len, " %s", names[i]);
}

int main(void)
{
	char when[32], missed[160] = "", rounds_bad[256] = "", end_bad[256] = "";
	struct totals t;
	unsigned round;

	plan(5);
	if (zone_init(&z, GUESTS, 0, FRAMES, LLFREE_INIT_FREE)) {
		check(false, "stress setup", "zone_init failed");
		return check_exit();
	}
	for (unsigned i = 0; i < GUESTS; i++)
		guests[i] = (struct guest){ .core = i, .rng = 0x2545f4914f6cdd1dull * (i + 1) };
	/* ROUNDS, and more (a slow sanitizer build) until every path ran */
	for (round = 1; round <= ROUNDS || (missed[0] && round <= MAX_ROUNDS); round++) {
		run_round();
		snprintf(when, sizeof(when), "round %u", round);
		check_quiescent(when, rounds_bad, sizeof(rounds_bad));
		missed_paths(missed, sizeof(missed));
	}
	check(!rounds_bad[0], "stress: after every round the counters equal a recount and the "
	      "metadata validates", "%s", rounds_bad);
	/* Give everything back. */
	for (unsigned i = 0; i < GUESTS; i++) {
		while (guests[i].nblocks)
			guest_put(&guests[i]);
		llfree_drain(&z.ll, i);
	}
	for (uint64_t c = 0; c < CHILDREN; c++) {
		if (llfree_host_holds(&z.host, c) && llfree_host_return(&z.host, c))
			fail("final return of %lu", c);
	}
	check_quiescent("end", end_bad, sizeof(end_bad));
	check(!end_bad[0], "stress end: counters equal a recount, metadata valid", "%s", end_bad);
	check(llfree_free_frames(&z.ll) == FRAMES, "stress end: everything free again",
	      "free %lu of %u", llfree_free_frames(&z.ll), FRAMES);
	t = guest_totals();
	printf("# %u rounds: %lu gets (%lu get_at, %lu order 10), %lu puts, %lu installs, "
	       "%lu enomem, %lu drains, %lu retries (%lu got); host %lu ops, %lu reclaimed (%lu hard, "
	       "%lu soft, %lu bulk calls), %lu ERETRY\n",
	       round - 1, t.gets, t.at, t.max_order, t.puts, t.installs, t.enomem, t.drains,
	       t.retries, t.retried_gets, host_ops, host_reclaimed, host_hard, host_soft, host_bulk, host_errors);
	check(t.gets > 1000 && !missed[0], "stress exercised every path",
	      "%lu gets; never took:%s", t.gets, missed);
	check(!atomic_load(&errors),
	      "stress: no frame twice, held never handed out, reclaimed children hold no owned "
	      "frame, installs reported",
	      "%d errors, first: %s", atomic_load(&errors), first_error);
	return check_exit();
}
