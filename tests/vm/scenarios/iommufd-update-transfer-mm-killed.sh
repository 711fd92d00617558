#!/bin/sh
# iommufd-update-transfer-mm-killed: docs/UPDATE.md R14 across a restart of vlud.  The VMM of
# iommufd-update-transfer-mm (`vlu-iommufd vmm --acct mm`: edu on VFIO/iommufd, 1 MiB memfd, MAP_FILE, mm
# accounting: VmPin and VmLck charged), vlud under vlu-fdstore (the fd-store part of PID 1, so that the
# state survives its SIGKILL), commit_ms 30 s:
#  k1. a transfer-mode update whose successor moves the charge (CHANGE_PROCESS) and then fails its
#      verification (--fail-after-change-process): vlud holds it stopped and tells the old VMM, which stops
#      itself there (--stop-at-held-reclaim) before its own CHANGE_PROCESS, as a VMM slower than vlud's
#      restart would be; vlud is killed (SIGKILL) and restarted by vlu-fdstore; the restarted vlud finds the
#      held successor in the state and keeps it stopped, with the charge (VmPin and VmLck 1024 kB), until
#      the old VMM reattaches (logged; 2 s later still so); the old VMM, continued, checks it stopped and
#      charged, takes the charge back from its live mm (it reads 0/0 kB after, still stopped), finds the
#      killed vlud's connection dead (update.ready fails), and only then reattaches to the restarted vlud,
#      which kills the successor at that reattach (logged); the old VMM's VmPin and VmLck 1024 kB, its DMA,
#      every held fd the same (id and inode), and no new kernel WARNING (this flavour's stock kernel has the
#      second kernel bug: a kill at the restart, before the take-back, would make the old VMM's
#      CHANGE_PROCESS uncharge a dead mm).
#      The update itself is in the state too (the instance's "iommufd_update", docs/UPDATE.md "An update of
#      iommufd/VFIO devices"): the restarted vlud ends it (update.status: the same id, interrupted_by_restart,
#      phase rollback, iommufd_fds the iommufd and the VFIO cdev, logged once) and reserves the instance to
#      the old VMM, which takes the charge back (the successor is held): its reattach is accepted, another
#      process's is refused (Busy) until then.
#  k2. the same, but vlud is stopped (SIGTERM) during the take-back, and started again with the store
#      (vlu-fdstore --restart-on-exit: a systemctl restart; vlu-fdstore keeps its store across the stop,
#      so the configuration says so: update.held_successor_survives_stop, default false, under which the
#      stopping vlud would kill the successor): the stopping vlud ends the update failed
#      without killing the held successor (the verdict says it stays stopped, named by the state), the
#      next vlud keeps it stopped and charged, and kills it at the old VMM's reattach; no new WARNING.
# k3-k5: vlud killed (SIGKILL, restarted by vlu-fdstore) while a plain transfer-mode update (no failure) is
#      stopped in the phases before and after the hand-over (docs/UPDATE.md "An update of iommufd/VFIO
#      devices": the restarted vlud ends it, interrupted_by_restart, and reserves the instance to the
#      process that holds the charge); the VMMs reattach instead of exiting (--reattach-when-vlud-lost:
#      reattach first, then CHANGE_PROCESS, a no-op where the charge is already theirs, and a DMA check):
#  k3. save: the old VMM stops itself at update.save, before it saves (--stop-at-save-if); the verdict
#      phase save, reserved to the old VMM, another process's reattach refused; continued, its
#      update.saved fails, it reattaches and keeps the charge (VmPin and VmLck 1024 kB), DMA.
#  k4. claim: the spawned successor stops itself before it connects to claim (--stop-before-claim), the
#      old VMM is stopped by the scenario; the verdict phase claim, reserved to the old VMM; the old VMM,
#      continued, reattaches and keeps the charge; the successor, continued, is refused its claim (nothing
#      handed over, nothing moved: its VmPin and VmLck 0) and exits.
#  k5. restore: the successor stops itself after its CHANGE_PROCESS and DMA, before update.ready
#      (--stop-before-ready: the charge is its own, VmPin and VmLck 1024 kB, the old VMM's 0), the old
#      VMM is stopped by the scenario; the verdict phase restore, reserved to the successor; the old VMM,
#      continued, is refused (Busy) and never takes the charge (0 kB; a take-back would take it from a
#      live successor, or, once it died, from a dead mm: the second kernel bug in mm mode); the
#      successor, continued, finds update.ready failing, reattaches, is the instance's VMM, DMA; the old
#      VMM, still refused, is stopped (SIGTERM).
#  k6, k7. user accounting and exec mode (which refuses mm accounting): the instance released, a second
#      VMM (`--first-gen 10`: TAP names of its own) in user mode; vlud killed in phase save (the VMM stopped
#      at update.save: as k3) and in phase restore (the new image, the same pid, stopped after its
#      CHANGE_PROCESS from the old image's dead mm, before update.ready: reserved to that pid, its
#      update.ready fails, it reattaches and keeps the charge).
#      Each of k3-k7: exactly one process charged (VmPin 1024 kB; VmLck 1024 kB in mm accounting, 0 in user),
#      every held fd the same (id, inode, count) and no new kernel WARNING.  Nothing in these phases
#      uncharges a dead mm in mm accounting (the stock kernel's second bug).
# The VMM's own TAP lines (every process's) are in its log, printed at the end.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 360
# shellcheck disable=SC2034,SC2154 # IOFU_MODE: read by lib/iofu.sh's update; bdf, dev: edu_bind's
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/iofu.sh

