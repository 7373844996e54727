/* hatrace inflate: the command line. */
#include "agent.h"
#include "cmds.h"
#include "common.h"
#include "technique.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hatrace inflate [OPTIONS]\n\n"
		"The inflate benchmark: per iteration a fresh VM touches most of its RAM and\n"
		"frees it, is shrunk to --shrink-to, grown back, and allocates its memory again\n"
		"twice (install, touch2). Reports the host's wall time per phase, a host (BPF)\n"
		"and guest (agent trace) breakdown, and medians with a distribution-free 95%% CI.\n"
		"With hatrace's QEMU, QEMU's own start and end of each resize (USDT) are shown\n"
		"next to the phases. One more iteration per technique runs with every probe off\n"
		"and is not in the medians: the tracing overhead per phase.\n\n"
		"  -t, --technique LIST  virtio-balloon,virtio-balloon-huge,fpr,virtio-mem or all\n"
		"                        (default all; virtio-balloon-huge needs hatrace's QEMU)\n"
		"  -m, --mem SIZE        VM memory (default 2G)\n"
		"  -s, --shrink-to SIZE  shrink target (default 512M)\n"
		"  -c, --vcpus N         vCPUs and workload threads (default 2)\n"
		"  -n, --iterations N    timed iterations per technique (default 5, plus one\n"
		"                        untraced; a default run with --untouched takes about\n"
		"                        10 minutes under TCG on 2 cores)\n"
		"  -u, --untouched       also shrink each fresh VM before it is touched\n"
		"                        (phase shrink_untouched)\n"
		"  -a, --accel MODE      auto|kvm|tcg (default auto: KVM only where /dev/kvm runs\n"
		"                        a stock guest, TCG on PVM hosts; TCG is multi-threaded)\n"
		"  -l, --live            live log2 histograms of reclaim syscalls and faults\n"
		"  -o, --output DIR      results directory (default results/inflate); replaced\n"
		"                        only if empty or an earlier run's results directory\n"
		"      --qemu PATH       QEMU binary (default $HATRACE_QEMU, else hatrace's own\n"
		"                        build/qemu/qemu-system-x86_64, else qemu-system-x86_64\n"
		"                        on PATH)\n"
		"      --kernel PATH     guest kernel (default build/guest/bzImage-FLAVOUR, the\n"
		"                        techniques' kernel flavour, else build/guest/bzImage)\n"
		"      --initrd PATH     guest initramfs (default build/guest/initramfs.cpio.gz)\n"
		"      --append ARGS     guest kernel command line (default build/guest/cmdline)\n"
		"      --boot-timeout S  seconds to wait for the guest agent (default 300)\n"
		"      --integrity SIZE  keep SIZE of patterned memory in the guest through all\n"
		"                        phases and fail if any page of it changed\n\n"
		"Timing: shrink/grow run from the QMP command until QMP reports the target and,\n"
		"for a shrink, QEMU's RSS (/proc) has stopped falling. FPR's shrink runs from\n"
		"the end of touch (the guest freed its memory) to RSS's last fall; FPR has no\n"
		"grow. install and touch2 are the guest-timed passes of one ht-alloc-install run.\n\n"
		"DIR gets meta.json, iterations.csv, guest-events.csv, rss.csv, summary.json,\n"
		"trace.json, consoles/ and inflate-speed / inflate-rss plots (PNG, SVG).\n");
}

/* LIST: names or "all"; the selection keeps the table's order. */
static int parse_techniques(const char *list, const struct technique ***sel)
{
	char *copy = strdup(list), *tok, *save = NULL;
	size_t ntech = 0, n = 0;
	bool all = false;
	int err = 0;

	while (techniques[ntech])
		ntech++;
	free(*sel);
	*sel = calloc(ntech + 1, sizeof(**sel));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
		if (strcmp(tok, "all") && !technique_find(tok)) {
			ht_err("--technique: unknown technique '%s' (expected %s or all)", tok,
			       technique_names());
			err = -EINVAL;
			break;
		}
		all |= !strcmp(tok, "all");
	}
	if (!err && !n) {
		ht_err("--technique: no technique given (expected %s or all)", technique_names());
		err = -EINVAL;
	}
	for (size_t t = 0, k = 0; !err && t < ntech; t++) {
		bool named = all;

		strcpy(copy, list);
		for (tok = strtok_r(copy, ",", &save); tok && !named; tok = strtok_r(NULL, ",", &save))
			named = !strcmp(tok, techniques[t]->name);
		if (named)
			(*sel)[k++] = techniques[t];
	}
	free(copy);
	return err;
}

