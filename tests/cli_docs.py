#!/usr/bin/python3
"""The README and the man page agree with --help: every option of a command's
--help is in the README's section of that command and in the man page; every
file inflate's --help says it writes is in both, and every technique it lists
is named there and in docs/results.md; footprint's Perfetto tracks
and hist's JSON start/interval lines are described alike in all three."""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HATRACE = os.environ.get("HATRACE", os.path.join(os.environ.get("BUILD", "build"), "hatrace"))


FAILED = []


def ok(name, good, why):
    print(f"ok - {name}" if good else f"not ok - {name}: {why}", flush=True)
    if not good:
        FAILED.append(name)


def help_text(*args):
    return subprocess.run([HATRACE, *args, "--help"], capture_output=True, text=True,
                          cwd=ROOT).stdout


def options(text):
    """(short or None, long) of every option that --help names."""
    found = {}
    for short, long_ in re.findall(r"(?:^|[\s\[])(?:(-[A-Za-z]), )?(--[a-z][a-z-]+)", text, re.M):
        if long_ != "--help":
            found[long_] = found.get(long_) or short or None
    known = set(found.values())
    for short in re.findall(r"\[(-[A-Za-z])[\s\]]", text):  # short-only, e.g. [-o text|json]
        if short not in known:
            found[short] = None
    return found


def mentions(doc, short, long_):
    return any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", doc) for o in (short, long_) if o)


def main():
    readme = open(os.path.join(ROOT, "README.md")).read()
    man = open(os.path.join(ROOT, "user", "hatrace.8")).read().replace("\\-", "-")
    top = help_text()
    cmds = re.findall(r"^  (\w+)", top.split("Commands:", 1)[1].split("\n\n", 1)[0], re.M)
    print(f"1..{2 * len(cmds) + 8}")
    for c in cmds:
        text = help_text(c)
        section = re.search(rf"^### `hatrace {c}\b.*?(?=^##)", readme, re.M | re.S)
        opts = options(text)
        miss = [o for o, s in opts.items() if not section or not mentions(section[0], s, o)]
        ok(f"README's {c} section has every option of {c} --help", section and opts and not miss,
           f"missing {miss}" if section else "no section")
        miss = [o for o, s in opts.items() if not mentions(man, s, o)]
        ok(f"the man page has every option of {c} --help", not miss, f"missing {miss}")

    text = help_text("inflate")
    files = re.findall(r"[\w.-]+\.(?:json|csv|txt)|consoles/",
                       text.split("DIR gets", 1)[1].split("\n\n", 1)[0])
    section = re.search(r"^### `hatrace inflate\b.*?(?=^##)", readme, re.M | re.S)[0]
    man_inflate = man.split(".B inflate\n", 1)[1].split(".SH", 1)[0]
    ok("inflate --help names its output files", len(files) >= 8, f"{files}")
    ok("README's inflate section names every file of --help",
       all(f in section for f in files), f"missing {[f for f in files if f not in section]}")
    ok("the man page's inflate section names every file of --help",
       all(f in man_inflate for f in files), f"missing {[f for f in files if f not in man_inflate]}")

    techs = re.findall(r"^  ([a-z][\w-]+) {2,}\w", text.split("Techniques", 1)[1], re.M)
    results_md = open(os.path.join(ROOT, "docs", "results.md")).read()
    row = re.search(r"^\| `<technique>` \|(.*)$", results_md, re.M)
    named = {"README": section, "man page": man_inflate, "docs/results.md": row[1] if row else ""}
    miss = {w: [t for t in techs if not mentions(d, None, t)] for w, d in named.items()}
    ok("inflate --help lists its techniques", len(techs) >= 6, f"{techs}")
    ok("README, man page and docs/results.md name every technique of inflate --help",
       not any(miss.values()), f"missing {miss}")

    track = re.compile(r"one counter\s+track per (\w+)")
    said = {"--help": track.findall(help_text("footprint")), "README": track.findall(readme),
            "man page": track.findall(man)}
    ok("footprint's Perfetto tracks are described alike", all(v == ["process"] for v in said.values()),
       f"{said}")
    for kind in ("start", "interval"):
        line = f'{{"type":"{kind}","time_ns":..}}'
        where = {"--help": help_text("hist"), "README": readme, "man page": man}
        miss = [w for w, t in where.items() if line not in t.replace("\\(dq", '"')]
        ok(f"hist's JSON {kind} line is described in --help, README and man page", not miss,
           f"missing in {miss}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
