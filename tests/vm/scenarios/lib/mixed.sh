#!/bin/sh
# shellcheck disable=SC2034,SC2154 # VLUD_DEVICES, VERDICT_EXP: read by lib/vlud.sh, lib/update.sh; bdf, dev: edu_bind's
# lib/mixed.sh: the mixed-instance update scenarios (docs/IOMMUFD.md "Mixed instances"), sourced after
# lib/update.sh and lib/edu.sh: iommufd-update-mixed.sh (stock modules: the vhost-vdpa device takes path
# C) and iommufd-update-mixed-patched.sh (the patched kernel, VHOST_NEW_OWNER: paths A and B).
#
# minivmm --edu runs loopback traffic on vdpa0 (vdpa_sim, PA mode: 16 MiB of guest RAM pinned) and holds
# QEMU's edu (bound to vfio-pci) on /dev/iommu with the last MiB of the same guest RAM mapped by
# IOMMU_IOAS_MAP_FILE (user accounting, CAP_IPC_LOCK dropped); every image DMA-checks edu.  VmPin is exact:
# 16384 kB (vhost-vdpa) + 1024 kB (iommufd) = 17408 kB.  What differs by path (docs/IOMMUFD.md, the table
# "What O loses and N gains"): on C the vhost-vdpa share is released at the claim and re-pinned by the
# successor (the verdict's vhost_vdpa_repinned true), on A and B VHOST_NEW_OWNER moves it (false); the
# iommufd share moves by IOMMU_IOAS_CHANGE_PROCESS on every path; the end values are the same.
#
# The cases (TAG INSTANCE PATH; a case's instance is released at its end, vlud's fd count back):
#   mixed_exec_ok, mixed_transfer_ok: an update that ends ok;
#   mixed_exec_die: exec mode, the new image exits right after its CHANGE_PROCESS (after the claim): vlud
#     restarts the previous binary, which takes both (rolled-back, 17408 kB, traffic, DMA);
#   mixed_transfer_die: transfer mode, the successor exits so: the old VMM takes both back and calls
#     update.ready (rolled-back, verified at 17408 kB, traffic, DMA);
#   mixed_mm_refused: the iommufd in mm accounting (minivmm --edu-acct mm): refused up front in transfer
#     and in exec mode, each with its reason, nothing touched.

MIB=16
VDPA_KB=$((MIB * 1024))
IOF_KB=1024
EXP_KB=$((VDPA_KB + IOF_KB))
DUR=9

# mixed_start: edu bound to vfio-pci ($dev: its cdev), vlud with vdpa0, /dev/iommu and the cdev in its
# policy (the successor's RLIMIT_MEMLOCK may be raised), FD_BASE its fd count
mixed_start() {
	edu_find
	edu_bind
	echo "# edu $bdf: $dev"
	VLUD_DEVICES="\"vdpa0\", \"/dev/iommu\", \"$dev\""
	start_vlud '"update": { "allow_memlock_raise": true }'
	sleep 0.5
	FD_BASE=$(nfds "$VLUD_PID")
}

