#!/usr/bin/env bash
# Tracing overhead of hatrace inflate, measured the way inflate measures it: per
# technique one iteration with every probe off against one with them on, in one
# run (2 GiB VM shrunk to 512 MiB under TCG unless BENCH_INFLATE_ARGS says
# otherwise). Writes $1: each technique's tracing_overhead per phase and the
# QEMU-internal (USDT) timing next to the phase times. One sample each: compare
# within a run; this machine is noisy.
set -u
cd "$(dirname "$0")/.."
out=${1:-results/bench-inflate.json}
[ "$(id -u)" = 0 ] || { echo "bench_inflate: needs root" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086 # BENCH_INFLATE_ARGS is a word list
build/hatrace inflate -t all --mem 2G --shrink-to 512M -n 1 ${BENCH_INFLATE_ARGS:-} \
	-o "$tmp/r" >"$tmp/stdout" 2>"$tmp/stderr" || {
	echo "bench_inflate: hatrace inflate failed:" >&2
	tail -n 20 "$tmp/stderr" >&2
	exit 1
}
/usr/bin/python3 - "$tmp/r" "$out" <<'PY'
import json, sys
d, out = sys.argv[1:]
s = json.load(open(f"{d}/summary.json"))
meta = json.load(open(f"{d}/meta.json"))
doc = {"what": "hatrace inflate: one untraced iteration against one traced, per technique",
       "hatrace_revision": meta["hatrace_revision"], "qemu": meta["qemu"],
       "qemu_usdt_probes": meta["qemu_usdt_probes"], "accel": meta["accel"],
       "params": meta["params"], "techniques": {}}
worst = None
for t, phases in s.items():
    if t in ("limits", "ratios"):
        continue
    doc["techniques"][t] = {}
    for p, v in phases.items():
        e = {k: v[k] for k in ("tracing_overhead", "qemu_internal") if k in v}
        if e:
            doc["techniques"][t][p] = e
        pct = v.get("tracing_overhead", {}).get("overhead_pct")
        if pct is not None and (worst is None or pct > worst[0]):
            worst = (pct, t, p)
doc["largest_overhead_pct"] = worst and {"pct": worst[0], "technique": worst[1], "phase": worst[2]}
json.dump(doc, open(out, "w"), indent=1)
print(f"bench_inflate: largest overhead {worst[0]:.1f} % ({worst[1]} {worst[2]}); "
      f"written to {out}" if worst else f"bench_inflate: no overhead figure; written to {out}")
PY
sed -n '/^QEMU-internal timing/,/^largest overhead/p' "$tmp/stdout"
