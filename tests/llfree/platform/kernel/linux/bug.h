/* Stand-in for the kernel's linux/bug.h (see ../../README). */
#ifndef _LINUX_BUG_H
#define _LINUX_BUG_H
void __warn_once(const char *cond);
#define WARN_ON_ONCE(c)                       \
	({                                    \
		int __ret = !!(c);            \
		if (__ret)                    \
			__warn_once(#c);      \
		__ret;                        \
	})
#endif
