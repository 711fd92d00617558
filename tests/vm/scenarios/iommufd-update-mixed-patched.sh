#!/bin/sh
# iommufd-update-mixed-patched: the mixed instance of iommufd-update-mixed (minivmm --edu: traffic on vdpa0,
# vdpa_sim in PA mode with 16 MiB of guest RAM pinned, and QEMU's edu on VFIO/iommufd with the last MiB of
# that RAM mapped by IOMMU_IOAS_MAP_FILE; lib/mixed.sh) on the iommufd flavour's patched kernel, whose
# vhost-vdpa carries kernel/patches (VHOST_NEW_OWNER): the vhost-vdpa device takes paths A and B, its share
# of VmPin moved by VHOST_NEW_OWNER (not released and re-pinned as on path C), the iommufd's by
# IOMMU_IOAS_CHANGE_PROCESS, in one update with one verdict (docs/IOMMUFD.md "Mixed instances", the table
# "What O loses and N gains").  VmPin is exact: 16384 + 1024 = 17408 kB before and after, and the verdict
# says "moved" (vhost_vdpa_repinned false).
#  a1: exec mode, path A, ok: one verdict with both parts, no frame lost, the new image's CHANGE_PROCESS
#      took its VmPin from 16384 kB (the vhost-vdpa share VHOST_NEW_OWNER moved from the old image's mm)
#      to 17408 kB, its edu DMA;
#  a2: transfer mode, path A, ok; the successor stops itself right after its claim (--test-stop-at
#      claimed), before its VHOST_NEW_OWNER and CHANGE_PROCESS: the old VMM still has both shares
#      (17408 kB: path A releases nothing at the claim; path C would leave it 1024 kB) and the successor
#      none (0 kB); continued, it moves both: the old VMM at 0 kB, the successor at 17408 kB;
#  b1, b2: exec and transfer mode, path B (VHOST_NEW_OWNER, then the reset and the vrings re-created), ok,
#      checked as a1 and a2's end;
#  ra: exec mode, path A, the new image exits right after its CHANGE_PROCESS (after the claim): vlud
#      restarts the previous binary, which takes the device from the dead image's mm with VHOST_NEW_OWNER
#      and the charge with CHANGE_PROCESS (rolled-back, 17408 kB, traffic, DMA);
#  rt: transfer mode, path A, the successor exits so: the old VMM takes the device back with VHOST_NEW_OWNER
#      (the dead successor's mm is the consent) and the charge, calls update.ready (rolled-back, verified at
#      17408 kB, traffic and DMA go on).
# In its first rig run (2026-12-03) b1's fresh minivmm failed its first IOTLB map of 16 MiB with EFAULT; the
# likely cause, 7.3's IOTLB cap of 2048 entries against fragmented 4 KiB pages in PA mode, is raised by the
# flavour since (docs/IOMMUFD.md, docs/RIG.md); every run after it passed (four, three with the raised caps).
# flavour: iommufd
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
# shellcheck disable=SC2034,SC2154,SC2317 # UPD_COMMIT_MS: read by lib/vlud.sh; n0: lib/mixed.sh's; a2_*: run by lib/mixed.sh
. /scenarios/lib/update.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/mixed.sh

# the hand-over's deadline after the claim (commit_ms): a2's successor is stopped in it for a moment
UPD_COMMIT_MS=15000
case $(uname -r) in
*-patched) t_ok patched-kernel ;;
*) t_fail patched-kernel "$(uname -r): not the flavour's patched kernel" ;;
esac
mixed_start

# ---- a1: exec mode, path A, ok
mixed_exec_ok a1 vm1 A

# ---- a2: transfer mode, path A, ok, and both processes' VmPin between the claim and the successor's calls
# a2_spawned: the successor vlud spawned for a2 (after vlud.log's line $n0), in $_n
a2_spawned() {
	_n=$(tail -n +$((n0 + 1)) vlud.log | sed -n 's/.*spawned successor .* as pid \([0-9]*\).*/\1/p' | tail -1)
	[ -n "$_n" ]
}
a2_stopped() { a2_spawned && is_stopped "$_n"; }
# (MIXED_BEFORE_UPDATE: the watcher, in the background while update_ok waits for the verdict: once the
# successor stopped itself after its claim, "OLD-VMPIN SUCCESSOR-VMPIN" into a2.between, then it continues it)
a2_watch() {
	_o=$VMM_PID
	: > a2.between
	(
		if wait_until 600 a2_stopped; then
			echo "$(vmpin "$_o") $(vmpin "$_n")" > a2.between
			kill -CONT "$_n"
		fi
	) &
	A2_WATCHER=$!
}
MIXED_BEFORE_UPDATE=a2_watch
mixed_transfer_ok a2 vm2 A --test-stop-at claimed
MIXED_BEFORE_UPDATE=
wait "$A2_WATCHER"
read -r a2_old a2_new < a2.between
echo "# a2: between the claim and the successor's calls: old VMM ${a2_old:-?} kB, successor ${a2_new:-?} kB"
expect a2/between-old-keeps-both-shares "${a2_old:-}" -eq "$EXP_KB"
expect a2/between-successor-nothing-yet "${a2_new:-}" -eq 0
if grep -q "test: stopping at claimed" a2n.out; then t_ok a2/successor-stopped-after-claim; else t_fail a2/successor-stopped-after-claim "no stop in its log"; fi

# ---- b1, b2: path B, exec and transfer mode, ok
mixed_exec_ok b1 vm3 B
mixed_transfer_ok b2 vm4 B

# ---- ra: exec mode, path A, the new image dies with the charge after its claim: the previous binary
# restarted takes both (the device from the dead image's mm with VHOST_NEW_OWNER)
mixed_exec_die ra vm5 A
# ---- rt: transfer mode, path A, the successor dies with the charge after its claim: the old VMM takes both
# back (VHOST_NEW_OWNER, CHANGE_PROCESS) and is verified at its update.ready
mixed_transfer_die rt vm6 A

stop_vlud
exit $((FAILS > 0))
