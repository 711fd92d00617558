#!/bin/sh
# update-refusals: update.start preflight refusals the rig can provoke, each asserting that nothing was
# touched (no update running, the instance attached to the same pid, the device DRIVER_OK, VmPin and the
# daemon's fd count unchanged, the VMM's traffic runs on with nothing lost):
#   memlock  transfer mode, the named successor's RLIMIT_MEMLOCK (64 KiB) is below the PA mappings and the
#            policy forbids raising it (update.allow_memlock_raise false): refused Unsupported with the
#            reason; the successor's limit is left as it was
#   busy     a second update.start while one is running (waiting for its named successor's claim) is
#            refused Busy; the running update is not disturbed: it goes on to commit (result ok)
#   held-twice   an instance holding two fds of one device (vlu-devopen --store-copy), and two instances
#                each holding one (--copy-to; either one asks): refused, "one holder per device", nothing
#                touched
#   no-mappings  a VMM that holds the device but never declared vmm.mappings (vlu-devopen --hold): refused
#            Unsupported (guest memory not known to be in a stored memfd); device status and fds unchanged
# The VmPin-vs-declared-mappings refusal is in update-verify.sh (minivmm's MINIVMM_TEST_DECLARE knob), the
# no-SUSPEND ones in update-nosuspend.sh.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
UPD_CLAIM_MS=15000

. /scenarios/lib/untouched.sh
memlock_soft() { sed -n 's/^Max locked memory *\([0-9a-z]*\) .*/\1/p' "/proc/$1/limits"; }

start_vlud '"update": { "allow_memlock_raise": false }'

# ---- memlock: the named successor's RLIMIT_MEMLOCK is too small and raising it is forbidden
T=memlock
start_vmm $T vm0 --mem 32M --duration 8
OLD=$VMM_PID
pin0=$(vmpin "$OLD")
expect $T/old-pins-pa "$pin0" -gt 0
sh -c 'ulimit -l 64 && exec sleep 60' &
SUCC=$!
sleep 0.3
lim0=$(memlock_soft "$SUCC")
expect $T/successor-memlock-64k "$lim0" -eq 65536
fd0=$(nfds "$VLUD_PID")
vctl --json call update.start "{\"instance\":\"vm0\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/refused-exit-1 "$?" -eq 1
sed "s/^/[$T reply] /" $T.reply
expect $T/refusal-class "$(jget .error.class $T.reply)" = Unsupported
if jget .error.desc $T.reply | grep -q "RLIMIT_MEMLOCK of pid $SUCC is 65536 bytes.*allow_memlock_raise"; then
	t_ok $T/reason-memlock-names-policy
else
	t_fail $T/reason-memlock-names-policy "$(cat $T.reply)"
fi
if grep -q "update of vm0 refused: RLIMIT_MEMLOCK" vlud.log; then t_ok $T/refusal-logged; else t_fail $T/refusal-logged "not in vlud's log"; fi
expect $T/successor-memlock-left-alone "$(memlock_soft "$SUCC")" -eq "$lim0"
untouched $T vm0 "$OLD" "$pin0" "$fd0"
wait_vmm $T
traffic_ran_on $T
kill "$SUCC" 2> /dev/null
wait "$SUCC" 2> /dev/null
vctl release vm0 > /dev/null 2>&1
stop_vlud

# ---- busy: a second update.start while one runs
start_vlud '"update": { "allow_memlock_raise": true }'
T=busy
start_vmm $T vm1 --mem 32M --duration 10
OLD=$VMM_PID
rm -f succ.fifo
mkfifo succ.fifo
# the named successor: a shell that becomes minivmm (same pid) with the token it is given
sh -c "read tok < succ.fifo; VLU_UPDATE_TOKEN=\$tok exec minivmm --vlud $SOCK --instance vm1 --vdpa vdpa0 --mem 32M --duration 4" \
	> $T-succ.out 2> $T-succ.log &
