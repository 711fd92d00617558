#!/bin/sh
# iommufd-selftest: the series' own selftest (kernel/iommufd/patches/0003: tools/testing/selftests/iommu/
# iommufd, fixture change_process, 4 variants x 3 tests, one TAP line each) on the mock IOMMU domain of
# CONFIG_IOMMUFD_TEST, in the iommufd flavour's selftest kernel (`modules: selftest`: the whole series, the
# test option, the static selftest in its module segment; docs/IOMMUFD.md "The selftest").  Every test must
# pass (a kselftest SKIP fails here), the selftest must exit 0 and add no kernel warning.
# On request only (`default: no`: the selftest kernel is a full kernel build of its own, ~17 min on 2 cores,
# not on make check's path; docs/RIG.md): `make vm-check SCENARIOS=iommufd-selftest` builds it (cached in
# ~/.cache/vlud/rig/iommufd-<hash>/selftest-<shash>/) and runs this; `tests/vm/rig.sh prepare-selftest`
# builds it alone.  A kernel built from the selftest patch alone (VLUD_RIG_IOMMUFD_PATCH_DIR naming a
# directory with patch 3 only) makes this scenario assert instead that the four new cases fail, each for its
# own reason (it then fails as a whole, like iommufd-kernel-fixes on the stock kernel).
# flavour: iommufd
# modules: selftest
# use_va: 0
# devices: 1
# default: no
# timeout: 240
. /scenarios/lib/tap.sh

echo "kernel $(uname -r), module set $RIG_MODULES"
warnings() { dmesg | grep -c 'WARNING:'; }

# The selftest.  Its output goes to the log as comments; per test one TAP line.  On a kernel with
# the fixes every test passes (a failure carries the harness's assertion lines as its reason).  On a kernel
# built from the selftest patch alone (the flavour's selftest kernel with VLUD_RIG_IOMMUFD_PATCH_DIR naming a
# directory with patch 3 only: the unfixed source with CONFIG_IOMMUFD_TEST, docs/IOMMUFD.md) the four new
# cases must fail, each for its own reason, the rest pass, and the kernel warns once in CHANGE_PROCESS
# (this scenario then fails as a whole).  The series the kernel was built from is listed in its module
# segment.
ST=/usr/lib/kselftest/iommu/iommufd
STOUT=/tmp/iommufd-selftest.out
SERIES=/lib/modules/rig/$RIG_MODULES/series
# st_result NAME: _l = the result line of test NAME, _why = its assertion lines (;-separated)
st_result() {
	_l=$(grep -E "^(not )?ok [0-9]+ $1( |\$)" "$STOUT")
	_why=$(sed -n "/ RUN  *$1 \.\.\./,/^\(not \)\{0,1\}ok [0-9]* $1/p" "$STOUT" |
		grep -E 'Expected|after exec|terminated' | sed 's/^# *//' | tr '\n' ';')
}
# the reason an unfixed kernel fails NAME for (a substring of its assertion lines), empty: it passes
unfixed_reason() {
	case $1 in
	# bug 1: the mapper keeps its VmPin, the caller (forked or the exec'ed image) is not charged
	change_process.account_none_cap_ipc_lock.basic | change_process.account_none_cap_ipc_lock.unmap)
		echo 'Expected 0 (0) == get_vm_pinned(parent)' ;;
	change_process.account_none_cap_ipc_lock.exec) echo 'IOMMU_IOAS_CHANGE_PROCESS after exec: VmPin 0 kB' ;;
	# bug 2: the uncharge of the exec'ed mapper's mm fails
	change_process.account_mm.exec) echo 'IOMMU_IOAS_CHANGE_PROCESS after exec: Invalid argument' ;;
	esac
}
if [ ! -x "$ST" ]; then
	t_fail selftest "no $ST in this kernel's module segment ($(uname -r)): only the iommufd flavour's selftest kernel (modules: selftest) has it"
else
	fixed=0
	if grep -q 'Move-the-pinned_vm-of-unaccounted' "$SERIES" && grep -q 'Do-not-fail-to-uncharge' "$SERIES"; then
		fixed=1
	fi
	echo "series of this kernel ($SERIES): $(tr '\n' ' ' < "$SERIES"); the fixes: $fixed"
	_w0=$(warnings)
	"$ST" -f change_process > "$STOUT" 2>&1
	_rc=$?
	sed 's/^/# selftest: /' "$STOUT"
	_w1=$(warnings)
	for _v in account_none account_user account_mm account_none_cap_ipc_lock; do
		for _t in basic unmap exec; do
			_n=change_process.$_v.$_t
			st_result "$_n"
			_r=
			[ "$fixed" = 1 ] || _r=$(unfixed_reason "$_n")
			case $_l in
			"ok "*"# SKIP"*) t_fail "selftest-$_n" "skipped:${_l#*# SKIP}" ;;
			"ok "*) if [ -z "$_r" ]; then t_ok "selftest-$_n"; else t_fail "selftest-$_n" "passed on a kernel without the fixes"; fi ;;
			"not ok "*)
				if [ -z "$_r" ]; then
					t_fail "selftest-$_n" "${_why:-failed (see the log)}"
				else
					case $_why in
					*"$_r"*) t_ok "selftest-$_n-fails-unfixed" ;;
					*) t_fail "selftest-$_n-fails-unfixed" "failed, but not with '$_r': ${_why:-see the log}" ;;
					esac
				fi ;;
			*) t_fail "selftest-$_n" "no result line for it in the selftest's output" ;;
			esac
		done
	done
	if [ "$fixed" = 1 ]; then
		expect selftest-exit "$_rc" -eq 0
		if [ "$_w1" = "$_w0" ]; then
			t_ok selftest-no-kernel-warning
		else
			t_fail selftest-no-kernel-warning "$((_w1 - _w0)) new WARNING line(s) in dmesg: $(dmesg | grep 'WARNING:' | tail -1)"
		fi
	else
		expect selftest-exit-unfixed "$_rc" -ne 0
		# exactly the WARN_ON() of the failed uncharge in iommufd_ioas_change_process()
		_wl=$(dmesg | grep 'WARNING:' | tail -n +$((_w0 + 1)))
		case $_wl in
		*iommufd_ioas_change_process*) expect selftest-warning-unfixed "$((_w1 - _w0))" -eq 1 ;;
		*) t_fail selftest-warning-unfixed "expected one WARNING in iommufd_ioas_change_process, dmesg has $((_w1 - _w0)) new: ${_wl:-none}" ;;
		esac
	fi
fi
exit $((FAILS > 0))
