#!/bin/sh
# rig-pa: PA mode (vdpa_sim use_va=0, like real hardware): IOTLB maps pin pages, VmPin is charged exactly
# and released by invalidate and last close; a 256 MiB map needs RLIMIT_MEMLOCK raised (EFAULT at the
# default 8 MiB limit, CAP_IPC_LOCK is no bypass; the limit is exact to the page).
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 180
rc=0
vdpatest map-pa || rc=1
vdpatest rlimit || rc=1
exit $rc
