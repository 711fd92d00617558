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
. /scenarios/lib/iofu.sh

iofu_start transfer /tmp/t
O=$VMM
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
iofu_end "$O"
exit $((FAILS > 0))