FDS_DIR=/run/vlu-fdstore
IOFU_MODE=transfer
IOFU_TMP=/tmp/tmk
LOG=$IOFU_TMP-vmm.log
MARK=$IOFU_TMP-vmm.ready
ready_ge() { [ "$(cat "$FDS_DIR/ready" 2> /dev/null || echo 0)" -ge "$1" ]; }
is_stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status" 2> /dev/null; }
warnings() { dmesg | grep -c 'WARNING:'; }
# nheld: how many fds vlud holds for the instance; store_empty: vlu-fdstore holds none of them (h<id>, g<group>)
nheld() { vluctl --socket "$SOCK" --json fds iofu | jget '.fds[].name' | wc -l; }
store_empty() { ! grep -q '^[hg]' "$FDS_DIR/store"; }
# vlogok GEN-ROLE CHECK: the VMM's own TAP line vmm-GEN-ROLE.CHECK passed once
# (the VMM names a VmPin/VmLck check with the value it read: "lost.vmpin=1024")
vlogok() { grep -cE "^ok - .*/vmm-$1\.$2(=[0-9]+)?$" "$LOG"; }
# killed_in K PHASE HEIR TEXT: the update stopped in PHASE (update.status), vlud killed (SIGKILL) and restarted
# by vlu-fdstore; the restarted vlud ended it (update.status: the same id, interrupted_by_restart, PHASE, the
# iommufd and the VFIO cdev named, reserved to HEIR; logged once with TEXT) and refuses another process's reattach
killed_in() {
	_k=$1 _ph=$2 _heir=$3 _text=$4
	vluctl --socket "$SOCK" --json call update.status '{"instance":"iofu"}' > "$IOFU_TMP-$_k.running" 2>&1
	expect "$_k-running-in-$_ph" "$(jget .running.phase "$IOFU_TMP-$_k.running")" = "$_ph"
	_id=$(jget .running.id "$IOFU_TMP-$_k.running")
	r0=$(cat "$FDS_DIR/ready")
	kill -9 "$VLUD"
	if wait_until 300 ready_ge $((r0 + 1)) && [ "$(cat "$FDS_DIR/pid")" != "$VLUD" ]; then
		t_ok "$_k-vlud-restarted"
	else
		t_fail "$_k-vlud-restarted" "pid $(cat "$FDS_DIR/pid"), ready $(cat "$FDS_DIR/ready")"
	fi
	VLUD=$(cat "$FDS_DIR/pid")
	wait "$UPD" 2> /dev/null
	_st=$IOFU_TMP-$_k.ustatus
	vluctl --socket "$SOCK" --json call update.status '{"instance":"iofu"}' > "$_st" 2>&1
	sed "s/^/# $_k update.status after the restart: /" "$_st" | cut -c1-800
	expect "$_k-restart-verdict-id" "$(jget .last.id "$_st")" -eq "${_id:-0}"
	expect "$_k-restart-verdict-interrupted" "$(jget .last.interrupted_by_restart "$_st")" = true
	expect "$_k-restart-verdict-phase" "$(jget .last.phase "$_st")" = "$_ph"
	expect "$_k-restart-verdict-failed" "$(jget .last.result "$_st")" = failed
	expect "$_k-restart-reserved-to-heir" "$(jget .last.reattach_reserved_for "$_st")" -eq "$_heir"
	expect "$_k-restart-verdict-iommufd-fds" "$(jget '.last.iommufd_fds[]' "$_st" | wc -l)" -eq 2
	if jhas '.last.iommufd_fds[]' "$_st" "vfio:$vf"; then t_ok "$_k-restart-verdict-names-vfio"; else t_fail "$_k-restart-verdict-names-vfio" "$(jget .last.iommufd_fds "$_st")"; fi
	expect "$_k-restart-verdict-logged-once" "$(grep -cF "update ${_id:-0} of iofu: failed: vlud restarted during the update (phase $_ph): $_text" "$IOFU_TMP-vlud.log")" -eq 1
	vluctl --socket "$SOCK" --json call instance.register '{"name":"iofu","reattach":true}' > "$IOFU_TMP-$_k.other" 2>&1
	if grep -q "reserved to pid $_heir," "$IOFU_TMP-$_k.other"; then t_ok "$_k-other-reattach-refused"; else t_fail "$_k-other-reattach-refused" "$(head -c 400 "$IOFU_TMP-$_k.other")"; fi
}
# lost_end K GEN-ROLE PID W0: the end of K (k3-k7): PID, the VMM image vmm-GEN-ROLE that reattached to the
# restarted vlud, passed its own checks once (reattached, CHANGE_PROCESS, VmPin, VmLck, DMA from its mapping);
# it alone is charged (VmPin 1024 kB, VmLck $LCK: 1024 kB in mm accounting, 0 in user; a second live process
# of the update is checked by the case);
# it is the instance's VMM; every held fd the same (id and inode) and as many; no kernel WARNING since W0
lost_end() {
	_k=$1 _img=$2 _p=$3 _w0=$4
	for _c in reattached change-process vmpin vmlck dma data in-memfd; do
		expect "$_k-own-$_c" "$(vlogok "$_img" "lost.$_c")" -eq 1
	done
	expect "$_k-vmpin" "$(vmpin "$_p")" -eq 1024
	expect "$_k-vmlck" "$(vmlck "$_p")" -eq "$LCK"
	vluctl --socket "$SOCK" --json instances > "$IOFU_TMP-$_k.inst" 2>&1
	expect "$_k-instance-attached-to-it" "$(jget '.instances[name=iofu].pid' "$IOFU_TMP-$_k.inst")" -eq "$_p"
	expect "$_k-fds-kept" "$(held)" = "$held0"
	expect "$_k-fds-count" "$(nheld)" -eq "$nheld0"
	_w1=$(warnings)
	if [ "$_w1" -eq "$_w0" ]; then
		t_ok "$_k-no-kernel-warning"
	else
		t_fail "$_k-no-kernel-warning" "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
	fi
}
# taken_back K GEN SUCC W0 CHECK...: the end of K (k1, k2), the old VMM $O stopped at its take-back: continued,
# it reattaches (its image GEN ready), at which vlud kills the held successor SUCC (logged); each CHECK of the
# old VMM's own (its TAP line vmm-GEN-reclaimed.reclaim.CHECK) passed once; its VmPin and VmLck 1024 kB, the
# held fds those of the start ($held0); no kernel WARNING since the count W0
taken_back() {
	_k=$1 _gen=$2 _succ=$3 _w0=$4
	shift 4
	kill -CONT "$O"
	if wait_until 300 ready "$_gen" reattached; then t_ok "$_k-old-vmm-reattached"; else t_fail "$_k-old-vmm-reattached" "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
	if wait_until 100 gone "$_succ"; then t_ok "$_k-successor-killed"; else t_fail "$_k-successor-killed" "pid $_succ: $(grep State "/proc/$_succ/status")"; fi
	if grep -q "instance iofu: killed the successor $_succ that vlud had stopped during update [0-9]* until the old VMM took the iommufd charge back: the old VMM $O reattached" "$IOFU_TMP-vlud.log"; then
		t_ok "$_k-killed-at-old-reattach"
	else
		t_fail "$_k-killed-at-old-reattach" "$(grep "successor $_succ" "$IOFU_TMP-vlud.log" | tail -2 | tr '\n' ' ')"
	fi
	for _c in "$@"; do
		expect "$_k-reclaim-$_c" "$(grep -c "^ok - .*/vmm-$_gen-reclaimed\.reclaim\.$_c\$" "$LOG")" -eq 1
	done
	expect "$_k-vmpin-old" "$(vmpin "$O")" -eq 1024
	expect "$_k-vmlck-old" "$(vmlck "$O")" -eq 1024
	expect "$_k-fds-kept" "$(held)" = "$held0"
	_w1=$(warnings)
	if [ "$_w1" -eq "$_w0" ]; then
		t_ok "$_k-no-kernel-warning"
	else
		t_fail "$_k-no-kernel-warning" "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
	fi
}

