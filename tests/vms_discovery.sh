#!/usr/bin/env bash
# VM layer: a real QEMU (TCG) and a tiny KVM VMM both appear in `hatrace vms`,
# with their guest RAM; when the tiny VMM discards guest RAM and the guest
# touches it again, hist sees kvm_unmap_hva_range and kvmmmu events.
cd "$(dirname "$0")/.." && . tests/lib.sh
need_root "vm discovery"
tmp=$(mktemp -d)
cleanup() { kill $vmm $qemu $tr 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
qemu_bin=${HATRACE_QEMU:-qemu-system-x86_64}

# A QEMU under TCG, with no guest kernel: the firmware runs, which is enough.
$qemu_bin -name ht-vms-test -display none -m 256M -accel tcg,thread=multi -smp 2 \
	-qmp unix:"$tmp/qmp",server=on,wait=off -nodefaults >"$tmp/qemu.log" 2>&1 & qemu=$!
for _ in $(seq 50); do [ -S "$tmp/qmp" ] && break; sleep 0.1; done

kvm_ok=1
# 4 checks of the QEMU; 7 of the tiny KVM VMM, or 1 skip without /dev/kvm
[ -c /dev/kvm ] && plan 11 || plan 5
if [ ! -c /dev/kvm ]; then
	kvm_ok=0; skip "tiny KVM VMM" "no /dev/kvm on this host"
else
	mkfifo "$tmp/go"
	"$BUILD"/tests/tinyvmm 3 <"$tmp/go" >"$tmp/vmm" 2>&1 & vmm=$!
	exec 3>"$tmp/go"
	for _ in $(seq 100); do grep -q started "$tmp/vmm" && break; sleep 0.05; done
	$HATRACE hist -p $vmm -o json >"$tmp/hist" 2>"$tmp/hist.err" 3>&- & tr=$!
	for _ in $(seq 100); do grep -q '"start"' "$tmp/hist" 2>/dev/null && break; sleep 0.1; done
	echo go >&3 # create the VM and run one round
	for _ in $(seq 100); do grep -q ready "$tmp/vmm" && break; sleep 0.05; done
fi

$HATRACE vms -o json --qmp "$tmp/qmp" >"$tmp/vms.json" 2>"$tmp/vms.err" 3>&-
expect "hatrace vms succeeds" test $? = 0
q=$(jq ".vms[] | select(.pid == $qemu)" "$tmp/vms.json")
expect "QEMU (TCG) listed" test -n "$q"
expect "QEMU identified as qemu/tcg, its name and 2 vCPUs" test "$(jq -r '"\(.hypervisor)/\(.accel)/\(.name)/\(.vcpus)"' <<<"$q")" = qemu/tcg/ht-vms-test/2
ram=$(jq '[.regions[] | select(.name == "pc.ram")] | map(.size) | add' <<<"$q")
[ "$ram" -ge $((255 << 20)) ] && ok "QMP RAM layout: pc.ram covers 256 MiB" || fail "QMP RAM layout" "pc.ram $ram bytes"

if [ $kvm_ok = 1 ]; then
	read -r _ pid hva < <(grep ready "$tmp/vmm")
	v=$(jq ".vms[] | select(.pid == $vmm)" "$tmp/vms.json")
	expect "tiny KVM VMM listed" test -n "$v"
	expect "tiny VMM: accel kvm, 1 vCPU" test "$(jq -r '"\(.accel) \(.vcpus)"' <<<"$v")" = "kvm 1"
	slot=$(jq -r '.regions[0] | "\(.gpa) \(.size) \(.hva)"' <<<"$v")
	[ "$slot" = "0 2097152 $((hva))" ] && ok "memslot read without ptrace: GPA 0, 2 MiB, HVA $hva" ||
		fail "memslot" "got '$slot', expected '0 2097152 $((hva))'"
	echo go >&3 # discard the data pages, the guest faults them back
	for _ in $(seq 100); do grep -q rounds "$tmp/vmm" && break; sleep 0.05; done
	expect "guest rewrote its discarded pages" grep -q '"page0":1' "$tmp/vmm"
	exec 3>&-; wait $vmm; wait $tr
	count() { jq -s "[.[] | select(.pid == $vmm and (.name | test(\"$1\"))) | .count] | add // 0" "$tmp/hist"; }
	n=$(count '^kvm_unmap_hva_range$')
	[ "$n" -ge 1 ] && ok "kvm_unmap_hva_range saw the discard ($n)" || fail "kvm_unmap_hva_range" "$n events"
	n=$(count '^kvmmmu:')
	[ "$n" -ge 1 ] && ok "kvmmmu events seen ($n)" || fail "kvmmmu" "$n events"
	exits=$(jq -r 'select(.type == "probe" and .name == "kvm_exit") | "\(.attached) \(.events)"' "$tmp/hist")
	kvm=$($HATRACE doctor -o json | jq -r '.features[] | select(.name == "kvm") | .detail')
	case $exits in
	"true 0")
		# PVM fires no kvm_exit; any other KVM must have seen the guest's exits
		if grep -q 'is PVM' <<<"$kvm"; then
			skip "kvm_exit latency" "attached but this KVM (PVM here) fires no kvm_exit; decoders are covered by bpf_probes"
		else
			fail "kvm_exit events seen" "attached but no events, and /dev/kvm is not PVM: $kvm"
		fi ;;
	true*) ok "kvm_exit events seen" ;;
	*) fail "kvm_exit probe" "$exits" ;;
	esac
fi
finish
