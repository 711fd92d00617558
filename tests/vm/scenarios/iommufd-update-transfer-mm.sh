#!/bin/sh
# iommufd-update-transfer-mm: the transfer-mode live update of a VMM whose iommufd uses mm accounting
# (docs/IOMMUFD.md "The update sequence"), through vlud: the set-up of iommufd-update-transfer (edu behind
# the emulated intel-iommu, bound to vfio-pci; `vlu-iommufd vmm`, 1 MiB memfd, MAP_FILE, vmm.mappings
# "ioas", a DMA check), but the VMM sets IOMMU_OPTION_RLIMIT_MODE 1 on its fresh iommufd (--acct mm;
# CAP_SYS_RESOURCE kept, CAP_IPC_LOCK dropped), so its MAP_FILE charges VmLck (mm->locked_vm) as well as
# VmPin, and vlud verifies both moved:
#  0. exec mode is refused up front (Unsupported, the reason: the old mm is dead at the successor's
#     CHANGE_PROCESS, the second kernel bug), nothing changed (VmPin, VmLck, the held fds, vlud's fd count);
#  1. transfer mode, ok: the verdict says accounting mm, VmPin and VmLck of the old VMM down and of the
#     successor up by exactly 1024 kB (the verdict's iommufd counters, and /proc/PID/status read here: the
#     old VMM stays after the commit, --stay-after-commit, until this script ends it), every fd kept; the
#     old VMM's exit after the move leaves the successor's charge as it is;
#  2. a successor that skips CHANGE_PROCESS but says it called it: VmPin mismatch, the successor held
#     stopped (docs/UPDATE.md R14, as in 3 and 4), the old VMM told to take the charge back (its
#     CHANGE_PROCESS of pages its own mm is charged for: a no-op; the successor has 0 kB before and after)
#     and verified at its update.ready, then the successor killed: rolled-back, VmPin and VmLck 1024 kB
#     where they were;
#  3. a successor that moves the charge (CHANGE_PROCESS) and then fails its verification (update.ready
#     without iommufd_moved), and 4. one that moves it and never sends update.ready (the restore deadline,
#     commit_ms 10 s): docs/UPDATE.md R14: vlud stops the successor instead of killing it, the old VMM
#     takes the charge back from the successor's live mm (it checks the successor stopped, with the
#     charge before its call and without it after), vlud verifies the old VMM's VmPin and VmLck and kills
#     the successor only then: rolled-back, killed_pid the successor, the old VMM's VmPin and VmLck 1024 kB
#     (verdict and /proc), the successor gone, every fd kept, and no kernel WARNING (this flavour's stock
#     kernel has the second kernel bug: killing the successor first would WARN in the old VMM's
#     CHANGE_PROCESS); the verdict's held_successor.process "stopped" (read while that process, stopped).
# A vlud killed during that take-back: iommufd-update-transfer-mm-killed.
# Not here: a successor that dies on its own after its CHANGE_PROCESS in mm mode: the old VMM's take-back
# then uncharges a dead mm, the second kernel bug (docs/IOMMUFD.md "Not done").
# The VMM's own TAP lines (every process's) are in its log, printed at the end.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/iofu.sh

iofu_start transfer /tmp/tm --acct mm --stay-after-commit
O=$VMM
BIN=$(readlink "/proc/$O/exe")
expect vmlck-first "$(vmlck "$O")" -eq 1024
for c in option-rlimit-mode-mm vmpin-charged=1024 vmlck-charged=1024; do
	expect "vmm-first-$c" "$(grep -c "^ok - .*/vmm-0-first\.$c\$" "$LOG")" -eq 1
done
# the successor's argv (vlud spawns it): the same VMM in mm mode, without --stay-after-commit
SUCC="--arg $BIN --arg vmm --arg $SOCK --arg $dev --arg $bdf --arg $LOG --arg $MARK --arg --acct --arg mm"

