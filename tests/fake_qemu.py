#!/usr/bin/env python3
"""A hostile "QEMU" for tests/hostile_peers.py: it floods the guest console (lines
with terminal escapes, one line of 20 MiB) and its own stderr, then answers QMP,
while its guest agent never says it is ready. It reads the console chardev from
its command line, so it works whether hatrace gives it a file or a pipe."""
import json
import os
import socket
import sys
import time

CONSOLE_MIB = int(os.environ.get("FAKE_QEMU_CONSOLE_MIB", "64"))
ESCAPES = b"\x1b[2J\x1b]0;owned\x07\x1b[31m"


def option_values(argv, opt):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == opt]


def chardev_path(argv, chardev_id):
    for spec in option_values(argv, "-chardev"):
        fields = dict(f.split("=", 1) for f in spec.split(",")[1:] if "=" in f)
        if fields.get("id") == chardev_id:
            return fields["path"]
    raise SystemExit(f"fake qemu: no -chardev id={chardev_id}")


def console_fd(argv):
    path = chardev_path(argv, "console")
    if path.startswith("/dev/fdset/"):
        fdset = path[len("/dev/fdset/"):].split(",")[0]
        for spec in option_values(argv, "-add-fd"):
            fields = dict(f.split("=", 1) for f in spec.split(","))
            if fields.get("set") == fdset:
                return int(fields["fd"])
        raise SystemExit("fake qemu: no -add-fd for the console")
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def listen(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    return s


def main():
    argv = sys.argv[1:]
    qmp = listen(chardev_path(argv, "qmp"))
    agent = listen(chardev_path(argv, "agent"))  # never accepted: the guest never gets ready
    fd = console_fd(argv)
    line = ESCAPES + b"guest console line, with terminal escapes\r\n"
    block = line * ((1 << 20) // len(line))
    for _ in range(CONSOLE_MIB):
        write_all(fd, block)
    write_all(fd, b"x" * (20 << 20) + b"\n")
    write_all(fd, ESCAPES + b"last console line\n")
    write_all(2, (ESCAPES + b"qemu stderr line\n") * 4096)
    write_all(2, b"\x1b]52;c;b3duZWQ=\x07last qemu line\n")
    conn, _ = qmp.accept()
    f = conn.makefile("rwb")
    f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
    f.flush()
    for raw in f:
        req = json.loads(raw)
        f.write(json.dumps({"return": {}, "id": req.get("id")}).encode() + b"\n")
        f.flush()
    time.sleep(600)


main()
