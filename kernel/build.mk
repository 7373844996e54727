# Guest kernels: one per flavour, built by kernel/build-kernel.sh and cached in
# ~/.cache/hatrace/kernel/<flavour>-<hash>/ (see that script). A flavour is
# configs/base.config + optional configs/<flavour>.config + patches/<flavour>/*.patch
# (or those its series file lists) + the repository files in patches/<flavour>/files.
# $(BUILD)/guest/bzImage-<flavour> (and vmlinux-/config- links) for each;
# $(BUILD)/guest/bzImage is the baseline. `make` builds baseline and hyperalloc;
# debug (hyperalloc with DEBUG_VM, PROVE_LOCKING, DEBUG_PAGEALLOC) is built by
# `make soak` or `make $(BUILD)/guest/bzImage-debug`.
KERNEL_FLAVOURS := baseline hyperalloc debug

kernel_files = $(shell awk 'NF {print $$1}' kernel/patches/$(1)/files 2>/dev/null)
# Patches a flavour's series file takes from other flavours' directories.
kernel_series = $(addprefix kernel/patches/,$(shell awk 'NF && $$1 !~ /^#/ {print $$1}' \
		kernel/patches/$(1)/series 2>/dev/null))

define kernel_flavour
$(BUILD)/guest/bzImage-$(1): kernel/build-kernel.sh $(wildcard kernel/configs/*.config) \
		$(wildcard kernel/patches/$(1)/*) $(call kernel_series,$(1)) $(call kernel_files,$(1))
	$$(call msg,KERNEL,$$@)
	$(Q)kernel/build-kernel.sh $(1) $(BUILD)/guest >/dev/null
endef
$(foreach f,$(KERNEL_FLAVOURS),$(eval $(call kernel_flavour,$(f))))

$(BUILD)/guest/bzImage: $(BUILD)/guest/bzImage-baseline
	$(Q)cp -f $< $@.tmp && mv -f $@.tmp $@

ALL_TARGETS += $(BUILD)/guest/bzImage-baseline $(BUILD)/guest/bzImage-hyperalloc $(BUILD)/guest/bzImage
UNIT_TESTS  += tests/guest_kernel.sh tests/kernel_balloon_huge.sh tests/kernel_hyperalloc.sh
VM_TESTS    += tests/guest_balloon_huge.py tests/guest_hyperalloc.py tests/guest_hyperalloc_trace.py \
	       tests/guest_hyperalloc_lifecycle.py \
	       tests/guest_boot_matrix.py tests/guest_stress.py

# In-guest allocator benchmark: HyperAlloc against buddy on the same image.
bench-guest-alloc: real-all
	$(Q)tests/bench_guest_alloc.py results/bench-guest-alloc.json

# make soak (soak-kernel): what does not fit make test. The whole boot matrix of the
# hyperalloc flavour (results/soak-kernel.json) and the guest stress on the debug flavour.
soak-kernel: real-all $(BUILD)/guest/bzImage-debug
	$(Q)rc=0; export BUILD=$(BUILD); \
	tests/guest_boot_matrix.py --full --json results/soak-kernel.json || rc=1; \
	tests/guest_stress.py --flavour debug || rc=1; \
	exit $$rc

.PHONY: bench-guest-alloc soak-kernel
SOAKS += soak-kernel
BENCHES += bench-guest-alloc
