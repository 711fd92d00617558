#!/bin/sh
# update-faults-late: a process that misses its deadline while it holds (or is about to take) the instance's
# fds is killed by vlud (update.kill_failed_successor, default true) and the update rolls back as if it had
# died (docs/UPDATE.md, Rollback).  Stock modules, path C, so every rollback also re-pins.
#   exec-late-ready        exec mode: the new image claims, restores and stops before update.ready; at the
#                          commit deadline vlud kills it and restarts the previous binary, which claims the
#                          device back and runs traffic (rolled-back, restarted_previous, killed_pid)
#   transfer-late-claimed  transfer mode, operator-named successor stops right after its claim: killed at
#                          the deadline; vlud releases and reopens the device and the old VMM takes it back
#   transfer-spawned-never-claims  transfer mode, the successor vlud spawns never connects: killed at the
#                          claim deadline; the old VMM (still the owner) is resumed and runs on
#   early-claim            a named successor claims before the old VMM (stopped at save) has saved: Busy,
#                          nothing changes, libvlu asks again, and once the old VMM saves the claim succeeds: ok
#   policy-off             the same late successor with update.kill_failed_successor false: not killed, the
#                          update ends failed with every fd kept, the successor still stopped with its copies
# Each: the late process is gone (or not, policy off), the verdict names it, who owns the instance, device
# DRIVER_OK, the owner's VmPin is the guest RAM, traffic runs on with nothing lost, no fd leaked in vlud.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
UPD_CLAIM_MS=5000
UPD_COMMIT_MS=5000

