#!/usr/bin/python3
"""Checks a `hatrace inflate` results folder (run by tests/vm_inflate.sh, which
declares the plan): summary.json against the raw iterations.csv and
guest-events.csv (medians recomputed, null where a cell is empty, every null
with its reason), that each technique's own guest events and host discards are
in proportion to the bytes it moved, and that every column and key written is
in docs/results.md. Prints CHECKS result lines."""
import csv
import json
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
from summary_keys import techniques  # noqa: E402

CHECKS = 46
# --hyperalloc: tests/vm_hyperalloc_inflate.sh's checks.
HYPERALLOC_CHECKS = 12
DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results.md")
TECHNIQUES = ("virtio-balloon", "virtio-balloon-huge", "fpr", "virtio-mem")
ACTIVE = ("virtio-balloon", "virtio-balloon-huge", "virtio-mem")
# A passive technique has no grow and no untouched shrink: null in summary.json.
NOT_MEASURED = {"fpr": ("grow", "shrink_untouched")}
PHASES = ("shrink", "grow", "install", "touch2", "shrink_untouched")
# The host counters: summary.json breakdown.host.NAME, iterations.csv
# <phase>_host_NAME and trace.json host slices' args.NAME, one name each.
HOST_FIELDS = {f: f"host_{f}" for f in (
    "madvise_n", "madvise_ns", "fallocate_n", "fallocate_ns", "discard_bytes", "ram_faults",
    "kvm_exits", "kvm_page_faults")}
MiB = 1 << 20
# An x86-64 guest below 64 GiB hot(un)plugs 128 MiB memory blocks: virtio-mem
# offlines and unplugs each block it gives back once.
MEMORY_BLOCK = 128 * MiB
# Free page reporting sends at most PAGE_REPORTING_CAPACITY (32) blocks of at
# most MAX_ORDER - 1 (4 MiB) per report: one report per 128 MiB at most.
REPORT_MAX = 32 * 4 * MiB
# virtio-balloon-huge gives memory in 2 MiB units.
HUGE_UNIT = 2 * MiB


# The ratios of issue 10: value = median of (tech, phase) / median of (tech,
# phase) ("limits": the DONTNEED limit), target and direction.
RATIOS = {
    "hyperalloc_shrink_vs_virtio_balloon":
        ("virtio-balloon", "shrink", "hyperalloc", "shrink", ">=", 50),
    "hyperalloc_shrink_vs_virtio_mem": ("virtio-mem", "shrink", "hyperalloc", "shrink", ">=", 5),
    "hyperalloc_shrink_vs_dontneed_limit": ("hyperalloc", "shrink", "limits", None, "<=", 2),
    "hyperalloc_return_vs_virtio_mem_grow": ("virtio-mem", "grow", "hyperalloc", "grow", ">=", 10),
    "hyperalloc_untouched_shrink_vs_virtio_mem":
        ("virtio-mem", "shrink_untouched", "hyperalloc", "shrink_untouched", ">=", 5),
    "hyperalloc_install_vs_virtio_mem": ("hyperalloc", "install", "virtio-mem", "install", "<=", 1.2),
    "balloon_huge_shrink_vs_virtio_balloon":
        ("virtio-balloon", "shrink", "virtio-balloon-huge", "shrink", ">=", 10),
}
PASSIVE = ("fpr",)


def close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)


