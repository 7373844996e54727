/* ht-hostile: a hostile guest driver for the real virtio-hyperalloc-pci device.
 * It takes the PCI device from the kernel (unbinds virtio-pci), maps the modern
 * virtio-pci BAR through sysfs, builds split virtqueues in locked memory (guest
 * physical addresses from /proc/self/pagemap) and sends one category of bad
 * requests, one at a time, polling the used ring (interrupts stay off: INTx
 * disabled, VRING_AVAIL_F_NO_INTERRUPT, no MSI-X vector).
 * usage: ht-hostile CATEGORY --ram-mib N   (root; RAM contiguous from 0 below 4 GiB)
 * categories:
 *   zones      malformed zone descriptors, each refused (INVALID)
 *   overlap    a good zone, then duplicates and overlaps; FINISH, then more
 *   install    installs before FINISH, of unknown zones, of children out of range
 *   notify     a request on the host's notify queue, then FINISH
 *   buffers    malformed request buffers (NEEDS_RESET), a reset before each
 *   queue      broken rings: a loop, bad next and head indexes, descriptor order,
 *              a zero-length buffer, a bad indirect table
 * Every request is reported as it was answered, next to what the protocol says
 * (kernel/uapi/virtio_hyperalloc.h and QEMU's virtio core): its status (-1: not
 * answered), whether the device then says NEEDS_RESET, whether QEMU counts it as
 * a device guest error, and the text QEMU logs for it.  The device is reset on
 * exit when a zone points into this process's memory; otherwise it is left as
 * the requests left it (NEEDS_RESET stays visible to the host).
 * result: {"workload":"ht-hostile","category","device","unbound","features",
 *          "queues","install_queues","device_status","requests":[{"what",
 *          "status","expect","needs_reset","expect_reset","counted","log"}]} */
#include "common.h"
#include "wl.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llfree_layout.h"
#include "virtio_hyperalloc.h"

#define PCI_DIR "/sys/bus/pci/devices"
#define MAX_QUEUES 8
#define NO_VECTOR 0xffff
#define NO_REPLY -1
#define WAIT_MS 1000
#define INVALID VIRTIO_HYPERALLOC_S_INVALID

/* Nothing sensible is left to do: one line on stderr, exit status 1. */
#define fatal(...)                                  \
	do {                                        \
		ht_err("ht-hostile: " __VA_ARGS__); \
		exit(1);                            \
	} while (0)

/* One split virtqueue: rings in one locked page, request buffers in another. */
struct vq {
	uint16_t size, notify_off, avail_idx, used_idx;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint8_t *buf;
	uint64_t ring_pa, buf_pa;
};

static struct {
	char bdf[64];
	const char *unbound;
	int cfg_fd;
	uint8_t *bar;
	size_t bar_len;
	uint64_t bar_pa;
	volatile struct virtio_pci_common_cfg *common;
	uint8_t *notify;
	uint32_t notify_mul;
	uint64_t features, ram_top;
	unsigned nqueues;
	struct vq vq[MAX_QUEUES];
	/* the fake zone's metadata (two zones' worth), in locked memory */
	uint8_t *meta;
	uint64_t meta_pa;
	bool zone_registered;
	json_t *requests;
} dev;

/* ---- memory the device may read and write ---- */

static uint64_t phys_addr(const void *p)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || pread(fd, &entry, 8, (uintptr_t)p / WL_PAGE * 8) != 8 || !(entry >> 63) ||
	    !(entry & ((1ull << 55) - 1)))
		fatal("no physical address in /proc/self/pagemap (root?)");
	close(fd);
	return (entry & ((1ull << 55) - 1)) * WL_PAGE + (uintptr_t)p % WL_PAGE;
}

/* A zeroed, locked page and its guest physical address. */
static void *locked_page(uint64_t *pa)
{
	void *p = mmap(NULL, WL_PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED || mlock(p, WL_PAGE))
		fatal("locked page: %m");
	memset(p, 0, WL_PAGE);
	*pa = phys_addr(p);
	return p;
}

/* ---- the PCI device ---- */

static unsigned long sysfs_ulong(const char *dir, const char *file)
{
	char path[512], text[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(text, sizeof(text), f))
		text[0] = 0;
	fclose(f);
	return strtoul(text, NULL, 0);
}

