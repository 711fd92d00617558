#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 180
#
# PA mode: the owner exec()s with the device running; VmPin N -> 0 in the new image -> N after VHOST_NEW_OWNER; IOTLB, vring ioctls and loopback work for it; last close brings VmPin to 0.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-exec-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest exec /dev/vhost-vdpa-0
