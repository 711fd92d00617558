#!/bin/sh
# update-cvq-va: the control state survives updates on every path in exec and transfer mode in VA mode on
# the "hwreset" modules (see update-cvq-exec-pa and update-cvq-transfer-pa: no replay on A, CVQ-first
# replay on B and C); and without the replay (path B) vlud's verification fails on config.mac and the
# previous binary restarted by vlud takes the device back with its MAC.
# flavour: debian
# modules: hwreset
# use_va: 1
# devices: 1
# timeout: 600
. /scenarios/lib/cvq.sh
cvq_case exec-a exec A va
cvq_case exec-b exec B va
cvq_case exec-c exec C va
cvq_case transfer-a transfer A va
cvq_case transfer-b transfer B va
cvq_case transfer-c transfer C va
cvq_noreplay_case noreplay-b exec B
exit $((FAILS > 0))
