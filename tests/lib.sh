# Helpers for shell tests; same line protocol as tests/check.h.
HATRACE=${HATRACE:-build/hatrace}
_fails=0
ok()   { echo "ok - $1"; }
fail() { echo "not ok - $1: $2"; _fails=$((_fails + 1)); }
skip() { echo "skip - $1: $2"; }
# expect NAME COND-DESCRIPTION command...: passes when the command succeeds
expect() { local n=$1; shift; if "$@"; then ok "$n"; else fail "$n" "failed: $*"; fi; }
finish() { exit $((_fails > 0)); }
need_root() { [ "$(id -u)" = 0 ] || { skip "$1" "needs root"; return 1; }; }
