#!/usr/bin/python3
"""BPF test of the guest agent's probes, run on the host (root): the CO-RE object
loads, the page allocator tracepoints count a workload's pages, and every probe
that cannot attach here (no fentry, no kprobes on this host) says why."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import check, finish, plan, skip_all, start_stdio_agent, tech_functions  # noqa: E402



# trace_start requests the agent must refuse: tracepoints it does not have, and
# functions that are malformed, too many, named twice or within an unknown probe.
BAD_REQUESTS = (
    {"tracepoints": ["no_such_probe"]}, {"tracepoints": "mm_page_alloc"}, {"tracepoints": [3]},
    {"functions": "leak_balloon"}, {"functions": [{"name": "leak"}]},
    {"functions": [{"name": "a b", "func": "leak_balloon"}]},
    {"functions": [{"name": "x", "func": "leak_balloon;rm"}]},
    {"functions": [{"name": "mm_page_alloc", "func": "leak_balloon"}]},
    {"functions": [{"name": "x", "func": "leak_balloon", "within": "nowhere"}]},
    {"functions": [{"name": f"f{i}", "func": "leak_balloon"} for i in range(100)]},
    {"vmstat": "pgfree"}, {"vmstat": ["pg free"]}, {"vmstat": [7]},
    {"vmstat": [f"c{i}" for i in range(17)]}, {"vmstat": ["x" * 60]},
)


def main():
    if os.geteuid() != 0:
        skip_all("guest agent bpf", "needs root")
    proc, a = start_stdio_agent("guest agent bpf")
    # 12 checks, one per bad request
    plan(13 + len(BAD_REQUESTS))
    try:
        a.wait_event("ready", 10)
        test(a)
    finally:
        proc.kill()
        proc.wait()
    finish()


def test(a):
    funcs = tech_functions()
    started = a.req("trace_start", functions=funcs, timeout=120)
    if not check(started.get("ok"), "trace_start loads the guest BPF object", str(started)):
        return
    probes = started["probes"]
    for p in probes:
        print(f"# probe {p['name']:24} {p['mode']:10} {p.get('reason', '')}")
    names = [p["name"] for p in probes]
    check(names == ["mm_page_alloc", "mm_page_free"] + [f["name"] for f in funcs],
          "probe list names the tracepoints and each requested function once", str(names))
    check(all(p["mode"] == "tracepoint" for p in probes[:2]),
          "page allocator tracepoints attach", str(probes[:2]))
    check(all(p["attached"] or p.get("reason") for p in probes),
          "every probe is attached or says why not",
          str([p for p in probes if not p["attached"] and not p.get("reason")]))

    run = a.req("run", argv=["ht-touch", "--bytes", "16M"])
    check(run.get("exit") == 0, "ht-touch runs under tracing", str(run))
    rd = a.req("trace_read")
    ev = {e["name"]: e for e in rd.get("events", [])}
    alloc = ev.get("mm_page_alloc", {})
    check(alloc.get("count", 0) > 0 and alloc.get("pages", 0) >= 4096 and
          0 < alloc["first_ns"] <= alloc["last_ns"] <= rd["mono_ns"],
          "mm_page_alloc counts at least the workload's 4096 pages", str(alloc))
    check(set(ev) == {p["name"] for p in probes if p["attached"]},
          "trace_read reports exactly the attached probes", str(sorted(ev)))
    sel = a.req("trace_start", tracepoints=["mm_page_free"])
    modes = {p["name"]: (p["attached"], p.get("reason")) for p in sel.get("probes", [])}
    check(sel.get("ok") and modes.get("mm_page_free") == (True, None) and
          modes.get("mm_page_alloc") == (False, "not requested"),
          "trace_start with a probe selection attaches only those", str(modes))
    rd = a.req("trace_read")
    check([e["name"] for e in rd.get("events", [])] == ["mm_page_free"],
          "trace_read after a selection reports only the selected probe", str(rd)[:300])
    # Counted without a probe: /proc/vmstat counters, a missing one left out.
    a.req("trace_start", tracepoints=[], vmstat=["pgfree", "nr_free_pages", "no_such_counter"])
    before = {e["name"]: e for e in a.req("trace_read").get("events", [])}
    a.req("run", argv=["ht-touch", "--bytes", "16M"])
    after = {e["name"]: e for e in a.req("trace_read").get("events", [])}
    check(set(after) == {"vmstat_pgfree", "vmstat_nr_free_pages"} and
          all(e["mode"] == "vmstat" and e["sum_ns"] == 0 for e in after.values()) and
          after["vmstat_pgfree"]["count"] - before.get("vmstat_pgfree", {}).get("count", 0) >= 4096,
          "vmstat counters are reported as count-only events (pgfree counts the workload's pages)",
          f"before {before}, after {after}")
    ha = a.req("trace_start", tracepoints=["hyperalloc_get", "mm_page_alloc"])
    modes = {p["name"]: (p["attached"], p.get("reason", "")) for p in ha.get("probes", [])}
    check(ha.get("ok") and modes.get("mm_page_alloc") == (True, "") and
          modes.get("hyperalloc_get", (True, ""))[0] is False and
          "not in this kernel" in modes["hyperalloc_get"][1] and "hyperalloc_put" not in modes,
          "a hyperalloc tracepoint the host kernel lacks is listed as not attached, and why",
          str(modes))
    r = a.req("trace_start", kprobes="yes")
    check(r.get("ok") is False and "kprobes" in r.get("error", ""),
          "trace_start rejects a non-boolean kprobes", str(r))
    for bad in BAD_REQUESTS:
        r = a.req("trace_start", **bad)
        check(r.get("ok") is False and "trace_start" in r.get("error", ""),
              f"trace_start rejects {str(bad)[:60]}", str(r)[:300])
    check(a.req("trace_stop").get("ok"), "trace_stop", "")


if __name__ == "__main__":
    main()
