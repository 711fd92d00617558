#!/bin/sh
# lib/untouched.sh: "nothing touched" checks after a refused update.start (builds on lib/update.sh; sourced
# after it: . /scenarios/lib/untouched.sh).  Used by update-refusals.sh, update-verify.sh and
# update-nosuspend.sh.

# untouched TAG INSTANCE PID PIN0 FD0: the state after a refusal: no update running, the instance attached
# to the same pid, the device DRIVER_OK, the VMM's VmPin and the daemon's fd count unchanged
untouched() {
	vctl update status "$2" > "$1.ustatus" 2>&1
	sed "s/^/[$1 update status] /" "$1.ustatus"
	if grep -q "no update is running" "$1.ustatus"; then t_ok "$1/no-update-running"; else t_fail "$1/no-update-running" "$(tr '\n' ' ' < "$1.ustatus")"; fi
	if in_attached_to "$2" "$3"; then
		t_ok "$1/instance-attached-to-same-pid"
	else
		t_fail "$1/instance-attached-to-same-pid" "$(inentry "$2")"
	fi
	st=$(devstatus)
	expect "$1/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	expect "$1/vmpin-unchanged" "$(vmpin "$3")" -eq "$4"
	expect "$1/no-fd-change-in-daemon" "$(nfds "$VLUD_PID")" -eq "$5"
}
# traffic_ran_on TAG: the VMM (ended, RC set by wait_vmm) ran its whole duration with nothing lost and no
# update attempted
traffic_ran_on() {
	expect "$1/vmm-exit-0" "$RC" -eq 0
	expect "$1/vmm-verdict-pass" "$(sed -n 's/^verdict: //p' "$1.out")" = pass
	expect "$1/no-update-recorded" "$(grep -c '^update 1:' "$1.out")" -eq 0
	expect "$1/traffic-none-lost" "$(val "$1.out" traffic: lost)" -eq 0
	expect "$1/traffic-none-dup" "$(val "$1.out" traffic: dup)" -eq 0
	expect "$1/traffic-all-echoed" "$(val "$1.out" traffic: echoed)" -eq "$(val "$1.out" traffic: sent)"
	expect "$1/traffic-ran-on" "$(val "$1.out" traffic: sent)" -gt "$RAN_ON_MIN"
}
