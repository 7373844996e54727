/* QEMU's RSS over time as points, read from `hatrace footprint` CSVs, and its
 * integral. */
#ifndef HATRACE_RSS_SERIES_H
#define HATRACE_RSS_SERIES_H

#include <stddef.h>
#include <stdint.h>

struct points {
	size_t n, cap;
	uint64_t *t, *v; /* CLOCK_MONOTONIC ns, bytes */
};

void points_add(struct points *p, uint64_t t, uint64_t v);
void points_free(struct points *p);
/* The CSV (time_ns,pid,comm,anon,file,shmem,rss_bytes) as the sum over its
 * processes of each one's latest rss_bytes, one point per row. */
int footprint_csv_points(const char *path, struct points *p);
/* Trapezoid integral over [a, b] in byte-seconds and the peak inside it; the
 * first and last values hold before and after the points. */
double points_integral(const struct points *p, uint64_t a, uint64_t b, uint64_t *peak);

#endif
