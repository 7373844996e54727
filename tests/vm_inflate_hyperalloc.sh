#!/usr/bin/env bash
# hatrace inflate on hyperalloc and hyperalloc-fault (one iteration, 1 GiB ->
# 512 MiB) reads virtio-hyperalloc's USDT events: QEMU's own window of each
# resize (qemu_internal, inside the phase, with the shrink's discards) and the
# install requests per phase (breakdown.qemu_installs: hyperalloc installs in
# its install phase, every request in the latency histogram; hyperalloc-fault,
# install=off, none); the report prints both.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage-hyperalloc" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_inflate_hyperalloc "guest image not built (make)"
[ -x "$BUILD/qemu/qemu-system-x86_64" ] ||
	skip_all vm_inflate_hyperalloc "hatrace's QEMU not built (make qemu)"
[ "$(id -u)" = 0 ] || skip_all vm_inflate_hyperalloc "USDT needs root"
plan 6
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate -t hyperalloc,hyperalloc-fault -m 1G -s 512M -n 1 -o "$out/r" \
	>"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
[ $rc = 0 ] && ok ha_inflate_run || fail ha_inflate_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
s="$out/r/summary.json"
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
[ -z "$left" ] && ok ha_nothing_left || fail ha_nothing_left "$(echo $left)"
finish