static void sysfs_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fatal("write %s to %s: %m", text, path);
	close(fd);
}

static void find_device(void)
{
	DIR *d = opendir(PCI_DIR);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char dir[512];

		snprintf(dir, sizeof(dir), PCI_DIR "/%s", e->d_name);
		if (sysfs_ulong(dir, "vendor") == 0x1af4 &&
		    sysfs_ulong(dir, "device") == 0x1040 + VIRTIO_ID_HYPERALLOC) {
			snprintf(dev.bdf, sizeof(dev.bdf), "%s", e->d_name);
			break;
		}
	}
	if (d)
		closedir(d);
	if (!dev.bdf[0])
		fatal("no virtio-hyperalloc-pci device (PCI 1af4:%04x)",
		       0x1040 + VIRTIO_ID_HYPERALLOC);
}

/* The kernel lets go of the device: virtio-pci's remove resets it and frees its
 * BAR, so that it can be mapped here. */
static void unbind_driver(void)
{
	static char driver[256];
	char path[512], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DIR "/%s/driver", dev.bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = 0;
	snprintf(driver, sizeof(driver), "%s", strrchr(target, '/') + 1);
	snprintf(path, sizeof(path), PCI_DIR "/%s/driver/unbind", dev.bdf);
	sysfs_write(path, dev.bdf);
	dev.unbound = driver;
}

static uint32_t cfg_read(unsigned off, unsigned size)
{
	uint32_t v = 0;

	if (pread(dev.cfg_fd, &v, size, off) != (ssize_t)size)
		fatal("PCI config read at %#x: %m", off);
	return v;
}

static void cfg_write16(unsigned off, uint16_t v)
{
	if (pwrite(dev.cfg_fd, &v, 2, off) != 2)
		fatal("PCI config write at %#x: %m", off);
}

static uint64_t bar_address(unsigned bar)
{
	char path[512];
	unsigned long long start = 0, end, flags;
	FILE *f;

	snprintf(path, sizeof(path), PCI_DIR "/%s/resource", dev.bdf);
	f = fopen(path, "r");
	for (unsigned i = 0; f && i <= bar; i++) {
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
			start = 0;
	}
	if (f)
		fclose(f);
	return start;
}

/* Memory and bus master on, INTx off; the virtio capabilities; BAR mapped. */
static void map_device(void)
{
	char path[512];
	unsigned ptr, bar = 0;
	uint32_t common_off = 0, notify_off = 0;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), PCI_DIR "/%s/config", dev.bdf);
	dev.cfg_fd = open(path, O_RDWR);
	if (dev.cfg_fd < 0)
		fatal("%s: %m", path);
	cfg_write16(PCI_COMMAND, cfg_read(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY |
				 PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	for (ptr = cfg_read(PCI_CAPABILITY_LIST, 1) & ~3u; ptr; ptr = cfg_read(ptr + 1, 1) & ~3u) {
		if (cfg_read(ptr, 1) != PCI_CAP_ID_VNDR)
			continue;
		switch (cfg_read(ptr + 3, 1)) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			bar = cfg_read(ptr + 4, 1);
			common_off = cfg_read(ptr + 8, 4);
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			notify_off = cfg_read(ptr + 8, 4);
			dev.notify_mul = cfg_read(ptr + 16, 4);
			break;
		}
	}
	snprintf(path, sizeof(path), PCI_DIR "/%s/resource%u", dev.bdf, bar);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0 || fstat(fd, &st))
		fatal("%s: %m", path);
	dev.bar_len = st.st_size;
	dev.bar = mmap(NULL, dev.bar_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (dev.bar == MAP_FAILED)
		fatal("mmap %s: %m", path);
	close(fd);
	dev.bar_pa = bar_address(bar);
	dev.common = (volatile struct virtio_pci_common_cfg *)(dev.bar + common_off);
	dev.notify = dev.bar + notify_off;
}

/* ---- the virtio device ---- */

static uint8_t device_status(void)
{
	return dev.common->device_status;
}

static void write64(volatile uint32_t *lo, uint64_t v)
{
	lo[0] = (uint32_t)v;
	lo[1] = (uint32_t)(v >> 32);
}

