# hatrace's QEMU: Debian's QEMU 7.2 source + qemu/patches/*.patch, x86_64-softmmu with
# USDT probes (trace backends log,dtrace). Built by qemu/build-qemu.sh outside the clone
# and cached in ~/.cache/hatrace/qemu/<hash>; $(BUILD)/qemu/qemu-system-x86_64 is a copy.
QEMU_BIN := $(BUILD)/qemu/qemu-system-x86_64

$(QEMU_BIN): qemu/build-qemu.sh $(wildcard qemu/patches/*.patch)
	$(call msg,QEMU,$@)
	$(Q)qemu/build-qemu.sh $(BUILD)/qemu >/dev/null

qemu: $(QEMU_BIN)

.PHONY: qemu
ALL_TARGETS += $(QEMU_BIN)
