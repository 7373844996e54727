# Guest-side CO-RE BPF programs: compiled against the top-level vmlinux.h and
# relocated at load time onto the guest kernel's BTF (Linux 6.1).
GUEST_BPF   := $(patsubst bpf/guest/%.bpf.c,%,$(wildcard bpf/guest/*.bpf.c))
GUEST_SKELS := $(patsubst %,$(BUILD)/bpf/guest/%.skel.h,$(GUEST_BPF))
# (built by the top-level BPF and skeleton rules)
