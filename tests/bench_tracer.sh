#!/usr/bin/env bash
# Tracer overhead benchmark, all modes alternated in one run on this machine:
# a page-fault- and madvise-heavy loop with no tracer, with empty BPF programs
# on the same tracepoints (the floor), with hatrace hist, and with bpftrace;
# then a CPU-and-memory workload with and without hatrace. Writes JSON to $1.
# The measure is the workload's own CPU time (user + system, BPF included), which
# other load on the machine disturbs far less than wall time. This machine's
# speed drifts, so each round runs every mode back to back (in a rotating
# order) and slowdowns are medians of the per-round ratios to the untraced run.
set -u
cd "$(dirname "$0")/.."
out=${1:-results/bench-tracer.json}
HATRACE=build/hatrace WL=build/tests/bench_workload
LOOP="loop 6000 64" REAL="compute 8 6"
# The workload runs on the last CPU, the tracers' user space wherever else.
PIN="taskset -c $(($(nproc) - 1))"
MIN_ROUNDS=${BENCH_MIN_ROUNDS:-5} MAX_ROUNDS=${BENCH_MAX_ROUNDS:-15} REAL_ROUNDS=${BENCH_REAL_ROUNDS:-11}
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
	$PIN $WL "$@" <"$tmp/go" >"$tmp/wl" & local wl=$! tr=
	exec 3>"$tmp/go"
	case $mode in
	empty) build/tests/bench_empty >"$tmp/tr" 3>&- & tr=$!; wait_for "$tmp/tr" attached ;;
	hatrace) $HATRACE hist -p $wl -o json >"$tmp/tr" 2>/dev/null 3>&- & tr=$!; wait_for "$tmp/tr" '"start"' ;;
	bpftrace) bpftrace tests/bench_tracer.bt $wl >"$tmp/tr" 2>&1 3>&- & tr=$!
		wait_for "$tmp/tr" Attaching && sleep 1 ;; # bpftrace prints before attaching
	esac
	echo go >&3; exec 3>&-
	wait $wl
	# with kernel.bpf_stats_enabled, the per-run cost of the fault program
	[ -n "${STATS:-}" ] && bpftool prog show -j | jq --arg n "$STATS" \
		'[.[] | select(.name == $n and .run_cnt > 0)] | max_by(.run_cnt) | .run_time_ns / .run_cnt' \
		>"$tmp/stats"
	if [ -n "$tr" ]; then
		[ $mode = hatrace ] || kill -INT $tr
		wait $tr
	fi
	[ $mode = hatrace ] && cp "$tmp/tr" "$tmp/hatrace.last"
	grep '^{' "$tmp/wl" | jq -r .cpu_ns
}

