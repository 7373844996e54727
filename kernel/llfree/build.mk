# HyperAlloc allocator core (kernel/llfree) and its user-space proof (tests/llfree).
# The same two sources build into the kernel, QEMU and these programs.

LLFREE_SRCS   := kernel/llfree/llfree.c kernel/llfree/llfree_host.c
LLFREE_HDRS   := $(wildcard kernel/llfree/*.h tests/llfree/*.h) tests/check.h
LLFREE_OUT    := $(BUILD)/llfree
# The core is freestanding C11; tests add threads, sanitizers and libFuzzer.
LLFREE_STRICT := -std=c11 -ffreestanding -Wpedantic -Wall -Wextra -Werror -O2 -g
LLFREE_TFLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Werror -g \
		 -Ikernel/llfree -Itests -Itests/llfree
LLFREE_SAN    := -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
LLFREE_OBJS   := $(patsubst kernel/llfree/%.c,$(LLFREE_OUT)/%.o,$(LLFREE_SRCS))
LLFREE_BINS   := $(addprefix $(LLFREE_OUT)/,unit stress stress-tsan stress-asan fuzz bench)

ALL_TARGETS += $(LLFREE_BINS)
UNIT_TESTS  += $(LLFREE_OUT)/unit $(LLFREE_OUT)/stress $(LLFREE_OUT)/stress-tsan \
	       $(LLFREE_OUT)/stress-asan tests/llfree/freestanding.sh tests/llfree/platform.sh \
	       tests/llfree/fuzz-short.sh
BENCHES     += bench-alloc

$(LLFREE_OUT):
	$(Q)mkdir -p $@

$(LLFREE_OUT)/%.o: kernel/llfree/%.c $(wildcard kernel/llfree/*.h) | $(LLFREE_OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(LLFREE_STRICT) -c $< -o $@

$(LLFREE_OUT)/unit: tests/llfree/unit.c $(LLFREE_SRCS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(LLFREE_TFLAGS) $(LLFREE_SAN) -fsanitize=address,undefined \
		tests/llfree/unit.c $(LLFREE_SRCS) -o $@ -lpthread

$(LLFREE_OUT)/stress: tests/llfree/stress.c $(LLFREE_OBJS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LLFREE_TFLAGS) -O2 tests/llfree/stress.c $(LLFREE_OBJS) -o $@ -lpthread

$(LLFREE_OUT)/stress-tsan: tests/llfree/stress.c $(LLFREE_SRCS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(LLFREE_TFLAGS) $(LLFREE_SAN) -fsanitize=thread \
		tests/llfree/stress.c $(LLFREE_SRCS) -o $@ -lpthread

$(LLFREE_OUT)/stress-asan: tests/llfree/stress.c $(LLFREE_SRCS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(LLFREE_TFLAGS) $(LLFREE_SAN) -fsanitize=address,undefined \
		tests/llfree/stress.c $(LLFREE_SRCS) -o $@ -lpthread

$(LLFREE_OUT)/fuzz: tests/llfree/fuzz.c $(LLFREE_SRCS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(LLFREE_TFLAGS) $(LLFREE_SAN) -fsanitize=fuzzer,address,undefined \
		tests/llfree/fuzz.c $(LLFREE_SRCS) -o $@

$(LLFREE_OUT)/bench: tests/llfree/bench.c $(LLFREE_OBJS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LLFREE_TFLAGS) -O2 tests/llfree/bench.c $(LLFREE_OBJS) -o $@ -ljansson -lpthread

.PHONY: bench-alloc
bench-alloc: $(LLFREE_OUT)/bench
	$(Q)mkdir -p results
	$(Q)$(LLFREE_OUT)/bench results/bench-alloc.json

$(LLFREE_OUT)/fuzz-cov: tests/llfree/fuzz.c $(LLFREE_SRCS) $(LLFREE_HDRS) | $(LLFREE_OUT)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(LLFREE_TFLAGS) -O1 -fsanitize=fuzzer -fprofile-instr-generate \
		-fcoverage-mapping tests/llfree/fuzz.c $(LLFREE_SRCS) -o $@

# Longer fuzzing run; the corpus stays in build/ between runs.  Then the line
# coverage of the core that the corpus reaches.
LLFREE_FUZZ_SECONDS ?= 300
fuzz: $(LLFREE_OUT)/fuzz $(LLFREE_OUT)/fuzz-cov
	$(Q)FUZZ_SECONDS=$(LLFREE_FUZZ_SECONDS) FUZZ_CORPUS=$(LLFREE_OUT)/corpus tests/llfree/fuzz-short.sh
	$(Q)LLVM_PROFILE_FILE=$(LLFREE_OUT)/fuzz.profraw $(LLFREE_OUT)/fuzz-cov -runs=0 \
		$(LLFREE_OUT)/corpus >/dev/null 2>&1
	$(Q)llvm-profdata merge -o $(LLFREE_OUT)/fuzz.profdata $(LLFREE_OUT)/fuzz.profraw
	$(Q)llvm-cov report $(LLFREE_OUT)/fuzz-cov -instr-profile=$(LLFREE_OUT)/fuzz.profdata \
		$(LLFREE_SRCS)
