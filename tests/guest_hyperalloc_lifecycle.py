#!/usr/bin/python3
"""VM test of virtio-hyperalloc's lifecycle with hatrace's QEMU (qemu/patches/0003) and the
guest driver (kernel/patches/hyperalloc/0004), 1 GiB guests under MTTCG with 2 vCPUs, each
with virtio-balloon-pci, virtio-mem-pci (512 MiB behind maxmem) and virtio-hyperalloc-pci:
- baseline kernel: the balloon and virtio-mem drivers bind next to the hyperalloc device
  (which has no driver there); virtio-mem plugs and unplugs 256 MiB (QMP size, MemTotal);
  hyperalloc-resize with no driver keeps the target and holds nothing;
- hyperalloc kernel: all three drivers bind; virtio-mem plugs 256 MiB, onlined to
  ZONE_MOVABLE (buddy, kernel/patches/hyperalloc/0006), and hyperalloc shrinks and returns
  512 MiB while it is plugged; a boot memory block of a HyperAlloc zone refuses to go
  offline; the balloon inflates and deflates 256 MiB and hyperalloc shrinks and returns
  512 MiB, each seen by QMP and by the guest's MemTotal (HyperAlloc's by the config
  interrupt that makes the guest reconcile); both shrunk at once under the integrity
  workload; no guest errors, no notify queue spin, clean dmesg;
- reboot after a shrink, guest-initiated (reboot -f) and by QMP system_reset: the driver
  registers again, the target is kept and applied again (query-hyperalloc and MemTotal),
  the guest uses its memory shrunk and then all of it once returned (integrity workload,
  0 bad pages), another shrink works, dmesg stays clean;
- migrate is refused naming the device, and the VM runs on.
Single-threaded TCG's refusal is checked by tests/qemu_hyperalloc.py."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_hyperalloc import IMAGE, check_clean, check_dmesg, state  # noqa: E402
from guest_lib import (boot_and_test, check, finish, plan, require_guest,  # noqa: E402
                       run_workload, skip_all)
from qtest_lib import QEMU  # noqa: E402

MiB = 1 << 20
MEM_MIB, VMEM_MIB = 1024, 512
BALLOON_MIB, HA_SHRINK_MIB, VMEM_PLUG_MIB = 256, 512, 256
VMEM = "/machine/peripheral/vmem0"
DEVICE_ARGS = ("-device", "virtio-hyperalloc-pci,id=ha0")
# virtio device ids (include/uapi/linux/virtio_ids.h, kernel/uapi/virtio_hyperalloc.h)
ID_BALLOON, ID_MEM, ID_HYPERALLOC = 0x05, 0x18, 0x38
DRIVERS = {ID_BALLOON: "virtio_balloon", ID_MEM: "virtio_mem", ID_HYPERALLOC: "virtio_hyperalloc"}

# One JSON line: the guest's virtio devices (virtio id -> bound driver, "-" for none) and
# the count of virtio_hyperalloc lines that mean a protocol problem (an unknown host
# request, e.g. a notify buffer the host returned unused, or a lost notify buffer).
DEVICES = r"""
warnings=$(dmesg | grep -c -E 'virtio_hyperalloc.*(unknown host request|notify buffer lost)|vha_notify_work')
for d in /sys/bus/virtio/devices/virtio*; do
	drv=-; [ -e $d/driver ] && drv=$(basename $(readlink $d/driver))
	echo "$(cat $d/device) $drv"
