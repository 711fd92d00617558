#!/bin/bash
# tests/vm/selftest/run.sh - check the rig's own result handling with scenarios that fail on purpose
# (make vm-selftest).  Each check is one TAP line "vm-selftest/<what>".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
empty=$(mktemp -d)
VLUD_RIG_SCENARIO_DIR=$HERE VLUD_RIG_PATCH_DIR=$empty TAP_SUMMARY_NESTED= \
	bash "$HERE/../rig.sh" check self-fail self-leftover self-next self-exit self-hang self-after self-notap self-crash self-warn self-patched \
	self-badheader self-missing self-earlydeath self-nokernel > "$out" 2>&1
rc=$?
rmdir "$empty"
sed 's/^/# | /' "$out"
if skip=$(grep -m1 -E '^ok - vm # SKIP ' "$out"); then
	# no rig on this machine (no qemu, no kernel): nothing of the rig to check
	echo "ok - vm-selftest # SKIP ${skip#ok - vm # SKIP }"
	exit 0
fi
n=0 bad=0
expect() { # NAME REGEX: one line of the rig's output must match
	n=$((n + 1))
	if grep -qE "$2" "$out"; then echo "ok - vm-selftest/$1"; else echo "not ok - vm-selftest/$1: no line matches /$2/"; bad=1; fi
}
expect not-ok-passed-through '^not ok - self-fail/two: deliberate$'
expect ok-passed-through '^ok - self-fail/one$'
expect exit-status-without-not-ok '^not ok - self-exit/run: exited with status 3 without a failing test$'
expect hung-scenario-killed '^not ok - self-hang/run: timed out after 10 s \(guest killed\)'
expect next-scenario-after-hang-runs '^ok - self-after/ran$'
expect guest-crash-fails '^not ok - self-crash/run: guest stopped while it ran'
expect next-scenario-after-crash-runs '^ok - self-warn/x$'
expect leftover-process-killed '^ok - self-next/device-free$'
expect no-tap-line '^not ok - self-notap/run: printed no TAP line'
expect kernel-warning-fails '^not ok - self-warn/kernel-log: .*WARNING: CPU: 0 PID: 1 at self-test'
expect clean-kernel-log-passes '^ok - self-fail/kernel-log$'
expect patched-without-patches-skips '^ok - self-patched/run # SKIP needs patched modules: no patches in'
expect selftest-kernel-missing-fails '^not ok - self-nokernel/run: selftest kernel: the flavour debian has no selftest kernel'
expect bad-header-fails '^not ok - self-badheader/run: bad header'
expect missing-scenario-fails '^not ok - self-missing/run: no such scenario'
expect log-path-printed '^# self-fail failed: log .*/vm/logs/self-fail.log$'
expect early-death-retried '^# guest died before its first scenario .*booting once more$'
expect early-death-twice-fails '^not ok - self-earlydeath/run: not run: the guest never reached it'
expect summary-line '^[0-9]+ passed, 10 failed, 1 skipped$'
if [ "$rc" = 1 ]; then echo "ok - vm-selftest/exit-status-1"; else echo "not ok - vm-selftest/exit-status-1: rig.sh exited $rc"; bad=1; fi
# the default set: a directory whose only scenario says `default: no` runs nothing (no boot) and names it
ondemand=$(mktemp -d)
cp "$HERE/self-ondemand.sh" "$ondemand/"
VLUD_RIG_SCENARIO_DIR=$ondemand TAP_SUMMARY_NESTED= bash "$HERE/../rig.sh" check > "$out" 2>&1
rm -rf "$ondemand"
sed 's/^/# | /' "$out"
expect default-no-named '^# not in the default set \(run only when named: make vm-check SCENARIOS="self-ondemand"\): self-ondemand$'
expect default-no-not-run '^ok - vm # SKIP no scenarios in '
if grep -q 'self-ondemand/ran' "$out"; then echo "not ok - vm-selftest/default-no-left-out: it ran"; bad=1; else
	echo "ok - vm-selftest/default-no-left-out"; fi
exit $bad
