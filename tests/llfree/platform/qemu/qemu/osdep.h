/* Stand-in for QEMU's qemu/osdep.h (see ../../README): the C library. */
#ifndef QEMU_OSDEP_H
#define QEMU_OSDEP_H
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif
