#!/usr/bin/python3
"""virtio-balloon-huge in hatrace's QEMU (qemu/patches), driven through QEMU's qtest
protocol (tests/qtest_lib.py): this test plays the guest driver over the legacy
virtio-pci interface. It checks that huge-pages is
off by default, that a negotiated huge PFN discards exactly its 2 MiB, that bad PFNs
(unaligned, outside RAM, not plain RAM) are logged and ignored with QEMU staying up,
that without the feature a PFN still means 4 KiB, and that the balloon target is
rounded up to whole 2 MiB units. HATRACE_TEST_QEMU names another binary to test."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import check, fail, finish, plan, skip_all  # noqa: E402
from qtest_lib import QEMU, MiB, Qtest  # noqa: E402

HUGE = 2 * MiB
F_HUGE_PAGES = 23  # VIRTIO_BALLOON_F_HUGE_PAGES
RAM_MIB = 255  # not a multiple of 2 MiB: the last unit straddles the end of RAM
LAST_UNIT = 252 * MiB

# legacy virtio-pci registers (I/O BAR 0)
HOST_FEATURES, GUEST_FEATURES, QUEUE_PFN, QUEUE_NUM, QUEUE_SEL, QUEUE_NOTIFY, STATUS = \
    0, 4, 8, 12, 14, 16, 18
CONFIG = 20  # num_pages, actual (MSI-X off)
IO_BASE = 0xc000
INFLATE_Q, DEFLATE_Q = 0, 1
RING_GPA = {INFLATE_Q: 16 * MiB, DEFLATE_Q: 17 * MiB}
PFNS_GPA = 18 * MiB


class BalloonQtest(Qtest):
    """The balloon, as a legacy virtio driver sees it."""

    def __init__(self, device, dirname):
        super().__init__(dirname, ["-device", device], f"{RAM_MIB}M")
        self.queues = {}

    def setup_balloon(self, guest_features):
        """Finds the balloon on bus 0, maps its I/O BAR, negotiates guest_features
        and sets up both queues; returns the host features."""
        dev = next((d for d in range(32) if self.pci_cfg(d, 0) == 0x1002 << 16 | 0x1af4), None)
        if dev is None:
            raise RuntimeError("no legacy virtio-balloon-pci on bus 0")
        self.pci_cfg(dev, 0x10, IO_BASE)
        self.pci_cfg(dev, 0x04, 0x5)  # I/O space, bus master
        self.wr("outb", IO_BASE + STATUS, 0)
        self.wr("outb", IO_BASE + STATUS, 1 | 2)  # ACKNOWLEDGE, DRIVER
        host = self.rd("inl", IO_BASE + HOST_FEATURES)
        self.wr("outl", IO_BASE + GUEST_FEATURES, guest_features)
        for q, gpa in RING_GPA.items():
            self.wr("outw", IO_BASE + QUEUE_SEL, q)
            num = self.rd("inw", IO_BASE + QUEUE_NUM)
            self.cmd(f"memset {gpa:#x} {MiB:#x} 0")
            self.wr("outl", IO_BASE + QUEUE_PFN, gpa >> 12)
            avail = gpa + 16 * num
            used = (avail + 6 + 2 * num + 4095) & ~4095
            self.queues[q] = dict(num=num, desc=gpa, avail=avail, used=used, next=0)
        self.wr("outb", IO_BASE + STATUS, 1 | 2 | 4)  # DRIVER_OK
        return host

    def send_pfns(self, q, pfns):
        """One buffer of 32-bit PFNs on queue q; True once QEMU has used it."""
        vq = self.queues[q]
        data = b"".join(p.to_bytes(4, "little") for p in pfns)
        self.cmd(f"write {PFNS_GPA:#x} {len(data):#x} 0x{data.hex()}")
        slot = vq["next"] % vq["num"]
        self.wr("writeq", vq["desc"] + 16 * slot, PFNS_GPA)
        self.wr("writel", vq["desc"] + 16 * slot + 8, len(data))
        self.wr("writel", vq["desc"] + 16 * slot + 12, 0)  # flags, next
        self.wr("writew", vq["avail"] + 4 + 2 * slot, slot)
        vq["next"] += 1
        self.wr("writew", vq["avail"] + 2, vq["next"] & 0xffff)
        self.wr("outw", IO_BASE + QUEUE_NOTIFY, q)
        return self.rd("readw", vq["used"] + 2) == vq["next"] & 0xffff

    def num_pages(self):
        return self.rd("inl", IO_BASE + CONFIG)


def filled(qt, gpa):
    return qt.rd("readq", gpa) == 0xaaaaaaaaaaaaaaaa


def zero(qt, gpa):
    return qt.rd("readq", gpa) == 0


def test_default_off(dirname):
    with BalloonQtest("virtio-balloon-pci", dirname) as qt:
        host = qt.setup_balloon(0)
        check(not host >> F_HUGE_PAGES & 1, "huge-pages is off by default",
              f"host features {host:#x}")


def test_huge(dirname):
    with BalloonQtest("virtio-balloon-pci,huge-pages=on", dirname) as qt:
        host = qt.setup_balloon(1 << F_HUGE_PAGES)
        check(host >> F_HUGE_PAGES & 1, "huge-pages=on offers feature bit 23",
              f"host features {host:#x}")
        unit = 64 * MiB
        qt.cmd(f"memset {unit - HUGE:#x} {3 * HUGE:#x} 0xaa")
        used = qt.send_pfns(INFLATE_Q, [unit >> 12])
        check(used and zero(qt, unit) and zero(qt, unit + HUGE - 4096) and zero(qt, unit + HUGE - 8)
              and filled(qt, unit - 8) and filled(qt, unit + HUGE),
              "an inflated huge PFN discards exactly its 2 MiB",
              f"used {used}, first {qt.rd('readq', unit):#x}, "
              f"next unit {qt.rd('readq', unit + HUGE):#x}")
        check("huge page" not in qt.log_text(), "a good huge PFN logs no guest error",
              qt.log_text()[-300:])

        # Guest errors: each logged and ignored, RAM untouched.
        qt.cmd("memset 0 4096 0xaa")
        qt.cmd(f"memset {LAST_UNIT:#x} {RAM_MIB * MiB - LAST_UNIT:#x} 0xaa")
        bad = [("not 2 MiB aligned", unit + HUGE + 4096, "not 2 MiB aligned"),
               ("outside RAM", 8 << 30, "outside guest memory"),
               ("at 0, where RAM is split at 640 KiB", 0, "not 2 MiB of plain guest RAM"),
               ("in the BIOS ROM", (4 << 30) - HUGE, "not 2 MiB of plain guest RAM"),
               ("straddling the end of RAM", LAST_UNIT + HUGE, "not 2 MiB of plain guest RAM")]
        for what, gpa, why in bad:
            before = qt.log_text()
            used = qt.send_pfns(INFLATE_Q, [gpa >> 12])
            logged = qt.log_text()[len(before):]
            untouched = gpa >= RAM_MIB * MiB or filled(qt, gpa)
            check(used and f"huge page {gpa:#x} is {why}" in logged and untouched,
                  f"a huge PFN {what} is logged and ignored",
                  f"used {used}, log: {logged.strip()!r}, RAM untouched {untouched}")
        used = qt.send_pfns(INFLATE_Q, [LAST_UNIT >> 12, 0xffffffff])
        check(used and zero(qt, LAST_UNIT + HUGE - 8) and filled(qt, LAST_UNIT + HUGE),
              "the last whole 2 MiB of RAM inflates; PFN 0xffffffff in the same buffer is "
              "ignored", qt.log_text()[-300:])
        before = qt.log_text()
        used = qt.send_pfns(DEFLATE_Q, [unit >> 12, (unit + 4096) >> 12])
        logged = qt.log_text()[len(before):]
        check(used and logged.count("virtio-balloon: huge page") == 1 and
              f"{unit + 4096:#x} is not 2 MiB aligned" in logged,
              "deflate takes a good huge PFN and logs the unaligned one", logged)
        check(qt.alive(), "QEMU is still up after the bad PFNs", "")

        reply = qt.qmp("balloon", value=(RAM_MIB - 1) * MiB)
        check("return" in reply and qt.num_pages() == HUGE // 4096,
              "a 1 MiB balloon target is rounded up to one 2 MiB unit (512 pages)",
              f"{reply}, num_pages {qt.num_pages()}")
        qt.qmp("balloon", value=1)
        check(qt.num_pages() == (LAST_UNIT + HUGE) // 4096,
              "a target under 2 MiB of RAM asks for whole units inside RAM only",
              f"num_pages {qt.num_pages()}, RAM {RAM_MIB} MiB")


def test_not_negotiated(dirname):
    with BalloonQtest("virtio-balloon-pci,huge-pages=on", dirname) as qt:
        qt.setup_balloon(0)
        unit = 64 * MiB
        qt.cmd(f"memset {unit:#x} {HUGE:#x} 0xaa")
        used = qt.send_pfns(INFLATE_Q, [unit >> 12])
        check(used and zero(qt, unit) and filled(qt, unit + 4096),
              "without the feature negotiated a PFN still discards 4 KiB", "")
        qt.qmp("balloon", value=(RAM_MIB - 1) * MiB)
        check(qt.num_pages() == MiB // 4096, "without it the target is not rounded",
              f"num_pages {qt.num_pages()}")


def main():
    if not os.access(QEMU, os.X_OK):
        skip_all("balloon-huge", f"{QEMU} is not built (run make qemu)")
    plan(16)
    for test in (test_default_off, test_huge, test_not_negotiated):
        with tempfile.TemporaryDirectory(prefix="hatrace-qtest-") as d:
            try:
                test(d)
            except (OSError, EOFError, RuntimeError) as e:
                with open(os.path.join(d, "qemu.err")) as f:
                    fail(test.__name__, f"{type(e).__name__}: {e}; QEMU: {f.read().strip()}")
    finish()


if __name__ == "__main__":
    main()
