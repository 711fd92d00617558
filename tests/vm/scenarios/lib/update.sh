#!/bin/sh
# shellcheck disable=SC2034 # VLUD_*: read by lib/vlud.sh (start_vlud, vlud_conf)
# lib/update.sh: the update-*.sh rig scenarios (sourced: . /scenarios/lib/update.sh; builds on lib/vlud.sh
# and so on lib/tap.sh; lib/faults.sh, lib/untouched.sh and lib/daemon-killed.sh build on it).  vlud's
# update policy (uids 0 and 1000, vhost-vdpa fds storable, the update deadlines, debug log), minivmm
# start/wait, update.status, and the happy-path update checks.
SOCK=/run/vlud-upd.sock
VLUD_OPTS=-d
VLUD_VMM_UIDS='0, 1000'
VLUD_FD_TYPES='"memfd", "eventfd", "vhost-vdpa"'
VLUD_TIMEOUTS=1
. /scenarios/lib/vlud.sh
# "traffic ran on" checks: frames a VMM sent in its whole run must exceed this.  At 1000 frames/s that is
# 2 s of traffic: it shows the datapath worked around the update, it is not a rate check (a loaded TCG
# host sends a third fewer than nominal; 4000 of a 6 s run failed once at load 9.5)
RAN_ON_MIN=${RAN_ON_MIN:-2000}
# vmm_up LOG PID: minivmm PID logged "running:" (its bring-up is done) in LOG, or it is gone
vmm_up() { grep -q "running:" "$1" 2> /dev/null || ! alive "$2"; }
# is_stopped PID: the process is in state T (stopped by SIGSTOP)
is_stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status" 2> /dev/null; }
# successor_ended PID: vlud logged the end of its successor PID (its output goes to vlud.log), or it is gone
successor_ended() { [ ! -d "/proc/$1" ] || grep -q "successor pid $1 ended" vlud.log; }
# update.status of INSTANCE: ustatus INSTANCE FILE (into FILE and the log); update_idle INSTANCE: no update runs
ustatus() { vctl --json call update.status "{\"instance\":\"$1\"}" > "$2" 2>&1; sed "s/^/[$2] /" "$2"; }
update_idle() { vctl --json call update.status "{\"instance\":\"$1\"}" 2> /dev/null | jhas .running - null; }
# update_in_phase INSTANCE PHASE: an update of INSTANCE runs, in PHASE
update_in_phase() { vctl --json call update.status "{\"instance\":\"$1\"}" 2> /dev/null | jhas .running.phase - "$2"; }
# wait_update_end INSTANCE: until update.status says no update is running (30 s at most)
wait_update_end() { wait_until 300 update_idle "$1"; }
# has_instance INSTANCE: vlud lists it
has_instance() { [ -n "$(instate "$1")" ]; }

# start_vmm TAG INSTANCE ARGS...: minivmm in the background (pid in VMM_PID), stdout TAG.out, stderr TAG.log
start_vmm() {
	tag=$1
	inst=$2
	shift 2
	echo "# $tag: minivmm --vlud $SOCK --instance $inst --vdpa vdpa0 $*"
	minivmm --vlud "$SOCK" --instance "$inst" --vdpa vdpa0 "$@" > "$tag.out" 2> "$tag.log" &
	VMM_PID=$!
	wait_until 50 has_instance "$inst"
	# bring-up and vmm.mappings
	sleep 1
}
wait_vmm() {
	wait "$VMM_PID"
	RC=$?
	sed "s/^/[$1] /" "$1.log" "$1.out"
}

