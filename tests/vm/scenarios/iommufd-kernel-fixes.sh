#!/bin/sh
# iommufd-kernel-fixes: the two IOMMU_IOAS_CHANGE_PROCESS accounting bugs of Linux 7.3 (docs/IOMMUFD.md),
# asserted the right way on the iommufd flavour's patched kernel (kernel/iommufd/patches applied):
#  (a) a mapper with CAP_IPC_LOCK (accounting mode none): VmPin moves from the mapper to the caller
#      exactly and nothing underflows at the unmap, with the mapper alive (fork + exec, --fixed) and
#      after the mapper exec'ed (its mm dead);
#  (b) mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) after the mapper exec'ed: CHANGE_PROCESS succeeds,
#      VmPin and VmLck of the new image go up by the mapped size and come back at the unmap, no WARN;
#  plus user mode and the fork + exec cases of every mode, and the negative cases, on the same kernel.
# Then the series' own selftest (kernel/iommufd/patches/0003: tools/testing/selftests/iommu/iommufd,
# fixture change_process, 4 variants x 3 tests, one TAP line each) on the kernel's mock domain: the patched
# kernel has CONFIG_IOMMUFD_TEST and carries the binary in its module segment (docs/IOMMUFD.md, "The
# selftest"); every test must pass (a kselftest SKIP fails here).
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

# The series' selftest.  Its output goes to the log as comments; per test one TAP line, a failure with the
# harness's assertion lines (or the exec'ed image's message) as the reason.
ST=/usr/lib/kselftest/iommu/iommufd
STOUT=/tmp/iommufd-selftest.out
if [ ! -x "$ST" ]; then
	t_fail selftest "no $ST in this kernel's module segment ($(uname -r)): only the iommufd flavour's patched kernel (CONFIG_IOMMUFD_TEST) has it"
else
	_w0=$(warnings)
	"$ST" -f change_process > "$STOUT" 2>&1
	_rc=$?
	sed 's/^/# selftest: /' "$STOUT"
	expect selftest-exit "$_rc" -eq 0
	for _v in account_none account_user account_mm account_none_cap_ipc_lock; do
		for _t in basic unmap exec; do
			_n=change_process.$_v.$_t
			_l=$(grep -E "^(not )?ok [0-9]+ $_n( |\$)" "$STOUT")
			case $_l in
			"ok "*"# SKIP"*) t_fail "selftest-$_n" "skipped:${_l#*# SKIP}" ;;
			"ok "*) t_ok "selftest-$_n" ;;
			"not ok "*)
				# the lines of this test between its RUN line and its result: the assertions that failed
				_why=$(sed -n "/ RUN  *$_n \.\.\./,/^\(not \)\{0,1\}ok [0-9]* $_n/p" "$STOUT" |
					grep -E 'Expected|after exec|terminated' | sed 's/^# *//' | tr '\n' ';')
				t_fail "selftest-$_n" "${_why:-failed (see the log)}" ;;
			*) t_fail "selftest-$_n" "no result line for it in the selftest's output" ;;
			esac
		done
	done
	_w1=$(warnings)
	if [ "$_w1" = "$_w0" ]; then
		t_ok selftest-no-kernel-warning
	else
		t_fail selftest-no-kernel-warning "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
	fi
fi
exit $((FAILS > 0))
