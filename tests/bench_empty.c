/* Attaches an empty BPF program to every tracepoint `hatrace hist` uses and
 * waits for SIGINT/SIGTERM: the cost of tracing itself, the benchmark's floor. */
#include "common.h"
#include "empty.skel.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const fixed[][2] = {
	{ "syscalls", "sys_enter_madvise" },  { "syscalls", "sys_exit_madvise" },
	{ "syscalls", "sys_enter_fallocate" }, { "syscalls", "sys_exit_fallocate" },
	{ "syscalls", "sys_enter_process_madvise" }, { "syscalls", "sys_exit_process_madvise" },
	{ "exceptions", "page_fault_user" },  { "kvm", "kvm_exit" },
	{ "kvm", "kvm_entry" },               { "kvm", "kvm_page_fault" },
	{ "kvm", "kvm_unmap_hva_range" },
};

int main(void)
{
	struct bpf_link *links[64];
	struct empty_bpf *skel;
	struct dirent *e;
	int n = 0;
	DIR *d;

	setup_libbpf();
	if (ensure_tracefs() || !(skel = empty_bpf__open_and_load()))
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if ((links[n] = bpf_program__attach_tracepoint(skel->progs.empty, fixed[i][0],
							       fixed[i][1])))
			n++;
	d = opendir("/sys/kernel/tracing/events/kvmmmu");
	while (d && (e = readdir(d)) && n < (int)ARRAY_SIZE(links))
		if (e->d_type == DT_DIR && e->d_name[0] != '.' &&
		    (links[n] = bpf_program__attach_tracepoint(skel->progs.empty, "kvmmmu", e->d_name)))
			n++;
	if (d)
		closedir(d);
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old); /* no signal slips in before the wait */
	install_signal_handlers();
	printf("attached %d\n", n);
	fflush(stdout);
	while (!exiting)
		sigsuspend(&old);
	while (n--)
		bpf_link__destroy(links[n]);
	empty_bpf__destroy(skel);
	return 0;
}