edu_find
edu_bind
echo "# edu $bdf: $dev"
mkdir -p /run/vlud "$FDS_DIR"
rm -f "$FDS_DIR"/* "$IOFU_TMP-stop-save"
iofu_conf '"timeouts": { "update": { "save_ms": 30000, "commit_ms": 30000 } }' '"update": { "held_successor_survives_stop": true }'
vlu-fdstore --socket "$SOCK" --notify "$FDS_DIR/notify" --dir "$FDS_DIR" --restart-on-exit -- vlud --config "$IOFU_TMP-vlud.conf" \
	> "$IOFU_TMP-vlud.log" 2>&1 &
FDS=$!
if wait_until 300 ready_ge 1; then t_ok vlud-ready-under-vlu-fdstore; else t_fail vlud-ready-under-vlu-fdstore "no READY=1"; fi
VLUD=$(cat "$FDS_DIR/pid")

iofu_vmm --acct mm --stop-at-held-reclaim --reattach-when-vlud-lost --stop-at-save-if "$IOFU_TMP-stop-save"
O=$VMM
nheld0=$(nheld)
LCK=1024
expect vmlck-first "$(vmlck "$O")" -eq 1024
BIN=$(readlink "/proc/$O/exe")
SUCC="--arg $BIN --arg vmm --arg $SOCK --arg $dev --arg $bdf --arg $LOG --arg $MARK --arg --acct --arg mm"
w0=$(warnings)

# k1: the update (its vluctl waits for a verdict the killed vlud never sends: in the background)
# shellcheck disable=SC2086 # SUCC: --arg pairs, no spaces in them
update k1 $SUCC --arg --fail-after-change-process &
UPD=$!
if wait_until 300 is_stopped "$O"; then t_ok k1-old-vmm-stopped-itself; else t_fail k1-old-vmm-stopped-itself "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
N=$(sed -n 's/.*stopped the successor \([0-9]*\) (SIGSTOP).*/\1/p' "$IOFU_TMP-vlud.log" | tail -1)
expect k1-successor-held "${N:-0}" -gt 0
if is_stopped "$N"; then t_ok k1-successor-stopped; else t_fail k1-successor-stopped "pid $N: $(grep State "/proc/$N/status")"; fi
expect k1-successor-charged-vmpin "$(vmpin "$N")" -eq 1024
expect k1-successor-charged-vmlck "$(vmlck "$N")" -eq 1024
expect k1-old-told-successor-stopped "$(grep -c "^ok - .*/vmm-1-reclaimed\.reclaim\.successor-stopped\$" "$LOG")" -eq 1