start_vlud '"update": { "allow_memlock_raise": true }'
. /scenarios/lib/faults.sh
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2> /dev/null; }
# old_runs_on TAG OLD PIN0: the old VMM owns the instance again, the device runs, its traffic lost nothing
old_runs_on() {
	expect "$1/instance-back-to-old" "$(inpid "${2#*:}")" -eq "${2%%:*}"
	st=$(devstatus)
	expect "$1/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	expect "$1/old-vmpin-as-before" "$(vmpin "${2%%:*}")" -eq "$3"
	wait_vmm "$1"
	expect "$1/old-update-recorded-not-ok" "$(val "$1.out" "update 1:" ok)" -eq 0
	expect "$1/old-only-the-update-failed" "$(grep '^fail:' "$1.out" | grep -vc 'update 1')" -eq 0
	expect "$1/old-traffic-none-lost" "$(val "$1.out" traffic: lost)" -eq 0
	expect "$1/old-traffic-all-echoed" "$(val "$1.out" traffic: echoed)" -eq "$(val "$1.out" traffic: sent)"
	expect "$1/old-traffic-ran-on" "$(val "$1.out" traffic: sent)" -gt "$RAN_ON_MIN"
}
# named_successor TAG INSTANCE FIFO STOP-AT: a shell that becomes minivmm (same pid) with the token it reads
named_successor() {
	rm -f "$3"
	mkfifo "$3"
	sh -c "read tok < $3; MINIVMM_TEST_STOP_AT=$4 VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance $2 --vdpa vdpa0 --mem 32M" \
		> "$1-succ.out" 2> "$1-succ.log" &
	SUCC=$!
}

# ---- exec mode: the new image stops before update.ready; the commit deadline kills it
T=exec-late-ready
printf '#!/bin/sh\nexport MINIVMM_TEST_STOP_AT=ready\nexec minivmm "$@"\n' > /tmp/late-ready.sh
chmod 755 /tmp/late-ready.sh
L0=$(wc -l < vlud.log)
start_vmm $T vm1 --mem 32M --duration 24
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
vctl --json --timeout 40000 call update.start '{"instance":"vm1","mode":"exec","binary":"/tmp/late-ready.sh"}' > $T.reply 2>&1
expect $T/update-not-ok-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
if grep -q "test: stopping at ready" $T.log; then t_ok $T/new-image-stopped-before-ready; else t_fail $T/new-image-stopped-before-ready "not in its log"; fi
if gone "$OLD"; then t_ok $T/late-image-killed; else t_fail $T/late-image-killed "pid $OLD still there"; fi
wait "$OLD" 2> /dev/null
if grep -q "killed pid $OLD (SIGKILL) in phase restore: timeout in phase restore" vlud.log; then t_ok $T/kill-logged; else t_fail $T/kill-logged "not in vlud.log"; fi
status vm1 $T.status
expect $T/killed-pid-in-verdict "$(jget .last.killed_pid $T.status)" -eq "$OLD"
if jget .last.error $T.status | grep -q "timeout in phase restore: .*$OLD missed its deadline and was killed"; then t_ok $T/reason-names-the-kill; else t_fail $T/reason-names-the-kill "reason"; fi
check_restarted $T vm1 "$L0" "$RAN_ON_MIN"
expect $T/restarted-is-a-new-process "$(inpid vm1)" -ne "$OLD"
expect $T/restarted-vmpin-as-before "$(jget .last.vmpin.new_after_kb $T.status)" -eq "$pin0"
after $T vm1

# ---- transfer mode: the operator-named successor stops right after its claim; the commit deadline kills it
T=transfer-late-claimed
start_vmm $T vm2 --mem 32M --duration 20
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
named_successor $T vm2 late2.fifo claimed
vctl --json call update.start "{\"instance\":\"vm2\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
expect $T/path-c "$(jget .path $T.reply)" = C
jget .token $T.reply > late2.fifo
wait_stopped "$SUCC"
if grep -q "claimed by pid $SUCC" vlud.log; then t_ok $T/claimed; else t_fail $T/claimed "no claim in the log"; fi
wait_update_end vm2
sleep 0.3
if gone "$SUCC"; then t_ok $T/late-successor-killed; else t_fail $T/late-successor-killed "pid $SUCC still there"; fi
wait "$SUCC" 2> /dev/null
status vm2 $T.status
expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
expect $T/killed-pid-in-verdict "$(jget .last.killed_pid $T.status)" -eq "$SUCC"
if jget .last.error $T.status | grep -q "the successor $SUCC missed its deadline and was killed"; then t_ok $T/reason-names-the-kill; else t_fail $T/reason-names-the-kill "reason"; fi
if jget .last.error $T.status | grep -q "brought back to the old VMM (pid $OLD)"; then t_ok $T/reason-brought-back; else t_fail $T/reason-brought-back "reason"; fi
old_runs_on $T "$OLD:vm2" "$pin0"
after $T vm2

# ---- transfer mode: the successor vlud spawns never connects; the claim deadline kills it
T=transfer-spawned-never-claims
printf '#!/bin/sh\nexec sleep 60\n' > /tmp/never.sh
chmod 755 /tmp/never.sh
start_vmm $T vm3 --mem 32M --duration 16
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
vctl --json --timeout 40000 call update.start '{"instance":"vm3","mode":"transfer","binary":"/tmp/never.sh"}' > $T.reply 2>&1
expect $T/update-not-ok-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
status vm3 $T.status
expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
SP=$(jget .last.killed_pid $T.status)
expect $T/killed-the-spawned-successor "${SP:-0}" -eq "$(jget .last.new_pid $T.status)"
if gone "$SP"; then t_ok $T/spawned-successor-gone; else t_fail $T/spawned-successor-gone "pid $SP still there"; fi
if jget .last.error $T.status | grep -q "timeout in phase claim: the successor $SP missed its deadline and was killed"; then t_ok $T/reason-names-the-kill; else t_fail $T/reason-names-the-kill "reason"; fi
old_runs_on $T "$OLD:vm3" "$pin0"
after $T vm3

# ---- a named successor that claims before the old VMM has saved (it got the token at once): Busy, nothing
# changes, libvlu asks again; the old VMM (stopped at save) goes on, saves, and the claim succeeds: ok
T=early-claim
export MINIVMM_TEST_STOP_AT=save
start_vmm $T vm5 --mem 32M --duration 16
unset MINIVMM_TEST_STOP_AT
OLD=$VMM_PID
rm -f early.fifo
mkfifo early.fifo
sh -c "read tok < early.fifo; VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm5 --vdpa vdpa0 --mem 32M --duration 4" \
	> $T-succ.out 2> $T-succ.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm5\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
wait_stopped "$OLD"
jget .token $T.reply > early.fifo
wait_until 100 grep -q "before phase claim (phase save): Busy" vlud.log
status vm5 $T.status0
expect $T/still-in-save "$(jget .running.phase $T.status0)" = save
if grep -q "claim by pid $SUCC before phase claim (phase save): Busy" vlud.log; then t_ok $T/early-claim-answered-busy; else t_fail $T/early-claim-answered-busy "no Busy answer in vlud.log"; fi
if jget .running $T.status0 | grep -q '^{'; then t_ok $T/nothing-changed-update-runs; else t_fail $T/nothing-changed-update-runs "no update running"; fi
kill -CONT "$OLD"
wait "$SUCC"
expect $T/successor-exit-0 "$?" -eq 0
sed "s/^/[$T succ] /" $T-succ.log $T-succ.out
wait_update_end vm5
status vm5 $T.status
expect $T/ok "$(jget .last.result $T.status)" = ok
expect $T/successor-is-new-pid "$(jget .last.new_pid $T.status)" -eq "$SUCC"
expect $T/successor-traffic-none-lost "$(val $T-succ.out traffic: lost)" -eq 0
wait "$OLD" 2> /dev/null
after $T vm5

# ---- policy off: the late successor is left alone; the update fails with every fd kept
stop_vlud > /dev/null
start_vlud '"update": { "allow_memlock_raise": true, "kill_failed_successor": false }'
FD0=$(nfds "$VLUD_PID")
T=policy-off
start_vmm $T vm4 --mem 32M --duration 14
OLD=$VMM_PID
named_successor $T vm4 late4.fifo claimed
vctl --json call update.start "{\"instance\":\"vm4\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
jget .token $T.reply > late4.fifo
wait_stopped "$SUCC"
wait_update_end vm4
status vm4 $T.status
expect $T/failed "$(jget .last.result $T.status)" = failed
if jget .last.killed_pid $T.status > /dev/null; then t_fail $T/nobody-killed "killed_pid in the verdict"; else t_ok $T/nobody-killed; fi
if grep -q '^State:.*T' "/proc/$SUCC/status" 2> /dev/null; then t_ok $T/successor-still-there-stopped; else t_fail $T/successor-still-there-stopped "pid $SUCC gone"; fi
if jget .last.error $T.status | grep -q "timeout in phase restore" && jget .last.error $T.status | grep -q "every fd kept"; then t_ok $T/reason-timeout-fds-kept; else t_fail $T/reason-timeout-fds-kept "reason"; fi
expect $T/all-6-fds-kept "$(held vm4)" -ge 6
kill -KILL "$SUCC" "$OLD" 2> /dev/null
wait "$SUCC" "$OLD" 2> /dev/null
after $T vm4

stop_vlud
exit $((FAILS > 0))
