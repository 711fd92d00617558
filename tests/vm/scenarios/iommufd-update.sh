#!/bin/sh
# iommufd-update: the live update of a VMM with a real VFIO device on iommufd through vlud, exec mode
# (docs/IOMMUFD.md "The update sequence"): QEMU's edu behind the emulated intel-iommu, bound to vfio-pci.
# The VMM (vlu-iommufd vmm) gets /dev/iommu and the cdev from device.open, binds, attaches, maps a 1 MiB
# memfd with IOMMU_IOAS_MAP_FILE (user accounting, no CAP_IPC_LOCK), stores the memfd, declares the IOAS
# (vmm.mappings "ioas") and checks a DMA; then:
#  1. an update that works: the new image claims, maps the memfd elsewhere, finds the old DMA's data there,
#     calls IOMMU_IOAS_CHANGE_PROCESS, DMAs again (the write lands in the memfd) and says iommufd_moved;
#     the verdict is ok with the iommufd counters, VmPin of the (same) pid is the declared size, vlud keeps
#     every fd (same held entries and inodes) and its own fd count;
#  2. a successor that does not call CHANGE_PROCESS but says it did: VmPin did not move, the verification
#     fails, vlud kills it and restarts the previous binary, which is told (rollback:true) to call
#     CHANGE_PROCESS: rolled-back, the charge with the restarted process, DMA works there;
#  3. a successor that dies after its claim, before update.ready: rolled back the same way;
#  4. an exec that fails (the VMM execs a binary that does not exist, then calls update.abort: UPDATE.md R1,
#     resume): rolled-back, told to the VMM on its own connection, no previous binary restarted, the same
#     pid the instance's VMM and the only one, VmPin/VmLck unchanged, a DMA after, every held fd the same,
#     no kernel WARNING (before 75a8bad an iommufd-only image counted as exec'd for the whole phase: the
#     previous binary was restarted beside the running VMM).
# The VMM's own TAP lines (every image's) are in its log, printed at the end.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/iofu.sh

iofu_start exec /tmp/x --fail-exec-if /tmp/x-fail-exec
BIN=$(readlink "/proc/$VMM/exe")
# the live processes running the VMM's binary
vmms() { for _p in /proc/[0-9]*; do [ "$(readlink "$_p/exe" 2> /dev/null)" = "$BIN" ] && echo "${_p#/proc/}"; done; }
warnings() { dmesg | grep -c 'WARNING:'; }

# 1. the update
update u1
expect u1-result "$(v .result u1)" = ok
expect u1-same-pid "$(v .new_pid u1)" -eq "$VMM"
expect u1-iommufd-moved "$(v '.iommufd.moved[]' u1)" = iommufd:iommu
expect u1-accounting "$(v .iommufd.accounting u1)" = user
expect u1-charge-moved "$(v .iommufd.charge_moved_kb u1)" -eq 1024
expect u1-vmpin-before "$(v .iommufd.vmpin_before_kb u1)" -eq 1024
expect u1-vmpin-after "$(v .iommufd.vmpin_after_kb u1)" -eq 1024
expect u1-moved-ok "$(v .vmpin.moved_ok u1)" = true
expect u1-new-uaddr-declared "$(v '.iommufd.ioas[].mappings[].uaddr' u1 | wc -l)" -eq 1
if wait_until 100 ready 1 successor; then t_ok u1-successor-serves; else t_fail u1-successor-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u1-vmpin-now "$(vmpin "$VMM")" -eq 1024
expect u1-fds-kept "$(held)" = "$held0"
wait_until 50 test "$(vludfds)" -eq "$fds0"
expect u1-vlud-fds "$(vludfds)" -eq "$fds0"
# the new image's DMA went through its own mapping and landed in the memfd
for c in data-kept change-process vmpin-after-change-process after.dma after.data after.in-memfd; do
	expect "u1-vmm-$c" "$(grep -c "^ok - .*/vmm-1-successor\.$c\(=.*\)\?\$" $LOG)" -eq 1
done

