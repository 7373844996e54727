/* hatrace: measure how VM memory reclamation performs, from the host. */
#include "cmds.h"
#include "common.h"

#include <string.h>

static const struct subcommand subcommands[] = {
	{ "doctor", "report which tracing features this host supports", cmd_doctor },
	{ "hist", "live latency histograms of reclaim syscalls, faults and KVM exits", cmd_hist },
	{ "footprint", "per-process / per-VM RSS over time", cmd_footprint },
	{ "vms", "list the VMs on this host, whatever the hypervisor", cmd_vms },
	{ "inflate", "benchmark shrink, grow and re-install of VM memory per technique", cmd_inflate },
	{ "reproduce", "run every benchmark (resumable) and write a report", cmd_reproduce },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: hatrace [-v] COMMAND [ARGS]\n\n"
		   "Makes VM memory reclamation measurable: latency, interference and footprint.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\nRun 'hatrace COMMAND --help' for a command's options; see hatrace(8).\n");
}

int main(int argc, char **argv)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbose = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			ht_err("unknown option '%s'", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	for (size_t c = 0; c < ARRAY_SIZE(subcommands); c++)
		if (!strcmp(argv[i], subcommands[c].name))
			return subcommands[c].run(argc - i, argv + i) ? 1 : 0;
	ht_err("unknown command '%s' (see 'hatrace --help')", argv[i]);
	return 2;
}
