/* Probes of what this host supports, shared by `doctor` and the loaders. */
#ifndef HATRACE_HOSTCAPS_H
#define HATRACE_HOSTCAPS_H

#include <stdbool.h>

struct feature {
	char name[48];
	bool ok;
	char detail[160];
};

/* A tracepoint's tracefs directory exists. */
bool feature_tracepoint(const char *category, const char *name, struct feature *f);
bool feature_btf(struct feature *f);
/* Loads and attaches a minimal program of the kind: the only real test, since
 * a kernel may accept the load and refuse the attach (EPERM on this host). */
bool feature_fentry(const char *func, struct feature *f);
bool feature_tp_btf(struct feature *f);
bool feature_kprobe(struct feature *f);
bool feature_uprobe(struct feature *f);
bool feature_ringbuf(struct feature *f);
bool feature_attach_cookie(struct feature *f);
bool feature_task_file_iter(struct feature *f);

enum kvm_kind { KVM_NONE, KVM_VMX, KVM_SVM, KVM_PVM, KVM_OTHER };
enum kvm_kind kvm_kind(void);
bool feature_kvm(struct feature *f);
bool feature_tcg(struct feature *f);
/* The QEMU that HATRACE_QEMU or PATH names has the USDT probes user/lib/qemu_usdt.c
 * times phases with (hatrace's build has; Debian's has none). */
bool feature_qemu_usdt(struct feature *f);

/* This host is itself a VM whose virtio-balloon reports free pages to its
 * hypervisor (VIRTIO_BALLOON_F_REPORTING negotiated): memory QEMU gives back
 * is then reclaimed a level up, and faulting it in again costs an outer fault.
 * order and min_free_ms are the page_reporting module's parameters, -1 where
 * the kernel has none. */
struct host_reporting {
	bool reporting;
	char device[32]; /* e.g. "virtio0" */
	int order, min_free_ms;
};
void host_page_reporting(struct host_reporting *r);
bool feature_host_reporting(struct feature *f);

#endif
