#!/bin/sh
# lib/cvq.sh: the update-cvq-* scenarios (sourced: . /scenarios/lib/cvq.sh; builds on lib/update.sh).  On
# the "hwreset" module set a device reset returns vdpa_sim_net's MAC to the provisioned one (none here:
# 00:00:00:00:00:00), so frames to the MAC minivmm set through the CVQ pass only while minivmm's control
# state is on the device: a B or C successor must replay it (CVQ-first) before the data queues run.
. /scenarios/lib/update.sh
CVQ_MAC=02:6d:76:6d:6d:01

# dev_mac: vdpa0's config-space MAC as the vdpa tool shows it
dev_mac() { vdpa dev config show vdpa0 2> /dev/null | sed -n 's/.*mac \([0-9a-f:]*\).*/\1/p' | head -1; }
mac_is_cvq() { [ "$(dev_mac)" = "$CVQ_MAC" ]; }
# cvq_ok_count: vdpa_sim_net's "cvq successes" counter (vendor stats of queue 2; the device must be set up)
cvq_ok_count() { vdpa dev vstats show vdpa0 qidx 2 2> /dev/null | tr '\n' ' ' | sed -n 's/.*cvq successes \([0-9]*\).*/\1/p'; }

# cvq_checks TAG FILE LOG PATH: minivmm's report and log after an update that must keep the control state
cvq_checks() {
	t=$1 f=$2 log=$3 p=$4
	expect "$t/cvq-negotiated" "$(val "$f" device: cvq)" -eq 1
	expect "$t/cvq-first" "$(val "$f" device: cvq_first)" -eq 1
	expect "$t/mac-set-through-cvq" "$(val "$f" device: mac)" = "$CVQ_MAC"
	expect "$t/mac-ok-after-update" "$(val "$f" "update 1:" mac_ok)" = 1
	if [ "$p" = A ]; then
		# path A keeps the device's state: nothing to replay, nothing replayed
		expect "$t/a-no-replay" "$(val "$f" "update 1:" cvq_replayed)" -eq 0
		expect "$t/a-no-cvq-command" "$(val "$f" "update 1:" cvq_cmds)" -eq 0
		return
	fi
	expect "$t/replayed" "$(val "$f" "update 1:" cvq_replayed)" -eq 1
	expect "$t/one-command-replayed" "$(val "$f" "update 1:" cvq_cmds)" -eq 1
	# the ordering: every command used (used idx == commands) when the data queues were enabled
	expect "$t/cvq-all-used-before-data-enable" "$(val "$f" "update 1:" cvq_used_at_enable)" -eq "$(val "$f" "update 1:" cvq_cmds)"
	expectf "$t/cvq-restore-ms-measured" "$(val "$f" "update 1:" cvq_restore_ms)" '>' 0
	# the successor's log line, written between the CVQ wait and the first data-queue kick
	l=$(grep "CVQ-first start:" "$log" | tail -1)
	case $l in
	*"1 command(s) posted, MAC $CVQ_MAC, CVQ used idx 1 when the data queues were enabled (after DRIVER_OK)"*) t_ok "$t/log-cvq-used-before-data-queues" ;;
	*) t_fail "$t/log-cvq-used-before-data-queues" "${l:-no CVQ-first line}" ;;
	esac
}

