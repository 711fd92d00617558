#!/bin/sh
# update-transfer-a-pa: daemon-driven live update, transfer mode (vlud spawns the successor with the instance's
# uid, no extra capabilities, RLIMIT_MEMLOCK raised), path A on patched modules, PA mode: VHOST_NEW_OWNER moves ownership and the pinned charge
# The old process exits only after the successor committed; zero lost frames; VmPin: the old process
# drops by what the new one gains; DRIVER_OK after; no fd leaked in the daemon.
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_transfer_scenario A pa
exit $((FAILS > 0))
