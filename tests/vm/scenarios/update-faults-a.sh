#!/bin/sh
# update-faults-a: the fault cases of update-faults-c.sh on patched modules, where the automatic path is
# A (VHOST_NEW_OWNER + RESUME): missing binary, wrong token/pid then the named successor dies (the old
# VMM, still the owner, is resumed), VMM killed in save, never claims, successor killed after its claim.
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 420
FAULTS_NEVER_CLAIMS_KEPT=1 # never-claims with the connection kept across the exec (-c: not kept)
. /scenarios/update-faults-c.sh
