"""Helpers for the guest tests: result lines, an agent client (user/harness/agent_proto.h),
a QMP client and a TCG guest VM that never outlives the test."""
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
GUEST = os.path.join(BUILD, "guest")
failures = 0

# tests/run's timeout sends SIGTERM: unwind so that VMs and temp dirs are cleaned up.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def ok(name):
    print(f"ok - {name}", flush=True)


def fail(name, why):
    global failures
    failures += 1
    print(f"not ok - {name}: {why}", flush=True)


def skip(name, why):
    print(f"skip - {name}: {why}", flush=True)


def plan(n):
    """The number of ok/not ok/skip lines this test reports (tests/run checks it)."""
    print(f"1..{n}", flush=True)


def skip_all(name, why):
    """Nothing of this test can run here: one skip, its plan, and the end."""
    skip(name, why)
    plan(1)
    raise SystemExit(0)


def check(cond, name, why=""):
    if cond:
        ok(name)
    else:
        fail(name, why)
    return bool(cond)


def finish():
    raise SystemExit(1 if failures else 0)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()


class Agent:
    """Line-JSON client over two raw fds; replies are matched by id, events kept."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""
        self.next_id, self.pending, self.events = 1, {}, []

    def send_raw(self, line):
        data = line.encode() + b"\n"
        while data:
            data = data[os.write(self.wfd, data):]

    def send(self, cmd, **args):
        rid = self.next_id
        self.next_id += 1
        self.send_raw(json.dumps(dict(id=rid, cmd=cmd, **args)))
        return rid

    def read_msg(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise TimeoutError(f"no message from the agent within {timeout:.0f} s")
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise EOFError("the agent closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if "event" in msg:
            self.events.append(msg)
        else:
            self.pending[msg.get("id")] = msg
        return msg

    def wait(self, rid, timeout=60):
        end = time.monotonic() + timeout
        while rid not in self.pending:
            self.read_msg(end - time.monotonic())
        return self.pending.pop(rid)

    def req(self, cmd, timeout=60, **args):
        return self.wait(self.send(cmd, **args), timeout)

    def wait_event(self, name, timeout):
        end = time.monotonic() + timeout
        while not any(e.get("event") == name for e in self.events):
            self.read_msg(end - time.monotonic())
        return next(e for e in self.events if e.get("event") == name)


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, execute, **args):
        msg = {"execute": execute}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {execute}: {reply['error'].get('desc')}")
            return reply.get("return")

    def close(self):
        self.sock.close()


def run_workload(agent, argv, timeout=300):
    """A workload's result line; when it did not run cleanly, {"reply": the agent's
    reply}, which fails the check of the result and shows why."""
    rep = agent.req("run", timeout=timeout + 30, argv=argv, timeout_s=timeout)
    good = rep.get("ok") and rep.get("exit") == 0 and isinstance(rep.get("result"), dict)
    return rep["result"] if good else {"reply": rep}


def balloon_actual(vm):
    return vm.qmp.cmd("query-balloon")["actual"]


AGENT = os.path.join(GUEST, "bin", "hatrace-guest")
# Timed on request only: every page allocation and fault, and the balloon's
# per-page enqueue (slow under TCG; inflate counts pages by vmstat instead).
OPT_IN_FUNCTIONS = [{"name": "alloc_pages", "func": "__alloc_pages", "within": "any"},
                    {"name": "mm_fault", "func": "handle_mm_fault", "within": "any"},
                    {"name": "balloon_page_enqueue", "func": "balloon_page_enqueue",
                     "within": "balloon_size_work"}]


def tech_functions():
    """The guest functions hatrace inflate's techniques trace (their guest_funcs
    and breakdown_guest_funcs tables in user/inflate/tech-*.c and the balloon's
    in technique.h), once each, as trace_start "functions"."""
    import glob
    import re
    funcs = {}
    inflate = os.path.join(ROOT, "user", "inflate")
    for path in [os.path.join(inflate, "technique.h")] + sorted(glob.glob(os.path.join(inflate, "tech-*.c"))):
        for name, func, within in re.findall(
                r'\{ "([a-z_0-9]+)", "([a-z_0-9]+)", (NULL|"[a-z_0-9]+") \}', open(path).read()):
            funcs[name] = {"name": name, "func": func}
            if within != "NULL":
                funcs[name]["within"] = within.strip('"')
    return list(funcs.values())


def start_stdio_agent(name):
    """Runs the agent on the host, speaking over its stdin/stdout, with the guest
    workloads on its PATH; skips the test (and exits) if it is not built."""
    if not os.path.exists(AGENT):
        skip_all(name, f"{AGENT} is not built (run make)")
    env = dict(os.environ, PATH=os.path.join(GUEST, "bin") + ":/usr/bin:/bin")
    proc = subprocess.Popen([AGENT, "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, preexec_fn=die_with_parent)
    return proc, Agent(proc.stdout.fileno(), proc.stdin.fileno())


def require_guest(name, image="bzImage", how="make"):
    """Skips the whole test (and exits) unless the guest image (and the kernel
    image, built by `how`) and QEMU are there."""
    for path in ("bzImage", "initramfs.cpio.gz", "cmdline", image):
        if not os.path.exists(os.path.join(GUEST, path)):
            skip_all(name, f"{GUEST}/{path} is not built (run {how})")
    if not shutil.which("qemu-system-x86_64"):
        skip_all(name, "qemu-system-x86_64 is not installed")


class GuestVM:
    """Boots build/guest/bzImage + initramfs under TCG with the agent port, QMP,
    a balloon (balloon: its extra -device options) and (optionally) a virtio-mem
    device; qemu: the command (binary and options), default the binary on PATH;
    kernel: the image in build/guest (bzImage-<flavour> for another flavour)."""

    def __init__(self, mem_mib=1024, vmem_max_mib=0, smp=2, append="",
                 qemu=("qemu-system-x86_64",), balloon="free-page-reporting=on",
                 kernel="bzImage"):
        self.dir = tempfile.mkdtemp(prefix="hatrace-guest-")
        self.console = os.path.join(self.dir, "console.log")
        agent_path = os.path.join(self.dir, "agent.sock")
        qmp_path = os.path.join(self.dir, "qmp.sock")
        with open(os.path.join(GUEST, "cmdline")) as f:
            cmdline = (f.read().strip() + " " + append).strip()
        mem = f"{mem_mib}M"
        dev = []
        if vmem_max_mib:
            mem += f",maxmem={mem_mib + vmem_max_mib}M"
            dev += ["-object", f"memory-backend-ram,id=vmem0mem,size={vmem_max_mib}M",
                    "-device", "virtio-mem-pci,id=vmem0,memdev=vmem0mem,requested-size=0"]
        argv = [*qemu, "-nodefaults", "-no-user-config",
                "-accel", "tcg,thread=multi", "-smp", str(smp),
                "-m", mem, "-nographic", "-no-reboot", "-monitor", "none",
                "-kernel", os.path.join(GUEST, kernel),
                "-initrd", os.path.join(GUEST, "initramfs.cpio.gz"),
                "-append", cmdline, "-serial", f"file:{self.console}",
                "-qmp", f"unix:{qmp_path},server=on,wait=off",
                "-device", "virtio-serial-pci",
                "-chardev", f"socket,id=agent,path={agent_path},server=on,wait=off",
                "-device", "virtserialport,chardev=agent,name=org.hatrace.agent",
                "-device", ",".join(filter(None, ["virtio-balloon-pci,id=balloon0", balloon]))] + dev
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(self.dir, "qemu.out"), "w"),
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        for _ in range(100):
            if os.path.exists(agent_path) and os.path.exists(qmp_path):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("QEMU exited: " + self.tail(os.path.join(self.dir, "qemu.out")))
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(agent_path)
        self.agent = Agent(self.sock.fileno(), self.sock.fileno())
        self.qmp = Qmp(qmp_path)

    @staticmethod
    def tail(path, n=25):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def console_tail(self, n=25):
        return self.tail(self.console, n)

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def destroy(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for closer in (self.sock.close, self.qmp.close):
            try:
                closer()
            except Exception:
                pass
        subprocess.run(["rm", "-rf", self.dir])

    def run(self, name, test):
        """Runs test(self), a failure of the VM being one `not ok` with the console's
        tail; destroys the VM whatever happens."""
        try:
            test(self)
        except (TimeoutError, EOFError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            fail(name, f"{type(e).__name__}: {e}")
            print("# console tail:\n" + "".join("#   " + line for line in
                                                 self.console_tail().splitlines(True)))
        finally:
            self.destroy()


def boot_and_test(name, body, ready_timeout=120, mem_mib=1024, **vm_args):
    """Boots a guest (GuestVM's arguments) and returns body(vm) once its agent is ready;
    an error is one `not ok` with the console's tail (and None). The VM never stays."""
    vm = GuestVM(mem_mib=mem_mib, **vm_args)
    try:
        ready = vm.agent.wait_event("ready", ready_timeout)
        print(f"# {name}: guest ready {time.monotonic() - vm.start:.1f} s after QEMU start, "
              f"kernel {ready.get('kernel')}")
        return body(vm)
    except (TimeoutError, EOFError, RuntimeError, OSError, KeyError) as e:
        fail(name, f"{type(e).__name__}: {e}")
        print("# console tail:\n" + "".join("#   " + line for line in
                                             vm.console_tail().splitlines(True)))
        return None
    finally:
        vm.destroy()