SUCC=$!
vctl --json call update.start "{\"instance\":\"vm1\",\"mode\":\"transfer\",\"successor_pid\":$SUCC,\"wait\":false}" > $T.reply 2>&1
expect $T/first-started "$?" -eq 0
sed "s/^/[$T reply] /" $T.reply
TOKEN=$(jget .token $T.reply)
sleep 0.5
vctl --json call update.status '{"instance":"vm1"}' > $T.status1 2>&1
sed "s/^/[$T status1] /" $T.status1
expect $T/first-waits-for-claim "$(jget .running.phase $T.status1)" = claim
id1=$(jget .running.id $T.status1)
fd1=$(nfds "$VLUD_PID")
vctl --json call update.start '{"instance":"vm1","mode":"exec"}' > $T.reply2 2>&1
expect $T/second-refused-exit-1 "$?" -eq 1
sed "s/^/[$T reply2] /" $T.reply2
expect $T/second-refusal-class "$(jget .error.class $T.reply2)" = Busy
if jget .error.desc $T.reply2 | grep -q "is running"; then t_ok $T/second-reason-running; else t_fail $T/second-reason-running "$(cat $T.reply2)"; fi
vctl --json call update.status '{"instance":"vm1"}' > $T.status2 2>&1
sed "s/^/[$T status2] /" $T.status2
expect $T/first-still-in-claim "$(jget .running.phase $T.status2)" = claim
expect $T/first-same-id "$(jget .running.id $T.status2)" -eq "${id1:-0}"
if [ "$(inpid vm1)" = "$OLD" ]; then t_ok $T/instance-still-old-pid; else t_fail $T/instance-still-old-pid "$(inentry vm1)"; fi
expect $T/no-fd-change-in-daemon "$(nfds "$VLUD_PID")" -eq "$fd1"
# the running update goes on: its successor claims with the right token and commits
echo "$TOKEN" > succ.fifo
wait "$VMM_PID"
orc=$?
sed "s/^/[$T old] /" $T.log $T.out
expect $T/old-exits-0-after-commit "$orc" -eq 0
wait "$SUCC"
src=$?
sed "s/^/[$T succ] /" $T-succ.log $T-succ.out
expect $T/successor-exit-0 "$src" -eq 0
vctl --json call update.status '{"instance":"vm1"}' > $T.status3 2>&1
sed "s/^/[$T status3] /" $T.status3
expect $T/first-committed-ok "$(jget .last.result $T.status3)" = ok
expect $T/first-verdict-same-id "$(jget .last.id $T.status3)" -eq "${id1:-0}"
expect $T/successor-zero-lost "$(val $T-succ.out traffic: lost)" -eq 0
vctl release vm1 > /dev/null 2>&1

# ---- holder_case TAG INSTANCE REASON [VLU-DEVOPEN-OPTION...]: a holder of vdpa0 without a mapping table
# (vlu-devopen vm3 --hold, with a second copy of the device fd if asked); update.start of INSTANCE is
# refused Unsupported with REASON, and nothing changes: no update, the instance attached to the holder,
# device status and vlud's fds as before
holder_case() {
	T=$1 inst=$2 reason=$3
	shift 3
	sleep 0.5	# a release before closes its fds off vlud's loop
	rm -f hold.fifo
	mkfifo hold.fifo
	vlu-devopen "$SOCK" vm3 vdpa0 "$@" --hold < hold.fifo > $T.out 2> $T.err &
	HOLDER=$!
	exec 7> hold.fifo
	wait_until 50 grep -q "^held" $T.out
	if grep -q "^held" $T.out && { [ $# -eq 0 ] || grep -q "^ok .*devopen\.vm3\.\(stored-copy\|copy-stored-in\)-" $T.out; }; then
		t_ok $T/holder-ready
	else
		t_fail $T/holder-ready "$(cat $T.out $T.err)"
	fi
	st0=$(devstatus)
	fd0=$(nfds "$VLUD_PID")
	vctl --json call update.start "{\"instance\":\"$inst\",\"mode\":\"exec\"}" > $T.reply 2>&1
	expect $T/refused-exit-1 "$?" -eq 1
	sed "s/^/[$T reply] /" $T.reply
	expect $T/refusal-class "$(jget .error.class $T.reply)" = Unsupported
	if jget .error.desc $T.reply | grep -qF "$reason"; then t_ok $T/reason; else t_fail $T/reason "$(cat $T.reply)"; fi
	vctl update status "$inst" > $T.ustatus 2>&1
	sed "s/^/[$T update status] /" $T.ustatus
	if grep -q "no update is running" $T.ustatus; then t_ok $T/no-update-running; else t_fail $T/no-update-running "$(tr '\n' ' ' < $T.ustatus)"; fi
	if in_attached_to "$inst" "$HOLDER"; then
		t_ok $T/instance-attached-to-same-pid
	else
		t_fail $T/instance-attached-to-same-pid "$(inentry "$inst")"
	fi
	expect $T/device-status-unchanged "$(devstatus)" -eq "${st0:-x}"
	expect $T/no-fd-change-in-daemon "$(nfds "$VLUD_PID")" -eq "$fd0"
	exec 7>&-
	wait "$HOLDER"
	expect $T/holder-checks-passed "$?" -eq 0
	sed "s/^/[$T holder] /" $T.out $T.err
	vctl release vm3 > /dev/null 2>&1
	vctl release vm4 > /dev/null 2>&1
}
# no-mappings: the instance holds a device but declared no mapping table
holder_case no-mappings vm3 "no mapping table (vmm.mappings): guest memory is not known to be in a stored memfd"
# one holder per device: a second copy of the device fd in the same instance, or in another one (either asks)
holder_case held-twice vm3 "vdpa0 (fd 'vdpa:vdpa0') is also held by this instance (fd 'vdpa-copy'): one holder per device" \
	--store-copy vdpa-copy
holder_case held-by-other vm3 "vdpa0 (fd 'vdpa:vdpa0') is also held by instance 'vm4' (fd 'vdpa-copy'): one holder per device" \
	--copy-to vm4
holder_case held-by-other-copy vm4 "the device (fd 'vdpa-copy') is also held by instance 'vm3' (fd 'vdpa:vdpa0'): one holder per device" \
	--copy-to vm4
stop_vlud
exit $((FAILS > 0))