/* Reset, negotiate VERSION_1 (and F_INSTALL), set up every queue, DRIVER_OK. */
static void device_init(void)
{
	volatile struct virtio_pci_common_cfg *c = dev.common;
	uint64_t offered = 0;

	c->device_status = 0;
	while (device_status())
		usleep(1000);
	c->device_status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	for (unsigned half = 0; half < 2; half++) {
		c->device_feature_select = half;
		offered |= (uint64_t)c->device_feature << 32 * half;
	}
	dev.features = offered & (1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_HYPERALLOC_F_INSTALL);
	for (unsigned half = 0; half < 2; half++) {
		c->guest_feature_select = half;
		c->guest_feature = (uint32_t)(dev.features >> 32 * half);
	}
	c->device_status |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (!(device_status() & VIRTIO_CONFIG_S_FEATURES_OK))
		fatal("the device refused features %#llx", (unsigned long long)dev.features);
	c->msix_config = NO_VECTOR;
	dev.nqueues = c->num_queues < MAX_QUEUES ? c->num_queues : MAX_QUEUES;
	for (unsigned q = 0; q < dev.nqueues; q++) {
		struct vq *vq = &dev.vq[q];

		c->queue_select = q;
		vq->size = c->queue_size;
		if (vq->size > 64)
			fatal("queue %u has %u entries, more than one page holds", q,
			       vq->size);
		memset(vq->desc, 0, WL_PAGE);
		vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
		vq->avail_idx = vq->used_idx = 0;
		write64((volatile uint32_t *)&c->queue_desc_lo, vq->ring_pa);
		write64((volatile uint32_t *)&c->queue_avail_lo, vq->ring_pa + 1024);
		write64((volatile uint32_t *)&c->queue_used_lo, vq->ring_pa + 2048);
		c->queue_msix_vector = NO_VECTOR;
		vq->notify_off = c->queue_notify_off;
		c->queue_enable = 1;
	}
	c->device_status |= VIRTIO_CONFIG_S_DRIVER_OK;
	dev.zone_registered = false;
}

static void setup_queues(void)
{
	for (unsigned q = 0; q < MAX_QUEUES; q++) {
		struct vq *vq = &dev.vq[q];

		vq->desc = locked_page(&vq->ring_pa);
		vq->avail = (struct vring_avail *)((uint8_t *)vq->desc + 1024);
		vq->used = (struct vring_used *)((uint8_t *)vq->desc + 2048);
		vq->buf = locked_page(&vq->buf_pa);
	}
	dev.meta = locked_page(&dev.meta_pa);
}

/* Puts head on the avail ring, kicks queue q and waits for the used ring;
 * false if the device did not answer. */
static bool kick(unsigned q, uint16_t head)
{
	struct vq *vq = &dev.vq[q];

	vq->avail->ring[vq->avail_idx % vq->size] = head;
	vq->avail_idx++;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*(volatile uint16_t *)(dev.notify + vq->notify_off * dev.notify_mul) = q;
	for (unsigned ms = 0; ms < WAIT_MS; ms++) {
		if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) != vq->used_idx) {
			vq->used_idx++;
			return true;
		}
		if (device_status() & VIRTIO_CONFIG_S_NEEDS_RESET)
			return false;
		usleep(1000);
	}
	return false;
}

static void set_desc(unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	dev.vq[q].desc[i] = (struct vring_desc){ addr, len, flags, next };
}

#define OUT_OFF 0
#define IN_OFF 2048

/* What one request got: the status written (NO_REPLY if none), then reported. */
static void report(const char *what, int status, int expect, bool expect_reset, bool counted,
		   const char *log)
{
	json_array_append_new(dev.requests,
			      json_pack("{s:s,s:i,s:i,s:b,s:b,s:b,s:s}", "what", what, "status",
					status, "expect", expect, "needs_reset",
					!!(device_status() & VIRTIO_CONFIG_S_NEEDS_RESET),
					"expect_reset", expect_reset, "counted", counted, "log",
					log));
}

/* Out buffer out[out_len] and a device-writable buffer of in_len bytes on
 * queue q; the status the device wrote, or NO_REPLY. */