# update_ok TAG INSTANCE MODE PATH PINNING [START-ARGS-JSON-MEMBERS]: a full update of a running minivmm,
# every assertion of the happy path.  minivmm must run long enough (--duration) to outlive the update.
update_ok() {
	tag=$1 inst=$2 mode=$3 path=$4 pin=$5 extra=$6
	old_pid=$VMM_PID
	fd0=$(nfds "$VLUD_PID")
	pin0=$(vmpin "$old_pid")
	if [ -n "${UPD_VLUCTL_UPDATE:-}" ] && [ -z "$extra" ]; then
		# this scenario itself (not the sourcing ones): through `vluctl update start`, its wait derived
		# from the daemon's phase deadlines, the phases on stderr as they happen
		vctl --json update start "$inst" --mode "$mode" --path "$path" > "$tag.verdict" 2> "$tag.progress"
		urc=$?
		sed "s/^/[$tag progress] /" "$tag.progress"
		for ph in suspend save exec claim restore verify commit; do
			if grep -q "phase $ph " "$tag.progress"; then t_ok "$tag/vluctl-update-progress-$ph"; else t_fail "$tag/vluctl-update-progress-$ph" "no 'phase $ph' on vluctl's stderr"; fi
		done
		# the readable verdict table of the last update
		vctl update status "$inst" > "$tag.ustatus" 2>&1
		sed "s/^/[$tag update status] /" "$tag.ustatus"
		if grep -q "^result  *ok$" "$tag.ustatus" && grep -q "^path  *$path (" "$tag.ustatus" &&
			grep -q "^VmPin  *expected .*moved ok$" "$tag.ustatus" && grep -q "no update is running" "$tag.ustatus"; then
			t_ok "$tag/vluctl-update-status-table"
		else
			t_fail "$tag/vluctl-update-status-table" "$(tr '\n' ' ' < "$tag.ustatus")"
		fi
	else
		vctl --json --timeout 30000 call update.start \
			"{\"instance\":\"$inst\",\"mode\":\"$mode\",\"path\":\"$path\"${extra:+,$extra}}" > "$tag.verdict" 2>&1
		urc=$?
	fi
	sed "s/^/[$tag verdict] /" "$tag.verdict"
	expect "$tag/update.start-exit-0" "$urc" -eq 0
	expect "$tag/verdict-result-ok" "$(jget .result "$tag.verdict")" = ok
	expect "$tag/verdict-path" "$(jget .path "$tag.verdict")" = "$path"
	expect "$tag/verdict-mode" "$(jget .mode "$tag.verdict")" = "$mode"
	if jhas .vmpin.moved_ok "$tag.verdict" true; then t_ok "$tag/verdict-vmpin-moved-ok"; else t_fail "$tag/verdict-vmpin-moved-ok" "moved_ok not true"; fi
	st=$(jget '.status_after[device=vdpa:vdpa0].status' "$tag.verdict")
	expect "$tag/driver-ok-after" "$((${st:-0} & 4))" -eq 4
	exp=$(jget .vmpin.expected_kb "$tag.verdict")
	if [ "$pin" = pa ]; then expect "$tag/expected-kb-nonzero-pa" "$exp" -gt 0; else expect "$tag/expected-kb-zero-va" "$exp" -eq 0; fi
	expect "$tag/old-before-is-expected" "$(jget .vmpin.old_before_kb "$tag.verdict")" -eq "$exp"
	expect "$tag/old-before-is-vmpin-read-here" "$pin0" -eq "$exp"
	expect "$tag/new-after-is-expected" "$(jget .vmpin.new_after_kb "$tag.verdict")" -eq "$exp"
	npid=$(jget .new_pid "$tag.verdict")
	if [ "$mode" = exec ]; then
		expect "$tag/exec-same-pid" "$npid" -eq "$old_pid"
	else
		expect "$tag/transfer-other-pid" "$npid" -ne "$old_pid"
		expect "$tag/old-after-dropped" "$(jget .vmpin.old_after_kb "$tag.verdict")" -eq 0
	fi
	expect "$tag/vmpin-of-new-read-here" "$(vmpin "$npid")" -eq "$exp"
	expectf "$tag/pause-measured" "$(jget .pause_ms "$tag.verdict")" '>' 0
	expectf "$tag/daemon-time-measured" "$(jget .daemon_ms "$tag.verdict")" '>' 0
	vctl --json instances > "$tag.inst" 2>&1
	if jhas ".instances[name=$inst].state" "$tag.inst" attached && jhas ".instances[name=$inst].pid" "$tag.inst" "$npid"; then
		t_ok "$tag/instance-attached-to-new"
	else
		t_fail "$tag/instance-attached-to-new" "$(cat "$tag.inst")"
	fi
	fd1=$(nfds "$VLUD_PID")
	expect "$tag/no-fd-leak-in-daemon" "$fd1" -eq "$fd0"
	VERDICT_EXP=$exp VERDICT_PAUSE=$(jget .pause_ms "$tag.verdict") NEW_PID=$npid
}

