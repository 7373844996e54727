#!/usr/bin/env bash
# The core compiles through every branch of llfree_platform.h: __KERNEL__
# (no libc headers, kernel-like warnings) and HATRACE_QEMU, each against the
# stand-in headers in tests/llfree/platform/.
cd "$(dirname "$0")/../.." || exit 1
out=${BUILD:-build}/llfree/platform
stubs=tests/llfree/platform
mkdir -p "$out"
kernel_flags=(-D__KERNEL__ -nostdinc -isystem "$(gcc -print-file-name=include)" -I"$stubs/kernel"
	-std=gnu11 -O2 -fno-strict-aliasing -Wall -Wextra -Wno-unused-parameter
	-Wdeclaration-after-statement -Wvla -Wframe-larger-than=2048 -Werror)
qemu_flags=(-DHATRACE_QEMU -I"$stubs/qemu" -std=gnu11 -O2 -Wall -Wextra -Werror)
echo 1..4
for branch in kernel qemu; do
	for src in llfree llfree_host; do
		name="$src.c compiles in the $branch branch of the platform header"
		flags="${branch}_flags[@]"
		if log=$(gcc "${!flags}" -c "kernel/llfree/$src.c" -o "$out/$src-$branch.o" 2>&1); then
			echo "ok - $name"
		else
			echo "not ok - $name: $(grep -m 1 "error" <<<"$log")"
		fi
	done
done
