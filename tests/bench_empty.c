/* Attaches an empty BPF program to every tracepoint `hatrace hist` uses and
 * waits for SIGINT/SIGTERM: the cost of tracing itself, the benchmark's floor. */
#include "common.h"
#include "hostprobes.h"
#include "empty.skel.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


int main(void)
{
	struct bpf_link *links[64];
	struct tracepoint_ref tps[24];
	int ntp = host_probes_tracepoints(tps, ARRAY_SIZE(tps));
	struct empty_bpf *skel;
	struct dirent *e;
	int n = 0;
	DIR *d;

	setup_libbpf();
	if (ensure_tracefs() || !(skel = empty_bpf__open_and_load()))
		return 1;
	for (int i = 0; i < ntp; i++)
		if ((links[n] = bpf_program__attach_tracepoint(skel->progs.empty, tps[i].category,
							       tps[i].event)))
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