# check_vmm_after TAG PATH: minivmm's own report after the update (run has ended)
check_vmm_after() {
	f=$1.out
	expect "$1/minivmm-exit-0" "$RC" -eq 0
	expect "$1/minivmm-verdict-pass" "$(sed -n 's/^verdict: //p' "$f")" = pass
	expect "$1/update1-ok" "$(val "$f" "update 1:" ok)" -eq 1
	expect "$1/update1-path" "$(val "$f" "update 1:" path)" = "$2"
	expect "$1/zero-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$1/zero-dup" "$(val "$f" traffic: dup)" -eq 0
	expect "$1/all-echoed" "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
	expect "$1/frames-after-update" "$(val "$f" traffic: sent)" -gt "$RAN_ON_MIN"
	expect "$1/update-lost-0" "$(val "$f" "update 1:" lost)" -eq 0
	expect "$1/client-vmpin-expected-equals-verdict" "$(val "$f" "update 1:" vmpin_expected_kb)" -eq "$VERDICT_EXP"
	expect "$1/client-vmpin-after-equals-verdict" "$(val "$f" "update 1:" vmpin_after_kb)" -eq "$VERDICT_EXP"
	# the daemon's pause (suspend -> resume/DRIVER_OK verified) contains the client's device pause
	expectf "$1/daemon-pause-covers-client-device-pause" "$VERDICT_PAUSE" '>=' "$(val "$f" "update 1:" pause_device_ms)"
	if sed -n 's/.*vlud-verdict: //p' "$1.log" | jhas .result - ok; then t_ok "$1/client-got-verdict-ok"; else t_fail "$1/client-got-verdict-ok" "no ok verdict in minivmm's log"; fi
}

# check_claim_conn TAG kept|new: the new image (exec mode) claimed on the connection the old image kept
# across the exec (vlu_update_exec_keep -> vlu_update_connect: no connect inside the pause), or on a new
# one; by minivmm's log and vlud's
check_claim_conn() {
	if [ "$2" = kept ]; then want="the connection kept across the exec"; else want="a new connection"; fi
	if grep -q "vlud: claimed on $want" "$1.log"; then
		t_ok "$1/claimed-on-$2-connection"
	else
		t_fail "$1/claimed-on-$2-connection" "minivmm: $(grep 'vlud: claimed on' "$1.log")"
	fi
	n=$(grep -c "claim on the connection kept across the exec" vlud.log)
	if [ "$2" = kept ]; then want=1; else want=0; fi
	expect "$1/vlud-claims-on-kept-connection-$want" "$n" -eq "$want"
}

# run_update_scenario MODE PATH PINNING: the whole happy-path scenario (exec mode: the connection kept)
run_update_scenario() {
	run_update_variant run "$1" "$2" "$3" kept
}

# run_update_variant TAG MODE PATH PINNING CONN: the happy path under TAG; exec mode: the new image's
# connection CONN (kept|new; minivmm's MINIVMM_NO_KEEP_CONN / MINIVMM_TEST_CONN_ENV decide)
run_update_variant() {
	start_vlud '"update": { "allow_memlock_raise": true }'
	start_vmm "$1" vm0 --mem 64M --duration 7 --pause-frames 8
	update_ok "$1" vm0 "$2" "$3" "$4"
	wait_vmm "$1"
	check_vmm_after "$1" "$3"
	[ "$2" = exec ] && check_claim_conn "$1" "$5"
	stop_vlud
}

