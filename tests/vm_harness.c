/* The QEMU harness (user/harness/vm.c, qmp.c) without a guest: QEMU starts
 * paused, QMP answers, the device configs inflate uses are accepted, and
 * destroying the VM leaves no process, socket or temp dir behind. */
#include "check.h"
#include "common.h"
#include "qmp.h"
#include "vm.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct vm *start(const char *qemu, uint64_t mem, uint64_t maxmem, const char *const *dev)
{
	struct vm_config cfg = { .qemu = qemu, .accel = ACCEL_TCG, .vcpus = 1, .mem = mem,
				 .maxmem = maxmem, .devices = dev, .agent = true, .paused = true };
	struct vm *vm;

	return vm_start(&vm, &cfg) ? NULL : vm;
}

static bool gone(int pid, const char *dir)
{
	return !pid_alive(pid) && access(dir, F_OK) != 0;
}

int main(void)
{
	char *qemu = qemu_find(NULL), dir[64], why[160];
	const char *balloon[] = { "-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on",
				  NULL };
	const char *vmem[] = { "-object", "memory-backend-ram,id=vmem0mem,size=768M", "-device",
			       "virtio-mem-pci,id=vmem0,memdev=vmem0mem,requested-size=768M", NULL };
	struct vm *vm;
	json_t *ret;
	uint64_t v;
	int pid;

	if (!qemu) {
		skip("vm_harness", "no qemu-system-x86_64");
		plan(1);
		return 0;
	}
	plan(15);
	enum accel a = accel_resolve(ACCEL_AUTO, why, sizeof(why));
	check(a == ACCEL_TCG || access("/sys/module/kvm_pvm", F_OK) != 0, "vm_accel_auto_pvm",
	      "auto picked %s on a PVM host (%s)", accel_name(a), why);

	vm = start(qemu, 256 << 20, 0, balloon);
	if (!check(vm, "vm_start_balloon", "QEMU with virtio-balloon did not start"))
		return check_exit();
	pid = vm->pid;
	snprintf(dir, sizeof(dir), "%s", vm->dir);
	check(!qmp_call(vm->qmp, "query-status", NULL, &ret, 5000000000ull) &&
		      !strcmp(json_string_value(json_object_get(ret, "status")) ?: "", "prelaunch"),
	      "vm_qmp_status", "query-status did not say prelaunch");
	json_decref(ret);
	check(vm_rss(vm) > 1 << 20, "vm_rss", "RSS %llu", (unsigned long long)vm_rss(vm));
	check(qmp_call(vm->qmp, "no-such-command", NULL, NULL, 5000000000ull) == -EREMOTEIO,
	      "vm_qmp_error", "an unknown command did not fail");
	vm_destroy(vm);
	check(gone(pid, dir), "vm_destroy_cleans", "QEMU %d or %s still there", pid, dir);

	vm = start(qemu, 256 << 20, 1024 << 20, vmem);
	if (check(vm, "vm_start_virtio_mem", "QEMU with virtio-mem did not start")) {
		check(!qmp_qom_get_u64(vm->qmp, "/machine/peripheral/vmem0", "requested-size", &v) &&
			      v == 768u << 20,
		      "vm_qom_get", "requested-size %llu", (unsigned long long)v);
		check(!qmp_qom_set_u64(vm->qmp, "/machine/peripheral/vmem0", "requested-size",
				       256 << 20),
		      "vm_qom_set", "qom-set requested-size failed");
		pid = vm->pid;
		snprintf(dir, sizeof(dir), "%s", vm->dir);
		check(!vm_shutdown(vm, 5000000000ull) && gone(pid, dir), "vm_shutdown_quit",
		      "QMP quit did not end QEMU cleanly");
	}

	/* QEMU killed under us: calls fail with a clear error, cleanup still works. */
	vm = start(qemu, 256 << 20, 0, balloon);
	if (check(vm, "vm_start_again", "QEMU did not start")) {
		pid = vm->pid;
		snprintf(dir, sizeof(dir), "%s", vm->dir);
		kill(pid, SIGKILL);
		usleep(200000);
		check(qmp_call(vm->qmp, "query-status", NULL, NULL, 5000000000ull) < 0 &&
			      !vm_alive(vm),
		      "vm_killed_detected", "a killed QEMU still answered");
		check(strstr(vm_exit_reason(vm, why, sizeof(why)), "signal 9") != NULL,
		      "vm_exit_reason", "reason '%s'", why);
		vm_destroy(vm);
		check(gone(pid, dir), "vm_killed_cleans", "%s still there", dir);
	}

	/* A bad device: QEMU exits at once and vm_start says so. */
	const char *bad[] = { "-device", "no-such-device", NULL };
	check(start(qemu, 256 << 20, 0, bad) == NULL, "vm_bad_config_fails",
	      "QEMU started with an unknown device");
	free(qemu);
	return check_exit();
}
