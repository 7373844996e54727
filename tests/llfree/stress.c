/* Concurrency stress: guest threads allocate and free at every order while a
 * host thread hard-reclaims, returns, installs and soft-reclaims on the same
 * metadata through its own handle (guests also use get_at and drain).
 * Checked on every allocation and after
 * every round (all threads stopped):
 *   - no frame is handed out twice;
 *   - a child the host holds hard is never handed to the guest;
 *   - every frame from reclaimed (discarded) memory is reported for install;
 *   - the counters equal a full recount and the metadata validates.
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
	unsigned nblocks;
	struct block blocks[OWN_MAX];
};

static struct guest guests[GUESTS];
static uint64_t host_ops, host_reclaimed, host_errors;

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
		err = llfree_get(&z.ll, g->core, order, next_rand(&g->rng) & LLFREE_MOVABLE, &a);
	} else {
		err = llfree_get_at(&z.ll, g->core, next_rand(&g->rng) % FRAMES / n * n, order, &a);
		if (err == LLFREE_ENOMEM) /* taken, or counted in another core's reservation */
			return;
	}
	if (err == LLFREE_ENOMEM) {
		g->enomem++;
		return;
	}
	if (err) {
		fail("get order %u: %d", order, err);
		return;
	}
	g->gets++;
	if (a.pfn % n || a.pfn + n > FRAMES) {
		fail("get order %u returned bad pfn %lu", order, a.pfn);
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		unsigned char none = 0;

		if (!atomic_compare_exchange_strong(&owner[a.pfn + i], &none, g->core + 1))
			fail("frame %lu handed out twice (order %u, owner %u)", a.pfn + i, order,
			     none);
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
		if (next_rand(&g->rng) % 1000 == 0)
			llfree_drain(&z.ll, g->core);
		if (g->nblocks && (next_rand(&g->rng) % 100 < 45 || g->owned_frames > OWN_MAX / 2))
			guest_put(g);
		else
			guest_get(g);
	}
	return NULL;
}

/* Records children the host newly holds after a reclaim. */
static void host_track(uint64_t child, bool hard)
{
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

/* All threads stopped: counters against a recount and the expected value. */
static void check_quiescent(const char *when)
{
	uint64_t free = llfree_free_frames(&z.ll), recount = zone_recount(&z);
	uint64_t expect = FRAMES - owned_total() - held_total() * LLFREE_CHILD_FRAMES;
	char name[80];

	snprintf(name, sizeof(name), "stress %s: counters equal a recount", when);
	check(free == recount && free == expect, name, "free %lu, recount %lu, expected %lu", free,
	      recount, expect);
	snprintf(name, sizeof(name), "stress %s: metadata valid", when);
	check(llfree_validate(&z.ll) == 0, name, "see the llfree: line above");
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

int main(void)
{
	uint64_t gets = 0, puts = 0, installs = 0, enomem = 0;
	char when[32];

	if (zone_init(&z, GUESTS, 0, FRAMES, LLFREE_INIT_FREE)) {
		check(false, "stress setup", "zone_init failed");
		return check_exit();
	}
	for (unsigned i = 0; i < GUESTS; i++)
		guests[i] = (struct guest){ .core = i, .rng = 0x2545f4914f6cdd1dull * (i + 1) };
	for (unsigned round = 1; round <= ROUNDS; round++) {
		run_round();
		snprintf(when, sizeof(when), "round %u", round);
		check_quiescent(when);
	}
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
	check_quiescent("end");
	check(llfree_free_frames(&z.ll) == FRAMES, "stress end: everything free again",
	      "free %lu of %u", llfree_free_frames(&z.ll), FRAMES);
	for (unsigned i = 0; i < GUESTS; i++) {
		gets += guests[i].gets;
		puts += guests[i].puts;
		installs += guests[i].installs;
		enomem += guests[i].enomem;
	}
	printf("# %lu gets, %lu puts, %lu installs, %lu enomem; host %lu ops, %lu reclaimed, "
	       "%lu retries\n",
	       gets, puts, installs, enomem, host_ops, host_reclaimed, host_errors);
	check(gets > 1000 && installs > 0 && host_reclaimed > 0, "stress exercised all paths",
	      "%lu gets, %lu installs, %lu reclaimed", gets, installs, host_reclaimed);
	check(!atomic_load(&errors), "stress: no frame twice, held never handed out, installs reported",
	      "%d errors, first: %s", atomic_load(&errors), first_error);
	return check_exit();
}
