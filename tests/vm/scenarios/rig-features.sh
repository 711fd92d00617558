#!/bin/sh
# rig-features: feature and capability discovery on a stock vdpa_sim_net device (exact values of
# Debian's 6.12 kernel with our out-of-tree stock modules), and the rig's own setup.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# mac: auto
# timeout: 120

# the rig created exactly the devices the header asked for
n=$(ls /dev/vhost-vdpa-* 2>/dev/null | wc -l)
if [ "$n" = "$RIG_DEVICES" ]; then echo "ok - $VLUD_SCENARIO/rig.devices=$n"; else echo "not ok - $VLUD_SCENARIO/rig.devices: $n device nodes, expected $RIG_DEVICES"; fi
if vdpa dev show vdpa0 | grep -q 'type network mgmtdev vdpasim_net'; then
	echo "ok - $VLUD_SCENARIO/rig.vdpa0-is-vdpasim_net"
else
	echo "not ok - $VLUD_SCENARIO/rig.vdpa0-is-vdpasim_net: $(vdpa dev show vdpa0 2>&1)"
fi
drv=$(basename "$(readlink /sys/bus/vdpa/devices/vdpa0/driver)")
if [ "$drv" = vhost_vdpa ]; then echo "ok - $VLUD_SCENARIO/rig.vdpa0-bound-to-vhost_vdpa"; else echo "not ok - $VLUD_SCENARIO/rig.vdpa0-bound-to-vhost_vdpa: driver '$drv'"; fi

# the MAC the rig provisioned (mac: auto gives this scenario a boot of its own: stock vdpa_sim_net keeps a
# MAC a VMM set through the control virtqueue across reset, so an earlier minivmm in a shared boot would
# leave its own)
vdpatest features --mac 52:54:00:00:00:01
