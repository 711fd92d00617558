#!/bin/sh
# minivmm-traffic: loopback traffic without an update through vdpa_sim_net in PA mode:
# every frame echoed once and intact (also across the 16-bit ring index wrap), all guest RAM pinned;
# the JSON verdict; one VMM per device;
# usage and setup errors have their exit status.
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


run plain --mem 256M --duration 3 --rate 1000
check_traffic plain 800
expect plain/mode "$(val plain.out device: mode)" = pa
expect plain/guest-ram-pinned "$(val plain.out device: vmpin_expected_kb)" -eq 262144
expect plain/no-update "$(val plain.out traffic: updates)" -eq 0

# 16-bit ring indices wrapping (they start at 65500)
run wrap --mem 16M --duration 2 --ring-base 65500
check_traffic wrap 600

run json --mem 16M --duration 1 --json
expect json/exit-status "$RC" -eq 0
expect json/one-line "$(wc -l < json.out)" -eq 1
if grep -q '^{.*"traffic":{"sent":[1-9][0-9]*,"echoed":[1-9].*"verdict":"pass".*}$' json.out; then
	t_ok json/verdict-pass
else
	t_fail json/verdict-pass "no single JSON object with verdict pass"
fi

# a second VMM cannot open the device while the first holds it (vhost-vdpa: EBUSY), the first is unaffected
minivmm --device "$DEV" --mem 16M --duration 4 > first.out 2> first.log &
pid=$!
sleep 2
run second --mem 16M --duration 1
expect second/open-refused-exit-3 "$RC" -eq 3
if grep -q "busy" second.log; then t_ok second/ebusy-reported; else t_fail second/ebusy-reported "no EBUSY in log"; fi
wait $pid
RC=$?
sed 's/^/[first] /' first.log first.out
check_traffic first 1000

run badmem --mem 1K
expect usage/bad-mem-exit-2 "$RC" -eq 2
run badpath --path D
expect usage/bad-path-exit-2 "$RC" -eq 2
DEV=/dev/vhost-vdpa-9
run nodev --mem 16M --duration 1
DEV=/dev/vhost-vdpa-0
expect setup/missing-device-exit-3 "$RC" -eq 3
exit $((FAILS > 0))
