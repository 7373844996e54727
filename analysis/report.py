#!/usr/bin/python3
"""The report of `hatrace reproduce`: one self-contained HTML page (figures
embedded) with every table and figure of the run, the paper's figures next to
ours, and the scale and accelerator they were measured at.
usage: report.py DIR"""
import base64
import glob
import html
import json
import os
import sys

from summary_keys import techniques

HERE = os.path.dirname(os.path.abspath(__file__))
SECTIONS = [("setup", "Setup"), ("inflate", "Inflate"), ("stream", "STREAM under reclamation"),
            ("ftq", "FTQ under reclamation"), ("build", "Auto-reclaim footprint: build"),
            ("blender", "Auto-reclaim footprint: blender"), ("multivm", "Multi-VM"),
            ("bench", "Allocator and tracer benchmarks")]


def load(*parts):
    try:
        with open(os.path.join(*parts)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def esc(x):
    return html.escape(str(x))


def table(head, rows):
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    return "\n".join(out) + "</table>"


def figures(d, step):
    out = []
    for png in sorted(glob.glob(os.path.join(d, step, "*.png"))):
        with open(png, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        out.append(f'<figure><img alt="{esc(os.path.basename(png))}" '
                   f'src="data:image/png;base64,{data}"><figcaption>'
                   f'{esc(os.path.basename(png))}</figcaption></figure>')
    return "\n".join(out)


def num(x, fmt="{:.3f}"):
    return "-" if x is None else fmt.format(x)


def interval(p):
    for key in ("interval_ns", "range_ns", "ci95_ns"):
        if key in p:
            return p[key]
    return None


def inflate_section(d, paper):
    s = load(d, "inflate", "summary.json")
    if not s:
        return None
    phases = ["shrink", "shrink_untouched", "grow", "install", "touch2"]
    rows = []
    for tech in techniques(s):
        ph = s[tech]
        row = [tech]
        for p in phases:
            v = ph.get(p)
            if not isinstance(v, dict) or v.get("median_ns") is None:
                row.append("-")
                continue
            iv = interval(v)
            row.append(f"{v['median_ns'] / 1e6:.1f} ms" +
                       (f" [{iv[0] / 1e6:.1f}, {iv[1] / 1e6:.1f}]" if iv else ""))
        pp = paper["inflate_ms"].get(tech, {})
        row.append(" / ".join(f"{pp[p]:g}" if p in pp else "-" for p in phases[:4]))
        rows.append(row)
    out = [table(["technique"] + phases + ["paper ms (shrink / untouched / grow / install)"],
                 rows)]
    # The acceptance ratios are inflate's own (summary.json "ratios"); only
    # virtio-balloon against virtio-mem, which has no target there, is computed here.
    rows = []
    for name, r in (s.get("ratios") or {}).items():
        unit = "x" if r.get("unit") == "times" else "%"
        paper_v = r.get("paper")
        rows.append([name, f"{r['value']:.1f}{unit}", f"{r['comparison']} {r['target']:g}{unit}",
                     f"{paper_v:g}{unit}" if paper_v is not None else "-",
                     "yes" if r.get("met") else "NO"])
    slow, fast = s.get("virtio-balloon", {}).get("shrink"), s.get("virtio-mem", {}).get("shrink")
    pa, pb = paper["inflate_ms"].get("virtio-balloon"), paper["inflate_ms"].get("virtio-mem")
    if isinstance(slow, dict) and isinstance(fast, dict) and slow.get("median_ns") and fast.get("median_ns"):
        rows.append(["virtio-balloon / virtio-mem shrink", f"{slow['median_ns'] / fast['median_ns']:.1f}x",
                     "-", f"{pa['shrink'] / pb['shrink']:.1f}x", "-"])
    if rows:
        out.append("<p>Ratios of medians in this run against the paper's (compare ratios, "
                   "not times: the paper ran KVM on 48 cores):</p>")
        out.append(table(["ratio", "ours", "target", "paper", "met"], rows))
    rows = overhead_rows(s, phases)
    if rows:
        out.append("<p>hatrace's own overhead, in the same run: paired VMs run each phase "
                   "4 times, with the timed iterations' probes on and with every probe off "
                   "in ABBA order; the overhead is the median of the adjacent rounds' "
                   "traced/untraced ratios, with that median's interval and its coverage; "
                   "the noise, how far the phase moves between two rounds with the same "
                   "probes; the probes' own time, estimated as the guest's traced calls "
                   "times one probed call's cost measured in the VM plus QEMU's USDT hits "
                   "times one hit's cost on the host, as a share of the untraced median; "
                   "and the verdict of the interval against 5 %:</p>")
        out.append(table(["technique", "phase", "traced ms", "untraced ms", "pairs", "overhead",
                          "interval", "noise", "probes est.", "verdict"], rows))
        pl = s.get("tracing_overhead_pooled")
        if pl:
            same = pl.get("same_condition_beyond_target_pct")
            iv = pl["overhead_interval_pct"]
            out.append(f"<p>Pooled over {pl['phases']} phases ({pl['pairs']} pairs): "
                       f"{pl['overhead_pct']:+.1f} % [{iv[0]:+.1f}, {iv[1]:+.1f}] % "
                       f"({100 * pl['overhead_interval_coverage']:.0f} %), "
                       f"{pl['verdict'].replace('_', ' ')}; "
                       f"{pl['pairs_beyond_target_pct']:.0f} % of the pairs moved by more than "
                       f"5 %" + (f", and {same:.0f} % of the rounds with the same probes did "
                                 "(this host's resolution)" if same is not None else "") + ".</p>")
    return "\n".join(out)


def overhead_rows(s, phases):
    rows = []
    for tech in techniques(s):
        ph = s[tech]
        for p in phases:
            o = (ph.get(p) or {}).get("tracing_overhead")
            if not isinstance(o, dict) or o.get("overhead_pct") is None:
                continue
            iv = o.get("overhead_interval_pct") or []
            est = o.get("probe_estimate_pct")
            noise = o.get("noise_pct")
            rows.append([tech, p, num(o["traced_median_s"] * 1e3, "{:.1f}"),
                         num(o["untraced_median_s"] * 1e3, "{:.1f}"),
                         str(len(o.get("pair_overhead_pct") or [])),
                         f"{o['overhead_pct']:+.1f} %",
                         f"[{iv[0]:+.0f}, {iv[1]:+.0f}] % ({100 * o['overhead_interval_coverage']:.0f} %)"
                         if len(iv) == 2 else "-",
                         f"{noise:.0f} %" if noise is not None else "-",
                         f"{est:.2f} %" if est is not None else "-",
                         (o.get("verdict") or "-").replace("_", " ")])
    return rows


def interference_section(d, step, paper):
    s = load(d, step, "interference.json")
    if not s:
        return None
    order = sorted(s, key=lambda t: (s[t]["time_lost_s"]["median"] is None,
                                     s[t]["time_lost_s"]["median"] or 0))
    ref = paper["stream_time_lost_s" if step == "stream" else "ftq_shrink_work_lost_thread_s"]
    rows = [[t, num(s[t]["time_lost_s"]["median"]), num(s[t]["p1_rate_per_s"]["median"], "{:.3g}"),
             num(s[t]["shrink_work_lost_thread_s"]["median"]),
             num(s[t]["grow_work_lost_thread_s"]["median"]), ref.get(t, "-")] for t in order]
    head = ["technique (least time lost first)", "time lost s", "1 % quantile /s",
            "shrink work lost thread-s", "grow work lost thread-s",
            "paper: time lost s" if step == "stream" else "paper: shrink work lost thread-s"]
    return table(head, rows) + interference_note(s, order)


def interference_note(s, order):
    """The closing note: the ordering by time lost, balloon against virtio-mem,
    and what this run shows for HyperAlloc."""
    def lost(t, key="time_lost_s"):
        return s.get(t, {}).get(key, {}).get("median")

    out = ["<p>Ordering by time lost (least first): " +
           esc(" < ".join(f"{t} ({num(lost(t))} s)" for t in order)) + ".</p>"]
    b, m = lost("virtio-balloon"), lost("virtio-mem")
    if b is not None and m is not None:
        out.append(f"<p>The balloon loses {'more' if b > m else 'less'} time than virtio-mem "
                   f"({num(b)} s against {num(m)} s; the paper: about 20 s against 2.1-2.5 s)."
                   "</p>")
    h = lost("hyperalloc")
    if h is not None:
        others = [t for t in order if t != "hyperalloc" and lost(t) is not None]
        rank = [t for t in order if lost(t) is not None].index("hyperalloc") + 1
        out.append(f"<p>HyperAlloc: {num(h)} s lost, rank {rank} of {len(others) + 1}; "
                   f"{num(lost('hyperalloc', 'shrink_work_lost_thread_s'))} thread-s of work "
                   "lost inside its shrink window (the paper: at most 0.1 s lost, as the "
                   "baseline). Under TCG on a shared host the time lost also holds the "
                   "host's noise after the shrink; the work lost inside the resize windows "
                   "is the figure that is the technique's own.</p>")
    return "\n".join(out)


def footprint_section(d, step, paper):
    s = load(d, step, "footprint.json")
    if not s:
        return None
    techs = s["techniques"]
    if "vms" in s:
        ref = paper["multivm_gib_min"]
        base = techs.get("static", {}).get("sum_gib_min", {}).get("median")
        rows = []
        for t, v in techs.items():
            run = (v.get("runs") or [{}])[0] or {}
            g = v["sum_gib_min"]["median"]
            rows.append([t, num(g), num(v["sum_peak_bytes"]["median"] and
                                    v["sum_peak_bytes"]["median"] / 2**20, "{:.0f}"),
                         num(g / base if g and base else None, "{:.2f}"),
                         f"{ref[t] / ref['static']:.2f}" if t in ref else "-",
                         run.get("extra_vms_computed", "-"),
                         {True: "yes", False: "no", None: "-"}.get(run.get("extra_vms_reached"))])
        return (f"<p>{s['vms']} VMs under {s['budget_bytes'] / 2**30:.1f} GiB.</p>" +
                table(["technique", "sum GiB*min", "sum peak MiB", "vs static",
                       "paper vs static", "extra VMs computed", "extra VMs fitted"], rows))
    ref = paper["footprint_gib_min"]
    base = techs.get("static", {}).get("gib_min", {}).get("median")
    rows = []
    for t, v in techs.items():
        g = v["gib_min"]["median"]
        rows.append([t, num(g), num(v["peak_rss_bytes"]["median"] and
                                v["peak_rss_bytes"]["median"] / 2**20, "{:.0f}"),
                     num(g / base if g and base else None, "{:.2f}"),
                     f"{ref[t] / ref['static']:.2f}" if t in ref else "-",
                     num(v.get("runtime_vs_static"), "{:.2f}"), num(v["qemu_cpu_s"]["median"], "{:.1f}"),
                     num(v.get("main_loop_cpu_vs_static_pct"), "{:.2f}")])
    out = [table(["technique", "GiB*min", "peak MiB", "vs static", "paper vs static",
                  "runtime vs static", "QEMU CPU s", "main loop +% of a core"], rows)]
    vs = s.get("against_static", {})
    if vs:
        out.append("<p>" + "; ".join(
            f"{esc(label)}: {num(vs.get(k, {}).get('ours'), '{:.2f}')} of static's GiB*min "
            f"(paper {vs.get(k, {}).get('paper', 0):.2f})"
            for k, label in (("fpr", "FPR"), ("hyperalloc", "HyperAlloc"))) +
            f" ({esc(vs.get('note', ''))}).</p>")
    out.append("<p>Modes: " + "; ".join(f"{esc(t)}: {esc(v.get('mode', '-'))}"
                                        for t, v in techs.items()) + ".</p>")
    return "\n".join(out)


def bench_section(d):
    files = sorted(glob.glob(os.path.join(d, "bench", "bench-*.json")))
    if not files:
        return None
    out = []
    for path in files:
        doc = load(path)
        out.append(f"<h3>{esc(os.path.basename(path))}</h3><pre>" +
                   esc(json.dumps(doc, indent=1)[:6000]) + "</pre>")
    return "\n".join(out)


def setup_section(d, meta, steps):
    inflate = load(d, "inflate", "meta.json") or {}
    rows = [[k, meta.get(k, "-")] for k in ("tier", "git_revision", "host_kernel", "host_cpus",
                                            "thp_enabled")]
    rows.append(["host memory", f"{meta.get('host_mem_bytes', 0) / 2**30:.1f} GiB"])
    for k in ("accel", "accel_reason", "mem_bytes", "vcpus", "qemu", "qemu_version",
              "qemu_usdt_probes", "guest_kernel"):
        if k in inflate:
            rows.append([f"inflate: {k}", inflate[k]])
    step_rows = [[name, v.get("status"), num(v.get("seconds"), "{:.0f}")]
                 for name, v in steps.items()]
    return ("<p>Scale and accelerator: see the rows below. Absolute times depend on both; "
            "compare ratios measured in the same run.</p>" + table(["", ""], rows) +
            "<h3>Steps</h3>" + table(["step", "status", "seconds"], step_rows))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    paper = load(HERE, "paper.json")
    meta = load(d, "meta.json") or {}
    steps = load(d, "steps.json") or {}
    body = []
    for key, title in SECTIONS:
        if key == "setup":
            content = setup_section(d, meta, steps)
        elif key == "inflate":
            content = inflate_section(d, paper)
        elif key in ("stream", "ftq"):
            content = interference_section(d, key, paper)
        elif key == "bench":
            content = bench_section(d)
        else:
            content = footprint_section(d, key, paper)
        if content is None:
            status = steps.get(key, {}).get("status", "not run")
            content = f"<p class=missing>No results ({esc(status)}; see {esc(key)}.log).</p>"
        body.append(f'<section id="{key}"><h2>{esc(title)}</h2>{content}'
                    f'{figures(d, key) if key not in ("setup", "bench") else ""}</section>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hatrace reproduce</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #bbb; padding: 3px 8px; text-align: left; }}
figure img {{ max-width: 100%; }} .missing {{ color: #a00; }}
</style></head><body>
<h1>hatrace reproduce</h1>
<p>Paper figures: {esc(paper['source'])}.</p>
{''.join(body)}
</body></html>
"""
    tmp = os.path.join(d, "report.html.tmp")
    with open(tmp, "w") as f:
        f.write(page)
    os.replace(tmp, os.path.join(d, "report.html"))


if __name__ == "__main__":
    main()