# vlud killed during the take-back; vlu-fdstore starts it again from the fd store
r0=$(cat "$FDS_DIR/ready")
kill -9 "$VLUD"
if wait_until 300 ready_ge $((r0 + 1)) && [ "$(cat "$FDS_DIR/pid")" != "$VLUD" ]; then
	t_ok k1-vlud-restarted
else
	t_fail k1-vlud-restarted "pid $(cat "$FDS_DIR/pid"), ready $(cat "$FDS_DIR/ready")"
fi
VLUD=$(cat "$FDS_DIR/pid")
wait "$UPD" 2> /dev/null
if grep -q "instance iofu: the successor $N that vlud had stopped during update [0-9]* stays stopped until the old VMM $O reattaches or exits" "$IOFU_TMP-vlud.log"; then
	t_ok k1-restarted-vlud-keeps-it
else
	t_fail k1-restarted-vlud-keeps-it "$(grep "successor $N" "$IOFU_TMP-vlud.log" | tail -2 | tr '\n' ' ')"
fi
# the update's record: ended by the restarted vlud, the instance reserved to the old VMM
UID1=$(sed -n 's/.*update \([0-9]*\) of iofu: stopped the successor.*/\1/p' "$IOFU_TMP-vlud.log" | tail -1)
ST1=$IOFU_TMP-k1.ustatus
vluctl --socket "$SOCK" --json call update.status '{"instance":"iofu"}' > "$ST1" 2>&1
sed "s/^/# k1 update.status after the restart: /" "$ST1" | cut -c1-800
expect k1-restart-verdict-id "$(jget .last.id "$ST1")" -eq "${UID1:-0}"
expect k1-restart-verdict-interrupted "$(jget .last.interrupted_by_restart "$ST1")" = true
expect k1-restart-verdict-phase "$(jget .last.phase "$ST1")" = rollback
expect k1-restart-reserved-to-old "$(jget .last.reattach_reserved_for "$ST1")" -eq "$O"
expect k1-restart-verdict-iommufd-fds "$(jget '.last.iommufd_fds[]' "$ST1" | wc -l)" -eq 2
if jhas '.last.iommufd_fds[]' "$ST1" "vfio:$vf"; then t_ok k1-restart-verdict-names-vfio; else t_fail k1-restart-verdict-names-vfio "$(jget .last.iommufd_fds "$ST1")"; fi
expect k1-restart-verdict-logged-once "$(grep -c "update ${UID1:-0} of iofu: failed: vlud restarted during the update (phase rollback): the successor (pid $N) had failed and was held stopped" "$IOFU_TMP-vlud.log")" -eq 1
vluctl --socket "$SOCK" --json call instance.register '{"name":"iofu","reattach":true}' > "$IOFU_TMP-k1.other" 2>&1
if grep -q "reserved to pid $O," "$IOFU_TMP-k1.other"; then t_ok k1-other-reattach-refused; else t_fail k1-other-reattach-refused "$(head -c 400 "$IOFU_TMP-k1.other")"; fi
sleep 2
if is_stopped "$N"; then t_ok k1-still-stopped-after-restart; else t_fail k1-still-stopped-after-restart "pid $N: $(grep State "/proc/$N/status" 2> /dev/null || echo gone)"; fi
expect k1-still-charged-after-restart "$(vmpin "$N")" -eq 1024

