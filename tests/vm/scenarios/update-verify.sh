#!/bin/sh
# update-verify: vlud's VmPin verification, both ends, with minivmm's test knobs (docs/MINIVMM.md):
#   declare-va     MINIVMM_TEST_DECLARE=va: a PA-mode VMM declares its pinning "va" (expected 0 kB): update.start
#                  refused Unsupported at preflight with the reason and both numbers; nothing touched (no
#                  update running, same pid attached, DRIVER_OK, VmPin and daemon fds unchanged, traffic runs on
#                  with nothing lost)
#   declare-extra  MINIVMM_TEST_DECLARE=extra-mib=8: one 8 MiB mapping declared and never mapped: the same
#   exec-short     exec mode, path C, 64 MiB in 4 ranges (--chunk 16M), MINIVMM_TEST_MAP_SHORT=1: the new image
#                  re-maps 3 ranges: the verdict is failed (never ok) with the mismatch and the numbers
#                  (new_after_kb = expected - 16 MiB, moved_ok false), the device DRIVER_OK at the verdict,
#                  every fd kept by vlud (the instance orphaned once the new image, told failed, has exited)
#   transfer-short transfer mode, path C, a named successor with MINIVMM_TEST_MAP_SHORT=1: vlud kills the
#                  successor (update.kill_failed_successor, default) and rolls back: it releases and reopens
#                  the device and the old VMM takes it back (re-pin), runs on with nothing lost: rolled-back,
#                  killed_pid, the mismatch and its numbers in the reason
#   transfer-short-policy-off  the same with kill_failed_successor false: failed (the successor still holds
#                  the reopened device, so the old VMM cannot take it back), old VmPin dropped to 0, new =
#                  expected - 16 MiB; the old VMM stops without touching the rings it now shares with the
#                  successor; every fd kept by vlud
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 420
. /scenarios/lib/update.sh
. /scenarios/lib/untouched.sh
ALLFDS="q0-call q0-kick q1-call q1-kick ram0 vdpa:vdpa0"

start_vlud '"update": { "allow_memlock_raise": true }'

# ---- preflight: the VMM declares what it does not pin
for T in declare-va declare-extra; do
	case $T in
	declare-va) export MINIVMM_TEST_DECLARE=va exp_decl=0 ;;
	*) export MINIVMM_TEST_DECLARE=extra-mib=8 exp_decl=40960 ;;
	esac
	start_vmm $T vm0 --mem 32M --duration 7
	unset MINIVMM_TEST_DECLARE
	OLD=$VMM_PID
	pin0=$(vmpin "$OLD")
	expect $T/pins-32m-pa "$pin0" -eq 32768
	if grep -q "test: declaring" $T.log; then t_ok $T/knob-took-effect; else t_fail $T/knob-took-effect "no 'test: declaring' in minivmm's log"; fi
	fd0=$(nfds "$VLUD_PID")
	vctl --json --timeout 30000 call update.start '{"instance":"vm0","mode":"exec"}' > $T.reply 2>&1
	expect $T/refused-exit-1 "$?" -eq 1
	sed "s/^/[$T reply] /" $T.reply
	expect $T/refusal-class "$(jget .error.class $T.reply)" = Unsupported
	if jget .error.desc $T.reply | grep -q "VmPin of pid $OLD is $pin0 kB, the declared PA mappings pin $exp_decl kB: the accounting to verify is already wrong"; then
		t_ok $T/reason-with-both-numbers
	else
		t_fail $T/reason-with-both-numbers "$(cat $T.reply)"
	fi
	if grep -q "update of vm0 refused: VmPin of pid $OLD" vlud.log; then t_ok $T/refusal-logged; else t_fail $T/refusal-logged "not in vlud's log"; fi
	untouched $T vm0 "$OLD" "$pin0" "$fd0"
	expect $T/every-fd-held "$(held_list vm0)" = "$ALLFDS"
	wait_vmm $T
	traffic_ran_on $T
	vctl release vm0 > /dev/null 2>&1
	sleep 0.5	# the release closes the held fds off vlud's loop
done

