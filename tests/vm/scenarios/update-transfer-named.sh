#!/bin/sh
# update-transfer-named: transfer mode with a successor started by the operator and named by pid
# (successor_pid): update.start without wait returns the token, the operator hands it to its successor (a
# shell that becomes minivmm, so the pid stays the same), which claims, restores and commits; the old VMM
# exits after the commit.  Stock modules (path C), PA mode.  Zero lost frames in the successor's report,
# VmPin: the old process drops by what the new one gains, DRIVER_OK, no fd leaked in the daemon.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
T=named
start_vlud '"update": { "allow_memlock_raise": true }'
start_vmm $T vm0 --mem 64M --duration 8
OLD=$VMM_PID
fd0=$(nfds "$VLUD_PID")
pin0=$(vmpin "$OLD")
rm -f succ.fifo
mkfifo succ.fifo
sh -c "read tok < succ.fifo; VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm0 --vdpa vdpa0 --mem 64M" \
	> $T-new.out 2> $T-new.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm0\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/started "$?" -eq 0
sed "s/^/[$T reply] /" $T.reply
jget .token $T.reply > succ.fifo
wait "$OLD"
orc=$?
sed "s/^/[$T old] /" $T.log $T.out
expect $T/old-exits-0-after-commit "$orc" -eq 0
if grep -q "handed over" $T.log; then t_ok $T/old-handed-over; else t_fail $T/old-handed-over "no hand-over in its log"; fi
status_f=$T.status
vctl --json call update.status '{"instance":"vm0"}' > $status_f 2>&1
sed "s/^/[$T status] /" $status_f
expect $T/result-ok "$(jget .last.result $status_f)" = ok
expect $T/path-c "$(jget .last.path $status_f)" = C
expect $T/new-pid-is-named "$(jget .last.new_pid $status_f)" -eq "$SUCC"
if jhas .last.vmpin.moved_ok $status_f true; then t_ok $T/vmpin-moved-ok; else t_fail $T/vmpin-moved-ok "moved_ok not true"; fi
exp=$(jget .last.vmpin.expected_kb $status_f)
expect $T/expected-is-old-vmpin "$exp" -eq "$pin0"
expect $T/old-after-0 "$(jget .last.vmpin.old_after_kb $status_f)" -eq 0
expect $T/new-vmpin-read-here "$(vmpin "$SUCC")" -eq "$exp"
st=$(jget '.last.status_after[device=vdpa:vdpa0].status' $status_f)
expect $T/driver-ok-after "$((${st:-0} & 4))" -eq 4
sleep 0.3
expect $T/no-fd-leak-in-daemon "$(nfds "$VLUD_PID")" -eq "$fd0"
VMM_PID=$SUCC
wait "$SUCC"
RC=$?
sed "s/^/[$T new] /" $T-new.log $T-new.out
VERDICT_EXP=$exp
VERDICT_PAUSE=$(jget .last.pause_ms $status_f)
check_vmm_after $T-new C
stop_vlud
exit $((FAILS > 0))
