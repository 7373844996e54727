/* Stand-in for QEMU's qemu/processor.h (see ../../README). */
#ifndef QEMU_PROCESSOR_H
#define QEMU_PROCESSOR_H
#define cpu_relax() __builtin_ia32_pause()
#endif
