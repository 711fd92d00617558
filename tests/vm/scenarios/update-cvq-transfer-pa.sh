#!/bin/sh
# update-cvq-transfer-pa: as update-cvq-exec-pa, transfer mode (vlud spawns the successor): paths A, B, C
# on the "hwreset" modules, PA mode; zero lost frames to the CVQ-set MAC, CVQ-first replay on B and C.
# Negative: a successor that does not replay (update.start's argv gives it --test-no-cvq-restore: vlud
# spawns it with its own environment) fails verification on config.mac; vlud kills it and the old VMM takes
# back (B: reclaim, C: the reopened device) and replays its control state: frames flow again, none lost.
# flavour: debian
# modules: hwreset
# use_va: 0
# devices: 1
# timeout: 480
. /scenarios/lib/cvq.sh
cvq_case transfer-a transfer A pa
cvq_case transfer-b transfer B pa
cvq_case transfer-c transfer C pa
cvq_noreplay_case noreplay-b transfer B
cvq_noreplay_case noreplay-c transfer C
exit $((FAILS > 0))