done | awk -v warnings="$warnings" '
{ printf "%s\"%s\":\"%s\"", n++ ? "," : "{\"devices\":{", $1, $2 }
END { printf "%s},\"warnings\":%d}\n", n ? "" : "{\"devices\":{", warnings }'
"""


def devices(vm):
    """{virtio id: driver name or "-"}, and the count of driver warnings."""
    rep = vm.agent.req("run", argv=["sh", "-c", DEVICES])
    got = rep.get("result") if rep.get("exit") == 0 else None
    if not isinstance(got, dict):
        raise RuntimeError(f"listing virtio devices: {rep}")
    return {int(k, 16): v for k, v in got["devices"].items()}, got["warnings"]


def mem_total(vm):
    return vm.agent.req("meminfo").get("MemTotal", 0)


def wait_for(cond, timeout, step=0.5):
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got or time.monotonic() > end:
            return got
        time.sleep(step)


def query(vm):
    return vm.qmp.cmd("query-hyperalloc")


def registered(vm, timeout=60):
    """query-hyperalloc once the guest driver registered (or the last one after timeout)."""
    wait_for(lambda: query(vm)["registered"], timeout)
    return query(vm)


def resize(vm, mib):
    t0 = time.monotonic()
    vm.qmp.cmd("hyperalloc-resize", value=mib * MiB)
    return time.monotonic() - t0


def shrunk_to(q, mib):
    return (q["registered"] and q["target"] == mib * MiB and q["actual"] == mib * MiB
            and q["hard"] == (MEM_MIB - mib) * MiB and q["guest-errors"] == 0)


def total_is(vm, want, slack=0):
    """MemTotal once it is within slack of want (the guest reconciles on an interrupt)."""
    return wait_for(lambda: abs(mem_total(vm) - want) <= slack, 20) and mem_total(vm)


def integrity(vm, label, fill_mib, touch_mib):
    """Checksummed pages held across ht-touch of touch_mib; 0 bad pages."""
    where = ["--threads", "2"]
    fill = run_workload(vm.agent, ["ht-integrity", "fill", "--bytes", f"{fill_mib}M", *where])
    touch = run_workload(vm.agent, ["ht-touch", "--bytes", f"{touch_mib}M", "--threads", "2"])
    stop = run_workload(vm.agent, ["ht-integrity", "stop", *where])
    pages = fill_mib * MiB // 4096
    check(fill.get("pages") == pages and touch.get("pages") == touch_mib * MiB // 4096
          and stop.get("pages") == pages and stop.get("bad_pages") == 0,
          f"{label}: {fill_mib} MiB checksummed across ht-touch of {touch_mib} MiB, 0 bad pages",
          f"fill {fill} touch {touch} stop {stop}")


def check_guest_clean(vm, label):
    """Clean dmesg and allocator check, no driver warnings, no guest errors at the host."""
    found, warnings = devices(vm)
    q = query(vm)
    check(warnings == 0 and q["guest-errors"] == 0,
          f"{label}: no virtio_hyperalloc warnings in the guest, 0 guest errors at the host",
          f"{warnings} warning lines, guest-errors {q['guest-errors']}")
    st = state(vm.agent)
    check(check_clean(st["check"]), f"{label}: debugfs hyperalloc/check clean", st["check"])
    check_dmesg(st, label)


def vmem_size(vm):
    return vm.qmp.cmd("qom-get", path=VMEM, property="size")


def vmem_plug(vm, label, base):
    """virtio-mem plugs VMEM_PLUG_MIB: QMP size and the guest's MemTotal (from base)."""
    vm.qmp.cmd("qom-set", path=VMEM, property="requested-size", value=VMEM_PLUG_MIB * MiB)
    t0 = time.monotonic()
    size = wait_for(lambda: vmem_size(vm) == VMEM_PLUG_MIB * MiB
                    and mem_total(vm) >= base + VMEM_PLUG_MIB * MiB, 120)
    print(f"# {label}: virtio-mem plugged {VMEM_PLUG_MIB} MiB in {time.monotonic() - t0:.1f} s, "
          f"MemTotal {base // MiB} -> {mem_total(vm) // MiB} MiB")
    check(size, f"{label}: virtio-mem plugs {VMEM_PLUG_MIB} MiB (QMP size, MemTotal)",
          f"size {vmem_size(vm)}, MemTotal {mem_total(vm)}")


def vmem_unplug(vm, label, base):
    vm.qmp.cmd("qom-set", path=VMEM, property="requested-size", value=0)
    t0 = time.monotonic()
    size = wait_for(lambda: vmem_size(vm) == 0 and mem_total(vm) == base, 120)
    print(f"# {label}: virtio-mem unplugged in {time.monotonic() - t0:.1f} s")
    check(size, f"{label}: virtio-mem unplugs it again (QMP size 0, MemTotal as before)",
          f"size {vmem_size(vm)}, MemTotal {mem_total(vm)} vs {base}")


def run_sh(vm, script):
    """The JSON object that script prints last."""
    rep = vm.agent.req("run", argv=["sh", "-c", script])
    if rep.get("exit") != 0 or not isinstance(rep.get("result"), dict):
        raise RuntimeError(f"guest sh -c {script!r}: {rep}")
    return rep["result"]