# the old VMM goes on: the charge back from the live mm, then its reattach, at which the successor goes
taken_back k1 1 "$N" "$w0" successor-vmpin-before=1024 successor-vmlck-before=1024 charge-before=1024 \
	vmlck-charge-before=1024 successor-stopped-after-vlud-restart successor-vmpin-after-vlud-restart=1024 \
	change-process successor-vmpin-after=0 successor-vmlck-after=0 successor-still-stopped vmpin=1024 vmlck=1024 \
	dma data in-memfd ready-to-the-killed-vlud-fails reattached


# k2: the same, vlud stopped (SIGTERM) during the take-back and started again with the store
w0=$(warnings)
# shellcheck disable=SC2086
update k2 $SUCC --arg --fail-after-change-process &
UPD=$!
if wait_until 300 is_stopped "$O"; then t_ok k2-old-vmm-stopped-itself; else t_fail k2-old-vmm-stopped-itself "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
N2=$(sed -n 's/.*stopped the successor \([0-9]*\) (SIGSTOP).*/\1/p' "$IOFU_TMP-vlud.log" | tail -1)
expect k2-another-successor "${N2:-0}" -ne "$N"
if is_stopped "$N2"; then t_ok k2-successor-stopped; else t_fail k2-successor-stopped "pid $N2: $(grep State "/proc/$N2/status")"; fi
expect k2-successor-charged-vmpin "$(vmpin "$N2")" -eq 1024
r0=$(cat "$FDS_DIR/ready")
kill "$VLUD"
if wait_until 300 ready_ge $((r0 + 1)) && [ "$(cat "$FDS_DIR/pid")" != "$VLUD" ]; then
	t_ok k2-vlud-stopped-and-started
