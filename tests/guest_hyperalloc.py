#!/usr/bin/python3
"""VM test of the hyperalloc kernel flavour (kernel/patches/hyperalloc/): the
HyperAlloc core runs the guest's DMA32/NORMAL memory. Boots the baseline kernel
for its MemTotal, then the hyperalloc image: as HyperAlloc (marker, zones,
MemTotal within 1 %, /proc/buddyinfo from the core, debugfs hyperalloc/check
clean before and after a workload with 0 bad pages, clean dmesg, the
virtio-hyperalloc driver registered with no device to bind; with the guest
playing the host through debugfs hyperalloc/host, a hard reclaim and return
reconciled into MemTotal and reclaimed children used and unmarked), at 1 GiB with
2 CPUs and 3.5 GiB (PCI hole, a NORMAL zone) with 4, and at 1 GiB with
hyperalloc=off (the stock allocator on the same image)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import (GUEST, boot_and_test, check, finish, plan, require_guest,  # noqa: E402
                       run_workload as run, skip_all)

MiB = 1 << 20
IMAGE = "bzImage-hyperalloc"

# One JSON line about the guest's allocator: the hyperalloc boot marker, the
# zones it runs, dmesg lines that mean a kernel problem (first one shown), the
# debugfs check (";"-joined lines, "none" without it), the DMA32 zone's free
# pages as /proc/buddyinfo and /proc/zoneinfo show them, and the devices bound to
# the virtio-hyperalloc driver (-1: no such driver).
STATE = r"""
mount -t debugfs none /sys/kernel/debug 2>/dev/null
c=/sys/kernel/debug/hyperalloc/check
if [ -r $c ]; then check=$(tr '\n"\\' ';  ' <$c); else check=none; fi
buddy=$(awk '$4 == "DMA32" { m = 1; for (i = 5; i <= NF; i++) { s += $i * m; m *= 2 } } END { print s + 0 }' /proc/buddyinfo)
d=/sys/bus/virtio/drivers/virtio_hyperalloc
if [ -d $d ]; then driver=$(ls $d | grep -c '^virtio'); else driver=-1; fi
zone=$(awk '$1 == "Node" { z = $4 } z == "DMA32" && $1 == "nr_free_pages" { print $2; exit }' /proc/zoneinfo)
dmesg | awk -v check="$check" -v buddy="$buddy" -v zone="$zone" -v driver="$driver" '
/BUG:|kernel BUG|WARNING:|Bad page|soft lockup|hung task|llfree:|hyperalloc.*(corrupt|refused|failed)/ {
	bad++; if (!first) first = $0 }
