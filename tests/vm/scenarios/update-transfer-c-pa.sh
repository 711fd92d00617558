#!/bin/sh
# update-transfer-c-pa: daemon-driven live update, transfer mode (vlud spawns the successor with the instance's
# uid, no extra capabilities, RLIMIT_MEMLOCK raised), path C on stock modules, PA mode: the old process closes its device copy, vlud closes and reopens, the successor re-pins
# The old process exits only after the successor committed; zero lost frames; VmPin: the old process
# drops by what the new one gains; DRIVER_OK after; no fd leaked in the daemon.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_transfer_scenario C pa
exit $((FAILS > 0))
