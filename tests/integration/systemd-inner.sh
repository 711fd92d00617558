#!/bin/bash
# systemd-inner.sh OUT - the inside of tests/integration/test-systemd.sh: runs as a oneshot service of the
# real systemd (PID 1 of a systemd-nspawn container) and writes TAP lines to OUT.  Not a test of its own.
set -uo pipefail
OUT=$1
B=$VLU_BUILD
SOCK=/run/vlud/vlud.sock
: > "$OUT"
ok() { echo "ok - $1" >> "$OUT"; }
notok() { echo "not ok - $1: $2" >> "$OUT"; }
expect() { # NAME GOT OP WANT
	if [ -n "$2" ] && [ "$2" "$3" "$4" ] 2> /dev/null; then ok "$1"; else notok "$1" "got '$2', expected $3 $4"; fi
}
show() { systemctl show -p "$1" --value vlud.service; }
vctl() { "$B/vluctl" --socket "$SOCK" "$@"; }
jnum() { grep -o "\"$2\":[0-9]*" "$1" | head -1 | sed 's/.*://'; }
# wait_active OLD-MAINPID: until vlud.service is active with a main pid other than OLD (at most 20 s)
wait_active() {
	local n=0
	while { [ "$(show ActiveState)" != active ] || [ "$(show MainPID)" = "$1" ] || [ "$(show MainPID)" = 0 ]; } && [ $n -lt 200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
}
# fds_back TAG: the instance's fds are back after a restart: same names and inodes, instance orphaned
fds_back() {
	vctl --json fds vm1 > "/tmp/$1.fds" 2>&1
	if cmp -s <(grep -o '"name":"[a-z]*","type":"[a-z]*","dev":[0-9]*,"ino":[0-9]*' /tmp/before.fds) \
		<(grep -o '"name":"[a-z]*","type":"[a-z]*","dev":[0-9]*,"ino":[0-9]*' "/tmp/$1.fds"); then
		ok "$1/every-fd-back-same-inode"
	else
		notok "$1/every-fd-back-same-inode" "before $(tr -d '\n' < /tmp/before.fds) after $(tr -d '\n' < "/tmp/$1.fds")"
	fi
	vctl --json status > "/tmp/$1.status" 2>&1
	expect "$1/restored-one-instance" "$(jnum "/tmp/$1.status" restored_instances)" -eq 1
	expect "$1/adopted-fds-from-the-store" "$(jnum "/tmp/$1.status" adopted_fds)" -ge 2
	expect "$1/nothing-lost" "$(jnum "/tmp/$1.status" lost_fds)" -eq 0
	if vctl --json instances | grep -q '"name":"vm1","state":"orphaned"'; then ok "$1/instance-orphaned"; else notok "$1/instance-orphaned" "$(vctl --json instances)"; fi
}

systemctl --version > /tmp/sdversion
sed -n '1s/^/# /p' /tmp/sdversion >> "$OUT"
SDVER=$(sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p' /tmp/sdversion)
expect systemd/version-known "$SDVER" -gt 0

# sysusers (systemd/vlud.sysusers) made the socket's group
if getent group vlud > /dev/null; then ok "sysusers/group-vlud"; else notok "sysusers/group-vlud" "no group vlud"; fi

# socket activation: the socket unit listens, the service starts on the first connect
systemctl start vlud.socket
expect socket/active "$(systemctl is-active vlud.socket)" = active
expect socket/service-not-started-yet "$(show ActiveState)" = inactive
expect socket/mode-0660-group-vlud "$(stat -c '%a %G' "$SOCK")" = "660 vlud"
vctl status > /tmp/status.txt 2>&1
expect activation/first-connect-answered "$?" -eq 0
# Type=notify: active only after READY=1
expect notify/active-after-ready "$(show ActiveState)" = active
expect notify/type-notify "$(show Type)" = notify
if [ -n "$(show StatusText)" ]; then ok "notify/status-text"; else notok "notify/status-text" "no STATUS="; fi
PID1=$(show MainPID)
expect notify/main-pid "$PID1" -gt 0
# the sandbox of the shipped unit is in force on the running daemon
expect sandbox/no-new-privs "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "/proc/$PID1/status")" -eq 1
expect sandbox/seccomp-filter "$(sed -n 's/^Seccomp:[[:space:]]*//p' "/proc/$PID1/status")" -eq 2
expect sandbox/watchdog-3s "$(show WatchdogUSec)" = 3s

# a VMM stores fds; it disconnects; they stay held and go to the fd store
"$B/tests/integration/helper-vmm" "$SOCK" vm1 < /dev/null > /tmp/vmm.out 2>&1
expect vmm/stored "$(cat /tmp/vmm.out)" = ready
vctl --json fds vm1 > /tmp/before.fds 2>&1
expect vmm/two-fds-held "$(grep -o '"name":' /tmp/before.fds | wc -l)" -eq 2
NSTORE=$(show NFileDescriptorStore)
# ram, kick and the state memfd (the listening socket comes from vlud.socket, not the store)
expect fdstore/held-fds-and-state-in-store "$NSTORE" -ge 3

# kill -9: Restart=on-failure brings vlud back with every fd from the store
kill -KILL "$PID1"
wait_active "$PID1"
PID2=$(show MainPID)
expect kill9/restarted "$(show ActiveState)" = active
expect kill9/new-pid "$PID2" -ne "$PID1"
expect kill9/store-kept "$(show NFileDescriptorStore)" -eq "$NSTORE"
fds_back kill9
# the restart's time under the real systemd (reported, not asserted; docs/BENCH.md): the new vlud's fork to
# READY=1 (its sandbox set up, every fd adopted), from systemd's own timestamps; before the fork come
# RestartSec= and systemd's restart job
T_FORK=$(show ExecMainStartTimestampMonotonic)
T_READY=$(show ActiveEnterTimestampMonotonic)
if [ "${T_FORK:-0}" -gt 0 ] && [ "${T_READY:-0}" -ge "$T_FORK" ]; then
	echo "# kill9/restart-timing: fork -> READY=1 $(((T_READY - T_FORK) / 1000)).$(((T_READY - T_FORK) % 1000 / 100)) ms with $(grep -o '"name":' /tmp/before.fds | wc -l) held fds and the state (RestartSec $(show RestartUSec))" >> "$OUT"
fi

# systemctl restart
systemctl restart vlud.service
wait_active "$PID2"
PID3=$(show MainPID)
expect restart/new-pid "$PID3" -ne "$PID2"
expect restart/store-kept "$(show NFileDescriptorStore)" -eq "$NSTORE"
fds_back restart

# watchdog: vlud stops answering (SIGSTOP); after WatchdogSec systemd kills it (SIGABRT, then SIGKILL) and
# restarts it, and every fd comes back
NR0=$(show NRestarts)
kill -STOP "$PID3"
n=0
while [ "$(show MainPID)" = "$PID3" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
wait_active "$PID3"
PID4=$(show MainPID)
expect watchdog/restarted "$(show ActiveState)" = active
expect watchdog/new-pid "$PID4" -ne "$PID3"
expect watchdog/counted-as-restart "$(show NRestarts)" -gt "$NR0"
if journalctl -u vlud.service --no-pager 2> /dev/null | grep -qi 'watchdog timeout'; then ok "watchdog/systemd-says-watchdog"; else notok "watchdog/systemd-says-watchdog" "no watchdog timeout in the journal"; fi
expect watchdog/store-kept "$(show NFileDescriptorStore)" -eq "$NSTORE"
fds_back watchdog

# systemctl stop: systemd >= 254 keeps the store (FileDescriptorStorePreserve=yes); older ones (Debian 12's
# 252) ignore that key and release the store with the unit: the fds are gone after the next start
systemctl stop vlud.service
expect stop/inactive "$(show ActiveState)" = inactive
[ "$(show ActiveState)" = inactive ] || journalctl -u vlud.service --no-pager | tail -25
vctl --json status > /tmp/stop.status 2>&1
expect stop/socket-activates-again "$?" -eq 0
if [ "$SDVER" -ge 254 ]; then
	expect stop/preserved-on-systemd-ge-254 "$(jnum /tmp/stop.status adopted_fds)" -ge 2
else
	expect "stop/released-on-systemd-$SDVER-as-documented" "$(jnum /tmp/stop.status adopted_fds)" -eq 0
fi
echo "# done" >> "$OUT"
