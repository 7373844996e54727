/* Stand-in for the kernel's asm/processor.h (see ../../README). */
#ifndef _ASM_PROCESSOR_H
#define _ASM_PROCESSOR_H
#define cpu_relax() __builtin_ia32_pause()
#endif
