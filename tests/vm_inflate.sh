#!/usr/bin/env bash
# hatrace inflate end to end under TCG (the four baselines; hyperalloc's own
# end-to-end test is still to come): a small VM (512 MiB -> 256 MiB, 3
# timed iterations, so medians and intervals are computed from several samples,
# 2 paired VMs of 4 rounds, traced and untraced in ABBA order, so the tracing
# overhead has 4 pairs and the alternating order shows, and the breakdown
# iteration) per technique through boot, untouched shrink, touch, shrink, grow, install,
# touch2, with an integrity buffer held across all of it. tests/inflate_check.py
# checks the results folder against its raw data.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_inflate "guest image not built (make)"
plan $((8 + $(sed -n 's/^CHECKS = //p' tests/inflate_check.py)))
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate -t virtio-balloon,virtio-balloon-huge,fpr,virtio-mem --mem 512M --shrink-to 256M -n 3 --paired 2 --untouched --integrity 48M \
	-o "$out/r" >"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
if [ $rc != 0 ]; then
	fail vm_inflate_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
	finish
fi
ok vm_inflate_run
missing=
for f in meta.json summary.json trace.json iterations.csv guest-events.csv rss.csv report.txt \
	inflate-speed.png inflate-speed.svg inflate-rss.png inflate-rss.svg; do
	[ -s "$out/r/$f" ] || missing+=" $f"
done
[ -z "$missing" ] && ok vm_inflate_files || fail vm_inflate_files "missing or empty:$missing"
[ -z "$(ls "$out" | grep -v '^r$\|^stdout$\|^stderr$')" ] && ok vm_inflate_no_tmp_left ||
	fail vm_inflate_no_tmp_left "$(ls "$out")"
/usr/bin/python3 tests/inflate_check.py "$out/r"
rc=$?
[ $rc = 0 ] && ok vm_inflate_checker_exit || fail vm_inflate_checker_exit "tests/inflate_check.py exited $rc"
grep -q 'median' "$out/stdout" && ok vm_inflate_table || fail vm_inflate_table "no table printed"
# report.txt is the printed report (all of stdout but its last line, which names DIR)
head -n -1 "$out/stdout" | cmp -s - "$out/r/report.txt" && ok vm_inflate_report_saved ||
	fail vm_inflate_report_saved "report.txt differs from the printed report"
grep -q '^tracing overhead: ' "$out/stdout" && grep -q '^target +-5%: .* largest overhead' "$out/stdout" &&
	grep -q '^pooled over [0-9]* phases: overhead .* comparisons of rounds with the same probes' \
		"$out/stdout" && grep -q '^QEMU-internal timing' "$out/stdout" &&
	ok vm_inflate_overhead_and_qemu_printed ||
	fail vm_inflate_overhead_and_qemu_printed "no overhead (with its pooled line) or QEMU-internal table printed"
left=$(leftovers $pid)
[ -z "$left" ] && ok vm_inflate_nothing_left || fail vm_inflate_nothing_left "$(echo $left)"
finish
