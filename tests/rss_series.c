/* The RSS series of hatrace footprint CSVs (user/lib/rss_series.c): summing
 * processes, a quoted comm with commas, and the trapezoid integral. */
#include "check.h"
#include "rss_series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SEC 1000000000ull

int main(void)
{
	char path[] = "/tmp/hatrace-rss-series-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	struct points p = { 0 };
	uint64_t peak;
	double v;

	plan(6);
	fprintf(f, "time_ns,pid,comm,anon_bytes,file_bytes,shmem_bytes,rss_bytes\n"
		   "1000000000,10,qemu,0,0,0,100\n"
		   "2000000000,11,\"a,b\",0,0,0,50\n"
		   "3000000000,10,qemu,0,0,0,300\n");
	fclose(f);
	check(!footprint_csv_points(path, &p) && p.n == 3, "three rows read", "n = %zu", p.n);
	check(p.n == 3 && p.v[0] == 100 && p.v[1] == 150 && p.v[2] == 350,
	      "each row is the sum of every process's latest RSS", "%llu %llu %llu",
	      p.n ? (unsigned long long)p.v[0] : 0, p.n > 1 ? (unsigned long long)p.v[1] : 0,
	      p.n > 2 ? (unsigned long long)p.v[2] : 0);
	/* [1 s, 3 s]: trapezoids (100+150)/2 + (150+350)/2 = 375 byte-seconds */
	v = points_integral(&p, SEC, 3 * SEC, &peak);
	check(fabs(v - 375) < 1e-9 && peak == 350, "trapezoid integral and peak", "%g, %llu", v,
	      (unsigned long long)peak);
	/* [0.5 s, 1.5 s]: 100 held before the first point, then half of the first slope */
	v = points_integral(&p, SEC / 2, 3 * SEC / 2, &peak);
	check(fabs(v - (50 + (100 + 125) / 2.0 * 0.5)) < 1e-9, "partial trapezoid and held start",
	      "%g", v);
	v = points_integral(&p, 3 * SEC, 5 * SEC, &peak);
	check(fabs(v - 700) < 1e-9, "the last value holds after the last row", "%g", v);
	unlink(path);
	check(footprint_csv_points(path, &p) < 0, "a missing file is an error", "accepted");
	points_free(&p);
	return check_failures != 0;
}
