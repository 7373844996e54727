#include "log2hist.h"

#include <string.h>

uint64_t log2_bucket_low(int i)
{
	return i == 0 ? 0 : 1ULL << i;
}

uint64_t log2_bucket_high(int i)
{
	return i >= 63 ? UINT64_MAX : (1ULL << (i + 1)) - 1;
}

static int used_range(const unsigned long long *slots, int nslots, int *first)
{
	int last = -1;

	*first = -1;
	for (int i = 0; i < nslots; i++) {
		if (!slots[i])
			continue;
		if (*first < 0)
			*first = i;
		last = i;
	}
	return last;
}

static int digits(uint64_t v)
{
	char tmp[24];

	return snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
}

void print_log2_hist(FILE *f, const unsigned long long *slots, int nslots, const char *unit)
{
	int first, last = used_range(slots, nslots, &first);
	unsigned long long max = 0;
	int width, stars_max;

	if (last < 0) {
		fprintf(f, "     (no events)\n");
		return;
	}
	for (int i = first; i <= last; i++)
		if (slots[i] > max)
			max = slots[i];
	width = digits(log2_bucket_high(last));
	if (width < 10)
		width = 10;
	/* "%*llu -> %-*llu : %-8llu |stars|" must fit 80 columns */
	stars_max = 80 - (2 * width + 4 + 3 + 8 + 3);
	if (stars_max > 40)
		stars_max = 40;
	fprintf(f, "%*s%-*s : count    distribution\n", width + 1, unit, width + 3, "");
	for (int i = first; i <= last; i++) {
		char bar[41];
		int stars = (int)(slots[i] * stars_max / max);

		memset(bar, '*', stars);
		memset(bar + stars, ' ', stars_max - stars);
		bar[stars_max] = 0;
		fprintf(f, "%*llu -> %-*llu : %-8llu |%s|\n", width,
			(unsigned long long)log2_bucket_low(i), width,
			(unsigned long long)log2_bucket_high(i), slots[i], bar);
	}
}

json_t *log2_hist_json(const unsigned long long *slots, int nslots)
{
	int first, last = used_range(slots, nslots, &first);
	json_t *arr = json_array();

	for (int i = first; last >= 0 && i <= last; i++)
		json_array_append_new(arr, json_pack("{s:I,s:I,s:I}", "low",
						     (json_int_t)log2_bucket_low(i), "high",
						     /* JSON integers are signed 64-bit */
						     (json_int_t)(log2_bucket_high(i) > INT64_MAX ?
								  INT64_MAX : log2_bucket_high(i)),
						     "count", (json_int_t)slots[i]));
	return arr;
}

uint64_t log2_hist_quantile(const unsigned long long *slots, int nslots, double q)
{
	unsigned long long total = 0, seen = 0;

	for (int i = 0; i < nslots; i++)
		total += slots[i];
	for (int i = 0; i < nslots; i++) {
		seen += slots[i];
		if (total && seen >= q * total)
			return log2_bucket_high(i);
	}
	return 0;
}
