#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 180
#
# Patched modules, PA mode: NEW_OWNER offered and accepted, IOTLB_REMAP neither; NEW_OWNER from an unowned fd, the owner, a child.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-features-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest features patched /dev/vhost-vdpa-0
