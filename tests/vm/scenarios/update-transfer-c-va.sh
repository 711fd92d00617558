#!/bin/sh
# update-transfer-c-va: daemon-driven live update, transfer mode (vlud spawns the successor with the instance's
# uid, no extra capabilities, RLIMIT_MEMLOCK raised), path C on stock modules, VA mode: reopen and map again
# The old process exits only after the successor committed; zero lost frames; VmPin: the old process
# drops by what the new one gains; DRIVER_OK after; no fd leaked in the daemon.
# flavour: debian
# modules: stock
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_transfer_scenario C va
exit $((FAILS > 0))
