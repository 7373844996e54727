/* Human names and units of the histograms in bpf/hist.h. */
#ifndef HATRACE_METRIC_NAMES_H
#define HATRACE_METRIC_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include "hist.h"

const char *madvise_advice_name(unsigned advice, char *buf, size_t len);
const char *fallocate_mode_name(unsigned mode, char *buf, size_t len);
/* "madvise:DONTNEED", "kvm_exit:EPT_VIOLATION", "kvmmmu:<kvmmmu_name>" ... */
const char *hist_name(const struct hist_key *key, const char *kvmmmu_name, char *buf, size_t len);
/* "ns", "bytes", "gpa" (an address) or "events" for count-only metrics. */
const char *metric_unit(unsigned metric, bool fault_latency);

#endif
