/* Stand-in for QEMU's qemu/host-utils.h (see ../../README). */
#ifndef HOST_UTILS_H
#define HOST_UTILS_H
#include <stdint.h>
static inline int ctpop64(uint64_t val)
{
	return __builtin_popcountll(val);
}
static inline int ctz64(uint64_t val)
{
	return val ? __builtin_ctzll(val) : 64;
}
#endif