# median of the per-round ratio mode/none, from a file of "none empty hatrace bpftrace" rows
ratio() { jq -Rn --argjson col "$2" '[inputs | split(" ") | map(tonumber) | .[$col] / .[0]] | sort |
	if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end' "$1"; }
# distribution-free 95 % interval of that median ratio: order statistics k and n+1-k
# with k the largest where P(Binomial(n, 1/2) < k) <= 2.5 %
ratio_ci() { jq -Rn --argjson col "$2" '[inputs | split(" ") | map(tonumber) | .[$col] / .[0]] | sort |
	length as $n | ([range(0; $n + 1)] | map(select(
		([range(0; .)] | map(. as $i | reduce range(0; $i) as $j (1; . * ($n - $j) / ($j + 1))) | add // 0)
		/ pow(2; $n) <= 0.025)) | max) as $k |
	if $k < 1 then [.[0], .[$n - 1]] else [.[$k - 1], .[$n - $k]] end' "$1"; }
median_col() { jq -Rn --argjson col "$2" '[inputs | split(" ") | map(tonumber) | .[$col]] | sort |
	if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end' "$1"; }

modes=(none empty hatrace bpftrace)
prev_e=0 prev_h=0
for round in $(seq "$MAX_ROUNDS"); do
	declare -A t=()
	for k in 0 1 2 3; do # rotate the order so no mode always runs first
		m=${modes[$(((k + round) % 4))]}
		t[$m]=$(run_once $m $LOOP)
	done
	echo "${t[none]} ${t[empty]} ${t[hatrace]} ${t[bpftrace]}" >>"$tmp/loop"
	e=$(ratio "$tmp/loop" 1) h=$(ratio "$tmp/loop" 2)
	echo "round $round: CPU ns none ${t[none]} empty ${t[empty]} hatrace ${t[hatrace]} bpftrace ${t[bpftrace]}; median ratios empty $e hatrace $h" >&2
	if [ "$round" -ge "$MIN_ROUNDS" ] && awk -v a="$e" -v b="$prev_e" -v c="$h" -v d="$prev_h" \
		'BEGIN { exit !((a - b) ^ 2 < 0.002 ^ 2 && (c - d) ^ 2 < 0.002 ^ 2) }'; then
		break
	fi
	prev_e=$e prev_h=$h
done
events=$(jq -s '[.[] | select(.type == "probe") | .events] | add' "$tmp/hatrace.last")
drops=$(jq -s '[.[] | select(.type == "summary") | .drops] | add' "$tmp/hatrace.last")

for r in $(seq "$REAL_ROUNDS"); do
	if [ $((r % 2)) = 0 ]; then
		a=$(run_once none $REAL) b=$(run_once hatrace $REAL)
	else
		b=$(run_once hatrace $REAL) a=$(run_once none $REAL)
	fi
	echo "$a $b" >>"$tmp/real"
done
real_events=$(jq -s '[.[] | select(.type == "probe") | .events] | add' "$tmp/hatrace.last")

# The programs' own cost per page fault, from the kernel's BPF run-time stats
# (they add a clock read to each run, so both figures include that).
sysctl -qw kernel.bpf_stats_enabled=1
STATS=empty run_once empty $LOOP >/dev/null && ns_empty=$(cat "$tmp/stats")
STATS=user_fault run_once hatrace $LOOP >/dev/null && ns_hatrace=$(cat "$tmp/stats")
sysctl -qw kernel.bpf_stats_enabled=0

jq -n --argjson none "$(median_col "$tmp/loop" 0)" --argjson empty "$(median_col "$tmp/loop" 1)" \
	--argjson hatrace "$(median_col "$tmp/loop" 2)" --argjson bpftrace "$(median_col "$tmp/loop" 3)" \
	--argjson r_empty "$(ratio "$tmp/loop" 1)" --argjson r_hatrace "$(ratio "$tmp/loop" 2)" \
	--argjson r_bpftrace "$(ratio "$tmp/loop" 3)" --argjson r_real "$(ratio "$tmp/real" 1)" \
	--argjson ci_hatrace "$(ratio_ci "$tmp/loop" 2)" --argjson ci_empty "$(ratio_ci "$tmp/loop" 1)" \
	--argjson ci_real "$(ratio_ci "$tmp/real" 1)" \
	--argjson events "$events" --argjson drops "$drops" --argjson rounds "$round" \
	--argjson ns_empty "$ns_empty" --argjson ns_hatrace "$ns_hatrace" \
	--argjson real_events "$real_events" --argjson real_none "$(median_col "$tmp/real" 0)" \
	--argjson real_rounds "$REAL_ROUNDS" '
	def pct(r): ((r - 1) * 10000 | round) / 100;
	{ measure: "workload CPU time (user + system); slowdowns are medians of per-round ratios",
	  workload_s: { none: ($none / 1e9), empty: ($empty / 1e9), hatrace: ($hatrace / 1e9),
	                bpftrace: ($bpftrace / 1e9) },
	  slowdown_pct: { empty: pct($r_empty), hatrace: pct($r_hatrace), bpftrace: pct($r_bpftrace) },
	  slowdown_ci95_pct: { empty: ($ci_empty | map(pct(.))), hatrace: ($ci_hatrace | map(pct(.))) },
	  hatrace_over_floor: ((($r_hatrace - 1) / ($r_empty - 1) * 100 | round) / 100),
	  realistic_slowdown_pct: pct($r_real),
	  realistic_slowdown_ci95_pct: ($ci_real | map(pct(.))),
	  # the same from its events: each costs the floor (tracepoint and BPF dispatch,
	  # per event of the micro loop) plus the hatrace program; timing noise cannot hide it
	  realistic_events: $real_events,
	  realistic_cost_from_events_pct: (($real_events * (($empty - $none) / $events + $ns_hatrace)
	                                    / $real_none * 1e4 | round) / 100),
	  events_per_s: (($events / ($hatrace / 1e9)) | round),
	  bpf_ns_per_fault: { empty: ($ns_empty | round), hatrace: ($ns_hatrace | round) },
	  drops: $drops,
	  rounds: $rounds,
	  realistic_rounds: $real_rounds,
	  workloads: { micro: "6000 x (touch 64 pages + madvise DONTNEED), pinned to one CPU",
	               realistic: "fill and qsort 8 MiB six times, 1 MiB allocated and freed each time" } }' >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
