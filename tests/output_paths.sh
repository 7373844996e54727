#!/usr/bin/env bash
# Output paths: footprint -w writes devices and FIFOs in place, replaces only
# regular files (a symlink's target) and refuses the rest before tracing;
# inflate -o replaces only empty or hatrace results directories and refuses
# the rest before any VM boots; errors quote what the user typed.
cd "$(dirname "$0")/.." && . tests/lib.sh
need_root output_paths
plan 24
t=$(mktemp -d /tmp/hatrace-test.XXXXXX)
sleep 600 &
target=$!
trap 'kill $target 2>/dev/null; rm -rf "$t"' EXIT

# kind PATH: what is at PATH, without following a symlink
kind() { stat -c %F "$1" 2>/dev/null || echo missing; }
# fp NAME ARGS...: footprint of the sleeper for 0.3 s, stderr in $t/NAME.err
fp() {
	local name=$1
	shift
	timeout 30 "$HATRACE" footprint -p $target -d 0.3 "$@" >"$t/$name.out" 2>"$t/$name.err"
}
# refused NAME PATTERN ARGS...: non-zero exit, PATTERN on stderr, no trace ran
refused() {
	local name=$1 pat=$2
	shift 2
	if fp "$name" "$@"; then
		fail "$name" "exit 0"
	elif ! grep -q -- "$pat" "$t/$name.err"; then
		fail "$name" "stderr: $(head -c 300 "$t/$name.err")"
	elif grep -q "rows" "$t/$name.err"; then
		fail "$name" "refused only after tracing: $(cat "$t/$name.err")"
	else
		ok "$name"
	fi
}

{
	# a private /dev/null: as root, replacing it is what the bug did
	mknod "$t/null" c 1 3
	fp fp_w_chardev -w "$t/null" && [ "$(kind "$t/null")" = "character special file" ] &&
		ok fp_w_chardev || fail fp_w_chardev "now $(kind "$t/null"): $(cat "$t/fp_w_chardev.err")"
	ln -s null "$t/nlink"
	fp fp_w_symlink_chardev -w "$t/nlink" && [ "$(kind "$t/nlink")" = "symbolic link" ] &&
		[ "$(kind "$t/null")" = "character special file" ] && ok fp_w_symlink_chardev ||
		fail fp_w_symlink_chardev "link $(kind "$t/nlink"), device $(kind "$t/null")"
	echo old >"$t/real"
	ln -s real "$t/rlink"
	fp fp_w_symlink_file -w "$t/rlink" && [ "$(kind "$t/rlink")" = "symbolic link" ] &&
		head -n 1 "$t/real" | grep -q '^time_ns,pid' && ok fp_w_symlink_file ||
		fail fp_w_symlink_file "link $(kind "$t/rlink"), target: $(head -c 100 "$t/real")"
	mkfifo "$t/fifo"
	timeout 30 cat "$t/fifo" >"$t/fifo.out" &
	reader=$!
	fp fp_w_fifo -w "$t/fifo"
	rc=$?
	wait $reader
	[ $rc = 0 ] && [ "$(kind "$t/fifo")" = fifo ] && grep -q '^time_ns,pid' "$t/fifo.out" &&
		ok fp_w_fifo || fail fp_w_fifo "exit $rc, now $(kind "$t/fifo"), read: $(head -c 100 "$t/fifo.out")"
	refused fp_w_empty "empty path" -w ""
	ln -s missing "$t/dangling"
	refused fp_w_dangling "symbolic link to a missing file" -w "$t/dangling"
	[ "$(kind "$t/dangling")" = "symbolic link" ] && ok fp_w_dangling_kept ||
		fail fp_w_dangling_kept "now $(kind "$t/dangling")"
	mknod "$t/blk" b 7 0
	refused fp_w_blockdev "not a regular file, character device or FIFO" -w "$t/blk"
	[ "$(kind "$t/blk")" = "block special file" ] && ok fp_w_blockdev_kept ||
		fail fp_w_blockdev_kept "now $(kind "$t/blk")"
	refused fp_w_missing_dir "No such file or directory" -w "$t/nodir/fp.csv"

	# SIGHUP (the terminal went away) ends the trace like Ctrl-C: the file is written
	"$HATRACE" footprint -p $target -w "$t/hup.csv" 2>"$t/hup.err" &
	pid=$!
	for ((i = 0; i < 100; i++)); do ls "$t"/hup.csv.* >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 2 # past BPF load and the signal handlers
	kill -HUP $pid
	wait $pid
	rc=$?
	[ $rc = 0 ] && head -n 1 "$t/hup.csv" 2>/dev/null | grep -q '^time_ns,pid' &&
		! ls "$t"/hup.csv.* >/dev/null 2>&1 && ok fp_sighup_writes_file ||
		fail fp_sighup_writes_file "exit $rc, $(ls "$t" | grep hup | tr '\n' ' ')"

	# --all-vms when /proc cannot be read: say so, not "no VMs found"
	if command -v unshare >/dev/null && command -v setpriv >/dev/null; then
		unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=000 none /proc &&
			exec setpriv --bounding-set -dac_override,-dac_read_search "$0" footprint --all-vms' \
			"$HATRACE" 2>"$t/allvms.err"
		grep -q "cannot scan /proc for VMs: Permission denied" "$t/allvms.err" &&
			ok fp_all_vms_scan_failed || fail fp_all_vms_scan_failed "$(cat "$t/allvms.err")"
	else
		skip fp_all_vms_scan_failed "needs unshare and setpriv"
	fi
}

