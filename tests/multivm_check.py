#!/usr/bin/python3
"""Checks a `hatrace inflate --workload build --vms N` results folder: the
summed GiB*min recomputed from the one hatrace footprint CSV of all QEMUs, the
extra-VM count computed from the summed peak, and its verification run;
hyperalloc in its own auto mode, every workload of its base run finished.
usage: multivm_check.py DIR"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rss_integral import trapezoid  # noqa: E402

CHECKS = 5


def report(ok, name, why=""):
    print(f"ok - {name}" if ok else f"not ok - {name}: {why}", flush=True)


def summed(path):
    rows, last = [], {}
    with open(path) as f:
        for r in csv.DictReader(f):
            last[r["pid"]] = int(r["rss_bytes"])
            rows.append((int(r["time_ns"]), sum(last.values())))
    return rows


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "footprint.json")) as f:
        s = json.load(f)
    n, budget = s["vms"], s["budget_bytes"]
    runs = {t: v["runs"][0] for t, v in s["techniques"].items()}
    bad = []
    for t, r in runs.items():
        rows = summed(os.path.join(d, r["footprint_csv"]))
        want = trapezoid(rows, r["start_ns"], r["window_end_ns"])
        with open(os.path.join(d, r["footprint_csv"])) as f:
            pids = {row["pid"] for row in csv.DictReader(f)}
        if abs(r["sum_gib_min"] - want) > 1e-6 * max(want, 1) or len(pids) != n:
            bad.append(f"{t}: {r['sum_gib_min']} != {want}")
    report(not bad, "summed GiB*min is the trapezoid sum over all QEMUs", "; ".join(bad))
    bad = [t for t, r in runs.items()
           if r["extra_vms_computed"] != min(max(budget - r["sum_peak_bytes"], 0) //
                                             (r["sum_peak_bytes"] // n), 16 - n)]
    report(not bad, "extra VMs follow from the budget and the summed peak", bad)
    bad = [t for t, r in runs.items()
           if (r["extra_vms_computed"] == 0) != (r["extra_vms_reached"] is None) or
           (r["extra_vms_computed"] and r["verification"]["vms"] != n + r["extra_vms_computed"])]
    report(not bad, "each computed extra was verified with that many more VMs", bad)
    report(all(r["oom_kills"] == 0 and r["sum_peak_bytes"] <= budget for r in runs.values()),
           "the base runs stayed inside the budget without OOM kills",
           {t: (r["oom_kills"], r["sum_peak_bytes"]) for t, r in runs.items()})
    ha = s["techniques"].get("hyperalloc", {})
    done = [w for w in runs.get("hyperalloc", {}).get("workloads", [])
            if isinstance(w, dict) and w.get("failed_jobs") == 0]
    report("auto mode" in ha.get("mode", "") and len(done) == n,
           "hyperalloc runs its own auto mode and all its workloads finished",
           f"mode {ha.get('mode')!r}, {len(done)} of {n} finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