static int request(unsigned q, const void *out, uint32_t out_len, uint32_t in_len)
{
	struct vq *vq = &dev.vq[q];
	uint32_t status;

	memcpy(vq->buf + OUT_OFF, out, out_len);
	memset(vq->buf + IN_OFF, 0xee, 16);
	set_desc(q, 0, vq->buf_pa + OUT_OFF, out_len, in_len ? VRING_DESC_F_NEXT : 0, 1);
	set_desc(q, 1, vq->buf_pa + IN_OFF, in_len, VRING_DESC_F_WRITE, 0);
	if (!kick(q, 0))
		return NO_REPLY;
	memcpy(&status, vq->buf + IN_OFF, 4);
	return (int)status;
}

/* ---- zone descriptors ---- */

/* The fake zone: one tree (16 MiB) at 64 MiB, every child in use, so that no
 * resize or auto round ever finds anything to take. */
#define ZONE_PFN ((64ull << 20) >> LLFREE_FRAME_SHIFT)
#define ZONE_PAGES ((uint64_t)LLFREE_TREE_FRAMES)
#define ZONE_CHILDREN LLFREE_TREE_CHILDREN

static uint64_t meta_len(uint64_t start_pfn, uint64_t pages)
{
	struct llfree_layout l;

	return llfree_layout_init(&l, start_pfn, pages) ? l.size : 0;
}

static void write_metadata(void)
{
	struct llfree_header h = { .magic = LLFREE_MAGIC, .version = LLFREE_VERSION,
				   .start_pfn = ZONE_PFN, .frames = ZONE_PAGES };

	if (meta_len(ZONE_PFN, ZONE_PAGES) > WL_PAGE / 2)
		fatal("metadata of the fake zone does not fit half a page");
	memset(dev.meta, 0, WL_PAGE); /* child and tree words 0: all allocated */
	memcpy(dev.meta, &h, sizeof(h));
}

static struct virtio_hyperalloc_zone_desc zone(uint32_t id)
{
	return (struct virtio_hyperalloc_zone_desc){
		.magic = VIRTIO_HYPERALLOC_DESC_MAGIC, .version = VIRTIO_HYPERALLOC_DESC_VERSION,
		.type = VIRTIO_HYPERALLOC_DESC_ZONE, .zone_id = id, .start_pfn = ZONE_PFN,
		.pages = ZONE_PAGES, .meta_gpa = dev.meta_pa,
		.meta_len = meta_len(ZONE_PFN, ZONE_PAGES) };
}

static struct virtio_hyperalloc_zone_desc finish_desc(void)
{
	return (struct virtio_hyperalloc_zone_desc){ .magic = VIRTIO_HYPERALLOC_DESC_MAGIC,
						     .version = VIRTIO_HYPERALLOC_DESC_VERSION,
						     .type = VIRTIO_HYPERALLOC_DESC_FINISH };
}

static void send_desc(const char *what, struct virtio_hyperalloc_zone_desc d, int expect,
		      const char *log)
{
	int status = request(VIRTIO_HYPERALLOC_VQ_INFO, &d, sizeof(d), 4);

	if (status == VIRTIO_HYPERALLOC_S_OK && d.type == VIRTIO_HYPERALLOC_DESC_ZONE)
		dev.zone_registered = true;
	report(what, status, expect, false, expect == INVALID, log);
}

static void register_good_zone(void)
{
	write_metadata();
	send_desc("good zone", zone(0), VIRTIO_HYPERALLOC_S_OK, "");
}

