#!/bin/sh
# minivmm-vlud: minivmm gets its device from vlud (stock modules, PA): instance.register,
# device.open through the daemon, guest-RAM memfd and eventfds stored with fd.store, the mapping table
# declared; loopback traffic with nothing lost; the daemon holds the fds while the VMM runs; a self-driven
# update is refused for path C (vlud's copy keeps the device open: only the update engine can reopen it);
# after vluctl release the device can be opened again.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "vlud:", "traffic:", "update N:", "verdict:")
# and TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

start_vlud

runv traffic vm0 --mem 64M --duration 5 > /dev/null &
bg=$!
# the VMM holds its fds with vlud once it has registered, opened and stored (a loaded TCG host took more
# than 3 s for that); the run lasts 5 s
# shellcheck disable=SC2317 # called by wait_until
six_held() { [ "$(held vm0)" -ge 6 ] || ! alive "$bg"; }
wait_until 50 six_held
vluctl --socket "$SOCK" fds vm0 > fds.txt 2>&1
sed 's/^/[fds] /' fds.txt
for name in vdpa:vdpa0 ram0 q0-kick q0-call q1-kick q1-call; do
	if grep -q "$name" fds.txt; then t_ok "held/$name"; else t_fail "held/$name" "not in vluctl fds"; fi
done
wait $bg
RC=$?
sed "s/^/[traffic] /" traffic.log traffic.out
check_traffic traffic 1300
expect traffic/stored-5-fds "$(val traffic.out vlud: stored)" -eq 5
expect traffic/device-fd-name "$(val traffic.out vlud: device_fd)" = vdpa:vdpa0
expect traffic/vmm.mappings-accepted "$(val traffic.out vlud: mappings)" = ok

# the orphaned instance still holds the device: a second VMM cannot have it
runv busy vm1 --mem 16M --duration 1
expect busy/device-held-exit-3 "$RC" -eq 3
vluctl --socket "$SOCK" release vm0
expect release/vm0 "$?" -eq 0

runv self-update vm2 --mem 64M --duration 3 --update-after 1
expect self-update/exit-status-1 "$RC" -eq 1
if grep -q "path C .* needs vlud's update engine" self-update.log; then
	t_ok self-update/path-c-refused
else
	t_fail self-update/path-c-refused "no refusal in log"
fi
expect self-update/traffic-unaffected-none-lost "$(val self-update.out traffic: lost)" -eq 0
expect self-update/all-echoed "$(val self-update.out traffic: echoed)" -eq "$(val self-update.out traffic: sent)"
stop_vlud
exit $((FAILS > 0))
