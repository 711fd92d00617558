#!/bin/sh
# lib/faults.sh: the shared code of the update-faults-*.sh scenarios (builds on lib/update.sh; sourced after
# it and after start_vlud: . /scenarios/lib/faults.sh).  Sets FD0, vlud's fd count with no client connected (the
# baseline of every leak check), and defines the end-state checks and the kill-at-each-phase cases
# (fault_case).  Every case ends with `after`: release, a fresh VMM gets the device, no fd leaked.

FD0=$(nfds "$VLUD_PID")
echo "# vlud $VLUD_PID baseline fds: $FD0"
# the fds a minivmm instance holds with vlud (device.open + fd.store), sorted (a scenario that runs minivmm
# with more devices sets its own before sourcing this: iommufd-update-mixed-phases)
FDS_EXPECTED=${FDS_EXPECTED:-"q0-call q0-kick q1-call q1-kick ram0 vdpa:vdpa0"}
FDS_N=$(echo "$FDS_EXPECTED" | wc -w)

# status INSTANCE FILE: update.status (lib/update.sh ustatus)
status() { ustatus "$@"; }
# wait_stopped PID [TENTHS]: until PID stops (minivmm's MINIVMM_TEST_STOP_AT) or exits; 0 when stopped
stopped_or_gone() { is_stopped "$1" || [ ! -d "/proc/$1" ]; }
wait_stopped() {
	wait_until "${2:-300}" stopped_or_gone "$1"
	is_stopped "$1"
}
# events_start TAG INSTANCE / events_stop: the instance's events in TAG.events (vluctl events --follow)
events_start() {
	# vluctl itself in the background (not the vctl function: that would be a subshell, and killing it
	# would leave vluctl connected)
	vluctl --socket "$SOCK" --json events --follow --instance "$2" > "$1.events" 2>&1 &
	EV_PID=$!
	wait_until 5 test -s "$1.events"
}
events_stop() {
	[ -n "$EV_PID" ] || return 0
	kill "$EV_PID" 2> /dev/null
	wait "$EV_PID" 2> /dev/null
	EV_PID=
}
# event_has TAG NAME MEMBER [VALUE]: an event NAME of TAG.events whose data has MEMBER (equal to VALUE, an
# extended regular expression matching the whole value, e.g. '[0-9]+')
event_has() { jget -s "[event=$2].data.$3" "$1.events" | grep -Eqx -- "${4:-.*}"; }

# fds_kept TAG INSTANCE: vlud still holds every fd of the instance, by name and count
fds_kept() {
	expect "$1/fds-kept-names" "$(held_list "$2" | tr ' ' ,)" = "$(echo "$FDS_EXPECTED" | tr ' ' ,)"
	expect "$1/fds-kept-count" "$(held "$2")" -eq "$FDS_N"
}

# after TAG INSTANCE: release, the device works for a fresh VMM (with FAULT_VMM_ARGS: a mixed instance's
# edu too), no fd leaked
after() {
	vctl release "$2" > /dev/null 2>&1
	expect "$1/released" "$?" -eq 0
	# (vlud's copies closed before the fresh VMM opens the nodes again)
	wait_until 50 nfds_is "$VLUD_PID" "$FD0"
	# shellcheck disable=SC2086 # FAULT_VMM_ARGS: words
	minivmm --vlud "$SOCK" --instance "$1-fresh" --vdpa vdpa0 --mem 16M --duration 1 $FAULT_VMM_ARGS > "$1-fresh.out" 2> "$1-fresh.log"
	frc=$?
	sed "s/^/[$1-fresh] /" "$1-fresh.log" "$1-fresh.out"
	expect "$1/device-usable-again" "$frc" -eq 0
	expect "$1/fresh-traffic-none-lost" "$(val "$1-fresh.out" traffic: lost)" -eq 0
	vctl release "$1-fresh" > /dev/null 2>&1
	wait_until 50 nfds_is "$VLUD_PID" "$FD0"
	expect "$1/no-fd-leak-in-daemon" "$(nfds "$VLUD_PID")" -eq "$FD0"
}

