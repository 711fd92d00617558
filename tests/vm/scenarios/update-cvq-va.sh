#!/bin/sh
# update-cvq-va: the control state survives exec-mode updates B and C in VA mode on the "hwreset" modules
# (see update-cvq-exec-pa); and without the replay (path B) vlud's verification fails on config.mac and the
# previous binary restarted by vlud takes the device back with its MAC.
# flavour: debian
# modules: hwreset
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/cvq.sh
cvq_case exec-b exec B va
cvq_case exec-c exec C va
cvq_noreplay_case noreplay-b exec B
exit $((FAILS > 0))
