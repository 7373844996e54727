#!/usr/bin/env bash
# Bad input: each case is one clear line on stderr, a non-zero exit and no
# partial output file.
cd "$(dirname "$0")/.." && . tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# expect_error NAME PATTERN command...: fails with exactly one stderr line matching PATTERN
expect_error() {
	local name=$1 pattern=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	local rc=$? lines; lines=$(wc -l <"$tmp/err")
	if [ $rc = 0 ]; then fail "$name" "exit status 0"
	elif [ "$lines" != 1 ]; then fail "$name" "$lines stderr lines: $(head -c 300 "$tmp/err")"
	elif ! grep -qE -e "$pattern" "$tmp/err"; then fail "$name" "message: $(cat "$tmp/err")"
	else ok "$name"; fi
}

# 21 cases, the thread ID, 4 root-only cases (or 1 skip) and the leftovers check
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && plan 27 || plan 24
expect_error "hist: PID that does not exist" "no process with PID 999999" $HATRACE hist -p 999999
expect_error "hist: --vm with a PID that is not a VM" "PID $$ is not a VM" $HATRACE hist --vm $$
expect_error "hist: unknown VM name" "no VM named" $HATRACE hist --vm no-such-vm
expect_error "hist: negative interval" "interval: negative values are not allowed" $HATRACE hist -1
expect_error "hist: overflowing interval" "interval: 99999999999999999999 is out of range" \
	$HATRACE hist 99999999999999999999
expect_error "hist: interval then junk count" "count: 'x'" $HATRACE hist 1 x
expect_error "hist: bad -o" "unknown output format 'yaml'" $HATRACE hist -o yaml
expect_error "hist: bad duration" "-d: 'soon'" $HATRACE hist -d soon
expect_error "footprint: no process named" "name processes with -p" $HATRACE footprint
expect_error "footprint: bad -o" "expected json.csv.perfetto" $HATRACE footprint -o text -p $$
expect_error "footprint: bad step" "--step" $HATRACE footprint -p $$ --step 12Q
expect_error "footprint: missing PID, -w given" "no process with PID" \
	$HATRACE footprint -p 999999 -w "$tmp/fp.csv"
expect_error "vms: bad -o" "unknown output format 'csv'" $HATRACE vms -o csv
expect_error "doctor: bad -o" "unknown output format" $HATRACE doctor -o xml
expect_error "unknown command" "unknown command 'frobnicate'" $HATRACE frobnicate
expect_error "hist: option without its value" "option -p needs a value" $HATRACE hist -p
expect_error "footprint: unknown short option in a cluster" "unknown option -x" $HATRACE footprint -p $$ -vx
expect_error "hist: PID with leading whitespace" "-p: '.1' is not a non-negative integer" $HATRACE hist -p "	1"
expect_error "hist: --vm PID out of range" "4294967297 is not a valid PID" $HATRACE hist --vm 4294967297
expect_error "vms: --qmp socket that does not exist" "--qmp $tmp/none: No such file" $HATRACE vms --qmp "$tmp/none"
expect_error "footprint: -w names a directory" "it is a directory" $HATRACE footprint -p $$ -w "$tmp"
python3 - "$HATRACE" <<'PY' && ok "hist: a thread ID is refused, naming its process" || fail "thread ID" "accepted or wrong message"
import subprocess, sys, threading, os, time
ev = threading.Event()
t = threading.Thread(target=ev.wait); t.start()
tid = [int(x) for x in os.listdir("/proc/self/task") if int(x) != os.getpid()][0]
r = subprocess.run([sys.argv[1], "hist", "-p", str(tid)], capture_output=True, text=True)
ev.set(); t.join()
sys.exit(0 if r.returncode and f"is a thread of process {os.getpid()}" in r.stderr else 1)
PY

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	expect_error "hist: without root" "needs root" $nobody $HATRACE hist -d 1
	expect_error "footprint: without root" "needs root" $nobody $HATRACE footprint -p $$ -d 1
	mkdir -p "$tmp/tracefs/events"
	expect_error "footprint: missing tracepoint" "kmem:rss_stat is missing" \
		env HATRACE_TRACEFS="$tmp/tracefs" $HATRACE footprint -p $$ -d 1 -w "$tmp/fp2.csv"
	expect_error "hist: every tracepoint missing" "none of the tracepoints" \
		env HATRACE_TRACEFS="$tmp/tracefs" $HATRACE hist -d 1
else
	skip "root-only error cases" "need root and setpriv to drop privileges"
fi
expect "no partial output files left" test -z "$(ls "$tmp" | grep -v -e '^out$' -e '^err$' -e '^tracefs$')"
finish
