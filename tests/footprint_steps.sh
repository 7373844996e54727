#!/usr/bin/env bash
# hatrace footprint shows each step of a workload that grows its anon RSS by
# 64 MiB four times and then frees it, in every output format. The /proc
# sampler is off (--sample-ms 0): every row between the first and the last
# comes from kmem:rss_stat through the BPF program and its ring buffer.
cd "$(dirname "$0")/.." && . tests/lib.sh
need_root "footprint steps"
tmp=$(mktemp -d); trap 'kill $wl 2>/dev/null; rm -rf "$tmp"' EXIT
STEP=$((64 << 20)) STEPS=4 ROW_STEP=$((2 << 20))
plan 16

run_format() { # FORMAT FILE: traces the workload; checks both exit statuses
	local rc_wl rc_tr
	mkfifo "$tmp/go.$1"
	"$BUILD"/tests/fault_workload rss 64 $STEPS 400 <"$tmp/go.$1" >/dev/null & wl=$!
	exec 3>"$tmp/go.$1"
	$HATRACE footprint -p $wl --sample-ms 0 --step $ROW_STEP -o "$1" -w "$2" 2>"$tmp/err.$1" 3>&- &
	local tr=$!
	# the output's temporary file appears once the probe is attached
	for _ in $(seq 100); do compgen -G "$2.*" >/dev/null && break; sleep 0.1; done
	echo go >&3; exec 3>&-
	wait $wl; rc_wl=$?
	wait $tr; rc_tr=$?
	[ $rc_wl = 0 ] && [ $rc_tr = 0 ] && ok "$1: workload and footprint exit 0" ||
		fail "$1: exit status" "workload $rc_wl, footprint $rc_tr: $(tail -n 3 "$tmp/err.$1" | tr '\n' ' ')"
}

# events FORMAT: the rss_stat event count footprint reports on stderr
events() { sed -n 's/.* rows, \([0-9]*\) rss_stat events.*/\1/p' "$tmp/err.$1"; }

run_format csv "$tmp/fp.csv"
expect "csv header" test "$(head -1 "$tmp/fp.csv")" = "time_ns,pid,comm,anon_bytes,file_bytes,shmem_bytes,rss_bytes"
base=$(awk -F, 'NR == 2 { print $4 }' "$tmp/fp.csv")
for k in $(seq $STEPS); do
	want=$((base + k * STEP * 95 / 100))
	awk -F, -v w=$want 'NR > 1 && $4 >= w { found = 1 } END { exit !found }' "$tmp/fp.csv" &&
		ok "step $k visible (anon >= base + $k x 64 MiB)" || fail "step $k" "no row with anon >= $want"
done
last=$(tail -1 "$tmp/fp.csv" | cut -d, -f4)
[ "$last" -lt $((base + STEP)) ] && ok "free visible at the end" || fail "free" "last anon $last"
sorted=$(awk -F, 'NR > 2 && $1 < prev { bad = 1 } { prev = $1 } END { print !bad }' "$tmp/fp.csv")
expect "rows in time order" test "$sorted" = 1
# Growth alone moves RSS by STEPS x 64 MiB: with a row every 2 MiB moved, at
# least 3/4 of 128 rows (the kernel may batch), and far fewer than one per page.
rows=$(($(wc -l <"$tmp/fp.csv") - 1)) grow_rows=$((STEPS * STEP / ROW_STEP))
[ $rows -ge $((grow_rows * 3 / 4)) ] && [ $rows -lt 2000 ] &&
	ok "rows in line with the steps: $rows for $grow_rows x 2 MiB of growth and the free" ||
	fail "row count" "$rows rows, expected $((grow_rows * 3 / 4)) to 2000"
n=$(events csv)
[ "${n:-0}" -ge $rows ] && ok "rss_stat events counted ($n)" || fail "rss_stat events" "'$n' for $rows rows"
grep -q ' 0 dropped' "$tmp/err.csv" && ok "no drops" || fail "drops" "$(cat "$tmp/err.csv")"

run_format json "$tmp/fp.json"
max=$(jq -s 'map(.anon_bytes) | max' "$tmp/fp.json")
[ "$max" -ge $((STEPS * STEP * 95 / 100)) ] && ok "json rows reach the peak" || fail "json peak" "$max"

run_format perfetto "$tmp/fp.trace.json"
n=$(jq '[.traceEvents[] | select(.ph == "C")] | length' "$tmp/fp.trace.json")
[ "$n" -ge $((grow_rows * 3 / 4)) ] && ok "perfetto trace has $n counter events" ||
	fail "perfetto" "$n counter events, expected >= $((grow_rows * 3 / 4))"
expect "perfetto trace names the process track" \
	test "$(jq -r '[.traceEvents[] | select(.ph == "M")][0].args.name' "$tmp/fp.trace.json")" = fault_workload
finish
