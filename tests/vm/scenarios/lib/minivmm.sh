# tests/vm/scenarios/lib/minivmm.sh - shared code of the minivmm-*.sh rig scenarios (sourced, not a scenario:
# the rig lists only tests/vm/scenarios/*.sh and copies lib/ to /scenarios/lib/ in the guest, docs/RIG.md).
# Usage, after the scenario's header comments:  . /scenarios/lib/minivmm.sh
# Defines S (the scenario's name, TAP prefix), DEV, FAILS (failed checks) and the helpers below; the
# scenario ends with `exit $((FAILS > 0))`.
S=${VLUD_SCENARIO:-SCEN}
DEV=/dev/vhost-vdpa-0
FAILS=0
t_ok() { echo "ok - $S/$1"; }
t_fail() { echo "not ok - $S/$1: $2"; FAILS=$((FAILS + 1)); }
# run TAG ARGS...: minivmm on $DEV; stdout in TAG.out, stderr in TAG.log (both echoed as log), status in RC
run() {
	tag=$1
	shift
	echo "# $tag: minivmm --device $DEV $*"
	minivmm --device "$DEV" "$@" > "$tag.out" 2> "$tag.log"
	RC=$?
	sed "s/^/[$tag] /" "$tag.log" "$tag.out"
}
# val FILE LINE-PREFIX KEY: the value of KEY=... on the first line of FILE starting with LINE-PREFIX
val() { grep "^$2" "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }
# expect NAME ACTUAL OP EXPECTED: integer or string test ([ ACTUAL OP EXPECTED ]), one TAP line
expect() {
	if [ -n "$2" ] && [ "$2" "$3" "$4" ] 2> /dev/null; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}
# expectf NAME ACTUAL OP EXPECTED: numeric (float) comparison with awk (OP: > >= < <= ==)
expectf() {
	if [ -n "$2" ] && awk -v a="$2" -v b="$4" "BEGIN { exit !(a $3 b) }"; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}
# check_traffic TAG MIN_SENT: exit 0, verdict pass, every frame sent came back once and intact (MIN_SENT is
# a floor about a third of rate x duration: TCG on a loaded host runs the guest slower)
check_traffic() {
	f=$1.out
	sent=$(val "$f" traffic: sent)
	expect "$1/exit-status" "$RC" -eq 0
	expect "$1/verdict" "$(sed -n 's/^verdict: //p' "$f")" = pass
	expect "$1/frames-sent" "$sent" -ge "$2"
	expect "$1/all-echoed" "$(val "$f" traffic: echoed)" -eq "$sent"
	expect "$1/none-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$1/none-duplicated" "$(val "$f" traffic: dup)" -eq 0
	expect "$1/none-corrupt" "$(val "$f" traffic: corrupt)" -eq 0
}
# check_update TAG N PATH MODE VMPIN_KB: update N took PATH, traffic came back, frames posted while the
# device was suspended stayed queued and were delivered (none lost or duplicated), VmPin as expected
check_update() {
	f=$1.out
	p="update $2:"
	expect "$1/update$2/path" "$(val "$f" "$p" path)" = "$3"
	expect "$1/update$2/ok" "$(val "$f" "$p" ok)" -eq 1
	expect "$1/update$2/mode" "$(val "$f" "$p" mode)" = "$4"
	expect "$1/update$2/vmpin-expected" "$(val "$f" "$p" vmpin_expected_kb)" -eq "$5"
	expect "$1/update$2/vmpin-after" "$(val "$f" "$p" vmpin_after_kb)" -eq "$5"
	expectf "$1/update$2/device-pause-measured" "$(val "$f" "$p" pause_device_ms)" '>' 0
	expectf "$1/update$2/echo-after-update" "$(val "$f" "$p" pause_echo_gap_ms)" '>' 0
	expectf "$1/update$2/echo-gap-covers-device-pause" "$(val "$f" "$p" pause_echo_gap_ms)" '>=' \
		"$(val "$f" "$p" pause_device_ms)"
	expect "$1/update$2/frames-posted-while-suspended" "$(val "$f" "$p" sent_in_pause)" -gt 0
	expect "$1/update$2/queued-frames-delivered-none-lost" "$(val "$f" "$p" lost)" -eq 0
	expect "$1/update$2/none-duplicated" "$(val "$f" "$p" dup)" -eq 0
}

# ---- minivmm with its device from vlud (minivmm-vlud*.sh)
SOCK=/run/vlud-mv.sock
# runv TAG INSTANCE ARGS...: minivmm with its device from vlud
runv() {
	tag=$1
	inst=$2
	shift 2
	echo "# $tag: minivmm --vlud $SOCK --instance $inst --vdpa vdpa0 $*"
	minivmm --vlud "$SOCK" --instance "$inst" --vdpa vdpa0 "$@" > "$tag.out" 2> "$tag.log"
	RC=$?
	sed "s/^/[$tag] /" "$tag.log" "$tag.out"
}
# start_vlud: vlud on $SOCK (root is operator and VMM, device vdpa0, memfds and eventfds), pid in
# VLUD_PID, log in vlud.log; one TAP line vlud/started; exits the scenario when no socket comes in 5 s
start_vlud() {
	cat > vlud.conf <<- EOF
	{ "socket": { "path": "$SOCK" }, "operators": { "uids": [0] },
	  "vmms": [ { "uids": [0], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd"], "max_fds": 16 } ] }
	EOF
	vlud -c vlud.conf > vlud.log 2>&1 &
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
	kill "$VLUD_PID"
	wait "$VLUD_PID"
	sed 's/^/[vlud] /' vlud.log
}