# {zone name: managed pages} of node 0
MANAGED = r"""awk '/^Node / { z = ($2 == "0,") ? $4 : "" }
z != "" && $1 == "managed" { printf "%s\"%s\":%s", n++ ? "," : "{", z, $2 }
END { print n ? "}" : "{}" }' /proc/zoneinfo"""

# Asks the memory block holding the middle of boot RAM to go offline.
OFFLINE = r"""dir=/sys/devices/system/memory
block=$(( 0x$(cat $dir/block_size_bytes) ))
state=$dir/memory$(( %d / block ))/state
echo offline 2>/dev/null > $state; rc=$?
printf '{"block":%%d,"rc":%%d,"state":"%%s"}\n' $block $rc "$(cat $state)"
"""


def managed_pages(vm):
    return run_sh(vm, MANAGED)


def test_hotplug(vm, base):
    """virtio-mem on the hyperalloc kernel: its memory goes to ZONE_MOVABLE under buddy, and
    HyperAlloc shrinks and returns its own zones meanwhile."""
    label = "hyperalloc kernel, virtio-mem"
    before = managed_pages(vm)
    vmem_plug(vm, label, base)
    after = managed_pages(vm)
    print(f"# {label}: managed pages before {before}, after {after}")
    moved = {z: after.get(z, 0) - before.get(z, 0) for z in after}
    check(moved.get("Movable") == VMEM_PLUG_MIB * MiB // 4096
          and all(v == 0 for z, v in moved.items() if z != "Movable"),
          f"{label}: the plugged {VMEM_PLUG_MIB} MiB are onlined to ZONE_MOVABLE, no other zone grows",
          f"managed pages gained per zone {moved}")
    took = resize(vm, HA_SHRINK_MIB)
    q = query(vm)
    want = base + (VMEM_PLUG_MIB - MEM_MIB + HA_SHRINK_MIB) * MiB
    check(shrunk_to(q, HA_SHRINK_MIB) and total_is(vm, want),
          f"{label}: hyperalloc shrinks to {HA_SHRINK_MIB} MiB with virtio-mem plugged (QMP, MemTotal)",
          f"{took * 1000:.1f} ms, {json.dumps(q)}, MemTotal {mem_total(vm)} vs {want}")
    resize(vm, MEM_MIB)
    check(shrunk_to(query(vm), MEM_MIB) and total_is(vm, base + VMEM_PLUG_MIB * MiB),
          f"{label}: hyperalloc returns it, virtio-mem still plugged (QMP, MemTotal)",
          f"{json.dumps(query(vm))}, MemTotal {mem_total(vm)}")
    vmem_unplug(vm, label, base)
    # A block in the middle of boot RAM (DMA32, a HyperAlloc zone) may not go offline:
    # start_isolate_page_range refuses HyperAlloc zones.
    got = run_sh(vm, OFFLINE % (MEM_MIB // 2 * MiB))
    print(f"# {label}: offline the boot memory block at {MEM_MIB // 2} MiB: {got}")
    check(got["rc"] != 0 and got["state"] == "online" and mem_total(vm) == base,
          f"{label}: a boot memory block of a HyperAlloc zone refuses to go offline, MemTotal kept",
          f"{got}, MemTotal {mem_total(vm)} vs {base}")


def test_baseline(vm):
    """virtio-mem (and the balloon) on the baseline kernel next to the hyperalloc device."""
    label = "baseline kernel"
    found, _ = devices(vm)
    print(f"# {label}: virtio devices {found}")
    check(found.get(ID_BALLOON) == "virtio_balloon" and found.get(ID_MEM) == "virtio_mem"
          and found.get(ID_HYPERALLOC) == "-",
          f"{label}: balloon and virtio-mem drivers bind, the hyperalloc device is there unbound",
          str(found))
    base = mem_total(vm)
    vmem_plug(vm, label, base)
    vmem_unplug(vm, label, base)
    resize(vm, HA_SHRINK_MIB)
    q = query(vm)
    check(not q["registered"] and q["target"] == HA_SHRINK_MIB * MiB
          and q["actual"] == MEM_MIB * MiB and q["hard"] == 0,
          f"{label}: hyperalloc-resize with no driver keeps the target and holds nothing",
          json.dumps(q))
    check_dmesg(state(vm.agent), label)


def test_coexist(vm):
    """The balloon and virtio-hyperalloc on the hyperalloc kernel, each resized in turn."""
    label = "hyperalloc kernel"
    q = registered(vm)
    print(f"# {label}: {json.dumps(q)}")
    check(q["registered"] and q["zones"] >= 1 and q["actual"] == MEM_MIB * MiB and q["hard"] == 0,
          f"{label}: the driver registers its zones, nothing held", json.dumps(q))
    found, _ = devices(vm)
    print(f"# {label}: virtio devices {found}")
    check(found.get(ID_BALLOON) == "virtio_balloon" and found.get(ID_HYPERALLOC) == "virtio_hyperalloc"
          and found.get(ID_MEM) == "virtio_mem",
          f"{label}: balloon, virtio-mem and hyperalloc drivers all bind", str(found))
    base = mem_total(vm)
    test_hotplug(vm, base)

    vm.qmp.cmd("balloon", value=(MEM_MIB - BALLOON_MIB) * MiB)
    t0 = time.monotonic()
    got = wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == (MEM_MIB - BALLOON_MIB) * MiB, 180)
    took = time.monotonic() - t0
    total = total_is(vm, base - BALLOON_MIB * MiB)
    print(f"# {label}: balloon inflated {BALLOON_MIB} MiB in {took:.1f} s, MemTotal "
          f"{base // MiB} -> {mem_total(vm) // MiB} MiB")
    check(got and total, f"{label}: balloon inflates {BALLOON_MIB} MiB (query-balloon, MemTotal)",
          f"actual {vm.qmp.cmd('query-balloon')['actual']}, MemTotal {mem_total(vm)} vs {base}")
    vm.qmp.cmd("balloon", value=MEM_MIB * MiB)
    got = wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == MEM_MIB * MiB, 180)
    check(got and total_is(vm, base), f"{label}: balloon deflates again (query-balloon, MemTotal)",
          f"actual {vm.qmp.cmd('query-balloon')['actual']}, MemTotal {mem_total(vm)} vs {base}")

    took = resize(vm, HA_SHRINK_MIB)
    q = query(vm)
    total = total_is(vm, base - (MEM_MIB - HA_SHRINK_MIB) * MiB)
    print(f"# {label}: hyperalloc-resize {HA_SHRINK_MIB} MiB replied in {took * 1000:.1f} ms, "
          f"MemTotal {base // MiB} -> {mem_total(vm) // MiB} MiB; {json.dumps(q)}")
    check(shrunk_to(q, HA_SHRINK_MIB),
          f"{label}: hyperalloc-resize shrinks to {HA_SHRINK_MIB} MiB (query-hyperalloc)", json.dumps(q))
    check(total, f"{label}: the guest's MemTotal follows the shrink (reconciled on the config interrupt)",
          f"MemTotal {mem_total(vm)}, expected {base - (MEM_MIB - HA_SHRINK_MIB) * MiB}")
    took = resize(vm, MEM_MIB)
    q = query(vm)
    print(f"# {label}: hyperalloc-resize {MEM_MIB} MiB replied in {took * 1000:.1f} ms")
    check(shrunk_to(q, MEM_MIB) and total_is(vm, base),
          f"{label}: hyperalloc-resize returns it (query-hyperalloc, MemTotal)",
          f"{json.dumps(q)}, MemTotal {mem_total(vm)} vs {base}")

    # Both at once under the integrity workload.
    vm.qmp.cmd("balloon", value=(MEM_MIB - 128) * MiB)
    got = wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == (MEM_MIB - 128) * MiB, 180)
    resize(vm, MEM_MIB - 256)
    check(got and shrunk_to(query(vm), MEM_MIB - 256) and total_is(vm, base - 384 * MiB),
          f"{label}: balloon 128 MiB and hyperalloc 256 MiB shrunk together (QMP, MemTotal)",
          f"balloon {vm.qmp.cmd('query-balloon')}, {json.dumps(query(vm))}, MemTotal {mem_total(vm)}")
    integrity(vm, f"{label}, both shrunk", 64, 384)
    vm.qmp.cmd("balloon", value=MEM_MIB * MiB)
    resize(vm, MEM_MIB)
    check(wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == MEM_MIB * MiB, 180)
          and total_is(vm, base), f"{label}: both back to {MEM_MIB} MiB (MemTotal as at boot)",
          f"MemTotal {mem_total(vm)} vs {base}")
    check_guest_clean(vm, label)
    return base


