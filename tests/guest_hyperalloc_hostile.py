#!/usr/bin/python3
"""VM test of virtio-hyperalloc-pci against a hostile guest: the hyperalloc
kernel on hatrace's QEMU (512 MiB, MTTCG with 2 vCPUs, -d guest_errors) with a
virtio-balloon-pci next to it. After the guest driver registered its zones,
workloads/ht-hostile takes the device from the kernel and sends it one category
of bad requests at a time: malformed zone descriptors, duplicates and overlaps
and anything after FINISH, out-of-range installs, a buffer on the notify queue,
malformed request buffers and broken rings. After each category: QEMU still
runs, every request got the status the protocol gives it (INVALID, or no answer
and NEEDS_RESET), QEMU logged a line for each, query-hyperalloc's guest-errors
rose by the device's refusals (broken rings are the virtio core's and leave it
alone), and the host sees NEEDS_RESET exactly where the protocol says. Then the
guest driver takes the device back and registers again, a hyperalloc-resize
shrinks and returns, a balloon resize takes effect, the agent answers and dmesg
is clean."""
import json
import os
import re
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_hyperalloc import IMAGE  # noqa: E402
from guest_lib import (boot_and_test, check, finish, plan, require_guest,  # noqa: E402
                       run_workload, skip_all)
from qtest_lib import QEMU  # noqa: E402

MiB = 1 << 20
RAM_MIB = 512
CATEGORIES = ["zones", "overlap", "install", "notify", "buffers", "queue"]
CHECKS_PER_CATEGORY = 5
DEVICE = "/machine/peripheral/ha0/virtio-backend"
BAD_DMESG = r"BUG:|WARNING:|Bad page|nobody cared|soft lockup|hung task|virtio_hyperalloc.*(fail|refused)"


# Unbinds virtio-pci from the device (the driver's remove resets it) and names it.
UNBIND = r"""
for d in /sys/bus/pci/devices/*; do
	[ "$(cat $d/vendor):$(cat $d/device)" = 0x1af4:0x1078 ] || continue
	echo ${d##*/} >$d/driver/unbind && echo "{\"bdf\":\"${d##*/}\"}"
done
"""


def sh(vm, script, timeout=60):
    return vm.agent.req("run", timeout=timeout + 30, argv=["sh", "-c", script], timeout_s=timeout)


def qemu_log(vm):
    with open(os.path.join(vm.dir, "qemu.out"), errors="replace") as f:
        return f.read()


def alive(vm):
    if vm.proc.poll() is not None:
        return False
    try:
        return vm.qmp.cmd("query-status").get("status") == "running"
    except (RuntimeError, OSError, ValueError):
        return False


def needs_reset(vm):
    """NEEDS_RESET as QEMU's virtio core has it for the device."""
    st = vm.qmp.cmd("x-query-virtio-status", path=DEVICE)
    flagged = any("NEEDS_RESET" in s for s in st["status"]["statuses"])
    return flagged, st["broken"]


# The device's guest-error line (qemu_log_mask LOG_GUEST_ERROR).
DEVICE_LINE = re.compile(r"^virtio-hyperalloc: (.*) \(0x[0-9a-f]+, 0x[0-9a-f]+\)$", re.M)


def category(vm, name):
    errors0 = vm.qmp.cmd("query-hyperalloc")["guest-errors"]
    log0 = len(qemu_log(vm))
    got = run_workload(vm.agent, ["ht-hostile", name, "--ram-mib", str(RAM_MIB)], timeout=120)
    reqs = got.get("requests", [])
    print(f"# {name}: {len(reqs)} requests on {got.get('device')} (unbound {got.get('unbound')}), "
          f"device status {got.get('device_status', 0):#x}")
    for r in reqs:
        print(f"#   {r['what']}: status {r['status']} (expect {r['expect']}), needs_reset "
              f"{r['needs_reset']}{', counted' if r['counted'] else ''}")
    wrong = [r["what"] for r in reqs if r["status"] != r["expect"] or
             r["needs_reset"] != r["expect_reset"]]
    check(reqs and not wrong, f"{name}: every request answered as the protocol says",
          f"wrong: {wrong}" if reqs else json.dumps(got)[:400])
    check(alive(vm), f"{name}: QEMU still runs", vm.tail(os.path.join(vm.dir, "qemu.out")))
    log = qemu_log(vm)[log0:]
    for line in log.splitlines():
        print(f"#   QEMU: {line}")
    # Each device refusal has its line, and there are no others; the virtio
    # core's refusals (not counted by the device) each have their error line.
    device = Counter(DEVICE_LINE.findall(log))
    want = Counter(r["log"] for r in reqs if r["counted"])
    quiet = [r["what"] for r in reqs if r["log"] and not r["counted"] and r["log"] not in log]
    check(reqs and device == want and not quiet,
          f"{name}: QEMU logged a line for each refused request, and no other",
          f"device lines {dict(device)}, expected {dict(want)}; no line for {quiet}")
    counted = sum(r["counted"] for r in reqs)
    errors = vm.qmp.cmd("query-hyperalloc")["guest-errors"]
    check(errors - errors0 == counted, f"{name}: guest-errors rose by the {counted} device refusals",
          f"{errors0} -> {errors}")
    # The program resets the device on exit only when a zone points into its memory.
    expect = bool(reqs) and reqs[-1]["expect_reset"]
    flagged, broken = needs_reset(vm)
    check(flagged == broken == expect,
          f"{name}: the host has the device {'broken, NEEDS_RESET' if expect else 'working'}",
          f"NEEDS_RESET {flagged}, broken {broken}")
    return got.get("device")


