#!/bin/sh
# iommufd-update-mixed-phases-patched: iommufd-update-mixed-phases.sh (the kill-at-each-phase matrix of a
# mixed instance) on the iommufd flavour's patched kernel (VHOST_NEW_OWNER), where the automatic path of
# the vhost-vdpa device is A, for the cases whose end state differs from path C's: nothing is released or
# re-pinned, the vhost-vdpa share moves by VHOST_NEW_OWNER (from a dead mm: the consent), the iommufd's by
# CHANGE_PROCESS:
#   exec old exec          the previous binary restarted takes the device with VHOST_NEW_OWNER from the
#                          old image's dead mm (16384 kB) and the charge from it (-> 17408 kB)
#   exec new claimed       the same after the new image's claim (before its VHOST_NEW_OWNER)
#   transfer old claimed   the old VMM (armed) killed after the successor's claim: the successor takes both
#                          from its dead mm and completes the update (ok)
#   transfer new claimed   the successor killed after its claim: the old VMM, still the owner, re-owns
#                          (VHOST_NEW_OWNER: EBUSY, it never lost it), its CHANGE_PROCESS a no-op (17408 kB)
# The kill after the successor's CHANGE_PROCESS (ready) on path A is iommufd-update-mixed-patched's ra and
# rt (the process exits there instead of being killed: the same end state).  Rig, 2026-12-03: two runs, 133
# checks passed each, 59 and 61 s.
# flavour: iommufd
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
# shellcheck disable=SC2034 # MIXED_CASES: read by iommufd-update-mixed-phases.sh
MIXED_CASES="exec old exec;exec new claimed;transfer old claimed;transfer new claimed"
. /scenarios/iommufd-update-mixed-phases.sh
