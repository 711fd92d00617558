#!/bin/sh
# iommufd-update-mixed: a VMM with both a vhost-vdpa device and a VFIO device on iommufd, updated in one
# update through vlud (docs/IOMMUFD.md "Mixed instances"): minivmm --edu runs loopback traffic on vdpa0
# (vdpa_sim, PA mode: 16 MiB of guest RAM pinned) and holds QEMU's edu (bound to vfio-pci) on /dev/iommu
# with the last MiB of the same guest RAM mapped by IOMMU_IOAS_MAP_FILE (user accounting, CAP_IPC_LOCK
# dropped); every image DMA-checks edu (the previous image's copy still in guest RAM, then a new DMA that
# lands in the memfd).  The stock modules offer no VHOST_NEW_OWNER: the vhost-vdpa device takes path C
# (released at the claim, reopened, re-pinned by the successor) while the iommufd's charge moves by
# IOMMU_IOAS_CHANGE_PROCESS.  VmPin is exact: 16384 kB (vhost-vdpa) + 1024 kB (iommufd) = 17408 kB, the old
# VMM's before, the new one's after, 0 left with a transfer-mode old VMM.
#  x1: exec mode, ok: one verdict with both parts (path C, iommufd moved, vhost_vdpa_kb, charge_moved_kb),
#      zero frames lost, edu DMA'd from the new image after its CHANGE_PROCESS;
#  t1: transfer mode, ok: the same with vlud's spawned successor, the old VMM at 0 kB after;
#  x2: exec mode, the new image exits right after its CHANGE_PROCESS (after the claim): vlud restarts the
#      previous binary, which re-pins the reopened device and takes the iommufd charge from the dead
#      image's mm: rolled-back, 17408 kB, its traffic and DMA;
#  t2: transfer mode, the successor exits right after its CHANGE_PROCESS: vlud releases and reopens the
#      device and the old VMM takes both back (re-pin, CHANGE_PROCESS from the dead successor) and calls
#      update.ready: rolled-back, verified at 17408 kB, its traffic and DMA go on.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 300
# shellcheck disable=SC2034,SC2154 # VLUD_DEVICES, VERDICT_EXP: read by lib/vlud.sh, lib/update.sh; bdf, dev: edu_bind's
. /scenarios/lib/update.sh
. /scenarios/lib/edu.sh

MIB=16
VDPA_KB=$((MIB * 1024))
IOF_KB=1024
EXP_KB=$((VDPA_KB + IOF_KB))
DUR=9

edu_find
edu_bind
echo "# edu $bdf: $dev"
VLUD_DEVICES="\"vdpa0\", \"/dev/iommu\", \"$dev\""
start_vlud '"update": { "allow_memlock_raise": true }'
sleep 0.5
FD_BASE=$(nfds "$VLUD_PID")

# mvm TAG INSTANCE [ARGS]: minivmm with the edu, traffic on vdpa0; waits for its bring-up
mvm() {
	_t=$1 _i=$2
	shift 2
	start_vmm "$_t" "$_i" --edu "$dev" --mem ${MIB}M --duration $DUR --pause-frames 8 "$@"
	wait_until 300 vmm_up "$_t.log" "$VMM_PID"
	if grep -q "edu first: DMA ok" "$_t.log"; then t_ok "$_t/edu-first-dma"; else t_fail "$_t/edu-first-dma" "$(grep edu "$_t.log" | tail -3 | tr '\n' ' ')"; fi
	expect "$_t/vmpin-both-shares" "$(vmpin "$VMM_PID")" -eq "$EXP_KB"
}
# the argv of a successor with a test knob (the instance INSTANCE), as update.start's "argv" member
knob_argv() {
	printf '"argv": ["minivmm", "--vlud", "%s", "--instance", "%s", "--vdpa", "vdpa0", "--edu", "%s", "--mem", "%sM", "--duration", "%s", "--pause-frames", "8", "--test-edu-die-after-move"]' \
		"$SOCK" "$1" "$dev" "$MIB" "$DUR"
}
# mixed_verdict TAG FILE PREFIX: the verdict's parts of a mixed update (PREFIX: "" or ".last")
mixed_verdict() {
	expect "$1/path-c" "$(jget "$3.path" "$2")" = C
	expect "$1/expected-kb-both-shares" "$(jget "$3.vmpin.expected_kb" "$2")" -eq "$EXP_KB"
	expect "$1/iommufd-moved" "$(jget "$3.iommufd.moved[]" "$2")" = iommufd:iommu
	expect "$1/iommufd-pinned-kb" "$(jget "$3.iommufd.pinned_kb" "$2")" -eq "$IOF_KB"
	expect "$1/vhost-vdpa-kb" "$(jget "$3.iommufd.vhost_vdpa_kb" "$2")" -eq "$VDPA_KB"
	expect "$1/vhost-vdpa-repinned" "$(jget "$3.iommufd.vhost_vdpa_repinned" "$2")" = true
	expect "$1/accounting-user" "$(jget "$3.iommufd.accounting" "$2")" = user
}
# edu_report TAG FILE KEPT MOVES: minivmm's edu line at its end
edu_report() {
	expect "$1/edu-fails-0" "$(val "$2" edu: fails)" -eq 0
	expect "$1/edu-checks-ok" "$(val "$2" edu: ok)" -eq "$(val "$2" edu: checks)"
	expect "$1/edu-previous-copy-kept" "$(val "$2" edu: kept)" -eq "$3"
	expect "$1/edu-moves" "$(val "$2" edu: moves)" -eq "$4"
}
# (vlud.log lines so far: a spawned process's output starts after them)
vlines() { wc -l < vlud.log; }
# release TAG INSTANCE (its VMMs have exited): the held fds go, vlud's fd count back to where it was
# before the first VMM (no leak), and the next case may open vdpa0 and bind the VFIO device afresh
release() {
	vctl release "$2" > /dev/null 2>&1
	expect "$1/released" "$?" -eq 0
	wait_until 100 nfds_is "$VLUD_PID" "$FD_BASE"
	expect "$1/vlud-fds-back" "$(nfds "$VLUD_PID")" -eq "$FD_BASE"
}

