#!/usr/bin/env bash
# Tracing overhead of hatrace inflate, measured the way inflate measures it: per
# technique 3 timed iterations (the probes that fire per phase or request) and 2
# paired VMs, each running the phases 4 times with those probes on and every
# probe off in ABBA order, interleaved, plus the breakdown iteration (every
# probe; not compared), in one run (2 GiB VM shrunk
# to 512 MiB under TCG unless BENCH_INFLATE_ARGS says otherwise). Writes $1: each
# technique's tracing_overhead per phase (medians, their ratio, the interval and
# the per-pair figures), the QEMU-internal (USDT) timing, the load average before
# and after, each phase's verdict against ±5 % (within, outside, unresolved at its
# noise), the comparison pooled over every phase (with the share of same-probe
# rounds that moved by more than 5 %: this host's resolution), and whether the
# largest overhead and the largest probe estimate (guest calls and QEMU USDT hits
# times the calibrated cost of one) are within 5 %.
set -u
cd "$(dirname "$0")/.."
out=${1:-results/bench-inflate.json}
[ "$(id -u)" = 0 ] || { echo "bench_inflate: needs root" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
cut -d' ' -f1-3 /proc/loadavg >"$tmp/load0"
# shellcheck disable=SC2086 # BENCH_INFLATE_ARGS is a word list
build/hatrace inflate -t all --mem 2G --shrink-to 512M -n 3 ${BENCH_INFLATE_ARGS:-} \
	-o "$tmp/r" >"$tmp/stdout" 2>"$tmp/stderr" || {
	echo "bench_inflate: hatrace inflate failed:" >&2
	tail -n 20 "$tmp/stderr" >&2
	exit 1
}
cut -d' ' -f1-3 /proc/loadavg >"$tmp/load1"
/usr/bin/python3 - "$tmp" "$out" <<'PY'
import json, sys
sys.path.insert(0, "analysis")
from summary_keys import techniques
tmp, out = sys.argv[1:]
d = f"{tmp}/r"
s = json.load(open(f"{d}/summary.json"))
meta = json.load(open(f"{d}/meta.json"))
load = [open(f"{tmp}/load{i}").read().split() for i in (0, 1)]
doc = {"what": "hatrace inflate: per technique and phase, the median of the traced/untraced "
               "ratios of adjacent rounds in paired VMs (timed probes on, every probe off, "
               "ABBA order)",
       "target_pct": 5, "hatrace_revision": meta["hatrace_revision"], "qemu": meta["qemu"],
       "qemu_usdt_probes": meta["qemu_usdt_probes"], "accel": meta["accel"],
       "params": meta["params"], "cpus": meta["cpus"],
       "loadavg_before": [float(x) for x in load[0]], "loadavg_after": [float(x) for x in load[1]],
       "techniques": {}}
worst = worst_est = None
verdicts = {}
for t in techniques(s):
    phases = s[t]
    doc["techniques"][t] = {}
    for p, v in phases.items():
        if not isinstance(v, dict):
            continue
        e = {k: v[k] for k in ("tracing_overhead", "qemu_internal") if k in v}
        if e:
            doc["techniques"][t][p] = e
        pct = v.get("tracing_overhead", {}).get("overhead_pct")
        if pct is not None and (worst is None or pct > worst[0]):
            worst = (pct, t, p)
        est = v.get("tracing_overhead", {}).get("probe_estimate_pct")
        verdict = v.get("tracing_overhead", {}).get("verdict")
        if verdict:
            verdicts.setdefault(verdict, []).append(f"{t} {p}")
        if est is not None and (worst_est is None or est > worst_est[0]):
            worst_est = (est, t, p)
doc["largest_overhead_pct"] = worst and {"pct": worst[0], "technique": worst[1], "phase": worst[2]}
doc["within_target"] = worst is not None and worst[0] <= 5
doc["largest_probe_estimate_pct"] = worst_est and {
    "pct": worst_est[0], "technique": worst_est[1], "phase": worst_est[2]}
doc["probe_estimate_within_target"] = worst_est is not None and worst_est[0] <= 5
doc["verdicts"] = verdicts
doc["pooled"] = s.get("tracing_overhead_pooled")
json.dump(doc, open(out, "w"), indent=1)
print(f"bench_inflate: largest overhead {worst[0]:.1f} % ({worst[1]} {worst[2]}; target 5 %, "
      f"load {load[0][0]} -> {load[1][0]})" if worst else "bench_inflate: no overhead figure")
print(f"bench_inflate: largest probe estimate (guest + QEMU) {worst_est[0]:.2f} % "
      f"({worst_est[1]} {worst_est[2]}); verdicts: "
      + ", ".join(f"{len(v)} {k}" for k, v in sorted(verdicts.items()))
      + f"; written to {out}" if worst_est else
      f"bench_inflate: no probe estimate; written to {out}")
PY
sed -n '/^QEMU-internal timing/,/^target +-5%: /p; /^pooled over /p' "$tmp/stdout"
