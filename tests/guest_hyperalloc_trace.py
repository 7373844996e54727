#!/usr/bin/python3
"""VM test of the hyperalloc flavour's tracepoints and CPU hot-unplug drain, on
one 1 GiB guest with 2 CPUs:
- the guest agent attaches tp_btf programs to all seven hyperalloc tracepoints
  (so the guest kernel's BTF has them);
- over ht-thp, which counts the THPs it got itself, hyperalloc_get and
  hyperalloc_put see exactly that many order-9 events (nothing else in the idle
  guest allocates order 9; SLACK allows for a stray kernel one);
- after CPU 1 allocated (so it holds reserved trees) and went offline, the
  hyperalloc_drain tracepoint fired for each zone, and debugfs hyperalloc/check
  is clean: no offline CPU holds trees or cached frames and the core's free
  count equals NR_FREE_PAGES; CPU 0 alone can then use the drained memory, and
  CPU 1 comes back and allocates again; dmesg stays clean."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_hyperalloc import IMAGE, check_clean, check_dmesg, state  # noqa: E402
from guest_lib import (boot_and_test, check, finish, plan, require_guest,  # noqa: E402
                       run_workload)

TRACEPOINTS = ["hyperalloc_get", "hyperalloc_put", "hyperalloc_reclaimed_seen",
               "hyperalloc_install_start", "hyperalloc_install_end", "hyperalloc_drain",
               "hyperalloc_reconcile"]
UNITS, ROUNDS = 32, 8
# Order-9 events beyond the workload's own THPs that the test tolerates: the
# idle guest has no other order-9 user (THP is madvise-only, no hugetlb pool),
# but a kernel allocation of that size (e.g. a large kmalloc) would show here.
SLACK = 2
CPU1 = "/sys/devices/system/cpu/cpu1/online"


def events(agent):
    rd = agent.req("trace_read")
    return {e["name"]: e for e in rd.get("events", [])}


def sh(agent, name, script):
    rep = agent.req("run", argv=["sh", "-c", script])
    check(rep.get("exit") == 0, name, str(rep)[:300])


def test_counts(agent):
    started = agent.req("trace_start", tracepoints=TRACEPOINTS)
    probes = {p["name"]: p for p in started.get("probes", []) if p["name"].startswith("hyperalloc_")}
    for p in probes.values():
        print(f"# probe {p['name']:28} {p['mode']:10} {p.get('reason', '')}")
    check(started.get("ok") and list(probes) == TRACEPOINTS and
          all(p["attached"] and p["mode"] == "tracepoint" for p in probes.values()),
          "the 7 hyperalloc tracepoints attach as tp_btf (they are in the guest's BTF)",
          json.dumps(started)[:400])
    thp = run_workload(agent, ["ht-thp", "--units", str(UNITS), "--rounds", str(ROUNDS)])
    ev = events(agent)
    get, put = ev.get("hyperalloc_get", {}), ev.get("hyperalloc_put", {})
    print(f"# ht-thp {json.dumps(thp)}")
    print(f"# get {json.dumps(get)}\n# put {json.dumps(put)}")
    got = thp.get("thp", 0)
    check(got >= UNITS * ROUNDS // 2, "ht-thp got THPs for at least half its units",
          f"{got} of {UNITS * ROUNDS}")
    get9, put9 = get.get("orders", [0] * 11)[9], put.get("orders", [0] * 11)[9]
    check(got <= get9 <= got + SLACK, f"hyperalloc_get counts the workload's {got} order-9 gets",
          f"{get9} order-9 gets")
    check(got <= put9 <= got + SLACK, f"hyperalloc_put counts the workload's {got} order-9 puts",
          f"{put9} order-9 puts")
    check(get.get("count", 0) > got and put.get("count", 0) > got and get.get("errors") == 0,
          "get and put also count the other orders (page tables, the agent), no failed gets",
          f"get {get.get('count')} put {put.get('count')} errors {get.get('errors')}")


def touch(agent, name, argv, mib):
    got = run_workload(agent, argv)
    check(got.get("pages") == mib * 256, f"{name}: every page touched", str(got))


def test_unplug(agent, zones):
    # CPU 1 allocates, so that it holds reservations, then goes offline.
    touch(agent, "ht-touch 128M on CPU 1", ["taskset", "2", "ht-touch", "--bytes", "128M"], 128)
    before = events(agent).get("hyperalloc_drain", {}).get("count", 0)
    sh(agent, "CPU 1 goes offline", f"echo 0 > {CPU1} && grep -qx 0 {CPU1}")
    drains = events(agent).get("hyperalloc_drain", {}).get("count", 0) - before
    check(drains == zones, f"hyperalloc_drain fired once per zone ({zones})", f"{drains} drains")
    st = state(agent)
    print(f"# offline: {st['check']}")
    check(check_clean(st["check"]), "check clean with CPU 1 offline: nothing stranded, "
          "core free = NR_FREE_PAGES", st["check"])
    touch(agent, "ht-touch 640M on CPU 0 alone", ["ht-touch", "--bytes", "640M"], 640)
    st = state(agent)
    check(check_clean(st["check"]), "check clean after CPU 0 used the drained memory", st["check"])
    sh(agent, "CPU 1 comes back online", f"echo 1 > {CPU1} && grep -qx 1 {CPU1}")
    touch(agent, "ht-touch 256M on CPU 1 again", ["taskset", "2", "ht-touch", "--bytes", "256M"], 256)
    st = state(agent)
    check(check_clean(st["check"]), "check clean with CPU 1 back", st["check"])
    check_dmesg(st, "CPU hot-unplug")


def main():
    name = "hyperalloc tracepoints and CPU hot-unplug"
    require_guest(name, IMAGE)
    plan(5 + 10)  # test_counts, test_unplug

    def body(vm):
        test_counts(vm.agent)
        test_unplug(vm.agent, zones=1)
        vm.agent.req("trace_stop")

    boot_and_test("hyperalloc 1024 MiB, 2 CPUs", body, ready_timeout=300, mem_mib=1024, smp=2,
                  kernel=IMAGE)
    finish()


if __name__ == "__main__":
    main()
