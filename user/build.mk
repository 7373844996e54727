# inflate: QEMU harness, QMP and agent clients, statistics; their tests.

GIT_REV := $(shell git -C $(CURDIR) describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/user/inflate/results.o: CPPFLAGS += -DHATRACE_GIT_REV='"$(GIT_REV)"'
# Rebuild results.o (meta.json's revision) when the revision changes.
$(BUILD)/user/inflate/results.o: $(BUILD)/user/git-rev
$(BUILD)/user/git-rev: FORCE | $(BUILD)/user
	$(Q)echo '$(GIT_REV)' | cmp -s - $@ || echo '$(GIT_REV)' > $@
.PHONY: FORCE
FORCE:

$(BUILD)/tests/inflate_stats: tests/inflate_stats.c user/lib/stats.c user/lib/stats.h tests/check.h | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) -iquote user/lib -iquote tests $(CFLAGS) $< user/lib/stats.c -o $@ -lm

ALL_TARGETS += $(BUILD)/tests/inflate_stats
UNIT_TESTS  += $(BUILD)/tests/inflate_stats tests/inflate_kernel.sh

$(BUILD)/tests/vm_harness: tests/vm_harness.c $(BUILD)/libhatrace.a tests/check.h | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -iquote tests $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

ALL_TARGETS += $(BUILD)/tests/vm_harness
VM_TESTS    += $(BUILD)/tests/vm_harness

VM_TESTS    += tests/vm_inflate.sh tests/vm_hyperalloc_inflate.sh tests/vm_interference.sh \
	       tests/vm_footprint_bench.sh tests/vm_multivm.sh tests/vm_soak_sample.sh
E2E_TESTS   += tests/inflate_errors.sh tests/reproduce_e2e.sh

# Hostile peers: the JSON-lines transport alone, then QMP, the agent and the
# harness against fake peers (tests/hostile_peers.py drives peer_client).
PEER_TESTS := jsonl_transport peer_client deficit rss_series
$(patsubst %,$(BUILD)/tests/%,$(PEER_TESTS)): $(BUILD)/tests/%: tests/%.c $(BUILD)/libhatrace.a tests/check.h | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -iquote tests $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

ALL_TARGETS += $(patsubst %,$(BUILD)/tests/%,$(PEER_TESTS))
UNIT_TESTS  += $(BUILD)/tests/jsonl_transport tests/hostile_peers.py $(BUILD)/tests/deficit $(BUILD)/tests/rss_series

# Tracing overhead of inflate itself: `make bench` writes results/bench-inflate.json
bench-inflate: real-all
	$(Q)tests/bench_inflate.sh results/bench-inflate.json

.PHONY: bench-inflate
BENCHES += bench-inflate