# ---- x1: exec mode, ok
mvm x1 vm1
update_ok x1 vm1 exec C pa
mixed_verdict x1 x1.verdict ""
expect x1/charge-moved-kb "$(jget .iommufd.charge_moved_kb x1.verdict)" -eq "$IOF_KB"
if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" x1.log; then t_ok x1/edu-moved-after-repin; else t_fail x1/edu-moved-after-repin "$(grep 'edu successor' x1.log | tr '\n' ' ')"; fi
if grep -q "edu successor: DMA ok, generation 1, generation 0's copy kept" x1.log; then t_ok x1/edu-dma-new-image; else t_fail x1/edu-dma-new-image "$(grep 'edu' x1.log | tail -3 | tr '\n' ' ')"; fi
# the operator's table of the same verdict (vluctl update status): both shares on one row
vctl update status vm1 > x1.ustatus 2>&1
sed "s/^/[x1 update status] /" x1.ustatus
if grep -q "^iommufd  *$IOF_KB kB (user accounting), moved by CHANGE_PROCESS on \[\"iommufd:iommu\"\]; vhost-vdpa $VDPA_KB kB (re-pinned)\$" x1.ustatus &&
	grep -q "^VmPin  *expected $EXP_KB kB, .* moved ok\$" x1.ustatus; then
	t_ok x1/vluctl-status-both-shares
else
	t_fail x1/vluctl-status-both-shares "$(grep -e '^iommufd' -e '^VmPin' x1.ustatus | tr '\n' ' ')"
fi
wait_vmm x1
# minivmm's own VmPin record is its vhost-vdpa device's (read after its take-over, before the edu's move)
VERDICT_EXP=$VDPA_KB
check_vmm_after x1 C
edu_report x1 x1.out 1 1
release x1 vm1

# ---- t1: transfer mode, ok (vlud spawns the successor; its output goes to vlud.log)
mvm t1 vm2
n0=$(vlines)
update_ok t1 vm2 transfer C pa
mixed_verdict t1 t1.verdict ""
expect t1/old-vmpin-after-0 "$(jget .vmpin.old_after_kb t1.verdict)" -eq 0
expect t1/old-vmpin-before "$(jget .vmpin.old_before_kb t1.verdict)" -eq "$EXP_KB"
expect t1/new-vmpin-after "$(jget .vmpin.new_after_kb t1.verdict)" -eq "$EXP_KB"
expect t1/charge-moved-kb "$(jget .iommufd.charge_moved_kb t1.verdict)" -eq "$IOF_KB"
wait "$VMM_PID"
expect t1/old-exits-0-after-commit "$?" -eq 0
sed "s/^/[t1 old] /" t1.log t1.out
wait_until 300 successor_ended "$NEW_PID"
sleep 0.2
tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > t1n.out
cp t1n.out t1n.log
st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
RC=$((${st:-0x100} >> 8))
if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" t1n.out; then t_ok t1/edu-moved-after-repin; else t_fail t1/edu-moved-after-repin "$(grep 'edu successor' t1n.out | tr '\n' ' ')"; fi
VERDICT_EXP=$VDPA_KB
check_vmm_after t1n C
edu_report t1n t1n.out 1 1
release t1 vm2

# ---- x2: exec mode, the new image dies with the charge after its claim: the previous binary restarted
mvm x2 vm3
n0=$(vlines)
vctl --json --timeout 30000 call update.start "{\"instance\":\"vm3\",\"mode\":\"exec\",\"path\":\"C\",$(knob_argv vm3)}" > x2.reply 2>&1
ustatus vm3 x2.status
expect x2/rolled-back "$(jget .last.result x2.status)" = rolled-back
expect x2/restarted-previous "$(jget .last.restarted_previous x2.status)" = true
if jget .last.error x2.status | grep -q "exited in phase restore"; then t_ok x2/reason-exit-after-claim; else t_fail x2/reason-exit-after-claim "$(jget .last.error x2.status)"; fi
mixed_verdict x2 x2.status .last
if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" x2.log && grep -q "test: exiting with the edu's charge" x2.log; then
	t_ok x2/died-with-the-charge
