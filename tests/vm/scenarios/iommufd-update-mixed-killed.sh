#!/bin/sh
# iommufd-update-mixed-killed: a mixed instance (minivmm --edu: vhost-vdpa vdpa0, stock modules, path C, and
# QEMU's edu on VFIO/iommufd, docs/IOMMUFD.md "Mixed instances") in a transfer-mode update during which vlud
# is killed and restarted (vlud under vlu-fdstore, the fd-store part of PID 1) after the successor moved the
# iommufd's charge, and the successor dies next: nobody sends the old VMM a rollback, so the old VMM must
# take back by itself both the device and the charge (docs/IOMMUFD.md, "vlud restarted during a mixed
# update").
#  k1: the successor (--test-stop-at ready) claims every fd, re-pins the reopened vdpa0, calls
#      IOMMU_IOAS_CHANGE_PROCESS and stops before update.ready; the old VMM is stopped too (so that it
#      meets the restarted vlud only after the successor is gone); vlud is killed (vlu-fdstore restarts it:
#      verdict failed in phase restore, the instance reserved to the live successor, the iommufd and VFIO
#      fds named in the verdict, every fd kept); the
#      successor is killed; the old VMM, continued, reattaches, gets the device back from the restarted vlud
#      (reopened: the dead successor owned it), re-pins it and calls CHANGE_PROCESS itself: VmPin exactly
#      16384 + 1024 kB on the old VMM (without the take-back: 16384 kB, the iommufd's 1024 kB left charged
#      to the dead successor's mm), its edu DMA and its traffic run on with no frame lost, no fd leak in the
#      restarted vlud.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
# shellcheck disable=SC2034,SC2154 # VLUD_DEVICES: read by lib/vlud.sh; bdf, dev: edu_bind's; INST: lib/daemon-killed.sh's
. /scenarios/lib/update.sh
. /scenarios/lib/daemon-killed.sh
. /scenarios/lib/edu.sh

MIB=16
VDPA_KB=$((MIB * 1024))
IOF_KB=1024
EXP_KB=$((VDPA_KB + IOF_KB))
DUR=40

edu_find
edu_bind
echo "# edu $bdf: $dev"
VLUD_DEVICES="\"vdpa0\", \"/dev/iommu\", \"$dev\""
start_vlud_fdstore '"update": { "allow_memlock_raise": true }'
INST=vm1

start_vmm k1 "$INST" --edu "$dev" --mem ${MIB}M --duration $DUR --pause-frames 8
O=$VMM_PID
wait_until 300 vmm_up k1.log "$O"
if grep -q "edu first: DMA ok" k1.log; then t_ok k1/edu-first-dma; else t_fail k1/edu-first-dma "$(grep edu k1.log | tail -3 | tr '\n' ' ')"; fi
expect k1/vmpin-both-shares "$(vmpin "$O")" -eq "$EXP_KB"
wait_attached "$O" && t_ok k1/vmm-attached || t_fail k1/vmm-attached "$(vctl instances 2>&1 | tr '\n' ' ')"
held_names > held0-k1.txt
sed "s/^/[k1 held before] /" held0-k1.txt
st0=$(store_names)
expect k1/fd-store-has-every-held-fd "$st0" -eq "$(wc -l < held0-k1.txt)"

# the update: transfer mode, path C, the successor stops itself after its CHANGE_PROCESS
args="\"argv\": [\"minivmm\", \"--vlud\", \"$SOCK\", \"--instance\", \"$INST\", \"--vdpa\", \"vdpa0\", \"--edu\", \"$dev\", \"--mem\", \"${MIB}M\", \"--duration\", \"$DUR\", \"--pause-frames\", \"8\", \"--test-stop-at\", \"ready\"]"
vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"transfer\",\"path\":\"C\",\"wait\":false,$args}" > k1.start 2>&1
sed "s/^/[k1 update.start] /" k1.start
uid=$(jget .id k1.start)
expect k1/update-started "$uid" -gt 0
# spawned_pid: the successor the current vlud spawned
spawned_pid() { sed -n 's/.*spawned successor .* as pid \([0-9]*\).*/\1/p' vlud.log | tail -1; }
new_stopped() { N=$(spawned_pid) && [ -n "$N" ] && is_stopped "$N"; }
wait_until 300 new_stopped
N=$(spawned_pid)
new_stopped && t_ok k1/successor-stopped-before-ready || t_fail k1/successor-stopped-before-ready "pid ${N:-none}"
if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" vlud.log; then t_ok k1/successor-took-the-charge; else t_fail k1/successor-took-the-charge "$(grep 'edu successor' vlud.log | tr '\n' ' ')"; fi
expect k1/successor-vmpin-both-shares "$(vmpin "$N")" -eq "$EXP_KB"
expect k1/old-vmpin-0 "$(vmpin "$O")" -eq 0

