/* The QEMU binary: where it is, what it is and which device properties it
 * has. Shared by `doctor` (host capabilities) and the VM launcher. */
#ifndef HATRACE_QEMU_BIN_H
#define HATRACE_QEMU_BIN_H

#include <stdbool.h>

/* Finds the QEMU binary: path, else $HATRACE_QEMU, else hatrace's own build
 * (QEMU_OWN_BUILD next to the hatrace binary), else qemu-system-x86_64 on PATH.
 * Returns a malloc'ed absolute path or NULL after printing why. */
#define QEMU_OWN_BUILD "qemu/qemu-system-x86_64"
char *qemu_find(const char *path);
/* "QEMU emulator version ..." first line, malloc'ed. */
char *qemu_version(const char *qemu);
/* Whether qemu runs and says it is QEMU (clear error if not; what names it). */
bool qemu_check(const char *qemu, const char *what);
/* Whether qemu's device has the property ("virtio-balloon-pci", "huge-pages"). */
bool qemu_has_property(const char *qemu, const char *device, const char *prop);

#endif
