/* Text that a guest or a peer wrote, made safe for the operator's terminal. */
#ifndef HATRACE_SAFE_TEXT_H
#define HATRACE_SAFE_TEXT_H

#include <stddef.h>

/* Copies src[0, srclen) into dst (at most len - 1 bytes, NUL-terminated):
 * terminal escape sequences (CSI, OSC and the like) are dropped, tabs and
 * newlines become spaces and other control characters '?'. Returns dst. */
char *term_safe(char *dst, size_t len, const char *src, size_t srclen);

#endif
