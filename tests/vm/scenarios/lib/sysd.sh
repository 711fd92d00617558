#!/bin/sh
# lib/sysd.sh: the sysd-* scenarios (sourced: . /scenarios/lib/sysd.sh; builds on lib/tap.sh): a Debian 12
# guest with systemd as PID 1 (`root: debian`, docs/RIG.md) where vlud is installed from the packages of
# this tree (/rig/debs) and runs as vlud.service behind vlud.socket.  Sourcing it twice changes nothing.
[ -n "${LIB_SYSD:-}" ] && return 0
LIB_SYSD=1
# lib/minivmm.sh (check_traffic) and lib/vlud.sh (vctl, instate, held_names, ...), with the packaged
# vlud.socket's path
. /scenarios/lib/minivmm.sh
SOCK=/run/vlud/vlud.sock

# sysd_install: `apt-get install ./*.deb` of the packages unless vlud is installed already (every sysd-*
# scenario can run alone); the output in apt.log; status of apt-get
sysd_install() {
	dpkg-query -W -f '${Status}' vlud 2> /dev/null | grep -q 'ok installed' && return 0
	(cd /rig/debs && DEBIAN_FRONTEND=noninteractive apt-get install -y ./*.deb) > apt.log 2>&1
	_rc=$?
	sed 's/^/[apt] /' apt.log
	return $_rc
}

# sysd_policy [EXTRA-MEMBERS]: /etc/vlud/vlud.conf allows user vmm (uid 1000, in group vlud so that it may
# connect) vdpa0 with memfds, eventfds and vhost-vdpa fds (updates); EXTRA-MEMBERS (JSON members) added;
# vlud restarted to read it (an operator's configuration change)
sysd_policy() {
	id -nG vmm | grep -qw vlud || usermod -a -G vlud vmm
	cat > /etc/vlud/vlud.conf << EOF2
{ "operators": { "uids": [0] },
  "vmms": [ { "uids": ["vmm"], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd", "vhost-vdpa"], "max_fds": 16 } ],
  "update": { "allow_memlock_raise": true }${1:+, $1} }
EOF2
	systemctl restart vlud.service
	wait_until 100 active vlud.service
}

# unit properties: prop UNIT PROPERTY
prop() { systemctl show -P "$2" "$1"; }
mainpid() { prop vlud.service MainPID; }
# vlud's fd store: how many fds systemd holds for it
nstored() { prop vlud.service NFileDescriptorStore; }
# active UNIT: systemctl is-active says active
active() { [ "$(systemctl is-active "$1")" = active ]; }
# vmm_unit UNIT ARGS...: minivmm as a transient service of user vmm, its device from vlud (vdpa0); output in
# /run/UNIT.out and /run/UNIT.log; VMM_STOP_AT=POINT sets MINIVMM_TEST_STOP_AT (it stops itself there in an
# update, docs/UPDATE.md)
vmm_unit() {
	_u=$1
	shift
	rm -f "/run/$_u.out" "/run/$_u.log"
	systemd-run --unit="$_u" --uid=vmm --gid=vmm -p SupplementaryGroups=vlud -p LimitMEMLOCK=infinity \
		-p StandardOutput="file:/run/$_u.out" -p StandardError="file:/run/$_u.log" \
		${VMM_STOP_AT:+-E MINIVMM_TEST_STOP_AT=$VMM_STOP_AT} \
		minivmm --vlud "$SOCK" --instance "$_u" --vdpa vdpa0 "$@"
}
# unit_result UNIT: wait (at most 120 s) until UNIT ended; its Result and ExecMainStatus as "result status"
unit_done() { ! active "$1" && [ "$(systemctl is-active "$1")" != activating ]; }
unit_result() {
	wait_until 1200 unit_done "$1"
	echo "$(prop "$1" Result) $(prop "$1" ExecMainStatus)"
}
# vmm_pid UNIT: the minivmm of UNIT
vmm_pid() { prop "$1" MainPID; }
# inodes PID: the inodes of PID's memfds (memfd:NAME), sorted, on one line: the same files after a restart
# of vlud means they came back from the fd store (a reopened or new memfd has another inode)
inodes() {
	for _f in /proc/"$1"/fd/*; do
		case $(readlink "$_f") in /memfd:*) stat -L -c %i "$_f" ;; esac
	done | sort -n | tr '\n' ' '
}
# vdpa_fds PID: how many fds of PID are the vhost-vdpa device /dev/vhost-vdpa-0 (by device number: an fd
# passed back by systemd's fd store is the same open file, but its path is the one it had in the mount
# namespace vlud.service opened it in)
vdpa_fds() {
	_rd=$(stat -L -c '%t:%T' /dev/vhost-vdpa-0)
	for _f in /proc/"$1"/fd/*; do stat -L -c '%F %t:%T' "$_f" 2> /dev/null; done | grep -c "^character special file $_rd\$"
}
# vdpa_files PID: PID's fds of /dev/vhost-vdpa-0 as "st_dev:inode:major:minor" of the open file, sorted, on
# one line: the same device node after a restart of vlud (with dev_busy the whole time, the same open file:
# the single-open node could not have been opened again while the VMM holds it)
vdpa_files() {
	_rd=$(stat -L -c '%t:%T' /dev/vhost-vdpa-0)
	for _f in /proc/"$1"/fd/*; do stat -L -c '%F %d:%i:%t:%T' "$_f" 2> /dev/null; done |
		sed -n "s/^character special file \(.*:$_rd\)\$/\1/p" | sort | tr '\n' ' '
}
# dev_busy: /dev/vhost-vdpa-0 cannot be opened (someone holds it)
dev_busy() { ! (exec 3< /dev/vhost-vdpa-0) 2> /dev/null; }
# vmm_traffic UNIT MIN_SENT: wait for the VMM service UNIT to end; it succeeded, and its traffic report
# (copied to traffic.out) passes lib/minivmm.sh's check_traffic; then its instance is released
vmm_traffic() {
	_r=$(unit_result "$1.service")
	sed "s/^/[$1] /" "/run/$1.log" "/run/$1.out"
	expect vmm/unit-result "$_r" = "success 0"
	RC=${_r#* }
	cp "/run/$1.out" traffic.out
	check_traffic traffic "$2"
	vctl release "$1"
	expect "release/$1" "$?" -eq 0
}
# sysd_update_vmm UNIT: for the update scenarios (which source lib/update.sh after this library): the
# packages and the policy, then a minivmm service UNIT to update (64 MiB, 8 s, frames during the pause),
# VLUD_PID and VMM_PID set for update_ok, SYSD_SINCE (sysd_journal) to the VMM's start
sysd_update_vmm() {
	SOCK=/run/vlud/vlud.sock
	sysd_install || { t_fail install "apt-get install failed"; exit 1; }
	sysd_policy
	SYSD_SINCE=$(date +%s)
	vmm_unit "$1" --mem 64M --duration 8 --pause-frames 8
	wait_until 50 has_instance "$1"
	sleep 1
	VLUD_PID=$(mainpid)
	VMM_PID=$(vmm_pid "$1.service")
}
# sysd_exec_after UNIT PATH: after lib/update.sh's update_ok of an exec-mode update of the VMM service UNIT:
# the unit ended successfully and minivmm's own report passes check_vmm_after; the instance released
sysd_exec_after() {
	_r=$(unit_result "$1.service")
	cp "/run/$1.out" run.out
	cp "/run/$1.log" run.log
	sed 's/^/[run] /' run.log run.out
	expect run/unit-result "$_r" = "success 0"
	RC=${_r#* }
	check_vmm_after run "$2"
	vctl release "$1"
}
# sysd_transfer_after UNIT PATH: after update_ok of a transfer-mode update of the VMM service UNIT: the old
# VMM handed over and its unit ended successfully; the successor vlud spawned ran in vlud.service's cgroup
# as uid 1000; its report (minivmm's stdout: vlud.service's output, in the journal) passes check_vmm_after
sysd_transfer_after() {
	# first, while the successor surely runs
	expect run/successor-in-vlud-cgroup "$(cut -d: -f3 "/proc/$NEW_PID/cgroup" 2> /dev/null)" = /system.slice/vlud.service
	expect run/successor-uid "$(stat -c %u "/proc/$NEW_PID" 2> /dev/null)" -eq 1000
	_r=$(unit_result "$1.service")
	sed 's/^/[run old] /' "/run/$1.log" "/run/$1.out"
	expect run/old-unit-result "$_r" = "success 0"
	if grep -q "handed over" "/run/$1.log"; then t_ok run/old-handed-over; else t_fail run/old-handed-over "no hand-over in its log"; fi
	wait_until 200 sysd_successor_ended
	sleep 0.5
	sysd_journal
	# the successor's report lines (minivmm's stdout) are vlud.service's output: the lines of the journal
	# since this update's VMM started (an earlier successor of this boot wrote there too), without vlud's
	# own (level-prefixed on stderr: journald strips the prefix, so take minivmm's known line prefixes)
	grep -E '^(device|vlud|traffic|update [0-9]+|verdict):' vlud.log > run2.out
	cp run2.out run2.log
	grep 'vlud-verdict: ' vlud.log >> run2.log
	_st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
	RC=$((${_st:-0x100} >> 8))
	check_vmm_after run2 "$2"
	vctl release "$1"
}
# sysd_journal: vlud.service's journal of this boot (since SYSD_SINCE, seconds since the epoch, when set)
# into vlud.log (lib/update.sh's successor_ended reads it)
sysd_journal() { journalctl -b -u vlud.service ${SYSD_SINCE:+--since "@$SYSD_SINCE"} -o cat > vlud.log; }
# shellcheck disable=SC2317 # called by wait_until
sysd_successor_ended() { sysd_journal; successor_ended "$NEW_PID"; }
