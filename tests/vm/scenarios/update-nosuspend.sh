#!/bin/sh
# update-nosuspend: a device whose parent has no suspend (the "nosuspend" module set: vdpa_sim without
# .suspend/.resume, tests/vm/kpatches/nosuspend/), like the hardware parents without it:
#   features        the device's backend features are the stock ones without SUSPEND and RESUME (0x14e)
#   not-allowed     update.start refused Unsupported with the reason (nothing touched, traffic runs on)
#   policy-forbids  the request asks for allow_disruptive, the policy (update.allow_disruptive) forbids it:
#                   PermissionDenied (nothing touched)
#   not-asked       the policy allows it, the request does not ask: Unsupported (nothing touched)
#   disruptive      both allow it: an exec-mode update runs without suspending (path C): verdict ok with
#                   disruptive:true and the reason saying no SUSPEND, the device DRIVER_OK after, VmPin moved;
#                   minivmm took the vring bases from the used rings and reports its lost frames
#   transfer        the same in transfer mode (successor spawned by vlud): every happy-path check of
#                   lib/update.sh (VmPin moved from the old process to the new, zero lost, DRIVER_OK, no fd leak)
# flavour: debian
# modules: nosuspend
# use_va: 0
# devices: 1
# timeout: 420
. /scenarios/lib/update.sh
. /scenarios/lib/untouched.sh

# ---- the device: no SUSPEND, no RESUME in its backend features
vdpatest features --backend-features 0x14e
expect features/vdpatest-exit-0 "$?" -eq 0

# refused TAG INSTANCE CLASS REASON-REGEX ARGS-JSON-MEMBERS: update.start refused, nothing touched
refused() {
	pin0=$(vmpin "$VMM_PID")
	fd0=$(nfds "$VLUD_PID")
	vctl --json --timeout 30000 call update.start "{\"instance\":\"$2\",\"mode\":\"exec\"$5}" > $1.reply 2>&1
	expect $1/refused-exit-1 "$?" -eq 1
	sed "s/^/[$1 reply] /" $1.reply
	expect $1/refusal-class "$(jget .error.class $1.reply)" = "$3"
	if jget .error.desc $1.reply | grep -q "$4"; then t_ok $1/reason; else t_fail $1/reason "$(cat $1.reply)"; fi
	untouched $1 "$2" "$VMM_PID" "$pin0" "$fd0"
}

# ---- refusals: the policy forbids disruptive updates (the default)
start_vlud '"update": { "allow_memlock_raise": true }'
T=refusals
start_vmm $T vm0 --mem 32M --duration 7
if grep "backend offered" $T.log | grep -q SUSPEND; then t_fail $T/vmm-sees-no-suspend "$(grep 'backend offered' $T.log)"; else t_ok $T/vmm-sees-no-suspend; fi
refused not-allowed vm0 Unsupported "a device lacks SUSPEND and a disruptive update is not allowed" ""
refused policy-forbids vm0 PermissionDenied "allow_disruptive asked for, but the policy (update.allow_disruptive) forbids it" ',"allow_disruptive":true'
wait_vmm $T
traffic_ran_on $T
vctl release vm0 > /dev/null 2>&1
stop_vlud