def other_devices(vm, bdf, zones):
    rep = sh(vm, f"echo {bdf} > /sys/bus/pci/drivers/virtio-pci/bind")
    info = {}
    for _ in range(100):
        info = vm.qmp.cmd("query-hyperalloc")
        if info["registered"]:
            break
        time.sleep(0.1)
    check(rep.get("exit") == 0 and info["registered"] and info["zones"] == zones,
          "the guest driver takes the device back and registers its zones again",
          f"{rep}, {info}")
    vm.qmp.cmd("hyperalloc-resize", value=(RAM_MIB - 64) * MiB)
    shrunk = vm.qmp.cmd("query-hyperalloc")
    vm.qmp.cmd("hyperalloc-resize", value=RAM_MIB * MiB)
    back = vm.qmp.cmd("query-hyperalloc")
    check(shrunk["actual"] == (RAM_MIB - 64) * MiB and back["hard"] == 0 and
          back["actual"] == RAM_MIB * MiB,
          "hyperalloc-resize shrinks by 64 MiB and returns it", f"{shrunk}, {back}")
    vm.qmp.cmd("balloon", value=(RAM_MIB - 128) * MiB)
    actual = 0
    for _ in range(600):
        actual = vm.qmp.cmd("query-balloon")["actual"]
        if actual <= (RAM_MIB - 128) * MiB:
            break
        time.sleep(0.1)
    vm.qmp.cmd("balloon", value=RAM_MIB * MiB)
    check(actual == (RAM_MIB - 128) * MiB, "the balloon inflates by 128 MiB",
          f"actual {actual // MiB} MiB")
    rep = sh(vm, f"dmesg | grep -cE '{BAD_DMESG}' | sed 's/.*/{{\"bad\":&}}/'; dmesg | grep -E '{BAD_DMESG}' | head -3 >&2")
    check(rep.get("exit") == 0 and rep.get("result") == {"bad": 0},
          "the agent answers over virtio-serial, dmesg is clean", f"{rep}")
    check(alive(vm), "QEMU still runs at the end", vm.tail(os.path.join(vm.dir, "qemu.out")))


def test(vm):
    info = vm.qmp.cmd("query-hyperalloc")
    zones = info["zones"]
    rep = sh(vm, UNBIND)
    bdf = (rep.get("result") or {}).get("bdf")
    after = vm.qmp.cmd("query-hyperalloc")
    check(info["registered"] and zones >= 1 and info["guest-errors"] == 0 and bdf and
          not after["registered"],
          "the guest driver registered its zones with no guest error, then lets go (unbind)",
          f"{info}; {rep}; {after}")
    for name in CATEGORIES:
        category(vm, name)
    other_devices(vm, bdf, zones)


def main():
    name = "hyperalloc hostile guest"
    require_guest(name, IMAGE)
    if not os.access(QEMU, os.X_OK):
        skip_all(name, f"{QEMU} is not built (run make)")
    plan(1 + CHECKS_PER_CATEGORY * len(CATEGORIES) + 5)
    qemu = (QEMU, "-d", "guest_errors", "-device", "virtio-hyperalloc-pci,id=ha0")
    boot_and_test(name, test, ready_timeout=300, mem_mib=RAM_MIB, smp=2, kernel=IMAGE, qemu=qemu)
    finish()


if __name__ == "__main__":
    main()