# 0. exec mode: refused before anything happens
vluctl --socket "$SOCK" --json call update.start '{"instance":"iofu","mode":"exec"}' > "$IOFU_TMP-m0.json" 2>&1
expect m0-refused-exit-1 "$?" -eq 1
sed 's/^/# m0: /' "$IOFU_TMP-m0.json"
expect m0-refusal-class "$(v .error.class m0)" = Unsupported
if v .error.desc m0 | grep -qF "uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and exec mode"; then
	t_ok m0-reason-mm-exec
else
	t_fail m0-reason-mm-exec "$(cat "$IOFU_TMP-m0.json")"
fi
expect m0-vmm-serves "$(gone "$O" && echo gone || echo alive)" = alive
expect m0-vmpin-kept "$(vmpin "$O")" -eq 1024
expect m0-vmlck-kept "$(vmlck "$O")" -eq 1024
expect m0-fds-kept "$(held)" = "$held0"
expect m0-vlud-fds "$(vludfds)" -eq "$fds0"

# 1. the update, transfer mode
# shellcheck disable=SC2086 # SUCC: --arg pairs, no spaces in them
update m1 $SUCC
expect m1-result "$(v .result m1)" = ok
N=$(v .new_pid m1)
expect m1-another-pid "$N" -ne "$O"
expect m1-accounting "$(v .iommufd.accounting m1)" = mm
expect m1-iommufd-moved "$(v '.iommufd.moved[]' m1)" = iommufd:iommu
expect m1-pinned "$(v .iommufd.pinned_kb m1)" -eq 1024
expect m1-charge-moved "$(v .iommufd.charge_moved_kb m1)" -eq 1024
expect m1-vmlck-expected "$(v .iommufd.vmlck_expected_kb m1)" -eq 1024
expect m1-vmpin-before "$(v .iommufd.vmpin_before_kb m1)" -eq 1024
expect m1-old-vmpin-after "$(v .iommufd.old_vmpin_after_kb m1)" -eq 0
expect m1-vmpin-after "$(v .iommufd.vmpin_after_kb m1)" -eq 1024
expect m1-vmlck-before "$(v .iommufd.vmlck_before_kb m1)" -eq 1024
expect m1-old-vmlck-after "$(v .iommufd.old_vmlck_after_kb m1)" -eq 0
expect m1-vmlck-after "$(v .iommufd.vmlck_after_kb m1)" -eq 1024
expect m1-moved-ok "$(v .vmpin.moved_ok m1)" = true
if wait_until 100 ready 1 successor; then t_ok m1-successor-serves; else t_fail m1-successor-serves "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect m1-successor-pid "$pid" -eq "$N"
# the successor's own view: told mm, nothing charged to it before its call, the mapped size after
for c in claim-accounting=mm data-kept vmpin-before-change-process=0 vmlck-before-change-process=0 change-process \
	vmpin-after-change-process=1024 vmlck-after-change-process=1024 after.dma after.data after.in-memfd verdict=ok; do
	expect "m1-vmm-$c" "$(grep -c "^ok - .*/vmm-1-successor\.$c\$" "$LOG")" -eq 1
done
# the old VMM saw the commit, stays (--stay-after-commit): its counters read here, both 0 now
if wait_until 100 grep -q "^ok - .*/vmm-0-first\.old\.vmlck-after-commit=0\$" "$LOG"; then
	t_ok m1-old-saw-commit
else
	t_fail m1-old-saw-commit "$(grep "vmm-0-first" "$LOG" | tail -3 | tr '\n' ' ')"
