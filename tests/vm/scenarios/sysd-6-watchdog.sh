#!/bin/sh
# sysd-6-watchdog: vlud stopped with SIGSTOP stops sending WATCHDOG=1; systemd's watchdog
# (WatchdogSec=30s) kills it and Restart=on-failure starts it again, with the held fds of an orphaned
# instance back from the fd store.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
sysd_policy

vmm_unit vmm-w --mem 16M --duration 1
unit_result vmm-w.service > /dev/null
sed 's/^/[vmm-w] /' /run/vmm-w.log /run/vmm-w.out
expect before/orphaned "$(instate vmm-w)" = orphaned
names0=$(held_list vmm-w)
ino0=$(inodes "$(mainpid)")
n0=$(prop vlud.service NRestarts)
p0=$(mainpid)
kill -STOP "$p0"
# shellcheck disable=SC2317 # called by wait_until
restarted() { [ "$(mainpid)" != "$p0" ] && [ "$(mainpid)" != 0 ] && active vlud.service; }
# 30 s watchdog + the abort timeout + RestartSec
wait_until 900 restarted
expect watchdog/restarted "$(mainpid)" -ne "$p0"
expect watchdog/nrestarts "$(prop vlud.service NRestarts)" -eq $((n0 + 1))
journalctl -b -u vlud.service -o cat > journal.txt
if grep -q 'Watchdog timeout' journal.txt; then t_ok watchdog/journal-says-watchdog-timeout; else t_fail watchdog/journal-says-watchdog-timeout "no 'Watchdog timeout' in the journal"; fi
wait_until 50 instate_is vmm-w orphaned
expect after/instance-back "$(instate vmm-w)" = orphaned
expect after/same-held-names "$(held_list vmm-w)" = "$names0"
expect after/same-memfd-inodes "$(inodes "$(mainpid)")" = "$ino0"
vctl release vmm-w
expect release/vmm-w "$?" -eq 0
exit $((FAILS > 0))
