#!/bin/sh
# shellcheck disable=SC2034 # VLUD_*, UPD_*: read by lib/vlud.sh (vlud_conf)
# lib/soak.sh: the chaos soak (docs/SOAK.md; sourced by soak-*.sh, built on lib/update.sh and
# lib/daemon-killed.sh).  One instance, vm0, runs minivmm with traffic; live updates run back to back on every
# path the modules offer, in exec and transfer mode, and at a random moment of each (seeded) one or two
# processes get SIGKILL: the VMM (in exec mode the old image or the new one, whichever runs), the transfer
# successor, or vlud (restarted by vlu-fdstore with its fd store, as systemd would).  After every kill, once
# things settle, the invariants are checked; the first violation stops the run (not ok, with the seed, the
# kill's timing and the logs).  The plan (schedule) aims most kills at a phase of the update: the update is
# started by `vluctl update start`, whose phase events the soak reads, and the kill comes a seeded
# sub-delay after the aimed phase began; the rest come a seeded delay after update.start's reply.
#
#   SOAK_KILLS    kills (default 1000)
#   SOAK_SEED     the schedule's seed (default 1): the same seed gives the same schedule
#   SOAK_SPAN_MS  a kill of the plan's delay mode comes 0..1.15 x SPAN ms after update.start's reply
#                 (default: each mode and path's own span, measured by one update without a kill at the start
#                 and printed; most kills then land inside the update, some after it ended)
#   SOAK_PLAN     mixed (default: 3 kills in 4 aimed at a phase, 1 in 4 after a delay), phase or delay (every
#                 kill so; the same seed gives the same targets, modes and paths, to compare the two)
#   SOAK_TRAFFIC_EVERY  every N kills (and at the end) the VMM is stopped and its traffic report checked
#                 (default 4)
#   SOAK_STALL_S  the watchdog: a kill that has not settled and been checked after this many seconds (every
#                 wait of one kill is bounded, all of them together well below the default 240) is a stall:
#                 what every process is doing (state, kernel stack, wchan), sysrq's blocked tasks and CPU
#                 backtraces and vlud's log are printed, and the run stops (not ok) instead of timing out mute
#
# One TAP line per kill ("ok - soak/kill-N # what, aim, hit phase, outcome, recovery"), the summary as
# comment lines and in soak-report.txt.
. /scenarios/lib/update.sh
. /scenarios/lib/daemon-killed.sh

SOAK_KILLS=${SOAK_KILLS:-1000}
SOAK_SEED=${SOAK_SEED:-1}
SOAK_SPAN_MS=${SOAK_SPAN_MS:-}
SOAK_PLAN=${SOAK_PLAN:-mixed}
SOAK_TRAFFIC_EVERY=${SOAK_TRAFFIC_EVERY:-4}
SOAK_STALL_S=${SOAK_STALL_S:-240}
INST=vm0
W=$PWD

