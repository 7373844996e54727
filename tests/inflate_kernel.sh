#!/usr/bin/env bash
# Each technique boots the guest kernel of its own flavour: inflate, copied
# next to a guest directory that holds one distinct bzImage-FLAVOUR per flavour
# (and a bzImage that must never be taken), starts a recording QEMU that exits
# at once; its -kernel is the technique's flavour. A missing flavour is
# refused before anything boots. Techniques and flavours come from --help.
cd "$(dirname "$0")/.." && . tests/lib.sh
HATRACE=$(realpath "$HATRACE")
mapfile -t rows < <($HATRACE inflate --help |
	awk '/^Techniques \(guest kernel flavour/ { on = 1; next } on && NF { sub(",", "", $2); print $1, $2 }')
plan $((1 + ${#rows[@]} + 2))
expect "inflate --help lists techniques and their flavours" test ${#rows[@]} -ge 4
tmp=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/guest" "$tmp/qemu"
cp "$HATRACE" "$tmp/hatrace"
: >"$tmp/guest/initramfs.cpio.gz"
echo "the generic image: never booted by a technique" >"$tmp/guest/bzImage"
for row in "${rows[@]}"; do
	set -- $row
	echo "flavour $2" >"$tmp/guest/bzImage-$2"
done
# The recording QEMU: it says it is QEMU, has balloon-huge's and
# virtio-hyperalloc's properties, and
# writes its command line (one argument a line) to $FAKE_ARGV.
cat >"$tmp/qemu/qemu-system-x86_64" <<'EOF'
#!/bin/sh
case "$*" in
--version) echo "QEMU emulator version 7.2.0 (recording fake)"; exit 0 ;;
*,help) printf '  huge-pages=<bool>\n  install=<bool>\n'; exit 0 ;;
esac
printf '%s\n' "$@" >"$FAKE_ARGV"
exit 1
EOF
chmod +x "$tmp/qemu/qemu-system-x86_64"

run() { # technique out: runs inflate with the fake QEMU, its stderr in $tmp/err
	FAKE_ARGV=$tmp/argv-$1 HATRACE_QEMU= "$tmp/hatrace" inflate -t "$1" -m 256M -s 128M -n 1 \
		--boot-timeout 1 -o "$tmp/out-$1" >/dev/null 2>"$tmp/err"
}
for row in "${rows[@]}"; do
	set -- $row
	run "$1"
	kernel=$(grep -A1 -x -- -kernel "$tmp/argv-$1" 2>/dev/null | tail -n 1)
	[ "$kernel" = "$tmp/guest/bzImage-$2" ] && ok "$1 boots bzImage-$2" ||
		fail "$1 boots bzImage-$2" "-kernel '$kernel'; $(head -c 300 "$tmp/err")"
done
set -- ${rows[0]}
rm -f "$tmp/guest/bzImage-$2" "$tmp/argv-$1"
run "$1"
rc=$?
[ $rc != 0 ] && grep -q "$1 needs the $2 guest kernel: $tmp/guest/bzImage-$2" "$tmp/err" &&
	ok "a missing bzImage-$2 is a clear error" ||
	fail "a missing bzImage-$2 is a clear error" "exit $rc: $(head -c 300 "$tmp/err")"
[ ! -e "$tmp/argv-$1" ] && ok "nothing boots without bzImage-$2" ||
	fail "nothing boots without bzImage-$2" "QEMU ran with -kernel $(grep -A1 -x -- -kernel "$tmp/argv-$1" | tail -n 1)"
finish
