#!/bin/sh
# sysd-5-update-transfer: a transfer-mode live update (path C, stock modules, PA) under the packaged
# vlud.service: the old minivmm (a systemd service of user vmm) hands over and exits 0, the successor vlud
# spawns runs in vlud.service's cgroup (KillMode=process) as the instance's uid, its report goes to vlud's
# stdout (the journal): lib/update.sh's update_ok and check_vmm_after, zero frames lost.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-t
update_ok run vmm-t transfer C pa
sysd_transfer_after vmm-t C
exit $((FAILS > 0))
