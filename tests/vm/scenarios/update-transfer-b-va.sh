#!/bin/sh
# update-transfer-b-va: daemon-driven live update, transfer mode (vlud spawns the successor with the instance's
# uid, no extra capabilities, RLIMIT_MEMLOCK raised), path B on patched modules, VA mode: VHOST_NEW_OWNER +
# IOTLB_REMAP, reset with IOTLB_PERSIST, vrings re-created.
# The old process exits only after the successor committed; zero lost frames; VmPin 0 before and after
# (VA: nothing pinned); DRIVER_OK after; verdict numbers equal to the successor's; no fd leaked in the daemon.
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_transfer_scenario B va
exit $((FAILS > 0))
