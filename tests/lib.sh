# Helpers for shell tests; same line protocol as tests/check.h.
BUILD=${BUILD:-build}
HATRACE=${HATRACE:-$BUILD/hatrace}
_fails=0
ok()   { echo "ok - $1"; }
fail() { echo "not ok - $1: $2"; _fails=$((_fails + 1)); }
skip() { echo "skip - $1: $2"; }
# plan N: the test reports N ok/not ok/skip lines (tests/run checks the count)
plan() { echo "1..$1"; }
# skip_all NAME REASON: nothing of this test can run here; it ends (call before plan)
skip_all() { skip "$1" "$2"; plan 1; exit 0; }
# expect NAME COND-DESCRIPTION command...: passes when the command succeeds
expect() { local n=$1; shift; if "$@"; then ok "$n"; else fail "$n" "failed: $*"; fi; }
finish() { exit $((_fails > 0)); }
need_root() { [ "$(id -u)" = 0 ] || skip_all "$1" "needs root"; }
