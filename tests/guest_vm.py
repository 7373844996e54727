#!/usr/bin/python3
"""VM test of the guest image: boots build/guest/bzImage + initramfs under TCG,
talks to hatrace-guest over virtio-serial and checks workloads, integrity across
balloon and virtio-mem resizes, and the guest BPF counters."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import (GuestVM, OPT_IN_FUNCTIONS, balloon_actual, require_guest, check,  # noqa: E402
                       finish, plan, run_workload as run, tech_functions)

MiB = 1 << 20


def events(agent):
    rep = agent.req("trace_read")
    return {e["name"]: e for e in rep.get("events", [])} if rep.get("ok") else {}


def wait_for(what, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    return None


def mem_total(agent):
    return agent.req("meminfo").get("MemTotal", 0)


def main():
    require_guest("guest vm")
    plan(43)

    test_panic_ends_qemu()
    GuestVM(mem_mib=1024, vmem_max_mib=512).run("guest vm", test)
    finish()


def test_panic_ends_qemu():
    """The cmdline's panic=-1 with -no-reboot: a guest that cannot start its init
    panics and QEMU exits instead of hanging."""
    vm = GuestVM(mem_mib=256, append="rdinit=/no-such-init init=/no-such-init")
    try:
        exited = vm.wait_exit(120)
        check(exited and "Kernel panic" in vm.console_tail(),
              "a guest kernel panic ends QEMU", vm.console_tail(5))
    finally:
        vm.destroy()


def test(vm):
    agent = vm.agent
    ready = agent.wait_event("ready", 120)
    print(f"# guest ready {time.monotonic() - vm.start:.1f} s after QEMU start, "
          f"kernel {ready.get('kernel')}")
    check(ready.get("kernel", "").startswith("6.1."), "guest runs Linux 6.1", str(ready))

    p1, p2 = agent.req("ping"), agent.req("ping")
    check(p1.get("ok") and 0 < p1.get("mono_ns", 0) < p2.get("mono_ns", 0),
          "ping returns an increasing guest CLOCK_MONOTONIC", f"{p1} {p2}")
    info = agent.req("meminfo")
    check(info.get("ok") and 900 * MiB < info.get("MemTotal", 0) <= 1024 * MiB and
          0 < info.get("MemFree", 0) <= info["MemTotal"], "meminfo is sane", str(info))

    default = [p["name"] for p in agent.req("trace_start").get("probes", [])]
    check(default == ["mm_page_alloc", "mm_page_free"],
          "trace_start without functions times none (the host names them)", str(default))
    started = agent.req("trace_start", functions=tech_functions() + OPT_IN_FUNCTIONS)
    probes = {p["name"]: p for p in started.get("probes", [])}
    for p in probes.values():
        print(f"# probe {p['name']:24} {p['mode']:10} {p.get('reason', '')}")
    check(probes.get("mm_page_alloc", {}).get("mode") == "tracepoint",
          "mm_page_alloc tracepoint attaches in the guest", str(probes.get("mm_page_alloc")))
    unattached = [n for n, p in probes.items() if not p["attached"]]
    check(len(probes) > 2 and not unattached, "every guest probe attaches",
          f"not attached: {unattached}")
    check(all(p["mode"] == "fentry" for p in probes.values() if p["mode"] != "tracepoint"),
          "function probes use fentry/fexit in the guest",
          str({n: p["mode"] for n, p in probes.items()}))
    # What a probed call costs: getpgid(0) with an fentry/fexit pair on it
    # against without, measured by the agent (hatrace inflate's estimate of
    # its own guest probe time per phase); not listed among the probes.
    cost = started.get("probe_cost", {})
    print(f"# probe cost: {cost}")
    check(cost.get("mode") == "fentry" and cost.get("calls", 0) >= 6000 and
          0 < cost.get("syscall_ns", 0) < cost.get("syscall_traced_ns", 0) and
          cost.get("call_ns", 0) > 0 and "probe_calibration" not in probes,
          "trace_start measures one probed call's cost (fentry on getpgid)", str(cost))

    touch = run(agent, ["ht-touch", "--bytes", "128M", "--threads", "2"])
    check(touch.get("pages") == 32768 and touch.get("touch_ns", 0) > 0 and
          touch.get("threads") == 2, "ht-touch reports 32768 pages and a time", str(touch))
    inst = run(agent, ["ht-alloc-install", "--bytes", "128M", "--threads", "2"])
    check(inst.get("pages") == 32768 and inst.get("install_ns", 0) > 0 and
          inst.get("touch2_ns", 0) > 0, "ht-alloc-install reports install and touch2", str(inst))
    print(f"# ht-touch 128M: {touch.get('touch_ns', 0) / 1e6:.0f} ms; install "
          f"{inst.get('install_ns', 0) / 1e6:.0f} ms, touch2 {inst.get('touch2_ns', 0) / 1e6:.0f} ms")

    ev = events(agent)
    alloc = ev.get("mm_page_alloc", {})
    check(alloc.get("count", 0) >= 2 * 32768 and alloc.get("first_ns", 0) <= alloc.get("last_ns", 0),
          "mm_page_alloc counts the workloads' pages", str(alloc))
    ap = ev.get("alloc_pages", {})
    check(ap.get("count", 0) > 0 and ap.get("sum_ns", 0) > 0, "__alloc_pages is timed", str(ap))
    mf = ev.get("mm_fault", {})
    check(mf.get("count", 0) >= 2 * 32768 and mf.get("sum_ns", 0) > 0,
          "handle_mm_fault times the workloads' page faults", str(mf))
    rep = wait_for("page reporting", lambda: events(agent).get("page_reporting_process", {})
                   .get("count"), 20)
    check(rep, "free page reporting runs after memory is freed",
          str(events(agent).get("page_reporting_process")))

    fill = run(agent, ["ht-integrity", "fill", "--bytes", "64M", "--threads", "2"])
    check(fill.get("pages") == 16384, "integrity fill holds 16384 pages", str(fill))

    # Balloon: shrink to 512 MiB, then grow back.
    vm.qmp.cmd("balloon", value=512 * MiB)
    shrunk = wait_for("inflate", lambda: balloon_actual(vm) <= 520 * MiB, 180)
    check(shrunk, "balloon inflates to 512 MiB", f"actual {balloon_actual(vm) // MiB} MiB")
    vm.qmp.cmd("balloon", value=1024 * MiB)
    grown = wait_for("deflate", lambda: balloon_actual(vm) >= 1024 * MiB, 180)
    check(grown, "balloon deflates to 1 GiB", f"actual {balloon_actual(vm) // MiB} MiB")
    ev = events(agent)
    for name in ("balloon_changed", "balloon_size_work", "balloon_page_enqueue", "balloon_leak",
                 "balloon_tell_host"):
        e = ev.get(name, {})
        check(e.get("count", 0) > 0 and (name == "balloon_page_enqueue" or e.get("sum_ns", 0) > 0),
              f"{name} reports events after a balloon change", str(e))
    enq = ev.get("balloon_page_enqueue", {}).get("count", 0)
    check(enq >= 512 * MiB // 4096, "balloon_page_enqueue counts every inflated page",
          f"{enq} < {512 * MiB // 4096}")
    vmstat = agent.req("run", argv=["awk", "$1 == \"balloon_inflate\" { n = $2 } END { exit !(n > 0) }",
                                    "/proc/vmstat"])
    check(vmstat.get("exit") == 0, "/proc/vmstat counts balloon_inflate events", str(vmstat))
    verify = run(agent, ["ht-integrity", "verify", "--threads", "2"])
    check(verify.get("bad_pages") == 0 and verify.get("pages") == 16384,
          "no page corrupted across balloon shrink/grow", str(verify))

    # virtio-mem: plug 256 MiB, then unplug it again.
    base = mem_total(agent)
    vm.qmp.cmd("qom-set", path="/machine/peripheral/vmem0", property="requested-size",
               value=256 * MiB)
    plugged = wait_for("plug", lambda: mem_total(agent) >= base + 256 * MiB, 120)
    check(plugged, "virtio-mem plugs 256 MiB", f"MemTotal {mem_total(agent) // MiB} MiB")
    over = run(agent, ["ht-touch", "--bytes", "768M", "--threads", "2"])
    check(over.get("pages") == 768 * MiB // 4096, "ht-touch over plugged memory", str(over))
    vm.qmp.cmd("qom-set", path="/machine/peripheral/vmem0", property="requested-size", value=0)
    unplugged = wait_for("unplug", lambda: mem_total(agent) <= base, 120)
    check(unplugged, "virtio-mem unplugs it again", f"MemTotal {mem_total(agent) // MiB} MiB")
    ev = events(agent)
    for name in ("vmem_config_changed", "vmem_work", "vmem_plug_add_mb", "vmem_send_plug",
                 "online_pages"):
        e = ev.get(name, {})
        check(e.get("count", 0) > 0, f"{name} reports events after a virtio-mem plug", str(e))
    unplug = sum(ev.get(n, {}).get("count", 0) for n in
                 ("vmem_unplug_sb_online", "vmem_send_unplug", "offline_pages"))
    check(unplug > 0, "virtio-mem unplug functions report events",
          str({n: ev.get(n) for n in ("vmem_unplug_sb_online", "vmem_send_unplug")}))

    # The kprobe fallback, forced: same counters from another attach mode.
    kp = agent.req("trace_start", tracepoints=[], kprobes=True, functions=[
        f for f in tech_functions() if f["name"] in ("balloon_size_work", "balloon_leak")])
    modes = {p["name"]: p["mode"] for p in kp.get("probes", []) if p["attached"]}
    check(modes == {"balloon_size_work": "kprobe", "balloon_leak": "kprobe"},
          "trace_start with kprobes attaches kprobes", str(kp)[:300])
    vm.qmp.cmd("balloon", value=768 * MiB)
    wait_for("inflate", lambda: balloon_actual(vm) <= 776 * MiB, 180)
    vm.qmp.cmd("balloon", value=1024 * MiB)
    wait_for("deflate", lambda: balloon_actual(vm) >= 1024 * MiB, 180)
    ev = events(agent)
    check(all(ev.get(n, {}).get("count", 0) > 0 and ev[n].get("sum_ns", 0) > 0 and
              ev[n].get("mode") == "kprobe" for n in modes),
          "kprobe-timed balloon functions report events", str(ev))

    stop = run(agent, ["ht-integrity", "stop"])
    check(stop.get("bad_pages") == 0, "no page corrupted across virtio-mem plug/unplug", str(stop))
    after = agent.req("run", argv=["ht-integrity", "verify"])
    check(after.get("exit") != 0, "the integrity daemon is gone after stop", str(after))

    check(agent.req("trace_stop").get("ok"), "trace_stop", "")
    check(agent.req("trace_read").get("ok") is False, "trace_read after trace_stop is an error", "")
    check(agent.req("poweroff").get("ok"), "poweroff is acknowledged", "")
    check(vm.wait_exit(30), "QEMU exits after poweroff", vm.console_tail(5))


if __name__ == "__main__":
    main()
