#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 180
#
# Patched modules, VA mode: NEW_OWNER and IOTLB_REMAP offered and accepted; NEW_OWNER from an unowned fd, the owner, a child.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-features-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest features patched /dev/vhost-vdpa-0
