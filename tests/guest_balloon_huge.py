#!/usr/bin/python3
"""VM test of virtio-balloon-huge (kernel/patches/baseline/0001-virtio-balloon-huge-pages.patch):
with our QEMU build (build/qemu/, qemu/patches/0002), which has the balloon's
huge-pages property, the guest negotiates feature bit 23, inflates and
deflates in 2 MiB units, host RSS drops, its sysfs counters agree with QMP, an
unsatisfiable target is counted instead of hanging, the OOM notifier deflates
whole units, and the integrity workload sees no bad page. With QEMU that lacks the property, the guest must not
negotiate the bit and must show no huge_* files (the stock 6.1 path)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import (BUILD, balloon_actual, boot_and_test, require_guest, check,  # noqa: E402
                       finish, plan, run_workload as run, skip)

MiB = 1 << 20
UNIT = 2 * MiB
HUGE_BIT = 23

# One JSON line about the balloon device: negotiated features, the driver's
# huge_* sysfs files (null when absent) and the vmstat balloon counters.
BALLOON_INFO = r"""
d=$(ls -d /sys/bus/virtio/drivers/virtio_balloon/virtio* | head -n 1)
f=$(cat "$d/features")
u=$(cat "$d/huge_units" 2>/dev/null || echo null)
a=$(cat "$d/huge_alloc_failures" 2>/dev/null || echo null)
awk -v f="$f" -v u="$u" -v a="$a" '
$1 == "balloon_inflate" { i = $2 } $1 == "balloon_deflate" { o = $2 }
END { printf "{\"features\":\"%s\",\"huge_units\":%s,\"huge_alloc_failures\":%s,", f, u, a
      printf "\"inflate\":%d,\"deflate\":%d}\n", i, o }
