#!/bin/sh
# update-cvq-va: the control state survives exec-mode updates B and C in VA mode on the "hwreset" modules
# (see update-cvq-exec-pa); and without the replay the frames to the CVQ-set MAC are lost (path B).
# flavour: debian
# modules: hwreset
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/cvq.sh
cvq_case exec-b exec B va
cvq_case exec-c exec C va
cvq_case noreplay-b exec B va noreplay
exit $((FAILS > 0))
