/* SPDX-License-Identifier: BSD-3-Clause */
/* The virtio-hyperalloc wire format: features, config space, the zone
 * descriptor of the info queue, the install request and the status codes.
 *
 * This is the one master copy.  The build copies it unchanged into QEMU
 * (include/standard-headers/linux/virtio_hyperalloc.h) and into the guest
 * kernel (include/uapi/linux/virtio_hyperalloc.h); tests compare the copies.
 * The allocator state the descriptor points at is defined by
 * kernel/llfree/llfree_layout.h, not here.
 *
 * All multi-byte fields are little endian on the wire (virtio 1.x only).
 */
#ifndef _LINUX_VIRTIO_HYPERALLOC_H
#define _LINUX_VIRTIO_HYPERALLOC_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
#endif

/* Device ID: PCI 0x1040 + 56.  Balloon (5) and virtio-mem (24) coexist with it. */
#define VIRTIO_ID_HYPERALLOC 56

/* Feature bits. */
#define VIRTIO_HYPERALLOC_F_INSTALL 0 /* the guest asks before using a reclaimed child */
#define VIRTIO_HYPERALLOC_F_AUTO 1    /* informational: the host soft-reclaims on a timer */

/* Queues: info (zone descriptors), notify (host requests), then install queues. */
#define VIRTIO_HYPERALLOC_VQ_INFO 0
#define VIRTIO_HYPERALLOC_VQ_NOTIFY 1
#define VIRTIO_HYPERALLOC_VQ_INSTALL0 2
#define VIRTIO_HYPERALLOC_MAX_INSTALL_QUEUES 256
#define VIRTIO_HYPERALLOC_MAX_ZONES 64

struct virtio_hyperalloc_config {
	uint32_t layout_version;     /* LLFREE_VERSION the host speaks */
	uint32_t num_install_queues; /* the guest uses queue cpu % n */
	uint32_t flags;              /* reserved, 0 */
	uint32_t reserved;
};

/* Info queue: out-buffer = one descriptor, in-buffer = uint32_t status. */
#define VIRTIO_HYPERALLOC_DESC_MAGIC 0x5a414856u /* "VHAZ" */
#define VIRTIO_HYPERALLOC_DESC_VERSION 1u

enum virtio_hyperalloc_desc_type {
	VIRTIO_HYPERALLOC_DESC_ZONE = 1,
	VIRTIO_HYPERALLOC_DESC_FINISH = 2, /* no more zones until reset */
};

struct virtio_hyperalloc_zone_desc {
	uint32_t magic;     /* VIRTIO_HYPERALLOC_DESC_MAGIC */
	uint16_t version;   /* VIRTIO_HYPERALLOC_DESC_VERSION */
	uint16_t type;      /* enum virtio_hyperalloc_desc_type; FINISH ignores the rest */
	uint32_t zone_id;   /* < VIRTIO_HYPERALLOC_MAX_ZONES, unique */
	uint32_t node;      /* NUMA node, informational */
	uint64_t start_pfn; /* first 4 KiB frame of the zone */
	uint64_t pages;     /* frames of the zone */
	uint64_t meta_gpa;  /* the zone's llfree metadata (llfree_layout.h), 64 B aligned */
	uint64_t meta_len;  /* must equal llfree_metadata_size(start_pfn, pages) */
	uint64_t reserved[2];
};

/* Install queue: out-buffer = request, in-buffer = uint32_t status. */
struct virtio_hyperalloc_install_req {
	uint32_t zone_id;
	uint32_t count; /* 1, or 2 for an order-10 block (child and child + 1) */
	uint64_t child; /* child index within the zone's layout */
};

enum virtio_hyperalloc_status {
	VIRTIO_HYPERALLOC_S_OK = 0,
	VIRTIO_HYPERALLOC_S_NOT_RECLAIMED = 1, /* nothing to do: the child was not reclaimed */
	VIRTIO_HYPERALLOC_S_INVALID = 2,       /* refused: malformed or out of range */
	VIRTIO_HYPERALLOC_S_FAILED = 3,        /* populate failed; the guest may fault it in */
};

/* Notify queue: the guest keeps in-buffers of one uint32_t posted; the host
 * writes a request into one and returns it.  The guest ignores unknown ones. */
enum virtio_hyperalloc_notify {
	VIRTIO_HYPERALLOC_NOTIFY_DRAIN = 1, /* give up per-CPU tree reservations */
};

#endif