' /proc/vmstat
"""


OUR_QEMU = os.path.join(BUILD, "qemu", "qemu-system-x86_64")


def huge_qemu():
    """Our QEMU build if it has the balloon's huge-pages property, else None."""
    try:
        out = subprocess.run([OUR_QEMU, "-device", "virtio-balloon-pci,help"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return OUR_QEMU if "huge-pages" in out else None


def balloon_info(agent):
    rep = agent.req("run", argv=["sh", "-c", BALLOON_INFO])
    info = rep.get("result") if rep.get("exit") == 0 else None
    if not isinstance(info, dict) or len(str(info.get("features"))) < HUGE_BIT + 1:
        raise RuntimeError(f"no balloon info from the guest: {rep}")
    info["huge_bit"] = info["features"][HUGE_BIT] == "1"
    return info


def rss(vm):
    with open(f"/proc/{vm.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def resize(vm, target, reached, timeout=180):
    """Sets the balloon target and waits until reached(actual); returns seconds or None."""
    start = time.monotonic()
    vm.qmp.cmd("balloon", value=target)
    while time.monotonic() - start < timeout:
        if reached(balloon_actual(vm)):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def test_stock(vm):
    """Stock QEMU offers no bit 23: the patched driver stays on the 4 KiB path."""
    info = balloon_info(vm.agent)
    check(not info["huge_bit"], "without huge-pages the guest does not negotiate bit 23",
          info["features"])
    check(info["huge_units"] is None and info["huge_alloc_failures"] is None,
          "without bit 23 the driver shows no huge_* sysfs files", json.dumps(info))
    took = resize(vm, 1000 * MiB, lambda a: a <= 1000 * MiB)
    after = balloon_info(vm.agent)
    check(took is not None and balloon_actual(vm) == 1000 * MiB,
          "the 4 KiB balloon takes an unaligned 24 MiB exactly", f"actual {balloon_actual(vm)}")
    check(after["inflate"] - info["inflate"] == 24 * MiB // 4096,
          "the 4 KiB balloon inflates page by page", json.dumps(after))


def test_huge(vm):
    agent = vm.agent
    info = balloon_info(agent)
    if not (check(info["huge_bit"], "with huge-pages=on the guest negotiates bit 23", info["features"]) &
            check(info["huge_units"] == 0 and info["huge_alloc_failures"] == 0,
                  "huge_units and huge_alloc_failures start at 0", json.dumps(info))):
        return

    fill = run(agent, ["ht-integrity", "fill", "--bytes", "64M", "--threads", "2"])
    check(fill.get("pages") == 16384, "integrity fill holds 16384 pages", str(fill))
    # Touch most guest memory and free it again, so the shrink is of touched memory.
    touch = run(agent, ["ht-touch", "--bytes", "768M", "--threads", "2"])
    check(touch.get("pages") == 768 * MiB // 4096, "ht-touch touches 768 MiB before the shrink",
          str(touch))
    total0 = agent.req("meminfo").get("MemTotal", 0)
    rss0 = rss(vm)

    took = resize(vm, 512 * MiB, lambda a: a <= 512 * MiB)
    check(took is not None, "balloon-huge inflates to 512 MiB", f"actual {balloon_actual(vm) // MiB} MiB")
    rss1 = rss(vm)
    after = balloon_info(agent)
    total1 = agent.req("meminfo").get("MemTotal", 0)
    print(f"# balloon-huge shrink by 512 MiB: {took or 0:.2f} s, host RSS "
          f"{rss0 // MiB} -> {rss1 // MiB} MiB, guest MemTotal {total0 // MiB} -> {total1 // MiB} MiB, "
          f"units {after['huge_units']}, alloc failures {after['huge_alloc_failures']}")
    check(rss0 - rss1 >= 0.9 * 512 * MiB, "host RSS drops by at least 90% of the request",
          f"{rss0 // MiB} -> {rss1 // MiB} MiB")
    check(after["huge_units"] * UNIT == 1024 * MiB - balloon_actual(vm),
          "huge_units matches the balloon size QEMU reports", f"{after} actual {balloon_actual(vm)}")
    check(after["inflate"] - info["inflate"] == 512 * MiB // 4096,
          "vmstat balloon_inflate counts the units' 4 KiB pages", json.dumps(after))
    check(abs((total0 - total1) - 512 * MiB) <= UNIT, "guest MemTotal drops by the balloon",
          f"{total0 // MiB} -> {total1 // MiB} MiB")

    # 3 MiB asked: the host rounds up to whole units, the guest takes two.
    resize(vm, 1024 * MiB, lambda a: a >= 1024 * MiB)
    took = resize(vm, 1021 * MiB, lambda a: a < 1024 * MiB, timeout=60)
    time.sleep(1)
    units = balloon_info(agent)["huge_units"]
    check(took is not None and balloon_actual(vm) == 1020 * MiB and units == 2,
          "an unaligned target is rounded up to whole 2 MiB units",
          f"actual {balloon_actual(vm) / MiB} MiB, units {units}")

    took = resize(vm, 1024 * MiB, lambda a: a >= 1024 * MiB)
    end = balloon_info(agent)
    check(took is not None and end["huge_units"] == 0, "balloon-huge deflates to 1 GiB",
          f"actual {balloon_actual(vm) // MiB} MiB, {json.dumps(end)}")
    check(end["inflate"] - info["inflate"] == end["deflate"] - info["deflate"],
          "every inflated page was deflated", json.dumps(end))
    verify = run(agent, ["ht-integrity", "verify", "--threads", "2"])
    check(verify.get("bad_pages") == 0 and verify.get("pages") == 16384,
          "no page corrupted across balloon-huge shrink/grow", str(verify))
    stop = run(agent, ["ht-integrity", "stop"])
    check(stop.get("bad_pages") == 0 and stop.get("pages") == 16384,
          "integrity stop checks its 16384 pages once more", str(stop))


def test_starved(vm, agent):
    """A target the guest cannot meet: order-9 failures are counted, the guest
    stays responsive and the balloon stops short instead of hanging. Run with
    deflate-on-oom, so that the guest's OOM killer cannot take the agent (without
    it, a balloon that squeezes the guest below its watermarks may, as with any
    balloon)."""
    failures_before = balloon_info(agent)["huge_alloc_failures"]
    vm.qmp.cmd("balloon", value=96 * MiB)
    deadline, last, since = time.monotonic() + 120, None, time.monotonic()
    starved = balloon_info(agent)
    # Until failures are counted and actual has not moved for 3 s.
    while time.monotonic() < deadline and (starved["huge_alloc_failures"] == failures_before or
                                           time.monotonic() - since < 3):
        time.sleep(0.5)
        if balloon_actual(vm) != last:
            last, since = balloon_actual(vm), time.monotonic()
        starved = balloon_info(agent)
    free = agent.req("meminfo").get("MemFree", 0)
    print(f"# target 96 MiB: balloon stopped at {balloon_actual(vm) // MiB} MiB with guest MemFree "
          f"{free // MiB} MiB, {starved['huge_alloc_failures'] - failures_before} failed order-9 allocations")
    check(starved["huge_alloc_failures"] > failures_before,
          "failed order-9 allocations are counted in huge_alloc_failures", json.dumps(starved))
    check(agent.req("ping").get("ok"), "the guest answers while the balloon is starved", "")


def test_huge_oom(vm):
    """deflate-on-oom=on: a workload that needs ballooned memory gets it back
    from the OOM notifier, one 2 MiB unit per call."""
    agent = vm.agent
    took = resize(vm, 256 * MiB, lambda a: a <= 256 * MiB)
    before = balloon_info(agent)
    check(took is not None and before["huge_units"] == 384, "balloon-huge inflates to 256 MiB",
          json.dumps(before))
    touch = run(agent, ["ht-touch", "--bytes", "700M", "--threads", "2"])
    after = balloon_info(agent)
    units = before["huge_units"] - after["huge_units"]
    print(f"# deflate on OOM: {units} units returned, balloon at {balloon_actual(vm) // MiB} MiB")
    check(touch.get("pages") == 700 * 256 and units > 0,
          "the OOM notifier deflates units for a workload that needs them", json.dumps(after))
    check(after["deflate"] - before["deflate"] == units * UNIT // 4096 and
          balloon_actual(vm) == 1024 * MiB - after["huge_units"] * UNIT,
          "OOM deflation works in whole units and QEMU sees it", f"{after} actual {balloon_actual(vm)}")
    test_starved(vm, agent)


def main():
    require_guest("balloon-huge")
    qemu = huge_qemu()
    plan(4 + (15 + 4 if qemu else 1))  # stock QEMU; huge-pages=on; deflate on OOM
    boot_and_test("balloon-huge, stock QEMU", test_stock, balloon="")
    if not qemu:
        skip("balloon-huge with huge-pages=on",
             f"{OUR_QEMU} missing or without the balloon's huge-pages property (make qemu)")
        finish()
    print(f"# QEMU with huge-pages: {qemu}")
    boot_and_test("balloon-huge", test_huge, qemu=[qemu], balloon="huge-pages=on")
    boot_and_test("balloon-huge, deflate on OOM", test_huge_oom, qemu=[qemu],
                  balloon="huge-pages=on,deflate-on-oom=on")
    finish()


if __name__ == "__main__":
    main()