# ---- helpers
# now_cs: monotonic time in centiseconds (/proc/uptime)
now_cs() {
	# the shell's own read: no process to start (tens of ms under TCG, as long as a short update phase)
	read -r _up _ < /proc/uptime
	echo "${_up%.*}${_up#*.}"
}
# live_vmms: pids of live minivmm processes (zombies left out), one a line; the shell's own reads (a cat
# per process costs a second for the walk under TCG, and a successor's kill waits for it)
live_vmms() {
	for _d in /proc/[0-9]*; do
		read -r _c 2> /dev/null < "$_d/comm" || continue
		[ "$_c" = minivmm ] || continue
		# stat: "PID (minivmm) STATE ..."
		read -r _ _ _c _ 2> /dev/null < "$_d/stat" || continue
		[ "$_c" = Z ] && continue
		echo "${_d#/proc/}"
	done
}
# now_us: realtime in us (busybox ash's EPOCHREALTIME: no process to start), into NOW_US
now_us() {
	# shellcheck disable=SC3028 # the guest's sh is busybox ash
	_e=$EPOCHREALTIME
	NOW_US=${_e%.*}${_e#*.}
}
# clock_offset: CLOCK_OFF = realtime - monotonic in us (the verdict's started_monotonic_us is monotonic;
# /proc/uptime, boottime = monotonic in a guest that never suspends, ticks in centiseconds): the realtime
# read just after /proc/uptime turned over, the least of 3 (each is late by the loop's round at most)
clock_offset() {
	CLOCK_OFF=
	for _i in 1 2 3; do
		read -r _u0 _ < /proc/uptime
		while read -r _u _ < /proc/uptime && [ "$_u" = "$_u0" ]; do :; done
		now_us
		_o=$((NOW_US - ${_u%.*}${_u#*.}0000))
		if [ -z "$CLOCK_OFF" ] || [ "$_o" -lt "$CLOCK_OFF" ]; then CLOCK_OFF=$_o; fi
	done
}
# vmpin_sum: VmPin of every live process, summed (kB)
vmpin_sum() { cat /proc/[0-9]*/status 2> /dev/null | awk '/^VmPin:/ { s += $2 } END { print s + 0 }'; }
vmpin_sum_is() { [ "$(vmpin_sum)" -eq "$1" ]; }
# fdset: the fds vlud holds for vm0 as "name type ino", sorted
fdset() {
	_fj=$(vctl --json fds "$INST" 2> /dev/null) || return 1
	for _n in $(echo "$_fj" | jget '.fds[].name' | sort); do
		echo "$_n $(echo "$_fj" | jget ".fds[name=$_n].type") $(echo "$_fj" | jget ".fds[name=$_n].ino")"
	done
}
# kernel_bad: kernel warnings, BUGs and oopses so far
kernel_bad() { dmesg | grep -cE 'WARNING:|BUG:|Oops|general protection|Call Trace'; }
# vlud_nfds_is N: vlud (the current one) has N fds
vlud_nfds_is() { nfds_is "$(vlud_pid)" "$1"; }
vlud_answers() { vctl --json status > /dev/null 2>&1; }

# violation WHAT: stop the run: not ok with the seed and the kill's timing, the logs
violation() {
	t_fail "kill-$K" "$1 (seed $SOAK_SEED, kill $K: $KDESC)"
	echo "# soak: stopped at kill $K of $SOAK_KILLS; replay with SOAK_SEED=$SOAK_SEED SOAK_KILLS=$K"
	[ -z "$EVS" ] || printf '%s' "$EVS" | sed 's/^/[vluctl update start] /'
	vctl instances 2>&1 | sed 's/^/[instances] /'
	vctl fds 2>&1 | sed 's/^/[fds] /'
	vctl --json call update.status "{\"instance\":\"$INST\"}" 2>&1 | sed 's/^/[update.status] /'
	for _p in $(live_vmms); do echo "[ps] minivmm $_p VmPin $(vmpin "$_p") $(tr '\0' ' ' < "/proc/$_p/cmdline")"; done
	tail -n 150 vlud.log | sed 's/^/[vlud] /'
	for _f in gen-*.log; do [ -f "$_f" ] && tail -n 40 "$_f" | sed "s/^/[$_f] /"; done
	dmesg | tail -n 60 | sed 's/^/[dmesg] /'
	summary
	exit 1
}

# ---- the VMM lineage: minivmm started by the soak; its exec'ed images and successors carry on its traffic
# counters and write its report (--report) when the last of them ends normally
GEN=0
start_lineage() {
	progress
	GEN=$((GEN + 1))
	rm -f "$W/report"
	minivmm --vlud "$SOCK" --instance "$INST" --vdpa vdpa0 --mem 64M --duration 0 --pause-frames 8 \
		--report "$W/report" > "gen-$GEN.out" 2> "gen-$GEN.log" &
	_p=$!
	wait_until 600 vmm_up "gen-$GEN.log" "$_p"
	wait_until 100 in_attached_to "$INST" "$_p" || violation "a new VMM (pid $_p) did not attach: $(tail -n 3 "gen-$GEN.log" | tr '\n' ' ')"
	sleep 1 # fd.store and vmm.mappings after the bring-up
	LPID=$_p
	# the held fds of this lineage (the memfd is new): names and types as the first lineage's
	wait_until 50 test "$(fdset | wc -l)" -eq "$NFDS0" || violation "lineage $GEN: $(fdset | wc -l) fds held, expected $NFDS0"
	fdset > fds-base.txt
	if [ -n "$NAMES0" ] && [ "$(cut -d' ' -f1,2 fds-base.txt | tr '\n' ' ')" != "$NAMES0" ]; then
		violation "lineage $GEN holds $(cut -d' ' -f1,2 fds-base.txt | tr '\n' ' '), the first held $NAMES0"
	fi
}

# stop_lineage: SIGTERM to the VMM that runs the lineage now, its report checked (every frame echoed once,
# none lost, duplicated or corrupt), the instance released
stop_lineage() {
	progress
	rm -f "$W/report"
	kill -TERM "$LPID" 2> /dev/null
	wait_until 200 sh -c "! kill -0 $LPID 2> /dev/null && test -f '$W/report'" ||
		violation "the VMM (pid $LPID) did not end with a report after SIGTERM"
	_r=$W/report
	sed "s/^/[report $GEN] /" "$_r"
	_sent=$(val "$_r" traffic: sent)
	[ "${_sent:-0}" -gt 0 ] || violation "lineage $GEN: no frame sent: $(grep traffic: "$_r")"
	if [ "$(val "$_r" traffic: lost)" != 0 ] || [ "$(val "$_r" traffic: dup)" != 0 ] ||
		[ "$(val "$_r" traffic: corrupt)" != 0 ] || [ "$(val "$_r" traffic: echoed)" != "$_sent" ]; then
		violation "lineage $GEN traffic: $(grep traffic: "$_r")"
	fi
	TRAFFIC_CHECKS=$((TRAFFIC_CHECKS + 1))
	FRAMES=$((FRAMES + _sent))
	release_instance
}

release_instance() {
	# a VMM that ended leaves its instance orphaned (vlud keeps every fd until released)
	wait_until 50 instate_is "$INST" orphaned || violation "instance $(instate "$INST") after its VMM ended, expected orphaned"
	vctl release "$INST" > release.out 2>&1
	wait_until 100 sh -c "! vluctl --socket $SOCK --json instances 2> /dev/null | grep -q '\"$INST\"'" ||
		violation "instance still listed after release: $(cat release.out)"
	# nothing of the released instance stays pinned on a live process
	wait_until 100 vmpin_sum_is 0 || violation "VmPin $(vmpin_sum) kB on live processes after the release"
}

# ---- settling after a kill
# settled: vlud answers, no update runs, and either the instance is attached to a live VMM that is the
# only minivmm left, or it is orphaned with no minivmm left (nobody can bring it back but the soak)
settled() {
	vctl --json call update.status "{\"instance\":\"$INST\"}" 2> /dev/null | jhas .running - null || return 1
	_ij=$(vctl --json instances 2> /dev/null) || return 1
	_vm=$(live_vmms)
	case $(echo "$_ij" | jget ".instances[name=$INST].state") in
	attached)
		[ "$_vm" = "$(echo "$_ij" | jget ".instances[name=$INST].pid")" ] && SETTLED=attached && return 0 ;;
	orphaned)
		[ -z "$_vm" ] && SETTLED=orphaned && return 0 ;;
	esac
	return 1
}

# check_attached: the invariants while a VMM runs the instance
check_attached() {
	LPID=$(inpid "$INST")
	fdset > fds-now.txt
	cmp -s fds-base.txt fds-now.txt || violation "held fds changed: $(diff fds-base.txt fds-now.txt | grep '^[-+][^-+]' | tr '\n' ' ')"
	wait_until 50 vmpin_sum_is "$PIN0" || violation "VmPin of live processes $(vmpin_sum) kB, expected $PIN0 kB once (VMM $LPID: $(vmpin "$LPID"))"
	_st=$(vctl --json devices 2> /dev/null | jget '.devices[name=vdpa0].status')
	[ $((${_st:-0} & 0xc4)) -eq 4 ] || violation "device status ${_st:-unread} under VMM $LPID (DRIVER_OK expected)"
	_n=$(vlud_pid)
	wait_until 50 vlud_nfds_is "$FD0" || violation "vlud (pid $_n) has $(nfds "$_n") fds, baseline $FD0"
}

# check_verdict: the update that was started has exactly one verdict, consistent with the processes
check_verdict() {
	vctl --json call update.status "{\"instance\":\"$INST\"}" > verdict.json 2>&1
	_id=$(jget .last.id verdict.json)
	OUTCOME=$(jget .last.result verdict.json)
	[ "$_id" = "$UID_" ] || violation "the last verdict is of update ${_id:-none}, the update started was $UID_"
	case $OUTCOME in ok | rolled-back | failed) ;; *) violation "verdict result '$OUTCOME'" ;; esac
	# what the VMMs were told (minivmm logs each verdict it gets as "vlud-verdict: {...}"; the successors
	# vlud spawned log into vlud.log) is what vlud recorded
	_told=$(cat gen-*.log vlud.log 2> /dev/null | sed -n 's/.*vlud-verdict: //p' | jget -s "[id=$UID_].result" | sort -u | tr '\n' ' ')
	[ -z "$_told" ] || [ "$_told" = "$OUTCOME " ] || violation "vlud recorded '$OUTCOME' for update $UID_, a VMM was told '$_told'"
	if [ "$OUTCOME" = ok ] && [ "$SETTLED" = attached ] && [ "$VMM_KILLED" = 0 ]; then
		_np=$(jget .last.new_pid verdict.json)
		[ "$_np" = "$(inpid "$INST")" ] || violation "verdict ok with new_pid $_np, the instance runs under $(inpid "$INST")"
	fi
	[ "$OUTCOME" = failed ] && OUTCOME="failed, $(jget .last.error verdict.json | cut -c1-60)"
	# the phase the kill hit: from the verdict's phase times and the kill's time ($1: monotonic us, the
	# verdict's clock: started_monotonic_us), a phase met again (transfer mode's claim, once the
	# successor's claim is accepted) numbered "claim#2"; "after": the update had ended.  A verdict without
	# phase times (a vlud restarted during the update): the phase it ended in.  LAG: ms from the start of
	# the aimed phase ($2) to the kill, "-" for none
	PHASE='' LAG=-
	jget '.last.phases[].phase' verdict.json > phases.n
	jget '.last.phases[].ms' verdict.json > phases.ms
	_st=$(jget .last.started_monotonic_us verdict.json)
	if [ -s phases.n ] && [ -n "$_st" ] && [ "$_st" != null ]; then
		# shellcheck disable=SC2046 # two words: the phase and the lag
		set -- $(paste phases.n phases.ms | awk -v d="$(($1 - _st))" -v aim="$2" '{
				c[$1]++; n[NR] = c[$1] > 1 ? $1 "#" c[$1] : $1; m[NR] = $2 }
			END {
				d /= 1000; hit = "after"; lag = "-"
				if (d < 0) hit = "before"
				for (i = 1; i <= NR; i++) {
					if (n[i] == aim) lag = sprintf("%.1f", d - t)
					t += m[i]
					if (hit == "after" && d >= 0 && d < t) hit = n[i]
				}
				print hit, lag }')
		PHASE=$1 LAG=$2
	fi
	# a failed or rolled-back update, the kill not within its phase times (the clock's offset is read to a
	# ms): the phase it ended in
	if [ "$OUTCOME" != ok ] && { [ -z "$PHASE" ] || [ "$PHASE" = after ] || [ "$PHASE" = before ]; }; then
		PHASE=$(jget .last.phase verdict.json)
		[ -n "$PHASE" ] && [ "$PHASE" != null ] || PHASE=unknown
	fi
}

