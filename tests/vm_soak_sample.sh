#!/usr/bin/env bash
# The soak's sample in make test: 20 shrink/grow cycles per active technique
# with the integrity buffer held and touched memory taken back each cycle;
# soak.json must count every cycle, 0 bad pages and a clean guest console.
# `make soak` runs the same with 1000 cycles (results/soak.json).
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/bzImage-hyperalloc" ] &&
	[ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_soak_sample "guest image not built (make)"
techs=virtio-balloon,virtio-balloon-huge,virtio-mem,hyperalloc,hyperalloc-fault
plan 8
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

"$HATRACE" inflate --cycles 3 -t fpr -o "$out/refused" >/dev/null 2>"$out/err" &&
	fail soak_refuses_passive "accepted" ||
	{ grep -q "fpr has no resize" "$out/err" && ok soak_refuses_passive ||
	  fail soak_refuses_passive "$(cat "$out/err")"; }
"$HATRACE" inflate --cycles 20 -t $techs -m 1G -s 512M -n 1 -o "$out/r" \
	>"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
[ $rc = 0 ] && ok soak_run || fail soak_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
for t in ${techs//,/ }; do
	jq -e --arg t "$t" '.techniques[$t] | .cycles == 20 and .bad_pages == 0 and
		.integrity_pages_verified > 0 and .console_clean' "$out/r/soak.json" >/dev/null 2>&1 &&
		ok "soak_${t}_20_cycles_clean" ||
		fail "soak_${t}_20_cycles_clean" "$(jq -c --arg t "$t" '.techniques[$t]' "$out/r/soak.json" 2>&1)"
done
left=$(leftovers $pid)
[ -z "$left" ] && ok soak_nothing_left || fail soak_nothing_left "$(echo $left)"
finish