# cvq_case TAG MODE PATH PINNING [declared|nocvq]: one minivmm, one daemon-driven update, the checks.
#   declared: MINIVMM_TEST_NO_CVQ_RESTORE=1 (exec mode: the new image inherits it) and the new image
#             declares config.mac changed on purpose (--test-declare-changes): vlud's verification passes
#             (the difference is declared), the frames to the CVQ-set MAC are dropped after the update and
#             minivmm says why
#   nocvq:    minivmm --no-cvq (broadcast frames, no control state): works as before the CVQ
# (noreplay: cvq_noreplay_case below)
cvq_case() {
	ctag=$1 cmode=$2 cpath=$3 cpin=$4 kind=${5:-}
	extra=
	[ "$kind" = nocvq ] && extra=--no-cvq
	[ "$kind" = declared ] && extra="--test-declare-changes config.mac" && export MINIVMM_TEST_NO_CVQ_RESTORE=1
	start_vlud '"update": { "allow_memlock_raise": true }'
	# shellcheck disable=SC2086 # extra: one word or none
	start_vmm "$ctag" vm0 --mem 64M --duration 14 --pause-frames 8 --drain-ms 1000 $extra
	unset MINIVMM_TEST_NO_CVQ_RESTORE
	if [ -z "$kind" ]; then
		expect "$ctag/device-has-cvq-mac-before" "$(dev_mac)" = "$CVQ_MAC"
	fi
	ok0=$(cvq_ok_count)
	update_ok "$ctag" vm0 "$cmode" "$cpath" "$cpin"
	# the device as the running successor left it (update_ok's checks take seconds on a loaded TCG host:
	# --duration is long enough; if the VMM is gone all the same its release reset the device)
	ok1=$(cvq_ok_count)
	mac1=$(dev_mac)
	running=1
	alive "$NEW_PID" || running=
	echo "# $ctag: cvq successes $ok0 -> $ok1, device MAC after the update $mac1${running:+ (successor running)}"
	if [ "$cmode" = exec ]; then
		wait_vmm "$ctag"
		f=$ctag.out log=$ctag.log
	else
		wait "$VMM_PID"
		sed "s/^/[$ctag old] /" "$ctag.log" "$ctag.out"
		wait_until 200 successor_ended "$NEW_PID"
		sleep 0.2
		grep -v '^<' vlud.log > "${ctag}2.out"
		cp "${ctag}2.out" "${ctag}2.log"
		st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
		RC=$((${st:-0x100} >> 8))
		f=${ctag}2.out log=${ctag}2.log
	fi
	case $kind in
	"")
		check_vmm_after "${f%.out}" "$cpath"
		cvq_checks "$ctag" "$f" "$log" "$cpath"
		if [ -n "$running" ]; then
			expect "$ctag/device-has-cvq-mac-after" "$mac1" = "$CVQ_MAC"
		else
			t_skip "$ctag/device-has-cvq-mac-after" "the successor ended before the check (loaded host)"
		fi
		# vlud's view: the device's state before the suspend and after the successor's ready
		expect "$ctag/verdict-device-state-equal" "$(jget .device_state.equal "$ctag.verdict")" = true
		expect "$ctag/verdict-device-state-mac-before" "$(jget '.device_state.before[device=vdpa:vdpa0].config.mac' "$ctag.verdict")" = "$CVQ_MAC"
		expect "$ctag/verdict-device-state-mac-after" "$(jget '.device_state.after[device=vdpa:vdpa0].config.mac' "$ctag.verdict")" = "$CVQ_MAC"
		# the device saw the replay (vdpa_sim_net's own counter): one more CVQ success for B and C, none for A
		if [ -n "$ok0" ] && [ -n "$ok1" ] && [ -n "$running" ]; then
			expect "$ctag/device-counted-replay" "$((ok1 - ok0))" -eq "$([ "$cpath" = A ] && echo 0 || echo 1)"
		else
			t_skip "$ctag/device-counted-replay" "no cvq vendor stats from vdpa"
		fi
		# the successor's CVQ replay in vlud's verdict (update.ready's report): B and C, never A
		if [ "$cpath" = A ]; then
			if jget .cvq_replay_ms "$ctag.verdict" > /dev/null; then t_fail "$ctag/verdict-no-cvq-replay-on-a" "cvq_replay_ms present"; else t_ok "$ctag/verdict-no-cvq-replay-on-a"; fi
		else
			expectf "$ctag/verdict-cvq-replay-ms" "$(jget .cvq_replay_ms "$ctag.verdict")" '>' 0
			expect "$ctag/verdict-cvq-commands" "$(jget .cvq_commands "$ctag.verdict")" -eq 1
		fi
		;;
	declared)
		expect "$ctag/noreplay-minivmm-fails" "$(sed -n 's/^verdict: //p' "$f")" = fail
		expect "$ctag/noreplay-update-ok" "$(val "$f" "update 1:" ok)" -eq 1
		expect "$ctag/noreplay-not-replayed" "$(val "$f" "update 1:" cvq_replayed)" -eq 0
		expect "$ctag/noreplay-mac-mismatch-reported" "$(val "$f" "update 1:" mac_ok)" = 0
		expect "$ctag/noreplay-frames-lost" "$(val "$f" traffic: lost)" -gt 0
		expect "$ctag/noreplay-update-lost" "$(val "$f" "update 1:" lost)" -gt 0
		if grep -q "^fail: update 1: the device's MAC differs" "$f"; then t_ok "$ctag/noreplay-reason"; else t_fail "$ctag/noreplay-reason" "no MAC reason in the report"; fi
		expect "$ctag/noreplay-device-mac-provisioned" "$mac1" = 00:00:00:00:00:00	# running or not
		# vlud's view: the MAC changed across the update, as the successor declared: verified, ok
		expect "$ctag/noreplay-verdict-device-state-differs" "$(jget .device_state.equal "$ctag.verdict")" = false
		expect "$ctag/noreplay-verdict-differ-mac" "$(jget '.device_state.differ[]' "$ctag.verdict")" = "vdpa:vdpa0: config.mac"
		expect "$ctag/declared-verdict-declared" "$(jget '.device_state.declared[]' "$ctag.verdict")" = config.mac
		expect "$ctag/declared-verdict-nothing-undeclared" "$(jget '.device_state.undeclared' "$ctag.verdict")" = "[]"
		expect "$ctag/noreplay-verdict-mac-after" "$(jget '.device_state.after[device=vdpa:vdpa0].config.mac' "$ctag.verdict")" = 00:00:00:00:00:00
		if jget .cvq_replay_ms "$ctag.verdict" > /dev/null; then t_fail "$ctag/declared-no-cvq-replay" "cvq_replay_ms present"; else t_ok "$ctag/declared-no-cvq-replay"; fi
		;;
	nocvq)
		check_vmm_after "${f%.out}" "$cpath"
		expect "$ctag/nocvq-no-cvq" "$(val "$f" device: cvq)" -eq 0
		expect "$ctag/nocvq-no-mac" "$(val "$f" device: mac)" = none
		expect "$ctag/nocvq-nothing-replayed" "$(val "$f" "update 1:" cvq_replayed)" -eq 0
		expect "$ctag/nocvq-verdict-device-state-equal" "$(jget .device_state.equal "$ctag.verdict")" = true
		if jget .cvq_replay_ms "$ctag.verdict" > /dev/null; then t_fail "$ctag/nocvq-no-cvq-replay" "cvq_replay_ms present"; else t_ok "$ctag/nocvq-no-cvq-replay"; fi
		;;
	esac
	stop_vlud
	# minivmm is gone: its last close reset the device, which (hwreset) forgot the CVQ-set MAC
	expect "$ctag/mac-provisioned-after-release" "$(dev_mac)" = 00:00:00:00:00:00
}

