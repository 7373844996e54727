/* Records written by the iter/task_file program in bpf/vmslots.bpf.c. */
#ifndef HATRACE_VMSLOTS_H
#define HATRACE_VMSLOTS_H

#define VMSLOTS_MAX_VMS 64
#define VMSLOTS_MAX_SLOTS 256 /* per VM; more are reported by a VMSLOT_MORE record */
#define VMSLOT_MORE (-1)      /* slot_id of the record that says slots were left out */

/* One KVM memory slot of address space 0. */
struct vmslot_rec {
	unsigned int pid;         /* tgid owning the kvm-vm fd */
	unsigned int fd;
	unsigned long long gpa;   /* base_gfn << 12 */
	unsigned long long size;  /* npages << 12 */
	unsigned long long hva;   /* userspace_addr */
	unsigned int flags;       /* KVM_MEM_* */
	int slot_id;              /* (as_id << 16) | id */
};

/* Which files to walk: key = pid << 32 | fd of a kvm-vm fd seen in /proc. */
#endif
