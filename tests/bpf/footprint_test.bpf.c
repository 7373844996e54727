// SPDX-License-Identifier: GPL-2.0
/* The production footprint program plus a raw_tp entry point that feeds its
 * handler recorded rss_stat records through BPF_PROG_TEST_RUN. */
#include "footprint.bpf.c"

SEC("raw_tp")
int test_rss_stat(u64 *args) /* mm_id, curr, member, size */
{
	struct trace_event_raw_rss_stat rec = {};

	rec.mm_id = args[0];
	rec.curr = args[1];
	rec.member = args[2];
	rec.size = args[3];
	return handle_rss_stat(&rec);
}