# ---- the plan (schedule): one line per kill "MODE PATH TARGET AIM ARG TARGET2 GAP_MS" (awk's rand, seeded):
# - AIM a phase: the kill comes ARG ms after that phase's update.phase event (the phases of MODE and PATH,
#   PHASE_TAB; skewed early: ARG = r^2 x the phase's cap in SUB_CAP, 0 for a phase shorter than the event's
#   own way to the soak); 3 kills in 4 (SOAK_PLAN).  vlud is aimed at any phase; the VMM and the successor
#   at the phases in which vlud waits for a process (save, exec, claim, claim#2, restore; the successor
#   from its spawn on): the others (suspend, reset, spawn, resume, verify, commit) pass inside one request
#   of vlud's, so the exit of a process killed there is seen in the next phase anyway (or after the end)
# - AIM "delay": the kill comes ARG/1000 of the pair's span (spans.txt) after update.start's reply: ARG
#   0..1150, so that about one such kill in eight lands after the update ended; 1 kill in 4
# then TARGET2 (when not "-") GAP_MS after the first.  The same seed gives the same plan.
# The phases an update of each mode and path goes through after update.start began (docs/UPDATE.md; in
# transfer mode vlud spawns the successor and the accepted claim starts phase claim again: "claim#2"); the
# calibration checks them against its verdicts
PHASE_TAB='exec/A=suspend,save,exec,claim,restore,resume,verify,commit
exec/B=suspend,save,reset,exec,claim,restore,verify,commit
exec/C=suspend,save,exec,claim,restore,verify,commit
transfer/A=suspend,save,spawn,claim,claim#2,restore,resume,verify,commit
transfer/B=suspend,save,reset,spawn,claim,claim#2,restore,verify,commit
transfer/C=suspend,save,spawn,claim,claim#2,restore,verify,commit'
# the sub-delay's cap per aimed phase, ms: about the shortest length of the phase in the rig (64 MiB, TCG;
# the event's way to the soak takes a few ms more); the accepted claim (exec mode's claim, transfer mode's
# claim#2) is short but for path C's release
SUB_CAP='save=15 exec=60 spawn=5 claim=40 claim#2=10 restore=25'
schedule() {
	awk -v seed="$SOAK_SEED" -v n="$SOAK_KILLS" -v paths="$PATHS" -v tab="$PHASE_TAB" -v caps="$SUB_CAP" -v plan="$SOAK_PLAN" 'BEGIN {
		srand(seed); np = split(paths, P, " ")
		nt = split(tab, T, "\n")
		for (i = 1; i <= nt; i++) { split(T[i], kv, "="); PH[kv[1]] = kv[2] }
		WAITS = " save exec claim claim#2 restore "
		nc = split(caps, C, " ")
		for (i = 1; i <= nc; i++) { split(C[i], kv, "="); CAP[kv[1]] = kv[2] }
		for (i = 1; i <= n; i++) {
			mode = rand() < 0.5 ? "exec" : "transfer"
			path = P[1 + int(rand() * np)]
			r = rand()
			if (r < 0.35) t = "vmm"; else if (r < 0.6) t = (mode == "transfer" ? "successor" : "vmm")
			else if (r < 0.85) t = "vlud"; else t = "vlud+vmm"
			t2 = "-"; gap = 0
			if (t == "vlud+vmm") { t = "vlud"; t2 = (mode == "transfer" && rand() < 0.5) ? "successor" : "vmm"; gap = int(rand() * 100) }
			# every draw made whichever the choice: SOAK_PLAN=delay or phase changes only the aims
			rd = rand(); rdelay = rand(); raim = rand(); rsub = rand()
			if (plan == "delay" || (plan != "phase" && rd < 0.25)) {
				aim = "delay"; arg = int(rdelay * 1150)
			} else {
				k = split(PH[mode "/" path], A, ","); m = 0; sp = 0
				for (j = 1; j <= k; j++) {
					if (A[j] == "spawn") sp = 1
					if (t == "vlud" || (WAITS ~ " " A[j] " " && (t != "successor" || sp))) Q[++m] = A[j]
				}
				aim = Q[1 + int(raim * m)]
				cap = (mode == "exec" && aim == "claim") ? CAP["claim#2"] : CAP[aim]
				arg = int(rsub * rsub * cap)
			}
			print mode, path, t, aim, arg, t2, gap
		}
	}'
}

