#include "rss_series.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void points_add(struct points *p, uint64_t t, uint64_t v)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 1024;
		p->t = realloc(p->t, p->cap * sizeof(*p->t));
		p->v = realloc(p->v, p->cap * sizeof(*p->v));
	}
	p->t[p->n] = t;
	p->v[p->n++] = v;
}

void points_free(struct points *p)
{
	free(p->t);
	free(p->v);
	*p = (struct points){ 0 };
}

#define MAX_PIDS 64

int footprint_csv_points(const char *path, struct points *p)
{
	int pids[MAX_PIDS], npids = 0, pid;
	uint64_t last[MAX_PIDS], sum = 0;
	char line[512], *end, *c;
	unsigned long long t, rss;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int k;

		t = strtoull(line, &end, 10);
		/* comm may be quoted and hold commas: rss_bytes is the last column */
		if (end == line || *end != ',' || !(c = strrchr(line, ',')))
			continue;
		pid = strtol(end + 1, NULL, 10);
		rss = strtoull(c + 1, NULL, 10);
		for (k = 0; k < npids && pids[k] != pid; k++)
			;
		if (k == npids) {
			if (npids == MAX_PIDS)
				continue;
			pids[npids] = pid;
			last[npids++] = 0;
		}
		sum = sum - last[k] + rss;
		last[k] = rss;
		points_add(p, t, sum);
	}
	fclose(f);
	return p->n ? 0 : -ENODATA;
}

double points_integral(const struct points *p, uint64_t a, uint64_t b, uint64_t *peak)
{
	double sum = 0;

	*peak = 0;
	for (size_t i = 0; i + 1 < p->n; i++) {
		uint64_t lo = p->t[i] > a ? p->t[i] : a, hi = p->t[i + 1] < b ? p->t[i + 1] : b;
		double slope;

		if (hi <= lo)
			continue;
		slope = ((double)p->v[i + 1] - p->v[i]) / (p->t[i + 1] - p->t[i]);
		sum += (p->v[i] + slope * (lo - p->t[i]) + p->v[i] + slope * (hi - p->t[i])) / 2 *
		       (hi - lo) / 1e9;
	}
	if (p->n && p->t[0] > a)
		sum += (double)p->v[0] * ((p->t[0] < b ? p->t[0] : b) - a) / 1e9;
	if (p->n && p->t[p->n - 1] < b)
		sum += (double)p->v[p->n - 1] * (b - (p->t[p->n - 1] > a ? p->t[p->n - 1] : a)) / 1e9;
	for (size_t i = 0; i < p->n; i++)
		if (p->t[i] >= a && p->t[i] <= b && p->v[i] > *peak)
			*peak = p->v[i];
	return sum;
}
