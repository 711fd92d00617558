#!/bin/sh
# rig-multidev: two vdpa_sim_net devices with MACs (mac: auto gives vdpaI 52:54:00:00:00:0<I+1>); each
# is its own /dev/vhost-vdpa-N with its own config, both usable at the same time.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 2
# mac: auto
# timeout: 180
rc=0
for i in 0 1; do
	mac=$(printf '52:54:00:00:00:%02x' $((i + 1)))
	if vdpa dev config show "vdpa$i" | grep -q "mac $mac"; then
		echo "ok - $VLUD_SCENARIO/vdpa$i.mac=$mac"
	else
		echo "not ok - $VLUD_SCENARIO/vdpa$i.mac: $(vdpa dev config show vdpa$i 2>&1)"; rc=1
	fi
	VLUD_SCENARIO=$VLUD_SCENARIO/dev$i vdpatest -d "/dev/vhost-vdpa-$i" features --mac "$mac" || rc=1
done
# both devices open and running at once (loopback on vdpa1 while vdpa0 is held by another process)
exec 3<> /dev/vhost-vdpa-0
VLUD_SCENARIO=$VLUD_SCENARIO/dev1-while-dev0-open vdpatest -d /dev/vhost-vdpa-1 loopback || rc=1
VLUD_SCENARIO=$VLUD_SCENARIO/dev0-held vdpatest -d /dev/vhost-vdpa-0 features 2>/dev/null | grep -q '^not ok - .*features.open: failed with EBUSY' &&
	echo "ok - $VLUD_SCENARIO/dev0-busy-while-held" || { echo "not ok - $VLUD_SCENARIO/dev0-busy-while-held: open did not fail with EBUSY"; rc=1; }
exec 3<&-
exit $rc