def check_limits_ratios(prefix, s, meta, want):
    """The physical limits and the ratios (4 result lines): the limits' medians
    from their samples, each multiple and ratio recomputed from the phase
    medians, and the ratios present exactly where both sides ran."""
    lim = s.get("limits") or {}
    dn, pw = lim.get("dontneed_samples_ns") or [], lim.get("populate_write_samples_ns") or []
    res(f"{prefix}_limits", lim.get("bytes") == want and lim.get("thp") == meta["thp"] and
        lim.get("repeats") == len(dn) == len(pw) >= 3 and min(dn + pw) > 0 and
        close(lim.get("dontneed_s"), statistics.median(dn) / 1e9) and
        close(lim.get("populate_write_s"), statistics.median(pw) / 1e9) and
        0 <= lim.get("thp_backed_bytes", -1) <= want and
        (meta["thp"] == "never" or lim["thp_backed_bytes"] > 0),
        f"limits {json.dumps(lim)[:400]}, expected {want} bytes, THP {meta['thp']}")
    per_byte = {k: lim[k] * 1e9 / want for k in ("dontneed_s", "populate_write_s")
                if isinstance(lim.get(k), (int, float))}
    bad, seen = [], 0
    for t in techniques(s):
        for p, key, limit in (("shrink", "vs_dontneed_limit", "dontneed_s"),
                              ("shrink_untouched", "vs_dontneed_limit", "dontneed_s"),
                              ("install", "vs_populate_write_limit", "populate_write_s")):
            v = s[t].get(p)
            if v is None:
                continue
            want_x = v["median_ns"] / v["bytes_median"] / per_byte[limit] \
                if v["median_ns"] is not None and v["bytes_median"] else None
            seen += want_x is not None
            if not (close(v.get(key), want_x) or (want_x is None and v.get(key, 0) is None)):
                bad.append(f"{t}/{p}/{key}: {v.get(key)} vs {want_x}")
        v = s[t].get("shrink") or {}
        h = (v.get("breakdown") or {}).get("host") or {}
        if h.get("discard_bytes") and h.get("madvise_ns") is not None:
            want_x = (h["madvise_ns"] + h["fallocate_ns"]) / h["discard_bytes"] / \
                per_byte["dontneed_s"]
            if not close(v.get("qemu_discard_vs_dontneed_limit"), want_x):
                bad.append(f"{t}/shrink/qemu_discard: {v.get('qemu_discard_vs_dontneed_limit')} "
                           f"vs {want_x}")
    res(f"{prefix}_vs_limits", seen and not bad, f"multiples of the limits: {bad}")

    ran = set(meta["techniques"])
    untouched = meta["params"]["untouched"]
    expected = {n for n, (a, pa, b, pb, _, _) in RATIOS.items()
                if a in ran and (b in ran or b == "limits") and
                (untouched or "untouched" not in pa)}
    expected |= {f"{t}_rss_drop_pct" for t in ran if t not in PASSIVE}
    got = s.get("ratios") or {}
    res(f"{prefix}_ratios_present", set(got) == expected,
        f"ratios {sorted(got)}, expected {sorted(expected)}")
    bad = []
    for n, r in got.items():
        if n in RATIOS:
            a, pa, b, pb, cmp, target = RATIOS[n]
            den = lim["dontneed_s"] * 1e9 if b == "limits" else s[b][pb]["median_ns"]
            value, unit = s[a][pa]["median_ns"] / den, "times"
        else:
            t = n[:-len("_rss_drop_pct")]
            drops = [max(d, 0) for d in s[t]["shrink"]["rss_drop_bytes"]]
            value, unit, cmp, target = 100 * statistics.median(drops) / want, "percent", ">=", 90
        met = value <= target if cmp == "<=" else value >= target
        paper_ok = (isinstance(r.get("paper"), float) and r["paper"] > 0 and r.get("paper_source")) \
            or (r.get("paper", 0) is None and r.get("why_null", {}).get("paper"))
        if not (close(r.get("value"), value) and r.get("unit") == unit and
                r.get("comparison") == cmp and r.get("target") == target and
                r.get("met") is met and r.get("what") and paper_ok):
            bad.append(f"{n}: {r}, expected value {value} {unit} {cmp} {target}, met {met}")
    res(f"{prefix}_ratios_values", got and not bad, f"ratios not from the medians: {bad}")


def res(name, good, why=""):
    print(f"ok - {name}" if good else f"not ok - {name}: {why}", flush=True)


def median(values):
    """The median of the measured values; None when any is not (an empty cell)."""
    return None if None in values or not values else statistics.median(values)


