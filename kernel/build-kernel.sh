#!/usr/bin/env bash
# Builds a hatrace guest kernel (Linux 6.1 from Debian's linux-source-6.1) and
# caches it outside the clone:
#   ~/.cache/hatrace/kernel/<flavour>-<hash>/{bzImage,vmlinux,config,build.log}
# <hash> covers the source package version, the toolchain, kernel/configs/base.config,
# kernel/configs/<flavour>.config (optional; an "#include NAME.config" line in it
# merges kernel/configs/NAME.config first), the patches (applied with patch -p1:
# those listed in kernel/patches/<flavour>/series, one "FLAVOUR/NAME.patch" a line,
# so that flavours share patches without copies; else kernel/patches/<flavour>/*.patch
# in name order) and the files named in
# kernel/patches/<flavour>/files (non-blank lines "REPO_PATH TREE_PATH", e.g.
# "kernel/llfree/llfree.c mm/llfree.c": copied into the tree after the patches, so
# that sources shared with QEMU and tests stay single). A new flavour needs only
# its name in KERNEL_FLAVOURS (kernel/build.mk) plus its fragment, patches, files.
#
# usage: kernel/build-kernel.sh FLAVOUR [OUT_DIR]
#   Prints the cache directory; with OUT_DIR, copies bzImage and links vmlinux
#   there as bzImage-FLAVOUR / vmlinux-FLAVOUR. The full build log stays in the
#   cache directory; on failure its tail is printed.
set -euo pipefail

