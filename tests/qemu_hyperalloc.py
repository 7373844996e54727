#!/usr/bin/python3
"""virtio-hyperalloc in hatrace's QEMU (qemu/patches/0003), driven through QEMU's qtest
protocol (tests/qtest_lib.py): this test plays the guest driver over modern virtio-pci,
writing the allocator metadata of a fake zone into guest RAM itself. It checks the PCI
identity and queues, QMP and HMP without a guest, refused configurations (migration,
single-threaded TCG, mlock), every refused registration and install (a status or
NEEDS_RESET, a guest-error log line, QEMU staying up), and the operations: a resize
hard-reclaims exactly the free children ({free 0, huge, reclaimed}) and discards their
memory, a grow returns them ({512, 0, reclaimed}), an install populates and clears
reclaimed, and HYPERALLOC_CHANGE arrives with each resize."""
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import check, fail, finish, plan, skip_all  # noqa: E402
from qtest_lib import QEMU, MiB, Qtest  # noqa: E402

RAM_MIB = 256
CHILD = 2 * MiB
# virtio-pci
VENDOR, DEVICE = 0x1af4, 0x1078
BAR4 = 0xe0000000
ACK, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET = 1, 2, 4, 8, 0x40
F_INSTALL, F_VERSION_1 = 0, 32
# kernel/uapi/virtio_hyperalloc.h
DESC_MAGIC, DESC_VERSION, ZONE, FINISH = 0x5a414856, 1, 1, 2
S_OK, S_NOT_RECLAIMED, S_INVALID = 0, 1, 2
# kernel/llfree/llfree_layout.h
LL_MAGIC, LL_VERSION = 0x464c4148, 2
HUGE, RECLAIMED = 1 << 14, 1 << 15
HARD_CHILD = HUGE | RECLAIMED
# The fake zone: 64 MiB at 32 MiB (32 children, 4 trees), metadata at 8 MiB.
START_PFN, PAGES, META = (32 * MiB) >> 12, (64 * MiB) >> 12, 8 * MiB
TREES = PAGES // 4096
META_LEN = 64 + TREES * 8 * 64 + TREES * 64 + 64
CHILD_OFF, TREE_OFF = 64 + TREES * 8 * 64, 64 + TREES * 8 * 64 + TREES * 64
ALLOCATED = {3, 4, 9}  # children the fake guest has in use
RINGS = 1 * MiB  # one 4 KiB page per ring part, per queue
BUFS = 4 * MiB


def child_gpa(c):
    return (START_PFN << 12) + c * CHILD


def desc(zone_id=0, start_pfn=START_PFN, pages=PAGES, meta=META, meta_len=META_LEN,
         magic=DESC_MAGIC, version=DESC_VERSION, kind=ZONE, reserved=0):
    return struct.pack("<IHHIIQQQQQQ", magic, version, kind, zone_id, 0, start_pfn, pages,
                       meta, meta_len, 0, reserved)


FINISH_DESC = desc(kind=FINISH)


