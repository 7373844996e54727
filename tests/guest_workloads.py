#!/usr/bin/python3
"""Unit test of the static guest workloads, run on the host: results, bad input,
and the integrity daemon catching a page changed behind its back."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import GUEST, check, fail, finish, plan, skip, skip_all  # noqa: E402

BIN = os.path.join(GUEST, "bin")


def run(*argv, timeout=120):
    p = subprocess.run([os.path.join(BIN, argv[0])] + list(argv[1:]), capture_output=True,
                       text=True, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    return p.returncode, result, p.stderr


def bad_input(name, *argv):
    rc, result, err = run(*argv)
    check(rc != 0 and result is None and len(err.strip().splitlines()) == 1,
          f"{name}: one-line error and non-zero exit", f"rc={rc} stderr={err!r}")


def wait_gone(pid, timeout):
    """True once pid has ended (a zombie waiting for its reaper counts as ended)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def corrupt_page(pid, nbytes, page, data):
    """Writes data into page `page` of the daemon's mapping of nbytes (a size no
    thread stack has)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if hi - lo == nbytes:
                with open(f"/proc/{pid}/mem", "r+b") as mem:
                    mem.seek(lo + page * 4096)
                    mem.write(data)
                return True
    return False


def main():
    if not os.path.exists(os.path.join(BIN, "ht-integrity")):
        skip_all("guest workloads", f"{BIN} is not built (run make)")
    plan(42)

    rc, r, err = run("ht-touch", "--bytes", "8M", "--threads", "3")
    check(rc == 0 and r and r.get("workload") == "ht-touch" and r["pages"] == 2048 and
          r["threads"] == 3 and r["touch_ns"] > 0 and r["free_ns"] >= 0,
          "ht-touch result", f"rc={rc} {r} {err}")
    rc, r, err = run("ht-alloc-install", "--bytes", "8M", "--threads", "2")
    check(rc == 0 and r and r["pages"] == 2048 and r["install_ns"] > 0 and r["touch2_ns"] > 0,
          "ht-alloc-install result", f"rc={rc} {r} {err}")

    rc, r, err = run("ht-thp", "--units", "2", "--rounds", "2")
    check(rc == 0 and r and r["units"] == 2 and r["rounds"] == 2 and 0 <= r["thp"] <= 4 and
          r["bad_pages"] == 0, "ht-thp result", f"rc={rc} {r} {err}")
    rc, r, err = run("ht-stress", "fork", "--procs", "20", "--parallel", "4", "--bytes", "64K")
    check(rc == 0 and r and r["mode"] == "fork" and r["procs"] == 20 and r["failed"] == 0 and
          r["bad_pages"] == 0, "ht-stress fork result", f"rc={rc} {r} {err}")
    bad_input("ht-thp without --units", "ht-thp")
    bad_input("ht-thp --units 0", "ht-thp", "--units", "0")
    bad_input("ht-thp --bogus", "ht-thp", "--units", "1", "--bogus")
    bad_input("ht-stress without a mode", "ht-stress")
    bad_input("ht-stress fork without --procs", "ht-stress", "fork")
    bad_input("ht-stress fork --procs x", "ht-stress", "fork", "--procs", "x")
    bad_input("ht-stress tmpfs --bytes 100", "ht-stress", "tmpfs", "--bytes", "100")
    bad_input("ht-touch --bytes 0", "ht-touch", "--bytes", "0")
    bad_input("ht-touch --bytes 1000", "ht-touch", "--bytes", "1000")
    bad_input("ht-touch --bytes x", "ht-touch", "--bytes", "x")
    bad_input("ht-touch --threads 0", "ht-touch", "--bytes", "8M", "--threads", "0")
    bad_input("ht-alloc-install --threads 9999", "ht-alloc-install", "--bytes", "8M",
              "--threads", "9999")
    bad_input("ht-alloc-install extra operand", "ht-alloc-install", "--bytes", "8M", "extra")
    bad_input("ht-hostile without a category", "ht-hostile", "--ram-mib", "512")
    bad_input("ht-hostile unknown category", "ht-hostile", "bogus", "--ram-mib", "512")
    bad_input("ht-hostile --ram-mib x", "ht-hostile", "zones", "--ram-mib", "x")
    bad_input("ht-hostile without the device", "ht-hostile", "zones", "--ram-mib", "512")
    for name, argv, unit in (("ht-stream", ["--bytes", "6M"], 24), ("ht-ftq", [], 1)):
        rc, r, err = run(name, *argv, "--threads", "2", "--seconds", "1", "--interval-ms", "50")
        series = r.get("series") if r else None
        check(rc == 0 and r["workload"] == name and r["interval_ns"] == 50_000_000 and
              r["start_ns"] > 0 and isinstance(series, list) and len(series) == 2 and
              all(len(row) == 20 for row in series),
              f"{name}: 2 threads x 20 intervals of 50 ms", f"rc={rc} {r} {err}")
        # Whole units, every thread worked; a loaded host may starve a thread for
        # many intervals, so no more is asked.
        check(series and all(v % unit == 0 for row in series for v in row) and
              all(any(row) for row in series), f"{name}: whole units from every thread",
              str(series))
    bad_input("ht-stream --seconds 0", "ht-stream", "--bytes", "6M", "--seconds", "0")
    bad_input("ht-stream --bytes below 3 pages a thread", "ht-stream", "--bytes", "16K",
              "--threads", "2")
    bad_input("ht-ftq --bytes", "ht-ftq", "--bytes", "8M")
    bad_input("ht-ftq too many intervals", "ht-ftq", "--seconds", "3600", "--interval-ms", "1")
    bad_input("ht-build --profile bogus", "ht-build", "start", "--profile", "bogus")
    with tempfile.TemporaryDirectory() as tmp:
        rc, r, err = run("ht-build", "status", "--dir", tmp)
        check(rc != 0 and "no run was started" in err, "ht-build status without a run fails",
              f"rc={rc} {err!r}")
        rc, r, err = run("ht-build", "start", "--ram", "128M", "--jobs", "18", "--threads", "2",
                         "--seed", "3", "--dir", tmp)
        end, r = time.monotonic() + 120, None
        while rc == 0 and time.monotonic() < end:
            rc, r, err = run("ht-build", "status", "--dir", tmp)
            if not r or not r.get("running"):
                break
            time.sleep(0.2)
        check(rc == 0 and r and r["running"] is False and r["jobs"] == 18 and
              r["failed_jobs"] == 0 and 0 < r["peak_heap_bytes"] <= 2 * (128 << 20) and
              r["end_ns"] > r["start_ns"], "ht-build runs 18 jobs and a link step",
              f"rc={rc} {r} {err}")
        check(os.listdir(os.path.join(tmp, "obj")) == [], "ht-build deletes its objects",
              str(os.listdir(os.path.join(tmp, "obj"))))
    bad_input("ht-integrity verify --bytes", "ht-integrity", "verify", "--bytes", "8M")

    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "integrity")
        rc, r, err = run("ht-integrity", "verify", "--dir", d)
        check(rc != 0 and "no ht-integrity daemon" in err, "verify without a daemon fails",
              f"rc={rc} {err!r}")
        rc, fill, err = run("ht-integrity", "fill", "--bytes", "12M", "--threads", "2",
                            "--seed", "7", "--dir", d)
        if not check(rc == 0 and fill and fill["pages"] == 3072 and fill["pid"] > 0,
                     "integrity fill starts a daemon", f"rc={rc} {fill} {err}"):
            finish()
        pid = fill["pid"]
        try:
            rc, r, err = run("ht-integrity", "fill", "--bytes", "8M", "--dir", d)
            check(rc != 0 and "already runs" in err, "a second fill is refused", err)
            rc, r, err = run("ht-integrity", "verify", "--threads", "2", "--dir", d)
            check(rc == 0 and r and r["bad_pages"] == 0 and r["pages"] == 3072 and
                  r["first_bad_page"] == -1, "verify of untouched memory is clean", f"{r} {err}")
            if os.geteuid() != 0:
                skip("verify finds changed pages", "writing /proc/PID/mem needs root")
            elif not corrupt_page(pid, 12 << 20, 5, b"\0" * 4096) or \
                    not corrupt_page(pid, 12 << 20, 9, b"\1"):
                fail("verify finds changed pages", "daemon mapping not found")
            else:
                rc, r, err = run("ht-integrity", "verify", "--dir", d)
                check(rc == 1 and r and r["bad_pages"] == 2 and r["zero_pages"] == 1 and
                      r["first_bad_page"] == 5, "verify finds a zeroed and a changed page",
                      f"rc={rc} {r}")
            rc, r, err = run("ht-integrity", "stop", "--dir", d)
            check(r and r.get("op") == "stop" and r["pages"] == 3072, "stop verifies", str(r))
            # stop returns after the daemon dropped its lock: a new fill starts at once
            rc2, again, err2 = run("ht-integrity", "fill", "--bytes", "4M", "--dir", d)
            check(rc2 == 0 and again and again.get("pages") == 1024,
                  "a fill right after stop starts in the same directory", f"rc={rc2} {again} {err2}")
            run("ht-integrity", "stop", "--dir", d)
            check(wait_gone(pid, 10), "the daemon exits after stop", f"pid {pid} still alive")
        finally:
            subprocess.run(["kill", str(pid)], capture_output=True)
    finish()


if __name__ == "__main__":
    main()
