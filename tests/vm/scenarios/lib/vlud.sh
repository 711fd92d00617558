#!/bin/sh
# lib/vlud.sh: vlud in a rig scenario (sourced: . /scenarios/lib/vlud.sh; builds on lib/tap.sh, which it
# sources).  The one configuration writer, start/stop, vluctl, and the daemon's view of instances, held fds
# and devices.  lib/minivmm.sh and lib/update.sh build on it (lib/faults.sh, lib/untouched.sh and
# lib/daemon-killed.sh on lib/update.sh).  Sourcing it twice changes nothing.
[ -n "${LIB_VLUD:-}" ] && return 0
LIB_VLUD=1
. /scenarios/lib/tap.sh

# the socket vlud listens on (the library on top sets its own)
SOCK=${SOCK:-/run/vlud.sock}
# extra vlud options of start_vlud (lib/update.sh: -d)
VLUD_OPTS=${VLUD_OPTS:-}
# the policy of vlud_conf: the VMMs' uids and fd types; VLUD_TIMEOUTS non-empty: a timeouts.update
# member with the deadlines UPD_{SUSPEND,SAVE,EXEC,CLAIM,COMMIT}_MS (read when vlud_conf runs; default
# 2000, 3000, 3000, 4000, 5000 ms), else vlud's defaults
VLUD_VMM_UIDS=${VLUD_VMM_UIDS:-0}
VLUD_FD_TYPES=${VLUD_FD_TYPES:-'"memfd", "eventfd"'}
VLUD_TIMEOUTS=${VLUD_TIMEOUTS:-}
# the devices the VMM policy names (JSON strings; iommufd-update-mixed adds /dev/iommu and the VFIO cdev)
VLUD_DEVICES=${VLUD_DEVICES:-'"vdpa0"'}

# vlud_conf [EXTRA-JSON-MEMBERS]: write vlud.conf (the one configuration writer): socket $SOCK, root is
# operator, one VMM policy (uids $VLUD_VMM_UIDS) for $VLUD_DEVICES (vdpa0) with fd types $VLUD_FD_TYPES and 16 fds, the
# update deadlines (VLUD_TIMEOUTS), then EXTRA-JSON-MEMBERS (e.g. '"update": { "allow_memlock_raise": true }')
vlud_conf() {
	_to=
	[ -n "$VLUD_TIMEOUTS" ] && _to=", \"timeouts\": { \"update\": { \"suspend_ms\": ${UPD_SUSPEND_MS:-2000}, \"save_ms\": ${UPD_SAVE_MS:-3000}, \"exec_ms\": ${UPD_EXEC_MS:-3000}, \"claim_ms\": ${UPD_CLAIM_MS:-4000}, \"commit_ms\": ${UPD_COMMIT_MS:-5000} } }"
	cat > vlud.conf << EOF
{ "socket": { "path": "$SOCK" }, "operators": { "uids": [0] },
  "vmms": [ { "uids": [$VLUD_VMM_UIDS], "devices": [$VLUD_DEVICES], "fd_types": [$VLUD_FD_TYPES], "max_fds": 16 } ]
  $_to${1:+, $1} }
EOF
}
# start_vlud [EXTRA-JSON-MEMBERS]: vlud_conf, then vlud -c vlud.conf $VLUD_OPTS, pid in VLUD_PID, log in
# vlud.log; one TAP line vlud/started; exits the scenario when no socket comes in 5 s
start_vlud() {
	vlud_conf "$1"
	# shellcheck disable=SC2086 # VLUD_OPTS: words
	vlud -c vlud.conf $VLUD_OPTS > vlud.log 2>&1 &
	VLUD_PID=$!
	if wait_until 50 test -S "$SOCK"; then
		t_ok vlud/started
	else
		t_fail vlud/started "no socket after 5 s"
		sed 's/^/[vlud] /' vlud.log
		exit 1
	fi
}
# stop_vlud: SIGTERM, wait, vlud.log into the scenario's log
stop_vlud() {
	kill "$VLUD_PID" 2> /dev/null
	wait "$VLUD_PID" 2> /dev/null
	sed 's/^/[vlud] /' vlud.log
}
vctl() { vluctl --socket "$SOCK" "$@"; }

# ---- processes
# nfds PID: how many fds PID has open; nfds_is PID N: exactly N; vmpin PID: its VmPin in kB
nfds() { ls "/proc/$1/fd" 2> /dev/null | wc -l; }
nfds_is() { [ "$(nfds "$1")" -eq "$2" ]; }
vmpin() { sed -n 's/^VmPin:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2> /dev/null; }

# ---- the daemon's view (instance.list, fd.list, device.list)
# instate INSTANCE: its state (attached, orphaned; empty: no such instance); inpid INSTANCE: its pid;
# inentry INSTANCE: its instance.list entry (JSON, for messages)
instate() { vctl --json instances 2> /dev/null | jget ".instances[name=$1].state"; }
inpid() { vctl --json instances 2> /dev/null | jget ".instances[name=$1].pid"; }
# in_attached_to INSTANCE PID: INSTANCE is attached, to PID
in_attached_to() {
	_ij=$(vctl --json instances 2> /dev/null)
	echo "$_ij" | jhas ".instances[name=$1].state" - attached && echo "$_ij" | jhas ".instances[name=$1].pid" - "$2"
}
# instate_is INSTANCE STATE: INSTANCE is in STATE (for wait_until)
instate_is() { [ "$(instate "$1")" = "$2" ]; }
inentry() { vctl --json instances 2> /dev/null | jget ".instances[name=$1]"; }
# held_names [INSTANCE]: the fds vlud holds (for INSTANCE, else for every instance) as INSTANCE/NAME, one a
# line, sorted; held INSTANCE: how many it holds for INSTANCE
held_names() {
	_hj=$(vctl --json fds ${1:+"$1"} 2> /dev/null)
	for _hi in $(echo "$_hj" | jget '.fds[].instance' | sort -u); do
		echo "$_hj" | jget ".fds[instance=$_hi].name" | sed "s|^|$_hi/|"
	done | sort
}
held() { held_names "$1" | wc -l; }
# held_list INSTANCE: the names alone (without INSTANCE/), sorted, on one line separated by spaces
held_list() { held_names "$1" | sed "s|^$1/||" | tr '\n' ' ' | sed 's/ $//'; }
# devstatus [DEVICE]: the status byte of DEVICE (default vdpa0) in device.list (devices.json; logged)
devstatus() {
	vctl --json devices > devices.json 2>&1
	sed 's/^/[devices] /' devices.json >&2
	jget ".devices[name=${1:-vdpa0}].status" devices.json
}
