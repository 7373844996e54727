#!/usr/bin/env bash
# Tracer overhead benchmark, all modes alternated in one run on this machine:
# a page-fault- and madvise-heavy loop with no tracer, with empty BPF programs
# on the same tracepoints (the floor), with hatrace hist, and with bpftrace;
# then a CPU-and-memory workload with and without hatrace. Writes JSON to $1.
# The measure is the workload's own CPU time (user + system, BPF included), which
# other load on the machine disturbs far less than wall time.
set -u
cd "$(dirname "$0")/.."
out=${1:-results/bench-tracer.json}
HATRACE=build/hatrace WL=build/tests/bench_workload
LOOP="loop 3000 64" REAL="compute 16 2"
MIN_ROUNDS=${BENCH_MIN_ROUNDS:-5} MAX_ROUNDS=${BENCH_MAX_ROUNDS:-11}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
[ "$(id -u)" = 0 ] || { echo "bench_tracer: needs root" >&2; exit 1; }
mkdir -p "$(dirname "$out")"

wait_for() { # FILE PATTERN: up to 20 s
	for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "bench_tracer: timed out waiting for '$2' in $1" >&2; return 1
}

# run_once MODE WORKLOAD...: prints the workload's CPU ns
run_once() {
	local mode=$1; shift
	rm -f "$tmp/go" "$tmp/wl" "$tmp/tr"; mkfifo "$tmp/go"
	$WL "$@" <"$tmp/go" >"$tmp/wl" & local wl=$! tr=
	exec 3>"$tmp/go"
	case $mode in
	empty) build/tests/bench_empty >"$tmp/tr" 3>&- & tr=$!; wait_for "$tmp/tr" attached ;;
	hatrace) $HATRACE hist -p $wl -o json >"$tmp/tr" 2>/dev/null 3>&- & tr=$!; wait_for "$tmp/tr" '"start"' ;;
	bpftrace) bpftrace tests/bench_tracer.bt $wl >"$tmp/tr" 2>&1 3>&- & tr=$!
		wait_for "$tmp/tr" Attaching && sleep 1 ;; # bpftrace prints before attaching
	esac
	echo go >&3; exec 3>&-
	wait $wl
	if [ -n "$tr" ]; then
		[ $mode = hatrace ] || kill -INT $tr
		wait $tr
	fi
	[ $mode = hatrace ] && cp "$tmp/tr" "$tmp/hatrace.last"
	grep '^{' "$tmp/wl" | jq -r .cpu_ns
}

median() { sort -n | awk '{ v[NR] = $1 } END { printf "%d\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

modes="none empty hatrace bpftrace"
declare -A prev
for round in $(seq "$MAX_ROUNDS"); do
	stable=1
	for m in $modes; do
		run_once $m $LOOP >>"$tmp/loop.$m"
		med=$(median <"$tmp/loop.$m")
		p=${prev[$m]:-0}
		awk -v a="$med" -v b="$p" 'BEGIN { exit !(b > 0 && (a - b) / b < 0.02 && (b - a) / b < 0.02) }' || stable=0
		prev[$m]=$med
	done
	echo "round $round: none ${prev[none]} empty ${prev[empty]} hatrace ${prev[hatrace]} bpftrace ${prev[bpftrace]} ns" >&2
	[ "$round" -ge "$MIN_ROUNDS" ] && [ $stable = 1 ] && break
done
events=$(jq -s '[.[] | select(.type == "probe") | .events] | add' "$tmp/hatrace.last")
drops=$(jq -s '[.[] | select(.type == "summary") | .drops] | add' "$tmp/hatrace.last")

for _ in $(seq "$MIN_ROUNDS"); do
	for m in none hatrace; do run_once $m $REAL >>"$tmp/real.$m"; done
done
real_none=$(median <"$tmp/real.none") real_ht=$(median <"$tmp/real.hatrace")

jq -n --argjson none "${prev[none]}" --argjson empty "${prev[empty]}" \
	--argjson hatrace "${prev[hatrace]}" --argjson bpftrace "${prev[bpftrace]}" \
	--argjson real_none "$real_none" --argjson real_ht "$real_ht" \
	--argjson events "$events" --argjson drops "$drops" --argjson rounds "$round" '
	def pct(x): ((x / $none - 1) * 10000 | round) / 100;
	{ measure: "workload CPU time (user + system), median",
	  workload_s: { none: ($none / 1e9), empty: ($empty / 1e9), hatrace: ($hatrace / 1e9),
	                bpftrace: ($bpftrace / 1e9) },
	  slowdown_pct: { empty: pct($empty), hatrace: pct($hatrace), bpftrace: pct($bpftrace) },
	  hatrace_over_floor: ((($hatrace - $none) / ($empty - $none) * 100 | round) / 100),
	  realistic_slowdown_pct: ((($real_ht / $real_none - 1) * 10000 | round) / 100),
	  events_per_s: (($events / ($hatrace / 1e9)) | round),
	  drops: $drops,
	  rounds: $rounds,
	  workloads: { micro: "3000 x (touch 64 pages + madvise DONTNEED)",
	               realistic: "fill and qsort 16 MiB, twice" } }' >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
