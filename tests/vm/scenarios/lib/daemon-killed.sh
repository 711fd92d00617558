#!/bin/sh
# lib/daemon-killed.sh: the update-daemon-killed* scenarios (builds on lib/update.sh; sourced after it; DK_PATH = the
# update's path, A on patched modules, C on stock).  vlud runs under vlu-fdstore (the fd-store part of
# PID 1, docs/RIG.md) and is killed with SIGKILL while idle and in the middle of updates; dk_run runs it all.
FDS_DIR=/run/vlu-fdstore

# start_vlud_fdstore [EXTRA-JSON-MEMBERS]: vlud under vlu-fdstore (pid of the current vlud: $FDS_DIR/pid)
# (the policy of lib/update.sh without vhost-vdpa fds, phase save's deadline 60 s: the VMM stopped there;
# EXTRA-JSON-MEMBERS as vlud_conf's).  --restart-on-exit: a vlud stopped by SIGTERM (exit 0: stopped_claimed,
# a `systemctl restart`) is started again with its store; every other exit here is a SIGKILL, restarted anyway
start_vlud_fdstore() {
	# shellcheck disable=SC2034 # read by vlud_conf
	VLUD_FD_TYPES='"memfd", "eventfd"' UPD_SAVE_MS=60000
	vlud_conf "${1:-}"
	mkdir -p "$FDS_DIR"
	rm -f "$FDS_DIR"/*
	vlu-fdstore --socket "$SOCK" --notify "$FDS_DIR/notify" --dir "$FDS_DIR" --restart-on-exit -- vlud -c vlud.conf -d \
		> vlud.log 2>&1 &
	FDS_PID=$!
	wait_ready 1 || { t_fail vlud/started "no READY=1 from vlud under vlu-fdstore"; sed 's/^/[vlud] /' vlud.log; exit 1; }
	t_ok vlud/started-under-vlu-fdstore
}
# wait_ready N: until vlud sent READY=1 N times in all (vlu-fdstore counts)
ready_count_ge() { [ "$(cat "$FDS_DIR/ready" 2> /dev/null || echo 0)" -ge "$1" ]; }
wait_ready() { wait_until 300 ready_count_ge "$1"; }
vlud_pid() { cat "$FDS_DIR/pid" 2> /dev/null; }
# the fd store's h* entries (held fds: lib/vlud.sh held_names)
store_names() { grep -c '^h' "$FDS_DIR/store"; }
# wait_attached PID: until the instance $INST is attached to PID (10 s at most)
wait_attached() { wait_until 100 in_attached_to "$INST" "$1"; }
# kill_vlud TAG: SIGKILL, vlu-fdstore restarts it; waits for the new one's READY=1
kill_vlud() {
	old=$(vlud_pid)
	r0=$(cat "$FDS_DIR/ready")
	kill -9 "$old"
	if wait_ready $((r0 + 1)) && [ "$(vlud_pid)" != "$old" ] && [ "$(vlud_pid)" -gt 0 ]; then
		t_ok "$1/vlud-restarted-by-vlu-fdstore"
	else
		t_fail "$1/vlud-restarted-by-vlu-fdstore" "pid $(vlud_pid), ready $(cat "$FDS_DIR/ready")"
	fi
	if grep -q "service pid $old killed by signal 9" vlud.log; then t_ok "$1/vlu-fdstore-saw-sigkill"; else t_fail "$1/vlu-fdstore-saw-sigkill" "not in the log"; fi
}

# start_vmm_stop_at TAG POINT: minivmm instance $INST with traffic, stopping itself at POINT of an update;
# baseline: held fds (held0-TAG.txt), fd store entries ($st0), VmPin ($pin0)
start_vmm_stop_at() {
	echo "# $INST: MINIVMM_TEST_STOP_AT=$2 minivmm --vlud $SOCK --instance $INST --vdpa vdpa0 --mem 64M --duration 0 --pause-frames 8"
	MINIVMM_TEST_STOP_AT=$2 minivmm --vlud "$SOCK" --instance "$INST" --vdpa vdpa0 --mem 64M --duration 0 --pause-frames 8 > "$INST.out" 2> "$INST.log" &
	VMM_PID=$!
	wait_until 300 vmm_up "$INST.log" "$VMM_PID"
	sleep 1 # fd.store and vmm.mappings after the bring-up
	wait_attached "$VMM_PID" && t_ok "$1/vmm-attached" || t_fail "$1/vmm-attached" "$(vctl instances 2>&1 | tr '\n' ' ')"
	held_names > "held0-$1.txt"
	sed "s/^/[$1 held before] /" "held0-$1.txt"
	expect "$1/six-fds-held" "$(wc -l < "held0-$1.txt")" -eq 6
	st0=$(store_names)
	expect "$1/fd-store-has-every-held-fd" "$st0" -eq 6
	pin0=$(vmpin "$VMM_PID")
	expect "$1/vmpin-pinned" "$pin0" -gt 0
}

# killed_in PHASE: update.start (exec mode, path $DK_PATH) of $INST, whose VMM stops itself in PHASE (vlud has
# suspended the device); kill -9 vlud; what the restarted vlud did; the VMM continued: traffic again
# dk_reserved PH: the restarted vlud reserved the instance to the VMM, which owned the device (exec mode: one
# process, docs/UPDATE.md "Only the device's owner reattaches"); that reservation's pidfd closes when the VMM
# reattaches, so it is not among the fds the restarted vlud keeps (fd_base)
dk_reserved() {
	expect "$1/reserved-to-the-vmm" "$(jget .last.reattach_reserved_for "$1.ustatus")" -eq "$VMM_PID"
	fd_base=$((fd_base - 1))
}
killed_in() {
	ph=$1
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"exec\",\"path\":\"$DK_PATH\",\"wait\":false}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jget .id "$ph.start")
	expect "$ph/update-started" "$uid" -gt 0
	wait_until 100 is_stopped "$VMM_PID"
	is_stopped "$VMM_PID" && t_ok "$ph/vmm-stopped-in-$ph" || t_fail "$ph/vmm-stopped-in-$ph" "$(grep State "/proc/$VMM_PID/status")"
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-$ph" "$(jget .running.phase "$ph.running")" = "$ph"
	kill_vlud "$ph"
	vlud2=$(vlud_pid)
	fd_base=$(nfds "$vlud2")
	if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok "$ph/startup-adopted-6"; else t_fail "$ph/startup-adopted-6" "$(grep start-up vlud.log | tail -1)"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.ustatus" 2>&1
	sed "s/^/[$ph update.status after the restart] /" "$ph.ustatus"
	dk_reserved "$ph"
	expect "$ph/no-update-running" "$(jget .running "$ph.ustatus")" = null
	expect "$ph/verdict-failed" "$(jget .last.result "$ph.ustatus")" = failed
	expect "$ph/verdict-id" "$(jget .last.id "$ph.ustatus")" -eq "$uid"
	expect "$ph/verdict-phase" "$(jget .last.phase "$ph.ustatus")" = "$ph"
	expect "$ph/verdict-path" "$(jget .last.path "$ph.ustatus")" = "$DK_PATH"
	if jget .last.error "$ph.ustatus" | grep -q "^vlud restarted during the update (phase $ph): before the hand-over"; then t_ok "$ph/verdict-reason"; else t_fail "$ph/verdict-reason" "no such error"; fi
	if jhas .last.resumed "$ph.ustatus" '["vdpa:vdpa0"]'; then t_ok "$ph/device-resumed"; else t_fail "$ph/device-resumed" "resumed list wrong"; fi
	st=$(jget '.last.status_after[device=vdpa:vdpa0].status' "$ph.ustatus")
	expect "$ph/device-driver-ok-after-restart" "$((${st:-0} & 4))" -eq 4
	if grep -q "update $uid of $INST: failed: vlud restarted during the update (phase $ph)" vlud.log; then t_ok "$ph/verdict-logged"; else t_fail "$ph/verdict-logged" "not in vlud's log"; fi
	# a claim of the update that died with the old vlud: refused, with the reason
	vctl --json call update.claim "{\"instance\":\"$INST\",\"token\":\"00000000000000000000000000000000\"}" > "$ph.claim" 2>&1
	sed "s/^/[$ph update.claim] /" "$ph.claim"
	if jhas .error.class "$ph.claim" PermissionDenied && jget .error.desc "$ph.claim" | grep -q "ended when vlud restarted (phase $ph)"; then t_ok "$ph/claim-refused-clearly"; else t_fail "$ph/claim-refused-clearly" "$(cat "$ph.claim")"; fi
	held_names > "held2-$ph.txt"
	if cmp -s "held0-$ph.txt" "held2-$ph.txt"; then t_ok "$ph/every-fd-kept-same-names"; else t_fail "$ph/every-fd-kept-same-names" "$(diff "held0-$ph.txt" "held2-$ph.txt" | tr '\n' ' ')"; fi
	expect "$ph/fd-store-unchanged" "$(store_names)" -eq "$st0"
	expect "$ph/vmpin-unchanged" "$(vmpin "$VMM_PID")" -eq "$pin0"
	# the old VMM goes on: it finds vlud gone, takes its datapath back and reattaches
	kill -CONT "$VMM_PID"
	wait_attached "$VMM_PID" && t_ok "$ph/vmm-reattached" || t_fail "$ph/vmm-reattached" "$(vctl instances 2>&1 | tr '\n' ' ')"
	if grep -q "vlud is gone" "$INST.log"; then t_ok "$ph/vmm-saw-vlud-gone"; else t_fail "$ph/vmm-saw-vlud-gone" "not in its log"; fi
	sleep 3 # traffic after the resume
	expect "$ph/vmpin-unchanged-after" "$(vmpin "$VMM_PID")" -eq "$pin0"
	kill -TERM "$VMM_PID"
	wait "$VMM_PID"
	sed "s/^/[$INST] /" "$INST.log" "$INST.out"
	f=$INST.out
	expect "$ph/vmm-connected-at-end" "$(val "$f" vlud: connected)" -eq 1
	expect "$ph/vmm-update1-recorded-not-ok" "$(val "$f" "update 1:" ok)" -eq 0
	expect "$ph/vmm-zero-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$ph/vmm-zero-dup" "$(val "$f" traffic: dup)" -eq 0
	expect "$ph/vmm-all-echoed" "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
	expect "$ph/vmm-update-lost-0" "$(val "$f" "update 1:" lost)" -eq 0
	expectf "$ph/vmm-echo-after-the-resume" "$(val "$f" "update 1:" pause_echo_gap_ms)" '>' 0
	echo "# $ph: lost frames: traffic $(val "$f" traffic: lost), during the update $(val "$f" "update 1:" lost); frames posted in the pause $(val "$f" "update 1:" sent_in_pause)"
	# the VMM is gone (instance orphaned, no connection): the restarted vlud has the fds it had right
	# after the restart
	wait_until 30 nfds_is "$vlud2" "$fd_base"
	expect "$ph/no-fd-leak-in-restarted-vlud" "$(nfds "$vlud2")" -eq "$fd_base"
	held_names > "held3-$ph.txt"
	if cmp -s "held0-$ph.txt" "held3-$ph.txt"; then t_ok "$ph/every-fd-still-held-at-end"; else t_fail "$ph/every-fd-still-held-at-end" "$(diff "held0-$ph.txt" "held3-$ph.txt" | tr '\n' ' ')"; fi
}

# killed_after_claim: update.start (exec mode, path $DK_PATH) of $INST, whose new image stops itself right
# after its claim (phase restore: it holds every fd; path C: the device was released and reopened for it);
# kill -9 vlud: the restarted vlud only reports (the device as the successor left it), keeps every fd; the
# new image, continued, takes the device over, finds vlud gone at update.ready (path A: RESUMEs itself),
# runs on and reattaches
killed_after_claim() {
	ph=claimed
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"exec\",\"path\":\"$DK_PATH\",\"wait\":false}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jget .id "$ph.start")
	expect "$ph/update-started" "$uid" -gt 0
	wait_until 150 is_stopped "$VMM_PID"
	is_stopped "$VMM_PID" && t_ok "$ph/new-image-stopped-after-claim" || t_fail "$ph/new-image-stopped-after-claim" "$(grep State "/proc/$VMM_PID/status")"
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-restore" "$(jget .running.phase "$ph.running")" = restore
	kill_vlud "$ph"
	vlud2=$(vlud_pid)
	fd_base=$(nfds "$vlud2")
	if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok "$ph/startup-adopted-6"; else t_fail "$ph/startup-adopted-6" "$(grep start-up vlud.log | tail -1)"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.ustatus" 2>&1
	sed "s/^/[$ph update.status after the restart] /" "$ph.ustatus"
	dk_reserved "$ph"
	expect "$ph/verdict-failed" "$(jget .last.result "$ph.ustatus")" = failed
	expect "$ph/verdict-id" "$(jget .last.id "$ph.ustatus")" -eq "$uid"
	expect "$ph/verdict-phase" "$(jget .last.phase "$ph.ustatus")" = restore
	if jget .last.error "$ph.ustatus" | grep -q "^vlud restarted during the update (phase restore): the successor (pid $VMM_PID, alive) had claimed every fd"; then t_ok "$ph/verdict-reason"; else t_fail "$ph/verdict-reason" "no such error"; fi
	if jhas .last.resumed "$ph.ustatus" '[]'; then t_ok "$ph/nothing-resumed"; else t_fail "$ph/nothing-resumed" "resumed list not empty"; fi
	st=$(jget '.last.status_after[device=vdpa:vdpa0].status' "$ph.ustatus")
	if [ "$DK_PATH" = C ]; then
		# the reopened device, not configured yet by the stopped successor
		expect "$ph/device-status-fresh-open" "${st:-x}" -eq 0
	else
		# path A: the device kept running state (suspended, DRIVER_OK); its new owner resumes it
		expect "$ph/device-status-driver-ok" "$((${st:-0} & 4))" -eq 4
	fi
	vctl --json call update.claim "{\"instance\":\"$INST\",\"token\":\"00000000000000000000000000000000\"}" > "$ph.claim" 2>&1
	if jget .error.desc "$ph.claim" | grep -q "ended when vlud restarted (phase restore)"; then t_ok "$ph/claim-refused-clearly"; else t_fail "$ph/claim-refused-clearly" "$(cat "$ph.claim")"; fi
	held_names > "held2-$ph.txt"
	if cmp -s "held0-$ph.txt" "held2-$ph.txt"; then t_ok "$ph/every-fd-kept-same-names"; else t_fail "$ph/every-fd-kept-same-names" "$(diff "held0-$ph.txt" "held2-$ph.txt" | tr '\n' ' ')"; fi
	expect "$ph/fd-store-same-count" "$(store_names)" -eq "$st0"
	kill -CONT "$VMM_PID"
	wait_attached "$VMM_PID" && t_ok "$ph/new-image-reattached" || t_fail "$ph/new-image-reattached" "$(vctl instances 2>&1 | tr '\n' ' ')"
	if grep -q "vlud is gone (update.ready" "$INST.log"; then t_ok "$ph/new-image-saw-vlud-gone"; else t_fail "$ph/new-image-saw-vlud-gone" "not in its log"; fi
	sleep 3 # traffic after the takeover
	expect "$ph/vmpin-expected-after" "$(vmpin "$VMM_PID")" -eq "$pin0"
	kill -TERM "$VMM_PID"
	wait "$VMM_PID"
	sed "s/^/[$INST] /" "$INST.log" "$INST.out"
	f=$INST.out
	expect "$ph/vmm-connected-at-end" "$(val "$f" vlud: connected)" -eq 1
	expect "$ph/vmm-zero-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$ph/vmm-zero-dup" "$(val "$f" traffic: dup)" -eq 0
	expect "$ph/vmm-all-echoed" "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
	expectf "$ph/vmm-echo-after-the-takeover" "$(val "$f" "update 1:" pause_echo_gap_ms)" '>' 0
	echo "# $ph: lost frames: traffic $(val "$f" traffic: lost), during the update $(val "$f" "update 1:" lost)"
	wait_until 30 nfds_is "$vlud2" "$fd_base"
	expect "$ph/no-fd-leak-in-restarted-vlud" "$(nfds "$vlud2")" -eq "$fd_base"
	held_names > "held3-$ph.txt"
	if cmp -s "held0-$ph.txt" "held3-$ph.txt"; then t_ok "$ph/every-fd-still-held-at-end"; else t_fail "$ph/every-fd-still-held-at-end" "$(diff "held0-$ph.txt" "held3-$ph.txt" | tr '\n' ' ')"; fi
}

# proc_gone PID: exited (gone, or a zombie nobody reaped yet: its vlud parent was killed)
proc_gone() { [ ! -d "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2> /dev/null; }
# killed_taken_back (path A, transfer mode): the successor vlud spawned stops itself right after its
# claim; vlud is killed; the old VMM finds vlud gone and takes the device back (it withdraws the consent
# it armed, still the owner) and runs its datapath: the rings in guest RAM move on from the state it saved.
# Then the old VMM is killed: its dead mm is consent for anyone's VHOST_NEW_OWNER.  The successor,
# continued, becomes the owner, but its state (the old VMM's save) is stale: it must see that (the drive
# mark in guest RAM is not the saved one: the old VMM wrote a fresh one when it drove the rings again) and
# stop without driving the device.  Found by the chaos
# soak (patched, seed 20261205, kill 600): the successor ran on the stale state, 64793 frames duplicated
# and 616 corrupt.  The restarted vlud keeps every fd; the instance ends orphaned (nobody can run it on).
killed_taken_back() {
	ph=taken-back
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"transfer\",\"path\":\"A\",\"wait\":false,\"argv\":[\"minivmm\",\"--vlud\",\"$SOCK\",\"--instance\",\"$INST\",\"--vdpa\",\"vdpa0\",\"--mem\",\"64M\",\"--duration\",\"0\",\"--pause-frames\",\"8\",\"--test-stop-at\",\"claimed\"]}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jget .id "$ph.start")
	expect "$ph/update-started" "$uid" -gt 0
	wait_until 300 grep -q "spawned successor .* as pid" vlud.log
	npid=$(sed -n 's/.*spawned successor .* as pid \([0-9]*\) .*/\1/p' vlud.log | tail -1)
	wait_until 300 is_stopped "${npid:-0}"
	is_stopped "${npid:-0}" && t_ok "$ph/successor-stopped-after-claim" || t_fail "$ph/successor-stopped-after-claim" "pid ${npid:-none}"
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-restore" "$(jget .running.phase "$ph.running")" = restore
	kill_vlud "$ph"
	# the old VMM takes the device back and runs: frames echoed after that
	wait_until 100 grep -q "taking the device back" "$INST.log"
	if grep -q "taking the device back" "$INST.log"; then t_ok "$ph/old-vmm-took-the-device-back"; else t_fail "$ph/old-vmm-took-the-device-back" "not in its log"; fi
	wait_until 100 grep -q "first echo after update" "$INST.log"
	if grep -q "first echo after update" "$INST.log"; then t_ok "$ph/old-vmm-ran-its-datapath"; else t_fail "$ph/old-vmm-ran-its-datapath" "no echo after the take-back"; fi
	sleep 1 # its traffic runs: the vrings move on
	kill -9 "$VMM_PID"
	wait "$VMM_PID"
	sed "s/^/[$INST] /" "$INST.log"
	kill -CONT "$npid"
	wait_until 300 proc_gone "$npid"
	proc_gone "$npid" && t_ok "$ph/successor-exited" || t_fail "$ph/successor-exited" "pid $npid still there"
	grep "minivmm\[$npid\]" vlud.log | sed "s/^/[$ph successor] /"
	if grep "minivmm\[$npid\]" vlud.log | grep -q "the rings were driven after our state was saved"; then t_ok "$ph/successor-saw-the-stale-state"; else t_fail "$ph/successor-saw-the-stale-state" "not in its log"; fi
	if grep "minivmm\[$npid\]" vlud.log | grep -q "running the device\|first echo after update\|path A done"; then
		t_fail "$ph/successor-did-not-drive-the-device" "it ran on the stale state"
	else
		t_ok "$ph/successor-did-not-drive-the-device"
	fi
	held_names > "held2-$ph.txt"
	if cmp -s "held0-$ph.txt" "held2-$ph.txt"; then t_ok "$ph/every-fd-kept-same-names"; else t_fail "$ph/every-fd-kept-same-names" "$(diff "held0-$ph.txt" "held2-$ph.txt" | tr '\n' ' ')"; fi
	expect "$ph/fd-store-same-count" "$(store_names)" -eq "$st0"
	if vctl instances 2> /dev/null | grep -q "^$INST  *orphaned"; then t_ok "$ph/instance-orphaned"; else t_fail "$ph/instance-orphaned" "$(vctl instances 2>&1 | tr '\n' ' ')"; fi
}