# ---- exec mode: the new image pins one range less than declared
T=exec-short
base=$(nfds "$VLUD_PID")
export MINIVMM_TEST_MAP_SHORT=1	# inherited by the new image; the first image's map ignores it
start_vmm $T vm1 --mem 64M --chunk 16M --duration 8
unset MINIVMM_TEST_MAP_SHORT
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
expect $T/first-image-maps-all "$pin0" -eq 65536
vctl --json --timeout 30000 call update.start '{"instance":"vm1","mode":"exec","path":"C"}' > $T.reply 2>&1
expect $T/update.start-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
if jget .error.desc $T.reply | grep -q "update [0-9]* failed: VmPin mismatch"; then t_ok $T/reply-says-failed-mismatch; else t_fail $T/reply-says-failed-mismatch "$(cat $T.reply)"; fi
# the verdict, as the daemon keeps it (update.status last)
vctl --json call update.status '{"instance":"vm1"}' > $T.verdict 2>&1
sed "s/^/[$T verdict] /" $T.verdict
expect $T/result-failed "$(jget .last.result $T.verdict)" = failed
expect $T/path-c "$(jget .last.path $T.verdict)" = C
expect $T/expected-kb "$(jget .last.vmpin.expected_kb $T.verdict)" -eq 65536
expect $T/new-after-one-range-short "$(jget .last.vmpin.new_after_kb $T.verdict)" -eq 49152
if jhas .last.vmpin.moved_ok $T.verdict false; then t_ok $T/moved-ok-false; else t_fail $T/moved-ok-false "moved_ok not false"; fi
if jget .last.error $T.verdict | grep -q "VmPin mismatch: expected 65536 kB moved; old 65536 -> 49152 kB, new 0 -> 49152 kB"; then
	t_ok $T/error-mismatch-with-numbers
else
	t_fail $T/error-mismatch-with-numbers "$(jget .last.error $T.verdict)"
fi
st=$(jget '.last.status_after[device=vdpa:vdpa0].status' $T.verdict)
expect $T/driver-ok-at-verdict "$((${st:-0} & 4))" -eq 4
expect $T/same-pid "$(jget .last.new_pid $T.verdict)" -eq "$OLD"
expect $T/every-fd-kept "$(held_list vm1)" = "$ALLFDS"
wait_vmm $T
if grep -q "test: mapping 3 of 4 ranges" $T.log; then t_ok $T/knob-new-image-only; else t_fail $T/knob-new-image-only "no 'test: mapping 3 of 4 ranges' in minivmm's log"; fi
if sed -n 's/.*vlud-verdict: //p' $T.log | jhas .result - failed; then t_ok $T/vmm-got-failed-verdict; else t_fail $T/vmm-got-failed-verdict "no failed verdict in minivmm's log"; fi
expect $T/vmm-exit-1 "$RC" -eq 1
expect $T/vmm-update-not-ok "$(val $T.out "update 1:" ok)" -eq 0
sleep 0.3
if [ "$(instate vm1)" = orphaned ]; then t_ok $T/instance-orphaned-after-vmm-exit; else t_fail $T/instance-orphaned-after-vmm-exit "$(inentry vm1)"; fi
expect $T/every-fd-still-kept "$(held_list vm1)" = "$ALLFDS"
vctl update status vm1 > $T.ustatus 2>&1
if grep -q "no update is running" $T.ustatus; then t_ok $T/no-update-running; else t_fail $T/no-update-running "$(tr '\n' ' ' < $T.ustatus)"; fi
vctl release vm1 > /dev/null 2>&1
sleep 0.5
expect $T/no-fd-leak-in-daemon-after-release "$(nfds "$VLUD_PID")" -eq "$base"

# ---- transfer mode: a named successor pins one range less than declared
T=transfer-short
base=$(nfds "$VLUD_PID")
start_vmm $T vm3 --mem 64M --chunk 16M --duration 14
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
rm -f succ.fifo
mkfifo succ.fifo
sh -c "read tok < succ.fifo; MINIVMM_TEST_MAP_SHORT=1 VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm3 --vdpa vdpa0 --mem 64M --chunk 16M --duration 4" \
	> $T-new.out 2> $T-new.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm3\",\"mode\":\"transfer\",\"path\":\"C\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
jget .token $T.reply > succ.fifo
wait "$SUCC"
expect $T/successor-killed-sigkill "$?" -eq 137
sed "s/^/[$T new] /" $T-new.log
wait_update_end vm3
vctl --json call update.status '{"instance":"vm3"}' > $T.status 2>&1
sed "s/^/[$T status] /" $T.status
expect $T/rolled-back "$(jget .last.result $T.status)" = rolled-back
expect $T/killed-pid-is-successor "$(jget .last.killed_pid $T.status)" -eq "$SUCC"
if jget .last.error $T.status | grep -q "verification failed: VmPin mismatch: expected 65536 kB moved; old 65536 -> 0 kB, new 0 -> 49152 kB; the successor $SUCC was killed"; then
	t_ok $T/reason-mismatch-numbers-and-kill
else
	t_fail $T/reason-mismatch-numbers-and-kill "$(jget .last.error $T.status)"
