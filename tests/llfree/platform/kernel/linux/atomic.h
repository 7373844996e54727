/* Stand-in for the kernel's linux/atomic.h (see ../../README). */
#ifndef _LINUX_ATOMIC_H
#define _LINUX_ATOMIC_H
#include <linux/types.h>

typedef struct {
	s64 counter;
} atomic64_t;

#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, val) (*(volatile typeof(x) *)&(x) = (val))
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
/* Like the kernel's: old must point to the type of *p. */
#define try_cmpxchg(p, oldp, new)                                                     \
	({                                                                            \
		typeof(*(p)) *___op = (oldp);                                         \
		__atomic_compare_exchange_n((p), ___op, (new), 0, __ATOMIC_SEQ_CST,   \
					    __ATOMIC_SEQ_CST);                        \
	})
static inline void atomic64_add(s64 i, atomic64_t *v)
{
	__atomic_fetch_add(&v->counter, i, __ATOMIC_RELAXED);
}
#endif
