/* The host side of QMP, the guest agent and the QEMU harness, driven against
 * the hostile peers of tests/hostile_peers.py. Prints "result <rc>" and the
 * figures the script checks on stdout; hatrace's messages go to stderr. */
#include "agent.h"
#include "common.h"
#include "qmp.h"
#include "vm.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define MS 1000000ull

static int usage(void)
{
	fprintf(stderr, "usage: peer_client qmp SOCKET CMD TIMEOUT_MS\n"
			"       peer_client agent SOCKET CMD TIMEOUT_MS [PAD_BYTES]\n"
			"       peer_client agent-trace SOCKET\n"
			"       peer_client qemu-version PATH\n"
			"       peer_client vm-start QEMU READY_TIMEOUT_MS SAVE_PATH\n");
	return 2;
}

static int qmp_mode(char **argv)
{
	struct qmp *q;
	int err = qmp_open(&q, argv[0], 0, 5000 * MS);

	if (!err)
		err = qmp_call(q, argv[1], NULL, NULL, strtoull(argv[2], NULL, 10) * MS);
	qmp_close(q);
	return err;
}

static int agent_mode(int argc, char **argv)
{
	size_t pad = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	json_t *req = json_pack("{s:s}", "cmd", argv[1]), *reply;
	struct agent *a;
	int err;

	if (pad) {
		char *s = malloc(pad + 1);

		memset(s, 'p', pad);
		s[pad] = 0;
		json_object_set_new(req, "pad", json_string(s));
		free(s);
	}
	err = agent_open(&a, argv[0], 0, 5000 * MS);
	if (!err)
		err = agent_call(a, req, strtoull(argv[2], NULL, 10) * MS, &reply);
	else
		json_decref(req);
	if (!err || err == -EREMOTEIO)
		json_decref(reply);
	agent_close(a);
	return err;
}

/* Two trace_reads and their delta, as inflate takes them. */
static int agent_trace_mode(char **argv)
{
	json_t *first = NULL, *second = NULL, *delta;
	struct agent *a;
	int err = agent_open(&a, argv[0], 0, 5000 * MS);

	if (!err)
		err = agent_trace_read(a, &first);
	if (!err)
		err = agent_trace_read(a, &second);
	if (!err) {
		delta = agent_trace_delta(first, second);
		printf("first ");
		json_println(stdout, first);
		printf("delta ");
		json_println(stdout, delta);
	}
	json_decref(first);
	json_decref(second);
	agent_close(a);
	return err;
}

static long long dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long long sum = 0;

	while (d && (e = readdir(d))) {
		char p[512];
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!lstat(p, &st) && S_ISREG(st.st_mode))
			sum += st.st_size;
	}
	if (d)
		closedir(d);
	return sum;
}

/* Starts "QEMU" (a fake one), waits for the agent, which fails, and reports
 * what the console costs on disk and what is saved of it. */
static int vm_start_mode(char **argv)
{
	struct vm_config cfg = { .qemu = argv[0], .accel = ACCEL_TCG, .vcpus = 1,
				 .mem = 256 << 20, .agent = true };
	struct rusage ru;
	struct vm *vm;
	struct stat st;
	int err = vm_start(&vm, &cfg);

	if (err)
		return err;
	err = vm_wait_ready(vm, strtoull(argv[1], NULL, 10) * MS, NULL, 0);
	printf("dir_bytes %lld\n", dir_bytes(vm->dir));
	if (!vm_save_console(vm, argv[2]) && !stat(argv[2], &st))
		printf("saved_bytes %lld\n", (long long)st.st_size);
	vm_destroy(vm);
	getrusage(RUSAGE_SELF, &ru);
	printf("maxrss_kib %ld\n", ru.ru_maxrss);
	return err;
}

int main(int argc, char **argv)
{
	int err;

	if (argc < 3)
		return usage();
	install_signal_handlers();
	if (!strcmp(argv[1], "qmp") && argc == 5)
		err = qmp_mode(argv + 2);
	else if (!strcmp(argv[1], "agent") && (argc == 5 || argc == 6))
		err = agent_mode(argc - 2, argv + 2);
	else if (!strcmp(argv[1], "agent-trace") && argc == 3)
		err = agent_trace_mode(argv + 2);
	else if (!strcmp(argv[1], "qemu-version") && argc == 3) {
		char *v = qemu_version(argv[2]);

		printf("version %s\n", v);
		free(v);
		err = 0;
	} else if (!strcmp(argv[1], "vm-start") && argc == 5)
		err = vm_start_mode(argv + 2);
	else
		return usage();
	printf("result %d\n", err);
	return 0;
}
