#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 180
#
# VA mode errors: EINVAL NEW_OWNER while running, REMAP EPERM/ENOENT/EINVAL (partial, superset, perm, size, anonymous, other file, offset, read-only, hole), valid remaps alone and in a batch.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-errors-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest errors /dev/vhost-vdpa-0
