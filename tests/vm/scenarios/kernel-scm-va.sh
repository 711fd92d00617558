#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 180
#
# VA mode: a second process gets the fds by SCM_RIGHTS while the device is suspended, becomes owner, remaps, resumes.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-scm-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest scm /dev/vhost-vdpa-0