static void category_zones(void)
{
	uint64_t ram_pages = dev.ram_top >> LLFREE_FRAME_SHIFT;
	struct virtio_hyperalloc_zone_desc d;

	write_metadata();
	d = zone(0), d.magic = 0x12345678;
	send_desc("bad magic", d, INVALID, "zone descriptor with bad magic or version");
	d = zone(0), d.version = 2;
	send_desc("bad version", d, INVALID, "zone descriptor with bad magic or version");
	d = zone(0), d.type = 7;
	send_desc("unknown descriptor type", d, INVALID, "zone descriptor of unknown type");
	d = zone(0), d.reserved[1] = 1;
	send_desc("non-zero reserved field", d, INVALID, "zone descriptor reserved fields not zero");
	d = zone(VIRTIO_HYPERALLOC_MAX_ZONES);
	send_desc("zone id 64", d, INVALID, "zone id out of range");
	d = zone(0xffffffff);
	send_desc("zone id 2^32-1", d, INVALID, "zone id out of range");
	d = zone(0), d.pages = 0;
	send_desc("zone of 0 pages", d, INVALID, "zone pages outside guest RAM");
	d = zone(0), d.pages = ram_pages + 1;
	send_desc("zone larger than RAM", d, INVALID, "zone pages outside guest RAM");
	d = zone(0), d.start_pfn = ram_pages - 1024, d.pages = 4096;
	send_desc("zone running past the end of RAM", d, INVALID, "zone pages outside guest RAM");
	d = zone(0), d.start_pfn = UINT64_MAX - 100, d.pages = 4096;
	send_desc("zone start wrapping", d, INVALID, "zone pages outside guest RAM");
	d = zone(0), d.meta_len -= 64;
	send_desc("metadata length too short", d, INVALID, "metadata length does not match the zone");
	d = zone(0), d.meta_len = UINT64_MAX;
	send_desc("metadata length 2^64-1", d, INVALID, "metadata length does not match the zone");
	d = zone(0), d.meta_gpa += 8;
	send_desc("misaligned metadata", d, INVALID, "metadata address misaligned or wrapping");
	d = zone(0), d.meta_gpa = UINT64_MAX - 63;
	send_desc("metadata wrapping the address space", d, INVALID, "metadata address misaligned or wrapping");
	d = zone(0), d.meta_gpa = dev.ram_top + (64 << 20);
	send_desc("metadata beyond RAM", d, INVALID, "metadata is not plain guest RAM");
	d = zone(0), d.meta_gpa = dev.ram_top - 512;
	send_desc("metadata straddling the end of RAM", d, INVALID, "metadata is not plain guest RAM");
	d = zone(0), d.meta_gpa = 0xfec00000;
	send_desc("metadata over the IOAPIC in the PCI hole", d, INVALID, "metadata is not plain guest RAM");
	d = zone(0), d.meta_gpa = dev.bar_pa;
	send_desc("metadata in the device's own BAR", d, INVALID, "metadata is not plain guest RAM");
	d = zone(0), d.meta_gpa = 0xfffc0000;
	send_desc("metadata in the BIOS ROM", d, INVALID, "metadata is not plain guest RAM");
	memset(dev.meta, 0, 64);
	send_desc("metadata without an allocator header", zone(0), INVALID,
		  "metadata header does not match the zone");
	write_metadata();
	d = zone(0), d.start_pfn += 1024, d.meta_len = meta_len(d.start_pfn, d.pages);
	send_desc("metadata header of another zone", d, INVALID, "metadata header does not match the zone");
}

static void category_overlap(void)
{
	struct virtio_hyperalloc_zone_desc d;

	register_good_zone();
	send_desc("duplicate zone id", zone(0), INVALID, "duplicate zone id");
	d = zone(1), d.start_pfn += ZONE_PAGES / 2, d.meta_gpa += WL_PAGE / 2;
	send_desc("zone overlapping another", d, INVALID, "zone overlaps another zone");
	d = zone(2), d.start_pfn += 4 * ZONE_PAGES, d.meta_gpa += 64;
	send_desc("metadata overlapping another zone's", d, INVALID,
		  "metadata overlaps another zone's");
	send_desc("FINISH", finish_desc(), VIRTIO_HYPERALLOC_S_OK, "");
	d = zone(3), d.start_pfn += 8 * ZONE_PAGES;
	send_desc("zone after FINISH", d, INVALID, "zone descriptor after FINISH");
	send_desc("second FINISH", finish_desc(), INVALID, "zone descriptor after FINISH");
}

static void send_install(const char *what, unsigned q, uint32_t zone_id, uint64_t child,
			 uint32_t count, int expect, const char *log)
{
	struct virtio_hyperalloc_install_req req = { zone_id, count, child };
	int status = request(q, &req, sizeof(req), 4);

	report(what, status, expect, false, expect == INVALID, log);
}