class Hyperalloc(Qtest):
    """virtio-hyperalloc-pci as a modern virtio driver sees it."""

    def __init__(self, dirname, device="virtio-hyperalloc-pci", args=()):
        super().__init__(dirname, ["-device", device, *args],
                         f"{RAM_MIB}M,maxmem={2 * RAM_MIB}M")
        self.dev = next((d for d in range(32) if self.pci_cfg(d, 0) == DEVICE << 16 | VENDOR),
                        None)
        self.queues = {}

    def caps(self):
        """The virtio vendor capabilities: cfg_type -> (offset in BAR 4, notify multiplier)."""
        found, ptr = {}, self.pci_cfg(self.dev, 0x34, size=1)
        while ptr:
            if self.pci_cfg(self.dev, ptr, size=1) == 0x09:
                kind, bar = self.pci_cfg(self.dev, ptr + 3, size=1), self.pci_cfg(self.dev, ptr + 4,
                                                                                  size=1)
                if bar == 4:
                    found[kind] = (self.pci_cfg(self.dev, ptr + 8),
                                   self.pci_cfg(self.dev, ptr + 16) if kind == 2 else 0)
            ptr = self.pci_cfg(self.dev, ptr + 1, size=1)
        return found

    def probe(self, features=1 << F_INSTALL | 1 << F_VERSION_1, queues=None):
        """Maps BAR 4, negotiates, sets up the queues; returns the device's features."""
        self.pci_cfg(self.dev, 0x20, BAR4 | 0xc)
        self.pci_cfg(self.dev, 0x24, 0)
        self.pci_cfg(self.dev, 0x04, 0x6)  # memory space, bus master
        caps = self.caps()
        self.common = BAR4 + caps[1][0]
        self.notify, self.notify_mul = BAR4 + caps[2][0], caps[2][1]
        self.device_cfg = BAR4 + caps[4][0]
        self.wr("writeb", self.common + 20, 0)
        self.wr("writeb", self.common + 20, ACK | DRIVER)
        offered = 0
        for half in (0, 1):
            self.wr("writel", self.common, half)
            offered |= self.rd("readl", self.common + 4) << 32 * half
            self.wr("writel", self.common + 8, half)
            self.wr("writel", self.common + 12, features >> 32 * half & 0xffffffff)
        self.wr("writeb", self.common + 20, ACK | DRIVER | FEATURES_OK)
        self.num_queues = self.rd("readw", self.common + 18)
        self.cmd(f"memset {RINGS:#x} {3 * 4096 * self.num_queues:#x} 0")
        for q in range(self.num_queues if queues is None else queues):
            self.wr("writew", self.common + 22, q)
            size = self.rd("readw", self.common + 24)
            base = RINGS + 3 * 4096 * q
            for off, addr in ((32, base), (40, base + 4096), (48, base + 8192)):
                self.wr("writel", self.common + off, addr)  # 32-bit halves, RAM < 4 GiB
                self.wr("writel", self.common + off + 4, 0)
            self.wr("writew", self.common + 28, 1)
            self.queues[q] = dict(size=size, desc=base, avail=base + 4096, used=base + 8192,
                                  next=0, notify=self.rd("readw", self.common + 30))
        self.wr("writeb", self.common + 20, ACK | DRIVER | FEATURES_OK | DRIVER_OK)
        return offered

    def status(self):
        return self.rd("readb", self.common + 20)

    def request(self, q, out, in_len=4):
        """One out buffer and one device-writable buffer on queue q; the status QEMU
        wrote, or None if it did not use the buffers."""
        vq = self.queues[q]
        out_gpa, in_gpa = BUFS + 4096 * q, BUFS + 4096 * q + 2048
        self.write(out_gpa, out)
        self.write(in_gpa, b"\xee" * 4)
        slot = vq["next"] % vq["size"]
        d0, d1 = (2 * slot) % vq["size"], (2 * slot + 1) % vq["size"]
        self.write(vq["desc"] + 16 * d0, struct.pack("<QIHH", out_gpa, len(out), 1, d1))
        self.write(vq["desc"] + 16 * d1, struct.pack("<QIHH", in_gpa, in_len, 2, 0))
        self.wr("writew", vq["avail"] + 4 + 2 * slot, d0)
        vq["next"] += 1
        self.wr("writew", vq["avail"] + 2, vq["next"] & 0xffff)
        self.wr("writew", self.notify + vq["notify"] * self.notify_mul, q)
        if self.rd("readw", vq["used"] + 2) != vq["next"] & 0xffff:
            return None
        return self.rd("readl", in_gpa)

    def register(self, d):
        return self.request(0, d)

    def install(self, child=1, count=1, zone=0, q=2):
        return self.request(q, struct.pack("<IIQ", zone, count, child))

    def child_word(self, c):
        pair = self.rd("readl", META + CHILD_OFF + 64 * (c // 8) + 4 * (c % 8 // 2))
        return pair >> 16 * (c & 1) & 0xffff

    def tree_free(self, t):
        return self.rd("readw", META + TREE_OFF + 2 * t) & 0x1fff

    def header_hard(self):
        return self.rd("readq", META + 24)

    def errors(self):
        return self.qmp("query-hyperalloc")["return"]["guest-errors"]


def write_metadata(qt):
    """The zone's metadata as a guest allocator with ALLOCATED children in use has it."""
    qt.cmd(f"memset {META:#x} {META_LEN:#x} 0")
    qt.write(META, struct.pack("<IIQQQ", LL_MAGIC, LL_VERSION, START_PFN, PAGES, 0))
    for t in range(TREES):
        words = [0 if t * 8 + i in ALLOCATED else 512 for i in range(8)]
        qt.write(META + CHILD_OFF + 64 * t, struct.pack("<8H", *words))
        qt.write(META + TREE_OFF + 2 * t, struct.pack("<H", sum(words)))


def test_identity(dirname):
    with Hyperalloc(dirname, "virtio-hyperalloc-pci,install-queues=3",
                    ["-smp", "2,maxcpus=4"]) as qt:
        check(qt.dev is not None, "virtio-hyperalloc-pci is PCI 1af4:1078",
              "no such device on bus 0")
        offered = qt.probe(queues=0)
        check(offered >> F_VERSION_1 & 1 and offered >> F_INSTALL & 1 and qt.num_queues == 5,
              "modern only, offers F_INSTALL, info + notify + install-queues=3 queues",
              f"features {offered:#x}, {qt.num_queues} queues")
        version, nq = qt.rd("readl", qt.device_cfg), qt.rd("readl", qt.device_cfg + 4)
        check(version == LL_VERSION and nq == 3, "config: layout version and install queues",
              f"version {version}, queues {nq}")
        # It aborted QEMU (qmp_decode_features knew no device 56) before the fix.
        path = next((d["path"] for d in qt.qmp("x-query-virtio").get("return", [])
                     if d["name"] == "virtio-hyperalloc"), None)
        st = qt.qmp("x-query-virtio-status", path=path).get("return", {})
        check(qt.alive() and st.get("device-id") == 56 and
              any("VIRTIO_HYPERALLOC_F_INSTALL" in f for f in st["host-features"]["dev-features"]),
              "x-query-virtio-status decodes the device's features", f"{path}: {str(st)[:200]}")
    with Hyperalloc(dirname + "/b", args=["-smp", "2,maxcpus=6"]) as qt:
        qt.probe(queues=0)
        check(qt.num_queues == 8, "install queues default to maxcpus",
              f"{qt.num_queues} queues with maxcpus=6")


def test_monitor(dirname):
    with Hyperalloc(dirname) as qt:
        info = qt.qmp("query-hyperalloc")["return"]
        check(not info["registered"] and info["actual"] == RAM_MIB * MiB and info["hard"] == 0,
              "query-hyperalloc before the guest registers", str(info))
        reply = qt.qmp("hyperalloc-resize", value=100 * MiB)
        info = qt.qmp("query-hyperalloc")["return"]
        event = [e for e in qt.events if e["event"] == "HYPERALLOC_CHANGE"]
        check("return" in reply and info["target"] == 100 * MiB and
              info["actual"] == RAM_MIB * MiB and event and
              event[-1]["data"] == {"actual": RAM_MIB * MiB, "target": 100 * MiB,
                                    "reached": False},
              "a resize without a guest keeps the target, reports not reached",
              f"{reply}, {info}, events {event}")
        reply = qt.qmp("human-monitor-command", **{"command-line": "info hyperalloc"})
        check("registered no" in reply.get("return", "") and "target 100 MiB" in reply["return"],
              "HMP info hyperalloc", str(reply))
        reply = qt.qmp("human-monitor-command", **{"command-line": "hyperalloc 200"})
        info = qt.qmp("query-hyperalloc")["return"]
        check(info["target"] == 200 * MiB, "HMP hyperalloc sets the target in MB", str(info))
        reply = qt.qmp("migrate", uri="exec:cat >/dev/null")
        check("error" in reply and "virtio-hyperalloc" in reply["error"]["desc"],
              "migration is refused by name", str(reply))
        check(qt.alive(), "QEMU is up after the refused migration")


def refused_start(dirname, args, what):
    """QEMU with the device under args; its exit status and stderr."""
    p = subprocess.run([QEMU, "-machine", "pc", "-nodefaults", "-display", "none",
                        "-m", "128M", "-S", "-device", "virtio-hyperalloc-pci", *args,
                        "-qmp", f"unix:{dirname}/{what}.sock,server=on,wait=off"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr.strip()


def test_refused(dirname):
    rc, err = refused_start(dirname, ["-accel", "tcg", "-smp", "1"], "tcg1")
    check(rc != 0 and "multi-threaded TCG" in err, "single-threaded TCG is refused",
          f"exit {rc}: {err[-200:]}")
    rc, err = refused_start(dirname, ["-accel", "tcg,thread=single", "-smp", "2"], "rr")
    check(rc != 0 and "multi-threaded TCG" in err, "round-robin TCG with 2 vCPUs is refused",
          f"exit {rc}: {err[-200:]}")
    rc, err = refused_start(dirname, ["-accel", "tcg", "-overcommit", "mem-lock=on",
                                      "-smp", "2"], "mlock")
    check(rc != 0 and "mlock" in err, "mlock is refused", f"exit {rc}: {err[-200:]}")
    rc, err = refused_start(dirname, ["-accel", "tcg,thread=multi", "-smp", "2",
                                      "-device", "virtio-hyperalloc-pci"], "two")
    check(rc != 0 and "only one virtio-hyperalloc device" in err,
          "a second virtio-hyperalloc device is refused", f"exit {rc}: {err[-200:]}")
    # A good start stays up: it is killed by the timeout of a quick `quit` instead.
    p = subprocess.Popen([QEMU, "-machine", "pc", "-nodefaults", "-display", "none",
                          "-m", "128M", "-S", "-accel", "tcg,thread=multi", "-smp", "2",
                          "-device", "virtio-hyperalloc-pci", "-monitor", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate("quit\n", timeout=30)
    check(p.returncode == 0, "multi-threaded TCG with 2 vCPUs starts",
          f"exit {p.returncode}: {err.strip()[-200:]}")
    p = subprocess.Popen([QEMU, "-machine", "pc", "-nodefaults", "-display", "none",
                          "-m", "128M", "-S", "-accel", "tcg", "-smp", "1",
                          "-device", "virtio-hyperalloc-pci,x-unsafe-tcg=on",
                          "-monitor", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate("quit\n", timeout=30)
    check(p.returncode == 0, "x-unsafe-tcg=on overrides the TCG refusal",
          f"exit {p.returncode}: {err.strip()[-200:]}")
    with Qtest(dirname, [], "128M") as qt:
        reply = qt.qmp("query-hyperalloc")
        resize = qt.qmp("hyperalloc-resize", value=MiB)
        check(reply.get("error", {}).get("class") == "DeviceNotActive" and
              resize.get("error", {}).get("class") == "DeviceNotActive",
              "without the device QMP says DeviceNotActive", f"{reply}, {resize}")


def test_hostile(dirname):
    with Hyperalloc(dirname) as qt:
        qt.probe()
        write_metadata(qt)
        refusals = [
            ("bad magic", desc(magic=0x12345678), "bad magic"),
            ("bad version", desc(version=9), "bad magic or version"),
            ("non-zero reserved field", desc(reserved=1), "reserved fields"),
            ("zone id 64", desc(zone_id=64), "zone id out of range"),
            ("no pages", desc(pages=0), "outside guest RAM"),
            ("pages beyond RAM", desc(pages=1 << 30), "outside guest RAM"),
            ("wrong metadata length", desc(meta_len=META_LEN + 64), "length does not match"),
            ("misaligned metadata", desc(meta=META + 8), "misaligned"),
            ("metadata outside RAM", desc(meta=8 << 30), "not plain guest RAM"),
            ("metadata in the BIOS ROM", desc(meta=0xfffc0000), "not plain guest RAM"),
            ("metadata running into the option ROMs", desc(meta=0xc0000 - 1024), "not plain guest RAM"),
            ("metadata header of another zone", desc(start_pfn=START_PFN + 1024),
             "header does not match"),
        ]
        for what, d, why in refusals:
            before = qt.log_text()
            status = qt.register(d)
            logged = qt.log_text()[len(before):]
            check(status == S_INVALID and why in logged, f"refused: {what}",
                  f"status {status}, log {logged.strip()!r}")
        check(qt.register(desc()) == S_OK, "the good zone registers")
        for what, d, why in [("duplicate zone id", desc(), "duplicate zone id"),
                             ("overlapping zone", desc(zone_id=1, start_pfn=START_PFN + 4096,
                                                       meta=META + 64 * 1024),
                              "overlaps another zone"),
                             ("overlapping metadata", desc(zone_id=1, start_pfn=0, pages=4096,
                                                           meta=META + 64, meta_len=704),
                              "metadata overlaps")]:
            before = qt.log_text()
            status = qt.register(d)
            check(status == S_INVALID and why in qt.log_text()[len(before):],
                  f"refused: {what}", f"status {status}")
        check(qt.install(0) == S_INVALID and "install before FINISH" in qt.log_text(),
              "an install before FINISH is refused")
        check(qt.register(FINISH_DESC) == S_OK, "FINISH is accepted")
        check(qt.register(desc(zone_id=2, start_pfn=0, pages=4096, meta=META + 64 * 1024)) ==
              S_INVALID and "after FINISH" in qt.log_text(), "a zone after FINISH is refused")
        bad_installs = [("child out of range", dict(child=32)), ("unknown zone", dict(zone=1)),
                        ("zone id 1000", dict(zone=1000)), ("count 3", dict(count=3)),
                        ("order 10 at an odd child", dict(child=5, count=2))]
        for what, kw in bad_installs:
            check(qt.install(**kw) == S_INVALID, f"install refused: {what}")
        check(qt.install(1) == S_NOT_RECLAIMED, "an install of a child never reclaimed: "
              "NOT_RECLAIMED")
        errors = qt.errors()
        check(errors == len(refusals) + 3 + 2 + len(bad_installs),
              "every refusal is counted in guest-errors", f"{errors}")
        check(qt.status() & NEEDS_RESET == 0, "refusals do not break the device")
        # Before the fix the device gave such buffers back at once, which the guest
        # driver posted again: a loop without end.
        check(qt.request(1, b"\0" * 16) is None and qt.errors() == errors and
              qt.status() & NEEDS_RESET == 0,
              "a buffer on the notify queue waits for a host request", f"{qt.errors()} errors")
        status = qt.request(0, FINISH_DESC[:20])
        check(status is None and qt.status() & NEEDS_RESET and qt.alive(),
              "a short descriptor buffer sets NEEDS_RESET, QEMU stays up",
              f"status {status}, device status {qt.status():#x}")
        qt.probe()
        check(qt.register(desc()) == S_OK and qt.register(FINISH_DESC) == S_OK,
              "after a driver reset the device takes a registration again")


def test_operations(dirname):
    with Hyperalloc(dirname, args=["-smp", "2"]) as qt:
        qt.probe()
        write_metadata(qt)
        for c in range(32):
            qt.cmd(f"memset {child_gpa(c):#x} {CHILD:#x} 0xaa")
        qt.qmp("hyperalloc-resize", value=(RAM_MIB - 20) * MiB)  # 10 children, kept
        check(qt.register(desc()) == S_OK and qt.register(FINISH_DESC) == S_OK,
              "registration of a good zone")
        info = qt.qmp("query-hyperalloc")["return"]
        hard = [c for c in range(32) if qt.child_word(c) == HARD_CHILD]
        check(info["registered"] and info["hard"] == 20 * MiB and len(hard) == 10 and
              not ALLOCATED & set(hard) and qt.header_hard() == 10,
              "the target set before registration is applied at FINISH: 10 free children "
              "read {free 0, huge, reclaimed}, the header counts them",
              f"{info}, hard children {hard}, header {qt.header_hard()}")
        qt.events.clear()
        reply = qt.qmp("hyperalloc-resize", value=(RAM_MIB - 50) * MiB)
        info = qt.qmp("query-hyperalloc")["return"]
        hard = [c for c in range(32) if qt.child_word(c) == HARD_CHILD]
        frees = [qt.tree_free(t) for t in range(TREES)]
        check("return" in reply and info["actual"] == (RAM_MIB - 50) * MiB and len(hard) == 25,
              "hyperalloc-resize to 50 MiB less holds 25 children when it returns",
              f"{reply}, {info}, {len(hard)} hard")
        check(sum(frees) == (32 - len(ALLOCATED) - 25) * 512,
              "tree counters lose the frames of the hard children", f"tree free {frees}")
        zeroed = all(qt.rd("readq", child_gpa(c)) == 0 and
                     qt.rd("readq", child_gpa(c) + CHILD - 8) == 0 for c in hard)
        kept = all(qt.rd("readq", child_gpa(c)) == 0xaaaaaaaaaaaaaaaa for c in ALLOCATED)
        check(zeroed and kept, "hard children read back zero, children in use keep their data",
              f"zeroed {zeroed}, kept {kept}")
        event = [e["data"] for e in qt.events if e["event"] == "HYPERALLOC_CHANGE"]
        check(event == [{"actual": (RAM_MIB - 50) * MiB, "target": (RAM_MIB - 50) * MiB,
                         "reached": True}], "HYPERALLOC_CHANGE reports the resize", str(event))
        reply = qt.qmp("hyperalloc-resize", value=RAM_MIB * MiB)
        soft = [c for c in range(32) if qt.child_word(c) == 512 | RECLAIMED]
        info = qt.qmp("query-hyperalloc")["return"]
        check(sorted(soft) == sorted(hard) and info["hard"] == 0 and info["soft"] == 50 * MiB and
              qt.header_hard() == 0 and sum(qt.tree_free(t) for t in range(TREES)) ==
              (32 - len(ALLOCATED)) * 512,
              "a grow returns them: {512, 0, reclaimed}, counters restored",
              f"soft {soft}, {info}")
        c = soft[0]
        check(qt.install(c) == S_OK and qt.child_word(c) == 512,
              "an install clears reclaimed", f"child word {qt.child_word(c):#x}")
        check(qt.install(c) == S_NOT_RECLAIMED, "a second install: NOT_RECLAIMED")
        pair = [p for p in range(0, 32, 2) if p in soft and p + 1 in soft and c not in (p, p + 1)][0]
        check(qt.install(pair, count=2, q=3) == S_OK and qt.child_word(pair) == 512 and
              qt.child_word(pair + 1) == 512, "an order-10 install clears both children",
              f"{qt.child_word(pair):#x} {qt.child_word(pair + 1):#x}")
        qt.qmp("hyperalloc-resize", value=(RAM_MIB - 6) * MiB)
        held = [c for c in range(32) if qt.child_word(c) == HARD_CHILD]
        check(qt.install(held[0]) == S_INVALID, "an install of a child the host holds is refused")
        info = qt.qmp("query-hyperalloc")["return"]
        check(info["installed"] == 3 * CHILD, "installed bytes are counted", str(info))
        qt.qmp("system_reset")
        for _ in range(50):  # the main loop resets after the command returns
            info = qt.qmp("query-hyperalloc")["return"]
            if not info["registered"]:
                break
            time.sleep(0.02)
        check(not info["registered"] and info["hard"] == 0 and info["actual"] == RAM_MIB * MiB and
              info["target"] == (RAM_MIB - 6) * MiB,
              "a reset drops the zones and keeps the target", str(info))
        words = [qt.child_word(c) for c in held]
        check(words == [512 | RECLAIMED] * 3 and qt.header_hard() == 0,
              "a reset gives the held children back to the guest's allocator first",
              f"{[hex(w) for w in words]}, header {qt.header_hard()}")
        qt.probe()  # the rebooted guest's allocator starts over
        write_metadata(qt)
        qt.register(desc())
        qt.register(FINISH_DESC)
        info = qt.qmp("query-hyperalloc")["return"]
        held = [c for c in range(32) if qt.child_word(c) == HARD_CHILD]
        check(info["hard"] == 6 * MiB and len(held) == 3 and qt.header_hard() == 3,
              "after the reboot the kept target is applied again", f"{info}, held {held}")


def test_auto(dirname):
    with Hyperalloc(dirname, "virtio-hyperalloc-pci,id=ha") as qt:
        qt.probe()
        write_metadata(qt)
        for c in range(32):
            qt.cmd(f"memset {child_gpa(c):#x} {CHILD:#x} 0xaa")
        qt.register(desc())
        qt.register(FINISH_DESC)
        path = "/machine/peripheral/ha/virtio-backend"
        reply = qt.qmp("qom-set", path=path, property="auto-interval-ms", value=1000)
        qt.qmp("qom-set", path=path, property="auto-batch-trees", value=1)
        info = qt.qmp("query-hyperalloc")["return"]
        check("return" in reply and info["auto-interval-ms"] == 1000 and info["soft"] == 0,
              "auto-interval-ms is set at run time; nothing happens before the interval",
              f"{reply}, {info}")
        qt.cmd(f"clock_step {1000 * 1000 * 1000}")
        soft = [c for c in range(32) if qt.child_word(c) == 512 | RECLAIMED]
        info = qt.qmp("query-hyperalloc")["return"]
        check(len(soft) == 8 and info["soft"] == 8 * CHILD and info["hard"] == 0,
              "one auto round on the virtual clock soft-reclaims a batch of free children "
              "(auto-batch-trees=1: 8)", f"soft {soft}, {info}")
        zeroed = all(qt.rd("readq", child_gpa(c)) == 0 for c in soft)
        check(zeroed and qt.rd("readq", child_gpa(3)) == 0xaaaaaaaaaaaaaaaa,
              "soft-reclaimed children are discarded, those in use are not")
        qt.qmp("qom-set", path=path, property="auto-batch-trees", value=8)
        qt.cmd(f"clock_step {1000 * 1000 * 1000}")
        soft = [c for c in range(32) if qt.child_word(c) == 512 | RECLAIMED]
        check(len(soft) == 32 - len(ALLOCATED), "the next round takes the rest",
              f"soft {soft}")
        check(qt.install(soft[0]) == S_OK and qt.child_word(soft[0]) == 512,
              "an install of a soft-reclaimed child clears reclaimed")
        qt.qmp("qom-set", path=path, property="auto-interval-ms", value=0)
        qt.cmd(f"clock_step {10 * 1000 * 1000 * 1000}")
        check(qt.child_word(soft[0]) == 512, "auto-interval-ms=0 stops the rounds",
              f"{qt.child_word(soft[0]):#x}")


def test_coexistence(dirname):
    args = ["-device", "virtio-balloon-pci",
            "-object", "memory-backend-ram,id=mem0,size=128M",
            "-device", "virtio-mem-pci,id=vmem0,memdev=mem0,requested-size=0"]
    with Hyperalloc(dirname, "virtio-hyperalloc-pci", args) as qt:
        balloon = qt.qmp("query-balloon")
        devices = qt.qmp("query-memory-devices")
        info = qt.qmp("query-hyperalloc")
        check(qt.dev is not None and "return" in balloon and "return" in info and
              any(d["type"] == "virtio-mem" for d in devices.get("return", [])),
              "virtio-balloon, virtio-mem and virtio-hyperalloc in one VM",
              f"{balloon}, {devices}, {info}")


USDT = ["register_zone", "guest_error", "resize_start", "resize_end", "shrink_start",
        "shrink_end", "return_start", "return_end", "discard", "install_start", "install_end",
        "populate", "auto_start", "auto_end"]


def test_usdt(dirname):
    out = subprocess.run(["readelf", "-n", QEMU], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split(": ", 1)[1] for line in out.splitlines()
             if line.strip().startswith("Name: hyperalloc_")}
    missing = [e for e in USDT if f"hyperalloc_{e}" not in names]
    check(not missing, f"the {len(USDT)} hyperalloc trace events are USDT probes",
          f"missing {missing}")


def main():
    if not os.access(QEMU, os.X_OK):
        skip_all("hyperalloc", f"{QEMU} is not built (run make qemu)")
    plan(71)
    for test in (test_identity, test_monitor, test_refused, test_hostile, test_operations,
                 test_auto, test_coexistence, test_usdt):
        with tempfile.TemporaryDirectory(prefix="hatrace-qtest-") as d:
            os.mkdir(os.path.join(d, "b"))
            try:
                test(d)
            except (OSError, EOFError, RuntimeError, KeyError, IndexError,
                    subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
                err = ""
                if os.path.exists(os.path.join(d, "qemu.err")):
                    with open(os.path.join(d, "qemu.err")) as f:
                        err = f.read().strip()[-300:]
                fail(test.__name__, f"{type(e).__name__}: {e}; QEMU: {err}")
    finish()


if __name__ == "__main__":
    main()
