# hatrace's QEMU: Debian's QEMU 7.2 source + qemu/patches/*.patch + the files named in
# qemu/files, x86_64-softmmu with USDT probes (trace backends log,dtrace). Built by
# qemu/build-qemu.sh outside the clone and cached in ~/.cache/hatrace/qemu/<hash>;
# $(BUILD)/qemu/qemu-system-x86_64 is a copy.
QEMU_BIN := $(BUILD)/qemu/qemu-system-x86_64
QEMU_COPIES := $(shell sed -n 's/^\([^\# ][^ ]*\) .*/\1/p' qemu/files)

$(QEMU_BIN): qemu/build-qemu.sh $(wildcard qemu/patches/*.patch) qemu/files $(QEMU_COPIES)
	$(call msg,QEMU,$@)
	$(Q)qemu/build-qemu.sh $(BUILD)/qemu >/dev/null

qemu: $(QEMU_BIN)

$(BUILD)/tests/qemu_usdt_attach: tests/qemu_usdt_attach.c $(BUILD)/libhatrace.a | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

.PHONY: qemu
ALL_TARGETS += $(QEMU_BIN) $(BUILD)/tests/qemu_usdt_attach

# <bpf/usdt.bpf.h> includes <linux/errno.h>, whose <asm/errno.h> lives in the
# multiarch directory that -target bpf does not search.
$(BUILD)/bpf/qemu_usdt.bpf.o: BPF_CFLAGS += -idirafter /usr/include/$(shell $(CC) -dumpmachine)

# The device's registration and validation (qemu/hyperalloc/, the file QEMU compiles)
# on the allocator core under libFuzzer.  The harness (its invariant checks) and the
# guest side of the core, which only prepares metadata, are not instrumented for
# coverage: the fuzzer steers by the code under test alone.
HA_FUZZ       := $(BUILD)/fuzz/hyperalloc_fuzz
HA_FUZZ_SRCS  := qemu/hyperalloc/hyperalloc-validate.c kernel/llfree/llfree_host.c
HA_FUZZ_OBJS  := $(BUILD)/fuzz/llfree-guest.o $(BUILD)/fuzz/harness.o
HA_FUZZ_FLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
		 -fno-sanitize-recover=all -Ikernel/llfree -Iqemu/hyperalloc -Itests/fuzz/include
HA_FUZZ_HDRS  := $(wildcard kernel/llfree/*.h qemu/hyperalloc/*.h) kernel/uapi/virtio_hyperalloc.h

$(BUILD)/fuzz:
	$(Q)mkdir -p $@

$(BUILD)/fuzz/llfree-guest.o: kernel/llfree/llfree.c $(HA_FUZZ_HDRS) | $(BUILD)/fuzz
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(HA_FUZZ_FLAGS) -fsanitize=address,undefined -c $< -o $@

$(BUILD)/fuzz/harness.o: tests/fuzz/hyperalloc_fuzz.c $(HA_FUZZ_HDRS) | $(BUILD)/fuzz
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(HA_FUZZ_FLAGS) -fsanitize=address,undefined -c $< -o $@

$(HA_FUZZ): $(HA_FUZZ_SRCS) $(HA_FUZZ_OBJS) $(HA_FUZZ_HDRS) | $(BUILD)/fuzz
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(HA_FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined $(HA_FUZZ_SRCS) \
		$(HA_FUZZ_OBJS) -o $@

# `make fuzz` runs this fuzzer too, for HA_FUZZ_SECONDS or HA_FUZZ_RUNS executions,
# whichever ends first (-1: no bound); the corpus stays in build/. Inputs are at
# most HA_FUZZ_MAX_LEN bytes (about 150 operations): in a 25-minute run edge
# coverage stopped growing (292) before inputs passed 1.4 KB, while their growth
# to libFuzzer's 4 KiB cut the rate from about 4,900 to 1,400 executions/s.
HA_FUZZ_SECONDS ?= 300
HA_FUZZ_RUNS    ?= -1
HA_FUZZ_MAX_LEN ?= 1024
fuzz-hyperalloc: $(HA_FUZZ)
	$(Q)FUZZ_SECONDS=$(HA_FUZZ_SECONDS) FUZZ_RUNS=$(HA_FUZZ_RUNS) FUZZ_MAX_LEN=$(HA_FUZZ_MAX_LEN) \
		tests/fuzz/hyperalloc-short.sh

fuzz: fuzz-hyperalloc

.PHONY: fuzz-hyperalloc
ALL_TARGETS += $(HA_FUZZ)

UNIT_TESTS += tests/qemu_probes.py tests/fuzz/hyperalloc-short.sh tests/qemu_copies.sh
VM_TESTS   += tests/qemu_balloon_huge.py tests/qemu_usdt.py tests/qemu_hyperalloc.py \
	      tests/guest_hyperalloc_hostile.py