else
	t_fail x2/died-with-the-charge "$(grep -e 'edu successor' -e 'test: exiting' x2.log | tr '\n' ' ')"
fi
np=$(jget .last.new_pid x2.status)
expect x2/restarted-vmpin-both-shares "$(vmpin "$np")" -eq "$EXP_KB"
expect x2/instance-pid-is-restarted "$(inpid vm3)" = "$np"
st=$(devstatus)
expect x2/device-driver-ok "$((${st:-0} & 4))" -eq 4
wait "$VMM_PID" 2> /dev/null
wait_until 300 successor_ended "$np"
sleep 0.2
tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > x2r.out
sed "s/^/[x2 restarted] /" x2r.out
if grep -q "edu restarted: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" x2r.out; then t_ok x2/restarted-took-the-charge; else t_fail x2/restarted-took-the-charge "$(grep 'edu restarted' x2r.out | tr '\n' ' ')"; fi
if grep -q "edu restarted: DMA ok, generation 1, generation 0's copy kept" x2r.out; then t_ok x2/restarted-edu-dma; else t_fail x2/restarted-edu-dma "$(grep 'edu restarted' x2r.out | tr '\n' ' ')"; fi
expect x2/restarted-exit-1-update-not-done "$(sed -n "s/.*successor pid $np ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)" = 0x100
expect x2/restarted-only-the-update-failed "$(grep '^fail:' x2r.out | grep -vc 'update 1')" -eq 0
expect x2/traffic-none-lost "$(val x2r.out traffic: lost)" -eq 0
expect x2/traffic-all-echoed "$(val x2r.out traffic: echoed)" -eq "$(val x2r.out traffic: sent)"
expect x2/traffic-ran-on "$(val x2r.out traffic: sent)" -gt "$RAN_ON_MIN"
edu_report x2r x2r.out 1 1
release x2 vm3

# ---- t2: transfer mode, the successor dies with the charge after its claim: the old VMM takes both back
mvm t2 vm4
O=$VMM_PID
n0=$(vlines)
vctl --json --timeout 30000 call update.start "{\"instance\":\"vm4\",\"mode\":\"transfer\",\"path\":\"C\",$(knob_argv vm4)}" > t2.reply 2>&1
ustatus vm4 t2.status
expect t2/rolled-back "$(jget .last.result t2.status)" = rolled-back
if jget .last.error t2.status | grep -q "exited in phase restore.*took the device back (reopened, re-pinned) and the iommufd charge"; then
	t_ok t2/reason
else
	t_fail t2/reason "$(jget .last.error t2.status)"
fi
mixed_verdict t2 t2.status .last
expect t2/old-vmpin-both-shares "$(vmpin "$O")" -eq "$EXP_KB"
expect t2/instance-back-with-old "$(inpid vm4)" = "$O"
st=$(devstatus)
expect t2/device-driver-ok "$((${st:-0} & 4))" -eq 4
tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > t2n.out
sed "s/^/[t2 successor] /" t2n.out
if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" t2n.out && grep -q "test: exiting with the edu's charge" t2n.out; then
	t_ok t2/successor-died-with-the-charge
else
	t_fail t2/successor-died-with-the-charge "$(grep -e 'edu successor' -e 'test: exiting' t2n.out | tr '\n' ' ')"
fi
if grep -q "edu reclaimed: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" t2.log; then t_ok t2/old-took-the-charge-after-repin; else t_fail t2/old-took-the-charge-after-repin "$(grep 'edu reclaimed' t2.log | tr '\n' ' ')"; fi
if grep -q "edu reclaimed: DMA ok, generation 0, generation 0's copy kept" t2.log; then t_ok t2/old-edu-dma; else t_fail t2/old-edu-dma "$(grep edu t2.log | tail -3 | tr '\n' ' ')"; fi
if sed -n 's/.*vlud-verdict: //p' t2.log | jhas .result - rolled-back; then t_ok t2/old-got-verdict-rolled-back; else t_fail t2/old-got-verdict-rolled-back "no rolled-back verdict in its log"; fi
wait_vmm t2
expect t2/old-exit-1-update-not-done "$RC" -eq 1
expect t2/old-only-the-update-failed "$(grep '^fail:' t2.out | grep -vc 'update 1')" -eq 0
expect t2/traffic-none-lost "$(val t2.out traffic: lost)" -eq 0
expect t2/traffic-all-echoed "$(val t2.out traffic: echoed)" -eq "$(val t2.out traffic: sent)"
edu_report t2 t2.out 1 1
release t2 vm4

stop_vlud
exit $((FAILS > 0))
