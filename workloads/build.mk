# The guest image: static workloads, the guest agent and the initramfs.
#
# Contract with the host side (hatrace inflate; tests/guest_vm.py is a working example):
#   kernel     $(BUILD)/guest/bzImage: Linux 6.1 "baseline" (kernel/build.mk; other
#              flavours are bzImage-<flavour>); vmlinux-<flavour> links to its vmlinux.
#   initramfs  $(BUILD)/guest/initramfs.cpio.gz: busybox, /init, /bin/hatrace-guest,
#              /bin/hatrace and the workloads in /bin; no disk, root stays in the initramfs.
#   cmdline    $(BUILD)/guest/cmdline, i.e.
#              console=ttyS0 memhp_default_state=online_movable panic=-1 tsc=reliable
#              panic=-1 with -no-reboot: a guest panic ends QEMU. tsc=reliable: under TCG
#              the guest otherwise reads the emulated HPET, which made traced page faults
#              ~2x slower; the TSC follows the host's, but ping per phase for the offset.
#   QEMU       qemu-system-x86_64 -nodefaults -accel tcg,thread=multi -smp 2 -m 1G
#              -nographic -no-reboot -monitor none -serial file:console.log
#              -kernel bzImage -initrd initramfs.cpio.gz -append "$(cat cmdline)"
#              -device virtio-serial-pci -chardev socket,id=agent,path=S,server=on,wait=off
#              -device virtserialport,chardev=agent,name=org.hatrace.agent
#              -device virtio-balloon-pci,id=balloon0[,free-page-reporting=on]
#              virtio-mem: -m 1G,maxmem=2G -object memory-backend-ram,id=vmem0mem,size=1G
#              -device virtio-mem-pci,id=vmem0,memdev=vmem0mem,requested-size=0, resized
#              by qom-set /machine/peripheral/vmem0 requested-size (plugged memory comes
#              online as ZONE_MOVABLE, so it can be unplugged again).
#   agent      hatrace-guest finds the port in /sys/class/virtio-ports/*/name, opens
#              /dev/vportNpM and speaks user/harness/agent_proto.h. Its "ready" event goes out
#              once the host side of the socket is connected (its mono_ns is the agent's
#              start); a later reconnect works, without a second "ready". Requests are
#              served while workloads run: replies may come out of order.
#              trace_start probes: mm_page_alloc/mm_page_free (tracepoints, with "pages"),
#              on request the hyperalloc_* tracepoints (tp_btf, hyperalloc kernels only)
#              and the functions the host names in trace_start "functions" (each
#              technique's list is in user/inflate/tech-*.c), timed with fentry/fexit,
#              else kprobes; trace_read events carry count/sum_ns/first_ns/last_ns.
#              Nested probes say "within":P (sum only the outermost: balloon_size_work,
#              page_reporting_process, vmem_work, ...). Timing every __alloc_pages
#              call slowed page faults ~70% under TCG: no technique asks for it.
#              poweroff: the reply is sent, then the guest powers off and QEMU exits.
#   workloads  ht-touch --bytes N --threads T; ht-alloc-install --bytes N --threads T;
#              ht-integrity fill --bytes N [--threads T] | verify | stop (a daemon keeps
#              the memory between commands); ht-thp --units N [--rounds R] [--split]
#              (THPs in 2 MiB units, counted by the workload); ht-stress fork|tmpfs|
#              hugetlb|memhog (the kernel stress tests' modes, usage in ht-stress.c);
#              ht-hostile CATEGORY --ram-mib N (takes virtio-hyperalloc-pci from the kernel
#              and sends it bad requests, tests/guest_hyperalloc_hostile.py). Each prints one JSON result line, which
#              the agent returns as "result"; fields, including each pass's *_start_ns
#              on the guest clock, at the top of workloads/*.c.
GUEST_DIR      := $(BUILD)/guest
GUEST_WL       := ht-touch ht-alloc-install ht-integrity ht-stream ht-ftq ht-build ht-thp ht-stress ht-hostile
GUEST_WL_BINS  := $(patsubst %,$(GUEST_DIR)/bin/%,$(GUEST_WL))
GUEST_AGENT    := $(GUEST_DIR)/bin/hatrace-guest
GUEST_INITRAMFS := $(GUEST_DIR)/initramfs.cpio.gz
# no_timer_check: on a loaded host the emulated timer may not tick during the
# kernel's IO-APIC timer check, which then panics in early boot (seen at load 12).
GUEST_CMDLINE  := console=ttyS0 memhp_default_state=online_movable panic=-1 tsc=reliable no_timer_check

$(GUEST_DIR)/obj/%.o: workloads/%.c workloads/wl.h user/lib/common.h | $(GUEST_DIR)/obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) -Iworkloads $(CFLAGS) -c $< -o $@

# ht-hostile speaks the device's wire format and builds a zone's metadata.
$(GUEST_DIR)/obj/ht-hostile.o: CPPFLAGS += -iquote kernel/uapi -iquote kernel/llfree
$(GUEST_DIR)/obj/ht-hostile.o: kernel/uapi/virtio_hyperalloc.h kernel/llfree/llfree_layout.h

$(GUEST_DIR)/bin/ht-%: $(GUEST_DIR)/obj/ht-%.o $(GUEST_DIR)/obj/wl.o $(BUILD)/user/lib/common.o | $(GUEST_DIR)/bin
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/user/guest/hatrace-guest.o: $(GUEST_SKELS) $(wildcard bpf/guest/*.h)

$(GUEST_AGENT): $(BUILD)/user/guest/hatrace-guest.o $(BUILD)/user/lib/common.o | $(GUEST_DIR)/bin
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# hatrace itself goes in too: tests/guest_hatrace.py runs it on the 6.1 guest.
$(GUEST_INITRAMFS): workloads/mkinitramfs.sh workloads/init $(GUEST_AGENT) $(GUEST_WL_BINS) $(HATRACE)
	$(call msg,CPIO,$@)
	$(Q)workloads/mkinitramfs.sh $@ workloads/init $(GUEST_AGENT) $(GUEST_WL_BINS) $(HATRACE)

# Rewritten only when the text changes.
$(GUEST_DIR)/cmdline: FORCE | $(GUEST_DIR)
	$(Q)[ "$$(cat $@ 2>/dev/null)" = "$(GUEST_CMDLINE)" ] || echo "$(GUEST_CMDLINE)" > $@

$(GUEST_DIR) $(GUEST_DIR)/obj $(GUEST_DIR)/bin:
	$(Q)mkdir -p $@

.PHONY: FORCE
FORCE:
ALL_TARGETS += $(GUEST_INITRAMFS) $(GUEST_DIR)/cmdline
UNIT_TESTS  += tests/guest_workloads.py tests/guest_agent.py tests/guest_initramfs.sh
BPF_TESTS   += tests/guest_agent_bpf.py
VM_TESTS    += tests/guest_vm.py tests/guest_hatrace.py