# kill_target TARGET: SIGKILL it, resolved now: vmm = the lineage's VMM if it still runs (the old image,
# or in exec mode the new one), else the VMM the instance is attached to; successor = another minivmm
# (transfer mode); sets VMM_KILLED, VLUD_KILLED and appends what was killed to KWHAT
kill_target() {
	case $1 in
	vmm)
		_p=$LPID
		alive "$_p" || _p=$(inpid "$INST")
		if [ -n "$_p" ] && [ "$_p" != null ] && kill -9 "$_p" 2> /dev/null; then
			VMM_KILLED=1 KWHAT="$KWHAT vmm $_p"
		else
			KWHAT="$KWHAT vmm: none running"
		fi ;;
	successor)
		for _p in $(live_vmms); do
			[ "$_p" = "$LPID" ] && continue
			kill -9 "$_p" 2> /dev/null && VMM_KILLED=1 KWHAT="$KWHAT successor $_p" && return
		done
		KWHAT="$KWHAT successor: none running" ;;
	vlud)
		read -r _v < "$FDS_DIR/pid"
		kill -9 "$_v" 2> /dev/null && VLUD_KILLED=1 KWHAT="$KWHAT vlud $_v" ;;
	esac
}

# aim_phase MODE PATH AIM SUB: start the update with `vluctl update start` (it subscribes to the instance's
# events first, then update.start; it prints each update.phase event on stderr as it comes, here into a
# fifo the shell reads line by line: no process between the event and the kill) and return SUB ms after
# the update.phase event of AIM ("claim#2": the second one of that name); an update that ends before it:
# at once.  VL: vluctl's pid (reaped by reap_vluctl), EVS: its lines so far, UID_: the update's id
aim_phase() {
	_want=${3%#*} _occ=1
	case $3 in *#*) _occ=${3#*#} ;; esac
	vluctl --socket "$SOCK" --json update start "$INST" --mode "$1" --path "$2" > vstart.out 2> "$W/ev.fifo" &
	VL=$!
	exec 3< "$W/ev.fifo"
	_n=0 _reached=0 UID_=
	while read -r _l <&3; do
		EVS="$EVS$_l
"
		case $_l in "vluctl: update "[0-9]*" of $INST: "*)
			_x=${_l#vluctl: update }
			UID_=${_x%% *} ;;
		esac
		case $_l in *": phase $_want ("*)
			_n=$((_n + 1))
			[ "$_n" -ge "$_occ" ] && _reached=1 && break ;;
		esac
	done
	if [ "$_reached" = 0 ]; then
		[ -n "$UID_" ] || violation "update.start refused: $(cat vstart.out)"
		AIMD="$AIMD (not reached: the update ended)"
	elif [ "$4" -gt 0 ]; then
		usleep $(($4 * 1000))
	fi
}
# reap_vluctl: `vluctl update start` ends with the update (its update.completed event) or when vlud goes
# away; its last lines read, its exit status in VLRC
vl_ended() {
	read -r _ _ _s _ 2> /dev/null < "/proc/$VL/stat" || return 0
	[ "$_s" = Z ]
}
reap_vluctl() {
	wait_s 15 vl_ended || violation "vluctl update start (pid $VL) still waits after update $UID_ ended (no update.completed event?)"
	while read -r _l <&3; do
		EVS="$EVS$_l
"
	done
	exec 3<&-
	wait "$VL"
	VLRC=$?
}

