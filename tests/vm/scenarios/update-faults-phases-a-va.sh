#!/bin/sh
# update-faults-phases-a-va: the kill-at-each-phase matrix of update-faults-phases-c.sh on patched modules in
# VA mode (vdpa_sim use_va=1: nothing pinned, expected_kb 0; the simulator works in its owner's mm, so a
# taker-back or successor re-binds it with VHOST_NEW_OWNER and remaps, IOTLB_REMAP), path A.
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 480
. /scenarios/update-faults-phases-c.sh
