#!/usr/bin/env bash
# The guest initramfs: reproducible bytes, the expected files, fixed owners and mtimes.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
bins=("$BUILD"/guest/bin/{hatrace-guest,ht-touch,ht-alloc-install,ht-integrity})

for b in "${bins[@]}"; do
	[ -x "$b" ] || skip_all "guest initramfs" "$b is not built (run make)"
done
files=(init bin/busybox bin/sh bin/mount bin/hatrace-guest bin/ht-touch bin/ht-alloc-install
	bin/ht-integrity dev proc sys run tmp)
plan $((${#files[@]} + 4))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cp "${bins[@]}" "$tmp/bin/"
workloads/mkinitramfs.sh "$tmp/a.cpio.gz" workloads/init "$tmp"/bin/*
sleep 1 # new mtimes must not matter
touch "$tmp"/bin/*
workloads/mkinitramfs.sh "$tmp/b.cpio.gz" workloads/init "$tmp"/bin/*
expect "two builds are byte-identical" cmp -s "$tmp/a.cpio.gz" "$tmp/b.cpio.gz"

list=$(gzip -dc "$tmp/a.cpio.gz" | cpio -t --quiet)
for f in "${files[@]}"; do
	expect "initramfs has $f" grep -qx "$f" <<<"$list"
done
expect "file list is sorted" bash -c 'LC_ALL=C sort -c <<<"$1"' _ "$list"
long=$(gzip -dc "$tmp/a.cpio.gz" | cpio -tv --quiet)
expect "every entry is owned by root with mtime 0" \
	test -z "$(awk '$3 != "root" || $4 != "root" || $8 != 1970' <<<"$long" | head -1)"
expect "/init is executable" grep -qE '^-rwxr-xr-x .* init$' <<<"$long"
finish