# stopped_claimed (path A, transfer mode): R10 after the claim.  The successor vlud spawned stops itself after
# its take-over (its VHOST_NEW_OWNER: it owns the device), before update.ready; vlud is stopped (SIGTERM, as a
# `systemctl restart`; vlu-fdstore starts it again with its store): it ends the update (R10: RESUME, the verdict
# failed to the old VMM, no update.rolled-back).  The old VMM must learn from the device that the successor
# owns it (its VHOST_NEW_OWNER: EPERM) and stop without touching it: no RESUME (the patched kernel fences it:
# "rollback RESUME: Operation not permitted"), no datapath, no reattach.  The successor, continued, finds vlud
# gone at update.ready, reattaches to the restarted vlud (the instance orphaned, reserved to nobody) and runs
# the device.  Review finding LOW 7: the old VMM RESUMEd and drove the rings next to the successor and
# reattached first, so the successor, refused Busy, stopped (docs/UPDATE.md "R10 after the claim").
stopped_claimed() {
	ph=stopped-claimed
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"transfer\",\"path\":\"A\",\"wait\":false,\"argv\":[\"minivmm\",\"--vlud\",\"$SOCK\",\"--instance\",\"$INST\",\"--vdpa\",\"vdpa0\",\"--mem\",\"64M\",\"--duration\",\"0\",\"--pause-frames\",\"8\",\"--test-stop-at\",\"ready\"]}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jget .id "$ph.start")
	expect "$ph/update-started" "$uid" -gt 0
	wait_until 300 grep -q "spawned successor .* as pid" vlud.log
	npid=$(sed -n 's/.*spawned successor .* as pid \([0-9]*\) .*/\1/p' vlud.log | tail -1)
	wait_until 300 is_stopped "${npid:-0}"
	if is_stopped "${npid:-0}"; then t_ok "$ph/successor-stopped-before-ready"; else t_fail "$ph/successor-stopped-before-ready" "pid ${npid:-none}"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-restore" "$(jget .running.phase "$ph.running")" = restore
	old=$(vlud_pid)
	r0=$(cat "$FDS_DIR/ready")
	kill -TERM "$old"
	if wait_ready $((r0 + 1)) && [ "$(vlud_pid)" != "$old" ]; then t_ok "$ph/vlud-started-again"; else t_fail "$ph/vlud-started-again" "pid $(vlud_pid)"; fi
	if grep -q "service pid $old exited with status 0" vlud.log; then t_ok "$ph/vlud-stopped-cleanly"; else t_fail "$ph/vlud-stopped-cleanly" "not in the log"; fi
	ustatus "$INST" "$ph.ustatus"
	expect "$ph/verdict-failed" "$(jget .last.result "$ph.ustatus")" = failed
	expect "$ph/verdict-id" "$(jget .last.id "$ph.ustatus")" -eq "$uid"
	if jget .last.error "$ph.ustatus" | grep -q "^the daemon is stopping during phase restore"; then t_ok "$ph/verdict-r10"; else t_fail "$ph/verdict-r10" "$(jget .last.error "$ph.ustatus")"; fi
	# the old VMM: the successor owns the device, so it stops by itself without touching it
	wait_until 100 proc_gone "$VMM_PID"
	if proc_gone "$VMM_PID"; then t_ok "$ph/old-vmm-stopped"; else t_fail "$ph/old-vmm-stopped" "pid $VMM_PID still runs"; fi
	sed "s/^/[$INST] /" "$INST.log"
	if grep -q "the successor owns the device: not ours any more, stopping" "$INST.log"; then t_ok "$ph/old-vmm-saw-the-successor-own-it"; else t_fail "$ph/old-vmm-saw-the-successor-own-it" "not in its log"; fi
	if grep -q "rollback RESUME\|rollback (re-create vrings)" "$INST.log"; then t_fail "$ph/old-vmm-did-not-touch-the-device" "$(grep 'rollback ' "$INST.log" | tr '\n' ' ')"; else t_ok "$ph/old-vmm-did-not-touch-the-device"; fi
	if grep -q "vlud: reattached" "$INST.log"; then t_fail "$ph/old-vmm-did-not-reattach" "it did"; else t_ok "$ph/old-vmm-did-not-reattach"; fi
	if grep -q "exit: the device's owner is another process: not resetting it" "$INST.log"; then t_ok "$ph/old-vmm-did-not-reset"; else t_fail "$ph/old-vmm-did-not-reset" "not in its log"; fi
	# the successor, continued (the old VMM still runs if it failed the checks above: then it reattached
	# first and the successor, refused Busy, stops): vlud gone at update.ready, it holds, reattaches, runs
	kill -CONT "$npid"
	if wait_attached "$npid"; then t_ok "$ph/successor-reattached"; else t_fail "$ph/successor-reattached" "$(vctl instances 2>&1 | tr '\n' ' ')"; fi
	kill -9 "$VMM_PID" 2> /dev/null
	wait "$VMM_PID"
	wait_until 50 grep -q "minivmm\[$npid\].*first echo after update" vlud.log
	grep "minivmm\[$npid\]" vlud.log | sed "s/^/[$ph successor] /"
	if grep "minivmm\[$npid\]" vlud.log | grep -q "vlud is back and gave us the instance: running the device"; then t_ok "$ph/successor-runs-the-device"; else t_fail "$ph/successor-runs-the-device" "not in its log"; fi
	if grep "minivmm\[$npid\]" vlud.log | grep -q "first echo after update"; then t_ok "$ph/successor-traffic"; else t_fail "$ph/successor-traffic" "no echo after its take-over"; fi
	expect "$ph/successor-vmpin" "$(vmpin "$npid")" -eq "$pin0"
	st=$(devstatus)
	expect "$ph/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	held_names > "held2-$ph.txt"
	if cmp -s "held0-$ph.txt" "held2-$ph.txt"; then t_ok "$ph/every-fd-kept-same-names"; else t_fail "$ph/every-fd-kept-same-names" "$(diff "held0-$ph.txt" "held2-$ph.txt" | tr '\n' ' ')"; fi
	kill -TERM "$npid"
	wait_until 100 proc_gone "$npid"
}

