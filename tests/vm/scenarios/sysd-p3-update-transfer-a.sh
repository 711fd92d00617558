#!/bin/sh
# sysd-p3-update-transfer-a: a daemon-driven transfer-mode live update on path A: VHOST_NEW_OWNER + RESUME,
# nothing re-pinned (patched modules, PA) of a minivmm that runs as a systemd service of user vmm, under the
# packaged vlud.service: every check of lib/update.sh's update_ok (the path taken, the verdict's VmPin
# numbers, DRIVER_OK, no fd leak) and check_vmm_after: the old minivmm service hands over (after arming its
# device for the successor's pid) and exits 0, the successor vlud spawns runs in vlud.service's cgroup as uid
# 1000, its report read from the journal; VmPin moved exactly (the old process drops what the new one gains),
# zero frames lost.
# root: debian
# modules: patched
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-transfer-a
update_ok run vmm-transfer-a transfer A pa
sysd_transfer_after vmm-transfer-a A
exit $((FAILS > 0))
