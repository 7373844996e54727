/* Stand-in for the kernel's linux/types.h (see ../../README). */
#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H
typedef __UINT8_TYPE__ u8;
typedef __UINT16_TYPE__ u16;
typedef __UINT32_TYPE__ u32;
typedef unsigned long long u64;
typedef long long s64;
typedef int s32;
typedef u8 uint8_t;
typedef u16 uint16_t;
typedef u32 uint32_t;
typedef s32 int32_t;
typedef u64 uint64_t;
typedef s64 int64_t;
typedef __SIZE_TYPE__ size_t;
typedef unsigned long uintptr_t;
typedef _Bool bool;
enum { false = 0, true = 1 };
#define NULL ((void *)0)
#endif
