#!/usr/bin/env bash
# Bounded libFuzzer run of virtio-hyperalloc's registration and validation
# (qemu/hyperalloc/hyperalloc-validate.c) on the allocator core; FUZZ_SECONDS
# (default 25) sets the length, the corpus stays in $BUILD/fuzz/corpus; the
# inputs in tests/fuzz/regress (each a crash found and fixed) run first.
cd "$(dirname "$0")/../.." || exit 1
FUZZ_BIN=${BUILD:-build}/fuzz/hyperalloc_fuzz FUZZ_NAME="hyperalloc validation fuzz" \
	FUZZ_SEEDS=tests/fuzz/regress \
	exec tests/llfree/fuzz-short.sh
