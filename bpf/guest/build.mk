# Guest-side CO-RE BPF programs: compiled against the top-level vmlinux.h and
# relocated at load time onto the guest kernel's BTF (Linux 6.1).
GUEST_BPF   := $(patsubst bpf/guest/%.bpf.c,%,$(wildcard bpf/guest/*.bpf.c))
GUEST_SKELS := $(patsubst %,$(BUILD)/bpf/guest/%.skel.h,$(GUEST_BPF))

$(BUILD)/bpf/guest/%.bpf.o: bpf/guest/%.bpf.c vmlinux.h $(wildcard bpf/guest/*.h) | $(BUILD)/bpf/guest
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/guest/%.skel.h: $(BUILD)/bpf/guest/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/guest:
	$(Q)mkdir -p $@
