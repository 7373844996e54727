#!/usr/bin/env bash
# Failures after inflate has measured keep the data: plots are best-effort
# (missing script, no matplotlib, Ctrl-C while plotting), a results directory
# that became someone else's is not replaced, and a result that cannot be
# encoded is reported; each failure says where the data is. Small runs (virtio-mem,
# 512 MiB -> 256 MiB, 1 iteration) under TCG.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all inflate_late "guest image not built (make)"
plan 12
set -m # each run in its own process group, as in a shell, for Ctrl-C
t=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$t"' EXIT

# run NAME ARGS...: a small inflate run in the background; $pid is hatrace
run() {
	local name=$1
	shift
	"$HATRACE" inflate -t virtio-mem --mem 512M --shrink-to 256M -n 1 "$@" \
		>"$t/$name.out" 2>"$t/$name.err" &
	pid=$!
}
# finished NAME: waits for the run; $rc is its status, and nothing is left behind
finished() {
	local left
	wait $pid
	rc=$?
	left=$(leftovers $pid)
	[ -z "$left" ] && ok "${1}_nothing_left" || fail "${1}_nothing_left" "$(echo $left)"
}
# kept NAME: the directory the error message names, if it holds the raw data
kept() {
	local dir
	dir=$(sed -n 's/^hatrace: the data of this run is kept in //p' "$t/$1.err")
	[ -n "$dir" ] && [ -s "$dir/iterations.csv" ] && [ -s "$dir/rss.csv" ] && echo "$dir"
}
tail_of() { tail -n 4 "$t/$1.err" | tr '\n' ' '; }

# 1. No plot script; -o names an empty directory, with a trailing slash.
mkdir "$t/r1"
HATRACE_ANALYSIS=$t/no-such-script.py run plot_missing -o "$t/r1/"
finished plot_missing
[ $rc = 0 ] && grep -q "warning: no plots: plot script not found" "$t/plot_missing.err" &&
	[ -s "$t/r1/iterations.csv" ] && [ -s "$t/r1/summary.json" ] && [ -f "$t/r1/.hatrace-results" ] &&
	ok inflate_plot_script_missing_keeps_results ||
	fail inflate_plot_script_missing_keeps_results "exit $rc, $(ls "$t/r1" | tr '\n' ' '): $(tail_of plot_missing)"

# 2. No matplotlib: python3 without its site packages.
printf '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n' >"$t/python-bare"
chmod +x "$t/python-bare"
HATRACE_PYTHON=$t/python-bare run no_matplotlib -o "$t/r2"
finished no_matplotlib
[ $rc = 0 ] && grep -q "warning: no plots: $t/python-bare failed" "$t/no_matplotlib.err" &&
	[ -s "$t/r2/iterations.csv" ] && [ -s "$t/r2/summary.json" ] &&
	ok inflate_no_matplotlib_keeps_results ||
	fail inflate_no_matplotlib_keeps_results "exit $rc, $(ls "$t/r2" | tr '\n' ' '): $(tail_of no_matplotlib)"

# 3. -o DIR appears, holding someone's file, while the VM runs: DIR is left
# alone and the message says where the data is. (Plots: a script that succeeds.)
echo pass >"$t/quick_plot.py"
HATRACE_ANALYSIS=$t/quick_plot.py run dir_taken -o "$t/r3"
for ((i = 0; i < 900; i++)); do grep -qs "\] boot" "$t/dir_taken.err" && break; sleep 0.2; done
mkdir -p "$t/r3" && echo precious >"$t/r3/notes"
finished dir_taken
dir=$(kept dir_taken)
[ $rc != 0 ] && grep -q "now has files of its own" "$t/dir_taken.err" && [ -n "$dir" ] &&
	ok inflate_dir_taken_keeps_data ||
	fail inflate_dir_taken_keeps_data "exit $rc, kept '$dir': $(tail_of dir_taken)"
[ "$(ls "$t/r3")" = notes ] && [ "$(cat "$t/r3/notes")" = precious ] &&
	ok inflate_dir_taken_untouched || fail inflate_dir_taken_untouched "r3: $(ls -a "$t/r3" | tr '\n' ' ')"

# 4. Ctrl-C (SIGINT to the process group) while plotting; -o names the results
# of run 1, which are replaced.
printf 'import pathlib, sys, time\npathlib.Path(sys.argv[1], "plotting").touch()\ntime.sleep(120)\n' \
	>"$t/slow_plot.py"
touch "$t/r1/from-run-1"
HATRACE_ANALYSIS=$t/slow_plot.py run ctrl_c_plot -o "$t/r1"
for ((i = 0; i < 900; i++)); do ls "$t"/r1.tmp-*/plotting >/dev/null 2>&1 && break; sleep 0.2; done
kill -INT -- -$pid
finished ctrl_c_plot
[ $rc != 0 ] && grep -q "interrupted while plotting: no plots" "$t/ctrl_c_plot.err" &&
	[ -s "$t/r1/iterations.csv" ] && [ -s "$t/r1/summary.json" ] && [ ! -e "$t/r1/from-run-1" ] &&
	ok inflate_ctrl_c_plotting_keeps_results ||
	fail inflate_ctrl_c_plotting_keeps_results "exit $rc, r1: $(ls "$t/r1" | tr '\n' ' '): $(tail_of ctrl_c_plot)"
pgrep -f "$t/slow_plot.py" >/dev/null && fail inflate_ctrl_c_plotter_stopped "still running" ||
	ok inflate_ctrl_c_plotter_stopped

# 5. A byte that is not UTF-8 in the guest's command line, which meta.json
# records: either it is written as valid JSON, or the failure is reported and
# the data kept.
run not_utf8 -o "$t/r5" --append "$(cat build/guest/cmdline) hatrace_test=$(printf '\377')"
finished not_utf8
if [ $rc = 0 ]; then
	/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$t/r5/meta.json" &&
		ok inflate_not_utf8_meta || fail inflate_not_utf8_meta "meta.json is not valid JSON"
else
	dir=$(kept not_utf8)
	grep -q "meta.json: .*UTF-8" "$t/not_utf8.err" && [ -n "$dir" ] && ok inflate_not_utf8_meta ||
		fail inflate_not_utf8_meta "exit $rc, kept '$dir': $(tail_of not_utf8)"
fi
finish