# check_restarted TAG INSTANCE LOGLINE0 [MIN-SENT]: the update rolled back by restarting the previous binary;
# that process owns the instance, pins what the old one pinned, and its traffic (its output is in vlud.log
# after line LOGLINE0) runs with nothing lost (MIN-SENT frames in all, default RAN_ON_MIN: it ran on after the
# restart)
check_restarted() {
	status "$2" "$1.status"
	expect "$1/rolled-back" "$(jget .last.result "$1.status")" = rolled-back
	if jhas .last.restarted_previous "$1.status" true; then t_ok "$1/previous-binary-restarted"; else t_fail "$1/previous-binary-restarted" "not restarted"; fi
	np=$(jget .last.new_pid "$1.status")
	expect "$1/instance-attached-to-restarted" "$(instate "$2")" = attached
	expect "$1/instance-pid-is-restarted" "$(inpid "$2")" = "$np"
	exp=$(jget .last.vmpin.expected_kb "$1.status")
	expect "$1/restarted-vmpin-is-expected" "$(vmpin "$np")" -eq "$exp"
	st=$(devstatus)
	expect "$1/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	wait_until 300 successor_ended "$np"
	sleep 0.2
	tail -n +$(($3 + 1)) vlud.log | grep -v '^<' > "$1-restarted.out"
	sed "s/^/[$1 restarted] /" "$1-restarted.out"
	expect "$1/restarted-exit-1-update-not-done" "$(sed -n "s/.*successor pid $np ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)" = 0x100
	expect "$1/restarted-update-recorded-not-ok" "$(val "$1-restarted.out" "update 1:" ok)" -eq 0
	expect "$1/restarted-only-the-update-failed" "$(grep '^fail:' "$1-restarted.out" | grep -vc 'update 1')" -eq 0
	expect "$1/traffic-none-lost" "$(val "$1-restarted.out" traffic: lost)" -eq 0
	expect "$1/traffic-all-echoed" "$(val "$1-restarted.out" traffic: echoed)" -eq "$(val "$1-restarted.out" traffic: sent)"
	expect "$1/traffic-ran-on-after-restart" "$(val "$1-restarted.out" traffic: sent)" -gt "${4:-$RAN_ON_MIN}"
}

# ---- the kill-at-each-phase matrix (update-faults-phases-*.sh)
#
# fault_case MODE WHO POINT [PATH]: a minivmm runs traffic; an update (MODE exec|transfer, PATH default auto)
# starts; the process WHO (old: the registered VMM, new: the new image / the successor) stops itself at
# POINT (MINIVMM_TEST_STOP_AT, clients/minivmm/vlud.c) and is killed there with SIGKILL.  WHO=old with
# POINT claim|claimed|ready (transfer mode): the successor stops there and the old VMM (saved, running) is
# killed; the successor is then continued and must complete the update.  The end state asserted is docs/UPDATE.md's
# rollback table: the result and the phase of the verdict, who owns the instance, the device status, the
# owner's VmPin, its traffic, the event that says what vlud did, every fd kept; then `after`.
#
# Durations: the old VMM runs FAULT_DUR seconds (the deadline travels in minivmm's state: a restarted
# previous binary or a successor ends at the same time); the traffic check asks for frames the stopped
# VMM could not have sent before the stop (it stops within ~2 s of its start: 1000 frames/s).
FAULT_DUR=${FAULT_DUR:-12}
FAULT_MIN_SENT=${FAULT_MIN_SENT:-3000}
FAULT_N=0
# the VMM of every case (the old one, a named successor and `after`'s fresh one): guest RAM FAULT_MEM,
# FAULT_VMM_ARGS more minivmm options (words; iommufd-update-mixed-phases: --edu CDEV)
FAULT_MEM=${FAULT_MEM:-32M}
FAULT_VMM_ARGS=${FAULT_VMM_ARGS:-}
# the pinned size the mapping table makes vlud expect: the guest RAM (32 MiB) in PA mode, 0 in VA mode
# (a scenario with other devices sets its own)
if [ -z "${FAULT_EXP_KB:-}" ]; then
	if [ "${RIG_USE_VA:-0}" = 1 ]; then FAULT_EXP_KB=0; else FAULT_EXP_KB=32768; fi