# span_of MODE PATH: the pair's span in ms (spans.txt)
span_of() { awk -v m="$1" -v p="$2" '$1 == m && $2 == p { print $3 }' spans.txt; }

# calibrate: spans.txt, one line "MODE PATH MS" per mode and path: SOAK_SPAN_MS when set, else how long one
# update of that pair without a kill still ran after the point where the kill loop starts its delay (after
# update.start's reply was read: under TCG the shell's own steps take 100-300 ms of a 300-600 ms update), by
# the verdict's clock (started_monotonic_us + total_ms) against /proc/uptime
calibrate() {
	: > spans.txt
	for _m in exec transfer; do
		for _p in $PATHS; do
			if [ -n "$SOAK_SPAN_MS" ]; then
				echo "$_m $_p $SOAK_SPAN_MS" >> spans.txt
				continue
			fi
			KDESC="calibration update, $_m $_p, no kill"
			progress
			vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"$_m\",\"path\":\"$_p\",\"wait\":false}" > cal.json 2>&1
			_t0=$(now_cs)
			UID_=$(jget .id cal.json)
			[ -n "$UID_" ] || violation "calibration update $_m $_p refused: $(cat cal.json)"
			wait_s 60 settled || violation "not settled after the calibration update $_m $_p"
			[ "$SETTLED" = attached ] || violation "instance $SETTLED after the calibration update $_m $_p"
			vctl --json call update.status "{\"instance\":\"$INST\"}" > cal.json 2>&1
			[ "$(jget .last.result cal.json)" = ok ] || violation "calibration update $_m $_p: $(jget .last.result cal.json)"
			_ms=$(awk -v st="$(jget .last.started_monotonic_us cal.json)" -v tot="$(jget .last.total_ms cal.json)" -v t0="$_t0" \
				'BEGIN { s = st / 1000 + tot - t0 * 10; print s < 10 ? 10 : int(s) }')
			echo "$_m $_p $_ms" >> spans.txt
			# its phases (preflight, before the update.start reply, left out; a phase met again numbered)
			# are those the plan aims at (PHASE_TAB)
			jget '.last.phases[].phase' cal.json > phases.n
			jget '.last.phases[].ms' cal.json > phases.ms
			paste phases.n phases.ms | awk '{ c[$1]++; n = c[$1] > 1 ? $1 "#" c[$1] : $1
				if (n != "preflight") { s = s (s == "" ? "" : ",") n; l = l sprintf(" %s %.1f", n, $2) } }
				END { print s > "phases.got"; print substr(l, 2) }' > phases.len
			_want=$(echo "$PHASE_TAB" | sed -n "s|^$_m/$_p=||p")
			[ "$(cat phases.got)" = "$_want" ] ||
				violation "the phases of a $_m $_p update are $(cat phases.got), the plan (PHASE_TAB) has $_want"
			echo "# soak: phases of $_m $_p (ms): $(cat phases.len)"
			LPID=$(inpid "$INST")
		done
	done
	echo "# soak: spans (ms from the start of the kill delay to the end of an update without a kill): $(tr '\n' ' ' < spans.txt)"
}

