#!/usr/bin/env bash
# hatrace inflate on bad input and failures: each is one clear error, a non-zero
# exit, no output directory and no QEMU, socket or temp dir left behind.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
no_leftovers() { # NAME PID...: no QEMU, temp dir or results left by those runs
	local name=$1 left
	shift
	left=$(leftovers "$@"; ls -d "$out"/r "$out"/r.* 2>/dev/null)
	[ -z "$left" ] && ok "${name}_clean" || fail "${name}_clean" "left behind: $(echo $left)"
}

# expect_error NAME PATTERN ARGS...: non-zero exit, PATTERN on stderr
expect_error() {
	local name=$1 pat=$2 rc pid
	shift 2
	"$HATRACE" inflate -o "$out/r" "$@" >"$out/stdout" 2>"$out/stderr" &
	pid=$!
	wait $pid
	rc=$?
	if [ $rc != 0 ] && grep -q -- "$pat" "$out/stderr"; then
		ok "$name"
	else
		fail "$name" "exit $rc, stderr: $(head -c 300 "$out/stderr" | tr '\n' ' ')"
	fi
	no_leftovers "$name" $pid
}

# 8 bad-input cases (2 lines each) and a stock QEMU for balloon-huge (2 lines or 2
# skips); with the guest image, a run on a QEMU without USDT probes (2), 2 boot
# failures (2 each + 1 console check), 2 signalled runs (2 each + 1 message), SIGKILL (2)
[ -r "$BUILD/guest/bzImage" ] && plan 33 || plan 19
expect_error inflate_shrink_above_mem "must be smaller than --mem" --mem 1G --shrink-to 2G
expect_error inflate_unknown_technique "unknown technique 'balloonz'" -t virtio-balloon,balloonz
expect_error inflate_bad_size "is not a" --mem lots
expect_error inflate_mem_too_big "does not fit in this host" --mem 64T --shrink-to 1G
expect_error inflate_bad_accel "unknown accelerator" --accel xen
expect_error inflate_qemu_missing "QEMU not found" --qemu /nonexistent/qemu-system-x86_64
HATRACE_QEMU=no-such-qemu expect_error inflate_qemu_env_missing "QEMU not found: no no-such-qemu"
expect_error inflate_qemu_not_qemu "/bin/true is not QEMU" --qemu /bin/true
# balloon-huge needs the huge-pages property that only hatrace's QEMU has.
stock=/usr/bin/qemu-system-x86_64
if [ -x $stock ] && ! $stock -device virtio-balloon-pci,help | grep -q huge-pages; then
	expect_error inflate_huge_on_stock_qemu "virtio-balloon-huge needs a QEMU whose virtio-balloon-pci has the 'huge-pages' property" \
		-t virtio-balloon-huge --qemu $stock
else
	skip inflate_huge_on_stock_qemu "no stock QEMU without huge-pages at $stock"
	skip inflate_huge_on_stock_qemu_clean "no stock QEMU without huge-pages at $stock"
fi

if [ ! -r "$BUILD/guest/bzImage" ]; then
	skip inflate_vm_errors "guest image not built (make)"
	finish