fi
# FAULT_HOOK, if set, names a function fault_case calls with "start" before a case's VMM starts and, once
# the case's end state is asserted, with the outcome and the process that runs the device then:
#   orphaned                    (nobody: the VMM died before it saved)
#   restarted PID LOG OUT       (exec mode: the previous binary vlud restarted)
#   old PID LOG OUT             (transfer mode: the old VMM took the device back)
#   successor PID LOG OUT       (transfer mode: the successor completed the update without the old VMM)
# LOG and OUT: that process's stderr and stdout (the same file for a process vlud started); it has exited
# by then (its VmPin was asserted while it ran: FAULT_EXP_KB); $T is the case's tag, $I its instance
FAULT_HOOK=${FAULT_HOOK:-}

fault_case() {
	mode=$1 who=$2 point=$3 fpath=${4:-auto}
	FAULT_N=$((FAULT_N + 1))
	T=$mode-$who-$point
	[ "$fpath" != auto ] && T=$T-$fpath
	I=ph$FAULT_N
	echo "# ---- $T: $mode mode, the ${who} process killed at '$point' (path $fpath)"
	L0=$(wc -l < vlud.log)
	[ -z "$FAULT_HOOK" ] || "$FAULT_HOOK" start
	events_start "$T" "$I"
	SUCC=
	if [ "$who" = old ] || [ "$mode" = exec ]; then
		# exec mode: the new image inherits the environment (execv), so the old VMM carries the stop point
		# for it too; vlud starts a restarted previous binary with its own environment (no stop point)
		export MINIVMM_TEST_STOP_AT="$point"
		[ "$mode" = transfer ] && [ "$point" != save ] && unset MINIVMM_TEST_STOP_AT
	fi
	# shellcheck disable=SC2086 # FAULT_VMM_ARGS: words
	start_vmm "$T" "$I" --mem "$FAULT_MEM" --duration "$FAULT_DUR" $FAULT_VMM_ARGS
	unset MINIVMM_TEST_STOP_AT
	OLD=$VMM_PID
	# its bring-up done (a mixed instance's edu opened and declared too) before the update starts
	wait_until 300 vmm_up "$T.log" "$OLD"
	pin0=$(vmpin "$OLD")
	if [ "$mode" = transfer ] && [ "$point" != save ]; then
		# transfer mode: a successor named by pid (vlud's spawned successors get a fixed environment, without
		# the stop point): a shell that becomes minivmm (same pid) with the token of update.start's reply
		rm -f "$T.fifo"
		mkfifo "$T.fifo"
		MINIVMM_TEST_STOP_AT=$point sh -c "read tok < $T.fifo; VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance $I --vdpa vdpa0 --mem $FAULT_MEM $FAULT_VMM_ARGS" \
			> "$T-succ.out" 2> "$T-succ.log" &
		SUCC=$!
		vctl --json call update.start "{\"instance\":\"$I\",\"mode\":\"transfer\",\"path\":\"$fpath\",\"successor_pid\":$SUCC,\"wait\":false}" > "$T.reply" 2>&1
		expect "$T/started" "$?" -eq 0
		# the token goes to the successor once vlud waits for its claim (the old VMM has saved): a claim
		# before that is refused (no update waiting for a claim) and minivmm exits on it
		wait_until 100 update_in_phase "$I" claim
		jget .token "$T.reply" > "$T.fifo"
	else
		vctl --json call update.start "{\"instance\":\"$I\",\"mode\":\"$mode\",\"path\":\"$fpath\",\"wait\":false}" > "$T.reply" 2>&1
		expect "$T/started" "$?" -eq 0
	fi
	sed "s/^/[$T reply] /" "$T.reply"
	upath=$(jget .path "$T.reply")
	if [ "$who" = new ] && [ -n "$SUCC" ]; then STOPPED=$SUCC; elif [ "$who" = new ]; then STOPPED=$OLD; elif [ -n "$SUCC" ]; then STOPPED=$SUCC; else STOPPED=$OLD; fi
	if wait_stopped "$STOPPED"; then t_ok "$T/stopped-at-$point"; else t_fail "$T/stopped-at-$point" "pid $STOPPED did not stop"; fi
	status "$I" "$T.status0"
	ph0=$(jget .running.phase "$T.status0")
	echo "# $T: update in phase $ph0 (path $upath) when pid $STOPPED stopped at $point"
	# the phase vlud is in at each stop point (update.status running.phase)
	case $point-$mode in save-*) ph='save' ;; exec-* | claim-exec) ph='exec' ;; claim-transfer) ph='claim' ;; *) ph='restore' ;; esac
	expect "$T/phase-at-stop" "$ph0" = "$ph"
	if [ "$who" = old ] && [ -n "$SUCC" ]; then
		# transfer mode: the old VMM dies after its save, while the successor waits before its claim or
		# after it: everything the successor needs is with vlud, the update goes on without the old VMM
		kill -KILL "$OLD"
		wait "$OLD" 2> /dev/null
		sleep 0.5
		status "$I" "$T.status1"
		expect "$T/old-death-update-goes-on" "$(jget .running.phase "$T.status1")" = "$ph0"
		kill -CONT "$SUCC"
		wait_update_end "$I"
		fault_succ_completes
		[ -z "$FAULT_HOOK" ] || "$FAULT_HOOK" successor "$SUCC" "$T-succ.log" "$T-succ.out"
	else
		kill -KILL "$STOPPED"
		[ "$STOPPED" = "$OLD" ] && wait "$OLD" 2> /dev/null
		[ -n "$SUCC" ] && wait "$SUCC" 2> /dev/null
		wait_update_end "$I"
		status "$I" "$T.status"
		if [ "$point" = save ]; then
			fault_orphaned
			[ -z "$FAULT_HOOK" ] || "$FAULT_HOOK" orphaned
		elif [ "$mode" = exec ]; then
			case $point in exec | claim) ph='exec' ;; *) ph='restore' ;; esac
			if jget .last.error "$T.status" | grep -q "exited in phase $ph"; then t_ok "$T/reason-phase-$ph"; else t_fail "$T/reason-phase-$ph" "reason"; fi
			if event_has "$T" update.restarting-previous pid '[0-9]+'; then t_ok "$T/event-restarting-previous"; else t_fail "$T/event-restarting-previous" "no event"; fi
			check_restarted "$T" "$I" "$L0" "$FAULT_MIN_SENT"
			if event_has "$T" update.rolled-back restarted_previous true; then t_ok "$T/event-rolled-back-restarted"; else t_fail "$T/event-rolled-back-restarted" "no event"; fi
			[ -z "$FAULT_HOOK" ] || "$FAULT_HOOK" restarted "$np" "$T-restarted.out" "$T-restarted.out"
		else
			fault_old_takes_back
			[ -z "$FAULT_HOOK" ] || "$FAULT_HOOK" old "$OLD" "$T.log" "$T.out"
		fi
	fi
	events_stop
	sed "s/^/[$T events] /" "$T.events"
	fds_kept "$T" "$I"
	after "$T" "$I"
}

