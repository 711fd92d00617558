#!/bin/sh
# rig-datapath: packets looped back TX -> RX through vdpa_sim_net with the payload compared (single
# frames, a 16-frame batch, the receive filter), then SUSPEND / GET_VRING_BASE / SET_VRING_BASE / RESUME
# with a kick while suspended replayed on resume.  PA mode.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 180
rc=0
vdpatest loopback || rc=1
vdpatest suspend || rc=1
exit $rc