fi
# A QEMU without USDT probes (Debian's): the run works from QMP and /proc, says
# so once on stderr, and summary.json gives the reason instead of QEMU's times.
if [ -x $stock ] && ! readelf -n $stock | grep -q stapsdt; then
	"$HATRACE" inflate -o "$out/r" -t virtio-mem --mem 512M --shrink-to 256M -n 1 --qemu $stock \
		>"$out/stdout" 2>"$out/stderr" &
	pid=$!
	wait $pid
	rc=$?
	said=$(grep -c "QEMU-internal timing unavailable: $stock has no QEMU USDT probes" "$out/stderr")
	why=$(/usr/bin/python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["virtio-mem"]
print(all(set(s[p]["qemu_internal"]) == {"unavailable"} and
          "has no QEMU USDT probes" in s[p]["qemu_internal"]["unavailable"]
          for p in ("shrink", "grow")))' "$out/r/summary.json" 2>&1)
	[ $rc = 0 ] && [ "$said" = 1 ] && [ "$why" = True ] && ok inflate_stock_qemu_without_usdt ||
		fail inflate_stock_qemu_without_usdt "exit $rc, said $said times, summary: $why"
	rm -rf "$out/r"
	no_leftovers inflate_stock_qemu_without_usdt $pid
else
	skip inflate_stock_qemu_without_usdt "no QEMU without USDT probes at $stock"
	skip inflate_stock_qemu_without_usdt_clean "no QEMU without USDT probes at $stock"
fi

# A guest that never boots: no root filesystem, the kernel panics and waits.
: >"$out/empty.cpio"
expect_error inflate_never_boots "did not boot" -t virtio-balloon --mem 512M --shrink-to 256M \
	-n 1 --initrd "$out/empty.cpio" --append "console=ttyS0 panic=0" --boot-timeout 20
grep -q 'Kernel panic\|VFS' "$out/stderr" && ok inflate_never_boots_console ||
	fail inflate_never_boots_console "no console tail on stderr"
# The same guest with panic=-1: QEMU exits, and the error says so.
expect_error inflate_qemu_exits_at_boot "QEMU died while the guest booted" -t virtio-balloon \
	--mem 512M --shrink-to 256M -n 1 --initrd "$out/empty.cpio" \
	--append "console=ttyS0 panic=-1" --boot-timeout 60

# run_and_signal NAME WHEN SIGNAL TARGET: start a run, wait for WHEN on its
# stderr, send SIGNAL to QEMU or hatrace.
run_and_signal() {
	local name=$1 when=$2 sig=$3 target=$4 pid qpid rc i
	: >"$out/stderr" # not the previous run's lines
	"$HATRACE" inflate -o "$out/r" -t virtio-balloon --mem 1G --shrink-to 512M -n 1 \
		>"$out/stdout" 2>"$out/stderr" &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		grep -q "$when" "$out/stderr" && break
		sleep 0.2
	done
	qpid=$(pgrep -P $pid -f qemu-system)
	[ -n "$qpid" ] || echo "$name: no QEMU child of hatrace $pid found" >&2
	if [ "$target" = qemu ]; then kill -"$sig" $qpid; else kill -"$sig" $pid; fi
	wait $pid
	rc=$?
	echo "$name: exit $rc" >&2
	cat "$out/stderr" >&2
	[ $rc != 0 ] && ok "${name}_fails" || fail "${name}_fails" "exit $rc"
	no_leftovers "$name" $pid
}
run_and_signal inflate_qemu_killed "\] touch" KILL qemu
# the first VM of a technique is its breakdown iteration (every probe on)
grep -q "QEMU died during virtio-balloon, iteration breakdown, phase \(touch\|shrink\)" "$out/stderr" &&
	grep -q "killed by signal 9" "$out/stderr" && ok inflate_qemu_killed_message ||
	fail inflate_qemu_killed_message "$(grep hatrace: "$out/stderr" | head -3 | tr '\n' ' ')"
run_and_signal inflate_ctrl_c "\] boot" INT hatrace
grep -q "interrupted" "$out/stderr" && ok inflate_ctrl_c_message ||
	fail inflate_ctrl_c_message "$(tail -n 3 "$out/stderr" | tr '\n' ' ')"
# hatrace itself SIGKILLed: QEMU follows it (PR_SET_PDEATHSIG), and the next
# run removes the orphaned temp dir. stderr is emptied first: the wait below
# must not see the previous run's "] boot" before this one's redirect truncates it.
: >"$out/stderr"
"$HATRACE" inflate -o "$out/r" -t virtio-balloon --mem 1G --shrink-to 512M -n 1 \
	>"$out/stdout" 2>"$out/stderr" &
pid=$!
for ((i = 0; i < 600; i++)); do grep -q "\] boot" "$out/stderr" && break; sleep 0.2; done
qpid=$(pgrep -P $pid -f qemu-system)
kill -KILL $pid
wait $pid 2>/dev/null
for ((i = 0; i < 50; i++)); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
if [ -z "$qpid" ]; then
	fail inflate_sigkill_qemu_follows "no QEMU child of hatrace $pid was found before the kill"
elif kill -0 "$qpid" 2>/dev/null; then
	fail inflate_sigkill_qemu_follows "QEMU $qpid outlived hatrace"
else
	ok inflate_sigkill_qemu_follows
fi
rm -rf "$out"/r.tmp-* # a SIGKILLed run cannot remove its own staging dir
"$HATRACE" inflate -o "$out/r" --qemu /bin/false --mem 1G -n 1 >/dev/null 2>&1 &
pid2=$!
wait $pid2
no_leftovers inflate_sigkill $pid $pid2
finish