# stopped_before_claim (path C, transfer mode): R10 before the claim.  The old VMM closed its copy of the device
# at the save (path C's release), the successor vlud spawned stops itself before its claim; vlud is stopped
# (SIGTERM, as a `systemctl restart`; vlu-fdstore starts it again with its store): it ends the update (R10:
# RESUME, the verdict failed to the old VMM, no update.rolled-back) with its copy of the device, the old VMM's,
# never released.  A stopping vlud answers no fd.retrieve: the old VMM must see that from the verdict and do as
# when vlud is killed: reattach to the vlud started again, fd.retrieve its device and run it, VmPin unchanged;
# the successor, continued, is refused its claim (the update ended) and exits holding nothing.  Review finding
# MEDIUM: the old VMM stopped (fd.retrieve failed), so a `systemctl restart vlud` in a path-C transfer update took
# the VM down (docs/UPDATE.md "R10 after the claim").
stopped_before_claim() {
	ph=stopped-before-claim
	n0=$(grep -c "spawned successor .* as pid" vlud.log)
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"transfer\",\"path\":\"C\",\"wait\":false,\"argv\":[\"minivmm\",\"--vlud\",\"$SOCK\",\"--instance\",\"$INST\",\"--vdpa\",\"vdpa0\",\"--mem\",\"64M\",\"--duration\",\"0\",\"--pause-frames\",\"8\",\"--test-stop-at\",\"claim\"]}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jget .id "$ph.start")
	expect "$ph/update-started" "$uid" -gt 0
	wait_until 300 sh -c "[ \$(grep -c 'spawned successor .* as pid' vlud.log) -gt $n0 ]"
	npid=$(sed -n 's/.*spawned successor .* as pid \([0-9]*\) .*/\1/p' vlud.log | tail -1)
	wait_until 300 is_stopped "${npid:-0}"
	if is_stopped "${npid:-0}"; then t_ok "$ph/successor-stopped-before-claim"; else t_fail "$ph/successor-stopped-before-claim" "pid ${npid:-none}"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-claim" "$(jget .running.phase "$ph.running")" = claim
	if grep -q "vlud update: path C, transfer mode: saving" "$INST.log"; then t_ok "$ph/old-vmm-saved-path-c-transfer"; else t_fail "$ph/old-vmm-saved-path-c-transfer" "not in its log"; fi
	old=$(vlud_pid)
	r0=$(cat "$FDS_DIR/ready")
	kill -TERM "$old"
	if wait_ready $((r0 + 1)) && [ "$(vlud_pid)" != "$old" ]; then t_ok "$ph/vlud-started-again"; else t_fail "$ph/vlud-started-again" "pid $(vlud_pid)"; fi
	if grep -q "service pid $old exited with status 0" vlud.log; then t_ok "$ph/vlud-stopped-cleanly"; else t_fail "$ph/vlud-stopped-cleanly" "not in the log"; fi
	ustatus "$INST" "$ph.ustatus"
	expect "$ph/verdict-failed" "$(jget .last.result "$ph.ustatus")" = failed
	expect "$ph/verdict-id" "$(jget .last.id "$ph.ustatus")" -eq "$uid"
	if jget .last.error "$ph.ustatus" | grep -q "^the daemon is stopping during phase claim"; then t_ok "$ph/verdict-r10"; else t_fail "$ph/verdict-r10" "$(jget .last.error "$ph.ustatus")"; fi
	rel=$(jget .last.release_ms "$ph.ustatus")
	if [ -z "$rel" ] || [ "$rel" = null ]; then t_ok "$ph/verdict-not-released"; else t_fail "$ph/verdict-not-released" "release_ms $rel"; fi
	# the old VMM: vlud still held its device, so it reattaches and takes it back from the fd store
	if wait_attached "$VMM_PID"; then t_ok "$ph/old-vmm-reattached"; else t_fail "$ph/old-vmm-reattached" "$(vctl instances 2>&1 | tr '\n' ' ')"; fi
	if proc_gone "$VMM_PID"; then t_fail "$ph/old-vmm-runs" "pid $VMM_PID exited"; else t_ok "$ph/old-vmm-runs"; fi
	if grep -q "vlud is stopping and still holds our device" "$INST.log"; then t_ok "$ph/old-vmm-saw-vlud-stopping"; else t_fail "$ph/old-vmm-saw-vlud-stopping" "not in its log"; fi
	if grep -q "the device is not ours any more" "$INST.log"; then t_fail "$ph/old-vmm-did-not-give-up" "$(grep 'not ours' "$INST.log")"; else t_ok "$ph/old-vmm-did-not-give-up"; fi
	# the successor, continued: its claim is refused by the vlud started again (its update ended), it exits
	kill -CONT "$npid"
	wait_until 100 proc_gone "$npid"
	if proc_gone "$npid"; then t_ok "$ph/successor-exited"; else t_fail "$ph/successor-exited" "pid $npid still runs"; fi
	grep "minivmm\[$npid\]" vlud.log | sed "s/^/[$ph successor] /"
	if in_attached_to "$INST" "$VMM_PID"; then t_ok "$ph/old-vmm-still-attached"; else t_fail "$ph/old-vmm-still-attached" "$(vctl instances 2>&1 | tr '\n' ' ')"; fi
	sleep 3 # traffic after the take-back
	expect "$ph/vmpin-unchanged" "$(vmpin "$VMM_PID")" -eq "$pin0"
	st=$(devstatus)
	expect "$ph/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	held_names > "held2-$ph.txt"
	if cmp -s "held0-$ph.txt" "held2-$ph.txt"; then t_ok "$ph/every-fd-kept-same-names"; else t_fail "$ph/every-fd-kept-same-names" "$(diff "held0-$ph.txt" "held2-$ph.txt" | tr '\n' ' ')"; fi
	expect "$ph/fd-store-unchanged" "$(store_names)" -eq "$st0"
	kill -TERM "$VMM_PID"
	wait "$VMM_PID"
	sed "s/^/[$INST] /" "$INST.log" "$INST.out"
	f=$INST.out
	expect "$ph/vmm-update1-recorded-not-ok" "$(val "$f" "update 1:" ok)" -eq 0
	expect "$ph/vmm-zero-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$ph/vmm-zero-dup" "$(val "$f" traffic: dup)" -eq 0
	expect "$ph/vmm-all-echoed" "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
}

