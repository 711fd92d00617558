#!/bin/sh
# iommufd-kernel-fixes: the two IOMMU_IOAS_CHANGE_PROCESS accounting bugs of Linux 7.3 (docs/IOMMUFD.md),
# asserted the right way on the iommufd flavour's patched kernel (kernel/iommufd/patches applied):
#  (a) a mapper with CAP_IPC_LOCK (accounting mode none): VmPin moves from the mapper to the caller
#      exactly and nothing underflows at the unmap, with the mapper alive (fork + exec, --fixed) and
#      after the mapper exec'ed (its mm dead);
#  (b) mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) after the mapper exec'ed: CHANGE_PROCESS succeeds,
#      VmPin and VmLck of the new image go up by the mapped size and come back at the unmap, no WARN;
#  plus user mode and the fork + exec cases of every mode, and the negative cases, on the same kernel.
# Each program run must add no kernel warning (besides the rig's per-scenario kernel-log check).
# On the stock kernel this scenario fails (that is the point): run a copy with "modules: stock" to see it
# (docs/RIG.md, "The iommufd flavour's patched kernel").
# flavour: iommufd
# modules: patched
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh

echo "kernel $(uname -r), module set $RIG_MODULES"
edu_find
t_ok edu-found
edu_bind

warnings() { dmesg | grep -c 'WARNING:'; }
# run NAME ARGS...: one vlu-iommufd run, its exit status and "no new kernel warning" as tests of their own
run() {
	_n=$1
	shift
	_w0=$(warnings)
	vlu-iommufd "$@"
	expect "$_n-exit" $? -eq 0
	_w1=$(warnings)
	if [ "$_w1" = "$_w0" ]; then
		t_ok "$_n-no-kernel-warning"
	else
		t_fail "$_n-no-kernel-warning" "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
	fi
}

# (a) none mode, the mapper alive
run none-fork --fixed --acct none change-process "$dev"
# (a) none mode, the mapper exec'ed
run none-exec --acct none change-process-exec "$dev"
# (b) mm mode, the mapper exec'ed
run mm-exec --acct mm change-process-exec "$dev"
# the rest on the same kernel: nothing else changed
run user-exec --acct user change-process-exec "$dev"
run user-fork --acct user change-process "$dev"
run mm-fork --acct mm change-process "$dev"
run negative negative "$dev"
exit $((FAILS > 0))
