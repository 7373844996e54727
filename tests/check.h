/* Minimal test reporting: one line per check, read by tests/run.
 *   ok - NAME
 *   not ok - NAME: why
 *   skip - NAME: reason
 * and one plan line, 1..N: how many of those lines the test reports.
 */
#ifndef HATRACE_CHECK_H
#define HATRACE_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int check_failures;

static inline __attribute__((format(printf, 3, 4))) bool
check(bool cond, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (cond) {
		printf("ok - %s\n", name);
	} else {
		check_failures++;
		printf("not ok - %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	fflush(stdout);
	return cond;
}

static inline __attribute__((format(printf, 2, 3))) void skip(const char *name,
							       const char *fmt, ...)
{
	va_list ap;

	printf("skip - %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The number of check() and skip() lines this test reports. */
static inline void plan(unsigned n)
{
	printf("1..%u\n", n);
	fflush(stdout);
}

#define CHECK_EQ_U64(a, b, name)                                                                  \
	check((unsigned long long)(a) == (unsigned long long)(b), name, "%s = %llu, expected %llu", \
	      #a, (unsigned long long)(a), (unsigned long long)(b))

static inline int check_exit(void)
{
	return check_failures ? 1 : 0;
}

#endif
