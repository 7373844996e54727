#!/usr/bin/env bash
# hatrace inflate --workload build under TCG: a static VM, virtio-mem with
# the host-side controller and hyperalloc in its own auto mode run ht-build;
# tests/footprint_check.py recomputes GiB*min from hatrace footprint's rows and
# checks the controller's targets and hyperalloc's auto mode.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_footprint_bench "guest image not built (make)"
[ "$(id -u)" = 0 ] || skip_all vm_footprint_bench "hatrace footprint needs root (BPF)"
plan $((3 + $(sed -n 's/^CHECKS = //p' tests/footprint_check.py)))
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate -w build -t virtio-mem,hyperalloc --mem 1G --shrink-to 256M -n 1 --tail 8 \
	-o "$out/r" >"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
if [ $rc != 0 ]; then
	fail footprint_bench_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
	finish
fi
ok footprint_bench_run
grep -q "GiB\*min" "$out/stdout" && [ -s "$out/r/footprint-build.png" ] &&
	ok footprint_bench_report_and_plot ||
	fail footprint_bench_report_and_plot "$(ls "$out/r")"
/usr/bin/python3 tests/footprint_check.py "$out/r" $((1 << 30)) $((256 << 20))
left=$(leftovers $pid)
[ -z "$left" ] && [ -z "$(pgrep -f "footprint -p .* -w $out")" ] && ok footprint_bench_nothing_left ||
	fail footprint_bench_nothing_left "$(echo $left)"
finish
