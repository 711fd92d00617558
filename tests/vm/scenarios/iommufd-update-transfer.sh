#!/bin/sh
# iommufd-update-transfer: the live update of a VMM with a real VFIO device on iommufd through vlud in
# transfer mode (docs/IOMMUFD.md "The update sequence"): QEMU's edu behind the emulated intel-iommu, bound
# to vfio-pci; the VMM is `vlu-iommufd vmm` as in iommufd-update (1 MiB memfd, MAP_FILE, user accounting,
# vmm.mappings "ioas", a DMA check). vlud spawns the successor, which claims, maps the memfd elsewhere,
# calls IOMMU_IOAS_CHANGE_PROCESS and DMAs:
#  1. ok: the old process's VmPin down by 1024 kB, the new one's up by as much, the old VMM exits at the
#     commit, vlud keeps every fd (same held entries and inodes) and its fd count;
#  2. a successor that dies right after its CHANGE_PROCESS (the charge with a dead process): rolled back,
#     the old VMM is told (update.rolled-back with "iommufd") to take the charge back with its own
#     CHANGE_PROCESS, does, DMAs, and vlud verifies its VmPin at its update.ready: rolled-back;
#  3. a successor that does not call CHANGE_PROCESS but says it did: VmPin mismatch, the successor is
#     killed, the old VMM takes the charge back the same way: rolled-back.
# The VMM's own TAP lines (every process's) are in its log, printed at the end.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
SOCK=/run/vlud/vlud.sock
LOG=/tmp/tvmm.log
MARK=/tmp/tvmm.ready

edu_find
edu_bind
echo "edu $bdf: $dev"

mkdir -p /run/vlud
cat > /tmp/tvlud.conf <<-EOC
	{
		"socket": { "path": "$SOCK", "mode": "0600", "group": null },
		"orphan_expiry_s": 0,
		"operators": { "uids": [0], "gids": [] },
		"vmms": [
			{ "uids": [0], "gids": [], "devices": ["/dev/iommu", "$dev"],
			  "fd_types": ["memfd", "eventfd"], "max_fds": 16 }
		]
	}
EOC
vlud --config /tmp/tvlud.conf > /tmp/tvlud.log 2>&1 &
VLUD=$!
if wait_until 100 test -S $SOCK; then t_ok daemon-listening; else t_fail daemon-listening "no socket"; fi

vmpin() { sed -n 's/^VmPin:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2> /dev/null; }
held() {
	vluctl --socket $SOCK --json fds iofu > /tmp/tfds.json 2>&1
	for _n in iommufd:iommu "vfio:$vf" ram; do
		printf '%s:%s/%s ' "$_n" "$(jget ".fds[name=$_n].id" /tmp/tfds.json)" "$(jget ".fds[name=$_n].ino" /tmp/tfds.json)"
	done
}
vludfds() { ls "/proc/$VLUD/fd" | wc -l; }
ready() { grep -q "^ready [0-9]* $1 $2\$" $MARK 2> /dev/null && pid=$(cut -d' ' -f2 $MARK); }
update() {
	_n=$1
	shift
	vluctl --socket $SOCK --json update start iofu --mode transfer "$@" > "/tmp/$_n.json" 2> "/tmp/$_n.err"
	sed "s/^/# $_n: /" "/tmp/$_n.err" | head -5
}
v() { jget "$1" "/tmp/$2.json"; }
# gone PID: exited (a zombie of this shell counts: the first VMM is its child)
gone() { ! grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2> /dev/null; }

: > $LOG
vlu-iommufd vmm "$SOCK" "$dev" "$bdf" $LOG $MARK &
O=$!
if wait_until 300 ready 0 first; then t_ok vmm-first-ready; else t_fail vmm-first-ready "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect vmpin-first "$(vmpin "$O")" -eq 1024
held0=$(held)
echo "# held: $held0"
fds0=$(vludfds)
BIN=$(readlink "/proc/$O/exe")

# 1. the update
update t1
expect t1-result "$(v .result t1)" = ok
N=$(v .new_pid t1)
expect t1-another-pid "$N" -ne "$O"
expect t1-iommufd-moved "$(v '.iommufd.moved[]' t1)" = iommufd:iommu
expect t1-charge-moved "$(v .iommufd.charge_moved_kb t1)" -eq 1024
expect t1-old-vmpin-after "$(v .iommufd.old_vmpin_after_kb t1)" -eq 0
expect t1-vmpin-after "$(v .iommufd.vmpin_after_kb t1)" -eq 1024
expect t1-moved-ok "$(v .vmpin.moved_ok t1)" = true
if wait_until 100 ready 1 successor; then t_ok t1-successor-serves; else t_fail t1-successor-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect t1-successor-pid "$pid" -eq "$N"
if wait_until 100 gone "$O"; then t_ok t1-old-exits; else t_fail t1-old-exits "pid $O alive"; fi
expect t1-vmpin-new "$(vmpin "$N")" -eq 1024
expect t1-fds-kept "$(held)" = "$held0"
for c in data-kept change-process vmpin-after-change-process after.dma after.data after.in-memfd; do
	expect "t1-vmm-$c" "$(grep -c "^ok - .*/vmm-1-successor\.$c\(=.*\)\?\$" $LOG)" -eq 1
done
O=$N

# 2. a successor that dies with the charge
update t2 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --die-after-change-process
expect t2-result "$(v .result t2)" = rolled-back
if v .error t2 | grep -q "exited in phase restore.*took the iommufd charge back"; then t_ok t2-reason; else t_fail t2-reason "$(v .error t2)"; fi
if wait_until 100 ready 2 reclaimed; then t_ok t2-old-reclaimed; else t_fail t2-old-reclaimed "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect t2-old-pid "$pid" -eq "$O"
expect t2-vmpin-old "$(vmpin "$O")" -eq 1024
expect t2-fds-kept "$(held)" = "$held0"
expect t2-successor-had-it "$(grep -c "^ok - .*/vmm-2-die-moved\.vmpin-after-change-process=1024\$" $LOG)" -eq 1
for c in change-process vmpin dma data in-memfd verdict; do
	expect "t2-reclaim-$c" "$(grep -c "^ok - .*/vmm-2-reclaimed\.reclaim\.$c" $LOG)" -eq 1
done

# 3. a successor that says it moved the charge but did not
update t3 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --skip-change-process
expect t3-result "$(v .result t3)" = rolled-back
if v .error t3 | grep -q "VmPin mismatch"; then t_ok t3-reason-vmpin; else t_fail t3-reason-vmpin "$(v .error t3)"; fi
K=$(v .killed_pid t3)
expect t3-killed-successor "$K" -ne "$O"
if wait_until 100 ready 3 reclaimed; then t_ok t3-old-reclaimed; else t_fail t3-old-reclaimed "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect t3-vmpin-old "$(vmpin "$O")" -eq 1024
expect t3-fds-kept "$(held)" = "$held0"
for c in change-process vmpin dma data in-memfd verdict; do
	expect "t3-reclaim-$c" "$(grep -c "^ok - .*/vmm-3-reclaimed\.reclaim\.$c" $LOG)" -eq 1
done
wait_until 50 test "$(vludfds)" -eq "$fds0"
expect vlud-fds-at-end "$(vludfds)" -eq "$fds0"

kill "$O" 2> /dev/null
wait_until 50 gone "$O"
kill "$VLUD"
wait "$VLUD" 2> /dev/null
echo "# the VMM's log (every process):"
cat $LOG
sed 's/^/[vlud] /' /tmp/tvlud.log | tail -60
exit $((FAILS > 0))
