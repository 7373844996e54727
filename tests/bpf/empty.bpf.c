// SPDX-License-Identifier: GPL-2.0
/* The benchmark's floor: a program that does nothing, attached by
 * tests/bench_empty.c to every tracepoint hatrace hist uses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp")
int empty(void *ctx)
{
	return 0;
}