# wait_s SECONDS CMD...: until CMD succeeds, at most SECONDS of /proc/uptime (wait_until counts its 0.1 s
# rounds, and a round of `settled`, several vluctl calls and a walk of /proc, takes 0.5-1 s under TCG)
wait_s() {
	_end=$(($(now_cs) + $1 * 100))
	shift
	until "$@"; do
		[ "$(now_cs)" -ge "$_end" ] && return 1
		sleep 0.1
	done
}

# ---- the watchdog (SOAK_STALL_S): the loop writes the time into ./progress at each step
progress() { echo "$(($(now_cs) / 100)) $K" > "$W/progress"; }
watchdog() {
	_main=$1 _s=
	# killed at the soak's end: its sleep goes with it (the rig reports a process a scenario leaves behind)
	trap 'kill "$_s" 2> /dev/null; exit 0' TERM
	while :; do
		sleep 10 &
		_s=$!
		wait "$_s"
		read -r _t _k < "$W/progress" || continue
		[ $(($(now_cs) / 100 - _t)) -ge "$SOAK_STALL_S" ] || continue
		echo "# soak: watchdog: kill $_k made no progress for $SOAK_STALL_S s; every process:"
		for _d in /proc/[0-9]*; do
			_p=${_d#/proc/}
			[ "$_p" = "$$" ] && continue
			_s=$(sed -n 's/^State:[[:space:]]*//p' "$_d/status" 2> /dev/null)
			echo "[stall] $_p $_s $(cat "$_d/comm" 2> /dev/null) wchan=$(cat "$_d/wchan" 2> /dev/null) $(tr '\0' ' ' < "$_d/cmdline" 2> /dev/null | cut -c1-120)"
			case $_s in R* | D*) sed "s/^/[stall $_p stack] /" "$_d/stack" 2> /dev/null ;; esac
		done
		echo w > /proc/sysrq-trigger 2> /dev/null
		echo l > /proc/sysrq-trigger 2> /dev/null
		sleep 1
		dmesg | tail -n 300 | sed 's/^/[stall dmesg] /'
		tail -n 100 "$W/vlud.log" | sed 's/^/[stall vlud] /'
		t_fail soak/watchdog "kill $_k stalled for $SOAK_STALL_S s (seed $SOAK_SEED); replay with SOAK_SEED=$SOAK_SEED SOAK_KILLS=$_k"
		kill -KILL "$_main"
		return
	done
}

