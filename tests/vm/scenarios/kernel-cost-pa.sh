#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 240
#
# PA mode: cost of pinning 256 MiB (batched IOTLB_UPDATE) and unpinning it, against moving its charge with
# VHOST_NEW_OWNER (to a child and back); asserts NEW_OWNER costs less than a tenth of unpin + pin and prints
# a "# COST ..." line with the figures.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-cost-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest cost /dev/vhost-vdpa-0 256