# mvm TAG INSTANCE [ARGS]: minivmm with the edu, traffic on vdpa0; waits for its bring-up
mvm() {
	_t=$1 _i=$2
	shift 2
	start_vmm "$_t" "$_i" --edu "$dev" --mem ${MIB}M --duration $DUR --pause-frames 8 "$@"
	wait_until 300 vmm_up "$_t.log" "$VMM_PID"
	if grep -q "edu first: DMA ok" "$_t.log"; then t_ok "$_t/edu-first-dma"; else t_fail "$_t/edu-first-dma" "$(grep edu "$_t.log" | tail -3 | tr '\n' ' ')"; fi
	expect "$_t/vmpin-both-shares" "$(vmpin "$VMM_PID")" -eq "$EXP_KB"
}
# knob_argv INSTANCE KNOB...: the argv of a successor with test knobs (the instance INSTANCE), as
# update.start's "argv" member
knob_argv() {
	_i=$1
	shift
	printf '"argv": ["minivmm", "--vlud", "%s", "--instance", "%s", "--vdpa", "vdpa0", "--edu", "%s", "--mem", "%sM", "--duration", "%s", "--pause-frames", "8"' \
		"$SOCK" "$_i" "$dev" "$MIB" "$DUR"
	for _k in "$@"; do printf ', "%s"' "$_k"; done
	printf ']'
}
# mixed_repinned PATH: the verdict's vhost_vdpa_repinned on that path (C: re-pinned; A, B: moved)
mixed_repinned() { if [ "$1" = C ]; then echo true; else echo false; fi; }
# mixed_share PATH: how the successor got the vhost-vdpa share before its CHANGE_PROCESS (TAP names)
mixed_share() { if [ "$1" = C ]; then echo repin; else echo new-owner; fi; }
# mixed_verdict TAG FILE PREFIX PATH: the verdict's parts of a mixed update (PREFIX: "" or ".last")
mixed_verdict() {
	expect "$1/path-$(echo "$4" | tr ABC abc)" "$(jget "$3.path" "$2")" = "$4"
	expect "$1/expected-kb-both-shares" "$(jget "$3.vmpin.expected_kb" "$2")" -eq "$EXP_KB"
	expect "$1/iommufd-moved" "$(jget "$3.iommufd.moved[]" "$2")" = iommufd:iommu
	expect "$1/iommufd-pinned-kb" "$(jget "$3.iommufd.pinned_kb" "$2")" -eq "$IOF_KB"
	expect "$1/vhost-vdpa-kb" "$(jget "$3.iommufd.vhost_vdpa_kb" "$2")" -eq "$VDPA_KB"
	expect "$1/vhost-vdpa-repinned" "$(jget "$3.iommufd.vhost_vdpa_repinned" "$2")" = "$(mixed_repinned "$4")"
	if [ "$4" = C ]; then _how=re-pinned; else _how=moved; fi
	if jget "$3.path_reason" "$2" | grep -q "IOMMU_IOAS_CHANGE_PROCESS ($IOF_KB kB move; vhost-vdpa $VDPA_KB kB $_how)"; then
		t_ok "$1/path-reason-vhost-vdpa-$_how"
	else
		t_fail "$1/path-reason-vhost-vdpa-$_how" "$(jget "$3.path_reason" "$2")"
	fi
	expect "$1/accounting-user" "$(jget "$3.iommufd.accounting" "$2")" = user
}
# edu_report TAG FILE KEPT MOVES: minivmm's edu line at its end
edu_report() {
	expect "$1/edu-fails-0" "$(val "$2" edu: fails)" -eq 0
	expect "$1/edu-checks-ok" "$(val "$2" edu: ok)" -eq "$(val "$2" edu: checks)"
	expect "$1/edu-previous-copy-kept" "$(val "$2" edu: kept)" -eq "$3"
	expect "$1/edu-moves" "$(val "$2" edu: moves)" -eq "$4"
}
# edu_moved TAG FILE WHO PATH: minivmm's image WHO (successor, restarted, reclaimed) called CHANGE_PROCESS
# once it had the vhost-vdpa share (re-pinned on C, moved by VHOST_NEW_OWNER on A and B): its VmPin from
# 16384 to 17408 kB exactly
edu_moved() {
	if grep -q "edu $3: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" "$2"; then
		t_ok "$1/edu-moved-after-$(mixed_share "$4")"
	else
		t_fail "$1/edu-moved-after-$(mixed_share "$4")" "$(grep "edu $3" "$2" | tr '\n' ' ')"
	fi
}
# (vlud.log lines so far: a spawned process's output starts after them)
vlines() { wc -l < vlud.log; }
# release TAG INSTANCE (its VMMs have exited): the held fds go, vlud's fd count back to where it was
# before the first VMM (no leak), and the next case may open vdpa0 and bind the VFIO device afresh
release() {
	vctl release "$2" > /dev/null 2>&1
	expect "$1/released" "$?" -eq 0
	wait_until 100 nfds_is "$VLUD_PID" "$FD_BASE"
	expect "$1/vlud-fds-back" "$(nfds "$VLUD_PID")" -eq "$FD_BASE"
}
# spawned_pid: the successor vlud spawned last (transfer mode)
spawned_pid() { sed -n 's/.*spawned successor .* as pid \([0-9]*\).*/\1/p' vlud.log | tail -1; }

