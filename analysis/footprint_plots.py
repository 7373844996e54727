"""Plot of `hatrace inflate --workload build|blender`: QEMU's RSS over the
measured window per technique (from hatrace footprint's CSVs, iteration 1),
on one axis, with the GiB*min of each in the legend."""
import csv
import json
import os

import matplotlib.pyplot as plt

GIB = 1 << 30


def footprint_plot(out_dir, save):
    path = os.path.join(out_dir, "footprint.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        summary = json.load(f)
    techs, multivm = summary["techniques"], "vms" in summary
    with open(os.path.join(out_dir, "meta.json")) as f:
        workload = json.load(f)["workload"]["name"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for tech, fig_data in techs.items():
        name = f"multivm-{tech}-base-1.csv" if multivm else f"footprint-{tech}-1.csv"
        csv_path = os.path.join(out_dir, name)
        if not os.path.exists(csv_path):
            continue
        rows, last = [], {}
        with open(csv_path) as f:
            for r in csv.DictReader(f):  # summed over the VMs' QEMUs
                last[r["pid"]] = int(r["rss_bytes"])
                rows.append((int(r["time_ns"]), sum(last.values())))
        if not rows:
            continue
        t0 = rows[0][0]
        gib_min = fig_data["sum_gib_min" if multivm else "gib_min"]["median"]
        label = tech if gib_min is None else f"{tech} ({gib_min:.2f} GiB*min)"
        ax.plot([(t - t0) / 1e9 for t, _ in rows], [v / GIB for _, v in rows], lw=1,
                label=label)
    ax.set_xlabel(f"seconds ({workload} workload, iteration 1)")
    ax.set_ylabel(f"RSS of {summary['vms']} QEMUs (GiB)" if multivm else "QEMU RSS (GiB)")
    if multivm:
        ax.axhline(summary["budget_bytes"] / GIB, color="grey", ls="--", lw=0.8,
                   label="budget")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    save(fig, out_dir, f"footprint-{workload}")
