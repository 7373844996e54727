# Host tool tests: unit (no root), BPF (load + BPF_PROG_TEST_RUN), integration and CLI.

TEST_BPF_SKELS := $(BUILD)/tests/hist_test.skel.h $(BUILD)/tests/footprint_test.skel.h

$(BUILD)/tests/hist_test.bpf.o $(BUILD)/tests/footprint_test.bpf.o: $(BUILD)/tests/%_test.bpf.o: tests/bpf/%_test.bpf.c bpf/%.bpf.c vmlinux.h $(wildcard bpf/*.h) | $(BUILD)/tests
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/tests/%.skel.h: $(BUILD)/tests/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# C test programs that use the host library
HOST_TESTS := unit_host bpf_probes fault_workload tinyvmm
$(patsubst %,$(BUILD)/tests/%,$(HOST_TESTS)): $(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libhatrace.a $(TEST_BPF_SKELS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -I$(BUILD)/tests -iquote tests $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

ALL_TARGETS += $(patsubst %,$(BUILD)/tests/%,$(HOST_TESTS))
UNIT_TESTS  += $(BUILD)/tests/unit_host tests/cli_errors.sh tests/cli_help.sh
BPF_TESTS   += $(BUILD)/tests/bpf_probes
VM_TESTS    += tests/vms_discovery.sh tests/inflate_late.sh tests/json_utf8.sh
E2E_TESTS   += tests/hist_counts.sh tests/footprint_steps.sh tests/output_paths.sh

# Tracer benchmark: `make bench` writes results/bench-tracer.json
$(BUILD)/tests/empty.bpf.o: tests/bpf/empty.bpf.c vmlinux.h | $(BUILD)/tests
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/tests/bench_empty: tests/bench_empty.c $(BUILD)/tests/empty.skel.h $(BUILD)/libhatrace.a | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -I$(BUILD)/tests $(CFLAGS) $< $(BUILD)/libhatrace.a -o $@ $(LDLIBS)

$(BUILD)/tests/bench_workload: tests/bench_workload.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

bench-tracer: $(HATRACE) $(BUILD)/tests/bench_empty $(BUILD)/tests/bench_workload
	$(Q)tests/bench_tracer.sh results/bench-tracer.json

.PHONY: bench-tracer
BENCHES += bench-tracer
