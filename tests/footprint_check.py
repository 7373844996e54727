#!/usr/bin/python3
"""Checks a `hatrace inflate --workload build|blender` results folder against
its raw data: GiB*min recomputed as the trapezoid sum of hatrace footprint's
rows over the measured window, the controller's targets, the static baseline.
usage: footprint_check.py DIR MEM_BYTES FLOOR_BYTES"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rss_integral import trapezoid  # noqa: E402

CHECKS = 5


def report(ok, name, why=""):
    print(f"ok - {name}" if ok else f"not ok - {name}: {why}", flush=True)
    return ok


def main():
    d, mem, floor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(os.path.join(d, "footprint.json")) as f:
        techs = json.load(f)["techniques"]
    report(list(techs)[0] == "static" and techs["static"]["runtime_vs_static"] == 1.0,
           "static runs first and is its own baseline", list(techs))
    ok, why = True, []
    for tech, t in techs.items():
        path = os.path.join(d, f"footprint-{tech}-1.csv")
        if not os.path.exists(path):
            ok, why = False, why + [f"{path} missing"]
            continue
        with open(path) as f:
            rows = [(int(r["time_ns"]), int(r["rss_bytes"])) for r in csv.DictReader(f)]
        a, b = t["window_ns"][0]
        want, got = trapezoid(rows, a, b), t["gib_min"]["samples"][0]
        if got is None or abs(got - want) > 1e-6 * max(want, 1):
            ok, why = False, why + [f"{tech}: {got} != {want}"]
    report(ok, "GiB*min is the trapezoid sum of the footprint rows", "; ".join(why))
    report(all(t["peak_rss_bytes"]["median"] and t["qemu_cpu_s"]["median"] and
               t["runtime_s"]["median"] > 0 for t in techs.values()),
           "peak, CPU time and runtime measured for every technique")
    targets = {}
    with open(os.path.join(d, "controller.csv")) as f:
        for r in csv.DictReader(f):
            if r["target_bytes"]:
                targets.setdefault(r["technique"], []).append(int(r["target_bytes"]))
    step_ok = targets and all(floor <= v <= mem and (v % (mem // 16) == 0 or v == floor)
                              for vs in targets.values() for v in vs)
    report(step_ok, "controller targets are steps of RAM/16 within [floor, RAM]",
           str({k: sorted(set(v)) for k, v in targets.items()}))
    report(targets and all(min(vs) < mem for vs in targets.values()),
           "the controller took memory back from every controlled VM",
           str({k: min(v) for k, v in targets.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
