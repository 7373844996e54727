/* What the allocator core needs from its environment: fixed-width types,
 * atomics, asserts and logging.  Selected by __KERNEL__ (Linux), HATRACE_QEMU
 * (QEMU) or neither (user space, C11 __atomic builtins).
 *
 *   llfree_load(p)         relaxed atomic load
 *   llfree_store(p, v)     relaxed atomic store
 *   llfree_cas(p, old, v)  strong CAS with acquire-release order; on failure
 *                          *old receives the current value; true on success
 *   llfree_assert(c)       internal invariants of the guest side only; the host
 *                          side never asserts on what it reads from metadata
 *   llfree_log(fmt, ...)   one line of diagnostic output
 *   llfree_popcount(x)     set bits of a u64
 *   llfree_ctz(x)          trailing zero bits of a non-zero u64
 *   llfree_add(p, v)       relaxed atomic add to a u64
 *   llfree_relax()         pause inside a short wait for another CPU
 *   llfree_fence()         full memory barrier
 */
#ifndef LLFREE_PLATFORM_H
#define LLFREE_PLATFORM_H

#if defined(__KERNEL__)
#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/bug.h>
#include <linux/printk.h>
#include <linux/bitops.h>
#include <asm/processor.h>

#define llfree_load(p) READ_ONCE(*(p))
#define llfree_store(p, v) WRITE_ONCE(*(p), (v))
#define llfree_cas(p, old, v) try_cmpxchg((p), (old), (v))
#define llfree_add(p, v) atomic64_add((v), (atomic64_t *)(p))
#define llfree_assert(c) WARN_ON_ONCE(!(c))
#define llfree_log(...) pr_info("llfree: " __VA_ARGS__)
#define llfree_popcount(x) hweight64(x)
#define llfree_ctz(x) __ffs64(x)
#define llfree_relax() cpu_relax()
#define llfree_fence() smp_mb()

#elif defined(HATRACE_QEMU)
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/log.h"
#include "qemu/host-utils.h"
#include "qemu/processor.h"

#define llfree_load(p) qatomic_read(p)
#define llfree_store(p, v) qatomic_set((p), (v))
#define llfree_cas(p, old, v)                                                  \
	({                                                                     \
		typeof(*(p)) llfree_exp_ = *(old);                             \
		typeof(*(p)) llfree_cur_ = qatomic_cmpxchg((p), llfree_exp_, (v)); \
		*(old) = llfree_cur_;                                          \
		llfree_cur_ == llfree_exp_;                                    \
	})
#define llfree_add(p, v) qatomic_add((p), (v))
#define llfree_assert(c) assert(c)
#define llfree_log(...) qemu_log("llfree: " __VA_ARGS__)
#define llfree_popcount(x) ctpop64(x)
#define llfree_ctz(x) ctz64(x)
#define llfree_relax() cpu_relax()
#define llfree_fence() smp_mb()

#else
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define llfree_load(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define llfree_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define llfree_cas(p, old, v) \
	__atomic_compare_exchange_n((p), (old), (v), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define llfree_add(p, v) ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))
#define llfree_assert(c) assert(c)
#define llfree_log(...) printf("llfree: " __VA_ARGS__)
#define llfree_popcount(x) __builtin_popcountll(x)
#define llfree_ctz(x) __builtin_ctzll(x)
#define llfree_relax() __atomic_signal_fence(__ATOMIC_SEQ_CST)
#define llfree_fence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

#endif
