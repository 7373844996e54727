/* QEMU-internal phase timing: libbpf USDT programs on a running QEMU of ours.
 *
 * A phase starts when QEMU handles the resize request and ends when the device
 * reports the target reached:
 *   virtio-balloon  virtio_balloon_to_target (num_pages) ->
 *                   virtio_balloon_actual_bytes with balloon_bytes == target_bytes
 *   virtio-mem      virtio_mem_set_requested_size (new_size) ->
 *                   virtio_mem_size_change with new_size == the requested size
 *   virtio-hyperalloc  hyperalloc_resize_start (target_bytes) ->
 *                   hyperalloc_resize_end (one synchronous call; reached: its argument)
 * A request that leaves the device where it is (no change to make) has no end;
 * the next request closes it as not reached. One device of each kind is assumed. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "common.h"
#include "qemu_usdt.h"
#include "stats.h"
#include "qemu_usdt.skel.h"

_Static_assert(QEMU_USDT_NR <= QEMU_USDT_MAX_EVENTS, "raise QEMU_USDT_MAX_EVENTS");

/* How an event is taken: sent to user space, counted, counted by a program
 * of its own, counted only with QEMU_USDT_PER_PAGE, or derived (no probe). */
enum mode { RECORD, COUNT, CONFIG, REQUEST, RESPONSE, INSTALL_START, INSTALL_END, PER_PAGE,
	    DERIVED };

static const struct {
	const char *name;
	enum mode mode;
	int sum_arg; /* argument summed into the total, -1: none */
} events[QEMU_USDT_NR] = {
	[QEMU_BALLOON_EVENT] = { "balloon_event", RECORD, -1 },
	[QEMU_BALLOON_TO_TARGET] = { "virtio_balloon_to_target", RECORD, -1 },
	[QEMU_BALLOON_ACTUAL_BYTES] = { "virtio_balloon_actual_bytes", RECORD, -1 },
	[QEMU_BALLOON_FREE_PAGE_REPORT] = { "virtio_balloon_free_page_report", RECORD, 2 },
	[QEMU_MEM_SET_REQUESTED_SIZE] = { "virtio_mem_set_requested_size", RECORD, -1 },
	[QEMU_MEM_SIZE_CHANGE] = { "virtio_mem_size_change", RECORD, -1 },
	[QEMU_BALLOON_SET_CONFIG] = { "virtio_balloon_set_config", CONFIG, -1 },
	[QEMU_MEM_PLUG_REQUEST] = { "virtio_mem_plug_request", REQUEST, 1 },
	[QEMU_MEM_UNPLUG_REQUEST] = { "virtio_mem_unplug_request", REQUEST, 1 },
	[QEMU_MEM_SEND_RESPONSE] = { "virtio_mem_send_response", RESPONSE, -1 },
	[QEMU_BALLOON_PAGE] = { "virtio_balloon_handle_output", PER_PAGE, -1 },
	[QEMU_DISCARD] = { "ram_block_discard_range", PER_PAGE, 2 },
	[QEMU_HA_RESIZE_START] = { "hyperalloc_resize_start", RECORD, -1 },
	[QEMU_HA_RESIZE_END] = { "hyperalloc_resize_end", RECORD, -1 },
	[QEMU_HA_DISCARD] = { "hyperalloc_discard", COUNT, 1 },
	[QEMU_HA_INSTALL_START] = { "hyperalloc_install_start", INSTALL_START, -1 },
	[QEMU_HA_INSTALL_END] = { "hyperalloc_install_end", INSTALL_END, -1 },
	[QEMU_HA_POPULATE] = { "hyperalloc_populate", COUNT, 1 },
	[QEMU_DISCARD_SYSCALL] = { "discard_syscall", DERIVED, -1 },
	[QEMU_MEM_REQUEST] = { "virtio_mem_request", DERIVED, -1 },
	[QEMU_HA_INSTALL] = { "hyperalloc_install", DERIVED, -1 },
};

