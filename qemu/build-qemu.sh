#!/usr/bin/env bash
# Builds hatrace's QEMU (qemu-system-x86_64 only) from Debian's QEMU 7.2 source
# package plus qemu/patches/*.patch and the files qemu/files copies in from this
# repository (the wire header, the allocator core, the device's validation), and
# caches it outside the clone:
#   ~/.cache/hatrace/qemu/<hash>/{qemu-system-x86_64,build.log,source-version,copied.sha256}
# <hash> covers the source package version, the patches, the copied files, the
# configure flags, this pipeline's version and the toolchain (compiler, meson,
# ninja, dtrace and library headers). copied.sha256 lists the repository files the
# binary was compiled from, for `sha256sum -c` from the repository root. The source package comes from deb-src (apt-get source
# --download-only) and is kept in ~/.cache/hatrace/qemu/src/<version>/; when apt
# cannot be asked, the newest cached source is used.
#
# The dfsg tree has no firmware: the binary searches Debian's seabios, qemu-system-data
# and ipxe-qemu directories (--firmwarepath), so it boots like the stock binary.
#
# usage: qemu/build-qemu.sh [OUT_DIR]
#   Prints the cache directory; with OUT_DIR, copies qemu-system-x86_64 and
#   copied.sha256 there.
#   Progress goes to stderr; the full log stays in the cache directory and its
#   tail is printed on failure.
set -euo pipefail