static char *default_file(const char *opt, const char *rel, const char *alt)
{
	char *p = exe_relative(rel);

	if (p && !access(p, R_OK))
		return p;
	free(p);
	p = exe_relative(alt);
	if (p && !access(p, R_OK))
		return p;
	free(p);
	p = exe_relative(rel);
	ht_err("%s: %s not found (build the guest with 'make', or pass %s PATH)", opt,
	       p ? p : rel, opt);
	free(p);
	return NULL;
}

static uint64_t host_mem_available(void)
{
	static const char *const key[] = { "MemAvailable" };
	uint64_t avail;

	return proc_fields("/proc/meminfo", key, &avail, 1) == 1 ? avail : 0;
}

/* The guest build's kernel command line (build/guest/cmdline), else its default. */
static const char *guest_cmdline(void)
{
	static char line[1024];
	char *path = exe_relative("guest/cmdline");
	FILE *f = path ? fopen(path, "r") : NULL;

	free(path);
	snprintf(line, sizeof(line), "console=ttyS0 memhp_default_state=online_movable panic=-1");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		line[strcspn(line, "\n")] = 0;
	}
	return line;
}

/* -o DIR: trailing slashes are dropped; "", "/", "." and ".." are refused. */
static int parse_out_dir(const char *arg, struct opts *o)
{
	size_t n = strlen(arg);
	const char *base;

	while (n > 1 && arg[n - 1] == '/')
		n--;
	if (!n) {
		ht_err("--output: empty path");
		return -EINVAL;
	}
	if (n > PATH_MAX - 64) {
		ht_err("--output: path too long");
		return -ENAMETOOLONG;
	}
	free(o->out_dir);
	o->out_dir = strndup(arg, n);
	base = strrchr(o->out_dir, '/');
	base = base ? base + 1 : o->out_dir;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		ht_err("--output: '%s' is not a directory hatrace can replace; name one, e.g. "
		       "results/run1", arg);
		return -EINVAL;
	}
	return 0;
}

/* A technique that needs a device property of hatrace's QEMU: clear error. */
static bool qemu_lacks_property(const struct opts *o)
{
	for (const struct technique **t = o->tech; *t; t++) {
		const char *prop = (*t)->qemu_property;
		char dev[64];

		if (!prop)
			continue;
		snprintf(dev, sizeof(dev), "%.*s", (int)(strchr(prop, '.') - prop), prop);
		if (!qemu_has_property(o->qemu, dev, strchr(prop, '.') + 1)) {
			ht_err("%s needs a QEMU whose %s has the '%s' property (hatrace's own "
			       "build: make qemu); %s lacks it (choose it with --qemu PATH)",
			       (*t)->name, dev, strchr(prop, '.') + 1, o->qemu);
			return true;
		}
	}
	return false;
}

