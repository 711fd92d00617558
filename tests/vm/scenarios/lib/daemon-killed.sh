#!/bin/sh
# lib/daemon-killed.sh: the update-daemon-killed* scenarios (sourced after lib/update.sh; DK_PATH = the
# update's path, A on patched modules, C on stock).  vlud runs under vlu-fdstore (the fd-store part of
# PID 1, docs/RIG.md) and is killed with SIGKILL while idle and in the middle of updates; dk_run runs it all.
FDS_DIR=/run/vlu-fdstore

# vlud under vlu-fdstore (pid of the current vlud: $FDS_DIR/pid)
start_vlud_fdstore() {
	cat > vlud.conf << EOF
{ "socket": { "path": "$SOCK" }, "operators": { "uids": [0] },
  "vmms": [ { "uids": [0, 1000], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd"], "max_fds": 16 } ],
  "timeouts": { "update": { "suspend_ms": 2000, "save_ms": 60000, "exec_ms": 3000, "claim_ms": 4000, "commit_ms": 5000 } } }
EOF
	mkdir -p "$FDS_DIR"
	rm -f "$FDS_DIR"/*
	vlu-fdstore --socket "$SOCK" --notify "$FDS_DIR/notify" --dir "$FDS_DIR" -- vlud -c vlud.conf -d > vlud.log 2>&1 &
	FDS_PID=$!
	wait_ready 1 || { t_fail vlud/started "no READY=1 from vlud under vlu-fdstore"; sed 's/^/[vlud] /' vlud.log; exit 1; }
	t_ok vlud/started-under-vlu-fdstore
}
# wait_ready N: until vlud sent READY=1 N times in all (vlu-fdstore counts)
wait_ready() {
	n=0
	while [ "$(cat "$FDS_DIR/ready" 2> /dev/null || echo 0)" -lt "$1" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
	[ "$(cat "$FDS_DIR/ready" 2> /dev/null || echo 0)" -ge "$1" ]
}
vlud_pid() { cat "$FDS_DIR/pid" 2> /dev/null; }
# the held fds (instance/name, sorted) and the fd store's h* entries
held_names() { vctl --json fds | tr '{' '\n' | sed -n 's/.*"instance":"\([^"]*\)".*"name":"\([^"]*\)".*/\1\/\2/p' | sort; }
store_names() { grep -c '^h' "$FDS_DIR/store"; }
attached_pid() { vctl --json instances | tr -d ' \n' | grep -o "\"name\":\"$INST\"[^}]*" | grep '"state":"attached"' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
wait_attached() { # wait_attached PID: the instance $INST attached to PID
	n=0
	while [ "$(attached_pid)" != "$1" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	[ "$(attached_pid)" = "$1" ]
}
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
	n=0
	while ! grep -q "running:" "$INST.log" 2> /dev/null && [ $n -lt 300 ] && kill -0 "$VMM_PID" 2> /dev/null; do sleep 0.1; n=$((n + 1)); done
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
killed_in() {
	ph=$1
	vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"exec\",\"path\":\"$DK_PATH\",\"wait\":false}" > "$ph.start" 2>&1
	sed "s/^/[$ph update.start] /" "$ph.start"
	uid=$(jnum "$ph.start" id)
	expect "$ph/update-started" "$uid" -gt 0
	n=0
	while ! grep -q "^State:.*stopped" "/proc/$VMM_PID/status" 2> /dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	grep -q "^State:.*stopped" "/proc/$VMM_PID/status" && t_ok "$ph/vmm-stopped-in-$ph" || t_fail "$ph/vmm-stopped-in-$ph" "$(grep State "/proc/$VMM_PID/status")"
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-$ph" "$(tr -d ' \n' < "$ph.running" | grep -o '"running":{[^}]*' | grep -o '"phase":"[a-z]*"' | head -1)" = "\"phase\":\"$ph\""
	kill_vlud "$ph"
	vlud2=$(vlud_pid)
	fd_base=$(nfds "$vlud2")
	if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok "$ph/startup-adopted-6"; else t_fail "$ph/startup-adopted-6" "$(grep start-up vlud.log | tail -1)"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.ustatus" 2>&1
	sed "s/^/[$ph update.status after the restart] /" "$ph.ustatus"
	expect "$ph/no-update-running" "$(grep -c '"running":null' "$ph.ustatus")" -eq 1
	expect "$ph/verdict-failed" "$(jstr "$ph.ustatus" result)" = failed
	expect "$ph/verdict-id" "$(jnum "$ph.ustatus" id)" -eq "$uid"
	expect "$ph/verdict-phase" "$(jstr "$ph.ustatus" phase)" = "$ph"
	expect "$ph/verdict-path" "$(jstr "$ph.ustatus" path)" = "$DK_PATH"
	if grep -q "\"error\":\"vlud restarted during the update (phase $ph): before the hand-over" "$ph.ustatus"; then t_ok "$ph/verdict-reason"; else t_fail "$ph/verdict-reason" "no such error"; fi
	if tr -d ' \n' < "$ph.ustatus" | grep -q '"resumed":\["vdpa:vdpa0"\]'; then t_ok "$ph/device-resumed"; else t_fail "$ph/device-resumed" "resumed list wrong"; fi
	st=$(tr -d ' \n' < "$ph.ustatus" | sed -n 's/.*"status_after":\[{"device":"vdpa:vdpa0","status":\([0-9]*\)}.*/\1/p')
	expect "$ph/device-driver-ok-after-restart" "$((${st:-0} & 4))" -eq 4
	if grep -q "update $uid of $INST: failed: vlud restarted during the update (phase $ph)" vlud.log; then t_ok "$ph/verdict-logged"; else t_fail "$ph/verdict-logged" "not in vlud's log"; fi
	# a claim of the update that died with the old vlud: refused, with the reason
	vctl --json call update.claim "{\"instance\":\"$INST\",\"token\":\"00000000000000000000000000000000\"}" > "$ph.claim" 2>&1
	sed "s/^/[$ph update.claim] /" "$ph.claim"
	if grep -q "PermissionDenied" "$ph.claim" && grep -q "ended when vlud restarted (phase $ph)" "$ph.claim"; then t_ok "$ph/claim-refused-clearly"; else t_fail "$ph/claim-refused-clearly" "$(cat "$ph.claim")"; fi
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
	n=0
	while [ "$(nfds "$vlud2")" -ne "$fd_base" ] && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
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
	uid=$(jnum "$ph.start" id)
	expect "$ph/update-started" "$uid" -gt 0
	n=0
	while ! grep -q "^State:.*stopped" "/proc/$VMM_PID/status" 2> /dev/null && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
	grep -q "^State:.*stopped" "/proc/$VMM_PID/status" && t_ok "$ph/new-image-stopped-after-claim" || t_fail "$ph/new-image-stopped-after-claim" "$(grep State "/proc/$VMM_PID/status")"
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.running" 2>&1
	expect "$ph/running-in-phase-restore" "$(tr -d ' \n' < "$ph.running" | grep -o '"running":{[^}]*' | grep -o '"phase":"[a-z]*"' | head -1)" = '"phase":"restore"'
	kill_vlud "$ph"
	vlud2=$(vlud_pid)
	fd_base=$(nfds "$vlud2")
	if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok "$ph/startup-adopted-6"; else t_fail "$ph/startup-adopted-6" "$(grep start-up vlud.log | tail -1)"; fi
	vctl --json call update.status "{\"instance\":\"$INST\"}" > "$ph.ustatus" 2>&1
	sed "s/^/[$ph update.status after the restart] /" "$ph.ustatus"
	expect "$ph/verdict-failed" "$(jstr "$ph.ustatus" result)" = failed
	expect "$ph/verdict-id" "$(jnum "$ph.ustatus" id)" -eq "$uid"
	expect "$ph/verdict-phase" "$(jstr "$ph.ustatus" phase)" = restore
	if grep -q "\"error\":\"vlud restarted during the update (phase restore): the successor (pid $VMM_PID, alive) had claimed every fd" "$ph.ustatus"; then t_ok "$ph/verdict-reason"; else t_fail "$ph/verdict-reason" "no such error"; fi
	if tr -d ' \n' < "$ph.ustatus" | grep -q '"resumed":\[\]'; then t_ok "$ph/nothing-resumed"; else t_fail "$ph/nothing-resumed" "resumed list not empty"; fi
	st=$(tr -d ' \n' < "$ph.ustatus" | sed -n 's/.*"status_after":\[{"device":"vdpa:vdpa0","status":\([0-9]*\)}.*/\1/p')
	if [ "$DK_PATH" = C ]; then
		# the reopened device, not configured yet by the stopped successor
		expect "$ph/device-status-fresh-open" "${st:-x}" -eq 0
	else
		# path A: the device kept running state (suspended, DRIVER_OK); its new owner resumes it
		expect "$ph/device-status-driver-ok" "$((${st:-0} & 4))" -eq 4
	fi
	vctl --json call update.claim "{\"instance\":\"$INST\",\"token\":\"00000000000000000000000000000000\"}" > "$ph.claim" 2>&1
	if grep -q "ended when vlud restarted (phase restore)" "$ph.claim"; then t_ok "$ph/claim-refused-clearly"; else t_fail "$ph/claim-refused-clearly" "$(cat "$ph.claim")"; fi
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
	n=0
	while [ "$(nfds "$vlud2")" -ne "$fd_base" ] && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
	expect "$ph/no-fd-leak-in-restarted-vlud" "$(nfds "$vlud2")" -eq "$fd_base"
	held_names > "held3-$ph.txt"
	if cmp -s "held0-$ph.txt" "held3-$ph.txt"; then t_ok "$ph/every-fd-still-held-at-end"; else t_fail "$ph/every-fd-still-held-at-end" "$(diff "held0-$ph.txt" "held3-$ph.txt" | tr '\n' ' ')"; fi
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
	if grep -q '"running":null' idle.ustatus && grep -q '"last":null' idle.ustatus; then t_ok idle/nothing-reported; else t_fail idle/nothing-reported "$(cat idle.ustatus)"; fi
	if grep -q '"mappings":\[{' idle.ustatus; then t_ok idle/mapping-table-kept; else t_fail idle/mapping-table-kept "no mappings in update.status"; fi
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

	kill -TERM "$FDS_PID"
	wait "$FDS_PID"
	expect end/vlu-fdstore-clean-exit "$?" -eq 0
	sed 's/^/[vlud] /' vlud.log
	[ "$FAILS" -eq 0 ]
}
