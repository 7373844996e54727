/* Stand-in for QEMU's qemu/atomic.h (see ../../README). */
#ifndef QEMU_ATOMIC_H
#define QEMU_ATOMIC_H
#define qatomic_read(ptr) __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, i) __atomic_store_n(ptr, i, __ATOMIC_RELAXED)
#define qatomic_add(ptr, n) ((void)__atomic_fetch_add(ptr, n, __ATOMIC_SEQ_CST))
#define qatomic_cmpxchg(ptr, old, new)                                                   \
	({                                                                               \
		typeof(*(ptr)) _old = (old), _new = (new);                               \
		__atomic_compare_exchange_n(ptr, &_old, _new, 0, __ATOMIC_SEQ_CST,       \
					    __ATOMIC_SEQ_CST);                           \
		_old;                                                                    \
	})
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
