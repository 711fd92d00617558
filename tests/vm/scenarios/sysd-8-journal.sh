#!/bin/sh
# sysd-8-journal: vlud's log lines are in the journal (stderr of vlud.service, levels kept from the
# sd-daemon prefixes): start-up, readiness, and an instance registered by user vmm.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
sysd_policy
vmm_unit vmm-j --mem 16M --duration 1
unit_result vmm-j.service > /dev/null
vctl release vmm-j
journalctl -b -u vlud.service -o cat > journal.txt
journalctl -b -u vlud.service -o cat -p info _COMM=vlud > journal-vlud.txt
sed 's/^/[journal] /' journal.txt | tail -40
expect journal/vlud-lines "$(wc -l < journal-vlud.txt)" -ge 3
expect journal/ready "$(grep -c 'ready: pid' journal-vlud.txt)" -ge 1
expect journal/instance-registered "$(grep -c 'instance vmm-j registered by pid [0-9]* uid 1000' journal-vlud.txt)" -eq 1
expect journal/no-errors-at-err "$(journalctl -b -u vlud.service -o cat -p err _COMM=vlud | grep -vc '^-- ')" -eq 0
exit $((FAILS > 0))
