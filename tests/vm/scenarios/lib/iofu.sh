#!/bin/sh
# lib/iofu.sh: the set-up the iommufd live-update scenarios share (iommufd-update.sh, exec mode,
# iommufd-update-transfer.sh and iommufd-update-transfer-mm.sh), sourced after lib/tap.sh and lib/edu.sh.
#
# iofu_start MODE TMP [VMM-OPTION...]: binds edu to vfio-pci, starts vlud (its files under the prefix TMP,
# e.g. /tmp/t, so that scenarios sharing a boot do not meet) with a policy for /dev/iommu and the cdev,
# starts the first VMM (`vlu-iommufd vmm ... VMM-OPTION...`, e.g. --acct mm; its pid in $VMM) and records
# the held fds ($held0) and vlud's fd count ($fds0).
# `update NAME [vluctl update start options]` then runs an update of MODE, the verdict in TMP-NAME.json.
# iofu_conf [MEMBER...] and iofu_vmm [VMM-OPTION...] are its two steps for a scenario that starts vlud
# otherwise (iommufd-update-transfer-mm-killed.sh: under vlu-fdstore).
SOCK=/run/vlud/vlud.sock

vmpin() { sed -n 's/^VmPin:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2> /dev/null; }
vmlck() { sed -n 's/^VmLck:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2> /dev/null; }
# the held entries (id and inode) of the three fds the updates must keep
held() {
	vluctl --socket $SOCK --json fds iofu > "$IOFU_TMP-fds.json" 2>&1
	for _n in iommufd:iommu "vfio:$vf" ram; do
		printf '%s:%s/%s ' "$_n" "$(jget ".fds[name=$_n].id" "$IOFU_TMP-fds.json")" \
			"$(jget ".fds[name=$_n].ino" "$IOFU_TMP-fds.json")"
	done
}
vludfds() { ls "/proc/$VLUD/fd" | wc -l; }
# gone PID: exited (a zombie of this shell counts: the first VMM is its child)
gone() { ! grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2> /dev/null; }
# ready GEN ROLE: the VMM image GEN (updates so far) of that role serves; its pid in $pid
ready() { grep -q "^ready [0-9]* $1 $2\$" "$MARK" 2> /dev/null && pid=$(cut -d' ' -f2 "$MARK"); }
update() {
	_n=$1
	shift
	vluctl --socket $SOCK --json update start iofu --mode "$IOFU_MODE" "$@" > "$IOFU_TMP-$_n.json" 2> "$IOFU_TMP-$_n.err"
	sed "s/^/# $_n: /" "$IOFU_TMP-$_n.err" | head -5
}
v() { jget "$1" "$IOFU_TMP-$2.json"; }

iofu_start() {
	IOFU_MODE=$1
	IOFU_TMP=$2
	shift 2
	LOG=$IOFU_TMP-vmm.log
	MARK=$IOFU_TMP-vmm.ready
	edu_find
	edu_bind
	echo "edu $bdf: $dev"

	mkdir -p /run/vlud
	# shellcheck disable=SC2119 # no MEMBER here: the configuration of old
	iofu_conf
	vlud --config "$IOFU_TMP-vlud.conf" > "$IOFU_TMP-vlud.log" 2>&1 &
	VLUD=$!
	if wait_until 100 test -S $SOCK; then t_ok daemon-listening; else t_fail daemon-listening "no socket"; fi

	iofu_vmm "$@"
	fds0=$(vludfds)
}
# iofu_conf [MEMBER...]: vlud's configuration into TMP-vlud.conf (the socket, root the operator and the VMM,
# a policy for /dev/iommu and the cdev $dev), each MEMBER (a JSON member, e.g. '"update": { ... }') added
# after the others; without one the file is the one every scenario of this library has always had
# shellcheck disable=SC2120 # the MEMBERs come from scenarios (iommufd-update-transfer-mm-killed.sh)
iofu_conf() {
	_extra=
	for _m in "$@"; do
		_extra="$_extra,
$_m"
	done
	cat > "$IOFU_TMP-vlud.conf" <<-EOC
		{
			"socket": { "path": "$SOCK", "mode": "0600", "group": null },
			"orphan_expiry_s": 0,
			"operators": { "uids": [0], "gids": [] },
			"vmms": [
				{ "uids": [0], "gids": [], "devices": ["/dev/iommu", "$dev"],
				  "fd_types": ["memfd", "eventfd"], "max_fds": 16 }
			]$_extra
		}
	EOC
}
# iofu_vmm [VMM-OPTION...]: the first VMM (its pid in $VMM, its log TMP-vmm.log emptied first) up and
# charged (vmm-first-ready, vmpin-first), the fds vlud holds for it in $held0
iofu_vmm() {
	: > "$LOG"
	vlu-iommufd vmm "$SOCK" "$dev" "$bdf" "$LOG" "$MARK" "$@" &
	VMM=$!
	if wait_until 300 ready 0 first; then t_ok vmm-first-ready; else t_fail vmm-first-ready "$(tail -3 "$LOG" | tr '\n' ' ')"; fi
	expect vmpin-first "$(vmpin "$VMM")" -eq 1024
	held0=$(held)
	echo "# held: $held0"
}
# iofu_end PID: the end of a scenario: vlud's fd count back to what it was with the first VMM up (a test),
# PID (the VMM running last) and vlud stopped, the VMM's log (every process and image) and vlud's last
# lines into the scenario's log
iofu_end() {
	wait_until 50 test "$(vludfds)" -eq "$fds0"
	expect vlud-fds-at-end "$(vludfds)" -eq "$fds0"
	iofu_stop "$1" "$VLUD" 60
}
# iofu_stop PID DAEMON LINES: iofu_end without its test, for a scenario whose vlud runs under DAEMON
# (vlu-fdstore): PID and DAEMON stopped, the VMM's log and vlud's last LINES lines into the scenario's log
iofu_stop() {
	kill "$1" 2> /dev/null
	wait_until 50 gone "$1"
	kill "$2"
	wait "$2" 2> /dev/null
	echo "# the VMM's log (every process and image):"
	cat "$LOG"
	sed 's/^/[vlud] /' "$IOFU_TMP-vlud.log" | tail -n "$3"
}
