#!/usr/bin/env bash
# Names cut in the middle of a UTF-8 character (the kernel keeps 15 bytes of a
# command name, hatrace 63 of a QEMU -name) still give valid JSON, the bad
# byte shown as U+FFFD, in hist, footprint (json and perfetto) and vms.
cd "$(dirname "$0")/.." && . tests/lib.sh
need_root "json utf-8"
plan 10
tmp=$(mktemp -d)
cleanup() { kill $wl $qemu 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
# 14 ASCII bytes then "é" (c3 a9): the command name keeps only its first byte
exe="$tmp/hatrace-utf8-xé"
ln -s "$PWD/build/tests/fault_workload" "$exe"
cut_comm=$(printf 'hatrace-utf8-x\uFFFD')

start_workload() { # ARGS...: the workload waits for a line on fd 3
	rm -f "$tmp/go"; mkfifo "$tmp/go"
	"$exe" "$@" <"$tmp/go" >/dev/null & wl=$!
	exec 3>"$tmp/go"
}
all_json() { jq -e -s 'length > 0' "$1" >/dev/null 2>&1; } # every line parses

start_workload faults 64 2
$HATRACE hist -p $wl -o json >"$tmp/hist" 2>"$tmp/hist.err" 3>&- & tr=$!
for _ in $(seq 100); do grep -q '"start"' "$tmp/hist" 2>/dev/null && break; sleep 0.1; done
echo go >&3; exec 3>&-
wait $wl; wait $tr
expect "hist -o json: every line is valid JSON" all_json "$tmp/hist"
expect "hist -o json: no empty lines" test "$(grep -c '^$' "$tmp/hist")" = 0
n=$(jq -s --arg c "$cut_comm" "[.[] | select(.type == \"hist\" and .pid == $wl and .comm == \$c)] | length" "$tmp/hist")
[ "${n:-0}" -ge 1 ] && ok "hist -o json: the cut name has U+FFFD for its bad byte ($n histograms)" ||
	fail "hist comm" "$(grep -a "$wl" "$tmp/hist" | head -3)"

for fmt in json perfetto; do
	start_workload rss 4 1 50
	$HATRACE footprint -p $wl -o $fmt -w "$tmp/fp.$fmt" 2>"$tmp/fp.err" 3>&- & tr=$!
	for _ in $(seq 100); do compgen -G "$tmp/fp.$fmt.*" >/dev/null && break; sleep 0.1; done
	echo go >&3; exec 3>&-
	wait $wl; wait $tr
	expect "footprint -o $fmt: valid JSON" all_json "$tmp/fp.$fmt"
done
expect "footprint -o json: no empty lines" test "$(grep -c '^$' "$tmp/fp.json")" = 0
n=$(jq -s --arg c "$cut_comm" '[.[] | select(.comm == $c)] | length' "$tmp/fp.json")
[ "${n:-0}" -ge 1 ] && ok "footprint -o json: rows carry the cut name ($n)" || fail "footprint comm" "$(head -2 "$tmp/fp.json")"
name=$(jq -r '[.traceEvents[] | select(.ph == "M")][0].args.name' "$tmp/fp.perfetto" 2>/dev/null)
expect "footprint -o perfetto: the process track has the cut name" test "$name" = "$cut_comm"

# A TCG QEMU, firmware only, whose 64-byte -name is cut after 63 bytes
long=$(printf 'v%.0s' $(seq 62))é
${HATRACE_QEMU:-qemu-system-x86_64} -name "$long" -display none -m 64M -accel tcg -nodefaults \
	>"$tmp/qemu.log" 2>&1 & qemu=$!
# exec sets the new comm before the new command line (load_elf_binary fills
# mm->arg_start after begin_new_exec): wait for the command line itself
for _ in $(seq 50); do grep -qa -- -name "/proc/$qemu/cmdline" 2>/dev/null && break; sleep 0.1; done
$HATRACE vms -o json >"$tmp/vms" 2>"$tmp/vms.err"
expect "vms -o json: valid JSON" all_json "$tmp/vms"
got=$(jq -r ".vms[] | select(.pid == $qemu) | .name" "$tmp/vms" 2>/dev/null)
expect "vms -o json: the VM is listed, its cut name with U+FFFD" \
	test "$got" = "$(printf 'v%.0s' $(seq 62))$(printf '\uFFFD')"
finish
