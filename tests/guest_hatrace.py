#!/usr/bin/python3
"""VM test: the host tool itself inside the Linux 6.1 guest. The same static
binary and CO-RE objects must relocate onto 6.1's BTF (where the fault
tracepoint's type is still named x86_exceptions), and there fentry/fexit work,
so the doctor's positive path and hist's fault-latency upgrade run for real."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import GuestVM, require_guest, check, fail, finish, plan, run_workload  # noqa: E402


def median_bucket(buckets):
    """The log2 bucket holding the median sample, or None."""
    total, seen = sum(b["count"] for b in buckets), 0
    for b in buckets:
        seen += b["count"]
        if total and 2 * seen >= total:
            return b
    return None


def test(vm):
    agent = vm.agent
    agent.wait_event("ready", 120)

    doctor = {f["name"]: f for f in run_workload(agent, ["hatrace", "doctor", "-o", "json"]).get("features", [])}
    for name in ("btf", "exceptions:page_fault_user", "kmem:rss_stat", "fentry/fexit"):
        check(doctor.get(name, {}).get("ok"), f"guest doctor: {name} available",
              str(doctor.get(name)))

    # hist over a workload that touches 32 MiB, its faults timed by the fexit upgrade
    script = ("hatrace hist -o json -d 6 > /tmp/hist & sleep 3; "
              "ht-touch --bytes 33554432 --threads 1 > /dev/null; wait; "
              "grep '\"comm\":\"ht-touch\"' /tmp/hist | grep user_fault | tail -1")
    fault = run_workload(agent, ["sh", "-c", script])
    check(fault.get("type") == "hist" and fault.get("unit") == "ns",
          "guest hist: user faults carry a latency (fexit upgrade)", str(fault))
    check(fault.get("count", 0) >= 8192, "guest hist: the workload's 8192 page faults seen",
          str(fault.get("count")))
    buckets = fault.get("buckets", [])
    check(sum(b["count"] for b in buckets) == fault.get("count"),
          "guest hist: every fault is in a latency bucket", str(buckets))
    # A first-touch fault under TCG takes microseconds: a median bucket below
    # 256 ns or past 16 ms means starts and ends were paired wrongly.
    median = median_bucket(buckets)
    check(median is not None and median["low"] >= 256 and median["high"] < 1 << 24,
          "guest hist: median fault latency between 256 ns and 16 ms", str(median))

    row = run_workload(agent, ["hatrace", "footprint", "-p", "1", "-o", "json", "-d", "1"])
    check(row.get("pid") == 1 and row.get("rss_bytes", 0) > 0,
          "guest footprint loads and reports RSS on 6.1", str(row))


def main():
    require_guest("hatrace in the guest")
    plan(9)  # 4 doctor features, 4 of hist, 1 of footprint
    vm = GuestVM(mem_mib=1024)
    try:
        test(vm)
    except (TimeoutError, EOFError, RuntimeError, OSError) as e:
        fail("hatrace in the guest", f"{type(e).__name__}: {e}; console: {vm.console_tail()}")
    finally:
        vm.destroy()
    finish()


if __name__ == "__main__":
    main()
