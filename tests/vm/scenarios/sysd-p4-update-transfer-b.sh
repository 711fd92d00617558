#!/bin/sh
# sysd-p4-update-transfer-b: a daemon-driven transfer-mode live update on path B: VHOST_NEW_OWNER, reset with
# IOTLB_PERSIST, vrings re-created (patched modules, PA) of a minivmm that runs as a systemd service of user
# vmm, under the packaged vlud.service: every check of lib/update.sh's update_ok (the path taken, the
# verdict's VmPin numbers, DRIVER_OK, no fd leak) and check_vmm_after: the old minivmm service hands over
# (after arming its device for the successor's pid) and exits 0, the successor vlud spawns runs in
# vlud.service's cgroup as uid 1000, its report read from the journal; VmPin moved exactly (the old process
# drops what the new one gains), zero frames lost.
# root: debian
# modules: patched
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-transfer-b
update_ok run vmm-transfer-b transfer B pa
sysd_transfer_after vmm-transfer-b B
exit $((FAILS > 0))
