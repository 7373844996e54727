/* Stand-in for the kernel's linux/printk.h (see ../../README). */
#ifndef _LINUX_PRINTK_H
#define _LINUX_PRINTK_H
__attribute__((format(printf, 1, 2))) int _printk(const char *fmt, ...);
#define pr_info(fmt, ...) _printk(fmt, ##__VA_ARGS__)
#endif
