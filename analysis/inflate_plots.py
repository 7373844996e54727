#!/usr/bin/python3
"""Plots of `hatrace inflate` results: speed per phase and technique (GiB/s,
log axis, like the HyperAlloc paper's inflate figure) and QEMU's RSS over time
for every run. usage: inflate_plots.py RESULTS_DIR"""
import csv
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from footprint_plots import footprint_plot  # noqa: E402
from interference_plots import interference_plot  # noqa: E402
from summary_keys import techniques  # noqa: E402

PHASES = ["shrink", "grow", "install", "touch2", "shrink_untouched"]
GIB = 1 << 30


def save(fig, out_dir, name):
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        tmp = path + ".tmp"
        fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    plt.close(fig)


def speed_plot(out_dir, summary):
    techs = techniques(summary)
    phases = [p for p in PHASES if any(p in summary[t] for t in techs)]
    if not any((summary[t].get(p) or {}).get("median_ns") for t in techs for p in phases):
        return  # no timed phase (the footprint workloads): no empty figure
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(techs), 1)
    coverage = []
    for i, tech in enumerate(techs):
        xs, med, lo_err, hi_err = [], [], [], []
        for j, phase in enumerate(phases):
            p = summary[tech].get(phase)
            # null: not measured (FPR has no grow step); 0 bytes: nothing moved
            if not p or not p["median_ns"] or not p["bytes_median"]:
                continue
            b = p["bytes_median"]
            lo, hi = p["median_interval_ns"]
            coverage.append(p["median_interval_coverage"])
            speed = b / GIB / (p["median_ns"] / 1e9)
            slow = b / GIB / (hi / 1e9) if hi > 0 else speed
            fast = b / GIB / (lo / 1e9) if lo > 0 else speed
            xs.append(j + (i - (len(techs) - 1) / 2) * width)
            med.append(speed)
            lo_err.append(max(speed - slow, 0))
            hi_err.append(max(fast - speed, 0))
        ax.bar(xs, med, width, yerr=[lo_err, hi_err], capsize=3, label=tech)
    ax.set_yscale("log")
    ax.set_xticks(range(len(phases)))
    ax.set_xticklabels(phases)
    # The error bars: summary.json's median_interval_ns (order statistics
    # around the median), labelled with the smallest coverage among them.
    cov = f", coverage >= {100 * min(coverage):.2f} %" if coverage else ""
    ax.set_ylabel("speed [GiB/s] (median)")
    ax.set_title(f"inflate: speed per phase\nbars: interval of the median (order statistics{cov})",
                 fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    save(fig, out_dir, "inflate-speed")


def rss_plot(out_dir, rows):
    runs = defaultdict(list)
    for r in rows:
        runs[(r["technique"], int(r["iteration"]))].append(
            (int(r["t_ns"]), int(r["rss_bytes"]), r["phase"]))
    techs = sorted({t for t, _ in runs})
    if not techs:
        return  # multi-VM runs: their RSS is in the footprint plot
    fig, axes = plt.subplots(len(techs), 1, figsize=(9, 2.6 * max(len(techs), 1)),
                             squeeze=False, sharex=True)
    for ax, tech in zip(axes[:, 0], techs):
        for (t, it), samples in sorted(runs.items()):
            if t != tech:
                continue
            t0 = samples[0][0]
            ax.plot([(s[0] - t0) / 1e9 for s in samples], [s[1] / GIB for s in samples],
                    label=f"iteration {it}", lw=1)
            if it == 1:  # phase boundaries of the first run, labels staggered
                last, k = None, 0
                top = max(x[1] for x in samples) / GIB
                for s in samples:
                    if s[2] != last:
                        x = (s[0] - t0) / 1e9
                        ax.axvline(x, color="grey", lw=0.5, ls=":")
                        ax.text(x, top * (0.05 + 0.3 * (k % 3)), " " + s[2], fontsize=6,
                                rotation=90, va="bottom", color="dimgrey")
                        last, k = s[2], k + 1
        ax.set_title(tech, fontsize=9)
        ax.set_ylabel("QEMU RSS [GiB]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time since QEMU start [s]")
    save(fig, out_dir, "inflate-rss")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out_dir, "rss.csv")) as f:
        rows = list(csv.DictReader(f))
    speed_plot(out_dir, summary)
    rss_plot(out_dir, rows)
    interference_plot(out_dir, save)
    footprint_plot(out_dir, save)


if __name__ == "__main__":
    main()