static const struct {
	const char *name, *unit;
} hists[QEMU_HIST_NR] = {
	[QEMU_HIST_MEM_REQUEST_NS] = { "qemu:virtio_mem_request", "ns" },
	[QEMU_HIST_BALLOON_PAGES] = { "qemu:balloon_pages_per_request", "pages" },
	[QEMU_HIST_DISCARD_BYTES] = { "qemu:ram_block_discard_range", "bytes" },
	[QEMU_HIST_HA_INSTALL_NS] = { "qemu:hyperalloc_install", "ns" },
};

/* A phase under way: its start record's totals, to subtract at the end. */
struct pending {
	bool active;
	uint64_t start_ns, target_bytes;
	struct qemu_usdt_total start_totals[QEMU_USDT_NR];
};

struct qemu_usdt {
	struct qemu_usdt_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *links[QEMU_USDT_NR];
	struct bpf_link *discard_links[4];
	struct qemu_usdt_handlers h;
	struct pending balloon, mem, hyperalloc;
};

const char *qemu_usdt_name(enum qemu_usdt_event event)
{
	return event < QEMU_USDT_NR ? events[event].name : "?";
}

/* A .note.stapsdt entry: pc, base and semaphore addresses, then
 * "provider\0name\0args\0". */
static void mark_probe(const char *desc, size_t len, bool present[QEMU_USDT_NR])
{
	const char *provider = desc + 24, *name;

	if (len <= 24 || !memchr(provider, 0, len - 24))
		return;
	name = provider + strlen(provider) + 1;
	if (strcmp(provider, "qemu") || name >= desc + len || !memchr(name, 0, desc + len - name))
		return;
	for (int e = 0; e < QEMU_USDT_PROBES; e++)
		if (!strcmp(name, events[e].name))
			present[e] = true;
}

/* qemu_usdt_find without printing: a bad file is explained in err. */
static int find_probes(const char *binary, bool present[QEMU_USDT_NR], char *err, size_t len)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	int fd, n = 0;
	Elf *elf;

	memset(present, 0, QEMU_USDT_NR * sizeof(*present));
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, len, "libelf: %s", elf_errmsg(-1));
		return -EINVAL;
	}
	fd = open(binary, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		n = -errno;
		snprintf(err, len, "%s: %s", binary, strerror(errno));
		return n;
	}
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || elf_getshdrstrndx(elf, &shstrndx)) {
		snprintf(err, len, "%s: not an ELF executable", binary);
		if (elf)
			elf_end(elf);
		close(fd);
		return -ENOEXEC;
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shdr;
		Elf_Data *data;
		GElf_Nhdr nhdr;
		size_t off = 0, name_off, desc_off;
		const char *secname;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		secname = elf_strptr(elf, shstrndx, shdr.sh_name);
		if (!secname || strcmp(secname, ".note.stapsdt") || !(data = elf_getdata(scn, NULL)))
			continue;
		while ((off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0)
			if (nhdr.n_type == 3 && nhdr.n_namesz == sizeof("stapsdt") &&
			    !memcmp((char *)data->d_buf + name_off, "stapsdt", sizeof("stapsdt")))
				mark_probe((char *)data->d_buf + desc_off, nhdr.n_descsz, present);
	}
	elf_end(elf);
	close(fd);
	for (int e = 0; e < QEMU_USDT_PROBES; e++)
		n += present[e];
	return n;
}

int qemu_usdt_find(const char *binary, bool present[QEMU_USDT_NR])
{
	char err[PATH_MAX + 64];
	int n = find_probes(binary, present, err, sizeof(err));

	if (n < 0)
		ht_err("%s", err);
	return n;
}

