#!/bin/sh
# update-faults-c: live-update fault cases on stock modules (path C), each asserting the end state: who owns
# the device, whether traffic runs again, VmPin accounted, the update's verdict, and no fd leaked in the
# daemon (/proc/<vlud>/fd counted against a baseline taken with no client connected).
#   missing-binary   exec of a binary that does not exist: refused up front, nothing touched, traffic unaffected
#   exec-fails       the exec itself fails (ENOEXEC): the VMM aborts, vlud RESUMEs, traffic runs on
#   wrong-claim      transfer mode with an operator-named successor: claims with the right token from the
#                    wrong pid, and with a wrong token from the right pid, are refused and change nothing; the
#                    successor then dies: the old VMM takes the device back (it had closed its copy: it gets
#                    vlud's back) and its traffic runs on with nothing lost
#   vmm-killed-save  the VMM is killed while it should save: devices resumed, instance orphaned, fds kept
#   never-claims     the exec'ed image never connects: claim timeout; vlud restarts the previous binary,
#                    which claims the device back from the saved state (result rolled-back) and runs traffic;
#                    meanwhile (instance orphaned; attached to the kept connection the exec'ed program
#                    holds when minivmm keeps it, as in update-faults-a) a reattach and an fd.remove are
#                    refused (Busy)
#   killed-after-claim  the successor is killed after its claim: the previous binary is restarted likewise
#   daemon-stops     vlud gets SIGTERM while an update waits in phase save (device suspended): it RESUMEs
#                    and sends the verdict (failed) to the waiting starter before it exits
#   transfer-killed-after-claim (patched modules only, path A): the named successor is killed after its
#                    claim; the instance returns to the old VMM, which re-owns the device and runs on
#   transfer-c-killed-after-claim (stock modules only, path C): likewise; vlud releases and reopens the
#                    device, the old VMM takes the fresh fd (re-pin) and runs on (result rolled-back)
# After each: vluctl release, and a fresh minivmm gets the device and runs traffic (the device is usable).
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 420
. /scenarios/lib/update.sh
UPD_CLAIM_MS=10000	# a slow TCG guest: room for the refused claims before the deadline

start_vlud '"update": { "allow_memlock_raise": true }'
# FD0 (the no-client baseline), status, after, check_restarted (held, instate, devstatus: lib/vlud.sh)
. /scenarios/lib/faults.sh

# ---- missing binary: refused before anything is touched
T=missing-binary
start_vmm $T vm1 --mem 32M --duration 4
vctl --json call update.start '{"instance":"vm1","mode":"exec","binary":"/nonexistent/minivmm"}' > $T.reply 2>&1
expect $T/refused-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
expect $T/class-unsupported "$(jget .error.class $T.reply)" = Unsupported
if jget .error.desc $T.reply | grep -q "nonexistent"; then t_ok $T/reason-names-binary; else t_fail $T/reason-names-binary "no reason"; fi
status vm1 $T.status
if jhas .running $T.status null && jhas .last $T.status null; then t_ok $T/no-update-ran; else t_fail $T/no-update-ran "status shows an update"; fi
wait_vmm $T
expect $T/vmm-exit-0 "$RC" -eq 0
expect $T/traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
expect $T/no-update-in-vmm "$(val $T.out traffic: updates)" -eq 0
after $T vm1

# ---- exec of the successor fails (a file with the exec bit that is no executable: ENOEXEC): the VMM asks
# for a rollback (update.abort), vlud RESUMEs, the VMM carries on
T=exec-fails
printf 'this is not an executable\n' > /tmp/broken-vmm
chmod 755 /tmp/broken-vmm
start_vmm $T vm6 --mem 32M --duration 6
pin0=$(vmpin "$VMM_PID")
vctl --json --timeout 30000 call update.start '{"instance":"vm6","mode":"exec","binary":"/tmp/broken-vmm"}' > $T.reply 2>&1
expect $T/update-not-ok-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
status vm6 $T.status
expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
if jget .last.error $T.status | grep -q "aborted by the VMM"; then t_ok $T/reason-aborted-by-vmm; else t_fail $T/reason-aborted-by-vmm "reason"; fi
expect $T/still-attached "$(instate vm6)" = attached
expect $T/vmpin-unchanged "$(vmpin "$VMM_PID")" -eq "$pin0"
st=$(devstatus)
expect $T/device-driver-ok "$((${st:-0} & 4))" -eq 4
wait_vmm $T
if grep -q "exec: Exec format error" $T.log; then t_ok $T/exec-failed-in-vmm; else t_fail $T/exec-failed-in-vmm "no exec error in the log"; fi
expect $T/update-recorded-not-ok "$(val $T.out "update 1:" ok)" -eq 0
expect $T/only-the-update-failed "$(grep '^fail:' $T.out | grep -vc 'update 1')" -eq 0
expect $T/traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
expect $T/traffic-all-echoed "$(val $T.out traffic: echoed)" -eq "$(val $T.out traffic: sent)"
expect $T/traffic-ran-on "$(val $T.out traffic: sent)" -gt "$RAN_ON_MIN"
after $T vm6

