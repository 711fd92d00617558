#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 180
#
# VA mode (path B): suspend + reset with IOTLB_PERSIST, exec, VHOST_NEW_OWNER, VHOST_IOTLB_REMAP to the memfd mapped elsewhere, rings re-created from saved indices, packets loop.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-exec-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest exec /dev/vhost-vdpa-0
