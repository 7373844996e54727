#!/usr/bin/env bash
# The hyperalloc kernel flavour: built from the current inputs with every patch
# its series lists (the baseline's balloon-huge patch among them), compiled from
# exactly the repository's kernel/llfree/ files and its one master copy of the
# virtio-hyperalloc wire format, kernel/uapi/virtio_hyperalloc.h (the image
# records their sha256), with the virtio-hyperalloc driver, with memory hotplug
# and virtio-mem (hot-added memory stays on buddy), and configured without what
# HyperAlloc cannot run with.
# tests/guest_hyperalloc.py boots it.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
BUILD=${BUILD:-build}
series=kernel/patches/hyperalloc/series
mapfile -t patches < <(awk 'NF && $1 !~ /^#/ { print $1 }' "$series")
mapfile -t core < <(awk 'NF { print $1 }' kernel/patches/hyperalloc/files)
off=(CMA MEMORY_FAILURE HIBERNATION DEFERRED_STRUCT_PAGE_INIT PAGE_POISONING
	SHUFFLE_PAGE_ALLOCATOR INIT_ON_FREE_DEFAULT_ON)
on=(HYPERALLOC VIRTIO_HYPERALLOC MEMORY_HOTPLUG MEMORY_HOTREMOVE VIRTIO_MEM)

[ -e "$BUILD/guest/bzImage-hyperalloc" ] ||
	skip_all "hyperalloc kernel" "$BUILD/guest/bzImage-hyperalloc is not built (run make)"
# 2 build checks, 1 per patch, 1 per copied file, 1 per option on and off, BTF functions
# and tracepoints
plan $((4 + ${#patches[@]} + ${#core[@]} + ${#on[@]} + ${#off[@]}))
PATCHES=("${patches[@]/#/kernel/patches/}")
kernel_build hyperalloc
dir=$kernel_dir

# "hyperalloc core: llfree.c=<sha256> llfree.h=<sha256> ...", from mm/hyperalloc/Makefile,
# and "hyperalloc uapi: virtio_hyperalloc.h=<sha256>", from drivers/virtio/Makefile
id=$(strings -a "$dir/vmlinux" | grep -E '^hyperalloc (core|uapi): ')
for f in "${core[@]}"; do
	want="${f##*/}=$(sha256sum "$f" | cut -c1-64)"
	expect "the kernel compiled $f as it is in the repository" grep -qw -- "$want" <<<"$id"
done

for o in "${on[@]}"; do
	expect "CONFIG_$o=y" grep -qx "CONFIG_$o=y" "$dir/config"
done
for o in "${off[@]}"; do
	expect "CONFIG_$o is off" bash -c "! grep -q '^CONFIG_$o=y' '$dir/config'"
done
btf=$(bpftool btf dump file "$dir/vmlinux" format raw 2>/dev/null)
btf_has_glue() { grep -q "FUNC 'hyperalloc_get' " <<<"$btf" && grep -q "FUNC 'hyperalloc_put' " <<<"$btf"; }
expect "BTF has hyperalloc_get and hyperalloc_put" btf_has_glue
# tp_btf programs (the guest agent's) attach to a tracepoint through its btf_trace_ typedef
btf_has_tracepoints() {
	local t
	for t in get put reclaimed_seen install_start install_end drain reconcile; do
		grep -q "TYPEDEF 'btf_trace_hyperalloc_$t' " <<<"$btf" || return 1
	done
}
expect "BTF has the 7 hyperalloc tracepoints for tp_btf" btf_has_tracepoints
finish
