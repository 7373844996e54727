#!/usr/bin/env bash
# hatrace inflate --workload stream|ftq under TCG: the guest runs the workload
# while the host shrinks and grows it; tests/interference_check.py recomputes
# the metrics from the raw series, and hyperalloc's shrink window is shorter
# than virtio-mem's. Bad schedules and techniques are refused before any VM
# boots.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_interference "guest image not built (make)"
checks=$(sed -n 's/^CHECKS = //p' tests/interference_check.py)
plan $((8 + 2 * (3 + checks)))
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

refused() { # name, args...: one-line error, non-zero exit, nothing written
	local name=$1
	shift
	if "$HATRACE" inflate "$@" -o "$out/refused" >"$out/stdout" 2>"$out/stderr"; then
		fail "$name" "accepted"
	elif [ "$(wc -l <"$out/stderr")" != 1 ] || [ -e "$out/refused" ]; then
		fail "$name" "$(head -c 300 "$out/stderr")"
	else
		ok "$name"
	fi
}
refused interference_unknown_workload -w memcpy
refused interference_grow_before_shrink -w stream --shrink-at 6 --grow-at 3
refused interference_passive_technique -t fpr -w ftq
refused interference_no_integrity -t virtio-mem -w stream --integrity 16M
refused interference_not_auto --auto -w stream
refused interference_stream_bytes_not_stream -t virtio-mem -w ftq --stream-bytes 8M
refused interference_stream_bytes_too_big -t virtio-mem -w stream --stream-bytes 1G

run() { # name, workload, techniques
	local name=$1 seconds=10 pid rc left
	"$HATRACE" inflate -t "$3" -w "$2" --mem 1G --shrink-to 512M -n 1 --seconds $seconds \
		--shrink-at 4 --grow-at 7 -o "$out/$name" >"$out/$name.stdout" 2>"$out/$name.stderr" &
	pid=$!
	wait $pid
	rc=$?
	if [ $rc != 0 ]; then
		fail "${name}_run" "exit $rc: $(tail -n 5 "$out/$name.stderr" | tr '\n' ' ')"
		for _ in $(seq $((2 + checks))); do fail "${name}_result" "no run"; done
		return
	fi
	ok "${name}_run"
	grep -q "time lost" "$out/$name.stdout" && [ -s "$out/$name/interference-$2.png" ] &&
		ok "${name}_report_and_plot" ||
		fail "${name}_report_and_plot" "$(ls "$out/$name")"
	/usr/bin/python3 tests/interference_check.py "$out/$name" $seconds
	left=$(leftovers $pid)
	[ -z "$left" ] && ok "${name}_nothing_left" || fail "${name}_nothing_left" "$(echo $left)"
}
run interference_stream stream virtio-balloon,virtio-mem
run interference_ftq ftq virtio-mem,hyperalloc
# The measured shrink windows (marks.csv: technique,iteration,phase,start_s,end_s).
awk -F, '$3 == "shrink" { d[$1] = $5 - $4 }
	END { exit !(("hyperalloc" in d) && ("virtio-mem" in d) && d["hyperalloc"] < d["virtio-mem"]) }' \
	"$out/interference_ftq/marks.csv" 2>/dev/null && ok interference_hyperalloc_shrinks_faster ||
	fail interference_hyperalloc_shrinks_faster "$(grep shrink "$out/interference_ftq/marks.csv" 2>&1)"
finish
