#!/bin/sh
# update-faults-phases-a: the kill-at-each-phase matrix of update-faults-phases-c.sh on patched modules, where
# the automatic path is A (VHOST_NEW_OWNER + RESUME, PA mode): the same cases and end states, except that
# after a successor's claim the old VMM re-owns the device with VHOST_NEW_OWNER (update.rolled-back
# reclaim) instead of a reopen, and nothing is released or re-pinned.
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 480
. /scenarios/update-faults-phases-c.sh
