#!/bin/sh
# iommufd-update-mixed-phases: the kill-at-each-phase matrix of update-faults-phases-c.sh (lib/faults.sh's
# fault_case: the same cases, stop points, SIGKILLs and end-state checks) on a mixed instance, the one of
# iommufd-update-mixed (lib/mixed.sh: minivmm --edu, traffic on vdpa0 in PA mode with 16 MiB of guest RAM
# pinned, QEMU's edu on VFIO/iommufd with the last MiB of it mapped by IOMMU_IOAS_MAP_FILE, user
# accounting; stock modules: the vhost-vdpa device takes path C).  docs/IOMMUFD.md "Mixed instances", "The
# kill-at-each-phase matrix":
#   exec mode      old VMM killed at save            failed, devices resumed, instance orphaned, every fd
#                                                    kept (the iommufd too); released, a fresh mixed VMM
#                                                    runs both devices
#                  old VMM killed at exec (saved)    the previous binary restarted: rolled-back; it re-pins
#                  new image killed at claim,        the reopened device and takes the iommufd charge from
#                  claimed, ready (after its         the dead image's mm (the old image's, or the new one's
#                  CHANGE_PROCESS)                   after its call) with its own CHANGE_PROCESS
#   transfer mode  old VMM killed at save            failed, orphaned, as in exec mode
#                  old VMM killed (after its save)   the update goes on: the successor, continued, takes the
#                  while the successor is stopped    charge from the dead old VMM's mm (or already had it)
#                  at claim, claimed or ready        and completes it (ok)
#                  successor killed at claim         rolled-back: the old VMM takes vlud's copy back; nothing
#                                                    of the iommufd moved (its DMA checked again)
#                  successor killed at claimed       rolled-back: the device reopened, the old VMM re-pins it;
#                                                    its CHANGE_PROCESS a no-op (the charge never left it)
#                  successor killed at ready         rolled-back: the old VMM re-pins and takes the charge
#                                                    from the dead successor's mm (16384 -> 17408 kB)
# Each case, besides fault_case's checks (verdict, reason, owner, DRIVER_OK, the owner's VmPin = 17408 kB
# = both devices' pins while it runs, its traffic with no frame lost, the event, every fd by name, release,
# a fresh VMM - with the edu - and no fd leak): the verdict's expected_kb and iommufd share, who took the
# charge from where (its CHANGE_PROCESS line), the surviving process's edu DMA after the rollback and its
# report (no failed check), no kernel warning (mixed_fault_hook).  The phase "verify" has no stop point of
# its own: vlud verifies inside its handling of update.ready (docs/IOMMUFD.md).  Rig, 2026-12-03: two runs,
# 368 checks passed each, 157 and 159 s.
# flavour: iommufd
# use_va: 0
# devices: 1
# default: no
# timeout: 480
. /scenarios/lib/update.sh
. /scenarios/lib/edu.sh
. /scenarios/lib/mixed.sh

mixed_start
mixed_faults

CASES="exec old save;exec old exec;exec new claim;exec new claimed;exec new ready;transfer old save;\
transfer old claim;transfer old claimed;transfer old ready;transfer new claim;transfer new claimed;transfer new ready"
# MIXED_CASES (the iommufd-update-mixed-phases-patched subset), then FAULT_CASES (same form) run a subset
oifs=$IFS
IFS=';'
# shellcheck disable=SC2086
set -- ${FAULT_CASES:-${MIXED_CASES:-$CASES}}
IFS=$oifs
for c in "$@"; do
	# shellcheck disable=SC2086
	fault_case $c ${FAULT_PATH:-} < /dev/null
done

stop_vlud
exit $((FAILS > 0))
