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
# kernel_build FLAVOUR: kernel/build-kernel.sh of the current inputs (a cache hit after
# make) is $BUILD/guest/bzImage-FLAVOUR and applied every listed patch (PATCHES=(...),
# paths under kernel/); 2 checks + 1 per patch. Sets $kernel_dir; ends the test if the
# kernel does not build.
kernel_build() {
	local flavour=$1 errors p
	errors=$(mktemp)
	if ! kernel_dir=$(kernel/build-kernel.sh "$flavour" 2>"$errors"); then
		fail "the $flavour kernel of the current inputs builds" \
			"$(grep '^build-kernel:' "$errors" | grep -vm1 ': building ')"
		rm -f "$errors"
		finish
	fi
	rm -f "$errors"
	ok "the $flavour kernel of the current inputs builds"
	expect "build/guest/bzImage-$flavour is that kernel" \
		cmp -s "$kernel_dir/bzImage" "$BUILD/guest/bzImage-$flavour"
	for p in "${PATCHES[@]}"; do
		expect "the build applied ${p##*/}" grep -qxF "== applying ${p#kernel/}" "$kernel_dir/build.log"
	done
}
