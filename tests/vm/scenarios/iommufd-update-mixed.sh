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
#      update.ready: rolled-back, verified at 17408 kB, its traffic and DMA go on;
#  m1: the iommufd in mm accounting (minivmm --edu-acct mm): refused up front in transfer mode (a
#      rollback after the successor's CHANGE_PROCESS would uncharge a dead mm: the successor must be gone
#      before the old VMM takes the vhost-vdpa device back) and in exec mode, each with its reason and
#      nothing touched (VmPin, VmLck, every held fd by id and inode, DRIVER_OK); traffic with no frame
#      lost, the edu DMAs again at the end, no kernel warning.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/mixed.sh
. /scenarios/lib/untouched.sh

mixed_start
# ---- x1: exec mode, ok
mixed_exec_ok x1 vm1 C
# ---- t1: transfer mode, ok (vlud spawns the successor; its output goes to vlud.log)
mixed_transfer_ok t1 vm2 C
# ---- x2: exec mode, the new image dies with the charge after its claim: the previous binary restarted
mixed_exec_die x2 vm3 C
# ---- t2: transfer mode, the successor dies with the charge after its claim: the old VMM takes both back
mixed_transfer_die t2 vm4 C
# ---- m1: mm accounting: refused up front, in transfer and exec mode, nothing touched
mixed_mm_refused m1 vm5

stop_vlud
exit $((FAILS > 0))
