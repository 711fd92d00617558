#!/bin/sh
# lib/update.sh: the shell library of the update-*.sh scenarios (sourced: . /scenarios/lib/update.sh).
# TAP helpers, vlud start/stop, minivmm start/wait, and the happy-path update checks.
S=${VLUD_SCENARIO:-update}
FAILS=0
SOCK=/run/vlud-upd.sock
t_ok() { echo "ok - $S/$1"; }
t_fail() { echo "not ok - $S/$1: $2"; FAILS=$((FAILS + 1)); }
t_skip() { echo "ok - $S/$1 # SKIP $2"; }
# val FILE LINE-PREFIX KEY: the value of KEY=... on the first line of FILE starting with LINE-PREFIX
val() { grep "^$2" "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }
# jnum FILE KEY: the first number after "KEY": in a JSON file; jstr FILE KEY: the first string
jnum() { grep -o "\"$2\":-\{0,1\}[0-9.]*" "$1" | head -1 | sed 's/.*://'; }
jstr() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -1 | sed 's/.*:"//; s/"$//'; }
expect() {
	if [ -n "$2" ] && [ "$2" "$3" "$4" ] 2> /dev/null; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}
expectf() {
	if [ -n "$2" ] && awk -v a="$2" -v b="$4" "BEGIN { exit !(a $3 b) }"; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}