/hyperalloc: on;/ { marker = "on" }
/hyperalloc: off;/ { marker = "off" }
/hyperalloc: node [0-9]+ zone [A-Za-z0-9]+: pfn/ { zones++ }
END {
	gsub(/["\\]/, " ", first)
	printf "{\"marker\":\"%s\",\"zones\":%d,\"bad\":%d,\"first_bad\":\"%s\",", marker, zones, bad, first
	printf "\"check\":\"%s\",\"buddy_free\":%d,\"zone_free\":%d,\"driver\":%d}\n", check, buddy, zone, driver
}'
"""


# Plays the host (debugfs hyperalloc/host, CONFIG_HYPERALLOC_HOST_TEST) with
# "$1" ("reclaim N", "return" or "" to only look), reads hyperalloc/check, which
# reconciles first, and prints the host's view summed over zones with MemTotal
# and the guest's entirely free children (free_huge of hyperalloc/zones). With
# "return" it also counts the reclaimed children the guest's own allocations
# took from the return to the read (tracepoint hyperalloc_reclaimed_seen; an
# order-10 get counts as 2 children, a bound): the guest keeps running.
HOST = r"""
h=/sys/kernel/debug/hyperalloc/host
t=/sys/kernel/debug/tracing
e=$t/events/hyperalloc/hyperalloc_reclaimed_seen/enable
[ -w $h ] || { echo '{"error":"no hyperalloc/host"}'; exit 0; }
[ -w $e ] || { echo '{"error":"no hyperalloc_reclaimed_seen tracepoint"}'; exit 0; }
if [ "$1" = return ]; then echo >$t/trace; echo 1 >$e; fi
[ -z "$1" ] || echo "$1" >$h || { echo '{"error":"write refused"}'; exit 0; }
check=$(tr '\n"\\' ';  ' </sys/kernel/debug/hyperalloc/check)
total=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)
huge=$(awk '{ for (i = 1; i < NF; i++) if ($i == "free_huge") s += $(i + 1) } END { print s + 0 }' \
	/sys/kernel/debug/hyperalloc/zones)
seen=0
if [ "$1" = return ]; then
	seen=$(awk '/hyperalloc_reclaimed_seen:/ { n += $NF == "order=10" ? 2 : 1 } END { print n + 0 }' $t/trace)
	echo 0 >$e
fi
awk -v check="$check" -v total="$total" -v huge="$huge" -v seen="$seen" '
$1 == "zone" { held += $4; reclaimed += $6; owed += $8 }
END { printf "{\"held\":%d,\"reclaimed\":%d,\"owed\":%d,\"check\":\"%s\",\"total_kb\":%d,\"free_huge\":%d,\"taken_by_guest\":%d}\n",
      held, reclaimed, owed, check, total, huge, seen }' $h
"""
# Free children the host test leaves unmarked (256 MiB): the workload must then
# take reclaimed ones.
HOST_KEEP = 128


def host(agent, action=""):
    rep = agent.req("run", argv=["sh", "-c", HOST, "sh", action])
    got = rep.get("result") if rep.get("exit") == 0 else None
    if not isinstance(got, dict) or "error" in got:
        raise RuntimeError(f"hyperalloc/host {action!r}: {rep}")
    return got


def host_cycle(agent, label):
    """Hard reclaim and return with the guest as the host; returns how many
    children were left marked reclaimed for the workload to use. All free
    children but HOST_KEEP are asked for; those in trees a CPU holds stay."""
    before = host(agent)
    want = before["free_huge"] - HOST_KEEP
    got = host(agent, f"reclaim {want}")
    taken = got["held"] - before["held"]
    check(want > 0 and want / 2 <= taken <= want,
          f"{label}: host test hard-reclaims free children", f"asked {want}, {json.dumps(got)}")
    lost = before["total_kb"] - got["total_kb"]
    print(f"# {label}: host test asked for {want} children, took {taken}, MemTotal down {lost} KiB")
    check(check_clean(got["check"]) and lost == taken * 2048,
          f"{label}: reconcile takes the reclaimed 2 MiB children off MemTotal and NR_FREE_PAGES",
          f"MemTotal down {lost} KiB for {taken} children; {json.dumps(got)}")
    got = host(agent, "return")
    # the guest runs on: its allocations may take (and unmark) returned children
    check(got["held"] == before["held"] and got["owed"] == 0
          and got["reclaimed"] + got["taken_by_guest"] >= taken
          and got["taken_by_guest"] <= taken // 8
          and got["total_kb"] == before["total_kb"] and check_clean(got["check"]),
          f"{label}: return gives MemTotal back, the children stay marked reclaimed", json.dumps(got))
    return got["reclaimed"]


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
    fill = run(agent, ["ht-integrity", "fill", "--bytes", "64M", "--threads", "2"])
    touch = run(agent, ["ht-touch", "--bytes", "640M", "--threads", "2"])
    verify = run(agent, ["ht-integrity", "verify", "--threads", "2"])
    stop = run(agent, ["ht-integrity", "stop"])
    check(touch.get("pages") == 640 * 256, f"{label}: ht-touch touches 640 MiB", str(touch))
    check(fill.get("pages") == 16384 and all(r.get("pages") == 16384 and r.get("bad_pages") == 0
                                             for r in (verify, stop)),
          f"{label}: no page corrupted", f"fill {fill} verify {verify} stop {stop}")


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
    check(st["driver"] == 0, f"{label}: virtio_hyperalloc driver registered, no device bound",
          f"{st['driver']} device(s) (-1: no driver)")
    reclaimed = host_cycle(agent, label)
    workload(agent, label)
    got = host(agent)
    print(f"# {label}: children marked reclaimed: {reclaimed} before the workload, {got['reclaimed']} after")
    check(got["reclaimed"] < reclaimed,
          f"{label}: the workload used reclaimed children, which the guest unmarked (no installer)",
          f"{reclaimed} children marked reclaimed before, {got['reclaimed']} after")
    st = state(agent)
    check(check_clean(st["check"]), f"{label}: debugfs check clean after the workload", st["check"])
    check_dmesg(st, label)


def test_off(agent, base_total):
    st = state(agent)
    check(st["marker"] == "off" and st["zones"] == 0 and st["check"] == "none",
          "hyperalloc=off: the stock allocator runs every zone", json.dumps(st))
    check(st["driver"] == 0, "hyperalloc=off: virtio_hyperalloc driver registered, no device bound",
          f"{st['driver']} device(s) (-1: no driver)")
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
    plan(len(shapes) * (1 + 13) + 6)
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