# ---- wrong token / wrong pid, then the named successor dies: the old VMM takes back (transfer, path C)
T=wrong-claim
start_vmm $T vm2 --mem 32M --duration 14
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
rm -f succ.fifo
mkfifo succ.fifo
# the named successor: a shell that becomes minivmm (same pid) with whatever token it is given
sh -c "read tok < succ.fifo; VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm2 --vdpa vdpa0 --mem 32M" \
	> $T-succ.out 2> $T-succ.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm2\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
sed "s/^/[$T reply] /" $T.reply
TOKEN=$(jget .token $T.reply)
expect $T/token-128-bit "${#TOKEN}" -eq 32
sleep 0.5
status vm2 $T.status1
expect $T/waiting-for-claim "$(jget .running.phase $T.status1)" = claim
vctl --json call update.claim "{\"instance\":\"vm2\",\"token\":\"$TOKEN\"}" > $T.claim1 2>&1
expect $T/right-token-wrong-pid-refused "$?" -eq 1
expect $T/refusal-class "$(jget .error.class $T.claim1)" = PermissionDenied
status vm2 $T.status2
expect $T/nothing-changed-still-claim "$(jget .running.phase $T.status2)" = claim
if grep -q "claim by pid .* refused (wrong pid" vlud.log; then t_ok $T/refusal-logged; else t_fail $T/refusal-logged "not in the log"; fi
echo 0123456789abcdef0123456789abcdef > succ.fifo
wait $SUCC
src=$?
sed "s/^/[$T succ] /" $T-succ.log
expect $T/wrong-token-successor-fails "$src" -ne 0
if grep -q "claim by pid $SUCC uid 0 refused (wrong token" vlud.log; then t_ok $T/wrong-token-refused-logged; else t_fail $T/wrong-token-refused-logged "not in the log"; fi
sleep 0.5
status vm2 $T.status3
expect $T/rolled-back "$(jget .last.result $T.status3)" = rolled-back
if jget .last.error $T.status3 | grep -q "successor $SUCC exited"; then t_ok $T/reason-successor-exited; else t_fail $T/reason-successor-exited "reason"; fi
expect $T/old-still-attached "$(instate vm2)" = attached
st=$(devstatus)
expect $T/device-driver-ok "$((${st:-0} & 4))" -eq 4
expect $T/old-vmpin-unchanged "$(vmpin "$OLD")" -eq "$pin0"
wait_vmm $T
# minivmm counts the rolled-back update as a failed one (exit 1); nothing else may have failed
expect $T/old-vmm-update-recorded-not-ok "$(val $T.out "update 1:" ok)" -eq 0
expect $T/old-vmm-only-the-update-failed "$(grep '^fail:' $T.out | grep -vc 'update 1')" -eq 0
expect $T/old-traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
expect $T/old-traffic-all-echoed "$(val $T.out traffic: echoed)" -eq "$(val $T.out traffic: sent)"
expect $T/old-traffic-ran-on "$(val $T.out traffic: sent)" -gt "$RAN_ON_MIN"
after $T vm2

# ---- the VMM is killed in phase save (it is stopped, so it never saves)
T=vmm-killed-save
start_vmm $T vm3 --mem 32M --duration 30
kill -STOP "$VMM_PID"
vctl --json call update.start '{"instance":"vm3","mode":"exec","wait":false}' > $T.reply 2>&1
expect $T/started "$?" -eq 0
sleep 0.5
kill -KILL "$VMM_PID"
wait "$VMM_PID" 2> /dev/null
sleep 0.5
status vm3 $T.status
expect $T/result-failed "$(jget .last.result $T.status)" = failed
if jget .last.error $T.status | grep -q "exited in phase save"; then t_ok $T/reason-exited-in-save; else t_fail $T/reason-exited-in-save "reason"; fi
expect $T/instance-orphaned "$(instate vm3)" = orphaned
expect $T/all-6-fds-kept "$(held vm3)" -ge 6
st=$(devstatus)
expect $T/device-resumed-driver-ok "$((${st:-0} & 4))" -eq 4
after $T vm3