# the VMM died before it saved (phase save): D RESUMEd, the instance is orphaned with every fd, no VMM runs it
fault_orphaned() {
	expect "$T/result-failed" "$(jget .last.result "$T.status")" = failed
	if jget .last.error "$T.status" | grep -q "exited in phase save"; then t_ok "$T/reason-phase-save"; else t_fail "$T/reason-phase-save" "reason"; fi
	if jget .last.error "$T.status" | grep -q "devices resumed, every fd kept"; then t_ok "$T/reason-resumed-fds-kept"; else t_fail "$T/reason-resumed-fds-kept" "reason"; fi
	expect "$T/instance-orphaned" "$(instate "$I")" = orphaned
	st=$(devstatus)
	expect "$T/device-resumed-driver-ok" "$((${st:-0} & 4))" -eq 4
	if event_has "$T" update.completed result failed; then t_ok "$T/event-completed-failed"; else t_fail "$T/event-completed-failed" "no event"; fi
	# nobody but vlud holds the instance: its fds (FDS_N) over the baseline, no connection, no pidfd
	events_stop
	wait_until 30 nfds_is "$VLUD_PID" $((FD0 + FDS_N))
	expect "$T/daemon-fds-baseline-plus-held" "$(nfds "$VLUD_PID")" -eq $((FD0 + FDS_N))
	[ "$(nfds "$VLUD_PID")" -eq $((FD0 + FDS_N)) ] || ls -l "/proc/$VLUD_PID/fd" | sed "s/^/[$T vlud fds] /"
}

