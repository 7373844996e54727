#!/usr/bin/env bash
# hatrace inflate end to end with HyperAlloc under TCG: virtio-mem, hyperalloc
# and hyperalloc-fault, each in a 1 GiB VM shrunk to 512 MiB after the guest
# touched its memory (no --untouched), one timed iteration (plus the paired
# VM and the breakdown iteration), with an integrity buffer held across every phase.
# tests/inflate_check.py --hyperalloc checks 0 bad pages, QEMU's RSS fall on
# touched memory (>= 90 % of the request), the physical limits and the ratios
# against the phase medians, and that every key is documented. The USDT
# checks: QEMU's own window of each resize (qemu_internal, inside the phase,
# with the shrink's discards) and the install requests per phase
# (breakdown.qemu_installs: hyperalloc installs in its install phase, every
# request in the latency histogram; hyperalloc-fault, install=off, none).
# Timing targets are the ratios' "met", never a test result here.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
for f in "$BUILD/guest/bzImage-hyperalloc" "$BUILD/guest/bzImage-baseline" \
	"$BUILD/guest/initramfs.cpio.gz" "$BUILD/qemu/qemu-system-x86_64"; do
	[ -r "$f" ] || skip_all vm_hyperalloc_inflate "$f not built (make)"
done
[ "$(id -u)" = 0 ] || skip_all vm_hyperalloc_inflate "USDT needs root"
plan $((10 + $(sed -n 's/^HYPERALLOC_CHECKS = //p' tests/inflate_check.py)))
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate -t virtio-mem,hyperalloc,hyperalloc-fault --mem 1G --shrink-to 512M -n 1 \
	--integrity 32M \
	-o "$out/r" >"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
if [ $rc != 0 ]; then
	fail vm_hyperalloc_inflate_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
	finish
fi
ok vm_hyperalloc_inflate_run
/usr/bin/python3 tests/inflate_check.py --hyperalloc "$out/r"
rc=$?
[ $rc = 0 ] && ok vm_hyperalloc_inflate_checker_exit ||
	fail vm_hyperalloc_inflate_checker_exit "tests/inflate_check.py exited $rc"
# report.txt is the printed report (all of stdout but its last line, which names DIR)
head -n -1 "$out/stdout" | cmp -s - "$out/r/report.txt" && ok vm_hyperalloc_inflate_report_saved ||
	fail vm_hyperalloc_inflate_report_saved "report.txt differs from the printed report"
grep -q '^physical limits' "$out/stdout" && grep -q '^  MADV_DONTNEED .* ms, MADV_POPULATE_WRITE' "$out/stdout" &&
	grep -q '^hyperalloc .*x .*x' "$out/stdout" && ok vm_hyperalloc_inflate_limits_printed ||
	fail vm_hyperalloc_inflate_limits_printed "no physical limits with hyperalloc's multiples printed"
# The ratios come last, one line per summary.json entry.
n=$(/usr/bin/python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["ratios"]))' \
	"$out/r/summary.json")
tail -n "$((n + 2))" "$out/stdout" | head -n -1 | grep -cE '^[a-z_-]+ +[0-9.]+(x|%) .* (yes|NO)$' |
	grep -qx "$n" && ok vm_hyperalloc_inflate_ratios_printed_last ||
	fail vm_hyperalloc_inflate_ratios_printed_last "not $n ratio lines at the end: $(tail -n 10 "$out/stdout")"
s="$out/r/summary.json"  # USDT: QEMU windows and installs
for t in hyperalloc hyperalloc-fault; do
	bad=$(jq -c --arg t "$t" '[("shrink", "grow") as $p | .[$t][$p] as $ph | $ph.qemu_internal |
		select((.qemu_ns_median // 0) <= 0 or .qemu_ns_median > .phase_ns_median or
		       .start_delay_ns_median < 0 or .end_delay_ns_median < 0 or
		       ($p == "shrink" and .discard_bytes_median < 0.9 * 536870912)) | {($p): .}]' \
		"$s" 2>&1)
	[ "$bad" = "[]" ] && ok "ha_${t}_qemu_internal" || fail "ha_${t}_qemu_internal" "$bad"
done
jq -e '.hyperalloc.install.breakdown.qemu_installs as $i | $i.installs_median > 0 and
	$i.install_ns_median > 0 and $i.children_median >= $i.installs_median and
	([$i.latency_hist_ns[].count] | add) == $i.installs_median and
	.hyperalloc.shrink.breakdown.qemu_installs.installs_median == 0 and
	."hyperalloc-fault".install.breakdown.qemu_installs.installs_median == 0' "$s" >/dev/null 2>&1 &&
	ok ha_installs_counted ||
	fail ha_installs_counted "$(jq -c '[.[] | .install.breakdown.qemu_installs]' "$s" 2>&1 | cut -c1-400)"
sed -n '/^QEMU installs/,/^$/p' "$out/stdout" | grep -q "^hyperalloc *install *[1-9][0-9]* " &&
	grep -q "^hyperalloc install latency" "$out/stdout" &&
	grep -q "^hyperalloc-fault *shrink  " "$out/stdout" && ! grep -q unavailable "$out/stdout" &&
	ok ha_report_prints_them || fail ha_report_prints_them "$(sed -n '/QEMU-internal/,/tracing/p' "$out/stdout")"
left=$(leftovers $pid)
[ -z "$left" ] && ok vm_hyperalloc_inflate_nothing_left || fail vm_hyperalloc_inflate_nothing_left "$(echo $left)"
finish
