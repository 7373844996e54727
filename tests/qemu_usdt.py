#!/usr/bin/python3
"""On a guest booted on hatrace's QEMU build (qemu/), libbpf USDT programs
(user/lib/qemu_usdt.c) attached to the running QEMU see exactly one QEMU-internal
start/end pair per QMP resize, balloon and virtio-mem alike, with the virtqueue
requests in between (virtio-mem's timed to their responses), QEMU's discards
(timed by syscall tracepoints), and free page reports; `hatrace hist` shows the
USDT histograms. On a hyperalloc guest with virtio-hyperalloc-pci, N hyperalloc-resize
calls give exactly N resize start/end pairs with the device's discards within the
shrinks, and the guest's installs afterwards are counted and timed, alike by the
programs and by `hatrace hist`. Needs root (BPF, uprobes)."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import (BUILD, GuestVM, check, die_with_parent, finish,  # noqa: E402
                       plan, require_guest, skip_all)

QEMU = os.path.join(BUILD, "qemu", "qemu-system-x86_64")
ATTACH = os.path.join(BUILD, "tests", "qemu_usdt_attach")
HATRACE = os.path.join(BUILD, "hatrace")
MiB = 1 << 20
BALLOON_TARGETS_MIB = [768, 896, 1024]  # guest RAM after each QMP balloon
VMEM_SIZES_MIB = [256, 128, 0]         # virtio-mem requested-size, from 0
HA_TARGETS_MIB = [768, 512, 640, 1024]  # hyperalloc-resize, from 1024 MiB
HA_TOUCH = "640M"  # more than the guest's never-reclaimed free memory: installs


class Tracer:
    """tests/qemu_usdt_attach on a running QEMU; its JSON lines go to a file."""

    def __init__(self, pid, path, *opts):
        self.path = path
        self.proc = subprocess.Popen([ATTACH, *opts, str(pid)], stdout=open(path, "w"),
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        end = time.monotonic() + 30
        while not self.lines() and time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.1)
        if not any(m.get("attached") for m in self.lines()):
            raise RuntimeError(f"attach failed: {open(path).read()[-500:]}")

    def lines(self):
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.startswith("{")]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        return self.lines()


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_attach(vm):
    ready = vm.agent.wait_event("ready", 120)
    check(ready.get("kernel", "").startswith("6.1."), "the guest boots on our QEMU", str(ready))
    tracer = Tracer(vm.proc.pid, os.path.join(vm.dir, "usdt.jsonl"), "--records")
    qmp_times = []
    for target in BALLOON_TARGETS_MIB:
        t0 = time.monotonic()
        vm.qmp.cmd("balloon", value=target * MiB)
        reached = wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == target * MiB, 180)
        qmp_times.append(time.monotonic() - t0)
        check(reached, f"QMP balloon to {target} MiB is reached",
              str(vm.qmp.cmd("query-balloon")))
    vmem = "/machine/peripheral/vmem0"
    for size in VMEM_SIZES_MIB:
        t0 = time.monotonic()
        vm.qmp.cmd("qom-set", path=vmem, property="requested-size", value=size * MiB)
        reached = wait_for(lambda: vm.qmp.cmd("qom-get", path=vmem, property="size") ==
                           size * MiB, 120)
        qmp_times.append(time.monotonic() - t0)
        check(reached, f"virtio-mem requested-size {size} MiB is reached",
              str(vm.qmp.cmd("qom-get", path=vmem, property="size")))
    # Memory freed in the guest is reported (page reporting waits 2 s).
    vm.agent.req("run", argv=["ht-touch", "--bytes", "128M"], timeout_s=120)
    wait_for(lambda: any(m.get("record") == "virtio_balloon_free_page_report"
                         for m in tracer.lines()), 30)
    out = tracer.stop()

    phases = [m for m in out if "phase" in m]
    totals = next((m for m in out if "totals" in m), {})
    counts = {k: v["count"] for k, v in totals.get("totals", {}).items()}
    balloon = [p for p in phases if p["phase"] == "virtio-balloon"]
    want = [(1024 - t) * MiB for t in BALLOON_TARGETS_MIB]
    check(len(balloon) == len(want) and all(p["reached"] for p in balloon) and
          [p["target_bytes"] for p in balloon] == want and
          all(0 < p["start_ns"] < p["end_ns"] for p in balloon),
          f"exactly {len(want)} balloon start/end pairs for {len(want)} QMP balloon commands",
          str(balloon)[:600])
    check(counts.get("virtio_balloon_to_target") == len(want) and
          counts.get("balloon_event") == len(want),
          "one balloon_event and one virtio_balloon_to_target per QMP balloon", str(counts))
    mem = [p for p in phases if p["phase"] == "virtio-mem"]
    want = [s * MiB for s in VMEM_SIZES_MIB]
    check(len(mem) == len(want) and all(p["reached"] for p in mem) and
          [p["target_bytes"] for p in mem] == want and
          all(0 < p["start_ns"] < p["end_ns"] for p in mem),
          f"exactly {len(want)} virtio-mem start/end pairs for {len(want)} qom-set resizes",
          str(mem)[:600])
    check(counts.get("virtio_mem_set_requested_size") == len(want),
          "one virtio_mem_set_requested_size per qom-set", str(counts))
    if len(mem) == len(want):
        # Requests between start and end: blocks (2 MiB by default) add up to the change.
        plugged = [p["work"].get("virtio_mem_plug_request", {}).get("sum", 0) * 2 * MiB
                   for p in mem]
        unplugged = [p["work"].get("virtio_mem_unplug_request", {}).get("sum", 0) * 2 * MiB
                     for p in mem]
        check(plugged[0] == 256 * MiB and unplugged[1] == 128 * MiB and unplugged[2] == 128 * MiB,
              "the virtio-mem requests within each phase add up to its size change",
              f"plugged {plugged}, unplugged {unplugged}")
        responses = [p["work"].get("virtio_mem_send_response", {}).get("count", 0) for p in mem]
        requests = [p["work"].get("virtio_mem_plug_request", {}).get("count", 0) +
                    p["work"].get("virtio_mem_unplug_request", {}).get("count", 0) for p in mem]
        # The size change that ends a phase comes before the response to its request.
        all_requests = counts.get("virtio_mem_plug_request", 0) + \
            counts.get("virtio_mem_unplug_request", 0)
        check(all(requests) and responses == [r - 1 for r in requests] and
              counts.get("virtio_mem_send_response") == all_requests,
              "one virtio_mem_send_response per request, the last after the phase's end",
              f"responses {responses}, requests {requests}, totals {counts}")
        timed = [p["work"].get("virtio_mem_request", {}) for p in mem]
        check([t.get("count", 0) for t in timed] == responses and
              all(t["ns"] > 0 for t in timed if t.get("count")),
              "each answered virtio-mem request is timed to its response",
              f"timed {timed}, responses {responses}")
    reports = [m for m in out if m.get("record") == "virtio_balloon_free_page_report"]
    check(reports and all(r["args"][0] > 0 and r["args"][1] > 0 for r in reports),
          "free page reports are recorded with their ranges and bytes", str(reports[:3]))
    check(totals.get("drops") == 0, "no USDT record dropped", str(totals.get("drops")))
    for p, qmp_s in zip(balloon + mem, qmp_times):
        print(f"# {p['phase']:14} to {p['target_bytes'] // MiB:4} MiB: in QEMU "
              f"{(p['end_ns'] - p['start_ns']) / 1e6:7.1f} ms, seen from QMP {qmp_s * 1e3:7.1f} ms")
    test_per_page(vm)


def test_per_page(vm):
    """--per-page also counts each balloon page and each discard."""
    tracer = Tracer(vm.proc.pid, os.path.join(vm.dir, "usdt-pages.jsonl"), "--per-page")
    vm.qmp.cmd("balloon", value=768 * MiB)
    wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == 768 * MiB, 180)
    out = tracer.stop()
    phase = next((m for m in out if m.get("phase") == "virtio-balloon"), {})
    work = phase.get("work", {})
    pages = 256 * MiB // 4096
    check(phase.get("reached") and
          work.get("virtio_balloon_handle_output", {}).get("count") == pages and
          work.get("ram_block_discard_range", {}).get("count", 0) >= pages and
          work.get("ram_block_discard_range", {}).get("sum", 0) >= 256 * MiB,
          f"with --per-page a 256 MiB inflate counts {pages} pages and their discards",
          str(phase)[:400])
    # The same discards seen as syscalls (what inflate uses: no per-page probe).
    sc = work.get("discard_syscall", {})
    check(sc.get("count", 0) >= pages and sc.get("sum", 0) >= 256 * MiB and
          0 < sc.get("ns", 0) < phase.get("end_ns", 0) - phase.get("start_ns", 0),
          "QEMU's discards are counted and timed by the syscall tracepoints within the phase",
          f"discard_syscall {sc}, phase {phase.get('end_ns', 0) - phase.get('start_ns', 0)} ns")
    if phase.get("reached"):
        print(f"# balloon to 768 MiB with per-page probes: in QEMU "
              f"{(phase['end_ns'] - phase['start_ns']) / 1e6:.1f} ms")
    test_hist(vm)


def test_hist(vm):
    """hatrace hist -p QEMU adds the USDT histograms of hatrace's QEMU."""
    path = os.path.join(vm.dir, "hist.jsonl")
    hist = subprocess.Popen([HATRACE, "hist", "-p", str(vm.proc.pid), "-o", "json"],
                            stdout=open(path, "w"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)

    def lines():
        with open(path) as f:
            return [json.loads(line) for line in f if line.startswith("{")]
    wait_for(lambda: any(m.get("type") == "start" for m in lines()) or hist.poll() is not None, 60)
    vm.qmp.cmd("balloon", value=896 * MiB)  # from 768 MiB: 128 MiB deflated
    wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == 896 * MiB, 180)
    vm.qmp.cmd("balloon", value=768 * MiB)  # 128 MiB inflated: 32768 discards
    wait_for(lambda: vm.qmp.cmd("query-balloon")["actual"] == 768 * MiB, 180)
    vmem = "/machine/peripheral/vmem0"
    vm.qmp.cmd("qom-set", path=vmem, property="requested-size", value=128 * MiB)
    wait_for(lambda: vm.qmp.cmd("qom-get", path=vmem, property="size") == 128 * MiB, 120)
    hist.send_signal(signal.SIGINT)
    hist.wait(30)
    out = lines()
    h = {m["name"]: m for m in out if m.get("type") == "hist" and m["name"].startswith("qemu:")}
    probe = next((m for m in out if m.get("name") == f"qemu_usdt:{vm.proc.pid}"), {})
    check(probe.get("attached") is True, "hist attaches the USDT programs to our QEMU", str(probe))

    def buckets(name):
        return {(b["low"], b["high"]): b["count"] for b in h.get(name, {}).get("buckets", [])}
    pages, discards = buckets("qemu:balloon_pages_per_request"), buckets("qemu:ram_block_discard_range")
    # The 6.1 driver moves at most 256 pages per request: 2 x 128 MiB is 256 full ones.
    check(h.get("qemu:balloon_pages_per_request", {}).get("unit") == "pages" and
          pages.get((256, 511), 0) >= 250,
          "balloon pages per request: full requests of 256 pages", str(pages))
    check(discards.get((4096, 8191), 0) >= 32768 and
          h["qemu:ram_block_discard_range"]["unit"] == "bytes",
          "discard sizes: one 4 KiB discard per inflated balloon page", str(discards))
    req = h.get("qemu:virtio_mem_request", {})
    check(req.get("unit") == "ns" and req.get("count", 0) >= 1 and
          sum(buckets("qemu:virtio_mem_request").values()) == req.get("count"),
          "virtio-mem plug request latency is a histogram of every answered request", str(req))


