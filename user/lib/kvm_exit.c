#include "kvm_exit.h"

#include <stdio.h>
#include "common.h"


/* Intel SDM vol. 3, appendix C "VMX basic exit reasons". */
static const char *const vmx_reasons[] = {
	[0] = "EXCEPTION_NMI", [1] = "EXTERNAL_INTERRUPT", [2] = "TRIPLE_FAULT",
	[3] = "INIT_SIGNAL", [4] = "SIPI", [7] = "INTERRUPT_WINDOW", [8] = "NMI_WINDOW",
	[9] = "TASK_SWITCH", [10] = "CPUID", [12] = "HLT", [13] = "INVD", [14] = "INVLPG",
	[15] = "RDPMC", [16] = "RDTSC", [18] = "VMCALL", [19] = "VMCLEAR", [20] = "VMLAUNCH",
	[21] = "VMPTRLD", [22] = "VMPTRST", [23] = "VMREAD", [24] = "VMRESUME", [25] = "VMWRITE",
	[26] = "VMOFF", [27] = "VMON", [28] = "CR_ACCESS", [29] = "DR_ACCESS",
	[30] = "IO_INSTRUCTION", [31] = "MSR_READ", [32] = "MSR_WRITE", [33] = "INVALID_STATE",
	[34] = "MSR_LOAD_FAIL", [36] = "MWAIT", [37] = "MONITOR_TRAP_FLAG", [39] = "MONITOR",
	[40] = "PAUSE", [41] = "MCE_DURING_VMENTRY", [43] = "TPR_BELOW_THRESHOLD",
	[44] = "APIC_ACCESS", [45] = "EOI_INDUCED", [46] = "GDTR_IDTR", [47] = "LDTR_TR",
	[48] = "EPT_VIOLATION", [49] = "EPT_MISCONFIG", [50] = "INVEPT", [51] = "RDTSCP",
	[52] = "PREEMPTION_TIMER", [53] = "INVVPID", [54] = "WBINVD", [55] = "XSETBV",
	[56] = "APIC_WRITE", [57] = "RDRAND", [58] = "INVPCID", [59] = "VMFUNC", [60] = "ENCLS",
	[61] = "RDSEED", [62] = "PML_FULL", [63] = "XSAVES", [64] = "XRSTORS", [67] = "UMWAIT",
	[68] = "TPAUSE", [74] = "BUS_LOCK", [75] = "NOTIFY",
};

/* AMD APM vol. 2, appendix C "SVM intercept exit codes", 0x60 onwards. */
static const char *const svm_codes_60[] = {
	"INTR", "NMI", "SMI", "INIT", "VINTR", "CR0_SEL_WRITE", "IDTR_READ", "GDTR_READ",
	"LDTR_READ", "TR_READ", "IDTR_WRITE", "GDTR_WRITE", "LDTR_WRITE", "TR_WRITE", "RDTSC",
	"RDPMC", "PUSHF", "POPF", "CPUID", "RSM", "IRET", "SWINT", "INVD", "PAUSE", "HLT",
	"INVLPG", "INVLPGA", "IOIO", "MSR", "TASK_SWITCH", "FERR_FREEZE", "SHUTDOWN", "VMRUN",
	"VMMCALL", "VMLOAD", "VMSAVE", "STGI", "CLGI", "SKINIT", "RDTSCP", "ICEBP", "WBINVD",
	"MONITOR", "MWAIT", "MWAIT_COND", "XSETBV", "RDPRU", "EFER_WRITE_TRAP",
};

static const char *const svm_codes_400[] = {
	"NPF", "AVIC_INCOMPLETE_IPI", "AVIC_UNACCELERATED_ACCESS", "VMGEXIT",
};

static const char *svm_name(unsigned code, char *buf, size_t len)
{
	static const char *const crdr[] = { "CR%u_READ", "CR%u_WRITE", "DR%u_READ", "DR%u_WRITE" };

	if (code < 0x40) {
		snprintf(buf, len, crdr[code >> 4], code & 0xf);
	} else if (code < 0x60) {
		snprintf(buf, len, "EXCP_%u", code - 0x40);
	} else if (code - 0x60 < ARRAY_SIZE(svm_codes_60)) {
		snprintf(buf, len, "%s", svm_codes_60[code - 0x60]);
	} else if (code >= 0x90 && code < 0xa0) {
		snprintf(buf, len, "CR%u_WRITE_TRAP", code - 0x90);
	} else if (code - 0x400 < ARRAY_SIZE(svm_codes_400)) {
		snprintf(buf, len, "%s", svm_codes_400[code - 0x400]);
	} else if (code == 0xffffffffu) {
		snprintf(buf, len, "ERR");
	} else {
		snprintf(buf, len, "SVM_0x%x", code);
	}
	return buf;
}

const char *kvm_exit_name(unsigned isa, unsigned reason, char *buf, size_t len)
{
	if (isa == KVM_ISA_SVM)
		return svm_name(reason, buf, len);
	if (isa != KVM_ISA_VMX) {
		snprintf(buf, len, "ISA%u_%u", isa, reason);
		return buf;
	}
	/* bit 31 flags a failed VM entry; the basic reason is the low 16 bits */
	unsigned basic = reason & 0xffff;
	const char *name = basic < ARRAY_SIZE(vmx_reasons) ? vmx_reasons[basic] : NULL;

	if (name)
		snprintf(buf, len, "%s%s", name, reason & 0x80000000u ? "(ENTRY_FAIL)" : "");
	else
		snprintf(buf, len, "VMX_%u", basic);
	return buf;
}