# cvq_noreplay_case TAG MODE PATH: the new image does not replay the control state (exec mode:
# MINIVMM_TEST_NO_CVQ_RESTORE=1 in the old VMM's environment, which the exec keeps; transfer mode: vlud spawns
# the successor with its own environment, so update.start's argv gives it --test-no-cvq-restore) and
# declares nothing: vlud's verification finds config.mac differing, undeclared, and rolls back
# (docs/UPDATE.md R12).  Exec mode: the successor is killed and the previous binary (vlud's environment:
# no knob) restores from the saved state; transfer mode: the successor is killed, the old VMM takes back
# (B: reclaim, C: the reopened device) and replays its control state.  Either way the frames to the
# CVQ-set MAC flow again with nothing lost.
cvq_noreplay_case() {
	ctag=$1 cmode=$2 cpath=$3
	start_vlud '"update": { "allow_memlock_raise": true }'
	. /scenarios/lib/faults.sh
	[ "$cmode" = exec ] && export MINIVMM_TEST_NO_CVQ_RESTORE=1
	# (long enough for the rollback and the checks while the VMM that took the device back still runs)
	start_vmm "$ctag" vm0 --mem 64M --duration 20 --pause-frames 8 --drain-ms 1000
	unset MINIVMM_TEST_NO_CVQ_RESTORE
	opid=$VMM_PID
	expect "$ctag/device-has-cvq-mac-before" "$(dev_mac)" = "$CVQ_MAC"
	events_start "$ctag" vm0
	L0=$(wc -l < vlud.log)
	args="\"instance\":\"vm0\",\"mode\":\"$cmode\",\"path\":\"$cpath\""
	if [ "$cmode" = transfer ]; then
		# the old VMM's command line and the knob, for the successor vlud spawns
		av=$(tr '\0' '\n' < "/proc/$opid/cmdline" | sed 's/.*/"&"/' | tr '\n' ,)
		args="$args,\"argv\":[$av\"--test-no-cvq-restore\"]"
	fi
	vctl --json --timeout 60000 call update.start "{$args}" > "$ctag.verdict" 2>&1
	urc=$?
	sed "s/^/[$ctag verdict] /" "$ctag.verdict"
	# (transfer mode, B: the update ends when the instance is handed back; the old VMM re-owns and
	# replays its control state right after)
	wait_until 100 mac_is_cvq
	mac1=$(dev_mac)
	# first what holds only while the VMM that took the device back runs (its deadline is the old VMM's)
	if [ "$cmode" = exec ]; then
		check_restarted "$ctag" vm0 "$L0" 0	# waits for the restarted binary's end
		cp "$ctag.status" "$ctag.st"
	else
		ustatus vm0 "$ctag.st"
		expect "$ctag/noreplay-instance-back-to-old" "$(inpid vm0)" = "$opid"
		st=$(devstatus)
		expect "$ctag/noreplay-driver-ok" "$((${st:-0} & 4))" -eq 4
	fi
	expect "$ctag/noreplay-update-start-error" "$urc" -ne 0
	expect "$ctag/noreplay-rolled-back" "$(jget .last.result "$ctag.st")" = rolled-back
	err=$(jget .last.error "$ctag.st")
	case $err in
	"verification failed: device state differs from before the update: vdpa:vdpa0: config.mac (not declared by the successor in device_state_changes); the successor "*" was killed"*) t_ok "$ctag/noreplay-error-names-mac" ;;
	*) t_fail "$ctag/noreplay-error-names-mac" "${err:-no error}" ;;
	esac
	if event_has "$ctag" update.killed phase verify; then t_ok "$ctag/noreplay-successor-killed-at-verify"; else t_fail "$ctag/noreplay-successor-killed-at-verify" "no update.killed in phase verify"; fi
	# the device had its CVQ-set MAC again, under whoever took it back
	expect "$ctag/noreplay-mac-back-after-rollback" "$mac1" = "$CVQ_MAC"
	if [ "$cmode" = exec ]; then
		# the restarted previous binary replayed the control state: vlud verified it equal
		expect "$ctag/noreplay-restarted-state-equal" "$(jget .last.device_state.equal "$ctag.st")" = true
		expect "$ctag/noreplay-restarted-cvq-commands" "$(jget .last.cvq_commands "$ctag.st")" -eq 1
		wait "$opid" 2> /dev/null
		sed "s/^/[$ctag killed] /" "$ctag.log" "$ctag.out"
	else
		if [ "$cpath" = C ]; then
			# the reopened device brought back to the old VMM (an event for subscribers too)
			if event_has "$ctag" update.rolled-back brought_back true; then t_ok "$ctag/noreplay-brought-back"; else t_fail "$ctag/noreplay-brought-back" "no update.rolled-back with brought_back"; fi
		fi
		wait "$opid"
		orc=$?
		sed "s/^/[$ctag old] /" "$ctag.log" "$ctag.out"
		# the old VMM carried on: the update recorded as not done, its traffic without loss
		if grep -q "vlud update rolled back: verification failed: device state differs" "$ctag.log"; then t_ok "$ctag/noreplay-old-vmm-told"; else t_fail "$ctag/noreplay-old-vmm-told" "no update.rolled-back in the old VMM's log"; fi
		expect "$ctag/noreplay-old-exit-1-update-not-done" "$orc" -eq 1
		expect "$ctag/noreplay-old-update-not-ok" "$(val "$ctag.out" "update 1:" ok)" -eq 0
		expect "$ctag/noreplay-old-only-the-update-failed" "$(grep '^fail:' "$ctag.out" | grep -vc 'update 1')" -eq 0
		expect "$ctag/noreplay-old-traffic-none-lost" "$(val "$ctag.out" traffic: lost)" -eq 0
		expect "$ctag/noreplay-old-traffic-all-echoed" "$(val "$ctag.out" traffic: echoed)" -eq "$(val "$ctag.out" traffic: sent)"
	fi
	events_stop
	stop_vlud
	expect "$ctag/mac-provisioned-after-release" "$(dev_mac)" = 00:00:00:00:00:00
}