fi
expect m1-old-stays "$(gone "$O" && echo gone || echo alive)" = alive
expect m1-old-vmpin "$(vmpin "$O")" -eq 0
expect m1-old-vmlck "$(vmlck "$O")" -eq 0
expect m1-new-vmpin "$(vmpin "$N")" -eq 1024
expect m1-new-vmlck "$(vmlck "$N")" -eq 1024
expect m1-fds-kept "$(held)" = "$held0"
# the old VMM ends: its mm goes, the successor's charge stays as it is; vlud's fd count back (one VMM)
kill "$O"
if wait_until 100 gone "$O"; then t_ok m1-old-exits; else t_fail m1-old-exits "pid $O alive"; fi
wait "$O" 2> /dev/null
expect m1-new-vmpin-after-old-exit "$(vmpin "$N")" -eq 1024
expect m1-new-vmlck-after-old-exit "$(vmlck "$N")" -eq 1024
wait_until 50 test "$(vludfds)" -eq "$fds0"
expect m1-vlud-fds "$(vludfds)" -eq "$fds0"
O=$N

# 2. a successor that says it moved the charge but did not: rolled back, the charge never left O
# shellcheck disable=SC2086
update m2 $SUCC --arg --skip-change-process
expect m2-result "$(v .result m2)" = rolled-back
expect m2-accounting "$(v .iommufd.accounting m2)" = mm
if v .error m2 | grep -q "VmPin mismatch"; then t_ok m2-reason-vmpin; else t_fail m2-reason-vmpin "$(v .error m2)"; fi
K=$(v .killed_pid m2)
expect m2-killed-successor "$K" -ne "$O"
if wait_until 100 ready 2 reclaimed; then t_ok m2-old-reclaimed; else t_fail m2-old-reclaimed "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect m2-old-pid "$pid" -eq "$O"
expect m2-vmpin-old "$(vmpin "$O")" -eq 1024
expect m2-vmlck-old "$(vmlck "$O")" -eq 1024
expect m2-fds-kept "$(held)" = "$held0"
for c in claim-accounting=mm vmpin-before-change-process=0 vmlck-before-change-process=0; do
	expect "m2-skipper-$c" "$(grep -c "^ok - .*/vmm-2-skip\.$c\$" "$LOG")" -eq 1
done
# R14 in mm mode: held stopped (with none of the charge: it never moved it), killed after the take-back
for c in successor-stopped successor-vmpin-before=0 successor-vmlck-before=0 charge-before=1024 \
	vmlck-charge-before=1024 change-process successor-vmpin-after=0 successor-vmlck-after=0 successor-still-stopped \
	vmpin=1024 vmlck=1024 dma data in-memfd verdict=rolled-back; do
	expect "m2-reclaim-$c" "$(grep -c "^ok - .*/vmm-2-reclaimed\.reclaim\.$c\$" "$LOG")" -eq 1
