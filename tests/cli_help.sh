#!/usr/bin/env bash
# Every command documents itself: --help exits 0 with a usage line, and the
# man page renders without warnings and covers every command.
cd "$(dirname "$0")/.." && . tests/lib.sh
cmds=$($HATRACE --help | awk '/^Commands:/ { on = 1; next } on && !NF { exit } on { print $1 }')
n=$(wc -w <<<"$cmds")
# the list, 2 per command, and 2 man page checks (1 skip without groff)
command -v groff >/dev/null && plan $((1 + 2 * n + 2)) || plan $((1 + 2 * n + 1))
expect "hatrace --help lists commands" test -n "$cmds"
for c in $cmds; do
	out=$($HATRACE "$c" --help 2>&1); rc=$?
	[ $rc = 0 ] && grep -q "^Usage: hatrace $c" <<<"$out" && ok "$c --help" || fail "$c --help" "rc $rc: $(head -2 <<<"$out")"
	grep -q "^\.B hatrace $c\|^\.B $c\$" user/hatrace.8 && ok "man page covers $c" || fail "man page" "no $c"
done
if command -v groff >/dev/null; then
	warn=$(groff -man -ww -z user/hatrace.8 2>&1)
	[ -z "$warn" ] && ok "man page renders cleanly" || fail "man page warnings" "$warn"
	expect "man page has an OVERHEAD section" grep -q '^\.SH OVERHEAD' user/hatrace.8
else
	skip "man page rendering" "groff not installed"
fi
finish
