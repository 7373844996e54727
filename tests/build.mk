# Host tool tests: unit (no root), BPF (load + BPF_PROG_TEST_RUN), integration and CLI.

# Test BPF objects and skeletons come from the top-level BPF rules.
TEST_BPF_SKELS := $(BUILD)/tests/bpf/hist_test.skel.h $(BUILD)/tests/bpf/footprint_test.skel.h

# C test programs that use the host library
HOST_TESTS := unit_host inflate_overhead bpf_probes fault_workload tinyvmm
$(patsubst %,$(BUILD)/tests/%,$(HOST_TESTS)): $(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libhatrace.a $(TEST_BPF_SKELS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -I$(BUILD)/tests/bpf -iquote tests $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

ALL_TARGETS += $(patsubst %,$(BUILD)/tests/%,$(HOST_TESTS))
UNIT_TESTS  += $(BUILD)/tests/unit_host $(BUILD)/tests/inflate_overhead tests/cli_errors.sh tests/cli_help.sh tests/cli_docs.py
BPF_TESTS   += $(BUILD)/tests/bpf_probes
VM_TESTS    += tests/vms_discovery.sh tests/inflate_late.sh tests/json_utf8.sh
E2E_TESTS   += tests/hist_counts.sh tests/footprint_steps.sh tests/output_paths.sh

# Tracer benchmark: `make bench` writes results/bench-tracer.json
$(BUILD)/tests/bench_empty: tests/bench_empty.c $(BUILD)/tests/bpf/empty.skel.h $(BUILD)/libhatrace.a | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -I$(BUILD)/tests/bpf $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

$(BUILD)/tests/bench_workload: tests/bench_workload.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

bench-tracer: $(HATRACE) $(BUILD)/tests/bench_empty $(BUILD)/tests/bench_workload
	$(Q)tests/bench_tracer.sh results/bench-tracer.json

.PHONY: bench-tracer
BENCHES += bench-tracer
