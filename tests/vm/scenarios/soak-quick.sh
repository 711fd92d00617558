#!/bin/sh
# soak-quick: the chaos soak's quick mode (lib/soak.sh, docs/SOAK.md) in make check: 20 kills of the VMM,
# the transfer successor or vlud in back-to-back live updates (exec and transfer mode, paths A, B, C), most
# aimed at a phase of the update, the others after a delay, seed 1; the invariants checked after every kill, the traffic of every lineage of VMMs
# checked every 4 kills.  `make soak` runs the long one (1000 kills per module set).
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 900
SOAK_KILLS=${SOAK_KILLS:-20}
SOAK_SEED=${SOAK_SEED:-1}
. /scenarios/lib/soak.sh
soak_run
exit $((FAILS > 0))