# transfer mode, the successor died: the old VMM (alive) has the device back and runs on
fault_old_takes_back() {
	case $point in claim) ph='claim' ;; *) ph='restore' ;; esac
	expect "$T/rolled-back" "$(jget .last.result "$T.status")" = rolled-back
	if jget .last.error "$T.status" | grep -q "successor $SUCC exited in phase $ph"; then t_ok "$T/reason-phase-$ph"; else t_fail "$T/reason-phase-$ph" "reason"; fi
	expect "$T/instance-attached" "$(instate "$I")" = attached
	expect "$T/instance-pid-is-old" "$(inpid "$I")" = "$OLD"
	exp=$(jget .last.vmpin.expected_kb "$T.status")
	expect "$T/expected-is-guest-ram" "$exp" -eq "$FAULT_EXP_KB"
	expect "$T/old-vmpin-is-expected" "$(vmpin "$OLD")" -eq "$exp"
	expect "$T/old-vmpin-as-before" "$(vmpin "$OLD")" -eq "$pin0"
	st=$(devstatus)
	expect "$T/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	if [ "$upath" = C ] && [ "$ph" = restore ]; then
		# path C after the claim: vlud released and reopened the device; the old VMM re-pinned it
		if event_has "$T" update.rolled-back brought_back true; then t_ok "$T/event-brought-back"; else t_fail "$T/event-brought-back" "no event"; fi
	elif event_has "$T" update.rolled-back reason; then
		t_ok "$T/event-rolled-back"
	else
		t_fail "$T/event-rolled-back" "no event"
	fi
	wait_vmm "$T"
	sed "s/^/[$T succ] /" "$T-succ.log"
	expect "$T/old-update-recorded-not-ok" "$(val "$T.out" "update 1:" ok)" -eq 0
	expect "$T/old-only-the-update-failed" "$(grep '^fail:' "$T.out" | grep -vc 'update 1')" -eq 0
	expect "$T/old-traffic-none-lost" "$(val "$T.out" traffic: lost)" -eq 0
	expect "$T/old-traffic-all-echoed" "$(val "$T.out" traffic: echoed)" -eq "$(val "$T.out" traffic: sent)"
	expect "$T/old-traffic-ran-on" "$(val "$T.out" traffic: sent)" -gt "$FAULT_MIN_SENT"
}

# transfer mode, the old VMM died after the successor's claim: the successor completes the update
fault_succ_completes() {
	status "$I" "$T.status"
	expect "$T/result-ok" "$(jget .last.result "$T.status")" = ok
	expect "$T/new-pid-is-successor" "$(jget .last.new_pid "$T.status")" -eq "$SUCC"
	expect "$T/instance-attached" "$(instate "$I")" = attached
	expect "$T/instance-pid-is-successor" "$(inpid "$I")" = "$SUCC"
	exp=$(jget .last.vmpin.expected_kb "$T.status")
	expect "$T/expected-is-guest-ram" "$exp" -eq "$FAULT_EXP_KB"
	expect "$T/successor-vmpin-is-expected" "$(vmpin "$SUCC")" -eq "$exp"
	# the old VMM is gone: its VmPin reads as 0 after, so the move is still accounted (moved_ok)
	expect "$T/verdict-old-after-0" "$(jget .last.vmpin.old_after_kb "$T.status")" -eq 0
	if jhas .last.vmpin.moved_ok "$T.status" true; then t_ok "$T/verdict-vmpin-moved-ok"; else t_fail "$T/verdict-vmpin-moved-ok" "moved_ok not true"; fi
	st=$(devstatus)
	expect "$T/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	if event_has "$T" update.completed result ok; then t_ok "$T/event-completed-ok"; else t_fail "$T/event-completed-ok" "no event"; fi
	wait "$SUCC"
	src=$?
	sed "s/^/[$T succ] /" "$T-succ.log" "$T-succ.out"
	expect "$T/successor-exit-0" "$src" -eq 0
	expect "$T/successor-update-ok" "$(val "$T-succ.out" "update 1:" ok)" -eq 1
	expect "$T/successor-traffic-none-lost" "$(val "$T-succ.out" traffic: lost)" -eq 0
	expect "$T/successor-traffic-all-echoed" "$(val "$T-succ.out" traffic: echoed)" -eq "$(val "$T-succ.out" traffic: sent)"
	expect "$T/successor-traffic-ran-on" "$(val "$T-succ.out" traffic: sent)" -gt "$FAULT_MIN_SENT"
}
