#!/usr/bin/env python3
"""Hostile peers for hatrace's QMP and guest agent clients and its QEMU harness:
a fake QMP server, a fake guest agent and a fake QEMU (tests/fake_qemu.py) play
them; tests/peer_client drives hatrace's side. Flooding and oversized peers must
meet a deadline and bounded memory, guest text must reach the terminal without
escape sequences, guest counters are range-checked, programs run without a shell,
and stale temp dirs are removed only when they are hatrace's own."""
import errno
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import BUILD, ROOT, check, finish, plan, skip, skip_all  # noqa: E402

CLIENT = os.path.join(BUILD, "tests", "peer_client")
HATRACE = os.path.join(BUILD, "hatrace")
FAKE_QEMU = os.path.join(ROOT, "tests", "fake_qemu.py")
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m"
TMP = tempfile.mkdtemp(prefix="hostile-peers.")
HANG_S = 20  # a call with a 1-2 s deadline that takes this long hangs


def serve(handler):
    """A unix socket whose one connection is handed to handler in a thread."""
    path = tempfile.mktemp(dir=TMP, suffix=".sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(path)
    lsock.listen(1)

    def run():
        conn, _ = lsock.accept()
        try:
            handler(conn, conn.makefile("rb"))
        except OSError:
            pass  # the client gave up: that is what most tests want
        finally:
            conn.close()
            lsock.close()

    threading.Thread(target=run, daemon=True).start()
    return path


def send(conn, obj):
    conn.sendall(json.dumps(obj).encode() + b"\n")


def qmp_peer(behaviour):
    """Greets, accepts qmp_capabilities, then answers the next command with behaviour."""
    def handler(conn, rf):
        send(conn, {"QMP": {"version": {}, "capabilities": []}})
        send(conn, {"return": {}, "id": json.loads(rf.readline())["id"]})
        behaviour(conn, json.loads(rf.readline()))
        time.sleep(HANG_S)
    return serve(handler)


def agent_peer(behaviour):
    def handler(conn, rf):
        behaviour(conn, rf)
        time.sleep(HANG_S)
    return serve(handler)


def client(*args, env=None):
    """Runs peer_client; returns (rc, stdout, stderr, seconds), rc None if it hung."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([CLIENT, *args], capture_output=True, timeout=HANG_S + 10, env=env,
                           cwd=TMP)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), \
            (e.stderr or b"").decode(errors="replace"), time.monotonic() - t0
    out = p.stdout.decode(errors="replace")
    rc = next((int(l.split()[1]) for l in out.splitlines() if l.startswith("result ")), None)
    return rc, out, p.stderr.decode(errors="replace"), time.monotonic() - t0


def value(out, key):
    return next((l.split(" ", 1)[1] for l in out.splitlines() if l.startswith(key + " ")), None)


def terminal_safe(text):
    return not any(c in text for c in "\x1b\x07\x9b\r")


# ---- item 4: the JSON-lines transport

def newline_flood(conn, req):
    # A large socket buffer lets one read take in ~1 MiB of empty lines at once
    # (SO_SNDBUFFORCE as root; 32 in <asm-generic/socket.h>).
    conn.setsockopt(socket.SOL_SOCKET, 32 if os.geteuid() == 0 else socket.SO_SNDBUF, 16 << 20)
    conn.sendall(b" " * (1 << 20))
    chunk = b"\n" * (1 << 20)
    end = time.monotonic() + HANG_S
    while time.monotonic() < end:
        conn.sendall(chunk)


def test_flood_deadline():
    rc, _, err, secs = client("qmp", qmp_peer(newline_flood), "query-status", "1000")
    check(rc == -errno.ETIMEDOUT and secs < 5, "qmp_newline_flood_meets_deadline",
          f"rc {rc} after {secs:.1f} s (1 s deadline); {err.strip()[-200:]}")


def event_flood(conn, req):
    conn.sendall(b'{"event": "BALLOON_CHANGE", "data": {}}\n' * 10000)
    send(conn, {"return": {}, "id": req["id"]})


def test_events_bounded():
    rc, _, err, _ = client("qmp", qmp_peer(event_flood), "query-status", "5000")
    check(rc == -errno.EPROTO and "without the one awaited" in err, "qmp_event_flood_bounded",
          f"rc {rc}; {err.strip()[-200:]}")


def huge_line(conn, rf):
    rf.readline()
    chunk = b"x" * (1 << 20)
    for _ in range(100):
        conn.sendall(chunk)


def test_huge_line():
    rc, _, err, secs = client("agent", agent_peer(huge_line), "ping", "5000")
    check(rc == -errno.EMSGSIZE and "longer than" in err, "agent_100mb_line_refused",
          f"rc {rc} after {secs:.1f} s; {err.strip()[-200:]}")


def silent(conn, rf):
    rf.readline()  # takes the request, never answers


def test_agent_silent():
    rc, _, err, secs = client("agent", agent_peer(silent), "ping", "1000")
    check(rc == -errno.ETIMEDOUT and secs < 5, "agent_never_answers_meets_deadline",
          f"rc {rc} after {secs:.1f} s (1 s deadline); {err.strip()[-200:]}")


def never_read(conn, rf):
    time.sleep(HANG_S)


def test_send_timeout():
    rc, _, err, secs = client("agent", agent_peer(never_read), "ping", "1000", str(32 << 20))
    check(rc == -errno.ETIMEDOUT and secs < 10, "agent_send_meets_deadline",
          f"rc {rc} after {secs:.1f} s (1 s deadline); {err.strip()[-200:]}")


# ---- item 5: guest text on the operator's terminal, bounded logs

def qmp_error(conn, req):
    send(conn, {"error": {"class": "GenericError", "desc": ESCAPES + "bad\x1b[0m thing\x9b"},
                "id": req["id"]})


def test_qmp_error_text():
    rc, _, err, _ = client("qmp", qmp_peer(qmp_error), "query-status", "5000")
    check(rc == -errno.EREMOTEIO and "bad thing" in err and terminal_safe(err),
          "qmp_error_text_terminal_safe", f"rc {rc}; stderr {err!r}")


def agent_error(conn, rf):
    req = json.loads(rf.readline())
    send(conn, {"id": req["id"], "ok": False, "error": ESCAPES + "no such\r\x1b[Kcommand",
                "stderr": "\x1b]52;c;b3duZWQ=\x07tail\x1bPdcs\x1b\\ end"})


def test_agent_error_text():
    rc, _, err, _ = client("agent", agent_peer(agent_error), "ping", "5000")
    check(rc == -errno.EREMOTEIO and "command" in err and "tail" in err and
          terminal_safe(err), "agent_error_text_terminal_safe", f"rc {rc}; stderr {err!r}")


def test_console_flood():
    save = os.path.join(TMP, "console.log")
    rc, out, err, secs = client("vm-start", FAKE_QEMU, "2000", save)
    dir_bytes, saved = value(out, "dir_bytes"), value(out, "saved_bytes")
    maxrss_kib = int(value(out, "maxrss_kib") or 0)
    if not check(rc == -errno.ETIMEDOUT and dir_bytes is not None, "fake_qemu_runs",
                 f"rc {rc} after {secs:.1f} s; stdout {out!r}; stderr {err[-400:]!r}"):
        return
    check(int(dir_bytes) < 1 << 20, "console_not_on_tmp",
          f"{int(dir_bytes) >> 20} MiB in the VM dir after a 84 MiB console flood")
    check(saved is not None and int(saved) <= (4 << 20) + 256 and
          open(save, "rb").read().rstrip().endswith(b"last console line"),
          "console_kept_bounded", f"saved {saved} bytes")
    check(0 < maxrss_kib < 24 << 10, "console_tail_memory_bounded",
          f"peak RSS {maxrss_kib >> 10} MiB printing the tail of a console with a 20 MiB line")
    lines = err.splitlines()
    check(terminal_safe(err) and max(map(len, lines)) <= 300 and
          any("last console line" in l for l in lines) and
          any("last qemu line" in l for l in lines), "console_tail_bounded_and_safe",
          f"longest line {max(map(len, lines))}, escapes {not terminal_safe(err)}: {err[:300]!r}")


# ---- item 6: guest counters

def trace_peer(conn, rf):
    reads = [
        [{"name": "negative", "count": -5, "sum_ns": 1, "first_ns": 1, "last_ns": 2},
         {"name": "huge", "count": 1e30, "sum_ns": 1, "first_ns": 1, "last_ns": 2},
         {"name": "reversed", "count": 1, "sum_ns": 1, "first_ns": 9, "last_ns": 2},
         {"name": "shrinks", "count": 10, "sum_ns": 1000, "first_ns": 1, "last_ns": 2},
         {"name": "grows", "count": 1, "sum_ns": 5, "first_ns": 1, "last_ns": 2},
         {"name": "counted", "mode": "tracepoint", "count": 3, "sum_ns": 0, "first_ns": 1,
          "last_ns": 2}],
        [{"name": "negative", "count": (1 << 63) - 1, "sum_ns": 1, "first_ns": 1, "last_ns": 2},
         {"name": "shrinks", "count": 4, "sum_ns": 10, "first_ns": 1, "last_ns": 3},
         {"name": "grows", "count": (1 << 63) - 1, "sum_ns": 2, "first_ns": 1,
          "last_ns": (1 << 63) - 1},
         {"name": "counted", "mode": "tracepoint", "count": 7, "sum_ns": 0, "first_ns": 1,
          "last_ns": 3}],
    ]
    for events in reads:
        req = json.loads(rf.readline())
        send(conn, {"id": req["id"], "ok": True, "mono_ns": 1, "events": events})


def test_trace_ranges():
    rc, out, err, _ = client("agent-trace", agent_peer(trace_peer))
    first, delta = value(out, "first"), value(out, "delta")
    if not check(rc == 0 and first and delta, "agent_trace_read_runs", f"rc {rc}; {err[-300:]}"):
        return
    first, delta = json.loads(first), json.loads(delta)
    check(sorted(first) == ["counted", "grows", "shrinks"], "agent_trace_rejects_out_of_range",
          f"kept {sorted(first)}")
    # A tracepoint is counted, not timed: inflate writes its sum_ns as null.
    check(delta.get("counted", {}).get("timed") is False and delta["counted"]["count"] == 4,
          "agent_trace_count_only_untimed", f"delta {delta}")
    check(set(delta) == {"grows", "negative", "counted"} and
          delta["grows"] == {"count": (1 << 63) - 2, "sum_ns": 0, "first_ns": 1,
                             "last_ns": (1 << 63) - 1, "timed": True},
          "agent_trace_delta_never_negative", f"delta {delta}")


# ---- item 10: no shell

def test_qemu_version_argv():
    d = os.path.join(TMP, "it's $(touch pwned) `touch pwned2`")
    os.mkdir(d)
    fake = os.path.join(d, "qemu'\"; touch pwned3")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'QEMU emulator version 99.1'\n")
    os.chmod(fake, 0o755)
    rc, out, err, _ = client("qemu-version", fake)
    pwned = [p for p in ("pwned", "pwned2", "pwned3") if os.path.exists(os.path.join(TMP, p))]
    check(value(out, "version") == "QEMU emulator version 99.1" and not pwned,
          "qemu_version_runs_argv", f"version {value(out, 'version')!r}, shell ran: {pwned}")


def start_qemu_version_timeout():
    """A "QEMU" that answers --version, closes its stdout and hangs: run in the
    background (it costs the 10 s timeout), checked by the returned function."""
    fake = os.path.join(TMP, "hanging-qemu")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'QEMU emulator version 99.2'\nexec >&-\nexec sleep 120\n")
    os.chmod(fake, 0o755)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=client("qemu-version", fake)))
    thread.start()

    def finish_check():
        thread.join()
        rc, out, err, secs = result["r"]
        check(rc == 0 and secs < HANG_S, "qemu_version_timeout",
              f"rc {rc} after {secs:.1f} s, version {value(out, 'version')!r}")
    return finish_check


def test_doctor_tcg_argv():
    if os.geteuid():
        skip("doctor_tcg_probe_argv", "hatrace doctor needs root")
        return
    marker = os.path.join(TMP, "doctor-pwned")
    fake = os.path.join(TMP, "my qemu; $(touch doctor-pwned)")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\n[ \"$1 $2\" = '-accel help' ] && printf 'Accelerators:\\ntcg\\n'\n")
    os.chmod(fake, 0o755)
    env = dict(os.environ, HATRACE_QEMU=fake)
    p = subprocess.run([HATRACE, "doctor"], capture_output=True, text=True, env=env, cwd=TMP,
                       timeout=60)
    line = next((l for l in p.stdout.splitlines() if l.startswith("tcg ")), "")
    check(" yes " in line and not os.path.exists(marker), "doctor_tcg_probe_argv",
          f"tcg line {line!r}, shell ran: {os.path.exists(marker)}")


# ---- item 11: stale VM dirs

def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def stale_dir(name, owner_pid, uid=0, marker="hatrace-vm owner {}\n"):
    d = os.path.join("/tmp", name)
    os.mkdir(d, 0o700)
    with open(os.path.join(d, "owner"), "w") as f:
        f.write(marker.format(owner_pid))
    with open(os.path.join(d, "qmp.sock"), "w") as f:
        f.write("x")
    if uid:
        for p in (os.path.join(d, "owner"), os.path.join(d, "qmp.sock"), d):
            os.chown(p, uid, uid)
    return d


def test_stale_dirs():
    if os.geteuid():
        skip("stale_dirs", "needs root (dirs owned by another user)")
        return
    tag = f"hatrace-vm.hp{os.getpid()}"
    outside = os.path.join(TMP, "outside")
    with open(outside, "w") as f:
        f.write("data")
    # Each trap twice: with hatrace's marker, and with the bare PID older versions wrote.
    victims, links, user_dirs = [], [], []
    for i, marker in enumerate(("hatrace-vm owner {}\n", "{}\n")):
        victim = os.path.join(TMP, f"victim{i}")
        os.mkdir(victim, 0o700)
        with open(os.path.join(victim, "owner"), "w") as f:
            f.write(marker.format(dead_pid()))
        with open(os.path.join(victim, "precious"), "w") as f:
            f.write("data")
        victims.append(victim)
        links.append(os.path.join("/tmp", f"{tag}-link{i}"))
        os.symlink(victim, links[-1])
        user_dirs.append(stale_dir(f"{tag}-user{i}", dead_pid(), uid=65534, marker=marker))
    alive = stale_dir(tag + "-alive", os.getpid())
    foreign = stale_dir(tag + "-nomarker", dead_pid(), marker="owner={}\n")
    dead = stale_dir(tag + "-dead", dead_pid())
    os.symlink(outside, os.path.join(dead, "console.log"))
    try:
        rc, out, err, _ = client("vm-start", "/bin/false", "1000", os.path.join(TMP, "unused"))
        check(rc is not None and rc < 0, "vm_start_false_fails", f"rc {rc}")
        check(all(os.path.exists(os.path.join(v, "precious")) for v in victims),
              "stale_dirs_no_symlink_follow", "files behind a symlinked VM dir were removed")
        check(all(os.path.exists(os.path.join(d, "qmp.sock")) for d in user_dirs),
              "stale_dirs_only_root_owned", "a VM dir owned by another user was emptied")
        check(os.path.exists(os.path.join(alive, "qmp.sock")), "stale_dirs_owner_alive_kept",
              "the VM dir of a live hatrace was removed")
        check(os.path.exists(os.path.join(foreign, "qmp.sock")), "stale_dirs_need_marker",
              "a dir without hatrace's marker was removed")
        check(not os.path.lexists(dead) and os.path.exists(outside), "stale_dirs_removed",
              f"dead owner's dir still there: {os.path.lexists(dead)}; "
              f"symlink target kept: {os.path.exists(outside)}")
    finally:
        for p in links + user_dirs + [alive, foreign, dead]:
            if os.path.islink(p):
                os.unlink(p)
            elif os.path.isdir(p):
                shutil.rmtree(p)


def main():
    if not os.path.exists(CLIENT):
        skip_all("hostile_peers", f"{CLIENT} not built")
    plan(25)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        qemu_version_timeout = start_qemu_version_timeout()
        for test in (test_flood_deadline, test_events_bounded, test_huge_line, test_agent_silent,
                     test_send_timeout, test_qmp_error_text, test_agent_error_text,
                     test_console_flood, test_trace_ranges, test_qemu_version_argv,
                     test_doctor_tcg_argv, test_stale_dirs):
            test()
        qemu_version_timeout()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    finish()


main()
