#!/bin/sh
# minivmm-patched-pa: live update with the patched modules (VHOST_NEW_OWNER) in PA mode, 256 MiB:
# path A chosen automatically (NEW_OWNER + RESUME: vrings, eventfds and mappings kept, the pinned charge
# moves to the new image), twice; path B forced (reset with IOTLB_PERSIST, vrings re-created from the saved
# bases), twice, and once after the ring indices wrapped; path C forced once; path A with 1 GiB and
# --no-prefault.  Zero frames lost each time; VmPin of the new image = guest RAM.
# flavour: debian
# modules: patched
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
expect auto/mode "$(val auto.out device: mode)" = pa
if grep -q "backend_offered=.*NEW_OWNER" auto.out; then t_ok auto/new-owner-offered; else t_fail auto/new-owner-offered "patched modules do not offer NEW_OWNER"; fi
check_update auto 1 A pa 262144
check_update auto 2 A pa 262144

run path-b --mem 256M --duration 6 --update-after 1.5 --updates 2 --path B
check_traffic path-b 1200
check_update path-b 1 B pa 262144
check_update path-b 2 B pa 262144

run path-c --mem 256M --duration 4 --update-after 1.5 --path C
check_traffic path-c 800
check_update path-c 1 C pa 262144
# path B re-creates the vrings from saved bases that wrapped (start 65000)
run wrapped --mem 64M --ring-base 65000 --duration 3 --update-after 1.2 --path B
check_traffic wrapped 600
check_update wrapped 1 B pa 65536

# --no-prefault: guest RAM fallocated, this image's page tables dropped after the pin (pages stay pinned)
run lazy --mem 1G --no-prefault --duration 4 --update-after 1.5
check_traffic lazy 800
check_update lazy 1 A pa 1048576
exit $((FAILS > 0))
