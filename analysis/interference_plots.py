"""Plot of `hatrace inflate --workload stream|ftq`: the workload's rate over
time (all threads summed), one panel per technique, every iteration as a line,
with the measured shrink and grow windows shaded."""
import csv
import json
import os
from collections import defaultdict

import matplotlib.pyplot as plt

SHADES = {"shrink": "tab:red", "grow": "tab:green"}


def interference_plot(out_dir, save):
    path = os.path.join(out_dir, "workload.csv")
    if not os.path.exists(path):
        return
    with open(os.path.join(out_dir, "meta.json")) as f:
        workload = json.load(f)["workload"]["name"]
    rate = defaultdict(lambda: defaultdict(float))  # (tech, iteration) -> t -> rate
    with open(path) as f:
        for row in csv.DictReader(f):
            rate[(row["technique"], row["iteration"])][float(row["t_s"])] += \
                float(row["rate_per_s"])
    with open(os.path.join(out_dir, "marks.csv")) as f:
        marks = list(csv.DictReader(f))
    techs = list(dict.fromkeys(t for t, _ in rate))
    fig, axes = plt.subplots(len(techs), 1, figsize=(8, 2.4 * len(techs)), sharex=True,
                             squeeze=False)
    scale, unit = (1e6, "MB/s") if workload == "stream" else (1, "units/s")
    for ax, tech in zip(axes[:, 0], techs):
        for (t, it), series in rate.items():
            if t == tech:
                xs = sorted(series)
                ax.plot(xs, [series[x] / scale for x in xs], lw=0.8, label=f"iteration {it}")
        for m in marks:
            if m["technique"] == tech:
                ax.axvspan(float(m["start_s"]), max(float(m["end_s"]), float(m["start_s"])),
                           color=SHADES.get(m["phase"], "grey"), alpha=0.15, lw=0)
        ax.set_title(tech, fontsize=9)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
    axes[-1, 0].set_xlabel(f"seconds since {workload} started (shaded: measured shrink, "
                           "grow)")
    save(fig, out_dir, f"interference-{workload}")