def median_interval(x):
    """[x(k), x(n+1-k)] with the largest k whose coverage 1 - 2 P(Bin(n, 1/2) < k)
    is at least 95 % ([min, max] below 6 samples), and its coverage."""
    x, n = sorted(x), len(x)

    def coverage(k):
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
    k = max([k for k in range(1, (n + 1) // 2 + 1) if coverage(k) >= 0.95] or [1])
    return x[k - 1], x[n - k], coverage(k)


def check_pooled(s, overheads):
    """tracing_overhead_pooled from every phase's pairs and same-probe rounds."""
    pairs = [x for ov in overheads for x in ov["pair_overhead_pct"]]
    same = [x for ov in overheads for x in ov["same_condition_pct"]]
    pl = s.get("tracing_overhead_pooled") or {}
    if not pairs:
        res("vm_inflate_tracing_overhead_pooled", False, "no phase has a pair")
        return
    lo, hi, cov = median_interval([1 + x / 100 for x in pairs])
    lo, hi = 100 * (lo - 1), 100 * (hi - 1)

    def beyond(xs):
        return 100 * sum(abs(x) > 5 for x in xs) / len(xs)
    want = {"phases": len(overheads), "pairs": len(pairs),
            "overhead_pct": 100 * (statistics.median(1 + x / 100 for x in pairs) - 1),
            "overhead_interval_pct": [lo, hi], "overhead_interval_coverage": cov,
            "target_pct": 5, "pairs_beyond_target_pct": beyond(pairs),
            "verdict": ("within_target" if -5 <= lo and hi <= 5 else
                        "outside_target" if lo > 5 or hi < -5 else "unresolved"),
            "same_condition_comparisons": len(same),
            "same_condition_pct": 100 * (statistics.median(1 + x / 100 for x in same) - 1)
            if same else None,
            "same_condition_beyond_target_pct": beyond(same) if same else None}

    def close(a, b):
        if isinstance(b, list):
            return isinstance(a, list) and len(a) == len(b) and all(map(close, a, b))
        if isinstance(b, float):
            return isinstance(a, (int, float)) and abs(a - b) < 1e-4
        return a == b
    bad = {k: (pl.get(k), v) for k, v in want.items() if not close(pl.get(k), v)}
    res("vm_inflate_tracing_overhead_pooled", not bad,
        f"tracing_overhead_pooled (got, want): {bad}")


def unexplained_nulls(doc, path="$"):
    """Nulls without a why_null entry, and why_null entries of no null."""
    bad = []
    if isinstance(doc, dict):
        why = doc.get("why_null", {})
        bad += [f"{path}.{k}" for k, v in doc.items() if v is None and not why.get(k)]
        bad += [f"{path}.why_null.{k}" for k in why if doc.get(k, 0) is not None]
        for k, v in doc.items():
            if k != "why_null":
                bad += unexplained_nulls(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            bad += unexplained_nulls(v, f"{path}[{i}]")
    return bad


def documented(section):
    """The names docs/results.md lists for a file: regexes, placeholders expanded."""
    text = open(DOC).read()

    def part(title):
        return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    # a value may hold a placeholder listed below it (`<technique>_rss_drop_pct`)
    values = {m[0]: re.findall(r"`([^`]+)`", m[1]) for m in
              re.findall(r"^\| `(<\w+>)` \| (.*) \|$", part("Names"), re.M)}
    names = []
    for row in re.findall(r"^\| (`.*?) \|", part(f"`{section}`"), re.M):
        names += re.findall(r"`([^`]+)`", row)
    pats = []
    for n in names:
        pat = re.escape(n) if n != "why_null" else r"(?:.*\.)?why_null"
        for ph, vals in values.items():
            alt = "|".join(map(re.escape, vals)) if ph != "<event>" else r"[A-Za-z0-9_]+"
            pat = pat.replace(re.escape(ph), f"(?:{alt})")
        pats.append(re.compile(pat + r"\Z"))
    return pats


def undocumented(section, keys):
    pats = documented(section)
    return sorted({k for k in keys if not any(p.match(k) for p in pats)})


def key_paths(doc, path=""):
    """Dotted paths of every key (why_null's contents left out); lists end a path."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            p = f"{path}.{k}" if path else k
            out.append(p)
            if k != "why_null":
                out += key_paths(v, p)
    return out


def main(d):
    s = json.load(open(f"{d}/summary.json"))
    meta = json.load(open(f"{d}/meta.json"))
    all_rows = list(csv.DictReader(open(f"{d}/iterations.csv")))
    # The medians are the timed iterations'; the others are the paired VMs'
    # rounds (the overhead) and the breakdown iteration (host probes per
    # syscall and fault).
    rows = [r for r in all_rows if r["kind"] == "timed"]
    breakdown = {r["technique"]: r for r in all_rows if r["kind"] == "breakdown"}
    all_guest_rows = list(csv.DictReader(open(f"{d}/guest-events.csv")))
    guest_rows = [g for g in all_guest_rows if g["kind"] == "timed"]
    breakdown_guest = [g for g in all_guest_rows if g["kind"] == "breakdown"]
    n = meta["params"]["iterations"]
    want = meta["params"]["mem_bytes"] - meta["params"]["shrink_to_bytes"]

    def raw(t, p, column):
        """One technique's values of a column, in iteration order, for the
        iterations that completed the phase; None for an empty cell."""
        return [int(r[f"{p}_{column}"]) if r[f"{p}_{column}"] != "" else None for r in rows
                if r["technique"] == t and r[f"{p}_ns"] != ""]

    missing = [f"{t}/{p}" for t in TECHNIQUES for p in PHASES
               if p not in NOT_MEASURED.get(t, ()) and
               len(s.get(t, {}).get(p, {}).get("samples_ns") or []) != n]
    res("vm_inflate_summary_complete", n >= 3 and not missing,
        f"{n} iterations; phases without {n} samples: {missing}")
    bad = [f"{t}/{p}" for t, phases in NOT_MEASURED.items() for p in phases
           if s.get(t, {}).get(p, {}).get("median_ns", 0) is not None or raw(t, p, "ns")
           or not s[t][p].get("why_null", {}).get("median_ns")]
    res("vm_inflate_not_measured_phases_are_null", not bad,
        f"a phase the technique has not is not null (with why_null) in summary.json, "
        f"or has values in iterations.csv: {bad}")
    bad = unexplained_nulls(s) + unexplained_nulls(meta)
    res("vm_inflate_nulls_have_reasons", not bad, f"{bad[:10]}")

    sp = [(t, p, s[t][p]) for t in techniques(s) for p in s[t]
          if s[t][p]["samples_ns"] is not None]
    bad = [f"{t}/{p}" for t, p, v in sp if v["samples_ns"] != raw(t, p, "ns")]
    res("vm_inflate_summary_samples_are_the_csv", not bad, f"samples differ: {bad}")
    bad = [f"{t}/{p}: {v['median_ns']}" for t, p, v in sp
           if v["median_ns"] != median(raw(t, p, "ns"))]
    res("vm_inflate_summary_median", not bad, f"not the median of iterations.csv: {bad}")
    # The interval of the median: order statistics x(k), x(n+1-k); below 6
    # samples [min, max] with coverage 1 - 2 / 2^n.
    bad = []
    for t, p, v in sp:
        x = sorted(raw(t, p, "ns"))
        lo, hi = v["median_interval_ns"]
        k, k2 = v["median_interval_ranks"]
        if [lo, hi] != [x[k - 1], x[k2 - 1]] or k2 != len(x) + 1 - k or \
                not lo <= v["median_ns"] <= hi or \
                (len(x) < 6 and ([k, k2] != [1, len(x)] or
                                 abs(v["median_interval_coverage"] - (1 - 2 / 2 ** len(x))) > 1e-9)):
            bad.append(f"{t}/{p}: {v['median_interval_ns']} ranks {v['median_interval_ranks']} "
                       f"coverage {v['median_interval_coverage']} of {x}")
    res("vm_inflate_summary_median_interval", not bad, f"interval not from the samples: {bad}")
    bad = [f"{t}/{p}" for t, p, v in sp
           if v["bytes_median"] != median(raw(t, p, "bytes"))]
    res("vm_inflate_summary_bytes", not bad, f"bytes_median differs: {bad}")

    def host_raw(t, p, column):
        """The breakdown iteration's host counter (the timed ones run none)."""
        c = breakdown[t][f"{p}_{column}"] if t in breakdown else ""
        return [int(c) if c != "" else None] if t in breakdown else raw(t, p, column)
    bad = [f"{t}/{p}/{f}" for t, p, v in sp for f, col in HOST_FIELDS.items()
           if v["breakdown"]["host"].get(f, 0) != median(host_raw(t, p, col)) or
           (t in breakdown and v["breakdown"]["host_iteration"]["run"] != int(breakdown[t]["run"]))]
    res("vm_inflate_summary_host_breakdown", not bad,
        f"not the breakdown iteration's in the csv (null where a cell is empty): {bad}")
    # The probes that fire per syscall or per fault stay out of the timed
    # iterations and paired rounds: their host cells are empty, the breakdown's are not.
    counters = [c for c in all_rows[0] if c.endswith(tuple(f"_{h}" for h in HOST_FIELDS.values()))]
    bad = [f"{r['technique']} {r['kind']} {r['iteration']}: {c}" for r in all_rows for c in counters
           if r[c] != "" and r["kind"] != "breakdown"]
    if os.geteuid() == 0:
        bad += [f"{t}: no breakdown iteration with host counters" for t in TECHNIQUES
                if breakdown.get(t, {}).get("shrink_host_madvise_n", "") == ""]
    res("vm_inflate_per_event_probes_in_breakdown_only", not bad, f"{bad[:8]}")
    if meta["accel"] == "tcg":
        cells = {r[c] for r in rows for c in r if c.endswith(("_kvm_exits", "_kvm_page_faults"))}
        res("vm_inflate_no_kvm_counters_under_tcg", cells == {""},
            f"KVM counters under TCG must be empty cells, not {cells}")
    else:
        print("skip - vm_inflate_no_kvm_counters_under_tcg: the run used KVM")
    bad = []
    for t, p, v in sp:
        its = [r["iteration"] for r in rows if r["technique"] == t and r[f"{p}_ns"] != ""]
        counts = {}
        for g in guest_rows:
            if g["technique"] == t and g["phase"] == p and g["iteration"] in its:
                counts.setdefault(g["event"], {})[g["iteration"]] = int(g["count"])
        guest = v["breakdown"]["guest"] or {}
        # Functions called per unit of a resize are traced in the breakdown
        # iteration only: its single row is their "median".
        only = {e for e, ev in guest.items() if ev.get("breakdown_only")}
        if set(counts) != set(guest) - only:
            bad.append(f"{t}/{p}: events {sorted(guest)} vs {sorted(counts)}")
        bad += [f"{t}/{p}/{e}" for e, c in counts.items()
                if guest[e]["count_median"] != statistics.median(c.get(i, 0) for i in its)]
        bad += [f"{t}/{p}/{e} (breakdown only)" for e in only
                if [guest[e]["count_median"]] != [int(g["count"]) for g in breakdown_guest
                                                  if (g["technique"], g["phase"], g["event"]) ==
                                                  (t, p, e)]]
    res("vm_inflate_summary_guest_breakdown", not bad,
        f"medians differ from guest-events.csv: {bad}")
    # Count-only events (tracepoints) have no time: an empty sum_ns, a null median.
    untimed = {(g["technique"], g["phase"], g["event"]) for g in guest_rows if g["sum_ns"] == ""}
    timed = {(g["technique"], g["phase"], g["event"]) for g in guest_rows if g["sum_ns"] != ""}
    bad = [f"{t}/{p}/{e}" for t, p, v in sp for e, ev in (v["breakdown"]["guest"] or {}).items()
           if (ev["sum_ns_median"] is None) != ((t, p, e) in untimed) or (t, p, e) in untimed & timed]
    res("vm_inflate_guest_untimed_null", untimed and not bad and
        all(e.startswith(("mm_page_", "vmstat_")) for _, _, e in untimed),
        f"sum_ns empty in guest-events.csv {sorted(untimed)[:6]}; null medians differ: {bad}")
    bad = []
    for t, p, v in sp:
        if not p.startswith("shrink"):
            continue
        drops = [a - b for a, b in zip(raw(t, p, "rss_before"), raw(t, p, "rss_after"))]
        pct = None if t in NOT_MEASURED else [100 * d / want for d in drops]
        if v["rss_drop_bytes"] != drops or (v["rss_drop_pct_of_request"] != pct and not all(
                abs(a - b) < 1e-6 for a, b in zip(v["rss_drop_pct_of_request"] or [], pct or [1]))):
            bad.append(f"{t}/{p}: {v['rss_drop_bytes']} {v['rss_drop_pct_of_request']} vs {drops}")
    res("vm_inflate_summary_rss_drops", not bad, f"RSS drops differ from the csv: {bad}")

    res("vm_inflate_meta", meta["accel"] in ("tcg", "kvm") and meta["schema_version"] == 2
        and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["date"]) and meta["cpu_model"]
        and meta["hatrace_revision"] != "unknown" and meta["thp"]
        and meta["qemu"].endswith("/qemu/qemu-system-x86_64") and meta["qemu_usdt_probes"] > 0
        and meta["thresholds"]["rss_fall_bytes"] == 8 * MiB
        and meta["thresholds"]["rss_quiet_ns"] == 500_000_000
        and meta["thresholds"]["rss_poll_ns"] == 20_000_000, json.dumps(meta)[:300])
    bad = {t: v for t, v in meta["techniques"].items()
           if not (v["guest_kernel"].startswith("6.1") and
                   v["guest_kernel_image"].endswith(f"/guest/bzImage-{v['kernel_flavour']}") and
                   v["qemu_argv"][0] == meta["qemu"] and
                   v["qemu_argv"][v["qemu_argv"].index("-kernel") + 1] == v["guest_kernel_image"])}
    res("vm_inflate_meta_techniques", sorted(meta["techniques"]) == sorted(TECHNIQUES) and not bad,
        f"per-technique kernel and QEMU command line: {json.dumps(bad)[:300]}")
    for t in ACTIVE:
        drops = [a - b for a, b in zip(raw(t, "shrink", "rss_before"), raw(t, "shrink", "rss_after"))]
        res(f"vm_inflate_rss_drop_{t}", drops and min(drops) >= 0.9 * want,
            f"QEMU RSS fell {[x >> 20 for x in drops]} MiB of {want >> 20} MiB requested")
    for t in TECHNIQUES:
        its = [(r["integrity_pages"], r["integrity_bad_pages"]) for r in rows if r["technique"] == t]
        # a paired VM holds the buffer through its warm-ups and 4 rounds;
        # round 1's row has its check
        its += [(r["integrity_pages"], r["integrity_bad_pages"]) for r in all_rows
                if r["technique"] == t and r["kind"] == "paired" and r["round"] == "1"]
        res(f"vm_inflate_integrity_{t}", len(its) == n + meta["params"]["paired"] and
            all(pages not in ("", "0") and bad == "0" for pages, bad in its),
            f"(pages, bad pages) per timed iteration and paired VM: {its}")

    if os.geteuid() == 0:
        low = {t: host_raw(t, "shrink", "host_discard_bytes") for t in ACTIVE}
        res("vm_inflate_host_discards", all(v and min(v) >= 0.9 * want for v in low.values()),
            f"QEMU discarded {low} bytes of {want} requested")
    else:
        print("skip - vm_inflate_host_discards: BPF needs root")

    # Each technique's own guest events, per iteration, against what it moved.
    def events(t, p, name, rows=guest_rows, n=n):
        return [sum(int(g["count"]) for g in rows if g["technique"] == t and
                    g["phase"] == p and g["event"] == name and g["iteration"] == str(i))
                for i in range(1, n + 1)]
    # Pages are counted by the guest's vmstat (no per-page probe), in 4 KiB
    # pages in both balloon modes.
    enq = {(t, p): events(t, p, "vmstat_balloon_inflate") for p in ("shrink", "shrink_untouched")
           for t in ("virtio-balloon", "virtio-balloon-huge")}
    res("vm_inflate_guest_balloon_pages", all(min(c) >= 0.9 * want // 4096 for c in enq.values()),
        f"vmstat_balloon_inflate {enq}, expected >= {0.9 * want // 4096:.0f} (4 KiB pages)")
    # Huge mode gives whole 2 MiB units (adjust_managed_page_count once each,
    # without deflate-on-oom, traced in the breakdown iteration only), and
    # QEMU discards each with one madvise.
    units = int(0.9 * want) // HUGE_UNIT
    huge = {p: (events("virtio-balloon-huge", p, "balloon_unit_managed", breakdown_guest, 1),
                host_raw("virtio-balloon-huge", p, "host_madvise_n") if os.geteuid() == 0 else [0])
            for p in ("shrink", "shrink_untouched")}
    res("vm_inflate_guest_balloon_huge_units",
        all(min(unit) >= units and max(madv) <= 2 * want // HUGE_UNIT
            for unit, madv in huge.values()),
        f"(balloon_unit_managed, host madvise calls) {huge}, expected >= {units} 2 MiB units "
        f"and at most {2 * want // HUGE_UNIT} calls")
    blocks = -(-int(0.9 * want) // MEMORY_BLOCK)
    mem = {e: events("virtio-mem", p, e) for p in ("shrink", "shrink_untouched")
           for e in ("vmem_unplug_sb_online", "offline_pages")}
    res("vm_inflate_guest_virtio_mem_blocks", all(min(c) >= blocks for c in mem.values()),
        f"{mem}, expected >= {blocks} (128 MiB blocks)")
    moved = raw("fpr", "shrink", "bytes")
    reports = events("fpr", "shrink", "balloon_free_page_report")
    res("vm_inflate_guest_fpr_reports", moved and min(moved) >= 0.9 * want and
        all(c >= -(-int(0.9 * b) // REPORT_MAX) for c, b in zip(reports, moved)),
        f"{reports} reports for {moved} bytes, at most {REPORT_MAX >> 20} MiB each")

    # The order of each technique's VMs: the breakdown iteration, then pairs
    # of paired VM j and timed j, paired first in odd pairs, timed in even;
    # a paired VM's 4 rounds share its run and are traced in ABBA order
    # (traced, untraced, untraced, traced), every other VM the mirror.
    npv = meta["params"]["paired"]
    want_order = ["breakdown/1"]
    for j in range(1, max(n, npv) + 1):
        pair = [f"paired/{j}"] * (j <= npv), [f"timed/{j}"] * (j <= n)
        want_order += pair[0] + pair[1] if j % 2 else pair[1] + pair[0]
    bad = {}
    for t in TECHNIQUES:
        trows = [r for r in all_rows if r["technique"] == t]
        got = sorted({(int(r["run"]), f"{r['kind']}/{r['iteration']}") for r in trows})
        if [k for _, k in got] != want_order or [r for r, _ in got] != list(range(1, len(got) + 1)):
            bad[t] = got
        for j in range(1, npv + 1):
            rounds = [(r["round"], r["traced"]) for r in trows
                      if r["kind"] == "paired" and r["iteration"] == str(j)]
            abba = ["1", "0", "0", "1"] if j % 2 else ["0", "1", "1", "0"]
            if rounds != list(zip("1234", abba)):
                bad[f"{t} paired {j}"] = rounds
        if any(r["round"] != "" or r["traced"] != "" for r in trows if r["kind"] != "paired"):
            bad[f"{t} round"] = "round or traced set outside a paired VM"
    res("vm_inflate_iteration_schedule", npv >= 1 and not bad,
        f"want {want_order} (runs 1, 2, ...), ABBA rounds, got {bad}")

    # The paired rounds, per phase with a time, recomputed from iterations.csv:
    # the adjacent rounds 1-2 and 3-4 of each paired VM, traced over untraced.
    bad = []
    for t, p, v in sp:
        ov = v.get("tracing_overhead")
        prow = [r for r in all_rows if r["technique"] == t and r["kind"] == "paired"]
        tv = [int(r[f"{p}_ns"]) for r in prow if r["traced"] == "1" and r[f"{p}_ns"] != ""]
        uv = [int(r[f"{p}_ns"]) for r in prow if r["traced"] == "0" and r[f"{p}_ns"] != ""]
        if 0 in tv + uv or not tv:
            continue  # a passive technique's empty grow
        if not ov:
            bad.append(f"{t}/{p}: none")
            continue
        ratios = []
        for a, b in zip(prow[0::2], prow[1::2]):
            x, y = (a, b) if a["traced"] == "1" else (b, a)
            if x[f"{p}_ns"] != "" and y[f"{p}_ns"] != "":
                ratios.append(int(x[f"{p}_ns"]) / int(y[f"{p}_ns"]))
        lo, hi, cov = median_interval(ratios)
        um = statistics.median(uv)
        want_ov = [ov["traced_samples_ns"] == tv, ov["untraced_samples_ns"] == uv,
                   abs(ov["traced_median_s"] - statistics.median(tv) / 1e9) < 1e-9,
                   abs(ov["untraced_median_s"] - um / 1e9) < 1e-9,
                   len(ov["pair_overhead_pct"]) == len(ratios) == len(prow) // 2 and
                   all(abs(a - 100 * (b - 1)) < 1e-5 for a, b in zip(ov["pair_overhead_pct"], ratios)),
                   abs(ov["overhead_pct"] - 100 * (statistics.median(ratios) - 1)) < 1e-5,
                   all(abs(a - 100 * (b - 1)) < 1e-5 for a, b in zip(ov["overhead_interval_pct"], (lo, hi))),
                   ov["overhead_interval_pct"][0] <= ov["overhead_pct"] <= ov["overhead_interval_pct"][1],
                   abs(ov["overhead_interval_coverage"] - cov) < 1e-9]
        # Noise: each paired VM's rounds 2-3 and 1-4, which ran with the same probes.
        same = []
        for j in sorted({r["iteration"] for r in prow}, key=int):
            by_round = {r["round"]: r[f"{p}_ns"] for r in prow if r["iteration"] == j}
            for e, l in (("2", "3"), ("1", "4")):
                if by_round.get(e) and by_round.get(l):
                    same.append(100 * (int(by_round[l]) / int(by_round[e]) - 1))
        lo_pct, hi_pct = ov["overhead_interval_pct"]
        want_verdict = ("within_target" if -5 <= lo_pct and hi_pct <= 5 else
                        "outside_target" if lo_pct > 5 or hi_pct < -5 else "unresolved")
        want_ov += [len(ov["same_condition_pct"]) == len(same) and
                    all(abs(a - b) < 1e-5 for a, b in zip(ov["same_condition_pct"], same)),
                    (ov.get("noise_pct") is None if not same else
                     abs(ov["noise_pct"] - statistics.median(abs(x) for x in same)) < 1e-5),
                    ov["verdict"] == want_verdict]
        if not all(want_ov):
            bad.append(f"{t}/{p}: {want_ov} {ov}")
        # QEMU's probe estimate: hits times the cost of one, measured in the run
        # (as root with our QEMU; every phase but a passive grow has hits).
        qe = ov.get("qemu_probe_estimate") or {}
        qh = qe.get("hits_samples") or []
        if qe.get("probe_ns_median") is None:
            if not qe.get("why_null", {}).get("probe_ns_median"):
                bad.append(f"{t}/{p}: qemu_probe_estimate null without a reason: {qe}")
        elif not (qh and qe["hits_median"] == statistics.median(qh) and
                  (qe["probe_ns_median"] == 0 if not qe["hits_median"] else
                   qe["hit_ns"] > 0 and
                   abs(qe["probe_ns_median"] - qe["hits_median"] * qe["hit_ns"]) < 1e-3) and
                  abs(qe["pct_of_untraced"] - 100 * qe["probe_ns_median"] / um) < 1e-6):
            bad.append(f"{t}/{p}: qemu_probe_estimate {qe}")
        ge = (ov.get("guest_probe_estimate") or {}).get("pct_of_untraced")
        qp = qe.get("pct_of_untraced")
        if (ov.get("probe_estimate_pct") is None) != (ge is None or qp is None) or (
                ov.get("probe_estimate_pct") is not None and
                abs(ov["probe_estimate_pct"] - ge - qp) > 1e-6):
            bad.append(f"{t}/{p}: probe_estimate_pct {ov.get('probe_estimate_pct')} is not "
                       f"{ge} + {qp}")
        # The guest probe estimate: the traced calls counted in the phase's
        # guest events (touch2: install's whole run) times a measured cost.
        est = ov.get("guest_probe_estimate") or {}
        gp = "install" if p == "touch2" else p
        its = [r["iteration"] for r in rows if r["technique"] == t and r[f"{p}_ns"] != ""]
        calls = [sum(int(g["count"]) for g in guest_rows if g["technique"] == t and
                     g["phase"] == gp and g["iteration"] == i and g["sum_ns"] != "") for i in its]
        if est.get("probe_ns_median") is None:
            if not est.get("why_null", {}).get("probe_ns_median"):
                bad.append(f"{t}/{p}: guest_probe_estimate null without a reason: {est}")
        elif not (est["calls_median"] == statistics.median(calls) and
                  abs(est["pct_of_untraced"] - 100 * est["probe_ns_median"] / um) < 1e-6 and
                  ((est["call_ns_median"] or 0) > 0 if any(calls) else
                   est["probe_ns_median"] == 0)):
            bad.append(f"{t}/{p}: guest_probe_estimate {est}, calls {calls}")
    res("vm_inflate_tracing_overhead", not bad and sp, f"tracing_overhead wrong or missing: {bad}")
    check_pooled(s, [v["tracing_overhead"] for t, p, v in sp if v.get("tracing_overhead")])
    ests = [v["tracing_overhead"]["guest_probe_estimate"].get("pct_of_untraced")
            for t, p, v in sp if v.get("tracing_overhead")]
    res("vm_inflate_guest_probe_estimate", any(e is not None for e in ests),
        f"no phase has a guest probe estimate: {ests}")
    if os.geteuid() == 0:
        hits = [(v["tracing_overhead"].get("qemu_probe_estimate") or {}).get("hit_ns")
                for t, p, v in sp if v.get("tracing_overhead")]
        res("vm_inflate_qemu_probe_estimate", any(h for h in hits),
            f"no phase has a QEMU probe estimate with a measured hit cost: {hits}")
    else:
        print("skip - vm_inflate_qemu_probe_estimate: USDT needs root")

    # QEMU-internal timing (USDT): inside the host's window of every resize.
    if os.geteuid() == 0:
        bad = []
        # A fresh guest reported its free memory while it booted: fpr's untouched
        # shrink may see no report, and says so.
        for t in TECHNIQUES:
            for p in ("shrink", "shrink_untouched", "grow") if t in ACTIVE else ("shrink",):
                q = s.get(t, {}).get(p, {}).get("qemu_internal", {})
                if "qemu_ns_median" not in q or None in q["qemu_samples_ns"] or \
                        not 0 < q["qemu_ns_median"] <= q["phase_ns_median"] or \
                        q["start_delay_ns_median"] < 0 or q["end_delay_ns_median"] < 0:
                    bad.append(f"{t}/{p}: {q}")
                elif p != "grow" and not (q["requests_median"] + q["reports_median"] > 0 and
                                          q["discard_bytes_median"] is None and
                                          q["why_null"]["discard_bytes_median"]):
                    # QEMU's discards are traced in the breakdown iteration only
                    bad.append(f"{t}/{p}: requests missing or discards not null: {q}")
        res("vm_inflate_qemu_internal", not bad, f"QEMU-internal timing: {bad}")
    else:
        print("skip - vm_inflate_qemu_internal: USDT needs root")

    tr = json.load(open(f"{d}/trace.json"))["traceEvents"]
    cats = {e.get("cat") for e in tr}
    res("vm_inflate_trace", "host" in cats and "guest" in cats, f"categories {cats}")
    bad = [f"{e['name']}: {sorted(set(HOST_FIELDS) - set(e['args']))}" for e in tr
           if e.get("cat") == "host" and not set(HOST_FIELDS) <= set(e["args"])]
    res("vm_inflate_trace_host_fields", not bad, f"host slices lack counters: {bad}")
    bad = unexplained_nulls(tr)
    res("vm_inflate_trace_nulls_have_reasons", not bad, f"{bad[:10]}")

    check_limits_ratios("vm_inflate", s, meta, want)

    # Every column and key written is in docs/results.md.
    trace_keys = {"traceEvents", "displayTimeUnit"}
    for e in tr:
        trace_keys |= {f"traceEvents[].{p}" for p in key_paths(e)}
    written = {
        "iterations.csv": rows[0].keys(),
        "guest-events.csv": guest_rows[0].keys(),
        "rss.csv": csv.DictReader(open(f"{d}/rss.csv")).fieldnames,
        "summary.json": key_paths(s),
        "meta.json": key_paths(meta),
        "trace.json": trace_keys,
    }
    for f, keys in written.items():
        bad = undocumented(f, keys)
        res(f"vm_inflate_documented_{f}", keys and not bad,
            f"not in docs/results.md: {bad[:12]}")


def main_hyperalloc(d):
    """A touched run of virtio-mem, hyperalloc and hyperalloc-fault with --integrity."""
    s = json.load(open(f"{d}/summary.json"))
    meta = json.load(open(f"{d}/meta.json"))
    rows = [r for r in csv.DictReader(open(f"{d}/iterations.csv")) if r["kind"] == "timed"]
    n = meta["params"]["iterations"]
    want = meta["params"]["mem_bytes"] - meta["params"]["shrink_to_bytes"]
    techs = ("virtio-mem", "hyperalloc", "hyperalloc-fault")
    missing = [f"{t}/{p}" for t in techs for p in ("shrink", "grow", "install", "touch2")
               if len(s.get(t, {}).get(p, {}).get("samples_ns") or []) != n]
    res("vm_hyperalloc_inflate_summary_complete",
        not missing and sorted(meta["techniques"]) == sorted(techs) and
        not meta["params"]["untouched"] and not any("shrink_untouched" in s[t] for t in techs),
        f"phases without {n} samples: {missing}; techniques {sorted(meta['techniques'])}")
    bad = unexplained_nulls(s) + unexplained_nulls(meta)
    res("vm_hyperalloc_inflate_nulls_have_reasons", not bad, f"{bad[:10]}")
    for t in techs:
        its = [(r["integrity_pages"], r["integrity_bad_pages"]) for r in rows if r["technique"] == t]
        res(f"vm_hyperalloc_inflate_integrity_{t}", len(its) == n and
            all(pages not in ("", "0") and bad == "0" for pages, bad in its),
            f"(pages, bad pages) per iteration: {its}")
    drops = [int(r["shrink_rss_before"]) - int(r["shrink_rss_after"]) for r in rows
             if r["technique"].startswith("hyperalloc")]
    print(f"# hyperalloc(-fault) touched shrink: QEMU's RSS fell {[x >> 20 for x in drops]} MiB of "
          f"{want >> 20} MiB requested")
    res("vm_hyperalloc_inflate_rss_drop_touched", drops and min(drops) >= 0.9 * want,
        f"QEMU RSS fell {[x >> 20 for x in drops]} MiB of {want >> 20} MiB requested")
    check_limits_ratios("vm_hyperalloc_inflate", s, meta, want)
    for f, keys in (("summary.json", key_paths(s)), ("meta.json", key_paths(meta))):
        bad = undocumented(f, keys)
        res(f"vm_hyperalloc_inflate_documented_{f}", keys and not bad,
            f"not in docs/results.md: {bad[:12]}")


if __name__ == "__main__":
    if sys.argv[1] == "--hyperalloc":
        main_hyperalloc(sys.argv[2])
    else:
        main(sys.argv[1])
