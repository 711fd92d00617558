#!/bin/sh
# update-exec-a-pa: daemon-driven live update, exec mode, path A on patched modules, PA mode: VHOST_NEW_OWNER + RESUME, nothing re-pinned
# Zero lost frames, verdict ok with VmPin moved as expected, DRIVER_OK after, verdict numbers equal to
# minivmm's, instance attached to the successor, no fd leaked in the daemon (see lib/update.sh).  Twice:
# the VMM's connection to vlud kept across the exec (the default: the new image claims on it), and not
# kept (MINIVMM_NO_KEEP_CONN=1, the new image connects anew: the old behaviour).
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
run_update_scenario exec A pa
export MINIVMM_NO_KEEP_CONN=1
run_update_variant notkept exec A pa new
unset MINIVMM_NO_KEEP_CONN
exit $((FAILS > 0))
