#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 180
#
# PA mode: a second process gets the fd by SCM_RIGHTS while the first lives and becomes owner: old VmPin N -> 0, new 0 -> N.
# Runs kernel/tests/vlu-ktest (built into $(O)/guest/); every assertion is one TAP line.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-scm-pa}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest scm /dev/vhost-vdpa-0