/* The guest kernel of the selected techniques' flavour (one for all of them). */
static char *default_kernel(const struct opts *o)
{
	const char *flavour = o->tech[0]->kernel;
	char rel[64];

	for (const struct technique **t = o->tech; *t; t++) {
		if (strcmp((*t)->kernel, flavour)) {
			ht_err("--technique: %s needs the %s guest kernel, %s the %s one: run them "
			       "separately or pass --kernel", o->tech[0]->name, flavour, (*t)->name,
			       (*t)->kernel);
			return NULL;
		}
	}
	snprintf(rel, sizeof(rel), "guest/bzImage-%s", flavour);
	return default_file("--kernel", rel, "guest/bzImage");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_QEMU = 256, O_KERNEL, O_INITRD, O_APPEND, O_BOOT_TIMEOUT, O_INTEGRITY };
	static const struct option longopts[] = {
		{ "technique", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "shrink-to", required_argument, NULL, 's' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "untouched", no_argument, NULL, 'u' },
		{ "accel", required_argument, NULL, 'a' },
		{ "live", no_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		{ "qemu", required_argument, NULL, O_QEMU },
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "append", required_argument, NULL, O_APPEND },
		{ "boot-timeout", required_argument, NULL, O_BOOT_TIMEOUT },
		{ "integrity", required_argument, NULL, O_INTEGRITY },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *qemu = NULL, *kernel = NULL, *initrd = NULL;
	uint64_t v;
	int c;

	if (parse_techniques("all", &o->tech))
		return -EINVAL;
	o->mem = 2 * GiB;
	o->shrink_to = 512 * MiB;
	o->vcpus = 2;
	o->iterations = 5;
	o->out_dir = strdup("results/inflate");
	o->boot_timeout_ns = 300 * SEC;
	o->append = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:m:s:c:n:ua:lo:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_techniques(optarg, &o->tech))
				return -EINVAL;
			break;
		case 'm':
			if (parse_size("--mem", optarg, &o->mem))
				return -EINVAL;
			break;
		case 's':
			if (parse_size("--shrink-to", optarg, &o->shrink_to))
				return -EINVAL;
			break;
		case 'c':
			if (parse_u64("--vcpus", optarg, 1, 64, &v))
				return -EINVAL;
			o->vcpus = v;
			break;
		case 'n':
			if (parse_u64("--iterations", optarg, 1, 1000, &v))
				return -EINVAL;
			o->iterations = v;
			break;
		case 'u':
			o->untouched = true;
			break;
		case 'a':
			if (parse_accel(optarg, &o->accel))
				return -EINVAL;
			break;
		case 'l':
			o->live = true;
			break;
		case 'o':
			if (parse_out_dir(optarg, o))
				return -EINVAL;
			break;
		case O_QEMU:
			qemu = optarg;
			break;
		case O_KERNEL:
			kernel = optarg;
			break;
		case O_INITRD:
			initrd = optarg;
			break;
		case O_APPEND:
			o->append = optarg;
			break;
		case O_BOOT_TIMEOUT:
			if (parse_seconds_ns("--boot-timeout", optarg, SEC, 3600 * SEC,
					     &o->boot_timeout_ns))
				return -EINVAL;
			break;
		case O_INTEGRITY:
			if (parse_size("--integrity", optarg, &o->integrity))
				return -EINVAL;
			break;
		default:
			if (common_option(c, argv, usage))
				return -EINVAL;
		}
	}
	if (no_operands(argc, argv) || out_dir_replaceable(o->out_dir, true))
		return -EINVAL;
	if (o->mem % (128 * MiB) || o->mem < 256 * MiB) {
		ht_err("--mem: %llu MiB is not a multiple of 128 MiB of at least 256 MiB",
		       (unsigned long long)(o->mem / MiB));
		return -EINVAL;
	}
	if (o->shrink_to % (2 * MiB) || o->shrink_to < 128 * MiB) {
		ht_err("--shrink-to: must be a multiple of 2 MiB and at least 128 MiB");
		return -EINVAL;
	}
	if (o->shrink_to >= o->mem) {
		ht_err("--shrink-to (%llu MiB) must be smaller than --mem (%llu MiB)",
		       (unsigned long long)(o->shrink_to / MiB), (unsigned long long)(o->mem / MiB));
		return -EINVAL;
	}
	for (const struct technique **t = o->tech; *t; t++)
		if ((*t)->check_opts && (*t)->check_opts(o))
			return -EINVAL;
	if (o->mem > host_mem_available() / 10 * 9) {
		ht_err("--mem: %llu MiB does not fit in this host's available memory (%llu MiB)",
		       (unsigned long long)(o->mem / MiB),
		       (unsigned long long)(host_mem_available() / MiB));
		return -EINVAL;
	}
	if (o->integrity > o->shrink_to / 4) {
		ht_err("--integrity: at most a quarter of --shrink-to (%llu MiB), or the shrink "
		       "cannot reach its target", (unsigned long long)(o->shrink_to / 4 / MiB));
		return -EINVAL;
	}
	if (o->accel == ACCEL_KVM && accel_resolve(ACCEL_AUTO, o->accel_why,
						   sizeof(o->accel_why)) != ACCEL_KVM)
		ht_warn("--accel kvm: %s; the guest will probably never boot", o->accel_why);
	o->accel = accel_resolve(o->accel, o->accel_why, sizeof(o->accel_why));
	if (!(o->qemu = qemu_find(qemu)))
		return -ENOENT;
	if (!qemu_check(o->qemu, qemu ? "--qemu" : "QEMU") || qemu_lacks_property(o))
		return -EINVAL;
	o->kernel = kernel ? realpath(kernel, NULL) : default_kernel(o);
	if (!o->kernel) {
		if (kernel)
			ht_err("--kernel: %s: %s", kernel, strerror(errno));
		return -ENOENT;
	}
	o->initrd = initrd ? realpath(initrd, NULL)
			   : default_file("--initrd", "guest/initramfs.cpio.gz",
					  "guest/initramfs.cpio.gz");
	if (!o->initrd) {
		if (initrd)
			ht_err("--initrd: %s: %s", initrd, strerror(errno));
		return -ENOENT;
	}
	if (!o->append)
		o->append = guest_cmdline();
	o->progress = isatty(2);
	return 0;
}

