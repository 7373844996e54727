/* hatrace doctor: what this host supports, probed rather than assumed. */
#include "cmds.h"
#include "common.h"
#include "hostcaps.h"
#include "hostprobes.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Besides hist's own: two kvmmmu events as a sample of the category, and
 * footprint's rss_stat. */
static const struct tracepoint_ref more_tracepoints[] = {
	{ "kvmmmu", "kvm_mmu_set_spte" },
	{ "kvmmmu", "kvm_tdp_mmu_spte_changed" },
	{ "kmem", "rss_stat" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: hatrace doctor [-o text|json]\n\n"
		   "Probes what this host supports: BTF, every tracepoint hatrace uses, tp_btf,\n"
		   "fentry/fexit, kprobes, uprobes/USDT, ring buffer, /dev/kvm (VMX, SVM, PVM or\n"
		   "none), QEMU TCG, QEMU's USDT probes (HATRACE_QEMU, else PATH's QEMU), and\n"
		   "whether this host is itself a VM that reports free pages to its hypervisor.\n"
		   "Needs root for the BPF probes.\n");
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	enum out_fmt fmt = OUT_TEXT;
	struct tracepoint_ref tps[24];
	struct feature fs[48];
	int ntp;
	int n = 0, c, failed = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (parse_out_fmt(optarg, 1 << OUT_TEXT | 1 << OUT_JSON, &fmt))
				return -1;
			break;
		default:
			if (common_option(c, argv, usage))
				return -1;
		}
	}
	if (no_operands(argc, argv))
		return -1;
	if (require_root("hatrace doctor") || ensure_tracefs())
		return -1;
	setup_libbpf();

	feature_btf(&fs[n++]);
	ntp = host_probes_tracepoints(tps, ARRAY_SIZE(tps));
	for (size_t i = 0; i < ARRAY_SIZE(more_tracepoints); i++)
		tps[ntp++] = more_tracepoints[i];
	for (int i = 0; i < ntp; i++)
		feature_tracepoint(tps[i].category, tps[i].event, &fs[n++]);
	feature_tp_btf(&fs[n++]);
	feature_fentry("handle_mm_fault", &fs[n++]);
	feature_kprobe(&fs[n++]);
	feature_uprobe(&fs[n++]);
	feature_ringbuf(&fs[n++]);
	feature_attach_cookie(&fs[n++]);
	feature_task_file_iter(&fs[n++]);
	feature_kvm(&fs[n++]);
	feature_tcg(&fs[n++]);
	feature_qemu_usdt(&fs[n++]);
	feature_host_reporting(&fs[n++]);

	if (fmt == OUT_JSON) {
		json_t *arr = json_array();

		for (int i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s,s:b,s:s}", "name", fs[i].name, "ok",
							     fs[i].ok, "detail", fs[i].detail));
		json_println(stdout, json_pack("{s:o}", "features", arr));
		return 0;
	}
	for (int i = 0; i < n; i++) {
		printf("%-34s %-4s %s\n", fs[i].name, fs[i].ok ? "yes" : "no", fs[i].detail);
		failed += !fs[i].ok;
	}
	printf("\n%d of %d features available\n", n - failed, n);
	return 0;
}
