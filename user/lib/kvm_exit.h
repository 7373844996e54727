/* Names of KVM exit reasons, from the kvm_exit tracepoint's isa and exit_reason. */
#ifndef HATRACE_KVM_EXIT_H
#define HATRACE_KVM_EXIT_H

#include <stddef.h>
#include "hist.h" /* KVM_ISA_VMX, KVM_ISA_SVM */

/* Writes e.g. "EPT_VIOLATION", "NPF", "CR0_WRITE", "VMX_48" (unknown) into buf. */
const char *kvm_exit_name(unsigned isa, unsigned reason, char *buf, size_t len);

#endif
