#!/usr/bin/env bash
# Bounded libFuzzer run: by default the allocator core (guest and host
# operations plus metadata corruption).  FUZZ_SECONDS (default 25), FUZZ_RUNS
# (executions, default unbounded: whichever ends first) and FUZZ_CORPUS
# (default the fuzzer's directory/corpus) set the length and the corpus kept
# between runs; FUZZ_SEEDS, a directory of inputs run first and never written
# (regressions kept in the repository); FUZZ_MAX_LEN caps the input length
# (default libFuzzer's); FUZZ_BIN and FUZZ_NAME pick another fuzzer.
cd "$(dirname "$0")/../.." || exit 1
fuzz=${FUZZ_BIN:-${BUILD:-build}/llfree/fuzz}
out=$(dirname "$fuzz")
secs=${FUZZ_SECONDS:-25}
runs=${FUZZ_RUNS:--1}
corpus=${FUZZ_CORPUS:-$out/corpus}
log=$out/$(basename "$fuzz")-${secs}s.log
name="${FUZZ_NAME:-llfree fuzz} ${secs}s"
echo 1..1
if [ ! -x "$fuzz" ]; then
	echo "not ok - $name: $fuzz is not built"
	exit 1
fi
mkdir -p "$corpus"
"$fuzz" -max_total_time="$secs" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	${FUZZ_MAX_LEN:+-max_len="$FUZZ_MAX_LEN"} -artifact_prefix="$out"/ "$corpus" \
	${FUZZ_SEEDS:+"$FUZZ_SEEDS"} >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
last=$(grep -aE '^#[0-9]+' "$log" | tail -n 1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
if [ "$rc" = 0 ] && [ -n "$execs" ]; then
	echo "ok - $name: $execs execs ($rate/s), cov $cov, ft $ft, corpus $(ls "$corpus" | wc -l)"
else
	echo "not ok - $name: libFuzzer exited with $rc, see $log"
	grep -aE 'invariant broken|ERROR|SUMMARY|artifact' "$log" | head -n 5
	exit 1
fi
