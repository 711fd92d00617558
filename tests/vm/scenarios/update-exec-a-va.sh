#!/bin/sh
# update-exec-a-va: daemon-driven live update, exec mode, path A on patched modules, VA mode: VHOST_NEW_OWNER + IOTLB_REMAP + RESUME
# Zero lost frames, verdict ok with VmPin moved as expected, DRIVER_OK after, verdict numbers equal to
# minivmm's, instance attached to the successor, no fd leaked in the daemon (see lib/update.sh).
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_update_scenario exec A va
exit $((FAILS > 0))
