#!/usr/bin/python3
"""hatrace's QEMU build (qemu/): the USDT probes hatrace times phases with are in the
binary (readelf -n) and user/lib/qemu_usdt.c finds them; Debian's stock QEMU is recognised
as having none, by hatrace doctor too."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_lib import BUILD, check, finish, plan, skip, skip_all  # noqa: E402

QEMU = os.path.join(BUILD, "qemu", "qemu-system-x86_64")
STOCK = "/usr/bin/qemu-system-x86_64"
ATTACH = os.path.join(BUILD, "tests", "qemu_usdt_attach")
# New probes (qemu/patches/0001-*, virtio-hyperalloc's of 0003) and 7.2's own that
# hatrace times phases with.
PROBES = ["virtio_balloon_free_page_report", "virtio_mem_set_requested_size",
          "virtio_mem_size_change", "virtio_balloon_actual_bytes",
          "virtio_balloon_to_target", "virtio_balloon_set_config", "virtio_mem_plug_request",
          "virtio_mem_unplug_request", "virtio_mem_send_response", "ram_block_discard_range",
          "balloon_event", "virtio_balloon_handle_output", "hyperalloc_resize_start",
          "hyperalloc_resize_end", "hyperalloc_discard", "hyperalloc_install_start",
          "hyperalloc_install_end", "hyperalloc_populate"]


def usdt_notes(binary):
    """(provider, name) of every stapsdt note, from readelf -n."""
    out = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True,
                         check=True).stdout
    notes, provider = set(), None
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Provider":
            provider = value
        elif key == "Name" and provider:
            notes.add((provider, value))
    return notes


def find(binary):
    out = subprocess.run([ATTACH, "--find", binary], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr.strip()}


def test_probes():
    notes = usdt_notes(QEMU)
    missing = [p for p in PROBES if ("qemu", p) not in notes]
    check(not missing, "our QEMU has the USDT probes hatrace uses (readelf -n)",
          f"missing {missing}")
    print(f"# {len(notes)} stapsdt notes in {QEMU}")
    ours = find(QEMU)
    check(ours.get("probes") == ours.get("wanted") == len(PROBES) and not ours["missing"],
          "qemu_usdt_find sees every probe in our QEMU", str(ours))
    err = find("/etc/hostname")
    check("not an ELF" in err.get("error", ""), "a file that is not ELF is a clear error",
          str(err))
    if not os.path.exists(STOCK):
        skip("stock QEMU has no probes", f"{STOCK} is not installed")
        return
    stock = find(STOCK)
    check(not usdt_notes(STOCK) and stock.get("probes") == 0 and
          len(stock.get("missing", [])) == len(PROBES),
          "Debian's stock QEMU is recognised as having no USDT probes", str(stock)[:200])



def test_doctor():
    """hatrace doctor says whether HATRACE_QEMU has the probes."""
    for qemu, want in ((QEMU, True), (STOCK, False)):
        name = f"doctor: {'our' if want else 'stock'} QEMU {'has' if want else 'lacks'} USDT probes"
        if os.geteuid() != 0 or not os.path.exists(qemu):
            skip(name, "hatrace doctor needs root" if os.geteuid() else f"{qemu} is not installed")
            continue
        out = subprocess.run([os.path.join(BUILD, "hatrace"), "doctor", "-o", "json"],
                             capture_output=True, text=True, env=dict(os.environ, HATRACE_QEMU=qemu))
        features = {f["name"]: f for f in json.loads(out.stdout or "{}").get("features", [])}
        line = features.get("qemu usdt", {})
        check(line.get("ok") is want and qemu in line.get("detail", ""), name, str(line))


def main():
    if not os.access(QEMU, os.X_OK):
        skip_all("qemu probes", f"{QEMU} is not built (run make qemu)")
    plan(6)  # 4 of the binaries, 2 of doctor
    test_probes()
    test_doctor()
    finish()


if __name__ == "__main__":
    main()