else
	t_fail k2-vlud-stopped-and-started "pid $(cat "$FDS_DIR/pid"), ready $(cat "$FDS_DIR/ready")"
fi
if grep -q "service pid $VLUD exited with status 0" "$IOFU_TMP-vlud.log"; then t_ok k2-vlud-exited-cleanly; else t_fail k2-vlud-exited-cleanly "$(grep "service pid $VLUD" "$IOFU_TMP-vlud.log")"; fi
VLUD=$(cat "$FDS_DIR/pid")
wait "$UPD" 2> /dev/null
# (the verdict's error: in vluctl's output, and in the stopping vlud's log line of the verdict)
if cat "$IOFU_TMP-k2.json" "$IOFU_TMP-k2.err" "$IOFU_TMP-vlud.log" 2> /dev/null | grep -qF "vlud is stopping: the successor $N2 stays stopped"; then
	t_ok k2-verdict-says-left-stopped
else
	t_fail k2-verdict-says-left-stopped "$(cat "$IOFU_TMP-k2.json" "$IOFU_TMP-k2.err" 2> /dev/null | tr '\n' ' ' | cut -c1-400)"
fi
if grep -q "update [0-9]* of iofu: the successor $N2, held stopped, stays stopped: vlud is stopping" "$IOFU_TMP-vlud.log"; then
	t_ok k2-left-stopped-logged
else
	t_fail k2-left-stopped-logged "$(grep "successor $N2" "$IOFU_TMP-vlud.log" | tail -2 | tr '\n' ' ')"
fi
if grep -q "instance iofu: the successor $N2 that vlud had stopped during update [0-9]* stays stopped until the old VMM $O reattaches or exits" "$IOFU_TMP-vlud.log"; then
	t_ok k2-next-vlud-keeps-it
else
	t_fail k2-next-vlud-keeps-it "$(grep "successor $N2" "$IOFU_TMP-vlud.log" | tail -2 | tr '\n' ' ')"
fi
sleep 2
if is_stopped "$N2"; then t_ok k2-still-stopped; else t_fail k2-still-stopped "pid $N2: $(grep State "/proc/$N2/status" 2> /dev/null || echo gone)"; fi
expect k2-still-charged "$(vmpin "$N2")" -eq 1024
taken_back k2 2 "$N2" "$w0" successor-stopped-after-vlud-restart successor-vmpin-after-vlud-restart=1024 \
	change-process successor-vmpin-after=0 successor-vmlck-after=0 successor-still-stopped vmpin=1024 vmlck=1024 \
	ready-to-the-killed-vlud-fails reattached


# k3: vlud killed in phase save (the old VMM stopped itself at update.save, before its save)
w0=$(warnings)
: > "$IOFU_TMP-stop-save"
# shellcheck disable=SC2086
update k3 $SUCC &
UPD=$!
if wait_until 300 is_stopped "$O"; then t_ok k3-old-vmm-stopped-at-save; else t_fail k3-old-vmm-stopped-at-save "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
killed_in k3 save "$O" "before the hand-over, the old VMM (pid $O, alive) holds the iommufd charge"
kill -CONT "$O"
if wait_until 300 ready 3 first-reattached; then t_ok k3-old-vmm-reattached; else t_fail k3-old-vmm-reattached "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k3-saved-to-the-killed-vlud-fails "$(grep -c '^ok - .*\.update-saved-3-to-the-killed-vlud-fails$' "$LOG")" -eq 1
lost_end k3 3-first "$O" "$w0"