static void category_install(void)
{
	unsigned last = dev.nqueues - 1, q = VIRTIO_HYPERALLOC_VQ_INSTALL0;

	send_install("install before FINISH", q, 0, 0, 1, INVALID, "install before FINISH");
	register_good_zone();
	send_desc("FINISH", finish_desc(), VIRTIO_HYPERALLOC_S_OK, "");
	send_install("install in an unregistered zone", q, 1, 0, 1, INVALID,
		     "install in an unknown zone");
	send_install("install in zone 64", last, 64, 0, 1, INVALID, "install in an unknown zone");
	send_install("install in zone 2^32-1", q, UINT32_MAX, 0, 1, INVALID,
		     "install in an unknown zone");
	send_install("install of the child past the zone", q, 0, ZONE_CHILDREN, 1, INVALID,
		     "install of children out of range");
	send_install("install of child 2^64-1", last, 0, UINT64_MAX, 1, INVALID,
		     "install of children out of range");
	send_install("install of 0 children", q, 0, 0, 0, INVALID,
		     "install of children out of range");
	send_install("install of 3 children", q, 0, 0, 3, INVALID,
		     "install of children out of range");
	send_install("install of 2^32-1 children", q, 0, 0, UINT32_MAX, INVALID,
		     "install of children out of range");
	send_install("order-10 install at an odd child", last, 0, 1, 2, INVALID,
		     "install of children out of range");
	send_install("order-10 install past the zone", q, 0, ZONE_CHILDREN, 2, INVALID,
		     "install of children out of range");
	send_install("install of a child in use", q, 0, 3, 1, VIRTIO_HYPERALLOC_S_NOT_RECLAIMED, "");
	send_install("order-10 install of children in use", last, 0, ZONE_CHILDREN - 2, 2,
		     VIRTIO_HYPERALLOC_S_NOT_RECLAIMED, "");
}

/* The notify queue is the host's: buffers there wait for a host request (the
 * device sends none yet), whatever the guest put in them, and the other queues
 * go on. */
static void category_notify(void)
{
	uint32_t junk[4] = { VIRTIO_HYPERALLOC_NOTIFY_DRAIN, 1, 2, 3 };

	report("request on the notify queue",
	       request(VIRTIO_HYPERALLOC_VQ_NOTIFY, junk, sizeof(junk), 4), NO_REPLY, false, false,
	       "");
	send_desc("FINISH after it", finish_desc(), VIRTIO_HYPERALLOC_S_OK, "");
}

/* One malformed request after a fresh reset: no answer and NEEDS_RESET, after
 * which a good request is not answered either. */
static void malformed(const char *what, unsigned q, uint32_t out_len, uint32_t in_len)
{
	struct virtio_hyperalloc_zone_desc d = finish_desc();
	uint8_t out[128] = { 0 };

	memcpy(out, &d, sizeof(d));
	device_init();
	report(what, request(q, out, out_len, in_len), NO_REPLY, true, true,
	       "malformed request buffers");
	report("then a good FINISH", request(VIRTIO_HYPERALLOC_VQ_INFO, &d, sizeof(d), 4),
	       NO_REPLY, true, false, "");
}

static void category_buffers(void)
{
	unsigned q = VIRTIO_HYPERALLOC_VQ_INSTALL0;

	malformed("descriptor buffer of 40 bytes", VIRTIO_HYPERALLOC_VQ_INFO, 40, 4);
	malformed("descriptor buffer of 64+8 bytes", VIRTIO_HYPERALLOC_VQ_INFO,
		  sizeof(struct virtio_hyperalloc_zone_desc) + 8, 4);
	malformed("status buffer of 2 bytes", VIRTIO_HYPERALLOC_VQ_INFO,
		  sizeof(struct virtio_hyperalloc_zone_desc), 2);
	malformed("install request of 8 bytes", q, 8, 4);
	malformed("install request without a status buffer", q,
		  sizeof(struct virtio_hyperalloc_install_req), 0);
}

/* Broken rings are the virtio core's to refuse (virtio_error: NEEDS_RESET);
 * the device never sees them, so its guest-error counter stays. */