# the old VMM stopped, vlud killed and restarted, then the successor killed
kill -STOP "$O"
kill_vlud k1
vlud2=$(vlud_pid)
fd_base=$(nfds "$vlud2")
vctl --json call update.status "{\"instance\":\"$INST\"}" > k1.ustatus 2>&1
sed "s/^/[k1 update.status after the restart] /" k1.ustatus
expect k1/verdict-failed "$(jget .last.result k1.ustatus)" = failed
expect k1/verdict-id "$(jget .last.id k1.ustatus)" -eq "$uid"
expect k1/verdict-phase "$(jget .last.phase k1.ustatus)" = restore
expect k1/reserved-to-the-successor "$(jget .last.reattach_reserved_for k1.ustatus)" -eq "$N"
# the record names the iommufd and the VFIO cdev beside vdpa0 (its "iommufd"), and so does the verdict
expect k1/verdict-iommufd-fds "$(jget '.last.iommufd_fds[]' k1.ustatus | wc -l)" -eq 2
if jhas '.last.iommufd_fds[]' k1.ustatus "vfio:$vf"; then t_ok k1/verdict-names-vfio; else t_fail k1/verdict-names-vfio "$(jget .last.iommufd_fds k1.ustatus)"; fi
held_names > held2-k1.txt
if cmp -s held0-k1.txt held2-k1.txt; then t_ok k1/every-fd-kept-same-names; else t_fail k1/every-fd-kept-same-names "$(diff held0-k1.txt held2-k1.txt | tr '\n' ' ')"; fi
expect k1/fd-store-same-count "$(store_names)" -eq "$st0"
kill -9 "$N"
wait_until 50 test ! -d "/proc/$N"
kill -CONT "$O"

# the old VMM takes the device and the charge back by itself and reattaches
wait_attached "$O" && t_ok k1/old-reattached || t_fail k1/old-reattached "$(vctl instances 2>&1 | tr '\n' ' ')"
wait_until 100 grep -q "edu reclaimed-after-restart: DMA ok" k1.log
if grep -q "vlud went away during the update" k1.log; then t_ok k1/old-saw-vlud-gone; else t_fail k1/old-saw-vlud-gone "not in its log"; fi
if grep -q "edu reclaimed-after-restart: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" k1.log; then
	t_ok k1/old-took-the-charge-back
else
	t_fail k1/old-took-the-charge-back "$(grep -e 'edu reclaimed' -e VmPin k1.log | tr '\n' ' ')"
fi
if grep -q "edu reclaimed-after-restart: DMA ok, generation 0, generation 0's copy kept" k1.log; then t_ok k1/old-edu-dma; else t_fail k1/old-edu-dma "$(grep edu k1.log | tail -3 | tr '\n' ' ')"; fi
sleep 2 # traffic after the take-back
expect k1/old-vmpin-both-shares "$(vmpin "$O")" -eq "$EXP_KB"
expect k1/instance-with-the-old-vmm "$(inpid "$INST")" = "$O"
st=$(devstatus)
expect k1/device-driver-ok "$((${st:-0} & 4))" -eq 4
wait_vmm k1
expect k1/old-exit-1-update-not-done "$RC" -eq 1
expect k1/old-only-the-update-failed "$(grep '^fail:' k1.out | grep -vc 'update 1')" -eq 0
expect k1/traffic-none-lost "$(val k1.out traffic: lost)" -eq 0
expect k1/traffic-none-dup "$(val k1.out traffic: dup)" -eq 0
expect k1/traffic-all-echoed "$(val k1.out traffic: echoed)" -eq "$(val k1.out traffic: sent)"
expect k1/edu-fails-0 "$(val k1.out edu: fails)" -eq 0
expect k1/edu-checks-ok "$(val k1.out edu: ok)" -eq "$(val k1.out edu: checks)"
expect k1/edu-moves-1 "$(val k1.out edu: moves)" -eq 1
# the VMM is gone (instance orphaned): the restarted vlud has what it had right after the restart, less
# the reservation's pidfd (dropped when the successor died)
wait_until 30 nfds_is "$vlud2" $((fd_base - 1))
expect k1/no-fd-leak-in-restarted-vlud "$(nfds "$vlud2")" -eq $((fd_base - 1))
held_names > held3-k1.txt
if cmp -s held0-k1.txt held3-k1.txt; then t_ok k1/every-fd-still-held-at-end; else t_fail k1/every-fd-still-held-at-end "$(diff held0-k1.txt held3-k1.txt | tr '\n' ' ')"; fi
vctl release "$INST" > /dev/null 2>&1
kill -TERM "$FDS_PID"
wait "$FDS_PID"
expect end/vlu-fdstore-clean-exit "$?" -eq 0
sed 's/^/[vlud] /' vlud.log
exit $((FAILS > 0))
