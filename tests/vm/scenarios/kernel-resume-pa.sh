#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 180
#
# PA mode (path A): suspend with packets pending, exec, VHOST_NEW_OWNER, resume: the pending packets arrive, none lost, rings and eventfds kept.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-resume-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest resume /dev/vhost-vdpa-0
