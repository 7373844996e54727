"""A QEMU under -accel qtest, driven through QEMU's qtest protocol from Python: the tests
play the guest driver, so they need neither a guest kernel nor CPU emulation.
HATRACE_TEST_QEMU names another binary to test."""
import json
import os
import socket
import subprocess
import time

from guest_lib import BUILD, die_with_parent

QEMU = os.environ.get("HATRACE_TEST_QEMU", os.path.join(BUILD, "qemu", "qemu-system-x86_64"))
MiB = 1 << 20


class Qtest:
    """This side listens, QEMU connects (as libqtest does)."""

    def __init__(self, dirname, args, mem):
        """mem: the -m argument."""
        self.log = os.path.join(dirname, "qemu.log")
        sock_path = os.path.join(dirname, "qtest.sock")
        qmp_path = os.path.join(dirname, "qmp.sock")
        self.err_path = os.path.join(dirname, "qemu.err")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(sock_path)
        listener.listen(1)
        listener.settimeout(0.2)
        self.proc = subprocess.Popen(
            [QEMU, "-machine", "pc", "-accel", "qtest", "-qtest", f"unix:{sock_path}",
             "-qtest-log", "/dev/null",
             "-nodefaults", "-display", "none", "-m", mem, *args,
             "-qmp", f"unix:{qmp_path},server=on,wait=off",
             "-d", "guest_errors", "-D", self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.err_path, "w"), preexec_fn=die_with_parent)
        end = time.monotonic() + 20
        self.sock = None
        while not self.sock and self.proc.poll() is None and time.monotonic() < end:
            try:
                self.sock, _ = listener.accept()
            except socket.timeout:
                pass
        listener.close()
        if not self.sock:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"QEMU did not connect to qtest: {self.stderr()[-300:]}")
        self.sock.settimeout(20)
        self.f = self.sock.makefile("rw")
        self.qmp_path = qmp_path
        self.events = []

    def stderr(self):
        with open(self.err_path) as f:
            return f.read().strip()

    def cmd(self, line):
        self.f.write(line + "\n")
        self.f.flush()
        while True:
            reply = self.f.readline()
            if not reply:
                raise EOFError(f"QEMU closed the qtest socket after '{line}'")
            if not reply.startswith("IRQ"):
                break
        if not reply.startswith("OK"):
            raise RuntimeError(f"qtest '{line}': {reply.strip()}")
        return reply.split()[1] if len(reply.split()) > 1 else None

    def rd(self, kind, addr):
        return int(self.cmd(f"{kind} {addr:#x}"), 16)

    def wr(self, kind, addr, value):
        self.cmd(f"{kind} {addr:#x} {value:#x}")

    def write(self, gpa, data):
        self.cmd(f"write {gpa:#x} {len(data):#x} 0x{data.hex()}")

    def read(self, gpa, size):
        return bytes.fromhex(self.cmd(f"read {gpa:#x} {size:#x}")[2:])

    def pci_cfg(self, dev, offset, value=None, size=4):
        """Config space of bus 0 device dev; dword-aligned accesses through 0xcf8/0xcfc."""
        self.wr("outl", 0xcf8, 0x80000000 | dev << 11 | offset & ~3)
        if value is None:
            return self.rd("inl", 0xcfc) >> 8 * (offset & 3) & ((1 << 8 * size) - 1)
        self.wr("outl", 0xcfc, value)

    def qmp(self, execute, **args):
        """One command on a fresh connection; events seen meanwhile go to self.events."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        f.readline()
        for msg in ({"execute": "qmp_capabilities"}, {"execute": execute, "arguments": args}):
            f.write(json.dumps(msg) + "\n")
            f.flush()
            while "event" in (reply := json.loads(f.readline())):
                self.events.append(reply)
        s.close()
        return reply

    def alive(self):
        return self.proc.poll() is None and self.rd("readl", 0) is not None

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.sock.close()
