#!/bin/sh
# rig-va: VA mode (vdpa_sim use_va=1, the upstream default, like VDUSE): no pinning (VmPin stays 0), no
# RLIMIT_MEMLOCK check, anonymous memory silently skipped, the datapath works while the owner lives and
# stops once it exec()s; the non-owner matrix is the same as in PA mode.
# flavour: debian
# modules: stock
# use_va: 1
# devices: 1
# timeout: 180
rc=0
vdpatest map-va || rc=1
vdpatest loopback || rc=1
vdpatest nonowner || rc=1
exit $rc
