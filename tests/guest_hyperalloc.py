#!/usr/bin/python3
"""VM test of the hyperalloc kernel flavour (kernel/patches/hyperalloc/): the
HyperAlloc core runs the guest's DMA32/NORMAL memory. Boots the baseline kernel
for its MemTotal, then the hyperalloc image: as HyperAlloc (marker, zones,
MemTotal within 1 %, /proc/buddyinfo from the core, debugfs hyperalloc/check
clean before and after a workload with 0 bad pages, clean dmesg), at 1 GiB with
2 CPUs and 3.5 GiB (PCI hole, a NORMAL zone) with 4, and at 1 GiB with
hyperalloc=off (the stock allocator on the same image)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import (boot_and_test, check, finish, plan, require_guest,  # noqa: E402
                       run_checked as run)

MiB = 1 << 20
IMAGE = "bzImage-hyperalloc"

# One JSON line about the guest's allocator: the hyperalloc boot marker, the
# zones it runs, dmesg lines that mean a kernel problem (first one shown), the
# debugfs check (";"-joined lines, "none" without it) and the DMA32 zone's free
# pages as /proc/buddyinfo and /proc/zoneinfo show them.
STATE = r"""
mount -t debugfs none /sys/kernel/debug 2>/dev/null
c=/sys/kernel/debug/hyperalloc/check
if [ -r $c ]; then check=$(tr '\n"\\' ';  ' <$c); else check=none; fi
buddy=$(awk '$4 == "DMA32" { m = 1; for (i = 5; i <= NF; i++) { s += $i * m; m *= 2 } } END { print s + 0 }' /proc/buddyinfo)
zone=$(awk '$1 == "Node" { z = $4 } z == "DMA32" && $1 == "nr_free_pages" { print $2; exit }' /proc/zoneinfo)
dmesg | awk -v check="$check" -v buddy="$buddy" -v zone="$zone" '
/BUG:|kernel BUG|WARNING:|Bad page|soft lockup|hung task|llfree:|hyperalloc.*(corrupt|refused|failed)/ {
	bad++; if (!first) first = $0 }
/hyperalloc: on;/ { marker = "on" }
/hyperalloc: off;/ { marker = "off" }
/hyperalloc: node [0-9]+ zone [A-Za-z0-9]+: pfn/ { zones++ }
END {
	gsub(/["\\]/, " ", first)
	printf "{\"marker\":\"%s\",\"zones\":%d,\"bad\":%d,\"first_bad\":\"%s\",", marker, zones, bad, first
	printf "\"check\":\"%s\",\"buddy_free\":%d,\"zone_free\":%d}\n", check, buddy, zone
}'
"""


def state(agent):
    rep = agent.req("run", argv=["sh", "-c", STATE])
    got = rep.get("result") if rep.get("exit") == 0 else None
    if not isinstance(got, dict):
        raise RuntimeError(f"no allocator state from the guest: {rep}")
    return got


def check_clean(check_text):
    lines = [line for line in check_text.split(";") if line.strip()]
    return bool(lines) and all(line.endswith(": ok") for line in lines)


def check_dmesg(st, label):
    return check(st["bad"] == 0, f"{label}: dmesg has no BUG, WARNING, Bad page, lockup or hung task",
                 f"{st['bad']} lines, first: {st['first_bad']}")


def workload(agent, label):
    """Checksummed pages across memory pressure; returns the verify result."""
    fill = run(agent, f"{label}: ht-integrity fill",
               ["ht-integrity", "fill", "--bytes", "64M", "--threads", "2"])
    run(agent, f"{label}: ht-touch 640M", ["ht-touch", "--bytes", "640M", "--threads", "2"])
    verify = run(agent, f"{label}: ht-integrity verify", ["ht-integrity", "verify", "--threads", "2"])
    run(agent, f"{label}: ht-integrity stop", ["ht-integrity", "stop"])
    check(fill.get("pages") == 16384 and verify.get("pages") == 16384 and verify.get("bad_pages") == 0,
          f"{label}: no page corrupted", f"fill {fill} verify {verify}")


def test_on(agent, label, base_total, zones):
    st = state(agent)
    print(f"# {label}: {json.dumps(st)}")
    check(st["marker"] == "on" and st["zones"] == zones,
          f"{label}: boot marker, HyperAlloc runs {zones} zone(s)", json.dumps(st))
    total = agent.req("meminfo").get("MemTotal", 0)
    check(abs(total - base_total) <= base_total / 100, f"{label}: MemTotal within 1 % of baseline",
          f"{total // 1024} KiB vs {base_total // 1024} KiB")
    check(st["buddy_free"] > 0 and abs(st["buddy_free"] - st["zone_free"]) <= st["zone_free"] / 20,
          f"{label}: /proc/buddyinfo counts the DMA32 zone's free pages",
          f"buddyinfo {st['buddy_free']} pages, zoneinfo {st['zone_free']}")
    check(check_clean(st["check"]), f"{label}: debugfs check clean after boot", st["check"])
    workload(agent, label)
    st = state(agent)
    check(check_clean(st["check"]), f"{label}: debugfs check clean after the workload", st["check"])
    check_dmesg(st, label)


def test_off(agent, base_total):
    st = state(agent)
    check(st["marker"] == "off" and st["zones"] == 0 and st["check"] == "none",
          "hyperalloc=off: the stock allocator runs every zone", json.dumps(st))
    total = agent.req("meminfo").get("MemTotal", 0)
    check(abs(total - base_total) <= base_total / 100, "hyperalloc=off: MemTotal within 1 % of baseline",
          f"{total // 1024} KiB vs {base_total // 1024} KiB")
    workload(agent, "hyperalloc=off")
    st = state(agent)
    check_dmesg(st, "hyperalloc=off")


def main():
    name = "hyperalloc guest"
    require_guest(name, IMAGE)
    # (MiB, CPUs, zones): 1 GiB is DMA32 only; 3.5 GiB adds NORMAL above the PCI hole.
    shapes = ((1024, 2, 1), (3584, 4, 2))
    plan(len(shapes) * (1 + 11) + 8)
    for mem, smp, zones in shapes:
        base_total = boot_and_test(f"baseline {mem} MiB", mem_mib=mem, smp=smp,
                                   body=lambda vm: vm.agent.req("meminfo").get("MemTotal", 0))
        if not check(base_total, f"baseline kernel boots with {mem} MiB", str(base_total)):
            continue
        label = f"hyperalloc {mem} MiB, {smp} CPUs"
        boot_and_test(label, lambda vm: test_on(vm.agent, label, base_total, zones), ready_timeout=300,
                      mem_mib=mem, smp=smp, kernel=IMAGE)
        if mem == 1024:
            boot_and_test("hyperalloc=off", lambda vm: test_off(vm.agent, base_total), ready_timeout=300,
                          kernel=IMAGE, append="hyperalloc=off")
    finish()


if __name__ == "__main__":
    main()