# k4: vlud killed in phase claim (the successor stopped itself before its claim; the old VMM stopped)
w0=$(warnings)
# shellcheck disable=SC2086
update k4 $SUCC --arg --stop-before-claim &
UPD=$!
N4=
if wait_until 300 ready 0 stopped-before-claim && N4=$pid && wait_until 100 is_stopped "$N4"; then
	t_ok k4-successor-stopped-before-claim
else
	t_fail k4-successor-stopped-before-claim "pid ${N4:-?}: $(tail -3 "$LOG" | tr '\n' ' ')"
fi
kill -STOP "$O"
if wait_until 100 is_stopped "$O"; then t_ok k4-old-vmm-stopped; else t_fail k4-old-vmm-stopped "pid $O: $(grep State "/proc/$O/status")"; fi
killed_in k4 claim "$O" "before the hand-over, the old VMM (pid $O, alive) holds the iommufd charge"
kill -CONT "$O"
if wait_until 300 ready 4 first-reattached; then t_ok k4-old-vmm-reattached; else t_fail k4-old-vmm-reattached "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k4-successor-vmpin "$(vmpin "${N4:-0}")" -eq 0
expect k4-successor-vmlck "$(vmlck "${N4:-0}")" -eq 0
kill -CONT "${N4:-0}"
if wait_until 100 gone "${N4:-0}"; then t_ok k4-successor-exited; else t_fail k4-successor-exited "pid ${N4:-?}: $(grep State "/proc/${N4:-0}/status")"; fi
expect k4-claim-refused "$(vlogok "pid${N4:-0}-stop-claim" claim-refused-after-vlud-restart)" -eq 1
lost_end k4 4-first "$O" "$w0"

# k5: vlud killed in phase restore (the successor stopped itself after its CHANGE_PROCESS, before
# update.ready; the old VMM stopped)
w0=$(warnings)
# shellcheck disable=SC2086
update k5 $SUCC --arg --stop-before-ready &
UPD=$!
N5=
if wait_until 300 ready 5 stop-ready && N5=$pid && wait_until 100 is_stopped "$N5"; then
	t_ok k5-successor-stopped-before-ready
else
	t_fail k5-successor-stopped-before-ready "pid ${N5:-?}: $(tail -3 "$LOG" | tr '\n' ' ')"
fi
N5=${N5:-0}
kill -STOP "$O"
if wait_until 100 is_stopped "$O"; then t_ok k5-old-vmm-stopped; else t_fail k5-old-vmm-stopped "pid $O: $(grep State "/proc/$O/status")"; fi
expect k5-moved-vmpin-successor "$(vmpin "$N5")" -eq 1024
expect k5-moved-vmlck-successor "$(vmlck "$N5")" -eq 1024
expect k5-moved-vmpin-old "$(vmpin "$O")" -eq 0
expect k5-moved-vmlck-old "$(vmlck "$O")" -eq 0
killed_in k5 restore "$N5" "the successor (pid $N5, alive) had claimed every fd; the iommufd charge is its own once its IOMMU_IOAS_CHANGE_PROCESS ran"
# the old VMM first: refused while the successor lives, it does not touch the charge
kill -CONT "$O"
if wait_until 300 grep -q "^# vmm-5-first: reattach refused" "$LOG"; then t_ok k5-old-vmm-refused; else t_fail k5-old-vmm-refused "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k5-old-vmpin-untouched "$(vmpin "$O")" -eq 0
expect k5-old-vmlck-untouched "$(vmlck "$O")" -eq 0
kill -CONT "$N5"
if wait_until 300 ready 5 stop-ready-reattached; then t_ok k5-successor-reattached; else t_fail k5-successor-reattached "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k5-ready-to-the-killed-vlud-fails "$(vlogok 5-stop-ready ready-to-the-killed-vlud-fails)" -eq 1
expect k5-old-vmpin "$(vmpin "$O")" -eq 0
expect k5-old-vmlck "$(vmlck "$O")" -eq 0
# still refused (the instance is the successor's now); stopped, it says so itself
kill "$O"
if wait_until 100 gone "$O"; then t_ok k5-old-vmm-exited; else t_fail k5-old-vmm-exited "pid $O: $(grep State "/proc/$O/status")"; fi
expect k5-old-vmm-never-reattached "$(vlogok 5-first lost.reattach-refused)" -eq 1
lost_end k5 5-stop-ready "$N5" "$w0"