const char *qemu_usdt_unavailable(const char *binary, char *why, size_t len)
{
	bool present[QEMU_USDT_NR];
	int n = find_probes(binary, present, why, len);

	if (n < 0)
		return why;
	if (n == 0) {
		snprintf(why, len, "%s has no QEMU USDT probes (not hatrace's QEMU build, see "
			 "make qemu)", binary);
		return why;
	}
	for (int e = 0; e < QEMU_USDT_PROBES; e++)
		if (!present[e]) {
			snprintf(why, len, "%s lacks the USDT probe qemu:%s (an older hatrace QEMU "
				 "build?)", binary, events[e].name);
			return why;
		}
	return NULL;
}

static void start_phase(struct pending *p, const struct qemu_usdt_record *r, uint64_t target,
			const char *device, const struct qemu_usdt_handlers *h)
{
	if (p->active && h->phase) {
		struct qemu_phase unfinished = { .device = device, .start_ns = p->start_ns,
						 .target_bytes = p->target_bytes };

		h->phase(h->ctx, &unfinished);
	}
	p->active = true;
	p->start_ns = r->time_ns;
	p->target_bytes = target;
	memcpy(p->start_totals, r->totals, sizeof(p->start_totals));
}

static void end_phase(struct pending *p, const struct qemu_usdt_record *r, const char *device,
		      bool reached, const struct qemu_usdt_handlers *h)
{
	struct qemu_phase done = { .device = device, .reached = reached, .start_ns = p->start_ns,
				   .end_ns = r->time_ns, .target_bytes = p->target_bytes };

	for (int e = 0; e < QEMU_USDT_NR; e++) {
		done.work[e].count = r->totals[e].count - p->start_totals[e].count;
		done.work[e].sum = r->totals[e].sum - p->start_totals[e].sum;
		done.work[e].ns = r->totals[e].ns - p->start_totals[e].ns;
	}
	p->active = false;
	if (h->phase)
		h->phase(h->ctx, &done);
}

static int on_record(void *ctx, void *data, size_t len)
{
	struct qemu_usdt *u = ctx;
	const struct qemu_usdt_record *r = data;

	if (len < sizeof(*r) || r->event >= QEMU_USDT_NR)
		return 0;
	if (u->h.record)
		u->h.record(u->h.ctx, r->event, r);
	switch (r->event) {
	case QEMU_BALLOON_TO_TARGET:
		start_phase(&u->balloon, r, r->args[1] << 12, "virtio-balloon", &u->h);
		break;
	case QEMU_BALLOON_ACTUAL_BYTES:
		if (u->balloon.active && r->args[0] == u->balloon.target_bytes &&
		    r->args[1] == u->balloon.target_bytes)
			end_phase(&u->balloon, r, "virtio-balloon", true, &u->h);
		break;
	case QEMU_MEM_SET_REQUESTED_SIZE:
		start_phase(&u->mem, r, r->args[1], "virtio-mem", &u->h);
		break;
	case QEMU_MEM_SIZE_CHANGE:
		if (u->mem.active && r->args[1] == u->mem.target_bytes)
			end_phase(&u->mem, r, "virtio-mem", true, &u->h);
		break;
	case QEMU_HA_RESIZE_START:
		start_phase(&u->hyperalloc, r, r->args[0], "virtio-hyperalloc", &u->h);
		break;
	case QEMU_HA_RESIZE_END:
		/* the device's word: no target left unreached (a guest not registered, or
		 * too few free children) */
		if (u->hyperalloc.active)
			end_phase(&u->hyperalloc, r, "virtio-hyperalloc", r->args[2] != 0, &u->h);
		break;
	default:
		break;
	}
	return 0;
}

void qemu_usdt_detach(struct qemu_usdt *u)
{
	if (!u)
		return;
	ring_buffer__free(u->rb);
	for (int e = 0; e < QEMU_USDT_NR; e++)
		bpf_link__destroy(u->links[e]);
	for (size_t i = 0; i < ARRAY_SIZE(u->discard_links); i++)
		bpf_link__destroy(u->discard_links[i]);
	qemu_usdt_bpf__destroy(u->skel);
	free(u);
}

