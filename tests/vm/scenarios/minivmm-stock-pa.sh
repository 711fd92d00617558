#!/bin/sh
# minivmm-stock-pa: live update on a stock kernel in PA mode: path C chosen automatically
# (reopen + re-pin), twice, with 256 MiB of guest RAM; zero frames lost; frames posted while suspended
# are queued in the TX ring and delivered after DRIVER_OK; VmPin of the new image equals guest RAM.
# The same with the mapping split in four ranges, and after the 16-bit ring indices wrapped.  Forcing path A is refused before anything is
# touched; a failed exec rolls back (RESUME) and traffic comes back.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
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


run auto --mem 256M --duration 6 --update-after 1.5 --updates 2
check_traffic auto 1200
check_update auto 1 C pa 262144
check_update auto 2 C pa 262144
if grep -q "auto: no NEW_OWNER" auto.log; then t_ok auto/reason-logged; else t_fail auto/reason-logged "no path reason in log"; fi

# four ranges in one batched IOTLB sequence, re-pinned together on path C
run chunked --mem 256M --chunk 64M --duration 4 --update-after 1.5
check_traffic chunked 800
check_update chunked 1 C pa 262144
expect chunked/four-ranges "$(val chunked.out device: maps)" -eq 4

# the update happens after the ring indices wrapped (start 65000, ~1000 frames before the update)
run wrapped --mem 64M --ring-base 65000 --duration 3 --update-after 1.2
check_traffic wrapped 600
check_update wrapped 1 C pa 65536

run forced-a --mem 64M --duration 2 --update-after 1 --path A
expect forced-a/exit-status-1 "$RC" -eq 1
expect forced-a/update1-refused "$(val forced-a.out "update 1:" ok)" -eq 0
if grep -q "refused before touching anything: path A needs NEW_OWNER" forced-a.log; then
	t_ok forced-a/reason
else
	t_fail forced-a/reason "no refusal reason in log"
fi
expect forced-a/traffic-unaffected-none-lost "$(val forced-a.out traffic: lost)" -eq 0
expect forced-a/traffic-unaffected-all-echoed "$(val forced-a.out traffic: echoed)" -eq "$(val forced-a.out traffic: sent)"

run exec-fail --mem 64M --duration 3 --update-after 1 --exec /nonexistent
expect exec-fail/exit-status-1 "$RC" -eq 1
expect exec-fail/update1-failed "$(val exec-fail.out "update 1:" ok)" -eq 0
if grep -q "rolling back" exec-fail.log; then t_ok exec-fail/rolled-back; else t_fail exec-fail/rolled-back "no rollback in log"; fi
expectf exec-fail/echo-after-rollback "$(val exec-fail.out "update 1:" pause_echo_gap_ms)" '>' 0
expect exec-fail/none-lost "$(val exec-fail.out traffic: lost)" -eq 0
expect exec-fail/all-echoed "$(val exec-fail.out traffic: echoed)" -eq "$(val exec-fail.out traffic: sent)"
exit $((FAILS > 0))
