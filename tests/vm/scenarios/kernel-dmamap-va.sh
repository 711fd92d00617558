#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 240
#
# VA mode on a dma_map parent: reloads vdpa_sim with batch_mapping=0 (dma_map/dma_unmap instead of set_map),
# runs vlu-ktest errors, resume and exec against it (IOTLB_REMAP goes through dma_unmap + dma_map), then
# restores the boot's module parameters and device for the scenarios after it.
S=${VLUD_SCENARIO:-kernel-dmamap-va}
MODS=/lib/modules/rig/${RIG_MODULES:-patched}
rc=0

reload() { # batch_mapping
	vdpa dev del vdpa0 2> /dev/null
	rmmod vdpa_sim_net && rmmod vdpa_sim || return 1
	insmod "$MODS/vdpa_sim.ko" use_va=1 max_iotlb_entries=0 batch_mapping="$1" || return 1
	insmod "$MODS/vdpa_sim_net.ko" || return 1
	vdpa dev add name vdpa0 mgmtdev vdpasim_net || return 1
	n=0
	while [ ! -c /dev/vhost-vdpa-0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
	[ -c /dev/vhost-vdpa-0 ]
}

if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - $S/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
if reload 0 && [ "$(cat /sys/module/vdpa_sim/parameters/batch_mapping)" = 0 ]; then
	echo "ok - $S/reload-batch-mapping-0"
	for t in errors resume exec; do
		VLUD_SCENARIO=$S/$t vlu-ktest $t /dev/vhost-vdpa-0 || rc=1
	done
else
	echo "not ok - $S/reload-batch-mapping-0: could not reload vdpa_sim with batch_mapping=0"
	rc=1
fi
if reload 1; then
	echo "ok - $S/restore"
else
	echo "not ok - $S/restore: could not reload vdpa_sim with batch_mapping=1"
	rc=1
fi
exit $rc
