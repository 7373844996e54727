// SPDX-License-Identifier: GPL-2.0
/* The production host probes plus raw_tp entry points that feed their handlers
 * recorded tracepoint records through BPF_PROG_TEST_RUN (tracepoint programs
 * cannot be test-run; raw_tp ones can, since 5.10). */
#include "hist.bpf.c"

SEC("raw_tp")
int test_madvise(u64 *args) /* start, len, advice */
{
	struct trace_event_raw_sys_enter rec = {};

	rec.args[0] = args[0];
	rec.args[1] = args[1];
	rec.args[2] = args[2];
	handle_madvise_enter(&rec);
	return syscall_exit();
}

SEC("raw_tp")
int test_fallocate(u64 *args) /* mode, len */
{
	struct trace_event_raw_sys_enter rec = {};

	rec.args[1] = args[0];
	rec.args[3] = args[1];
	handle_fallocate_enter(&rec);
	return syscall_exit();
}

SEC("raw_tp")
int test_user_fault(u64 *args) /* address */
{
	struct trace_event_raw_exceptions rec = {};

	rec.address = args[0];
	return handle_user_fault(&rec);
}

SEC("raw_tp")
int test_kvm_exit(u64 *args) /* isa, exit_reason */
{
	struct trace_event_raw_kvm_exit rec = {};

	rec.isa = args[0];
	rec.exit_reason = args[1];
	return handle_kvm_exit(&rec);
}

SEC("raw_tp")
int test_kvm_page_fault(u64 *args) /* gpa, error_code */
{
	struct trace_event_raw_kvm_page_fault rec = {};

	rec.fault_address = args[0];
	rec.error_code = args[1];
	return handle_kvm_page_fault(&rec);
}

SEC("raw_tp")
int test_kvm_entry(u64 *args)
{
	struct trace_event_raw_kvm_entry rec = {};

	return handle_kvm_entry(&rec);
}

SEC("raw_tp")
int test_kvm_unmap_hva_range(u64 *args) /* start, end */
{
	struct trace_event_raw_kvm_unmap_hva_range rec = {};

	rec.start = args[0];
	rec.end = args[1];
	return handle_kvm_unmap_hva_range(&rec);
}

SEC("raw_tp")
int test_fault_done(u64 *args) /* address, fault flags, vm_fault_t */
{
	return handle_fault_done(args[0], args[1], args[2]);
}