done
expect m2-held-pid "$(v .iommufd.held_successor.pid m2)" -eq "$K"
expect m2-held-vmpin "$(v .iommufd.held_successor.vmpin_kb m2)" -eq 0
expect m2-held-process "$(v .iommufd.held_successor.process m2)" = stopped
expect m2-old-vmlck-retaken "$(v .iommufd.old_vmlck_retaken_kb m2)" -eq 1024
if v .error m2 | grep -qF "was kept stopped until then"; then t_ok m2-reason-held; else t_fail m2-reason-held "$(v .error m2)"; fi
if wait_until 100 gone "$K"; then t_ok m2-successor-dead; else t_fail m2-successor-dead "pid $K alive"; fi
# 3 and 4. a successor that moved the charge and then failed (R14): stopped, not killed, until the old
# VMM took the charge back from its live mm; killed after that
warnings() { dmesg | grep -c 'WARNING:'; }
held_case() { # NAME GEN FAULT-OPTION ROLE REASON
	_n=$1 _g=$2 _f=$3 _r=$4 _why=$5
	_w0=$(warnings)
	# shellcheck disable=SC2086
	update "$_n" $SUCC --arg "$_f"
	expect "$_n-result" "$(v .result "$_n")" = rolled-back
	expect "$_n-accounting" "$(v .iommufd.accounting "$_n")" = mm
	if v .error "$_n" | grep -qF "$_why"; then t_ok "$_n-reason"; else t_fail "$_n-reason" "$(v .error "$_n")"; fi
	if v .error "$_n" | grep -qF "was kept stopped until then"; then
		t_ok "$_n-reason-held"
	else
		t_fail "$_n-reason-held" "$(v .error "$_n")"
	fi
	_N=$(v .new_pid "$_n")
	expect "$_n-another-pid" "$_N" -ne "$O"
	expect "$_n-killed-successor" "$(v .killed_pid "$_n")" -eq "$_N"
	# the successor, held stopped, read by vlud at the old VMM's update.ready: the charge had left it
	expect "$_n-held-pid" "$(v .iommufd.held_successor.pid "$_n")" -eq "$_N"
	expect "$_n-held-vmpin" "$(v .iommufd.held_successor.vmpin_kb "$_n")" -eq 0
	expect "$_n-held-vmlck" "$(v .iommufd.held_successor.vmlck_kb "$_n")" -eq 0
	# ... read while it was still that process, and stopped (its start time checked, /proc/PID/stat 'T')
	expect "$_n-held-process" "$(v .iommufd.held_successor.process "$_n")" = stopped
	# the old VMM's take-back, verified by vlud: VmPin and VmLck back where they were
	expect "$_n-old-vmpin-retaken" "$(v .iommufd.old_vmpin_after_kb "$_n")" -eq 1024
	expect "$_n-old-vmlck-retaken" "$(v .iommufd.old_vmlck_retaken_kb "$_n")" -eq 1024
	if wait_until 100 ready "$_g" reclaimed; then t_ok "$_n-old-reclaimed"; else t_fail "$_n-old-reclaimed" "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
	expect "$_n-old-pid" "$pid" -eq "$O"
	expect "$_n-vmpin-old" "$(vmpin "$O")" -eq 1024
	expect "$_n-vmlck-old" "$(vmlck "$O")" -eq 1024
	if wait_until 100 gone "$_N"; then t_ok "$_n-successor-dead"; else t_fail "$_n-successor-dead" "pid $_N: $(grep State "/proc/$_N/status")"; fi
	expect "$_n-fds-kept" "$(held)" = "$held0"
	wait_until 50 test "$(vludfds)" -eq "$fds0"
	expect "$_n-vlud-fds" "$(vludfds)" -eq "$fds0"
	# the successor's own view: told mm, nothing charged before its call, the mapped size after
	for c in claim-accounting=mm vmpin-before-change-process=0 vmlck-before-change-process=0 change-process \
		vmpin-after-change-process=1024 vmlck-after-change-process=1024; do
		expect "$_n-successor-$c" "$(grep -c "^ok - .*/vmm-$_g-$_r\.$c\$" "$LOG")" -eq 1
	done
	# the old VMM's view: the successor stopped and charged before its call, uncharged after (from a live mm)
	for c in successor-stopped successor-vmpin-before=1024 successor-vmlck-before=1024 charge-before=1024 \
		vmlck-charge-before=1024 change-process \
		successor-vmpin-after=0 successor-vmlck-after=0 successor-still-stopped vmpin=1024 vmlck=1024 dma data in-memfd \
		verdict=rolled-back; do
		expect "$_n-reclaim-$c" "$(grep -c "^ok - .*/vmm-$_g-reclaimed\.reclaim\.$c\$" "$LOG")" -eq 1
	done
	_w1=$(warnings)
	if [ "$_w1" -eq "$_w0" ]; then
		t_ok "$_n-no-kernel-warning"
	else
		t_fail "$_n-no-kernel-warning" "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
	fi
}
held_case m3 3 --fail-after-change-process fail-moved "the successor did not call IOMMU_IOAS_CHANGE_PROCESS on iommufd"
held_case m4 4 --hang-after-change-process hang-moved "timeout in phase restore"
iofu_end "$O"
exit $((FAILS > 0))
