#!/bin/sh
# flavour: debian
# modules: stock
# use_va: 1
# devices: 1
# timeout: 180
#
# Stock modules, VA mode: neither live-update bit is offered; VHOST_NEW_OWNER and IOTLB_REMAP fail as the stock kernel fails them.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-stock-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest features stock /dev/vhost-vdpa-0