struct qemu_usdt *qemu_usdt_attach(int pid, const char *binary, unsigned flags,
				   const struct qemu_usdt_handlers *h)
{
	char exe[PATH_MAX], proc_exe[64], why[PATH_MAX + 128];
	struct qemu_usdt *u;
	ssize_t n;
	int err;

	if (!binary) {
		snprintf(proc_exe, sizeof(proc_exe), "/proc/%d/exe", pid);
		n = readlink(proc_exe, exe, sizeof(exe) - 1);
		if (n < 0) {
			ht_err("QEMU process %d: %s", pid, strerror(errno));
			return NULL;
		}
		exe[n] = 0;
		binary = exe;
	}
	if (qemu_usdt_unavailable(binary, why, sizeof(why))) {
		ht_err("%s", why);
		return NULL;
	}

	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	if (h)
		u->h = *h;
	u->skel = qemu_usdt_bpf__open();
	if (!u->skel) {
		ht_err("opening the QEMU USDT programs: %s", strerror(errno));
		goto fail;
	}
	for (int e = 0; e < QEMU_USDT_MAX_EVENTS; e++)
		u->skel->rodata->sum_arg[e] = e < QEMU_USDT_NR ? events[e].sum_arg : -1;
	u->skel->rodata->qemu_tgid = pid;
	if ((err = qemu_usdt_bpf__load(u->skel))) {
		ht_err("loading the QEMU USDT programs: %s", strerror(-err));
		goto fail;
	}
	for (int e = 0; e < QEMU_USDT_PROBES; e++) {
		LIBBPF_OPTS(bpf_usdt_opts, opts, .usdt_cookie = e);
		struct bpf_program *progs[] = {
			[RECORD] = u->skel->progs.record, [COUNT] = u->skel->progs.count,
			[CONFIG] = u->skel->progs.balloon_config,
			[REQUEST] = u->skel->progs.mem_request,
			[RESPONSE] = u->skel->progs.mem_response,
			[INSTALL_START] = u->skel->progs.ha_install_start,
			[INSTALL_END] = u->skel->progs.ha_install_end, [PER_PAGE] = u->skel->progs.count,
		};

		if (events[e].mode == PER_PAGE && !(flags & QEMU_USDT_PER_PAGE))
			continue;
		/* every process of binary: the programs keep pid's hits (qemu_tgid) */
		u->links[e] = bpf_program__attach_usdt(progs[events[e].mode], -1, binary, "qemu",
						       events[e].name, &opts);
		if (!u->links[e]) {
			ht_err("attaching to qemu:%s in process %d: %s", events[e].name, pid,
			       strerror(errno));
			goto fail;
		}
	}
	if (flags & QEMU_USDT_DISCARDS) {
		struct bpf_program *tps[] = {
			u->skel->progs.discard_madvise_enter, u->skel->progs.discard_madvise_exit,
			u->skel->progs.discard_fallocate_enter, u->skel->progs.discard_fallocate_exit,
		};

		for (size_t i = 0; i < ARRAY_SIZE(tps); i++) {
			u->discard_links[i] = bpf_program__attach(tps[i]);
			if (!u->discard_links[i]) {
				ht_err("attaching %s (QEMU's discards): %s",
				       bpf_program__section_name(tps[i]), strerror(errno));
				goto fail;
			}
		}
	}
	u->rb = ring_buffer__new(bpf_map__fd(u->skel->maps.records), on_record, u, NULL);
	if (!u->rb) {
		ht_err("QEMU USDT ring buffer: %s", strerror(errno));
		goto fail;
	}
	return u;
fail:
	qemu_usdt_detach(u);
	return NULL;
}

int qemu_usdt_drain(struct qemu_usdt *u)
{
	return ring_buffer__consume(u->rb);
}

