#!/usr/bin/env bash
# The files qemu/files copies into hatrace's QEMU (the wire header, the allocator
# core, the device's validation) are byte-identical to this repository's: the build
# records their sha256 in the QEMU tree as compiled (build/qemu/copied.sha256).
cd "$(dirname "$0")/.." || exit 1
record=${BUILD:-build}/qemu/copied.sha256
echo 1..2
if [ ! -f "$record" ]; then
	echo "skip - qemu copies listed: $record missing (run make qemu)"
	echo "skip - qemu copies identical: $record missing (run make qemu)"
	exit 0
fi
want=$(sed -n 's/^\([^# ][^ ]*\) .*/\1/p' qemu/files)
got=$(awk '{print $2}' "$record")
if [ "$want" = "$got" ]; then
	echo "ok - qemu copies listed: the binary was built from every file of qemu/files"
else
	echo "not ok - qemu copies listed: qemu/files names $(echo $want), the build copied $(echo $got)"
fi
if out=$(sha256sum --quiet -c "$record" 2>&1); then
	echo "ok - qemu copies identical: $(wc -l <"$record") files in the QEMU tree equal the repository's"
else
	echo "not ok - qemu copies identical: $(echo "$out" | head -n 3 | tr '\n' ' ')(make qemu rebuilds)"
fi
