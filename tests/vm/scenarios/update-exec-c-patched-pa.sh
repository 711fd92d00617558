#!/bin/sh
# update-exec-c-patched-pa: daemon-driven live update, exec mode, path C on patched modules, PA mode: path C forced on patched modules
# Zero lost frames, verdict ok with VmPin moved as expected, DRIVER_OK after, verdict numbers equal to
# minivmm's, instance attached to the successor, no fd leaked in the daemon (see lib/update.sh).
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_update_scenario exec C pa
exit $((FAILS > 0))