# Bump when this script changes in a way that changes the built binary.
PIPELINE_VERSION=2
CACHE=${HATRACE_CACHE:-$HOME/.cache/hatrace}/qemu
JOBS=${QEMU_JOBS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out_dir=${1:-}
CONFIGURE_FLAGS=(
	--target-list=x86_64-softmmu
	--enable-trace-backends=log,dtrace
	--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
	# Only what hatrace's VMs use: no optional library may change the binary.
	--without-default-features
	--enable-kvm
	--enable-tcg
	--disable-docs
)
# Build dependencies whose versions go into the hash (the toolchain and headers).
TOOLCHAIN_PKGS=(gcc meson ninja-build systemtap-sdt-dev libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev)

die() { echo "build-qemu: $*" >&2; exit 1; }
for tool in dpkg-source meson ninja dtrace patch; do
	command -v $tool >/dev/null || die "$tool missing (make deps)"
done

shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob
copies=() # pairs: repo path, QEMU tree path
while read -r src dst rest; do
	[[ -z $src || $src == \#* ]] && continue
	[[ -n $dst && -z $rest && $dst != /* && $dst != *..* ]] ||
		die "qemu/files: expected 'REPO_PATH QEMU_PATH' lines, got '$src $dst $rest'"
	[ -f "$root/$src" ] || die "qemu/files: $src does not exist"
	copies+=("$src" "$dst")
done <"$here/files"

mkdir -p "$CACHE/src"
# One QEMU build at a time on this machine (2 cores); it also guards the source cache.
exec 9>"$CACHE/.lock"
flock 9

# The source version: what deb-src offers now, else the newest one already cached.
dsc=$(cd "$CACHE/src" && apt-get source --print-uris qemu 2>/dev/null |
	awk '$2 ~ /^qemu_.*\.dsc$/ {print $2}' | head -n1) || true
if [ -n "$dsc" ]; then
	src_version=${dsc#qemu_}
	src_version=${src_version%.dsc}
else
	src_version=$(ls -t "$CACHE/src" | head -n1)
	[ -n "$src_version" ] || die "no QEMU source: enable deb-src in /etc/apt/sources.list.d (see .ci/run) and apt-get update"
	echo "build-qemu: apt-get source failed, using cached source $src_version" >&2
fi
src_dir=$CACHE/src/$src_version
if [ ! -f "$src_dir/.complete" ]; then
	echo "build-qemu: downloading Debian's QEMU source $src_version" >&2
	rm -rf "$src_dir"
	mkdir -p "$src_dir"
	(cd "$src_dir" && apt-get source --download-only qemu >download.log 2>&1) ||
		{ tail -n 5 "$src_dir/download.log" >&2; die "apt-get source qemu failed"; }
	[ -f "$src_dir/qemu_$src_version.dsc" ] || die "apt-get source qemu did not fetch qemu_$src_version.dsc"
	touch "$src_dir/.complete"
fi

hash=$( {
	echo "pipeline $PIPELINE_VERSION source $src_version"
	printf '%s\n' "${CONFIGURE_FLAGS[@]}"
	dpkg-query -W "${TOOLCHAIN_PKGS[@]}"
	gcc --version | head -n1
	for p in "${patches[@]}"; do
		echo "== ${p#"$here"/}"
		cat "$p"
	done
	for ((i = 0; i < ${#copies[@]}; i += 2)); do
		echo "== ${copies[i]} -> ${copies[i + 1]}"
		cat "$root/${copies[i]}"
	done
} | sha256sum | cut -c1-16)
dest=$CACHE/$hash

publish() {
	[ -z "$out_dir" ] && return 0
	mkdir -p "$out_dir"
	cp -f "$dest/qemu-system-x86_64" "$out_dir/qemu-system-x86_64.tmp"
	mv -f "$out_dir/qemu-system-x86_64.tmp" "$out_dir/qemu-system-x86_64"
	cp -f "$dest/copied.sha256" "$out_dir/copied.sha256"
}

if [ -x "$dest/qemu-system-x86_64" ] && [ -f "$dest/copied.sha256" ]; then
	publish
	echo "$dest"
	exit 0
fi

work=$CACHE/work-$hash
# Interrupted builds with other inputs (we hold the lock).
for old in "$CACHE"/work-*; do
	[ "$old" = "$work" ] || rm -rf "$old"
done
log=$work/build.log
mkdir -p "$work"
: >"$log"
progress_pid=
trap '[ -z "$progress_pid" ] || kill "$progress_pid" 2>/dev/null || true' EXIT
fail() {
	echo "build-qemu: $1; last lines of $log:" >&2
	tail -n 30 "$log" >&2
	exit 1
}
echo "build-qemu: building QEMU $src_version with ${#patches[@]} patches ($hash), about 3 minutes on 2 cores; log in $log" >&2
start=$(date +%s)

if [ ! -f "$work/.patched" ]; then
	rm -rf "$work/src"
	dpkg-source --no-check -x "$src_dir/qemu_$src_version.dsc" "$work/src" >>"$log" 2>&1 ||
		fail "dpkg-source -x failed"
	for p in "${patches[@]}"; do
		echo "== applying ${p#"$here"/}" >>"$log"
		patch -d "$work/src" -p1 --forward --batch <"$p" >>"$log" 2>&1 ||
			fail "patch ${p#"$here"/} does not apply"
	done
	for ((i = 0; i < ${#copies[@]}; i += 2)); do
		[ ! -e "$work/src/${copies[i + 1]}" ] ||
			fail "qemu/files: ${copies[i + 1]} already exists in the QEMU tree"
		mkdir -p "$(dirname "$work/src/${copies[i + 1]}")"
		cp "$root/${copies[i]}" "$work/src/${copies[i + 1]}"
	done
	touch "$work/.patched"
fi
# What the binary is compiled from: the copies as they are in the tree now.
for ((i = 0; i < ${#copies[@]}; i += 2)); do
	echo "$(sha256sum <"$work/src/${copies[i + 1]}" | cut -d' ' -f1)  ${copies[i]}"
done >"$work/copied.sha256"

# QEMU's build must not inherit the calling make's flags (V=1, -j).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
obj=$work/obj
if [ ! -f "$obj/build.ninja" ]; then
	echo "build-qemu: configuring" >&2
	rm -rf "$obj"
	mkdir -p "$obj"
	(cd "$obj" && nice "$work/src/configure" "${CONFIGURE_FLAGS[@]}") >>"$log" 2>&1 ||
		fail "configure failed"
fi

# ninja prints "[done/total] ..." lines: show where it is twice a minute.
(
	while sleep 30; do
		step=$(grep -ao '^\[[0-9]*/[0-9]*\]' "$log" | tail -n1 | tr -d '[]')
		echo "build-qemu: $(( $(date +%s) - start )) s, compiled ${step:-0/?}" >&2
	done
) &
progress_pid=$!
nice ninja -C "$obj" -j"$JOBS" qemu-system-x86_64 >>"$log" 2>&1 || fail "ninja failed"
kill "$progress_pid" 2>/dev/null || true
progress_pid=

tmp=$CACHE/.tmp-$hash
rm -rf "$tmp"
mkdir -p "$tmp"
# Run from a copy: next to its build tree's qemu-bundle/, QEMU would look for
# firmware there only.
cp "$obj/qemu-system-x86_64" "$tmp/qemu-system-x86_64"
echo "$src_version" >"$tmp/source-version"
cp "$work/copied.sha256" "$tmp/copied.sha256"
echo "built in $(( $(date +%s) - start )) s" >>"$log"
cp "$log" "$tmp/build.log"
rm -rf "$dest"
mv "$tmp" "$dest"
rm -rf "$work"
# Keep the three newest builds.
ls -dt "$CACHE"/????????????????/ | tail -n +4 | xargs -r rm -rf
echo "build-qemu: built in $(( $(date +%s) - start )) s" >&2
publish
echo "$dest"