# dk_run: the whole scenario
dk_run() {
	start_vlud_fdstore
	expect fdstore/state-memfd-stored "$(grep -c '^state$' "$FDS_DIR/store")" -eq 1

	# ---- vm0: idle, then an update killed in phase save
	INST=vm0
	start_vmm_stop_at save save
	cp held0-save.txt held0.txt
	kill_vlud idle
	held_names > held1.txt
	if cmp -s held0.txt held1.txt; then t_ok idle/every-fd-adopted-same-names; else t_fail idle/every-fd-adopted-same-names "$(diff held0.txt held1.txt | tr '\n' ' ')"; fi
	expect idle/fd-store-unchanged "$(store_names)" -eq "$st0"
	if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok idle/startup-adopted-6; else t_fail idle/startup-adopted-6 "$(grep start-up vlud.log | tail -1)"; fi
	vctl --json call update.status '{"instance":"vm0"}' > idle.ustatus 2>&1
	sed 's/^/[idle update.status] /' idle.ustatus
	if jhas .running idle.ustatus null && jhas .last idle.ustatus null; then t_ok idle/nothing-reported; else t_fail idle/nothing-reported "$(cat idle.ustatus)"; fi
	if jget '.mappings[0]' idle.ustatus | grep -q '^{'; then t_ok idle/mapping-table-kept; else t_fail idle/mapping-table-kept "no mappings in update.status"; fi
	if grep -q "restarted during the update" vlud.log; then t_fail idle/no-update-verdict-logged "$(grep 'restarted during' vlud.log)"; else t_ok idle/no-update-verdict-logged; fi
	wait_attached "$VMM_PID" && t_ok idle/vmm-reattached-itself || t_fail idle/vmm-reattached-itself "$(vctl instances 2>&1 | tr '\n' ' ')"
	if grep -q "vlud: reattached" vm0.log; then t_ok idle/vmm-logged-reattach; else t_fail idle/vmm-logged-reattach "no 'vlud: reattached' in its log"; fi
	expect idle/vmpin-unchanged "$(vmpin "$VMM_PID")" -eq "$pin0"
	killed_in save
	expect save/vmm-reattached-twice "$(val vm0.out vlud: reattaches)" -eq 2
	vctl release vm0 > /dev/null 2>&1

	# ---- vm1: an update killed in phase exec (update.exec sent; the VMM has not exec'ed: it still holds the
	# device, so the restarted vlud RESUMEs; the VMM then does not exec)
	INST=vm1
	start_vmm_stop_at exec exec
	killed_in exec
	if grep -q "hung up before the exec" vm1.log; then t_ok exec/vmm-did-not-exec; else t_fail exec/vmm-did-not-exec "not in its log"; fi
	vctl release vm1 > /dev/null 2>&1

	# ---- vm2: an update killed after the new image's claim (phase restore)
	INST=vm2
	start_vmm_stop_at claimed claimed
	killed_after_claim
	vctl release vm2 > /dev/null 2>&1

	# ---- vm4 (path A): the old VMM took the device back and ran it before its death; the successor, its
	# claim made before that, must not drive the device from the stale state
	if [ "$DK_PATH" = A ]; then
		INST=vm4
		start_vmm_stop_at taken-back none
		killed_taken_back
		vctl release vm4 > /dev/null 2>&1
		# ---- vm5 (path A): vlud stopped (R10) after the successor's take-over: it runs the device, not the
		# old VMM
		INST=vm5
		start_vmm_stop_at stopped-claimed none
		stopped_claimed
		vctl release vm5 > /dev/null 2>&1
	fi
	# ---- vm6 (path C, transfer mode): vlud stopped (R10) while the spawned successor has not claimed: vlud's
	# copy of the device is still the old VMM's, which takes it back from the vlud started again
	if [ "$DK_PATH" = C ]; then
		INST=vm6
		start_vmm_stop_at stopped-before-claim none
		stopped_before_claim
		vctl release vm6 > /dev/null 2>&1
	fi

	# ---- device.reopen under the fd store: vlud's copy of the device is in the fd store too, held by
	# vlu-fdstore, vlud's parent (under systemd: PID 1); that copy is vlud's own, not a holder that blocks
	# the reopen (the chaos soak found the reopen refused Busy "still open in pid N (vlu-fdstore)")
	vlu-devopen $SOCK vm3 vdpa0 --reopen || FAILS=$((FAILS + 1))
	vctl release vm3 > /dev/null 2>&1

	kill -TERM "$FDS_PID"
	wait "$FDS_PID"
	expect end/vlu-fdstore-clean-exit "$?" -eq 0
	sed 's/^/[vlud] /' vlud.log
	[ "$FAILS" -eq 0 ]
}