void qemu_usdt_totals(const struct qemu_usdt *u, struct qemu_usdt_total out[QEMU_USDT_NR])
{
	memcpy(out, u->skel->bss->totals, QEMU_USDT_NR * sizeof(*out));
}

void qemu_usdt_hist(const struct qemu_usdt *u, enum qemu_usdt_hist h,
		    unsigned long long out[QEMU_USDT_HIST_SLOTS])
{
	memset(out, 0, QEMU_USDT_HIST_SLOTS * sizeof(*out));
	if (h < QEMU_HIST_NR)
		memcpy(out, u->skel->bss->hists[h], QEMU_USDT_HIST_SLOTS * sizeof(*out));
}

const char *qemu_usdt_hist_name(enum qemu_usdt_hist h, const char **unit)
{
	if (h >= QEMU_HIST_NR)
		return "?";
	if (unit)
		*unit = hists[h].unit;
	return hists[h].name;
}

uint64_t qemu_usdt_drops(const struct qemu_usdt *u)
{
	return u->skel->bss->drops;
}

/* A USDT probe in hatrace itself, for qemu_usdt_hit_ns(). */
static __attribute__((noinline)) void calibration_site(void)
{
	DTRACE_PROBE(hatrace, usdt_calibration);
}

#define CALIB_CALLS 10000
#define CALIB_REPS 5

/* The median of CALIB_REPS timings of CALIB_CALLS calls of the site, ns. */
static uint64_t time_site(void)
{
	uint64_t t[CALIB_REPS];
	struct median_ci m;

	for (int r = 0; r < CALIB_REPS; r++) {
		uint64_t t0 = now_ns();

		for (int i = 0; i < CALIB_CALLS; i++)
			calibration_site();
		t[r] = now_ns() - t0;
	}
	median_ci95(t, CALIB_REPS, &m);
	return (uint64_t)m.median;
}

int qemu_usdt_hit_ns(double *ns, char *why, size_t len)
{
	LIBBPF_OPTS(bpf_usdt_opts, opts, .usdt_cookie = QEMU_BALLOON_EVENT);
	struct qemu_usdt_bpf *skel;
	struct bpf_link *link = NULL;
	char exe[PATH_MAX];
	uint64_t plain, probed;
	ssize_t n;
	int err;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		err = n < 0 ? -errno : -ENOENT;
		snprintf(why, len, "reading /proc/self/exe: %s", strerror(-err));
		return err;
	}
	exe[n] = 0;
	skel = qemu_usdt_bpf__open();
	if (!skel) {
		err = -errno;
		snprintf(why, len, "opening the USDT programs: %s", strerror(-err));
		return err;
	}
	for (int e = 0; e < QEMU_USDT_MAX_EVENTS; e++)
		skel->rodata->sum_arg[e] = -1;
	skel->rodata->qemu_tgid = getpid();
	if ((err = qemu_usdt_bpf__load(skel))) {
		snprintf(why, len, "loading the USDT programs: %s", strerror(-err));
		goto out;
	}
	plain = time_site();
	/* as on QEMU: every process of the binary, the program keeps ours */
	link = bpf_program__attach_usdt(skel->progs.count, -1, exe, "hatrace", "usdt_calibration",
					&opts);
	if (!link) {
		err = -errno;
		snprintf(why, len, "attaching to hatrace:usdt_calibration: %s", strerror(-err));
		goto out;
	}
	probed = time_site();
	if (skel->bss->totals[QEMU_BALLOON_EVENT].count != CALIB_REPS * CALIB_CALLS) {
		snprintf(why, len, "the calibration probe counted %llu of %d calls",
			 skel->bss->totals[QEMU_BALLOON_EVENT].count, CALIB_REPS * CALIB_CALLS);
		err = -EIO;
		goto out;
	}
	*ns = probed > plain ? (double)(probed - plain) / CALIB_CALLS : 0;
out:
	bpf_link__destroy(link);
	qemu_usdt_bpf__destroy(skel);
	return err;
}
