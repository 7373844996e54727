#!/usr/bin/python3
"""Unit test of the guest agent's protocol handling, run on the host with
hatrace-guest --stdio: ping against the host clock, meminfo, run (results,
failures, timeouts, requests served while a workload runs) and bad requests."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import check, finish, plan, start_stdio_agent  # noqa: E402



def host_meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


BAD_REQUESTS = [
    ("not json", "{oops", "bad request"),
    ("not an object", "[1,2]", "not a JSON object"),
    ("no id", '{"cmd":"ping"}', "integer \"id\""),
    ("no cmd", '{"id":90}', "string \"cmd\""),
    ("unknown cmd", '{"id":91,"cmd":"fly"}', "unknown cmd"),
    ("argv not an array", '{"id":92,"cmd":"run","argv":"ls"}', "non-empty array"),
    ("argv with a number", '{"id":93,"cmd":"run","argv":["ls",1]}', "not a string"),
    ("timeout_s out of range", '{"id":94,"cmd":"run","argv":["ls"],"timeout_s":0}',
     "timeout_s"),
    ("trace_read before trace_start", '{"id":95,"cmd":"trace_read"}', "not started"),
    ("over-long line", "x" * (1 << 20 | 5), "longer than"),
]


def main():
    proc, a = start_stdio_agent("guest agent")
    # 14 checks of the protocol, one per bad request, the exit at end of input
    plan(14 + len(BAD_REQUESTS) + 1)
    try:
        test(a)
        proc.stdin.close()
        check(proc.wait(10) == 0, "the agent exits 0 at the end of its input", "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finish()


def test(a):
    ready = a.wait_event("ready", 10)
    check(ready.get("kernel") == os.uname().release and ready.get("mono_ns", 0) > 0,
          "ready event names the kernel", str(ready))

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    ping = a.req("ping")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    check(ping.get("ok") and ping.get("id") == a.next_id - 1 and
          before <= ping.get("mono_ns", 0) <= after,
          "ping carries CLOCK_MONOTONIC and echoes the id", f"{before} {ping} {after}")

    mi = a.req("meminfo")
    total = host_meminfo("MemTotal")
    check(mi.get("MemTotal") == total and 0 < mi.get("MemAvailable", 0) <= total,
          "meminfo reports /proc/meminfo in bytes", f"{mi} vs MemTotal {total}")

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    r = a.req("run", argv=["ht-alloc-install", "--bytes", "4M"])
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    res = r.get("result", {})
    check(r.get("ok") and r.get("exit") == 0 and res.get("pages") == 1024 and
          r.get("elapsed_ns", 0) > 0 and "stderr" not in r, "run returns the workload's JSON", str(r))
    check(before <= r.get("start_ns", 0) <= res.get("install_start_ns", 0) <
          res.get("touch2_start_ns", 0) < res.get("free_start_ns", 0) <=
          r["start_ns"] + r["elapsed_ns"] <= after,
          "run and workload times are ordered on CLOCK_MONOTONIC", f"{before} {r} {after}")

    r = a.req("run", argv=["sh", "-c", "echo '{\"x\":1}'; echo oops >&2; exit 3"])
    check(r.get("ok") and r.get("exit") == 3 and "oops" in r.get("stderr", "") and
          r.get("result") == {"x": 1}, "a failing workload returns exit, stderr and result", str(r))

    r = a.req("run", argv=["sh", "-c", "printf 'bad \\377\\001 bytes' >&2; exit 1"])
    check(r.get("ok") and r.get("exit") == 1 and r.get("stderr") == "bad ?? bytes",
          "stderr that is not UTF-8 is made printable", str(r))

    r = a.req("run", argv=["sh", "-c", "cat; echo '{\"read_stdin\":true}'"])
    check(r.get("exit") == 0 and r.get("result") == {"read_stdin": True} and
          a.req("ping").get("ok"), "a workload reading stdin gets EOF, not the agent's input", str(r))

    r = a.req("run", argv=["sh", "-c", "echo not json"])
    check(r.get("ok") and r.get("exit") == 0 and "result" not in r,
          "no result when the last line is not a JSON object", str(r))

    r = a.req("run", argv=["no-such-workload"])
    check(r.get("ok") is False and "cannot execute no-such-workload" in r.get("error", ""),
          "running a missing program is an error", str(r))

    # A long run does not block other requests; its reply comes later.
    slow = a.send("run", argv=["sleep", "1"])
    t0 = time.monotonic()
    ping = a.req("ping")
    check(ping.get("ok") and slow not in a.pending and time.monotonic() - t0 < 0.9,
          "requests are served while a workload runs", str(ping))
    r = a.wait(slow, 10)
    check(r.get("ok") and r.get("exit") == 0 and r.get("elapsed_ns", 0) >= 1e9,
          "the slow run completes afterwards", str(r))

    t0 = time.monotonic()
    r = a.req("run", argv=["sleep", "30"], timeout_s=1, timeout=15)
    check(r.get("timed_out") is True and r.get("signal") == 9 and time.monotonic() - t0 < 5,
          "run kills a workload at its timeout", str(r))

    for name, line, want in BAD_REQUESTS:
        a.send_raw(line)
        msg = a.read_msg(10)
        a.pending.pop(msg.get("id"), None)
        check(msg.get("ok") is False and want in msg.get("error", ""),
              f"bad request ({name}) gets an error reply", str(msg)[:200])
    check(a.req("ping").get("ok"), "the agent still answers after bad requests", "")


if __name__ == "__main__":
    main()
