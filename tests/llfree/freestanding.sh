#!/usr/bin/env bash
# The allocator core is freestanding: built with -ffreestanding, its objects
# may call only what llfree_platform.h maps for user space (printf, assert)
# and compiler helpers.
cd "$(dirname "$0")/../.." || exit 1
build=${BUILD:-build}
allowed='^(printf|__assert_fail|__popcountdi2)$'
echo 1..2
for obj in "$build"/llfree/llfree.o "$build"/llfree/llfree_host.o; do
	name="$(basename "$obj" .o) calls nothing outside the platform header"
	if [ ! -f "$obj" ]; then
		echo "not ok - $name: $obj is not built"
		continue
	fi
	extra=$(nm -u "$obj" | awk '{print $2}' | grep -Ev "$allowed" | tr '\n' ' ')
	if [ -z "$extra" ]; then echo "ok - $name"; else echo "not ok - $name: calls $extra"; fi
done