# mixed_exec_ok TAG INSTANCE PATH: exec mode, ok: one verdict with both parts, zero frames lost, edu DMA'd
# from the new image after its CHANGE_PROCESS, vluctl's status row with both shares
mixed_exec_ok() {
	mvm "$1" "$2"
	update_ok "$1" "$2" exec "$3" pa
	mixed_verdict "$1" "$1.verdict" "" "$3"
	expect "$1/charge-moved-kb" "$(jget .iommufd.charge_moved_kb "$1.verdict")" -eq "$IOF_KB"
	edu_moved "$1" "$1.log" successor "$3"
	if grep -q "edu successor: DMA ok, generation 1, generation 0's copy kept" "$1.log"; then t_ok "$1/edu-dma-new-image"; else t_fail "$1/edu-dma-new-image" "$(grep 'edu' "$1.log" | tail -3 | tr '\n' ' ')"; fi
	# the operator's table of the same verdict (vluctl update status): both shares on one row
	vctl update status "$2" > "$1.ustatus" 2>&1
	sed "s/^/[$1 update status] /" "$1.ustatus"
	_rp=
	[ "$3" = C ] && _rp=' (re-pinned)'
	if grep -q "^iommufd  *$IOF_KB kB (user accounting), moved by CHANGE_PROCESS on \[\"iommufd:iommu\"\]; vhost-vdpa $VDPA_KB kB$_rp\$" "$1.ustatus" &&
		grep -q "^VmPin  *expected $EXP_KB kB, .* moved ok\$" "$1.ustatus"; then
		t_ok "$1/vluctl-status-both-shares"
	else
		t_fail "$1/vluctl-status-both-shares" "$(grep -e '^iommufd' -e '^VmPin' "$1.ustatus" | tr '\n' ' ')"
	fi
	wait_vmm "$1"
	# minivmm's own VmPin record is its vhost-vdpa device's (read after its take-over, before the edu's move)
	VERDICT_EXP=$VDPA_KB
	check_vmm_after "$1" "$3"
	edu_report "$1" "$1.out" 1 1
	release "$1" "$2"
}