# 2. a successor that says it moved the charge but did not
update u2 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --skip-change-process
expect u2-result "$(v .result u2)" = rolled-back
expect u2-restarted "$(v .restarted_previous u2)" = true
expect u2-killed "$(v .killed_pid u2)" -eq "$VMM"
if v .error u2 | grep -q "VmPin mismatch"; then t_ok u2-reason-vmpin; else t_fail u2-reason-vmpin "$(v .error u2)"; fi
if wait_until 100 ready 2 restarted; then t_ok u2-restarted-serves; else t_fail u2-restarted-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u2-new-pid "$(v .new_pid u2)" -eq "$pid"
if gone "$VMM"; then t_ok u2-skipper-gone; else t_fail u2-skipper-gone "pid $VMM alive"; fi
expect u2-vmpin-restarted "$(vmpin "$pid")" -eq 1024
expect u2-charge-moved "$(v .iommufd.charge_moved_kb u2)" -eq 1024
expect u2-fds-kept "$(held)" = "$held0"
expect u2-skipper-not-moved "$(grep -c "^ok - .*/vmm-2-skip\.vmpin-before-change-process=0\$" $LOG)" -eq 1
for c in claim told-to-change-process change-process vmpin-after-change-process after.dma after.data after.in-memfd; do
	expect "u2-restarted-$c" "$(grep -c "^ok - .*/vmm-2-restarted\.$c\(=.*\)\?\$" $LOG)" -eq 1
done
VMM=$pid

# 3. a successor killed (it exits) after its claim, before update.ready
update u3 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --die-after-claim
expect u3-result "$(v .result u3)" = rolled-back
expect u3-restarted "$(v .restarted_previous u3)" = true
if v .error u3 | grep -q "exited in phase restore"; then t_ok u3-reason-exit; else t_fail u3-reason-exit "$(v .error u3)"; fi
if wait_until 100 ready 3 restarted; then t_ok u3-restarted-serves; else t_fail u3-restarted-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u3-vmpin-restarted "$(vmpin "$pid")" -eq 1024
expect u3-fds-kept "$(held)" = "$held0"
for c in change-process after.dma after.in-memfd; do
	expect "u3-restarted-$c" "$(grep -c "^ok - .*/vmm-3-restarted\.$c\(=.*\)\?\$" $LOG)" -eq 1
done

# 4. the exec fails (every image has --fail-exec-if: the file says which update): R1, resume, nothing moved
VMM=$pid
w0=$(warnings)
pin0=$(vmpin "$VMM")
lck0=$(vmlck "$VMM")
touch /tmp/x-fail-exec
update u4
expect u4-result "$(v .result u4)" = rolled-back
r4=$(v .restarted_previous u4)
if [ "$r4" != true ]; then t_ok u4-not-restarted; else t_fail u4-not-restarted "restarted_previous $r4"; fi
if wait_until 100 ready 3 resumed; then t_ok u4-resumed-serves; else t_fail u4-resumed-serves "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect u4-same-pid "$pid" -eq "$VMM"
expect u4-only-vmm "$(vmms | tr '\n' ' ')" = "$VMM "
vluctl --socket "$SOCK" --json instances > /tmp/x-u4.inst 2>&1
expect u4-instance-attached-to-it "$(jget '.instances[name=iofu].pid' /tmp/x-u4.inst)" -eq "$VMM"
expect u4-vmpin-unchanged "$(vmpin "$VMM")" -eq "$pin0"
expect u4-vmlck-unchanged "$(vmlck "$VMM")" -eq "$lck0"
expect u4-fds-kept "$(held)" = "$held0"
for c in enoent abort verdict vmpin vmlck dma data in-memfd; do
	expect "u4-vmm-failed-exec-$c" "$(grep -c "^ok - .*/vmm-3-restarted\.failed-exec\.$c\(=.*\)\?\$" "$LOG")" -eq 1
done
w1=$(warnings)
if [ "$w1" -eq "$w0" ]; then
	t_ok u4-no-kernel-warning
else
	t_fail u4-no-kernel-warning "$((w1 - w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
fi
iofu_end "$pid"
exit $((FAILS > 0))
