#!/bin/sh
# update-exec-c-va: daemon-driven live update, exec mode, path C on stock modules, VA mode: reopen + map again (nothing pinned in VA mode)
# Zero lost frames, verdict ok with VmPin moved as expected, DRIVER_OK after, verdict numbers equal to
# minivmm's, instance attached to the successor, no fd leaked in the daemon (see lib/update.sh).
# flavour: debian
# modules: stock
# use_va: 1
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_update_scenario exec C va
exit $((FAILS > 0))
