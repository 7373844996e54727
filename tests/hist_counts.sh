#!/usr/bin/env bash
# hatrace hist counts exactly what a workload with known counts does: PAGES
# first-touch faults and MADVISES madvise(DONTNEED) calls.
cd "$(dirname "$0")/.." && . tests/lib.sh
need_root "hist counts"
plan 7
tmp=$(mktemp -d); trap 'kill $wl $tr 2>/dev/null; rm -rf "$tmp"' EXIT
PAGES=3000 MADVISES=17

mkfifo "$tmp/go"
"$BUILD"/tests/fault_workload faults $PAGES $MADVISES <"$tmp/go" >"$tmp/wl" & wl=$!
exec 3>"$tmp/go"
$HATRACE hist -p $wl -o json >"$tmp/hist" 2>"$tmp/err" & tr=$!
for _ in $(seq 100); do grep -q '"start"' "$tmp/hist" 2>/dev/null && break; sleep 0.1; done
echo go >&3; exec 3>&-
wait $wl; wait $tr; rc=$?

expect "hist exits 0 when the traced process exits" test $rc = 0
count() { jq -s "[.[] | select(.name == \"$1\" and .pid == $wl) | .count] | add // 0" "$tmp/hist"; }
own_faults=$(grep '^{' "$tmp/wl" | jq -r .minflt)
n=$(count madvise:DONTNEED)
[ "$n" = $MADVISES ] && ok "madvise calls counted exactly ($n)" || fail "madvise count" "$n, expected $MADVISES"
bytes=$(jq -s "[.[] | select(.name == \"madvise:DONTNEED\") | .bytes] | add" "$tmp/hist")
[ "$bytes" = $((PAGES * 4096 * MADVISES)) ] && ok "madvise bytes named" || fail "madvise bytes" "$bytes"
n=$(count user_fault:other)
[ "$n" = "$own_faults" ] && [ "$n" = $PAGES ] && ok "user faults counted exactly ($n)" ||
	fail "user fault count" "$n, workload's own minflt delta $own_faults, pages $PAGES"
lat=$(jq -s '[.[] | select(.name == "madvise:DONTNEED") | .buckets | map(.count) | add] | add' "$tmp/hist")
[ "$lat" = $MADVISES ] && ok "every madvise has a latency bucket" || fail "madvise buckets" "$lat"
drops=$(jq -r 'select(.type == "summary") | .drops' "$tmp/hist")
[ "$drops" = 0 ] && ok "no drops" || fail "drops" "$drops"
silent=$(jq -r 'select(.type == "probe" and .name == "fallocate") | "\(.attached) \(.events)"' "$tmp/hist")
[ "$silent" = "true 0" ] && ok "an attached probe that saw nothing is reported as such" ||
	fail "silent probe" "$silent"
finish