# mixed_transfer_ok TAG INSTANCE PATH [KNOB...]: transfer mode, ok (vlud spawns the successor, with the
# test KNOBs if given; its output goes to vlud.log): the same, the old VMM at 0 kB after.  The successor's
# output is checked as TAGn.  MIXED_BEFORE_UPDATE, if set, names a function run right before the update.
mixed_transfer_ok() {
	_tag=$1 _inst=$2 _path=$3
	shift 3
	mvm "$_tag" "$_inst"
	n0=$(vlines)
	# (a scenario's hook before the update: the old VMM's pid is $VMM_PID, vlud.log's lines so far $n0)
	[ -z "${MIXED_BEFORE_UPDATE:-}" ] || "$MIXED_BEFORE_UPDATE"
	if [ $# -gt 0 ]; then
		update_ok "$_tag" "$_inst" transfer "$_path" pa "$(knob_argv "$_inst" "$@")"
	else
		update_ok "$_tag" "$_inst" transfer "$_path" pa
	fi
	mixed_verdict "$_tag" "$_tag.verdict" "" "$_path"
	expect "$_tag/old-vmpin-after-0" "$(jget .vmpin.old_after_kb "$_tag.verdict")" -eq 0
	expect "$_tag/old-vmpin-before" "$(jget .vmpin.old_before_kb "$_tag.verdict")" -eq "$EXP_KB"
	expect "$_tag/new-vmpin-after" "$(jget .vmpin.new_after_kb "$_tag.verdict")" -eq "$EXP_KB"
	expect "$_tag/charge-moved-kb" "$(jget .iommufd.charge_moved_kb "$_tag.verdict")" -eq "$IOF_KB"
	wait "$VMM_PID"
	expect "$_tag/old-exits-0-after-commit" "$?" -eq 0
	sed "s/^/[$_tag old] /" "$_tag.log" "$_tag.out"
	wait_until 300 successor_ended "$NEW_PID"
	sleep 0.2
	tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > "${_tag}n.out"
	cp "${_tag}n.out" "${_tag}n.log"
	st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
	RC=$((${st:-0x100} >> 8))
	edu_moved "$_tag" "${_tag}n.out" successor "$_path"
	VERDICT_EXP=$VDPA_KB
	check_vmm_after "${_tag}n" "$_path"
	edu_report "${_tag}n" "${_tag}n.out" 1 1
	release "$_tag" "$_inst"
}

# mixed_exec_die TAG INSTANCE PATH: exec mode, the new image dies with the charge after its claim: the
# previous binary restarted takes the vhost-vdpa device on PATH and the charge
mixed_exec_die() {
	mvm "$1" "$2"
	n0=$(vlines)
	vctl --json --timeout 30000 call update.start "{\"instance\":\"$2\",\"mode\":\"exec\",\"path\":\"$3\",$(knob_argv "$2" --test-edu-die-after-move)}" > "$1.reply" 2>&1
	ustatus "$2" "$1.status"
	expect "$1/rolled-back" "$(jget .last.result "$1.status")" = rolled-back
	expect "$1/restarted-previous" "$(jget .last.restarted_previous "$1.status")" = true
	if jget .last.error "$1.status" | grep -q "exited in phase restore"; then t_ok "$1/reason-exit-after-claim"; else t_fail "$1/reason-exit-after-claim" "$(jget .last.error "$1.status")"; fi
	mixed_verdict "$1" "$1.status" .last "$3"
	if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" "$1.log" && grep -q "test: exiting with the edu's charge" "$1.log"; then
		t_ok "$1/died-with-the-charge"
	else
		t_fail "$1/died-with-the-charge" "$(grep -e 'edu successor' -e 'test: exiting' "$1.log" | tr '\n' ' ')"
	fi
	np=$(jget .last.new_pid "$1.status")
	expect "$1/restarted-vmpin-both-shares" "$(vmpin "$np")" -eq "$EXP_KB"
	expect "$1/instance-pid-is-restarted" "$(inpid "$2")" = "$np"
	st=$(devstatus)
	expect "$1/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	wait "$VMM_PID" 2> /dev/null
	wait_until 300 successor_ended "$np"
	sleep 0.2
	tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > "${1}r.out"
	sed "s/^/[$1 restarted] /" "${1}r.out"
	if grep -q "edu restarted: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" "${1}r.out"; then t_ok "$1/restarted-took-the-charge"; else t_fail "$1/restarted-took-the-charge" "$(grep 'edu restarted' "${1}r.out" | tr '\n' ' ')"; fi
	if grep -q "edu restarted: DMA ok, generation 1, generation 0's copy kept" "${1}r.out"; then t_ok "$1/restarted-edu-dma"; else t_fail "$1/restarted-edu-dma" "$(grep 'edu restarted' "${1}r.out" | tr '\n' ' ')"; fi
	expect "$1/restarted-exit-1-update-not-done" "$(sed -n "s/.*successor pid $np ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)" = 0x100
	expect "$1/restarted-only-the-update-failed" "$(grep '^fail:' "${1}r.out" | grep -vc 'update 1')" -eq 0
	expect "$1/traffic-none-lost" "$(val "${1}r.out" traffic: lost)" -eq 0
	expect "$1/traffic-all-echoed" "$(val "${1}r.out" traffic: echoed)" -eq "$(val "${1}r.out" traffic: sent)"
	expect "$1/traffic-ran-on" "$(val "${1}r.out" traffic: sent)" -gt "$RAN_ON_MIN"
	edu_report "${1}r" "${1}r.out" 1 1
	release "$1" "$2"
}