# "traffic ran on" checks: frames a VMM sent in its whole run must exceed this.  At 1000 frames/s that is
# 2 s of traffic: it shows the datapath worked around the update, it is not a rate check (a loaded TCG
# host sends a third fewer than nominal; 4000 of a 6 s run failed once at load 9.5)
RAN_ON_MIN=${RAN_ON_MIN:-2000}
nfds() { ls "/proc/$1/fd" 2> /dev/null | wc -l; }
vmpin() { sed -n 's/^VmPin:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2> /dev/null; }

# start_vlud [EXTRA-JSON-MEMBERS]: vlud with a policy for uid 0 on vdpa0
start_vlud() {
	cat > vlud.conf << EOF
{ "socket": { "path": "$SOCK" }, "operators": { "uids": [0] },
  "vmms": [ { "uids": [0, 1000], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd", "vhost-vdpa"], "max_fds": 16 } ],
  "timeouts": { "update": { "suspend_ms": 2000, "save_ms": 3000, "exec_ms": 3000, "claim_ms": ${UPD_CLAIM_MS:-4000}, "commit_ms": ${UPD_COMMIT_MS:-5000} } }
  ${1:+, $1} }
EOF
	vlud -c vlud.conf -d > vlud.log 2>&1 &
	VLUD_PID=$!
	n=0
	while [ ! -S "$SOCK" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
	if [ -S "$SOCK" ]; then
		t_ok vlud/started
	else
		t_fail vlud/started "no socket after 5 s"
		sed 's/^/[vlud] /' vlud.log
		exit 1
	fi
}
stop_vlud() {
	kill "$VLUD_PID" 2> /dev/null
	wait "$VLUD_PID" 2> /dev/null
	sed 's/^/[vlud] /' vlud.log
}
vctl() { vluctl --socket "$SOCK" "$@"; }

# start_vmm TAG INSTANCE ARGS...: minivmm in the background (pid in VMM_PID), stdout TAG.out, stderr TAG.log
start_vmm() {
	tag=$1
	inst=$2
	shift 2
	echo "# $tag: minivmm --vlud $SOCK --instance $inst --vdpa vdpa0 $*"
	minivmm --vlud "$SOCK" --instance "$inst" --vdpa vdpa0 "$@" > "$tag.out" 2> "$tag.log" &
	VMM_PID=$!
	n=0
	while ! vctl instances 2> /dev/null | grep -q "$inst" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
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
	expect "$tag/verdict-result-ok" "$(jstr "$tag.verdict" result)" = ok
	expect "$tag/verdict-path" "$(jstr "$tag.verdict" path)" = "$path"
	expect "$tag/verdict-mode" "$(jstr "$tag.verdict" mode)" = "$mode"
	if grep -q '"moved_ok":true' "$tag.verdict"; then t_ok "$tag/verdict-vmpin-moved-ok"; else t_fail "$tag/verdict-vmpin-moved-ok" "moved_ok not true"; fi
	st=$(jnum "$tag.verdict" status)
	expect "$tag/driver-ok-after" "$((${st:-0} & 4))" -eq 4
	exp=$(jnum "$tag.verdict" expected_kb)
	if [ "$pin" = pa ]; then expect "$tag/expected-kb-nonzero-pa" "$exp" -gt 0; else expect "$tag/expected-kb-zero-va" "$exp" -eq 0; fi
	expect "$tag/old-before-is-expected" "$(jnum "$tag.verdict" old_before_kb)" -eq "$exp"
	expect "$tag/old-before-is-vmpin-read-here" "$pin0" -eq "$exp"
	expect "$tag/new-after-is-expected" "$(jnum "$tag.verdict" new_after_kb)" -eq "$exp"
	npid=$(jnum "$tag.verdict" new_pid)
	if [ "$mode" = exec ]; then
		expect "$tag/exec-same-pid" "$npid" -eq "$old_pid"
	else
		expect "$tag/transfer-other-pid" "$npid" -ne "$old_pid"
		expect "$tag/old-after-dropped" "$(jnum "$tag.verdict" old_after_kb)" -eq 0
	fi
	expect "$tag/vmpin-of-new-read-here" "$(vmpin "$npid")" -eq "$exp"
	expectf "$tag/pause-measured" "$(jnum "$tag.verdict" pause_ms)" '>' 0
	expectf "$tag/daemon-time-measured" "$(jnum "$tag.verdict" daemon_ms)" '>' 0
	vctl --json instances > "$tag.inst" 2>&1
	ientry=$(tr -d ' \n' < "$tag.inst" | grep -o "\"name\":\"$inst\"[^}]*")
	if echo "$ientry" | grep -q '"state":"attached"' && echo "$ientry" | grep -q "\"pid\":$npid[,}]*"; then
		t_ok "$tag/instance-attached-to-new"
	else
		t_fail "$tag/instance-attached-to-new" "$(cat "$tag.inst")"
	fi
	fd1=$(nfds "$VLUD_PID")
	expect "$tag/no-fd-leak-in-daemon" "$fd1" -eq "$fd0"
	VERDICT_EXP=$exp VERDICT_PAUSE=$(jnum "$tag.verdict" pause_ms) NEW_PID=$npid
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
	if grep -q "vlud-verdict: .*\"result\":\"ok\"" "$1.log"; then t_ok "$1/client-got-verdict-ok"; else t_fail "$1/client-got-verdict-ok" "no ok verdict in minivmm's log"; fi
}

# run_update_scenario MODE PATH PINNING: the whole happy-path scenario
run_update_scenario() {
	start_vlud '"update": { "allow_memlock_raise": true }'
	start_vmm run vm0 --mem 64M --duration 7 --pause-frames 8
	update_ok run vm0 "$1" "$2" "$3"
	wait_vmm run
	check_vmm_after run "$2"
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
	n=0
	while [ -d "/proc/$NEW_PID" ] && ! grep -q "successor pid $NEW_PID ended" vlud.log && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
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
	n=0
	while ! grep -q "running:" big.log 2> /dev/null && [ $n -lt 600 ] && kill -0 "$VMM_PID" 2> /dev/null; do
		sleep 0.2
		n=$((n + 1))
	done
	vlu-ping "$SOCK" big 180 > ping.out 2> ping.err &
	ping_pid=$!
	n=0
	while ! grep -q subscribed ping.out 2> /dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
	vctl --json --timeout 170000 call update.start '{"instance":"big","mode":"exec","path":"C"}' > big.verdict 2>&1
	urc=$?
	wait "$ping_pid"
	prc=$?
	sed 's/^/[vlu-ping] /' ping.out ping.err
	sed 's/^/[big verdict] /' big.verdict
	expect big/update.start-exit-0 "$urc" -eq 0
	expect big/verdict-result-ok "$(jstr big.verdict result)" = ok
	rel=$(jnum big.verdict release_ms)
	expectf big/release-ms-measured "$rel" '>' 0
	expect big/vlu-ping-saw-the-update-complete "$prc" -eq 0
	expect big/status-calls-during-claim "$(sed -n 's/.*claim_calls=\([0-9]*\).*/\1/p' ping.out)" -gt 0
	half=$(awk -v r="${rel:-0}" 'BEGIN { print r / 2 }')
	expectf big/status-during-release-below-half-release-ms "$(sed -n 's/.*claim_max_ms=\([0-9.]*\).*/\1/p' ping.out)" '<' "$half"
	# the release is no longer vlud's own time
	expectf big/daemon-ms-below-release-ms "$(jnum big.verdict daemon_ms)" '<' "${rel:-0}"
	kill -TERM "$VMM_PID" 2> /dev/null
	wait "$VMM_PID"
	sed 's/^/[big] /' big.log
	stop_vlud
}
