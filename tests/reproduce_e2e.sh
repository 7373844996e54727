#!/usr/bin/env bash
# hatrace reproduce end to end: one real step (ftq, fast tier) and its report
# (hyperalloc ranked in it); a rerun skips the finished step; an interrupted
# step leaves no done-marker and no VM; headless Chromium renders every section
# of the report.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all reproduce_e2e "guest image not built (make)"
plan 10
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
d=$out/r

"$HATRACE" reproduce --only nosuch -o "$d" 2>"$out/err" && fail reproduce_unknown_step "accepted" ||
	{ grep -q "unknown step 'nosuch'" "$out/err" && ok reproduce_unknown_step ||
	  fail reproduce_unknown_step "$(cat "$out/err")"; }

"$HATRACE" reproduce --only ftq -o "$d" >"$out/run1" 2>&1
rc=$?
[ $rc = 0 ] && [ -e "$d/ftq.done" ] && [ -s "$d/ftq/interference.json" ] && ok reproduce_step_runs ||
	fail reproduce_step_runs "exit $rc: $(tail -n 5 "$out/run1" | tr '\n' ' ')"
grep -q '\$ .*hatrace inflate -w ftq' "$out/run1" && grep -q '\[1/1\] ftq' "$out/run1" &&
	ok reproduce_prints_command_and_progress || fail reproduce_prints_command_and_progress "$(head -5 "$out/run1")"

# The fast tier's ftq runs hyperalloc too; the report ranks it and notes it.
sed -n '/<section id="ftq">/,/<\/section>/p' "$d/report.html" 2>/dev/null >"$out/ftq.html"
grep -q '<td>hyperalloc</td>' "$out/ftq.html" && grep -q '<p>HyperAlloc: ' "$out/ftq.html" &&
	grep -q 'Ordering by time lost' "$out/ftq.html" && ok reproduce_report_has_hyperalloc ||
	fail reproduce_report_has_hyperalloc "$(head -c 300 "$out/ftq.html")"

start=$(date +%s)
"$HATRACE" reproduce --only ftq -o "$d" >"$out/run2" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "ftq: done earlier, skipped" "$out/run2" && [ $(( $(date +%s) - start )) -lt 30 ] &&
	ok reproduce_rerun_skips_finished || fail reproduce_rerun_skips_finished "$(cat "$out/run2")"

"$HATRACE" reproduce --only blender -o "$d" >"$out/run3" 2>&1 &
pid=$!
for _ in $(seq 120); do grep -q "boot" "$d/blender.log" 2>/dev/null && break; sleep 1; done
kill -INT $pid
wait $pid
rc=$?
[ $rc != 0 ] && [ ! -e "$d/blender.done" ] && grep -q "interrupted" "$out/run3" &&
	ok reproduce_interrupt_leaves_no_marker || fail reproduce_interrupt_leaves_no_marker "exit $rc: $(tail -3 "$out/run3")"
sleep 2
left=$(leftovers $(pgrep -f "inflate -w blender.*$d" ) ; pgrep -af "$d/blender" | grep qemu)
[ -z "$left" ] && ok reproduce_interrupt_leaves_no_vm || fail reproduce_interrupt_leaves_no_vm "$left"

jq -e '.ftq.status == "done earlier" and .blender.status == "failed"' "$d/steps.json" >/dev/null &&
	ok reproduce_steps_json || fail reproduce_steps_json "$(cat "$d/steps.json")"

if ! command -v chromium >/dev/null; then
	skip reproduce_report_renders "chromium is not installed (make deps)"
	skip reproduce_report_screenshot "chromium is not installed (make deps)"
	finish
fi
browser() { timeout 120 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars "$@" 2>/dev/null; }
browser --dump-dom "file://$d/report.html" >"$out/dom.html"
missing=
for s in setup inflate stream ftq build blender multivm bench; do
	grep -q "<section id=\"$s\"><h2>" "$out/dom.html" || missing+=" $s"
done
[ -s "$out/dom.html" ] && [ -z "$missing" ] && grep -q "<table>" "$out/dom.html" &&
	ok reproduce_report_renders || fail reproduce_report_renders "sections missing:$missing"
browser --screenshot="$out/shot.png" --window-size=1200,3000 "file://$d/report.html" >/dev/null
[ "$(head -c 8 "$out/shot.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
	[ "$(stat -c %s "$out/shot.png")" -gt 20000 ] && ok reproduce_report_screenshot ||
	fail reproduce_report_screenshot "no screenshot"
finish