int cmd_inflate(int argc, char **argv)
{
	struct opts o = { 0 };
	struct tech_results *res;
	char tmp[PATH_MAX], guest_kernel[128] = "unknown", path[PATH_MAX];
	size_t ntech = 0;
	int err = 0;

	if (parse_args(argc, argv, &o))
		return 1;
	install_signal_handlers();
	setup_libbpf();
	fprintf(stderr, "hatrace inflate: %s (%s); %llu MiB VM -> %llu MiB, %u vCPUs, %u iterations\n",
		accel_name(o.accel), o.accel_why, (unsigned long long)(o.mem / MiB),
		(unsigned long long)(o.shrink_to / MiB), o.vcpus, o.iterations);
	while (o.tech[ntech])
		ntech++;
	res = calloc(ntech + 1, sizeof(*res));
	if (out_dir_create_tmp(o.out_dir, tmp, sizeof(tmp)))
		return 1;

	for (size_t t = 0; t < ntech && !err; t++) {
		struct run r = { .o = &o, .t = o.tech[t] };

		res[t].t = o.tech[t];
		res[t].its = calloc(o.iterations, sizeof(*res[t].its));
		for (unsigned i = 0; i < o.iterations; i++)
			res[t].its[i].integrity_pages = res[t].its[i].integrity_bad = -1;
		/* i = -1: the iteration with every probe off, the overhead's baseline */
		for (int i = -1; i < (int)o.iterations && !err; i++) {
			struct iteration *it = i < 0 ? &res[t].untraced : &res[t].its[i];

			r.untraced = i < 0;
			r.iter = i < 0 ? 0 : i;
			err = run_iteration(&r, it);
			if (!err) {
				if (i < 0)
					snprintf(path, sizeof(path), "%s/consoles/%s-untraced.log", tmp,
						 r.t->name);
				else
					snprintf(path, sizeof(path), "%s/consoles/%s-%d.log", tmp,
						 r.t->name, i + 1);
				vm_save_console(r.vm, path);
				snprintf(guest_kernel, sizeof(guest_kernel), "%s", it->guest_kernel);
				if (i == 0)
					res[t].clock_offset = r.clock_offset;
				res[t].has_untraced |= i < 0;
			}
			end_vm(&r, !err);
			if (err == -EINTR)
				ht_err("interrupted");
		}
	}
	if (err) {
		remove_tree(tmp);
	} else {
		/* Measuring is done: from here on a failure keeps the data. */
		json_t *summary = summary_json(res, &o), *meta = meta_json(&o, argc, argv, guest_kernel);

		overhead_summary(summary, res, &o);
		qemu_phases_summary(summary, res, &o);

		err = write_results(tmp, res, &o, summary, meta);
		if (!err) {
			run_plots(tmp);
			err = out_dir_commit(tmp, o.out_dir);
		}
		if (err) {
			ht_err("the data of this run is kept in %s", tmp);
		} else {
			print_table(res, &o);
			print_breakdown(summary, o.accel == ACCEL_KVM);
			qemu_phases_print(summary);
			overhead_print(summary);
			printf("results are in %s\n", o.out_dir);
		}
		json_decref(summary);
		json_decref(meta);
	}
	for (size_t t = 0; t < ntech; t++) {
		for (unsigned i = 0; res[t].its && i < o.iterations; i++)
			for (int p = 0; p < PH_MAX; p++)
				json_decref(res[t].its[i].ph[p].guest);
		for (int p = 0; p < PH_MAX; p++)
			json_decref(res[t].untraced.ph[p].guest);
		free(res[t].its);
	}
	free(res);
	free(o.tech);
	free(o.out_dir);
	free(o.qemu);
	free(o.kernel);
	free(o.initrd);
	return err || exiting ? 1 : 0;
}
