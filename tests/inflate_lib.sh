# Helpers of the inflate tests (sourced). Other hatrace runs may share the
# machine, so leftovers are looked up by the PID of the run under test: each
# VM's temp dir names its owner.

# leftovers PID...: temp dirs those hatrace runs left, and QEMUs still using them
leftovers() {
	local d pid
	for d in /tmp/hatrace-vm.*; do
		[ -r "$d/owner" ] || continue
		for pid in "$@"; do
			[ "$(cat "$d/owner" 2>/dev/null)" = "$pid" ] || continue
			echo "$d"
			pgrep -af -- "$d"
		done
	done
}