summary() {
	[ -s kills.txt ] || return 0
	{
		echo "soak: seed $SOAK_SEED, $(wc -l < kills.txt) kills of $SOAK_KILLS, modules $RIG_MODULES, paths $PATHS"
		echo "kills by target and phase (the update's phase at the kill; after = the update had ended):"
		awk -F'\t' '{ n[$2 " @ " $3]++ } END { for (k in n) printf "  %-32s %d\n", k, n[k] }' kills.txt | sort
		echo "kills by the phase they hit (after = the update had ended):"
		awk -F'\t' '{ n[$3]++ } END { for (k in n) printf "  %-32s %d\n", k, n[k] }' kills.txt | sort
		awk -F'\t' '$3 == "after" { a++ } $3 == "before" { b++ } END {
			printf "kills inside the update: %d of %d (after it ended: %d, before it began: %d)\n", NR - a - b, NR, a, b }' kills.txt
		echo "kills by aim (a phase, or delay: a time after update.start's reply) and the phase they hit:"
		awk -F'\t' '{ n[$6]++; h[$6 "\t" $3]++ }
			END { for (a in n) { l = ""; for (k in h) { split(k, x, "\t"); if (x[1] == a) l = l sprintf(", %s %d", x[2], h[k]) }
				printf "  %-10s %3d: %s\n", a, n[a], substr(l, 3) } }' kills.txt | sort
		awk -F'\t' '$6 != "delay" && $7 != "-" { l[++n] = $7 - $8 } END {
			if (!n) exit
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (l[j] < l[i]) { t = l[i]; l[i] = l[j]; l[j] = t }
			printf "kills aimed at a phase, ms from its start to the kill beyond the sub-delay (the event'"'"'s way to the soak): median %.1f, max %.1f (%d kills)\n", l[int((n + 1) / 2)], l[n], n }' kills.txt
		echo "outcomes:"
		awk -F'\t' '{ split($4, a, ","); n[a[1]]++ } END { for (k in n) printf "  %-32s %d\n", k, n[k] }' kills.txt | sort
		awk -F'\t' '$5 > m { m = $5; k = $1 } END { printf "longest recovery: %.2f s (kill %d)\n", m / 100, k }' kills.txt
		echo "traffic checks: $TRAFFIC_CHECKS lineages, $FRAMES frames, every one echoed once"
	} > soak-report.txt
	sed 's/^/# /' soak-report.txt
}

