#!/bin/sh
# sysd-5-update-exec: a daemon-driven exec-mode live update (path C, stock modules, PA) of a minivmm that runs
# as a systemd service of user vmm, under the packaged vlud.service: every check of the happy path
# (lib/update.sh update_ok, check_vmm_after): same pid, VmPin moved, zero frames lost.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-u
update_ok run vmm-u exec C pa
sysd_exec_after vmm-u C
exit $((FAILS > 0))