static void broken_ring(const char *what, void (*setup)(struct vq *), uint16_t head,
			const char *log)
{
	struct vq *vq = &dev.vq[VIRTIO_HYPERALLOC_VQ_INFO];
	struct virtio_hyperalloc_zone_desc d = finish_desc();

	device_init();
	memcpy(vq->buf + OUT_OFF, &d, sizeof(d));
	setup(vq);
	report(what, kick(VIRTIO_HYPERALLOC_VQ_INFO, head) ? 0 : NO_REPLY, NO_REPLY, true,
	       false, log);
}

static void ring_loop(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + OUT_OFF, 64, VRING_DESC_F_NEXT, 0);
}

static void ring_next_out_of_range(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + OUT_OFF, 64, VRING_DESC_F_NEXT, 60000);
}

static void ring_in_before_out(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + IN_OFF, 4, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(0, 1, vq->buf_pa + OUT_OFF, 64, 0, 0);
}

static void ring_zero_length(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + OUT_OFF, 0, VRING_DESC_F_NEXT, 1);
	set_desc(0, 1, vq->buf_pa + IN_OFF, 4, VRING_DESC_F_WRITE, 0);
}

static void ring_indirect_bad_size(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + OUT_OFF, 20, VRING_DESC_F_INDIRECT, 0);
}

static void ring_good(struct vq *vq)
{
	set_desc(0, 0, vq->buf_pa + OUT_OFF, 64, VRING_DESC_F_NEXT, 1);
	set_desc(0, 1, vq->buf_pa + IN_OFF, 4, VRING_DESC_F_WRITE, 0);
}

static void category_queue(void)
{
	broken_ring("descriptor chain looping", ring_loop, 0, "Looped descriptor");
	broken_ring("descriptor next out of range", ring_next_out_of_range, 0, "Desc next is");
	broken_ring("device-writable descriptor first", ring_in_before_out, 0,
		    "Incorrect order for descriptors");
	broken_ring("zero-length descriptor", ring_zero_length, 0, "zero sized buffers");
	broken_ring("indirect table of 20 bytes", ring_indirect_bad_size, 0,
		    "Invalid size for indirect buffer table");
	broken_ring("avail head out of range", ring_good, 1000, "is available");
}

static const struct {
	const char *name;
	void (*run)(void);
} categories[] = {
	{ "zones", category_zones },	   { "overlap", category_overlap },
	{ "install", category_install },   { "notify", category_notify },
	{ "buffers", category_buffers },   { "queue", category_queue },
};

static void usage(void)
{
	ht_err("usage: ht-hostile zones|overlap|install|notify|buffers|queue --ram-mib N");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "ram-mib", required_argument, NULL, 'm' }, {} };
	uint64_t ram_mib = 0;
	unsigned which = ARRAY_SIZE(categories);
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'm') {
			usage();
			return 2;
		}
		if (parse_u64("--ram-mib", optarg, 64, 2048, &ram_mib))
			return 2;
	}
	for (unsigned i = 0; optind == argc - 1 && i < ARRAY_SIZE(categories); i++) {
		if (!strcmp(argv[optind], categories[i].name))
			which = i;
	}
	if (which == ARRAY_SIZE(categories) || !ram_mib) {
		usage();
		return 2;
	}
	dev.ram_top = ram_mib << 20;
	dev.requests = json_array();
	find_device();
	unbind_driver();
	/* Locked pages must not move while the device holds their addresses. */
	if (access("/proc/sys/vm/compact_unevictable_allowed", W_OK) == 0)
		sysfs_write("/proc/sys/vm/compact_unevictable_allowed", "0");
	map_device();
	setup_queues();
	device_init();
	categories[which].run();
	json_t *result = json_pack("{s:s,s:s,s:s,s:s?,s:I,s:i,s:i,s:i,s:O}", "workload",
				   "ht-hostile", "category", categories[which].name, "device",
				   dev.bdf, "unbound", dev.unbound, "features",
				   (json_int_t)dev.features, "queues", dev.nqueues,
				   "install_queues", dev.nqueues - VIRTIO_HYPERALLOC_VQ_INSTALL0,
				   "device_status", device_status(), "requests", dev.requests);
	if (dev.zone_registered)
		dev.common->device_status = 0;
	json_println(stdout, result);
	return 0;
}
