# hatrace's QEMU: Debian's QEMU 7.2 source + qemu/patches/*.patch, x86_64-softmmu with
# USDT probes (trace backends log,dtrace). Built by qemu/build-qemu.sh outside the clone
# and cached in ~/.cache/hatrace/qemu/<hash>; $(BUILD)/qemu/qemu-system-x86_64 is a copy.
QEMU_BIN := $(BUILD)/qemu/qemu-system-x86_64

$(QEMU_BIN): qemu/build-qemu.sh $(wildcard qemu/patches/*.patch)
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

UNIT_TESTS += tests/qemu_probes.py
VM_TESTS   += tests/qemu_balloon_huge.py tests/qemu_usdt.py
