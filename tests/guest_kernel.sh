#!/usr/bin/env bash
# The guest kernel pipeline: a second run hits the cache, the cached kernel has
# the configured options and BTF for every function the guest agent traces.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

[ -e "$BUILD/guest/bzImage-baseline" ] ||
	skip_all "guest kernel" "$BUILD/guest/bzImage-baseline is not built (run make)"
# The guest functions the techniques of hatrace inflate trace (user/inflate/tech-*.c,
# the balloon's in technique.h).
funcs=$(grep -ohE '^\s*\{ "[a-z_0-9]+", "[a-z_0-9]+"' user/inflate/technique.h user/inflate/tech-*.c |
	sed -E 's/.*"([a-z_0-9]+)"$/\1/' | sort -u)
# 9 checks of the cache, config and BTF, and one per traced function
plan $((9 + $(wc -w <<<"$funcs")))
# A cache hit builds nothing (time is no measure: another build may hold the lock).
err=$(mktemp)
trap 'rm -f "$err"' EXIT
dir=$(kernel/build-kernel.sh baseline 2>"$err")
expect "a built flavour comes from the cache" test -f "$dir/bzImage" -a ! -s "$err"
expect "the cache holds vmlinux and config" test -s "$dir/vmlinux" -a -s "$dir/config"
expect "build/guest links to the cached vmlinux" test "$(readlink -f "$BUILD/guest/vmlinux-baseline")" = "$dir/vmlinux"
expect "build/guest/bzImage-baseline is the cached image" cmp -s "$dir/bzImage" "$BUILD/guest/bzImage-baseline"

missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' kernel/configs/base.config | grep -vxFf "$dir/config")
expect "every base.config option is in the built config" test -z "$missing"
for off in CONFIG_PAGE_POISONING CONFIG_INIT_ON_FREE_DEFAULT_ON; do
	expect "$off is off" bash -c "! grep -q '^$off=y' '$dir/config'"
done

btf=$(bpftool btf dump file "$dir/vmlinux" format raw 2>/dev/null)
expect "vmlinux carries BTF" test -n "$btf"
expect "the techniques' traced-function tables are readable" test "$(wc -w <<<"$funcs")" -ge 10
for f in $funcs; do
	expect "BTF has traced function $f" grep -q "FUNC '$f' " <<<"$btf"
done
finish
