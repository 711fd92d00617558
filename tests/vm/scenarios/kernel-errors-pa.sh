#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 180
#
# PA mode errors: EINVAL unowned, EBUSY owner, ENOMEM over RLIMIT_MEMLOCK (nothing changes; exact limit fits), REMAP EOPNOTSUPP.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-errors-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest errors /dev/vhost-vdpa-0