# ---- the policy allows disruptive updates
start_vlud '"update": { "allow_memlock_raise": true, "allow_disruptive": true }'
T=disruptive
start_vmm $T vm1 --mem 32M --duration 8 --pause-frames 8
refused not-asked vm1 Unsupported "a device lacks SUSPEND and a disruptive update is not allowed" ""
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
fd0=$(nfds "$VLUD_PID")
vctl --json --timeout 30000 call update.start '{"instance":"vm1","mode":"exec","allow_disruptive":true}' > $T.verdict 2>&1
expect $T/update.start-exit-0 "$?" -eq 0
sed "s/^/[$T verdict] /" $T.verdict
expect $T/verdict-result-ok "$(jget .result $T.verdict)" = ok
expect $T/verdict-path-c "$(jget .path $T.verdict)" = C
if jhas .disruptive $T.verdict true; then t_ok $T/verdict-disruptive; else t_fail $T/verdict-disruptive "no disruptive:true"; fi
if jget .path_reason $T.verdict | grep -q "disruptive: no SUSPEND"; then t_ok $T/reason-no-suspend; else t_fail $T/reason-no-suspend "$(jget .path_reason $T.verdict)"; fi
if jhas .vmpin.moved_ok $T.verdict true; then t_ok $T/verdict-vmpin-moved-ok; else t_fail $T/verdict-vmpin-moved-ok "moved_ok not true"; fi
exp=$(jget .vmpin.expected_kb $T.verdict)
expect $T/expected-kb-32m "$exp" -eq 32768
expect $T/old-before-is-vmpin-read-here "$pin0" -eq "$exp"
expect $T/new-after-is-expected "$(jget .vmpin.new_after_kb $T.verdict)" -eq "$exp"
expect $T/exec-same-pid "$(jget .new_pid $T.verdict)" -eq "$OLD"
expect $T/vmpin-of-new-read-here "$(vmpin "$OLD")" -eq "$exp"
st=$(jget '.status_after[device=vdpa:vdpa0].status' $T.verdict)
expect $T/driver-ok-after "$((${st:-0} & 4))" -eq 4
expect $T/no-fd-change-in-daemon "$(nfds "$VLUD_PID")" -eq "$fd0"
if grep -q "SUSPEND vdpa\|RESUME vdpa" vlud.log; then t_fail $T/daemon-never-suspends "$(grep 'SUSPEND vdpa\|RESUME vdpa' vlud.log)"; else t_ok $T/daemon-never-suspends; fi
wait_vmm $T
if grep -q "the device has no SUSPEND and keeps running" $T.log; then t_ok $T/old-image-knows-not-suspended; else t_fail $T/old-image-knows-not-suspended "not in minivmm's log"; fi
if grep -q "no SUSPEND (disruptive): vring 1 base" $T.log; then t_ok $T/new-image-bases-from-used-rings; else t_fail $T/new-image-bases-from-used-rings "not in minivmm's log"; fi
if sed -n 's/.*vlud-verdict: //p' $T.log | jhas .result - ok; then t_ok $T/vmm-got-ok-verdict; else t_fail $T/vmm-got-ok-verdict "no ok verdict in minivmm's log"; fi
f=$T.out
expect $T/update1-ok "$(val $f "update 1:" ok)" -eq 1
expect $T/update1-path "$(val $f "update 1:" path)" = C
lost=$(val $f "update 1:" lost)
echo "# $T: minivmm reports $lost frame(s) lost in the update, $(val $f traffic: lost) in the run"
expect $T/update-lost-reported "$lost" -ge 0
expect $T/run-lost-is-update-lost "$(val $f traffic: lost)" -eq "$lost"
expect $T/no-dup "$(val $f traffic: dup)" -eq 0
expect $T/no-corrupt "$(val $f traffic: corrupt)" -eq 0
expect $T/traffic-after-update "$(val $f traffic: sent)" -gt "$RAN_ON_MIN"
expect $T/echoed-plus-lost-is-sent "$(($(val $f traffic: echoed) + $(val $f traffic: lost)))" -eq "$(val $f traffic: sent)"
if [ "$lost" = 0 ]; then expect $T/vmm-exit-0 "$RC" -eq 0; else expect $T/vmm-exit-1-frames-lost "$RC" -eq 1; fi
vctl release vm1 > /dev/null 2>&1
sleep 0.5

# ---- transfer mode, vlud spawns the successor: the old VMM closes its device copy at save (path C), the
# device runs on from vlud's copy until the claim releases it; every happy-path check of lib/update.sh
T=transfer
start_vmm $T vm2 --mem 32M --duration 8 --pause-frames 8
update_ok $T vm2 transfer C pa '"allow_disruptive":true'
if jhas .disruptive $T.verdict true; then t_ok $T/verdict-disruptive; else t_fail $T/verdict-disruptive "no disruptive:true"; fi
wait "$VMM_PID"
orc=$?
sed "s/^/[$T old] /" $T.log $T.out
expect $T/old-exits-0-after-commit "$orc" -eq 0
wait_until 200 successor_ended "$NEW_PID"
sleep 0.2
grep -v '^<' vlud.log > $T-new.out
cp $T-new.out $T-new.log
if grep -q "no SUSPEND (disruptive): vring 1 base" $T-new.log; then t_ok $T/new-bases-from-used-rings; else t_fail $T/new-bases-from-used-rings "not in the successor's log"; fi
st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
RC=$((${st:-0x100} >> 8))
check_vmm_after $T-new C
stop_vlud
exit $((FAILS > 0))
