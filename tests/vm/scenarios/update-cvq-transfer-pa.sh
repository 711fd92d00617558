#!/bin/sh
# update-cvq-transfer-pa: as update-cvq-exec-pa, transfer mode (vlud spawns the successor): paths A, B, C
# on the "hwreset" modules, PA mode; zero lost frames to the CVQ-set MAC, CVQ-first replay on B and C.
# flavour: debian
# modules: hwreset
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/cvq.sh
cvq_case transfer-a transfer A pa
cvq_case transfer-b transfer B pa
cvq_case transfer-c transfer C pa
exit $((FAILS > 0))
