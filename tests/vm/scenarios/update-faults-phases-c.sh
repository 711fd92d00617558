#!/bin/sh
# update-faults-phases-c: the VMM killed at each phase of a live update, on stock modules (path C, PA mode).
# For each (mode, process, point) a minivmm stops itself there (MINIVMM_TEST_STOP_AT) and is killed with
# SIGKILL; the end state is docs/UPDATE.md's rollback table (lib/faults.sh, fault_case):
#   exec mode      old VMM killed at save            failed, device resumed, instance orphaned, every fd kept
#                  old VMM killed at exec (saved)    previous binary restarted: rolled-back, it runs the device
#                  new image killed at claim          likewise (phase exec)
#                  new image killed at claimed/ready  likewise (phase restore; the device is released and
#                                                     reopened once more for the restarted binary)
#   transfer mode  old VMM killed at save            failed, device resumed, instance orphaned, every fd kept
#                  old VMM killed (after its save) while the successor is stopped at claim (before it
#                                                     connects), claimed or ready: the update goes on, the
#                                                     successor is continued and completes it (ok)
#                  successor killed at claim          rolled-back: the old VMM takes vlud's copy back
#                  successor killed at claimed/ready  rolled-back: vlud releases and reopens the device, the
#                                                     old VMM re-pins it (update.rolled-back brought_back)
# Each case: the verdict's result and phase, the owner (pid), DRIVER_OK, the owner's VmPin, its traffic
# (nothing lost), the event, every fd held by name, then release + a fresh VMM + no fd leak in vlud.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 480
. /scenarios/lib/update.sh
start_vlud '"update": { "allow_memlock_raise": true }'
. /scenarios/lib/faults.sh

CASES="exec old save;exec old exec;exec new claim;exec new claimed;exec new ready;transfer old save;\
transfer old claim;transfer old claimed;transfer old ready;transfer new claim;transfer new claimed;transfer new ready"
# FAULT_CASES (same form) runs a subset
oifs=$IFS
IFS=';'
# shellcheck disable=SC2086
set -- ${FAULT_CASES:-$CASES}
IFS=$oifs
for c in "$@"; do
	# shellcheck disable=SC2086
	fault_case $c ${FAULT_PATH:-} < /dev/null
done

stop_vlud
exit $((FAILS > 0))
