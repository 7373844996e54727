/* The techniques `hatrace inflate` knows, in report order: one line each. */
#include "technique.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TECHNIQUES(X) \
	X(tech_virtio_balloon) \
	X(tech_balloon_huge) \
	X(tech_fpr) \
	X(tech_virtio_mem) \
	X(tech_hyperalloc) \
	X(tech_hyperalloc_fault)

#define DECLARE(t) extern const struct technique t;
#define ENTRY(t) &t,
TECHNIQUES(DECLARE)
const struct technique *const techniques[] = { TECHNIQUES(ENTRY) NULL };

const struct technique *technique_find(const char *name)
{
	for (const struct technique *const *t = techniques; *t; t++)
		if (!strcmp((*t)->name, name))
			return *t;
	return NULL;
}

const char *technique_names(void)
{
	static char names[256];
	size_t n = 0;

	if (!names[0])
		for (const struct technique *const *t = techniques; *t; t++)
			n += snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", (*t)->name);
	return names;
}

void qemu_args_add(struct qemu_args *a, const char *opt, const char *fmt, ...)
{
	va_list ap;
	unsigned b = a->n / 2;

	if (a->n + 2 >= sizeof(a->argv) / sizeof(a->argv[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(a->buf[b], sizeof(a->buf[b]), fmt, ap);
	va_end(ap);
	a->argv[a->n++] = opt;
	a->argv[a->n++] = a->buf[b];
	a->argv[a->n] = NULL;
}
