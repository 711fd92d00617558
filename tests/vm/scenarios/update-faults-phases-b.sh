#!/bin/sh
# update-faults-phases-b: the kill-at-each-phase matrix of update-faults-phases-c.sh on patched modules with
# path B forced (VHOST_NEW_OWNER + reset: vlud resets the device after the save, the new owner re-creates
# the vrings from the saved bases; PA mode): the same cases and end states; a rollback after the reset
# tells the old VMM reinit (it re-creates the vrings itself), one after a claim also reclaim (VHOST_NEW_OWNER).
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 480
FAULT_PATH=B
. /scenarios/update-faults-phases-c.sh