# ---- the exec'ed image never connects: claim timeout
T=never-claims
printf '#!/bin/sh\nexec sleep 60\n' > /tmp/never.sh
chmod 755 /tmp/never.sh
L0=$(wc -l < vlud.log)
# minivmm keeps its vlud connection across the exec (vlu_update_exec_keep) unless MINIVMM_NO_KEEP_CONN=1:
# update-faults-a runs this case with the connection kept (FAULTS_NEVER_CLAIMS_KEPT=1), update-faults-c
# without, so both hand-overs meet an image that never claims
if [ "${FAULTS_NEVER_CLAIMS_KEPT:-0}" = 1 ]; then
	start_vmm $T vm4 --mem 32M --duration 24
else
	export MINIVMM_NO_KEEP_CONN=1
	start_vmm $T vm4 --mem 32M --duration 24
	unset MINIVMM_NO_KEEP_CONN
fi
vctl --json --timeout 30000 call update.start '{"instance":"vm4","mode":"exec","binary":"/tmp/never.sh"}' > $T.reply 2>&1 &
UPC=$!
wait_until 100 update_in_phase vm4 exec
if [ "${FAULTS_NEVER_CLAIMS_KEPT:-0}" = 1 ]; then
	# the exec'ed program holds the kept connection (it got VLU_CONNECTION): the instance stays attached to
	# that connection, and only a claim with the token on it (or the claim timeout) moves it on
	wait_until 50 test "$(tr '\0' '\n' < "/proc/$VMM_PID/environ" 2> /dev/null | grep -c '^VLU_CONNECTION=')" -eq 1
	status vm4 $T.status0
	expect $T/exec-image-got-the-connection "$(tr '\0' '\n' < "/proc/$VMM_PID/environ" | grep -c '^VLU_CONNECTION=')" -eq 1
	expect $T/attached-on-the-kept-connection "$(instate vm4)" = attached
else
	# the old image's connection closed at the exec: the instance is orphaned until the claim
	wait_until 50 instate_is vm4 orphaned
	status vm4 $T.status0
	expect $T/orphaned-by-the-exec "$(instate vm4)" = orphaned
fi
# either way nobody else may adopt the instance or take its fds
expect $T/in-phase-exec "$(jget .running.phase $T.status0)" = exec
vctl --json call instance.register '{"name":"vm4","reattach":true}' > $T.reattach 2>&1
expect $T/reattach-during-update-refused "$?" -eq 1
sed "s/^/[$T reattach] /" $T.reattach
expect $T/reattach-refused-busy "$(jget .error.class $T.reattach)" = Busy
vctl --json call fd.remove '{"instance":"vm4","names":["vdpa:vdpa0"]}' > $T.remove 2>&1
expect $T/fd-remove-during-update-refused "$?" -eq 1
sed "s/^/[$T remove] /" $T.remove
expect $T/fd-remove-refused-busy "$(jget .error.class $T.remove)" = Busy
wait "$UPC"
expect $T/update-not-ok-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
if jget .error.desc $T.reply | grep -q "timeout in phase exec"; then t_ok $T/reason-claim-timeout; else t_fail $T/reason-claim-timeout "reason"; fi
expect $T/all-6-fds-kept "$(held vm4)" -ge 6
check_restarted $T vm4 "$L0"
kill "$VMM_PID" 2> /dev/null
wait "$VMM_PID" 2> /dev/null
after $T vm4

