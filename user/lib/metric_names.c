#include "metric_names.h"
#include "kvm_exit.h"

#include <stdio.h>
#include "common.h"
#include <string.h>


/* include/uapi/asm-generic/mman-common.h */
static const char *const advice_names[] = {
	[0] = "NORMAL", [1] = "RANDOM", [2] = "SEQUENTIAL", [3] = "WILLNEED", [4] = "DONTNEED",
	[8] = "FREE", [9] = "REMOVE", [10] = "DONTFORK", [11] = "DOFORK", [12] = "MERGEABLE",
	[13] = "UNMERGEABLE", [14] = "HUGEPAGE", [15] = "NOHUGEPAGE", [16] = "DONTDUMP",
	[17] = "DODUMP", [18] = "WIPEONFORK", [19] = "KEEPONFORK", [20] = "COLD",
	[21] = "PAGEOUT", [22] = "POPULATE_READ", [23] = "POPULATE_WRITE",
	[24] = "DONTNEED_LOCKED", [25] = "COLLAPSE", [100] = "HWPOISON", [101] = "SOFT_OFFLINE",
	[102] = "GUARD_INSTALL", [103] = "GUARD_REMOVE",
};

/* include/uapi/linux/falloc.h, bit by bit */
static const char *const falloc_bits[] = {
	"KEEP_SIZE", "PUNCH_HOLE", "NO_HIDE_STALE", "COLLAPSE_RANGE", "ZERO_RANGE",
	"INSERT_RANGE", "UNSHARE_RANGE", "WRITE_ZEROES",
};

const char *madvise_advice_name(unsigned advice, char *buf, size_t len)
{
	if (advice < ARRAY_SIZE(advice_names) && advice_names[advice])
		snprintf(buf, len, "%s", advice_names[advice]);
	else
		snprintf(buf, len, "ADVICE_%u", advice);
	return buf;
}

const char *fallocate_mode_name(unsigned mode, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	if (!mode) {
		snprintf(buf, len, "ALLOCATE");
		return buf;
	}
	for (unsigned b = 0; b < 32 && used < len; b++) {
		if (!(mode & (1u << b)))
			continue;
		if (b < ARRAY_SIZE(falloc_bits))
			used += snprintf(buf + used, len - used, "%s%s", used ? "|" : "", falloc_bits[b]);
		else
			used += snprintf(buf + used, len - used, "%s0x%x", used ? "|" : "", 1u << b);
	}
	return buf;
}

const char *hist_name(const struct hist_key *key, const char *kvmmmu_name, char *buf, size_t len)
{
	char sub[96];

	switch (key->metric) {
	case M_MADVISE:
		snprintf(buf, len, "madvise:%s", madvise_advice_name(key->sub, sub, sizeof(sub)));
		break;
	case M_PROCESS_MADVISE:
		snprintf(buf, len, "process_madvise:%s",
			 madvise_advice_name(key->sub, sub, sizeof(sub)));
		break;
	case M_FALLOCATE:
		snprintf(buf, len, "fallocate:%s", fallocate_mode_name(key->sub, sub, sizeof(sub)));
		break;
	case M_USER_FAULT:
		snprintf(buf, len, "user_fault:%s", key->sub ? "guest_ram" : "other");
		break;
	case M_KVM_PAGE_FAULT:
		snprintf(buf, len, "kvm_page_fault:%s", key->sub ? "write" : "read");
		break;
	case M_KVM_EXIT:
		snprintf(buf, len, "kvm_exit:%s", kvm_exit_name(key->isa, key->sub, sub, sizeof(sub)));
		break;
	case M_KVM_FAULT_GPA:
		snprintf(buf, len, "kvm_page_fault_gpa");
		break;
	case M_KVM_UNMAP_HVA:
		snprintf(buf, len, "kvm_unmap_hva_range");
		break;
	case M_KVMMMU:
		snprintf(buf, len, "kvmmmu:%s", kvmmmu_name ? kvmmmu_name : "?");
		break;
	default:
		snprintf(buf, len, "metric_%u", key->metric);
	}
	return buf;
}

const char *metric_unit(unsigned metric, bool fault_latency)
{
	switch (metric) {
	case M_KVM_UNMAP_HVA:
		return "bytes";
	case M_KVM_FAULT_GPA:
		return "gpa";
	case M_KVMMMU:
		return "events";
	case M_USER_FAULT:
		return fault_latency ? "ns" : "events";
	default:
		return "ns";
	}
}
