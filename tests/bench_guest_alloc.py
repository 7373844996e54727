#!/usr/bin/python3
"""In-guest page allocator benchmark (make bench): the hyperalloc image booted
twice at once, as HyperAlloc and with hyperalloc=off (buddy), 1 GiB and 2 CPUs
each under TCG. In each, debugfs alloc_bench/run (kernel/patches/hyperalloc/0005)
times alloc_pages() and __free_pages() in kernel threads: 128 MiB of blocks of
order 0, 3, 9 and 10, allocated all, then freed all, ROUNDS times, with 1 and 2
threads. The two guests take turns, row by row, REPEATS times, so that load
from elsewhere on the host falls on both alike; each side keeps its fastest
repeat (the least disturbed one). Writes results/bench-guest-alloc.json (or
the given path) with ns per operation and the ratio HyperAlloc / buddy per row
(below 1: HyperAlloc is faster)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import GUEST, ROOT, GuestVM  # noqa: E402

IMAGE = "bzImage-hyperalloc"
ORDERS, THREADS = (0, 3, 9, 10), (1, 2)
BUDGET_PAGES = 32768  # 128 MiB per run
ROUNDS, REPEATS = 10, 5
RUN = "/sys/kernel/debug/alloc_bench/run"


def bench_row(agent, order, threads):
    """One run: (alloc, free) ns per operation."""
    count = BUDGET_PAGES >> order
    rep = agent.req("run", timeout=600, argv=["sh", "-c",
                    f"echo {order} {threads} {count} {ROUNDS} > {RUN} && cat {RUN}"])
    res = rep.get("result")
    if rep.get("exit") != 0 or not isinstance(res, dict) or res.get("failed"):
        raise RuntimeError(f"order {order} x{threads}: {rep}")
    ops = res["count"] * res["rounds"]
    return res["alloc_ns"] / ops, res["free_ns"] / ops


def boot(append):
    vm = GuestVM(mem_mib=1024, smp=2, kernel=IMAGE, append=append)
    try:
        vm.agent.wait_event("ready", 300)
        vm.agent.req("run", argv=["sh", "-c", "mount -t debugfs none /sys/kernel/debug 2>/dev/null; true"])
    except (TimeoutError, EOFError, RuntimeError, OSError) as e:
        print(vm.console_tail())
        vm.destroy()
        sys.exit(f"bench_guest_alloc: the guest with '{append}' did not come up: {e}")
    return vm


def measure(vms):
    """{side: {(order, threads): {alloc_ns, free_ns, ops}}}, the sides taking turns."""
    rows = {side: {} for side in vms}
    for order in ORDERS:
        for threads in THREADS:
            runs = {side: [] for side in vms}
            for _ in range(REPEATS):
                for side, vm in vms.items():
                    runs[side].append(bench_row(vm.agent, order, threads))
            for side in vms:
                best = min(runs[side], key=sum)
                rows[side][(order, threads)] = {"alloc_ns": round(best[0], 1), "free_ns": round(best[1], 1),
                                                "ops": (BUDGET_PAGES >> order) * ROUNDS}
            print(f"# order {order} threads {threads}: " +
                  ", ".join(f"{side} {rows[side][(order, threads)]}" for side in vms), flush=True)
    return rows


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "results", "bench-guest-alloc.json")
    if not all(os.path.exists(os.path.join(GUEST, f)) for f in (IMAGE, "initramfs.cpio.gz", "cmdline")):
        sys.exit(f"bench_guest_alloc: {GUEST} lacks {IMAGE} or the initramfs (run make)")
    vms = {}
    try:
        for side, append in (("hyperalloc", ""), ("buddy", "hyperalloc=off")):
            vms[side] = boot(append)
        sides = measure(vms)
    finally:
        for vm in vms.values():
            vm.destroy()
    rows = []
    print(f"{'order':>5} {'thr':>3} {'HA alloc':>9} {'HA free':>8} {'buddy alloc':>11} "
          f"{'buddy free':>10} {'ratio':>6}")
    for key in sides["hyperalloc"]:
        ha, bd = sides["hyperalloc"][key], sides["buddy"][key]
        ratio = (ha["alloc_ns"] + ha["free_ns"]) / (bd["alloc_ns"] + bd["free_ns"])
        rows.append({"order": key[0], "threads": key[1], "hyperalloc": ha, "buddy": bd,
                     "ratio": round(ratio, 3)})
        print(f"{key[0]:>5} {key[1]:>3} {ha['alloc_ns']:>9} {ha['free_ns']:>8} {bd['alloc_ns']:>11} "
              f"{bd['free_ns']:>10} {ratio:>6.2f}")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    doc = {"benchmark": "guest page allocator, alloc_pages/__free_pages in kernel threads",
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
           "guest": {"image": IMAGE, "mem_mib": 1024, "cpus": 2, "accel": "tcg,thread=multi"},
           "per_run_pages": BUDGET_PAGES, "rounds": ROUNDS, "repeats": REPEATS,
           "unit": "ns per operation (the fastest of the repeats, the guests taking turns)",
           "ratio": "(HyperAlloc alloc + free) / (buddy alloc + free)", "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
