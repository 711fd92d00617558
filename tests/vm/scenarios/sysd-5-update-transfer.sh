#!/bin/sh
# sysd-5-update-transfer: a transfer-mode live update (path C, stock modules, PA) under the packaged
# vlud.service: the old minivmm (a systemd service of user vmm) hands over and exits 0, the successor vlud
# spawns runs in vlud.service's cgroup (KillMode=process) as the instance's uid, its report goes to vlud's
# stdout (the journal): lib/update.sh's update_ok and check_vmm_after, zero frames lost.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
. /scenarios/lib/update.sh
sysd_update_vmm vmm-t
update_ok run vmm-t transfer C pa
r=$(unit_result vmm-t.service)
sed 's/^/[run old] /' /run/vmm-t.log /run/vmm-t.out
expect run/old-unit-result "$r" = "success 0"
if grep -q "handed over" /run/vmm-t.log; then t_ok run/old-handed-over; else t_fail run/old-handed-over "no hand-over in its log"; fi
expect run/successor-in-vlud-cgroup "$(cut -d: -f3 "/proc/$NEW_PID/cgroup" 2> /dev/null)" = /system.slice/vlud.service
expect run/successor-uid "$(stat -c %u "/proc/$NEW_PID" 2> /dev/null)" -eq 1000
# shellcheck disable=SC2317 # called by wait_until
journal() { journalctl -b -u vlud.service -o cat > vlud.log; }
# shellcheck disable=SC2317 # called by wait_until
succ_ended() { journal; successor_ended "$NEW_PID"; }
wait_until 200 succ_ended
sleep 0.5
journal
# the successor's report lines (minivmm's stdout) are vlud.service's output: the lines of the journal from
# its first report line on, without vlud's own (level-prefixed on stderr: journald strips the prefix, so
# take minivmm's known line prefixes)
grep -E '^(device|vlud|traffic|update [0-9]+|verdict):' vlud.log > run2.out
cp run2.out run2.log
grep 'vlud-verdict: ' vlud.log >> run2.log
st=$(sed -n "s/.*successor pid $NEW_PID ended (status \(0x[0-9a-f]*\)).*/\1/p" vlud.log)
RC=$((${st:-0x100} >> 8))
check_vmm_after run2 C
vctl release vmm-t
exit $((FAILS > 0))