# inflate -o: checked before anything runs. --qemu /bin/false makes a run that
# got past the check fail at once, with a different message.
inflate() { "$HATRACE" inflate --qemu /bin/false --kernel /bin/true --initrd /bin/true "$@"; }
# io NAME PATTERN ARGS...: inflate is refused with PATTERN before it starts
io() {
	local name=$1 pat=$2
	shift 2
	if inflate "$@" >"$t/$name.out" 2>"$t/$name.err"; then
		fail "$name" "exit 0"
	elif ! grep -q -- "$pat" "$t/$name.err"; then
		fail "$name" "stderr: $(head -c 300 "$t/$name.err")"
	elif grep -q "hatrace inflate:" "$t/$name.err"; then
		fail "$name" "refused only after the run started"
	else
		ok "$name"
	fi
}
mkdir "$t/data"
echo precious >"$t/data/notes"
io inflate_o_foreign_dir "has files of its own and no .hatrace-results" -o "$t/data"
io inflate_o_foreign_dir_slash "has files of its own" -o "$t/data/"
[ "$(cat "$t/data/notes" 2>/dev/null)" = precious ] && [ -z "$(ls -d "$t"/data.* 2>/dev/null)" ] &&
	ok inflate_o_foreign_dir_untouched || fail inflate_o_foreign_dir_untouched "$(ls -R "$t")"
io inflate_o_empty "empty path" -o ""
io inflate_o_root "'/' is not a directory hatrace can replace" -o /
io inflate_o_dot "is not a directory hatrace can replace" -o "$t/data/."
: >"$t/afile"
io inflate_o_file "exists and is not a directory" -o "$t/afile"
ln -s data "$t/dlink"
io inflate_o_symlink "is a symbolic link" -o "$t/dlink"
# a trailing slash names the directory itself, not a place inside it
inflate -o "$t/new/" >/dev/null 2>&1
[ -z "$(ls -d "$t"/new "$t"/new.* 2>/dev/null)" ] && ok inflate_o_trailing_slash_nothing_left ||
	fail inflate_o_trailing_slash_nothing_left "$(ls -d "$t"/new* | tr '\n' ' ')"

# errors quote the argument as typed; no hex floats
io inflate_mem_as_typed "--mem: '1.5G' is not a size" --mem 1.5G
io inflate_mem_overflow_as_typed "--mem: 99999999999999999999K is too large" --mem 99999999999999999999K
io inflate_boot_timeout_hex_float "'0x1p5' is not a non-negative number of seconds" --boot-timeout 0x1p5
finish