fi
if jget .last.error $T.status | grep -q "brought back to the old VMM (pid $OLD)"; then t_ok $T/reason-brought-back; else t_fail $T/reason-brought-back "reason"; fi
if [ "$(inpid vm3)" = "$OLD" ]; then t_ok $T/instance-back-to-old; else t_fail $T/instance-back-to-old "not the old pid"; fi
expect $T/old-vmpin-all-ranges-again "$(vmpin "$OLD")" -eq "$pin0"
st=$(devstatus)
expect $T/driver-ok "$((${st:-0} & 4))" -eq 4
wait "$OLD"
sed "s/^/[$T old] /" $T.log $T.out
expect $T/old-update-recorded-not-ok "$(val $T.out "update 1:" ok)" -eq 0
expect $T/old-only-the-update-failed "$(grep '^fail:' $T.out | grep -vc 'update 1')" -eq 0
expect $T/old-traffic-none-lost "$(val $T.out traffic: lost)" -eq 0
expect $T/old-traffic-all-echoed "$(val $T.out traffic: echoed)" -eq "$(val $T.out traffic: sent)"
vctl release vm3 > /dev/null 2>&1
sleep 0.5
expect $T/no-fd-leak-in-daemon-after-release "$(nfds "$VLUD_PID")" -eq "$base"

# ---- the same with update.kill_failed_successor false: nobody is killed, the update fails
stop_vlud > /dev/null
start_vlud '"update": { "allow_memlock_raise": true, "kill_failed_successor": false }'
T=transfer-short-policy-off
base=$(nfds "$VLUD_PID")
start_vmm $T vm2 --mem 64M --chunk 16M --duration 10
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
expect $T/old-maps-all "$pin0" -eq 65536
rm -f succ.fifo
mkfifo succ.fifo
sh -c "read tok < succ.fifo; MINIVMM_TEST_MAP_SHORT=1 VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm2 --vdpa vdpa0 --mem 64M --chunk 16M --duration 4" \
	> $T-new.out 2> $T-new.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm2\",\"mode\":\"transfer\",\"path\":\"C\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
sed "s/^/[$T reply] /" $T.reply
jget .token $T.reply > succ.fifo
wait_update_end vm2
vctl --json call update.status '{"instance":"vm2"}' > $T.status 2>&1
sed "s/^/[$T status] /" $T.status
expect $T/result-failed "$(jget .last.result $T.status)" = failed
expect $T/path-c "$(jget .last.path $T.status)" = C
expect $T/new-pid-is-named "$(jget .last.new_pid $T.status)" -eq "$SUCC"
expect $T/old-after-0 "$(jget .last.vmpin.old_after_kb $T.status)" -eq 0
expect $T/new-after-one-range-short "$(jget .last.vmpin.new_after_kb $T.status)" -eq 49152
if jhas .last.vmpin.moved_ok $T.status false; then t_ok $T/moved-ok-false; else t_fail $T/moved-ok-false "moved_ok not false"; fi
if jget .last.error $T.status | grep -q "verification failed: VmPin mismatch: expected 65536 kB moved; old 65536 -> 0 kB, new 0 -> 49152 kB"; then
	t_ok $T/error-mismatch-with-numbers
else
	t_fail $T/error-mismatch-with-numbers "$(jget .last.error $T.status)"
fi
if jget .last.error $T.status | grep -q "the successor still runs"; then t_ok $T/error-says-successor-holds-device; else t_fail $T/error-says-successor-holds-device "$(jget .last.error $T.status)"; fi
st=$(jget '.last.status_after[device=vdpa:vdpa0].status' $T.status)
expect $T/driver-ok-at-verdict "$((${st:-0} & 4))" -eq 4
expect $T/every-fd-kept "$(held_list vm2)" = "$ALLFDS"
wait "$OLD"
orc=$?
sed "s/^/[$T old] /" $T.log $T.out
expect $T/old-exit-1 "$orc" -eq 1
if grep -q "the device is not ours any more: stopping" $T.log; then t_ok $T/old-stops-without-device; else t_fail $T/old-stops-without-device "not in its log"; fi
wait "$SUCC"
src=$?
sed "s/^/[$T new] /" $T-new.log $T-new.out
if grep -q "test: mapping 3 of 4 ranges" $T-new.log; then t_ok $T/knob-took-effect; else t_fail $T/knob-took-effect "no 'test: mapping 3 of 4 ranges' in the successor's log"; fi
if sed -n 's/.*vlud-verdict: //p' $T-new.log | jhas .result - failed; then t_ok $T/successor-got-failed-verdict; else t_fail $T/successor-got-failed-verdict "no failed verdict in its log"; fi
expect $T/successor-exit-1 "$src" -eq 1
sleep 0.3
if [ "$(instate vm2)" = orphaned ]; then t_ok $T/instance-orphaned-after-exits; else t_fail $T/instance-orphaned-after-exits "$(inentry vm2)"; fi
expect $T/every-fd-still-kept "$(held_list vm2)" = "$ALLFDS"
vctl release vm2 > /dev/null 2>&1
sleep 0.5
expect $T/no-fd-leak-in-daemon-after-release "$(nfds "$VLUD_PID")" -eq "$base"
stop_vlud
exit $((FAILS > 0))