# k6, k7: user accounting and exec mode, with a VMM of their own (gen 10 on: TAP names of its own), once the
# instance of k1-k5 is released
kill "$N5"
if wait_until 50 gone "$N5"; then t_ok user-mm-vmm-stopped; else t_fail user-mm-vmm-stopped "pid $N5: $(grep State "/proc/$N5/status")"; fi
vluctl --socket "$SOCK" --json call instance.release '{"name":"iofu"}' > "$IOFU_TMP-release.json" 2>&1
expect user-mm-instance-released "$(jget .closed_fds "$IOFU_TMP-release.json")" -eq "$nheld0"
# vlu-fdstore's copies gone too (FDSTOREREMOVE): until then the VFIO cdev is still bound to the old context
if wait_until 100 store_empty; then t_ok user-mm-store-emptied; else t_fail user-mm-store-emptied "$(tr '\n' ' ' < "$FDS_DIR/store")"; fi
echo "# the VMM's log of k1-k5 (every process and image):"
cat "$LOG"
: > "$LOG"
vlu-iommufd vmm "$SOCK" "$dev" "$bdf" "$LOG" "$MARK" --first-gen 10 --reattach-when-vlud-lost \
	--stop-at-save-if "$IOFU_TMP-stop-save" &
O2=$!
if wait_until 300 ready 10 first; then t_ok user-vmm-ready; else t_fail user-vmm-ready "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect user-vmpin-first "$(vmpin "$O2")" -eq 1024
expect user-vmlck-first "$(vmlck "$O2")" -eq 0
held0=$(held)
echo "# held: $held0"
nheld0=$(nheld)
IOFU_MODE="exec"
LCK=0
ARGS="--arg $BIN --arg vmm --arg $SOCK --arg $dev --arg $bdf --arg $LOG --arg $MARK"

# k6: vlud killed in phase save of an exec-mode update (the VMM stopped itself at update.save)
w0=$(warnings)
: > "$IOFU_TMP-stop-save"
update k6 &
UPD=$!
if wait_until 300 is_stopped "$O2"; then t_ok k6-vmm-stopped-at-save; else t_fail k6-vmm-stopped-at-save "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
killed_in k6 save "$O2" "before the hand-over, the old VMM (pid $O2, alive) holds the iommufd charge"
kill -CONT "$O2"
if wait_until 300 ready 11 first-reattached; then t_ok k6-vmm-reattached; else t_fail k6-vmm-reattached "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k6-saved-to-the-killed-vlud-fails "$(grep -c '^ok - .*\.update-saved-11-to-the-killed-vlud-fails$' "$LOG")" -eq 1
lost_end k6 11-first "$O2" "$w0"

# k7: vlud killed in phase restore of an exec-mode update (the new image, in the same pid, stopped itself
# after its CHANGE_PROCESS from the old image's dead mm, before update.ready)
w0=$(warnings)
# shellcheck disable=SC2086 # ARGS: --arg pairs, no spaces in them
update k7 $ARGS --arg --stop-before-ready &
UPD=$!
if wait_until 300 ready 12 stop-ready && wait_until 100 is_stopped "$O2"; then
	t_ok k7-new-image-stopped-before-ready
else
	t_fail k7-new-image-stopped-before-ready "$(tail -3 "$LOG" | tr '\n' ' ')"
fi
expect k7-new-image-same-pid "${pid:-0}" -eq "$O2"
expect k7-moved-vmpin "$(vmpin "$O2")" -eq 1024
killed_in k7 restore "$O2" "the successor (pid $O2, alive) had claimed every fd; the iommufd charge is its own once its IOMMU_IOAS_CHANGE_PROCESS ran"
kill -CONT "$O2"
if wait_until 300 ready 12 stop-ready-reattached; then t_ok k7-new-image-reattached; else t_fail k7-new-image-reattached "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
expect k7-ready-to-the-killed-vlud-fails "$(vlogok 12-stop-ready ready-to-the-killed-vlud-fails)" -eq 1
lost_end k7 12-stop-ready "$O2" "$w0"

iofu_stop "$O2" "$FDS" 80
exit $((FAILS > 0))
