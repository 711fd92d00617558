#!/bin/sh
# sysd-p2-update-exec-b: a daemon-driven exec-mode live update on path B: VHOST_NEW_OWNER, reset with
# IOTLB_PERSIST, vrings re-created (patched modules, PA) of a minivmm that runs as a systemd service of user
# vmm, under the packaged vlud.service: every check of lib/update.sh's update_ok (the path taken, the
# verdict's VmPin numbers, DRIVER_OK, no fd leak) and check_vmm_after: same pid, VmPin moved exactly, zero
# frames lost.
# root: debian
# modules: patched
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-exec-b
update_ok run vmm-exec-b exec B pa
sysd_exec_after vmm-exec-b B
exit $((FAILS > 0))
