#!/bin/sh
# lib/minivmm.sh: the minivmm-*.sh rig scenarios (sourced: . /scenarios/lib/minivmm.sh; builds on lib/vlud.sh
# and so on lib/tap.sh).  Defines DEV and SOCK and the helpers below: minivmm on the device node (run) or
# with its device from vlud (runv, with lib/vlud.sh's start_vlud/stop_vlud: root is operator and VMM of
# vdpa0, memfds and eventfds), and the checks of minivmm's report lines (docs/MINIVMM.md).  The scenario ends
# with `exit $((FAILS > 0))`.
SOCK=/run/vlud-mv.sock
. /scenarios/lib/vlud.sh
DEV=/dev/vhost-vdpa-0
# run TAG ARGS...: minivmm on $DEV; stdout in TAG.out, stderr in TAG.log (both echoed as log), status in RC
run() {
	tag=$1
	shift
	echo "# $tag: minivmm --device $DEV $*"
	minivmm --device "$DEV" "$@" > "$tag.out" 2> "$tag.log"
	RC=$?
	sed "s/^/[$tag] /" "$tag.log" "$tag.out"
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
