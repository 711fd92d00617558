#!/bin/sh
# update-daemon-killed: vlud is killed (SIGKILL) and restarted with its fd store, while idle and in the
# middle of a live update.  vlud runs under vlu-fdstore (tests/vm/guest/vlu-fdstore.c: the fd-store part
# of PID 1, as vlud.socket + vlud.service would under systemd), minivmm --vlud runs traffic.
#   idle     no update: vlud killed and restarted: every held fd adopted (count and names), the VMM
#            reattaches by itself (reattach:true), nothing reported (no last verdict), traffic unaffected
#   in-save  update.start (exec mode, path C) with the VMM stopped in phase save (MINIVMM_TEST_STOP_AT=save,
#            so vlud has SUSPENDed the device and waits for update.saved); vlud killed: the restarted vlud
#            RESUMEs the device (it was never reset: the old VMM still owns it), records the verdict
#            failed "vlud restarted during the update (phase save): ..." (update.status), refuses a claim of
#            that update clearly, keeps every fd (count, names, the same fd store entries), VmPin unchanged;
#            the VMM, continued, finds vlud gone, takes its datapath back and reattaches: its traffic runs
#            again with no frame lost, and the restarted vlud leaks no fd
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 360
. /scenarios/lib/update.sh
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
attached_pid() { vctl --json instances | tr -d ' \n' | grep -o "\"name\":\"vm0\"[^}]*" | grep '"state":"attached"' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
wait_attached() { # wait_attached PID
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

start_vlud_fdstore
expect fdstore/state-memfd-stored "$(grep -c '^state$' "$FDS_DIR/store")" -eq 1

echo "# vm0: MINIVMM_TEST_STOP_AT=save minivmm --vlud $SOCK --instance vm0 --vdpa vdpa0 --mem 64M --duration 0 --pause-frames 8"
MINIVMM_TEST_STOP_AT=save minivmm --vlud "$SOCK" --instance vm0 --vdpa vdpa0 --mem 64M --duration 0 --pause-frames 8 > vm0.out 2> vm0.log &
VMM_PID=$!
n=0
while ! grep -q "running:" vm0.log 2> /dev/null && [ $n -lt 300 ] && kill -0 "$VMM_PID" 2> /dev/null; do sleep 0.1; n=$((n + 1)); done
sleep 1 # fd.store and vmm.mappings after the bring-up
wait_attached "$VMM_PID" && t_ok setup/vmm-attached || t_fail setup/vmm-attached "$(vctl instances 2>&1 | tr '\n' ' ')"
held_names > held0.txt
sed 's/^/[held before] /' held0.txt
expect setup/six-fds-held "$(wc -l < held0.txt)" -eq 6
st0=$(store_names)
expect setup/fd-store-has-every-held-fd "$st0" -eq 6
pin0=$(vmpin "$VMM_PID")
expect setup/vmpin-pinned "$pin0" -gt 0

# ---- idle: no update running
kill_vlud idle
held_names > held1.txt
if cmp -s held0.txt held1.txt; then t_ok idle/every-fd-adopted-same-names; else t_fail idle/every-fd-adopted-same-names "$(diff held0.txt held1.txt | tr '\n' ' ')"; fi
expect idle/fd-store-unchanged "$(store_names)" -eq "$st0"
if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok idle/startup-adopted-6; else t_fail idle/startup-adopted-6 "$(grep start-up vlud.log | tail -1)"; fi
vctl --json call update.status '{"instance":"vm0"}' > idle.ustatus 2>&1
sed 's/^/[idle update.status] /' idle.ustatus
if grep -q '"running":null' idle.ustatus && grep -q '"last":null' idle.ustatus; then t_ok idle/nothing-reported; else t_fail idle/nothing-reported "$(cat idle.ustatus)"; fi
if grep -q "restarted during the update" vlud.log; then t_fail idle/no-update-verdict-logged "$(grep 'restarted during' vlud.log)"; else t_ok idle/no-update-verdict-logged; fi
wait_attached "$VMM_PID" && t_ok idle/vmm-reattached-itself || t_fail idle/vmm-reattached-itself "$(vctl instances 2>&1 | tr '\n' ' ')"
if grep -q "vlud: reattached" vm0.log; then t_ok idle/vmm-logged-reattach; else t_fail idle/vmm-logged-reattach "no 'vlud: reattached' in its log"; fi
expect idle/vmpin-unchanged "$(vmpin "$VMM_PID")" -eq "$pin0"

# ---- an update in phase save (device suspended by vlud)
vctl --json call update.start '{"instance":"vm0","mode":"exec","path":"C","wait":false}' > upd.start 2>&1
sed 's/^/[update.start] /' upd.start
uid=$(jnum upd.start id)
expect save/update-started "$uid" -gt 0
n=0
while ! grep -q "^State:.*stopped" "/proc/$VMM_PID/status" 2> /dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
grep -q "^State:.*stopped" "/proc/$VMM_PID/status" && t_ok save/vmm-stopped-in-save || t_fail save/vmm-stopped-in-save "$(grep State "/proc/$VMM_PID/status")"
vctl --json call update.status '{"instance":"vm0"}' > save.running 2>&1
expect save/running-in-phase-save "$(tr -d ' \n' < save.running | grep -o '"running":{[^}]*' | grep -o '"phase":"[a-z]*"' | head -1)" = '"phase":"save"'
kill_vlud save
vlud2=$(vlud_pid)
fd_base=$(nfds "$vlud2")
if grep -q "start-up: 1 instances restored, 6 fds adopted, 0 dropped, 0 lost" vlud.log; then t_ok save/startup-adopted-6; else t_fail save/startup-adopted-6 "$(grep start-up vlud.log | tail -1)"; fi
vctl --json call update.status '{"instance":"vm0"}' > save.ustatus 2>&1
sed 's/^/[update.status after the restart] /' save.ustatus
expect save/no-update-running "$(grep -c '"running":null' save.ustatus)" -eq 1
expect save/verdict-failed "$(jstr save.ustatus result)" = failed
expect save/verdict-id "$(jnum save.ustatus id)" -eq "$uid"
expect save/verdict-phase "$(jstr save.ustatus phase)" = save
if grep -q '"error":"vlud restarted during the update (phase save): ' save.ustatus; then t_ok save/verdict-reason; else t_fail save/verdict-reason "no such error"; fi
if tr -d ' \n' < save.ustatus | grep -q '"resumed":\["vdpa:vdpa0"\]'; then t_ok save/device-resumed; else t_fail save/device-resumed "resumed list wrong"; fi
st=$(tr -d ' \n' < save.ustatus | sed -n 's/.*"status_after":\[{"device":"vdpa:vdpa0","status":\([0-9]*\)}.*/\1/p')
expect save/device-driver-ok-after-restart "$((${st:-0} & 4))" -eq 4
if grep -q "update $uid of vm0: failed: vlud restarted during the update (phase save)" vlud.log; then t_ok save/verdict-logged; else t_fail save/verdict-logged "not in vlud's log"; fi
# a claim of the update that died with the old vlud: refused, with the reason
vctl --json call update.claim '{"instance":"vm0","token":"00000000000000000000000000000000"}' > save.claim 2>&1
sed 's/^/[update.claim] /' save.claim
if grep -q "PermissionDenied" save.claim && grep -q "ended when vlud restarted (phase save)" save.claim; then t_ok save/claim-refused-clearly; else t_fail save/claim-refused-clearly "$(cat save.claim)"; fi
held_names > held2.txt
if cmp -s held0.txt held2.txt; then t_ok save/every-fd-kept-same-names; else t_fail save/every-fd-kept-same-names "$(diff held0.txt held2.txt | tr '\n' ' ')"; fi
expect save/fd-store-unchanged "$(store_names)" -eq "$st0"
expect save/vmpin-unchanged "$(vmpin "$VMM_PID")" -eq "$pin0"
# the old VMM goes on: update.saved fails (vlud is gone), it takes its datapath back and reattaches
kill -CONT "$VMM_PID"
wait_attached "$VMM_PID" && t_ok save/vmm-reattached || t_fail save/vmm-reattached "$(vctl instances 2>&1 | tr '\n' ' ')"
if grep -q "vlud is gone (update.saved" vm0.log; then t_ok save/vmm-saw-vlud-gone; else t_fail save/vmm-saw-vlud-gone "not in its log"; fi
sleep 3 # traffic after the resume
expect save/vmpin-unchanged-after "$(vmpin "$VMM_PID")" -eq "$pin0"
kill -TERM "$VMM_PID"
wait "$VMM_PID"
sed 's/^/[vm0] /' vm0.log vm0.out
f=vm0.out
expect vmm/reattached-twice "$(val "$f" vlud: reattaches)" -eq 2
expect vmm/connected-at-end "$(val "$f" vlud: connected)" -eq 1
expect vmm/update1-recorded-not-ok "$(val "$f" "update 1:" ok)" -eq 0
expect vmm/zero-lost "$(val "$f" traffic: lost)" -eq 0
expect vmm/zero-dup "$(val "$f" traffic: dup)" -eq 0
expect vmm/all-echoed "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
expect vmm/update-lost-0 "$(val "$f" "update 1:" lost)" -eq 0
expectf vmm/echo-after-the-resume "$(val "$f" "update 1:" pause_echo_gap_ms)" '>' 0
echo "# lost frames: traffic $(val "$f" traffic: lost), during the update $(val "$f" "update 1:" lost); frames posted in the pause $(val "$f" "update 1:" sent_in_pause)"
# the VMM is gone (instance orphaned, no connection): the restarted vlud has the fds it had right after
# the restart
n=0
while [ "$(nfds "$vlud2")" -ne "$fd_base" ] && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
expect save/no-fd-leak-in-restarted-vlud "$(nfds "$vlud2")" -eq "$fd_base"
held_names > held3.txt
if cmp -s held0.txt held3.txt; then t_ok end/every-fd-still-held; else t_fail end/every-fd-still-held "$(diff held0.txt held3.txt | tr '\n' ' ')"; fi

vctl release vm0 > /dev/null 2>&1
kill -TERM "$FDS_PID"
wait "$FDS_PID"
expect end/vlu-fdstore-clean-exit "$?" -eq 0
sed 's/^/[vlud] /' vlud.log
[ "$FAILS" -eq 0 ]
