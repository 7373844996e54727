#!/usr/bin/python3
"""Boot matrix of the hyperalloc flavour. Each shape boots on the same image
with HyperAlloc, and once per memory layout (shapes that differ only in CPUs
share it) with hyperalloc=off (the stock allocator: the reference MemTotal, and
a clean dmesg for the off case). HyperAlloc must reach the agent
(the boot marker), run the expected number of zones, have debugfs
hyperalloc/check clean, MemTotal within 1 % of the reference, and a dmesg free
of BUG, WARNING, Bad page, soft lockup and hung task.

Without arguments: a sample for make test (128 MiB with 1 CPU, 2 NUMA nodes,
a memmap= hole). --full: -m 128M/1G/3.5G/6G x -smp 1/2/4, 2 NUMA nodes and a
memmap= hole, for make soak; --json PATH writes every boot's figures."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_hyperalloc import IMAGE, check_clean, check_dmesg, state  # noqa: E402
from guest_lib import boot_and_test, check, finish, plan, require_guest  # noqa: E402

QEMU = "qemu-system-x86_64"
# 2 GiB in two nodes of 1 GiB, one CPU (and socket: QEMU's default of one socket
# with 2 cores would share an L3 across nodes, which 6.1 warns about) each: each
# node has a DMA32 zone.
NUMA2 = (QEMU, "-smp", "sockets=2,cores=1,threads=1",
         "-object", "memory-backend-ram,id=m0,size=1G", "-numa", "node,memdev=m0,cpus=0",
         "-object", "memory-backend-ram,id=m1,size=1G", "-numa", "node,memdev=m1,cpus=1")
# 64 MiB reserved at 512 MiB: a hole inside the DMA32 zone, never handed over.
HOLE = "memmap=64M$512M"


def shape(name, mem, smp, zones, qemu=(QEMU,), append=""):
    return dict(name=name, mem=mem, smp=smp, zones=zones, qemu=qemu, append=append)


def full_matrix():
    # Below 4 GiB the pc machine keeps at most 3 GiB when RAM reaches 3.5 GiB:
    # 3.5G and 6G have a NORMAL zone above the PCI hole.
    zones = {128: 1, 1024: 1, 3584: 2, 6144: 2}
    shapes = [shape(f"{mem} MiB, {smp} CPUs", mem, smp, zones[mem])
              for mem in (128, 1024, 3584, 6144) for smp in (1, 2, 4)]
    return shapes + [shape("2 NUMA nodes", 2048, 2, 2, qemu=NUMA2),
                     shape("memmap= hole", 1024, 2, 1, append=HOLE)]


SAMPLE = [shape("128 MiB, 1 CPUs", 128, 1, 1), shape("2 NUMA nodes", 2048, 2, 2, qemu=NUMA2),
          shape("memmap= hole", 1024, 2, 1, append=HOLE)]
CHECKS_PER_SHAPE, CHECKS_PER_REFERENCE = 4, 2


def probe(vm):
    st = state(vm.agent)
    st["MemTotal"] = vm.agent.req("meminfo").get("MemTotal", 0)
    st["boot_s"] = round(time.monotonic() - vm.start, 1)
    return st


def ref_key(s):
    """Shapes that differ only in CPUs share the hyperalloc=off reference."""
    return (s["mem"], s["qemu"], s["append"])


def vm_args(s):
    return dict(mem_mib=s["mem"], smp=s["smp"], kernel=IMAGE, qemu=s["qemu"], ready_timeout=600)


def reference(s):
    """Boots the shape with hyperalloc=off: the stock allocator's MemTotal."""
    layout = s["name"] if s["qemu"] != (QEMU,) or s["append"] else f"{s['mem']} MiB"
    label = f"{layout}, hyperalloc=off"
    off = boot_and_test(label, probe, append=f"{s['append']} hyperalloc=off", **vm_args(s)) or {}
    print(f"# {label}: {json.dumps(off)}")
    check(off.get("marker") == "off" and off.get("MemTotal", 0) > 0, f"{label}: boots", json.dumps(off))
    check_dmesg({"bad": off.get("bad"), "first_bad": off.get("first_bad")}, label)
    return off


def run_shape(s, off):
    label = s["name"]
    on = boot_and_test(f"{label}, hyperalloc", probe, append=s["append"], **vm_args(s)) or {}
    print(f"# {label}: {json.dumps(on)}")
    ref = off.get("MemTotal", 0)
    results = [
        check(on.get("marker") == "on" and on.get("zones") == s["zones"],
              f"{label}: boots to the marker with HyperAlloc on {s['zones']} zone(s)", json.dumps(on)),
        check(check_clean(on.get("check", "")), f"{label}: debugfs check clean", on.get("check")),
        check(ref and abs(on.get("MemTotal", 0) - ref) <= ref / 100,
              f"{label}: MemTotal within 1 % of hyperalloc=off",
              f"{on.get('MemTotal', 0) // 1024} KiB vs {ref // 1024} KiB"),
        check_dmesg({"bad": on.get("bad"), "first_bad": on.get("first_bad")}, label),
    ]
    return dict(shape={k: v for k, v in s.items() if k != "qemu"}, numa=s["qemu"] is NUMA2,
                off=off, on=on, passed=all(results))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the whole matrix (make soak)")
    ap.add_argument("--json", help="write the figures of every boot here")
    opts = ap.parse_args()
    name = "hyperalloc boot matrix"
    require_guest(name, IMAGE)
    shapes = full_matrix() if opts.full else SAMPLE
    plan(CHECKS_PER_SHAPE * len(shapes) + CHECKS_PER_REFERENCE * len({ref_key(s) for s in shapes}))
    refs, rows = {}, []
    for s in shapes:
        if ref_key(s) not in refs:
            refs[ref_key(s)] = reference(s)
        rows.append(run_shape(s, refs[ref_key(s)]))
    passed = sum(r["passed"] for r in rows)
    print(f"# boot matrix: {passed} of {len(rows)} shapes pass")
    if opts.json:
        os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
        with open(opts.json + ".tmp", "w") as f:
            json.dump({"image": IMAGE, "passed": passed, "shapes": len(rows), "rows": rows}, f, indent=1)
        os.replace(opts.json + ".tmp", opts.json)
    finish()


if __name__ == "__main__":
    main()
