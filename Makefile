# hatrace top-level build.  `make V=1` shows the full commands.
#
# Sub-directories contribute rules through a build.mk of their own; each may
# append to UNIT_TESTS, BPF_TESTS, VM_TESTS, E2E_TESTS (commands run by
# tests/run, in that layer order), BENCHES (targets of `make bench`) and
# ALL_TARGETS (built by plain `make`).

SHELL      := /bin/bash
BUILD      ?= build
CC         ?= gcc
CLANG      ?= clang
BPFTOOL    ?= bpftool
ARCH       := x86
CFLAGS     ?= -O2 -g
CFLAGS     += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -D_GNU_SOURCE
CFLAGS     += $(SANITIZE)
CPPFLAGS   += -I$(BUILD)/bpf -Ibpf $(patsubst %,-iquote user/%,lib harness inflate cmd)
BPF_CFLAGS := -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_$(ARCH) -I. -Ibpf
# Static so that the same binary can be copied into a guest initramfs.
STATIC     ?= -static
LDLIBS     := $(STATIC) -Wl,--start-group -ljansson -lbpf -lelf -lz -lzstd -lm -lpthread -Wl,--end-group

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

HOST_BPF   := $(patsubst bpf/%.bpf.c,%,$(wildcard bpf/*.bpf.c))
BPF_OBJS   := $(patsubst %,$(BUILD)/bpf/%.bpf.o,$(HOST_BPF))
SKELS      := $(patsubst %,$(BUILD)/bpf/%.skel.h,$(HOST_BPF))
# user/lib: the host library; user/harness: QEMU, QMP, JSON lines, the agent
# client; user/inflate: the benchmark; user/cmd: one file per subcommand;
# user/guest: the guest agent (built in workloads/build.mk).
LIB_SRCS   := $(filter-out user/cmd/hatrace.c,$(wildcard $(patsubst %,user/%/*.c,lib harness inflate cmd)))
LIB_OBJS   := $(patsubst user/%.c,$(BUILD)/user/%.o,$(LIB_SRCS))
HATRACE    := $(BUILD)/hatrace

ALL_TARGETS := $(HATRACE)
UNIT_TESTS  :=
BPF_TESTS   :=
VM_TESTS    :=
E2E_TESTS   :=
BENCHES     :=

.PHONY: all deps test bench run fuzz vmlinux clean tsan test-tsan reproduce soak soak-cycles soak-merge
# Keep generated skeletons and BPF objects, so a second `make` has nothing to do;
# a target whose recipe fails is deleted rather than left half-written.
.SECONDARY:
.DELETE_ON_ERROR:
all: real-all

include $(sort $(wildcard */build.mk */*/build.mk))

real-all: $(ALL_TARGETS)

# One rule for every BPF object (host bpf/, guest bpf/guest/, tests/bpf/) and
# one for its skeleton; the headers each object uses come from -MMD.
$(BUILD)/%.bpf.o: %.bpf.c vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@
-include $(wildcard $(BUILD)/bpf/*.bpf.d $(BUILD)/bpf/guest/*.bpf.d $(BUILD)/tests/bpf/*.bpf.d)

# Host objects: the headers (skeletons included) each one uses come from the
# compiler's -MMD list; the skeletons are generated before the first compile.
$(BUILD)/user/%.o: user/%.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
-include $(LIB_OBJS:.o=.d) $(BUILD)/user/cmd/hatrace.d $(BUILD)/user/guest/hatrace-guest.d

$(BUILD)/libhatrace.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(HATRACE): $(BUILD)/user/cmd/hatrace.o $(BUILD)/libhatrace.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bpf $(BUILD)/user $(BUILD)/tests:
	$(Q)mkdir -p $@

# Every Debian package hatrace needs to build, test and benchmark.
DEBIAN_PKGS := make gcc clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev libzstd-dev \
	libjansson-dev pkg-config bpftrace qemu-system-x86 linux-source-6.1 flex bison bc \
	libssl-dev dwarves busybox-static cpio xz-utils python3-matplotlib systemtap-sdt-dev \
	libclang-rt-14-dev kmod jq util-linux groff-base patch python3 \
	dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev chromium

# Installs what is missing (apt-get, idempotent), enables deb-src (QEMU's source,
# for the HyperAlloc QEMU build) and mounts tracefs.
deps:
	$(Q)if ! grep -qs '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources && \
		! grep -qs '^deb-src' /etc/apt/sources.list; then \
		echo "enabling deb-src"; \
		sed -i 's/^Types: deb$$/Types: deb deb-src/' /etc/apt/sources.list.d/*.sources 2>/dev/null; \
		[ ! -f /etc/apt/sources.list ] || sed -i 's/^deb \(.*\)/&\ndeb-src \1/' /etc/apt/sources.list; \
		apt-get update -qq; \
	fi
	$(Q)missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEBIAN_PKGS) 2>/dev/null | \
		awk '$$NF=="installed"{print $$1}' | sort | comm -13 - <(tr ' ' '\n' <<<"$(DEBIAN_PKGS)" | sort)); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(Q)mountpoint -q /sys/kernel/tracing || [ "$$(id -u)" != 0 ] || mount -t tracefs tracefs /sys/kernel/tracing

# Like `make run`, works as the first command on a fresh machine. STRICT=1 makes a
# skip that no known host limit explains (tests/known-skips) a failure.
test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) STRICT=$(STRICT) tests/run --unit "$(UNIT_TESTS)" --bpf "$(BPF_TESTS)" --vm "$(VM_TESTS)" --e2e "$(E2E_TESTS)"

bench: real-all $(BENCHES)

# ThreadSanitizer build of the host tool, build-tsan/hatrace (linked dynamically:
# TSan cannot be static), with the guest images and the QEMU of $(BUILD).
# `make test-tsan` runs the inflate test with it; a TSan report fails the run.
TSAN_BUILD := build-tsan
tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) STATIC= SANITIZE=-fsanitize=thread \
		$(TSAN_BUILD)/hatrace
	$(Q)ln -sfn $(abspath $(BUILD))/guest $(TSAN_BUILD)/guest
	$(Q)ln -sfn $(abspath $(BUILD))/qemu $(TSAN_BUILD)/qemu

test-tsan: real-all tsan
	$(Q)TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" HATRACE=$(TSAN_BUILD)/hatrace \
		tests/vm_inflate.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(HATRACE) inflate -t all --untouched -o results/inflate

# The soak: 1000 shrink/grow cycles per technique the host resizes, with the
# integrity buffer held (results/soak.json); make test runs a 20-cycle sample.
# One VM per technique, all at once: they wait on the guest and QMP more than
# they compute, so on 2 cores the five take about as long as the slowest alone.
# A finished technique keeps results/soak/TECH-CYCLES-KEY.json and a rerun resumes
# the others (rm -r results/soak to start over); logs in results/soak/TECH.log.
# KEY hashes what the soak checks, QEMU and the guest kernels: a rebuilt one
# starts over. results/soak.json names the key and each technique's revision.
# The key is taken after the build and handed to a sub-make, so no other make
# run reads those files.
SOAK_TECHS := virtio-balloon virtio-balloon-huge virtio-mem hyperalloc hyperalloc-fault
SOAK_CYCLES ?= 1000
soak-cycles: real-all
	$(Q)$(MAKE) --no-print-directory soak-merge \
		SOAK_KEY=$$(cat $(BUILD)/qemu/qemu-system-x86_64 $(BUILD)/guest/bzImage-* | sha256sum | cut -c1-12)
ifdef SOAK_KEY
SOAK_RESULTS := $(SOAK_TECHS:%=results/soak/%-$(SOAK_CYCLES)-$(SOAK_KEY).json)
results/soak/%-$(SOAK_CYCLES)-$(SOAK_KEY).json:
	$(Q)mkdir -p results/soak
	$(Q)echo "soak: $* started $$(date +%T), $(SOAK_CYCLES) cycles (results/soak/$*.log)"
	$(Q)$(HATRACE) inflate --cycles $(SOAK_CYCLES) -t $* -m 1G -s 512M -n 1 \
		-o results/soak/$* >results/soak/$*.log 2>&1 || \
		{ echo "soak: $* FAILED $$(date +%T):" >&2; tail -n 5 results/soak/$*.log >&2; exit 1; }
	$(Q)jq --arg rev "$$(jq -r .hatrace_revision results/soak/$*/meta.json)" \
		'.techniques[].hatrace_revision = $$rev' results/soak/$*/soak.json > $@.tmp && mv $@.tmp $@
	$(Q)echo "soak: $* done $$(date +%T): $$(jq -c '.techniques[]' $@)"
soak-merge:
	$(Q)$(MAKE) --no-print-directory -j$(words $(SOAK_TECHS)) -k $(SOAK_RESULTS)
	$(Q)jq -s --arg key $(SOAK_KEY) \
		'reduce .[] as $$s (.[0] | .techniques = {}; .techniques += $$s.techniques) | .inputs_key = $$key' \
		$(SOAK_RESULTS) > results/soak.json
	$(Q)jq -c '.techniques' results/soak.json
endif
SOAKS += soak-cycles
soak: $(SOAKS)

# Every benchmark, resumable (rerun to continue), into results/reproduce-DATE with
# report.html; REPRODUCE_ARGS=--full for the paper's scale on a KVM host.
reproduce: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(HATRACE) reproduce $(REPRODUCE_ARGS)

# Regenerates the committed CO-RE types from this host's BTF (needs KVM built in).
vmlinux:
	$(Q)grep -q '^struct kvm_memslots {' <($(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c) || \
		{ echo "this kernel's BTF has no KVM types; run on a host with CONFIG_KVM=y" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h

clean:
	$(Q)rm -rf $(BUILD) $(TSAN_BUILD)