def reboot(vm, how):
    """Reboots the guest; seconds until its agent is ready again."""
    vm.agent.events.clear()
    t0 = time.monotonic()
    if how == "guest":
        vm.agent.send("run", argv=["reboot", "-f"])
    else:
        vm.qmp.cmd("system_reset")
    vm.agent.wait_event("ready", 300)
    return time.monotonic() - t0


def test_reboot(vm, base, how):
    label = f"reboot ({'guest reboot -f' if how == 'guest' else 'QMP system_reset'}) after a shrink"
    resize(vm, HA_SHRINK_MIB)
    before = query(vm)
    took = reboot(vm, how)
    t0 = time.monotonic()
    q = registered(vm)
    print(f"# {label}: shrunk before {json.dumps(before)}; guest ready {took:.1f} s after the request, "
          f"registered {time.monotonic() - t0:.1f} s later")
    total = total_is(vm, base - (MEM_MIB - HA_SHRINK_MIB) * MiB)
    print(f"# {label}: after: {json.dumps(q)}, MemTotal {mem_total(vm) // MiB} MiB")
    check(shrunk_to(before, HA_SHRINK_MIB) and shrunk_to(q, HA_SHRINK_MIB),
          f"{label}: the driver registers again, the {HA_SHRINK_MIB} MiB target is kept and applied again",
          f"before {json.dumps(before)}, after {json.dumps(q)}")
    check(total, f"{label}: MemTotal is {HA_SHRINK_MIB} MiB under the boot's again",
          f"MemTotal {mem_total(vm)}, expected {base - (MEM_MIB - HA_SHRINK_MIB) * MiB}")
    integrity(vm, f"{label}, shrunk", 64, 256)
    resize(vm, MEM_MIB)
    check(shrunk_to(query(vm), MEM_MIB) and total_is(vm, base),
          f"{label}: returned, MemTotal as at boot", f"{json.dumps(query(vm))}, MemTotal {mem_total(vm)}")
    integrity(vm, f"{label}, all memory", 128, 640)
    took = resize(vm, HA_SHRINK_MIB)
    q = query(vm)
    print(f"# {label}: another shrink replied in {took * 1000:.1f} ms: {json.dumps(q)}")
    check(shrunk_to(q, HA_SHRINK_MIB) and total_is(vm, base - (MEM_MIB - HA_SHRINK_MIB) * MiB),
          f"{label}: another shrink works (query-hyperalloc, MemTotal)",
          f"{json.dumps(q)}, MemTotal {mem_total(vm)}")
    resize(vm, MEM_MIB)
    check_guest_clean(vm, label)


