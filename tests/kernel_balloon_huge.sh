#!/usr/bin/env bash
# virtio-balloon-huge in the guest kernel: the baseline flavour's patch applied
# in the build of the current inputs, and the driver's huge-page path is
# compiled into that kernel (sysfs attributes, driver state in BTF).
# tests/guest_balloon_huge.py checks it in a VM.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
BUILD=${BUILD:-build}
patch=kernel/patches/baseline/0001-virtio-balloon-huge-pages.patch

patches=(kernel/patches/baseline/*.patch)
[ -e "$BUILD/guest/bzImage-baseline" ] ||
	skip_all "balloon-huge kernel" "$BUILD/guest/bzImage-baseline is not built (run make)"
# 1 patch define, 2 build checks, 1 per patch, 3 symbols, 3 BTF members
plan $((9 + ${#patches[@]}))
expect "the patch defines VIRTIO_BALLOON_F_HUGE_PAGES as bit 23" \
	grep -qE '^\+#define VIRTIO_BALLOON_F_HUGE_PAGES[[:space:]]+23$' "$patch"
# A cache hit after make; if a patch stopped applying, this build fails.
PATCHES=("${patches[@]}")
kernel_build baseline
dir=$kernel_dir

symbols=$(nm "$dir/vmlinux" 2>/dev/null)
for sym in dev_attr_huge_units dev_attr_huge_alloc_failures virtballoon_huge_groups; do
	expect "vmlinux has $sym" grep -qE " $sym\$" <<<"$symbols"
done
members=$(bpftool btf dump file "$dir/vmlinux" format c 2>/dev/null |
	sed -n '/^struct virtio_balloon {/,/^};/p')
for m in huge huge_pages huge_alloc_failures; do
	expect "BTF struct virtio_balloon has $m" grep -qE "[ *]$m;" <<<"$members"
done
finish