# mixed_transfer_die TAG INSTANCE PATH: transfer mode, the successor dies with the charge after its claim:
# the old VMM takes both back (C: the reopened device, re-pinned; A, B: VHOST_NEW_OWNER from the dead
# successor's mm) and the charge (CHANGE_PROCESS), then update.ready
mixed_transfer_die() {
	mvm "$1" "$2"
	O=$VMM_PID
	n0=$(vlines)
	vctl --json --timeout 30000 call update.start "{\"instance\":\"$2\",\"mode\":\"transfer\",\"path\":\"$3\",$(knob_argv "$2" --test-edu-die-after-move)}" > "$1.reply" 2>&1
	ustatus "$2" "$1.status"
	expect "$1/rolled-back" "$(jget .last.result "$1.status")" = rolled-back
	if [ "$3" = C ]; then _how='reopened, re-pinned'; else _how=VHOST_NEW_OWNER; fi
	if jget .last.error "$1.status" | grep -q "exited in phase restore.*took the device back ($_how) and the iommufd charge"; then
		t_ok "$1/reason"
	else
		t_fail "$1/reason" "$(jget .last.error "$1.status")"
	fi
	mixed_verdict "$1" "$1.status" .last "$3"
	expect "$1/old-vmpin-both-shares" "$(vmpin "$O")" -eq "$EXP_KB"
	expect "$1/instance-back-with-old" "$(inpid "$2")" = "$O"
	st=$(devstatus)
	expect "$1/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	tail -n +$((n0 + 1)) vlud.log | grep -v '^<' > "${1}n.out"
	sed "s/^/[$1 successor] /" "${1}n.out"
	if grep -q "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" "${1}n.out" && grep -q "test: exiting with the edu's charge" "${1}n.out"; then
		t_ok "$1/successor-died-with-the-charge"
	else
		t_fail "$1/successor-died-with-the-charge" "$(grep -e 'edu successor' -e 'test: exiting' "${1}n.out" | tr '\n' ' ')"
	fi
	if grep -q "edu reclaimed: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" "$1.log"; then t_ok "$1/old-took-the-charge-after-$(mixed_share "$3")"; else t_fail "$1/old-took-the-charge-after-$(mixed_share "$3")" "$(grep 'edu reclaimed' "$1.log" | tr '\n' ' ')"; fi
	if [ "$3" != C ]; then
		if grep -q "rollback: owner again (VHOST_NEW_OWNER)" "$1.log"; then t_ok "$1/old-owner-again-by-new-owner"; else t_fail "$1/old-owner-again-by-new-owner" "$(grep 'rollback' "$1.log" | tr '\n' ' ')"; fi
	fi
	if grep -q "edu reclaimed: DMA ok, generation 0, generation 0's copy kept" "$1.log"; then t_ok "$1/old-edu-dma"; else t_fail "$1/old-edu-dma" "$(grep edu "$1.log" | tail -3 | tr '\n' ' ')"; fi
	if sed -n 's/.*vlud-verdict: //p' "$1.log" | jhas .result - rolled-back; then t_ok "$1/old-got-verdict-rolled-back"; else t_fail "$1/old-got-verdict-rolled-back" "no rolled-back verdict in its log"; fi
	wait_vmm "$1"
	expect "$1/old-exit-1-update-not-done" "$RC" -eq 1
	expect "$1/old-only-the-update-failed" "$(grep '^fail:' "$1.out" | grep -vc 'update 1')" -eq 0
	expect "$1/traffic-none-lost" "$(val "$1.out" traffic: lost)" -eq 0
	expect "$1/traffic-all-echoed" "$(val "$1.out" traffic: echoed)" -eq "$(val "$1.out" traffic: sent)"
	edu_report "$1" "$1.out" 1 1
	release "$1" "$2"
}