def test_migrate(vm):
    try:
        vm.qmp.cmd("migrate", uri="exec:cat >/dev/null")
        err = "migrate was accepted"
    except RuntimeError as e:
        err = str(e)
    print(f"# migrate: {err}")
    check("virtio-hyperalloc" in err and "accepted" not in err,
          "migrate is refused with an error naming virtio-hyperalloc", err)
    status = vm.qmp.cmd("query-status")["status"]
    rep = vm.agent.req("run", argv=["true"])
    check(status == "running" and rep.get("exit") == 0 and vm.qmp.cmd("query-migrate").get("status")
          in (None, "none", "failed", "cancelled"),
          "the VM runs on after the refused migration (QMP status, guest agent)",
          f"status {status}, agent {rep}, migrate {vm.qmp.cmd('query-migrate')}")


def main():
    name = "virtio-hyperalloc lifecycle"
    require_guest(name, IMAGE)
    if not os.path.exists(QEMU):
        skip_all(name, f"{QEMU} is not built (run make qemu)")
    plan(5 + (2 + 6 + 8 + 3) + 2 * (6 + 3) + 2)
    qemu = (QEMU, *DEVICE_ARGS)
    boot_and_test("baseline kernel, three devices", test_baseline, mem_mib=MEM_MIB,
                  vmem_max_mib=VMEM_MIB, qemu=qemu, kernel="bzImage-baseline")

    def hyperalloc_vm(vm):
        # Reboots reset the machine instead of ending QEMU (GuestVM runs it with -no-reboot).
        vm.qmp.cmd("set-action", reboot="reset")
        base = test_coexist(vm)
        for how in ("guest", "qmp"):
            test_reboot(vm, base, how)
        test_migrate(vm)

    boot_and_test("hyperalloc kernel, three devices", hyperalloc_vm, ready_timeout=300,
                  mem_mib=MEM_MIB, vmem_max_mib=VMEM_MIB, qemu=qemu, kernel=IMAGE)
    finish()


if __name__ == "__main__":
    main()
