#!/usr/bin/env bash
# hatrace inflate --workload build --vms 2 under TCG: two VMs per technique
# (virtio-mem with the host controller, hyperalloc in its own auto mode) in
# one memory cgroup, then the extra VMs the summed peak leaves room for;
# tests/multivm_check.py recomputes the figures. No cgroup may be left behind.
cd "$(dirname "$0")/.." && . tests/lib.sh && . tests/inflate_lib.sh
[ -r "$BUILD/guest/bzImage" ] && [ -r "$BUILD/guest/initramfs.cpio.gz" ] ||
	skip_all vm_multivm "guest image not built (make)"
[ "$(id -u)" = 0 ] || skip_all vm_multivm "memory cgroups and hatrace footprint need root"
plan $((5 + $(sed -n 's/^CHECKS = //p' tests/multivm_check.py)))
out=$(mktemp -d /tmp/hatrace-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
cgroups() { ls -d /sys/fs/cgroup/memory/hatrace-* /sys/fs/cgroup/hatrace-* \
	/sys/fs/cgroup/unified/hatrace-* 2>/dev/null; }

refused() {
	local name=$1
	shift
	if "$HATRACE" inflate "$@" -o "$out/refused" >/dev/null 2>"$out/stderr"; then
		fail "$name" "accepted"
	elif [ "$(wc -l <"$out/stderr")" != 1 ]; then
		fail "$name" "$(head -c 300 "$out/stderr")"
	else
		ok "$name"
	fi
}
refused multivm_needs_a_workload --vms 2
refused multivm_budget_too_small -w build --vms 2 --budget 300M --shrink-to 256M

before=$(cgroups)
"$HATRACE" inflate -w build -t virtio-mem,hyperalloc --vms 2 --mem 1G --shrink-to 256M --jobs 8 \
	--stagger 3 --tail 3 -n 1 -o "$out/r" >"$out/stdout" 2>"$out/stderr" &
pid=$!
wait $pid
rc=$?
if [ $rc != 0 ]; then
	fail multivm_run "exit $rc: $(tail -n 5 "$out/stderr" | tr '\n' ' ')"
	finish
fi
ok multivm_run
grep -q "extra VMs" "$out/stdout" && [ -s "$out/r/footprint-build.png" ] &&
	ok multivm_report_and_plot || fail multivm_report_and_plot "$(ls "$out/r")"
/usr/bin/python3 tests/multivm_check.py "$out/r"
left=$(leftovers $pid)
[ "$(cgroups)" = "$before" ] && [ -z "$left" ] && ok multivm_no_cgroup_or_vm_left ||
	fail multivm_no_cgroup_or_vm_left "$(cgroups) $left"
finish