# vmlck PID: VmLck in kB (mm accounting charges mm->locked_vm besides VmPin)
vmlck() { sed -n 's/^VmLck:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2> /dev/null; }
# held_ids INSTANCE: every fd vlud holds for INSTANCE as NAME:ID/INODE, sorted, on one line
held_ids() {
	vctl --json fds "$1" > held-ids.json 2>&1
	for _n in $(jget '.fds[].name' held-ids.json | sort); do
		printf '%s:%s/%s ' "$_n" "$(jget ".fds[name=$_n].id" held-ids.json)" "$(jget ".fds[name=$_n].ino" held-ids.json)"
	done
}

# mixed_mm_refused TAG INSTANCE: the iommufd of a mixed instance in mm accounting mode (minivmm --edu-acct
# mm: VmLck 1024 kB, the iommufd share, besides VmPin 17408 kB).  vlud refuses its update up front
# (docs/IOMMUFD.md "Mixed instances"): in transfer mode, because a rollback after the successor's
# IOMMU_IOAS_CHANGE_PROCESS must end the successor before the old VMM can take the vhost-vdpa device back,
# and the old VMM's take-back would then uncharge a dead mm (the second kernel bug, which this stock
# kernel has); in exec mode by the rule that comes first (no old mm at the successor's call).  Each
# refusal: Unsupported with its reason, logged, and nothing touched (no update running, the instance
# with the same pid, the device DRIVER_OK, VmPin, VmLck, vlud's fd count, every held fd the same by id
# and inode); the VMM's traffic runs its whole duration with no frame lost, and its edu DMAs again at
# its end through the same mapping (--test-edu-final-check); no kernel warning, counted after the release
# (vlud's copy of the iommufd closes there: the last unpin of the mm-accounted mapping).  The VMM runs 25 s
# (the later --duration wins over mvm's): the ~50 vluctl and vlu-json calls of the two refusals take most of
# DUR's 9 s under TCG, and each refusal is asked of a VMM checked alive first, not of one that has ended
mixed_mm_refused() {
	_k0=$(klog_bad)
	mvm "$1" "$2" --edu-acct mm --test-edu-final-check --duration 25
	O=$VMM_PID
	if grep -q "edu: .* (mm accounting)" "$1.log"; then t_ok "$1/edu-mm-accounting"; else t_fail "$1/edu-mm-accounting" "$(grep 'edu:' "$1.log" | tr '\n' ' ')"; fi
	expect "$1/vmlck-iommufd-share" "$(vmlck "$O")" -eq "$IOF_KB"
	_pin0=$(vmpin "$O")
	_lck0=$(vmlck "$O")
	_fd0=$(nfds "$VLUD_PID")
	_ids0=$(held_ids "$2")
	echo "# $1: held $_ids0"
	expect "$1/holds-8-fds" "$(echo "$_ids0" | wc -w)" -eq 8
	for _m in transfer exec; do
		_t=$1-$_m
		if alive "$O" && in_attached_to "$2" "$O"; then
			t_ok "$_t/vmm-alive-before-start"
		else
			t_fail "$_t/vmm-alive-before-start" "pid $O ended before update.start ($(tail -2 "$1.log" | tr '\n' ' '))"
		fi
		vctl --json call update.start "{\"instance\":\"$2\",\"mode\":\"$_m\"}" > "$_t.reply" 2>&1
		expect "$_t/refused-exit-1" "$?" -eq 1
		sed "s/^/[$_t reply] /" "$_t.reply"
		expect "$_t/refusal-class" "$(jget .error.class "$_t.reply")" = Unsupported
		if [ "$_m" = transfer ]; then
			_why="an iommufd uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and the instance also holds vhost-vdpa devices: a rollback after the successor's IOMMU_IOAS_CHANGE_PROCESS must end the successor"
		else
			_why="an iommufd uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and exec mode leaves no old mm"
		fi
		if jget .error.desc "$_t.reply" | grep -qF "$_why"; then t_ok "$_t/reason"; else t_fail "$_t/reason" "$(jget .error.desc "$_t.reply")"; fi
		if [ "$_m" = exec ]; then
			# the advice that passes: user accounting, not transfer mode (refused just above)
			if jget .error.desc "$_t.reply" | grep -qF "): use user accounting (the instance also holds vhost-vdpa devices"; then t_ok "$_t/advice-user-accounting"; else t_fail "$_t/advice-user-accounting" "$(jget .error.desc "$_t.reply")"; fi
		fi
		if grep -qF "update of $2 refused: $_why" vlud.log; then t_ok "$_t/refusal-logged"; else t_fail "$_t/refusal-logged" "not in vlud's log"; fi
		untouched "$_t" "$2" "$O" "$_pin0" "$_fd0"
		expect "$_t/vmlck-unchanged" "$(vmlck "$O")" -eq "$_lck0"
		expect "$_t/held-fds-same" "$(held_ids "$2")" = "$_ids0"
	done
	wait_vmm "$1"
	traffic_ran_on "$1"
	if grep -q "edu final: DMA ok, generation 1, generation 0's copy kept" "$1.log"; then t_ok "$1/edu-dma-after-refusals"; else t_fail "$1/edu-dma-after-refusals" "$(grep edu "$1.log" | tail -3 | tr '\n' ' ')"; fi
	edu_report "$1" "$1.out" 1 0
	expect "$1/edu-checks-2" "$(val "$1.out" edu: checks)" -eq 2
	release "$1" "$2"
	if [ "$(klog_bad)" = "$_k0" ]; then t_ok "$1/no-kernel-warning"; else t_fail "$1/no-kernel-warning" "$(dmesg | grep -E 'WARNING:|BUG:' | tail -2 | tr '\n' ' ')"; fi
}

# ---- the kill-at-each-phase matrix of a mixed instance (iommufd-update-mixed-phases*.sh): lib/faults.sh's
# fault_case (the same cases, stop points, kills and end-state checks as update-faults-phases-*.sh) on
# minivmm --edu, with mixed_fault_hook asserting the iommufd part of each end state.
#
# mixed_faults: after mixed_start: lib/faults.sh's parameters for minivmm --edu (its 8 held fds, guest RAM
# 16 MiB, VmPin of whoever runs the device 17408 kB), then sources it
mixed_faults() {
	FDS_EXPECTED=$(printf '%s\n' iommufd:iommu q0-call q0-kick q1-call q1-kick ram0 vdpa:vdpa0 "vfio:${dev##*/}" | sort | tr '\n' ' ' | sed 's/ $//')
	FAULT_MEM=${MIB}M
	FAULT_VMM_ARGS="--edu $dev --pause-frames 8"
	FAULT_EXP_KB=$EXP_KB
	FAULT_DUR=${FAULT_DUR:-10}
	FAULT_HOOK=mixed_fault_hook
	. /scenarios/lib/faults.sh
}
# klog_bad: kernel problems in dmesg so far (the rig's per-scenario kernel-log check, per case here)
klog_bad() { dmesg | grep -cE 'WARNING:|BUG:|Oops|general protection|Call Trace|refcount_t|list_del corruption|UBSAN|KASAN'; }
# mf_line TAG NAME FILE ERE: ok when FILE has a line matching ERE (else the lines of FILE about the edu)
mf_line() {
	if grep -Eq -- "$4" "$3"; then t_ok "$1/$2"; else t_fail "$1/$2" "$(grep -e 'edu' "$3" | tail -4 | tr '\n' ' ')"; fi
}
# mixed_fault_hook start | orphaned | restarted|old|successor PID LOG OUT: the iommufd part of a case's end
# state (lib/faults.sh FAULT_HOOK; $T, $I, $mode, $point, $T.status are fault_case's): the verdict names
# both shares; the process that runs the device (its VmPin was asserted at 17408 kB by fault_case while it
# ran: both devices' pins, none left behind on a dead mm) took the iommufd charge from wherever it was
# with its own IOMMU_IOAS_CHANGE_PROCESS (or never lost it) and its edu DMA works (a check after the take
# or the rollback; its report: no failed check); no kernel warning during the case.  Orphaned: nobody
# runs the device, vlud keeps the iommufd with the rest (fault_case: every fd), and `after` shows the edu
# working again for a fresh VMM once the instance is released.
mixed_fault_hook() {
	if [ "$1" = start ]; then
		MF_K0=$(klog_bad)
		return 0
	fi
	_o=$1 _log=${3:-} _out=${4:-}
	expect "$T/verdict-expected-kb-both-shares" "$(jget .last.vmpin.expected_kb "$T.status")" -eq "$EXP_KB"
	expect "$T/verdict-iommufd-pinned-kb" "$(jget .last.iommufd.pinned_kb "$T.status")" -eq "$IOF_KB"
	_cp="IOMMU_IOAS_CHANGE_PROCESS in .* kB"
	case $_o in
	restarted)
		# the previous binary restarted takes the vhost-vdpa share on the path, then the charge from the
		# dead image's mm (the old image's, or the new image's once it had called CHANGE_PROCESS)
		mf_line "$T" restarted-took-the-charge "$_log" "edu restarted: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB"
		mf_line "$T" restarted-edu-dma "$_log" "edu restarted: DMA ok"
		if [ "$point" = ready ]; then
			mf_line "$T" new-image-had-the-charge "$T.log" "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB"
		fi
		_checks=1
		;;
	old)
		# the old VMM: after the successor's CHANGE_PROCESS (ready) it takes the charge from the dead
		# successor's mm (VmPin 16384 -> 17408 kB: its vhost-vdpa share back first); after a claim
		# without it (claimed) its own call is a no-op (17408 -> 17408 kB); before any claim (claim) vlud
		# names no iommufd and nothing moved: its DMA check alone
		case $point in
		ready) mf_line "$T" old-took-the-charge-from-dead-successor "$_log" "edu reclaimed: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB" ;;
		claimed) mf_line "$T" old-charge-never-left "$_log" "edu reclaimed: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $EXP_KB -> $EXP_KB kB" ;;
		*) if grep -q "edu reclaimed: $_cp" "$_log"; then t_fail "$T/old-nothing-to-take" "$(grep 'edu reclaimed' "$_log" | tr '\n' ' ')"; else t_ok "$T/old-nothing-to-take"; fi ;;
		esac
		if [ "$point" = claim ]; then _w=rolled-back; else _w=reclaimed; fi
		mf_line "$T" "old-edu-dma-$_w" "$_log" "edu $_w: DMA ok, generation 0, generation 0's copy kept"
		if [ "$point" != claim ]; then
			if jget .last.error "$T.status" | grep -q "took the device back (.*) and the iommufd charge (IOMMU_IOAS_CHANGE_PROCESS; VmPin $EXP_KB kB)"; then
				t_ok "$T/reason-device-and-charge-back"
			else
				t_fail "$T/reason-device-and-charge-back" "$(jget .last.error "$T.status")"
			fi
		fi
		if [ "$point" = ready ]; then
			mf_line "$T" successor-had-the-charge "$T-succ.log" "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB"
		fi
		_checks=2
		;;
	successor)
		# the old VMM died (with the charge on its mm, or after the successor's call): the successor moved
		# it from there and completed the update
		mf_line "$T" successor-took-the-charge "$_log" "edu successor: IOMMU_IOAS_CHANGE_PROCESS in .* VmPin $VDPA_KB -> $EXP_KB kB"
		mf_line "$T" successor-edu-dma "$_log" "edu successor: DMA ok, generation 1, generation 0's copy kept"
		expect "$T/verdict-charge-moved-kb" "$(jget .last.iommufd.charge_moved_kb "$T.status")" -eq "$IOF_KB"
		_checks=1
		;;
	esac
	if [ -n "$_out" ]; then
		expect "$T/$_o-edu-checks" "$(val "$_out" edu: checks)" -eq "$_checks"
		expect "$T/$_o-edu-checks-ok" "$(val "$_out" edu: ok)" -eq "$_checks"
		expect "$T/$_o-edu-fails-0" "$(val "$_out" edu: fails)" -eq 0
	fi
	_k1=$(klog_bad)
	if [ "$_k1" = "$MF_K0" ]; then t_ok "$T/no-kernel-warning"; else t_fail "$T/no-kernel-warning" "$(dmesg | grep -E 'WARNING:|BUG:' | tail -2 | tr '\n' ' ')"; fi
}