# Bump when this script changes in a way that changes the built kernel.
PIPELINE_VERSION=1
SRC_TAR=${KERNEL_SRC_TAR:-/usr/src/linux-source-6.1.tar.xz}
CACHE=${HATRACE_CACHE:-$HOME/.cache/hatrace}/kernel
JOBS=${KERNEL_JOBS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

die() { echo "build-kernel: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 FLAVOUR [OUT_DIR]"
flavour=$1 out_dir=${2:-}
[[ $flavour =~ ^[a-z0-9_]+$ ]] || die "bad flavour name '$flavour'"
[ -r "$SRC_TAR" ] || die "$SRC_TAR missing (apt-get install linux-source-6.1)"
command -v pahole >/dev/null || die "pahole missing (apt-get install dwarves)"

fragments=("$here/configs/base.config")
flavour_config=$here/configs/$flavour.config
if [ -f "$flavour_config" ]; then
	while read -r inc; do
		[[ $inc =~ ^[a-z0-9_]+\.config$ && -f $here/configs/$inc ]] ||
			die "$flavour_config: cannot include '$inc'"
		fragments+=("$here/configs/$inc")
	done < <(sed -n 's/^#include //p' "$flavour_config")
	fragments+=("$flavour_config")
fi
series=$here/patches/$flavour/series
if [ -f "$series" ]; then
	patches=()
	while read -r p rest; do
		[[ -z $p || $p == \#* ]] && continue
		[[ -z $rest && $p == *.patch && $p != /* && $p != *..* ]] ||
			die "$series: expected 'FLAVOUR/NAME.patch' lines, got '$p $rest'"
		[ -f "$here/patches/$p" ] || die "$series: $p does not exist"
		patches+=("$here/patches/$p")
	done <"$series"
else
	shopt -s nullglob
	patches=("$here/patches/$flavour"/*.patch)
	shopt -u nullglob
fi
files_list=$here/patches/$flavour/files
copies=() # pairs: repo path, tree path
if [ -f "$files_list" ]; then
	while read -r src dst rest; do
		[ -z "$src" ] && continue
		[[ -n $dst && -z $rest && $dst != /* && $dst != *..* ]] ||
			die "$files_list: expected 'REPO_PATH TREE_PATH' lines, got '$src $dst $rest'"
		[ -f "$root/$src" ] || die "$files_list: $src does not exist"
		copies+=("$src" "$dst")
	done <"$files_list"
fi

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null ||
	stat -c '%s %Y' "$SRC_TAR")
hash=$( {
	echo "pipeline $PIPELINE_VERSION flavour $flavour source $src_version"
	gcc --version | head -n1
	pahole --version
	for f in "${fragments[@]}" "${patches[@]}"; do
		echo "== ${f#"$here"/}"
		cat "$f"
	done
	for ((i = 0; i < ${#copies[@]}; i += 2)); do
		echo "== ${copies[i]} -> ${copies[i + 1]}"
		cat "$root/${copies[i]}"
	done
} | sha256sum | cut -c1-16)
dest=$CACHE/$flavour-$hash

publish() {
	[ -z "$out_dir" ] && return 0
	mkdir -p "$out_dir"
	cp -f "$dest/bzImage" "$out_dir/bzImage-$flavour.tmp"
	mv -f "$out_dir/bzImage-$flavour.tmp" "$out_dir/bzImage-$flavour"
	ln -sfn "$dest/vmlinux" "$out_dir/vmlinux-$flavour"
	ln -sfn "$dest/config" "$out_dir/config-$flavour"
}

mkdir -p "$CACHE"
# One kernel build at a time on this machine (2 cores).
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$dest/bzImage" ]; then
	publish
	echo "$dest"
	exit 0
fi

work=$CACHE/work-$flavour-$hash
# Interrupted builds of this flavour with other inputs (we hold the lock).
for old in "$CACHE/work-$flavour"-*; do
	[ "$old" = "$work" ] || rm -rf "$old"
done
log=$work/build.log
mkdir -p "$work"
: >"$log"
fail() {
	echo "build-kernel: $1; last lines of $log:" >&2
	tail -n 30 "$log" >&2
	exit 1
}
echo "build-kernel: building $flavour kernel ($hash), log in $log" >&2
start=$(date +%s)

if [ ! -f "$work/.patched" ]; then
	rm -rf "$work/src"
	mkdir -p "$work/src"
	tar -xJf "$SRC_TAR" -C "$work/src" --strip-components=1 >>"$log" 2>&1 || fail "extract failed"
	for p in "${patches[@]}"; do
		echo "== applying ${p#"$here"/}" >>"$log"
		patch -d "$work/src" -p1 --forward --batch <"$p" >>"$log" 2>&1 ||
			fail "patch ${p#"$here"/} does not apply"
	done
	for ((i = 0; i < ${#copies[@]}; i += 2)); do
		echo "== copying ${copies[i]} to ${copies[i + 1]}" >>"$log"
		install -D -m 0644 "$root/${copies[i]}" "$work/src/${copies[i + 1]}"
	done
	touch "$work/.patched"
fi

obj=$work/obj
mkdir -p "$obj"
# The kernel build must not inherit the calling make's flags or variables (V=1, CC=...).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
kmake() { nice make -C "$work/src" O="$obj" ARCH=x86_64 "$@" >>"$log" 2>&1; }
kmake tinyconfig || fail "tinyconfig failed"
"$work/src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${fragments[@]}" \
	>>"$log" 2>&1 || fail "merge_config failed"
kmake olddefconfig || fail "olddefconfig failed"
# Every option a fragment asks for must have survived Kconfig's dependencies; a
# later fragment overrides an earlier one (as merge_config does).
missing=$(cat "${fragments[@]}" | grep -E '^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set)' |
	awk '{ opt = ($1 == "#") ? $2 : substr($0, 1, index($0, "=") - 1); last[opt] = $0 }
	     END { for (o in last) print last[o] }' |
	while read -r line; do
		if [[ $line == "# "* ]]; then
			opt=${line#\# }; opt=${opt%% *}
			grep -q "^$opt=" "$obj/.config" && echo "$opt (wanted off)"
		else
			grep -qxF "$line" "$obj/.config" || echo "$line"
		fi
	done || true)
[ -z "$missing" ] || { echo "unmet options:" $missing >>"$log"; fail "config options did not stick: $(echo $missing)"; }

kmake -j"$JOBS" bzImage || fail "kernel build failed"

tmp=$CACHE/.tmp-$flavour-$hash
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$obj/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$obj/vmlinux" "$tmp/vmlinux"
cp "$obj/.config" "$tmp/config"
echo "built in $(( $(date +%s) - start )) s" >>"$log"
cp "$log" "$tmp/build.log"
rm -rf "$dest"
mv "$tmp" "$dest"
rm -rf "$work"
# Keep the three newest kernels of this flavour.
ls -dt "$CACHE/$flavour"-*/ | tail -n +4 | xargs -r rm -rf
echo "build-kernel: $flavour kernel built in $(( $(date +%s) - start )) s" >&2
publish
echo "$dest"
