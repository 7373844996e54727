#!/usr/bin/python3
"""Checks a `hatrace inflate --workload stream|ftq` results folder against its
raw data: interference.json's metrics are recomputed here, independently of
user/lib/deficit.c, from workload.csv and marks.csv; the report's ordering by
time lost follows interference.json.
usage: interference_check.py DIR SECONDS"""
import csv
import json
import os
import statistics
import sys

CHECKS = 6


def report(ok, name, why=""):
    print(f"ok - {name}" if ok else f"not ok - {name}: {why}", flush=True)
    return ok


def load(d):
    series = {}  # (tech, iteration) -> {thread: [amount per interval]}
    with open(os.path.join(d, "workload.csv")) as f:
        for r in csv.DictReader(f):
            s = series.setdefault((r["technique"], int(r["iteration"])), {})
            s.setdefault(int(r["thread"]), []).append(int(r["amount"]))
    marks = {}
    with open(os.path.join(d, "marks.csv")) as f:
        for r in csv.DictReader(f):
            marks[(r["technique"], int(r["iteration"]), r["phase"])] = \
                (float(r["start_s"]), float(r["end_s"]))
    return series, marks


def time_lost(threads, interval, from_s):
    totals = [sum(v) for v in zip(*threads.values())]
    n = min(int(from_s / interval + 1e-9), len(totals))
    first = 1 if n >= 4 else 0
    if n == 0:
        return None  # no interval before the shrink: no baseline (null)
    base = statistics.median(totals[first:n])
    lost = 0.0
    for k, v in enumerate(totals):
        lo, hi = max(k * interval, from_s), (k + 1) * interval
        if hi > lo and v < base:
            lost += (1 - v / base) * (hi - lo)
    return lost


def main():
    d, seconds = sys.argv[1], float(sys.argv[2])
    with open(os.path.join(d, "interference.json")) as f:
        summary = json.load(f)
    with open(os.path.join(d, "meta.json")) as f:
        interval = 0.1 if json.load(f)["workload"]["name"] == "stream" else 0.01
    series, marks = load(d)
    shape = all(len(set(map(len, s.values()))) == 1 and
                abs(len(next(iter(s.values()))) * interval - seconds) < 1e-6
                for s in series.values())
    report(series and shape, "one row per thread and interval of the whole run",
           f"{len(series)} runs")
    inside = all(0 <= a <= b <= seconds + 60 for a, b in marks.values())
    ordered = all(marks[(t, i, "shrink")][0] < marks[(t, i, "grow")][0] for t, i in series)
    report(inside and ordered, "shrink starts after the workload and before the grow", marks)
    ok, why = True, []
    for (tech, it), threads in series.items():
        want = time_lost(threads, interval, marks[(tech, it, "shrink")][0])
        got = summary[tech]["time_lost_s"]["samples"][it - 1]
        if (got is None) != (want is None) or \
                (got is not None and abs(got - want) > 1e-6 + 1e-9 * want):
            ok = False
            why.append(f"{tech} {it}: {got} != {want}")
    report(ok, "time lost equals the integral recomputed from workload.csv", "; ".join(why))
    meds = [m["median"] for t in summary.values() for m in t.values()]
    report(all(m is not None and m >= 0 for m in meds), "every metric has a median",
           json.dumps(summary)[:300])
    cover = all(m["interval"][0] <= m["median"] <= m["interval"][1]
                for t in summary.values() for m in t.values())
    report(cover, "each median lies inside its interval")
    with open(os.path.join(d, "report.txt")) as f:
        line = next((x for x in f if x.startswith("ordering by time lost")), "")
    named = [part.split()[0] for part in line.split(":", 1)[-1].split(" < ")] if line else []
    lost = {t: v["time_lost_s"]["median"] for t, v in summary.items()}
    want = sorted(lost, key=lambda t: (lost[t] is None, lost[t] or 0))
    report(sorted(named) == sorted(lost) and
           [lost[t] for t in named] == [lost[t] for t in want],
           "the report orders every technique by its median time lost", line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
