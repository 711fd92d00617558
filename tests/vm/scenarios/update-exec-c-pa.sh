#!/bin/sh
# update-exec-c-pa: daemon-driven live update, exec mode, path C (reopen + re-pin) on stock modules, PA
# mode.  vlud drives (update.start from vluctl), minivmm follows (--vlud: save on update.save, exec on
# update.exec, claim with VLU_UPDATE_TOKEN, restore, update.ready).  Asserts: zero lost/duplicated frames
# in minivmm's report, the verdict ok with VmPin moved as expected (old before exec == new after commit
# == the PA mappings), DRIVER_OK after, verdict numbers == minivmm's, the instance attached to the same
# pid, no fd leaked in the daemon.  The VMM's connection to vlud kept across the exec (the new image
# claims on it); then, with a stale $VLU_CONNECTION (MINIVMM_TEST_CONN_ENV: fd 2, a wrong inode; the
# connection not kept), the new image falls back to a new connection and the update completes.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
UPD_VLUCTL_UPDATE=1
run_update_scenario exec C pa
UPD_VLUCTL_UPDATE=
export MINIVMM_TEST_CONN_ENV=2:1:0:1.0.0:1:
run_update_variant stale exec C pa new
unset MINIVMM_TEST_CONN_ENV
run_release_latency
exit $((FAILS > 0))
