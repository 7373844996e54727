#!/usr/bin/env bash
# hatrace inflate end to end under TCG: a small VM (1 GiB -> 512 MiB, 1 iteration)
# per technique through boot, untouched shrink, touch, shrink, grow, install,
# touch2, with an integrity buffer held across all of it.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	{ skip vm_inflate "guest image not built (make)"; finish; }
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate -t all --mem 1G --shrink-to 512M -n 1 --untouched --integrity 96M \
	-o "$out/r" >"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
if [ $rc != 0 ]; then
	fail vm_inflate_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
	finish
fi
ok vm_inflate_run
for f in meta.json summary.json trace.json iterations.csv rss.csv inflate-speed.png \
	inflate-speed.svg inflate-rss.png inflate-rss.svg; do
	[ -s "$out/r/$f" ] || fail vm_inflate_files "$f missing or empty"
done
ok vm_inflate_files
[ -z "$(ls "$out" | grep -v '^r$\|^stdout$\|^stderr$')" ] && ok vm_inflate_no_tmp_left ||
	fail vm_inflate_no_tmp_left "$(ls "$out")"

/usr/bin/python3 - "$out/r" <<'PY'
import csv, json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
meta = json.load(open(f"{d}/meta.json"))
def res(name, ok, why=""):
    print(f"ok - {name}" if ok else f"not ok - {name}: {why}")
phases = ["shrink", "grow", "install", "touch2", "shrink_untouched"]
missing = [f"{t}/{p}" for t in ("virtio-balloon", "fpr", "virtio-mem") for p in phases
           if p not in s.get(t, {}) or len(s[t][p]["samples_ns"]) != 1]
res("vm_inflate_summary_complete", not missing, f"missing {missing}")
bad = [f"{t}/{p}" for t in s for p in s[t] if not
       (s[t][p]["ci95_ns"][0] <= s[t][p]["median_ns"] <= s[t][p]["ci95_ns"][1])]
res("vm_inflate_summary_ci", not bad, f"median outside CI: {bad}")
res("vm_inflate_meta", meta["accel"] in ("tcg", "kvm") and meta["guest_kernel"].startswith("6.1")
    and meta["hatrace_revision"] != "unknown" and meta["thp"], json.dumps(meta)[:200])
rows = {r["technique"]: r for r in csv.DictReader(open(f"{d}/iterations.csv"))}
want = meta["params"]["mem_bytes"] - meta["params"]["shrink_to_bytes"]
for t in ("virtio-balloon", "virtio-mem"):
    r = rows[t]
    drop = int(r["shrink_rss_before"]) - int(r["shrink_rss_after"])
    res(f"vm_inflate_rss_drop_{t}", drop >= 0.9 * want,
        f"QEMU RSS fell {drop >> 20} MiB of {want >> 20} MiB requested")
for t, r in rows.items():
    res(f"vm_inflate_integrity_{t}", r["integrity_pages"] not in ("", "0")
        and r["integrity_bad_pages"] == "0",
        f"pages {r['integrity_pages']} bad {r['integrity_bad_pages']}")
import os
bd = s["virtio-balloon"]["shrink"]["breakdown"]
if os.geteuid() == 0:
    h = bd["host"]
    res("vm_inflate_host_breakdown", h.get("madvise_n", 0) > 0
        and h.get("discard_bytes", 0) >= 0.9 * want, f"host {h}")
else:
    print("skip - vm_inflate_host_breakdown: BPF needs root")
g = bd["guest"]
res("vm_inflate_guest_breakdown", any(v["count_median"] > 0 for v in g.values()),
    f"guest events {list(g)}")
tr = json.load(open(f"{d}/trace.json"))["traceEvents"]
cats = {e.get("cat") for e in tr}
res("vm_inflate_trace", "host" in cats and "guest" in cats, f"categories {cats}")
PY
grep -q 'median' "$out/stdout" && ok vm_inflate_table || fail vm_inflate_table "no table printed"
left=$(leftovers $pid)
[ -z "$left" ] && ok vm_inflate_nothing_left || fail vm_inflate_nothing_left "$(echo $left)"
finish