# ---- the run
soak_run() {
	case $RIG_MODULES in
	patched) PATHS="A B C" ;;
	*) PATHS=C ;;
	esac
	VLUD_FD_TYPES='"memfd", "eventfd", "vhost-vdpa"'
	vlud_conf '"update": { "allow_memlock_raise": true }'
	mkdir -p "$FDS_DIR"
	rm -f "$FDS_DIR"/*
	vlu-fdstore --socket "$SOCK" --notify "$FDS_DIR/notify" --dir "$FDS_DIR" --max-starts 1000000 -- \
		vlud -c vlud.conf -d > vlud.log 2>&1 &
	FDS_PID=$!
	wait_ready 1 || { t_fail vlud/started "no READY=1 from vlud under vlu-fdstore"; sed 's/^/[vlud] /' vlud.log; exit 1; }
	t_ok vlud/started-under-vlu-fdstore
	echo "# soak: seed $SOAK_SEED, $SOAK_KILLS kills, paths $PATHS, plan $SOAK_PLAN, span ${SOAK_SPAN_MS:-measured per mode and path}"
	K=0 KDESC="start" NFDS0=6 NAMES0='' TRAFFIC_CHECKS=0 FRAMES=0
	progress
	# its stdin is not the schedule the loop below reads
	watchdog $$ < /dev/null &
	WD_PID=$!
	trap 'kill "$WD_PID" 2> /dev/null' EXIT
	: > kills.txt
	BAD0=$(kernel_bad)
	start_lineage
	NAMES0=$(cut -d' ' -f1,2 fds-base.txt | tr '\n' ' ')
	PIN0=$(vmpin "$LPID")
	expect soak/vmpin-pinned "$PIN0" -gt 0
	sleep 1
	FD0=$(nfds "$(vlud_pid)")
	echo "# soak: baseline: $NFDS0 fds held ($NAMES0), VmPin $PIN0 kB, vlud $FD0 fds"
	rm -f "$W/ev.fifo"
	mkfifo "$W/ev.fifo"
	clock_offset
	echo "# soak: clocks: realtime - monotonic $CLOCK_OFF us"
	calibrate
	schedule > schedule.txt
	while read -r mode path target aim arg target2 gap; do
		K=$((K + 1))
		progress
		clock_offset
		VMM_KILLED=0 VLUD_KILLED=0 KWHAT='' VL='' EVS='' T2D=''
		[ "$target2" = - ] || T2D=", then $target2 +$gap ms"
		if [ "$aim" = delay ]; then
			delay=$((arg * $(span_of "$mode" "$path") / 1000))
			AIMD="+$delay ms"
			KDESC="$mode $path, $target at +$delay ms$T2D"
			vctl --json call update.start "{\"instance\":\"$INST\",\"mode\":\"$mode\",\"path\":\"$path\",\"wait\":false}" > start.json 2>&1
			# nothing between the reply and the kill but the delay (the calibration measured from here)
			usleep $((delay * 1000))
		else
			AIMD="$aim+$arg ms"
			KDESC="$mode $path, $target aimed at $AIMD$T2D"
			aim_phase "$mode" "$path" "$aim" "$arg"
		fi
		kill_target "$target"
		now_us
		KT=$NOW_US
		t0=$(now_cs)
		if [ "$target2" != - ]; then
			usleep $((gap * 1000))
			KWHAT="$KWHAT, +$gap ms"
			kill_target "$target2"
		fi
		if [ "$aim" = delay ]; then
			UID_=$(jget .id start.json)
			[ -n "$UID_" ] || violation "update.start refused: $(cat start.json)"
		fi
		KDESC="$mode $path:$KWHAT, aim $AIMD"
		if [ "$VLUD_KILLED" = 1 ]; then wait_until 300 vlud_answers || violation "vlud did not come back"; fi
		wait_s 90 settled || violation "not settled after 90 s: instance $(instate "$INST"), VMMs $(live_vmms | tr '\n' ' '), update.status running: $(vctl --json call update.status "{\"instance\":\"$INST\"}" 2> /dev/null | jget .running.phase)"
		rec=$(($(now_cs) - t0))
		[ -z "$VL" ] || reap_vluctl
		check_verdict "$((KT - CLOCK_OFF))" "$aim"
		phase=$PHASE
		KDESC="$KDESC, hit $phase"
		[ "$LAG" = - ] || KDESC="$KDESC ($aim+$LAG ms)"
		# what `vluctl update start` got as the update.completed event is the verdict vlud recorded
		if [ -n "$VL" ] && [ "$VLUD_KILLED" = 0 ] && [ "$(jget .result vstart.out)" != "${OUTCOME%%,*}" ]; then
			violation "vluctl update start got the verdict '$(jget .result vstart.out)' (exit $VLRC), vlud recorded '$OUTCOME'"
		fi
		if [ "$SETTLED" = attached ]; then
			check_attached
		else
			# the VMM is gone: every fd is still held; the soak releases the instance and starts anew
			fdset > fds-now.txt
			cmp -s fds-base.txt fds-now.txt || violation "held fds of the orphaned instance changed: $(diff fds-base.txt fds-now.txt | grep '^[-+][^-+]' | tr '\n' ' ')"
		fi
		[ "$(kernel_bad)" -eq "$BAD0" ] || violation "kernel: $(dmesg | grep -E 'WARNING:|BUG:|Oops|general protection' | tail -n 2 | tr '\n' ' ')"
		tgt=$target
		[ "$target2" != - ] && tgt="$target+$target2"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$K" "$tgt" "$phase" "$OUTCOME" "$rec" "$aim" "$LAG" "$arg" >> kills.txt
		t_ok "kill-$K # $KDESC: $OUTCOME, $SETTLED, recovery $((rec / 100)).$((rec % 100 / 10)) s"
		if [ "$SETTLED" = orphaned ]; then
			release_instance
			start_lineage
		fi
		if [ $((K % SOAK_TRAFFIC_EVERY)) -eq 0 ] || [ "$K" -eq "$SOAK_KILLS" ]; then
			stop_lineage
			[ "$K" -lt "$SOAK_KILLS" ] && start_lineage
		fi
	done < schedule.txt
	t_ok "soak/all-$SOAK_KILLS-kills-no-violation"
	summary
	kill -TERM "$(vlud_pid)" 2> /dev/null
	kill -TERM "$FDS_PID" 2> /dev/null
	wait_until 50 sh -c "! kill -0 $FDS_PID 2> /dev/null"
}
