#!/usr/bin/python3
"""Guest stress of a HyperAlloc kernel (--flavour hyperalloc, the default, or
debug: DEBUG_VM, PROVE_LOCKING, DEBUG_PAGEALLOC) on 1 GiB with 2 CPUs:
anonymous memory with per-page checksums held by 2 threads across everything
below, a bounded fork storm, tmpfs write/verify with drop_caches, THP with
MADV_HUGEPAGE and forced splits (debugfs split_huge_pages, then order-0 frees
into the split blocks), nr_hugepages up and down, and a memhog past RAM that
the OOM killer must end while the system survives. Afterwards the checksummed
pages are intact, debugfs hyperalloc/check is clean and dmesg has no BUG,
WARNING, Bad page, lockup or hung task (the OOM report is expected)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_hyperalloc import check_clean, check_dmesg, state  # noqa: E402
from guest_lib import boot_and_test, check, finish, plan, require_guest, run_workload  # noqa: E402

# (name, argv, what the result must show)
STEPS = [
    ("fork storm: 400 children, 16 at a time",
     ["ht-stress", "fork", "--procs", "400", "--parallel", "16", "--bytes", "1M"],
     lambda r: r.get("procs") == 400 and r.get("failed") == 0 and r.get("bad_pages") == 0),
    ("tmpfs 128 MiB written, caches dropped, verified",
     ["ht-stress", "tmpfs", "--bytes", "128M"],
     lambda r: r.get("pages") == 32768 and r.get("bad_pages") == 0),
    ("THP with MADV_HUGEPAGE, forced splits, half freed, verified",
     ["ht-thp", "--units", "32", "--rounds", "2", "--split"],
     lambda r: r.get("thp", 0) > 0 and r.get("splits", 0) >= r["thp"] and r.get("bad_pages") == 0),
    ("nr_hugepages 64 up, pages verified, down to 0",
     ["ht-stress", "hugetlb", "--pages", "64"],
     lambda r: r.get("got") == 64 and r.get("after") == 0 and r.get("bad_pages") == 0),
    ("memhog of 2 GiB in 1 GiB: the OOM killer ends it",
     ["ht-stress", "memhog", "--bytes", "2G"],
     lambda r: r.get("killed_by") == 9),
]
OOM_SEEN = "dmesg | grep -c 'Out of memory: Killed process'"


def step(agent, label, argv, good, timeout):
    res = run_workload(agent, argv, timeout)
    print(f"# {label}: {json.dumps(res)[:300]}")
    return check(good(res), label, json.dumps(res)[:300])


def body(vm, flavour, timeout):
    a = vm.agent
    a.req("run", argv=["sh", "-c", "mount -t debugfs none /sys/kernel/debug 2>/dev/null; true"])
    fill = run_workload(a, ["ht-integrity", "fill", "--bytes", "128M", "--threads", "2"], timeout)
    check(fill.get("pages") == 32768, f"{flavour}: 128 MiB checksummed by 2 threads", json.dumps(fill)[:300])
    for label, argv, good in STEPS:
        step(a, f"{flavour}: {label}", argv, good, timeout)
    oom = a.req("run", argv=["sh", "-c", OOM_SEEN])
    check(oom.get("exit") == 0, f"{flavour}: the OOM killer fired and the guest survived", str(oom)[:300])
    verify = run_workload(a, ["ht-integrity", "stop", "--threads", "2"], timeout)
    check(verify.get("pages") == 32768 and verify.get("bad_pages") == 0,
          f"{flavour}: every checksummed page intact after the stress", json.dumps(verify)[:300])
    st = state(a)
    check(check_clean(st["check"]), f"{flavour}: debugfs check clean", st["check"])
    check_dmesg(st, flavour)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flavour", default="hyperalloc", choices=["hyperalloc", "debug"])
    opts = ap.parse_args()
    image = f"bzImage-{opts.flavour}"
    name = f"guest stress ({opts.flavour})"
    require_guest(name, image, "make soak" if opts.flavour == "debug" else "make")
    plan(1 + len(STEPS) + 4)
    # The debug kernel is several times slower under TCG.
    timeout = 1200 if opts.flavour == "debug" else 300
    boot_and_test(f"{opts.flavour} 1024 MiB, 2 CPUs", lambda vm: body(vm, opts.flavour, timeout),
                  ready_timeout=timeout, mem_mib=1024, smp=2, kernel=image)
    finish()


if __name__ == "__main__":
    main()
