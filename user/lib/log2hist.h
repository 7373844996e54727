/* log2 histograms, printed in the style of libbpf-tools' print_log2_hist(). */
#ifndef HATRACE_LOG2HIST_H
#define HATRACE_LOG2HIST_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

/* Bucket i holds values in [low, high]: i = 0 is [0, 1], then [2^i, 2^(i+1) - 1]. */
uint64_t log2_bucket_low(int i);
uint64_t log2_bucket_high(int i);

/* Prints the non-empty range of slots; never wider than 80 columns. */
void print_log2_hist(FILE *f, const unsigned long long *slots, int nslots, const char *unit);
/* [{"low":..,"high":..,"count":..}] for the non-empty range. */
json_t *log2_hist_json(const unsigned long long *slots, int nslots);
/* Value below which a fraction q of the samples lie (bucket upper bound). */
uint64_t log2_hist_quantile(const unsigned long long *slots, int nslots, double q);

#endif
