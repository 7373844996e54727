#!/usr/bin/env bash
# Builds the guest initramfs reproducibly: busybox (all applets as symlinks),
# workloads/init as /init, and the given static binaries (stripped) in /bin.
# usage: workloads/mkinitramfs.sh OUT.cpio.gz INIT BINARY...
set -euo pipefail
out=$1 init=$2
shift 2
busybox=${BUSYBOX:-/bin/busybox}
[[ $(ldd "$busybox" 2>&1 || true) == *"not a dynamic"* ]] ||
	{ echo "mkinitramfs: $busybox is not static (apt-get install busybox-static)" >&2; exit 1; }

stage=$(mktemp -d "${out%/*}/.initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,run,tmp,etc}
install -m 0755 "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
install -m 0755 "$init" "$stage/init"
for bin in "$@"; do
	install -s -m 0755 "$bin" "$stage/bin/${bin##*/}"
done
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc --reproducible -R 0:0) | gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