# run_transfer_scenario PATH PINNING: transfer mode, the successor spawned by vlud (same argv, the
# instance's uid, RLIMIT_MEMLOCK raised by vlud); its output goes to vlud's stdout (vlud.log)
run_transfer_scenario() {
	start_vlud '"update": { "allow_memlock_raise": true }'
	start_vmm run vm0 --mem 64M --duration 8 --pause-frames 8
	update_ok run vm0 transfer "$1" "$2"
	wait "$VMM_PID"
	orc=$?
	sed "s/^/[run old] /" run.log run.out
	expect run/old-exits-0-after-commit "$orc" -eq 0
	if grep -q "handed over" run.log; then t_ok run/old-handed-over; else t_fail run/old-handed-over "no hand-over in its log"; fi
	wait_until 200 successor_ended "$NEW_PID"
	sleep 0.2
	grep -v '^<' vlud.log > run2.out
	cp run2.out run2.log
	st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
	RC=$((${st:-0x100} >> 8))
	check_vmm_after run2 "$1"
	stop_vlud
}

# run_release_latency: the daemon stays responsive while path C releases the old device.  1 GiB of guest
# RAM (PA mode: pinned), one exec-mode update driven by vluctl while vlu-ping times `status` calls on
# another connection.  The calls overlapping phase claim (by the daemon's timestamps of its update.phase
# events; vlud's last copy of the old device fd is closed there: the kernel resets the device and unpins
# the guest RAM) must each take less than half the release time vlud measured (verdict release_ms).
# Before the closer, that close() ran on vlud's loop and such a call waited for all of it (vlud of b671e29
# in this scenario: the one call overlapping the 56 ms claim took 59 ms; with the closer: 63 calls, the
# slowest 3.8 ms, release_ms 59).  Relative to the daemon's own measurement, not absolute timing.
run_release_latency() {
	UPD_CLAIM_MS=60000 UPD_COMMIT_MS=60000 start_vlud '"update": { "allow_memlock_raise": true }'
	echo "# big: minivmm --vlud $SOCK --instance big --vdpa vdpa0 --mem 1G --duration 0"
	minivmm --vlud "$SOCK" --instance big --vdpa vdpa0 --mem 1G --duration 0 > big.out 2> big.log &
	VMM_PID=$!
	wait_until 1200 vmm_up big.log "$VMM_PID"
	vlu-ping "$SOCK" big 180 > ping.out 2> ping.err &
	ping_pid=$!
	wait_until 50 grep -q subscribed ping.out
	vctl --json --timeout 170000 call update.start '{"instance":"big","mode":"exec","path":"C"}' > big.verdict 2>&1
	urc=$?
	wait "$ping_pid"
	prc=$?
	sed 's/^/[vlu-ping] /' ping.out ping.err
	sed 's/^/[big verdict] /' big.verdict
	expect big/update.start-exit-0 "$urc" -eq 0
	expect big/verdict-result-ok "$(jget .result big.verdict)" = ok
	rel=$(jget .release_ms big.verdict)
	expectf big/release-ms-measured "$rel" '>' 0
	expect big/vlu-ping-saw-the-update-complete "$prc" -eq 0
	expect big/status-calls-during-claim "$(sed -n 's/.*claim_calls=\([0-9]*\).*/\1/p' ping.out)" -gt 0
	half=$(awk -v r="${rel:-0}" 'BEGIN { print r / 2 }')
	expectf big/status-during-release-below-half-release-ms "$(sed -n 's/.*claim_max_ms=\([0-9.]*\).*/\1/p' ping.out)" '<' "$half"
	# (daemon_ms, vlud's own time in the pause, is not compared with release_ms: both are durations
	# measured on a loaded TCG guest, and a CI run had daemon_ms 79 against release_ms 55 with the release
	# off the loop; the status calls above are what shows that the loop does not wait for the release)
	kill -TERM "$VMM_PID" 2> /dev/null
	wait "$VMM_PID"
	sed 's/^/[big] /' big.log
	stop_vlud
}
