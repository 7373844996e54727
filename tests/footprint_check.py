#!/usr/bin/python3
"""Checks a `hatrace inflate --workload build|blender` results folder against
its raw data: GiB*min recomputed as the trapezoid sum of hatrace footprint's
rows over the measured window, the controller's targets, the static baseline,
HyperAlloc's own auto mode and the shares of static's GiB*min.
usage: footprint_check.py DIR MEM_BYTES FLOOR_BYTES"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rss_integral import trapezoid  # noqa: E402

CHECKS = 7


def report(ok, name, why=""):
    print(f"ok - {name}" if ok else f"not ok - {name}: {why}", flush=True)
    return ok


def main():
    d, mem, floor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(os.path.join(d, "footprint.json")) as f:
        summary = json.load(f)
    techs = summary["techniques"]
    with open(os.path.join(d, "meta.json")) as f:
        tail_ns = json.load(f)["workload"]["tail_s"] * 1e9
    rss = {}
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
        rss[tech] = rows
        a, b = t["window_ns"][0]
        want, got = trapezoid(rows, a, b), t["gib_min"]["samples"][0]
        if got is None or abs(got - want) > 1e-6 * max(want, 1):
            ok, why = False, why + [f"{tech}: {got} != {want}"]
    report(ok, "GiB*min is the trapezoid sum of the footprint rows", "; ".join(why))
    report(all(t["peak_rss_bytes"]["median"] and t["qemu_cpu_s"]["median"] and
               t["main_loop_cpu_s"]["median"] and t["runtime_s"]["median"] > 0
               for t in techs.values()),
           "peak, CPU time (all threads, main loop) and runtime measured for every technique")
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
    ha = techs.get("hyperalloc")
    if ha and "hyperalloc" in rss:
        a, b = ha["window_ns"][0]
        # event-driven rows: the RSS at the workload's end is the last row before it
        before = [v for t, v in rss["hyperalloc"] if t < b - tail_ns][-1:]
        after = before + [v for t, v in rss["hyperalloc"] if b - tail_ns <= t <= b]
        peak = ha["peak_rss_bytes"]["median"]
        report("auto mode" in ha["mode"] and "hyperalloc" not in targets and after and
               min(after) <= peak - mem // 8,
               "hyperalloc runs its own auto mode (no controller) and gives back RAM/8 after "
               "the workload", f"mode {ha['mode']!r}, peak {peak}, after {after[-3:]}")
    else:
        report(False, "hyperalloc runs its own auto mode", "no hyperalloc in the results")
    base, vs, bad = techs["static"]["gib_min"]["median"], summary["against_static"], []
    for tech, t in techs.items():
        if abs(t["gib_min_vs_static"] - t["gib_min"]["median"] / base) > 1e-9:
            bad.append(tech)
    for tech, paper in (("fpr", 433 / 659), ("hyperalloc", 356 / 659)):
        want = techs[tech]["gib_min"]["median"] / base if tech in techs else None
        ours = vs[tech]["ours"]
        if abs(vs[tech]["paper"] - paper) > 1e-9 or \
                (want is None) != (ours is None) or (want is not None and abs(ours - want) > 1e-9):
            bad.append(f"against_static {tech}")
    report(not bad, "GiB*min against static, and FPR's and HyperAlloc's next to the paper's",
           bad)
    return 0


if __name__ == "__main__":
    sys.exit(main())