# ---- the successor is killed after its claim (exec mode)
T=killed-after-claim
printf '#!/bin/sh\nexport MINIVMM_TEST_STOP_AFTER_CLAIM=1\nexec minivmm "$@"\n' > /tmp/stopper.sh
chmod 755 /tmp/stopper.sh
L0=$(wc -l < vlud.log)
start_vmm $T vm5 --mem 32M --duration 16
vctl --json --timeout 30000 call update.start '{"instance":"vm5","mode":"exec","binary":"/tmp/stopper.sh"}' > $T.reply 2>&1 &
UPC=$!
wait_until 100 is_stopped "$VMM_PID"
if grep -q "claimed by pid $VMM_PID" vlud.log; then t_ok $T/claimed; else t_fail $T/claimed "no claim in the log"; fi
kill -KILL "$VMM_PID"
wait "$UPC"
expect $T/update-not-ok-exit-1 "$?" -eq 1
wait "$VMM_PID" 2> /dev/null
sed "s/^/[$T reply] /" $T.reply
if jget .error.desc $T.reply | grep -q "exited in phase restore"; then t_ok $T/reason-died-in-restore; else t_fail $T/reason-died-in-restore "reason"; fi
expect $T/all-6-fds-kept "$(held vm5)" -ge 6
check_restarted $T vm5 "$L0"
after $T vm5

# ---- patched modules (path A): transfer mode, the named successor is killed after its claim: the
# instance returns to the old VMM, which takes the device back (VHOST_NEW_OWNER if needed) and runs on
if [ "${RIG_MODULES:-stock}" = patched ]; then
	T=transfer-killed-after-claim
	start_vmm $T vm7 --mem 32M --duration 8
	OLD=$VMM_PID
	pin0=$(vmpin "$OLD")
	rm -f succ2.fifo
	mkfifo succ2.fifo
	sh -c "read tok < succ2.fifo; MINIVMM_TEST_STOP_AFTER_CLAIM=1 VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm7 --vdpa vdpa0 --mem 32M" \
		> $T-succ.out 2> $T-succ.log &
	SUCC=$!
	vctl --json call update.start "{\"instance\":\"vm7\",\"mode\":\"transfer\",\"path\":\"A\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
	expect $T/started "$?" -eq 0
	jget .token $T.reply > succ2.fifo
	wait_until 100 is_stopped "$SUCC"
	if grep -q "claimed by pid $SUCC" vlud.log; then t_ok $T/claimed; else t_fail $T/claimed "no claim in the log"; fi
	kill -KILL "$SUCC"
	wait "$SUCC" 2> /dev/null
	sleep 0.5
	status vm7 $T.status
	expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
	expect $T/instance-back-to-old "$(instate vm7)" = attached
	if [ "$(inpid vm7)" = "$OLD" ]; then t_ok $T/instance-pid-is-old; else t_fail $T/instance-pid-is-old "not the old pid"; fi
	st=$(devstatus)
	expect $T/device-driver-ok "$((${st:-0} & 4))" -eq 4
	expect $T/old-vmpin-unchanged "$(vmpin "$OLD")" -eq "$pin0"
	wait_vmm $T
	expect $T/old-update-recorded-not-ok "$(val $T.out "update 1:" ok)" -eq 0
	expect $T/old-only-the-update-failed "$(grep '^fail:' $T.out | grep -vc 'update 1')" -eq 0
	expect $T/old-traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
	expect $T/old-traffic-all-echoed "$(val $T.out traffic: echoed)" -eq "$(val $T.out traffic: sent)"
	expect $T/old-traffic-ran-on "$(val $T.out traffic: sent)" -gt "$RAN_ON_MIN"
	after $T vm7
fi