def test_hyperalloc(vm):
    ready = vm.agent.wait_event("ready", 300)
    check(ready.get("kernel", "").startswith("6.1."),
          "the hyperalloc guest boots on our QEMU with virtio-hyperalloc-pci", str(ready))
    registered = wait_for(lambda: vm.qmp.cmd("query-hyperalloc").get("registered"), 60)
    tracer = Tracer(vm.proc.pid, os.path.join(vm.dir, "usdt-ha.jsonl"), "--records")
    hist_path = os.path.join(vm.dir, "hist-ha.jsonl")
    hist = subprocess.Popen([HATRACE, "hist", "-p", str(vm.proc.pid), "-o", "json"],
                            stdout=open(hist_path, "w"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)

    def hist_lines():
        with open(hist_path) as f:
            return [json.loads(line) for line in f if line.startswith("{")]
    wait_for(lambda: any(m.get("type") == "start" for m in hist_lines()) or
             hist.poll() is not None, 60)
    actual = []
    for target in HA_TARGETS_MIB:
        vm.qmp.cmd("hyperalloc-resize", value=target * MiB)  # synchronous
        actual.append(vm.qmp.cmd("query-hyperalloc")["actual"] // MiB)
    # The grow left the returned children marked reclaimed: the guest's next
    # use of them asks QEMU to install them.
    vm.agent.req("run", argv=["ht-touch", "--bytes", HA_TOUCH], timeout_s=300)
    hist.send_signal(signal.SIGINT)
    hist.wait(30)
    out = tracer.stop()
    check(registered and actual == HA_TARGETS_MIB,
          "the guest registered and every hyperalloc-resize reached its target",
          f"registered {registered}, actual {actual} MiB, wanted {HA_TARGETS_MIB}")
    totals = next((m for m in out if "totals" in m), {})
    counts = {k: v["count"] for k, v in totals.get("totals", {}).items()}
    phases = [m for m in out if m.get("phase") == "virtio-hyperalloc"]
    n = len(HA_TARGETS_MIB)
    check(len(phases) == n and all(p["reached"] for p in phases) and
          [p["target_bytes"] for p in phases] == [t * MiB for t in HA_TARGETS_MIB] and
          all(0 < p["start_ns"] < p["end_ns"] for p in phases) and
          counts.get("hyperalloc_resize_start") == n and counts.get("hyperalloc_resize_end") == n,
          f"exactly {n} hyperalloc resize start/end pairs for {n} hyperalloc-resize calls",
          f"phases {str(phases)[:500]}, counts {counts}")
    before = [1024] + HA_TARGETS_MIB[:-1]
    want = [max(b - t, 0) * MiB for b, t in zip(before, HA_TARGETS_MIB)]
    ha = [p["work"].get("hyperalloc_discard", {}).get("sum", 0) for p in phases]
    sc = [p["work"].get("discard_syscall", {}) for p in phases]
    # (other threads' madvise, e.g. malloc trimming, may add to the syscalls)
    check(ha == want and all(s.get("sum", 0) >= w and (s.get("ns", 0) > 0 or not w)
                             for s, w in zip(sc, want)),
          "the device discards exactly each shrink's bytes (none in a grow), "
          "timed as syscalls", f"device {ha}, syscalls {sc}, wanted {want}")
    inst = totals.get("totals", {}).get("hyperalloc_install", {})
    check(inst.get("count", 0) > 0 and counts.get("hyperalloc_install_start") == inst["count"] and
          counts.get("hyperalloc_install_end") == inst["count"] and
          inst.get("sum", 0) >= inst["count"] and inst.get("ns", 0) > 0,
          "every install request after the grow is counted and timed start to end",
          f"install {inst}, counts {counts}")
    check(counts.get("hyperalloc_populate", 0) >= inst.get("count", 1),
          "each install populates its children", str(counts))
    h = next((m for m in reversed(hist_lines()) if m.get("name") == "qemu:hyperalloc_install"), {})
    check(h.get("unit") == "ns" and h.get("count") == inst.get("count") and
          sum(b["count"] for b in h.get("buckets", [])) == h.get("count"),
          "hatrace hist shows every install's latency as qemu:hyperalloc_install",
          f"hist {str(h)[:300]}, tracer {inst}")
    check(totals.get("drops") == 0, "no USDT record dropped on the hyperalloc guest",
          str(totals.get("drops")))
    for p in phases:
        print(f"# hyperalloc-resize to {p['target_bytes'] // MiB:4} MiB: in QEMU "
              f"{(p['end_ns'] - p['start_ns']) / 1e6:7.2f} ms, discards "
              f"{p['work'].get('discard_syscall', {}).get('count', 0)}")
    if inst.get("count"):
        print(f"# {inst['count']} installs ({inst['sum']} children), mean "
              f"{inst['ns'] / inst['count'] / 1e3:.1f} us")


def test_hit_ns():
    """The cost of one probe hit that inflate's QEMU probe estimate uses: its
    calibration probe (in the test binary) fired on every call, and a hit costs
    something, well under a millisecond."""
    r = subprocess.run([ATTACH, "--hit-ns"], capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout or "{}")
    ns = out.get("hit_ns")
    check(r.returncode == 0 and isinstance(ns, float) and 0 < ns < 1e6, "usdt_hit_cost",
          f"exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    print(f"# one USDT probe hit costs {ns} ns on this host")


def main():
    if not os.access(QEMU, os.X_OK):
        skip_all("qemu usdt", f"{QEMU} is not built (run make qemu)")
    if os.geteuid() != 0:
        skip_all("qemu usdt attach", "needs root")
    require_guest("qemu usdt attach", image="bzImage-hyperalloc")
    plan(31)
    test_hit_ns()
    GuestVM(mem_mib=1024, vmem_max_mib=512, qemu=(QEMU,)).run("qemu usdt attach", test_attach)
    GuestVM(mem_mib=1024, qemu=(QEMU, "-device", "virtio-hyperalloc-pci"), balloon="",
            kernel="bzImage-hyperalloc").run("qemu usdt hyperalloc", test_hyperalloc)
    finish()


if __name__ == "__main__":
    main()
