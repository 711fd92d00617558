#!/bin/sh
# sysd-p5-update-interrupted: vlud.service killed (`kill -9`, Restart=on-failure) and restarted (`systemctl
# restart vlud`) in the middle of a live update (exec mode, path A, patched modules, PA) of a minivmm service of
# user vmm that stops itself (MINIVMM_TEST_STOP_AT) at a point of the update:
#   save     the device SUSPENDed, vlud waits for update.saved (phase save)
#   claimed  the new image has claimed every fd (phase restore, vlud waits for update.ready)
# Each time: the new vlud has every fd back from systemd's fd store (the same held names, the same memfd
# inodes, the same device node held the whole time: busy throughout, by device number and inode: fd paths
# show vlud.service's mount namespace), the update ended as docs/UPDATE.md says (kill -9: "vlud restarted
# during the update", the device RESUMEd before the hand-over, nothing resumed after the claim; restart:
# row R10, the stopping vlud RESUMEs and ends it), exactly one verdict (update.status and the journal), and
# the VMM, continued, carries on (save: takes its datapath back; claimed: the new image takes the device over
# and RESUMEs it, the update done on its side), reattaches, and its traffic runs with 0 frames lost.
# root: debian
# modules: patched
# timeout: 600
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
SOCK=/run/vlud/vlud.sock
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
# the VMM waits stopped in phase save or restore: deadlines far above that
sysd_policy '"timeouts": { "update": { "save_ms": 60000, "commit_ms": 60000 } }'

# shellcheck disable=SC2317 # called by wait_until
sysd_vmm_up() { grep -q "running:" "/run/$1.log" 2> /dev/null || ! active "$1.service"; }
# shellcheck disable=SC2317 # called by wait_until
restarted() { [ "$(mainpid)" != "$1" ] && [ "$(mainpid)" != 0 ] && active vlud.service; }