# ---- stock modules (path C): transfer mode, the named successor is killed after its claim: vlud closes its
# copy of the device it had reopened for the successor (the last one: reset, unpin), reopens the node and
# the instance returns to the old VMM, which fd.retrieves the fresh fd, takes it like a path-C successor
# (SET_OWNER, backend features, one batched map = re-pin, vrings from its saved bases, DRIVER_OK) and calls
# update.ready; vlud verifies (DRIVER_OK, the old VMM's VmPin) and ends rolled-back
if [ "${RIG_MODULES:-stock}" = stock ]; then
	T=transfer-c-killed-after-claim
	start_vmm $T vm9 --mem 32M --duration 10
	OLD=$VMM_PID
	pin0=$(vmpin "$OLD")
	FDB=$(nfds "$VLUD_PID")
	rm -f succ3.fifo
	mkfifo succ3.fifo
	sh -c "read tok < succ3.fifo; MINIVMM_TEST_STOP_AFTER_CLAIM=1 VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm9 --vdpa vdpa0 --mem 32M" \
		> $T-succ.out 2> $T-succ.log &
	SUCC=$!
	vctl --json call update.start "{\"instance\":\"vm9\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
	expect $T/started "$?" -eq 0
	sed "s/^/[$T reply] /" $T.reply
	expect $T/path-c "$(jget .path $T.reply)" = C
	jget .token $T.reply > succ3.fifo
	wait_until 100 is_stopped "$SUCC"
	if grep -q "claimed by pid $SUCC" vlud.log; then t_ok $T/claimed; else t_fail $T/claimed "no claim in the log"; fi
	expect $T/old-vmpin-dropped-at-claim "$(vmpin "$OLD")" -eq 0
	kill -KILL "$SUCC"
	wait "$SUCC" 2> /dev/null
	wait_until 150 update_idle vm9
	sleep 0.3
	status vm9 $T.status
	expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
	if jget .last.error $T.status | grep -q "successor $SUCC exited in phase restore"; then t_ok $T/reason-successor-exited; else t_fail $T/reason-successor-exited "reason"; fi
	if jget .last.error $T.status | grep -q "reopened and brought back to the old VMM (pid $OLD)"; then t_ok $T/reason-brought-back; else t_fail $T/reason-brought-back "reason"; fi
	expect $T/instance-back-to-old "$(instate vm9)" = attached
	if [ "$(inpid vm9)" = "$OLD" ]; then t_ok $T/instance-pid-is-old; else t_fail $T/instance-pid-is-old "not the old pid"; fi
	exp=$(jget .last.vmpin.expected_kb $T.status)
	expect $T/expected-is-guest-ram "$exp" -eq 32768
	expect $T/old-vmpin-is-guest-ram-again "$(vmpin "$OLD")" -eq "$exp"
	expect $T/old-vmpin-as-before "$(vmpin "$OLD")" -eq "$pin0"
	st=$(devstatus)
	expect $T/device-driver-ok "$((${st:-0} & 4))" -eq 4
	expect $T/daemon-fds-as-before-update "$(nfds "$VLUD_PID")" -eq "$FDB"
	wait_vmm $T
	sed "s/^/[$T succ] /" $T-succ.log
	if sed -n 's/.*vlud-verdict: //p' $T.log | jhas .result - rolled-back; then t_ok $T/old-vmm-got-verdict; else t_fail $T/old-vmm-got-verdict "no verdict in the old VMM's log"; fi
	expect $T/old-update-recorded-not-ok "$(val $T.out "update 1:" ok)" -eq 0
	expect $T/old-only-the-update-failed "$(grep '^fail:' $T.out | grep -vc 'update 1')" -eq 0
	expect $T/old-traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
	expect $T/old-traffic-none-dup "$(val $T.out traffic: dup)" -eq 0
	expect $T/old-traffic-all-echoed "$(val $T.out traffic: echoed)" -eq "$(val $T.out traffic: sent)"
	expect $T/old-traffic-ran-on "$(val $T.out traffic: sent)" -gt "$RAN_ON_MIN"
	after $T vm9
fi

# ---- vlud stops (SIGTERM) during an update: the VMM is stopped, so the update waits in phase save with
# the device suspended; vlud RESUMEs it and answers the waiting starter with the verdict before it exits
T=daemon-stops
start_vmm $T vm8 --mem 32M --duration 30
kill -STOP "$VMM_PID"
L0=$(wc -l < vlud.log)
vctl --json --timeout 30000 call update.start '{"instance":"vm8","mode":"exec"}' > $T.reply 2>&1 &
UPC=$!
wait_until 100 update_in_phase vm8 save
kill -TERM "$VLUD_PID"
wait "$VLUD_PID"
expect $T/vlud-exit-0 "$?" -eq 0
wait "$UPC"
expect $T/starter-answered-not-ok-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
# vluctl prints the error's class and desc (the verdict itself is under error.verdict on the wire)
if jget .error.desc $T.reply | grep -q "update [0-9]* failed: the daemon is stopping during phase save; devices resumed"; then
	t_ok $T/verdict-failed-devices-resumed-before-exit
else
	t_fail $T/verdict-failed-devices-resumed-before-exit "no verdict naming the resume"
fi
expect $T/no-resume-error "$(tail -n +$((L0 + 1)) vlud.log | grep -c 'RESUME .*:')" -eq 0
kill -KILL "$VMM_PID" 2> /dev/null
wait "$VMM_PID" 2> /dev/null

stop_vlud
exit $((FAILS > 0))
