/* Stand-in for QEMU's qemu/log.h (see ../../README). */
#ifndef QEMU_LOG_H
#define QEMU_LOG_H
__attribute__((format(printf, 1, 2))) void qemu_log(const char *fmt, ...);
#endif