# interrupted TAG STOP-AT HOW: a minivmm service vmm-TAG that stops itself at STOP-AT (save, claimed) of an
# exec-mode path-A update; vlud interrupted there by HOW (kill9, restart); what the new vlud has and says;
# the VMM continued
interrupted() {
	tag=$1 at=$2 how=$3 u=vmm-$1
	ph=$at
	[ "$at" = claimed ] && ph=restore
	VMM_STOP_AT=$at vmm_unit "$u" --mem 64M --duration 0 --pause-frames 8
	wait_until 300 sysd_vmm_up "$u"
	pid=$(vmm_pid "$u.service")
	wait_until 100 in_attached_to "$u" "$pid"
	sleep 1 # fd.store and vmm.mappings after the bring-up
	v0=$(mainpid)
	names0=$(held_list "$u")
	ino0=$(inodes "$v0")
	dev0=$(vdpa_files "$v0")
	pin0=$(vmpin "$pid")
	echo "# $tag: vmm pid $pid, held: $names0; memfd inodes: $ino0; device files: $dev0; stored: $(nstored)"
	expect "$tag/six-held" "$(held "$u")" -eq 6
	expect "$tag/one-device-fd-held" "$(echo "$dev0" | wc -w)" -eq 1
	expect "$tag/vmpin-pinned" "${pin0:-0}" -gt 0

	vctl --json call update.start "{\"instance\":\"$u\",\"mode\":\"exec\",\"path\":\"A\",\"wait\":false}" > "$tag.start" 2>&1
	sed "s/^/[$tag update.start] /" "$tag.start"
	uid=$(jget .id "$tag.start")
	expect "$tag/update-started" "${uid:-0}" -gt 0
	wait_until 150 is_stopped "$pid"
	if is_stopped "$pid"; then t_ok "$tag/vmm-stopped-at-$at"; else t_fail "$tag/vmm-stopped-at-$at" "$(grep State "/proc/$pid/status")"; fi
	expect "$tag/running-in-phase-$ph" "$(vctl --json call update.status "{\"instance\":\"$u\"}" 2>&1 | jget .running.phase)" = "$ph"

	n0=$(prop vlud.service NRestarts)
	if [ "$how" = kill9 ]; then
		kill -9 "$v0"
		wait_until 100 restarted "$v0"
		expect "$tag/restarted-by-systemd" "$(prop vlud.service NRestarts)" -eq $((n0 + 1))
	else
		systemctl restart vlud.service
		expect "$tag/systemctl-restart" "$?" -eq 0
	fi
	v1=$(mainpid)
	expect "$tag/new-vlud" "$v1" -ne "$v0"
	expect "$tag/service-active" "$(systemctl is-active vlud.service)" = active
	wait_until 50 has_instance "$u"
	fd_base=$(nfds "$v1")
	expect "$tag/same-held-names" "$(held_list "$u")" = "$names0"
	expect "$tag/same-memfd-inodes" "$(inodes "$v1")" = "$ino0"
	expect "$tag/same-device-file" "$(vdpa_files "$v1")" = "$dev0"
	if dev_busy; then t_ok "$tag/device-held-throughout"; else t_fail "$tag/device-held-throughout" "/dev/vhost-vdpa-0 could be opened"; fi
	expect "$tag/store-kept" "$(nstored)" -ge 6

	# the outcome: one verdict, the one docs/UPDATE.md gives for this phase and this end of vlud
	vctl --json call update.status "{\"instance\":\"$u\"}" > "$tag.ustatus" 2>&1
	sed "s/^/[$tag update.status after] /" "$tag.ustatus"
	expect "$tag/no-update-running" "$(jget .running "$tag.ustatus")" = null
	expect "$tag/verdict-id" "$(jget .last.id "$tag.ustatus")" -eq "$uid"
	expect "$tag/verdict-failed" "$(jget .last.result "$tag.ustatus")" = failed
	expect "$tag/verdict-path-A" "$(jget .last.path "$tag.ustatus")" = A
	err=$(jget .last.error "$tag.ustatus")
	if [ "$how" = kill9 ]; then
		expect "$tag/verdict-interrupted-by-restart" "$(jget .last.interrupted_by_restart "$tag.ustatus")" = true
		# reserved to the VMM that owns the device (exec mode: one process); the reservation's pidfd closes
		# at its reattach, so it is not among the fds the new vlud keeps
		expect "$tag/reserved-to-the-vmm" "$(jget .last.reattach_reserved_for "$tag.ustatus")" -eq "$pid"
		fd_base=$((fd_base - 1))
		case $err in "vlud restarted during the update (phase $ph): "*) t_ok "$tag/verdict-reason" ;; *) t_fail "$tag/verdict-reason" "$err" ;; esac
		if [ "$at" = save ]; then
			if jhas .last.resumed "$tag.ustatus" '["vdpa:vdpa0"]'; then t_ok "$tag/device-resumed"; else t_fail "$tag/device-resumed" "resumed: $(jget .last.resumed "$tag.ustatus")"; fi
		else
			if jhas .last.resumed "$tag.ustatus" '[]'; then t_ok "$tag/nothing-resumed"; else t_fail "$tag/nothing-resumed" "resumed: $(jget .last.resumed "$tag.ustatus")"; fi
		fi
	else
		case $err in *"the daemon is stopping during phase $ph"*"devices resumed"*) t_ok "$tag/verdict-reason" ;; *) t_fail "$tag/verdict-reason" "$err" ;; esac
	fi
	st=$(jget '.last.status_after[device=vdpa:vdpa0].status' "$tag.ustatus")
	expect "$tag/device-driver-ok" "$((${st:-0} & 4))" -eq 4
	sysd_journal
	grep -E "update $uid of $u: (ok|failed|rolled-back)( |:)" vlud.log > "$tag.verdicts"
	sed "s/^/[$tag verdict logged] /" "$tag.verdicts"
	expect "$tag/exactly-one-verdict" "$(wc -l < "$tag.verdicts")" -eq 1

	# the VMM carries on: it finds vlud gone, takes the device (back), reattaches, runs traffic
	kill -CONT "$pid"
	wait_until 100 in_attached_to "$u" "$pid"
	if in_attached_to "$u" "$pid"; then t_ok "$tag/vmm-reattached"; else t_fail "$tag/vmm-reattached" "$(vctl instances 2>&1 | tr '\n' ' ')"; fi
	if grep -q "vlud is gone" "/run/$u.log"; then t_ok "$tag/vmm-saw-vlud-gone"; else t_fail "$tag/vmm-saw-vlud-gone" "not in its log"; fi
	if [ "$at" = claimed ] && [ "$how" = restart ]; then
		# R10 RESUMEd the device with nobody driving it: it completed the frames queued in the pause, so
		# its bases are past the saved ones, but the drive mark is the saved one: not a stale state
		# (docs/UPDATE.md "The device alone moving on is not a stale state")
		if grep -q "with nobody driving it" "/run/$u.log"; then t_ok "$tag/device-ran-undriven-taken-over"; else t_fail "$tag/device-ran-undriven-taken-over" "not in its log"; fi
	fi
	sleep 3 # traffic after the resume
	expect "$tag/vmpin-unchanged" "$(vmpin "$pid")" -eq "$pin0"
	systemctl stop "$u.service"
	wait_until 100 unit_done "$u.service"
	cp "/run/$u.out" "$tag.out"
	sed "s/^/[$u] /" "/run/$u.log" "$tag.out"
	f=$tag.out
	expect "$tag/vmm-connected-at-end" "$(val "$f" vlud: connected)" -eq 1
	expect "$tag/vmm-zero-lost" "$(val "$f" traffic: lost)" -eq 0
	expect "$tag/vmm-zero-dup" "$(val "$f" traffic: dup)" -eq 0
	expect "$tag/vmm-all-echoed" "$(val "$f" traffic: echoed)" -eq "$(val "$f" traffic: sent)"
	expect "$tag/vmm-update-lost-0" "$(val "$f" "update 1:" lost)" -eq 0
	expectf "$tag/vmm-echo-after-the-resume" "$(val "$f" "update 1:" pause_echo_gap_ms)" '>' 0
	expect "$tag/vmm-traffic-ran" "$(val "$f" traffic: sent)" -gt 1000
	# the VMM is gone (instance orphaned): the new vlud has the fds it had right after its start
	wait_until 30 nfds_is "$v1" "$fd_base"
	expect "$tag/no-fd-leak-in-new-vlud" "$(nfds "$v1")" -eq "$fd_base"
	expect "$tag/every-fd-still-held" "$(held_list "$u")" = "$names0"
	vctl release "$u"
	expect "$tag/release" "$?" -eq 0
}

interrupted kill9-save save kill9
interrupted restart-save save restart
interrupted kill9-claimed claimed kill9
interrupted restart-claimed claimed restart
exit $((FAILS > 0))
