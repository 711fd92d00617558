#!/bin/sh
# qemu-vluctl-run: Debian's unmodified qemu-system-x86_64 as the VMM, started by `vluctl run` as the
# unprivileged uid vmm with vlud's vhost-vdpa fd at fd 3 (`-netdev vhost-vdpa,vhostfd=3`); no guest CPU
# runs (qtest): vlu-qtest-net drives QEMU's virtio-net-pci device through the qtest socket (PCI
# capabilities, features, rings in guest RAM, DRIVER_OK: QEMU starts its vhost-vdpa backend on the fd)
# and every frame comes back through vdpa_sim_net's loopback, in order and intact.  Then kill -9 of
# QEMU: vlud keeps the device (instance orphaned, device status untouched), another tenant (uid 1001, which
# the policy admits for the same device) is refused, and a relaunch through `vluctl run` reattaches, has
# vlud reopen the device (device.reopen: closed and opened afresh, reserved to vm1 throughout) and passes
# the traffic again, while that other tenant asks for the device again and again on its connection from
# before the relaunch to after it and is refused every time.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# qemu: yes
# timeout: 480
SOCK=/run/vlud-qemu.sock
. /scenarios/lib/vlud.sh

for p in vlud vluctl vlu-qtest-net vlu-devopen qemu-system-x86_64; do
	command -v $p > /dev/null || { t_fail "$p-on-PATH" "$p is not in the guest"; exit 1; }
done
t_ok programs-on-path

# vlud: root is the operator; the VMM rule admits uid vmm (QEMU's), uid 1001 (the other tenant) and root
cat > vlud.conf << EOF
{ "socket": { "path": "$SOCK", "mode": "0666" }, "operators": { "uids": [0] },
  "vmms": [ { "uids": [1000, 1001, 0], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd"], "max_fds": 16 } ] }
EOF
vlud -c vlud.conf > vlud.log 2>&1 &
VLUD_PID=$!
wait_until 50 test -S "$SOCK" && t_ok vlud/started || { t_fail vlud/started "no socket"; cat vlud.log; exit 1; }
chmod 0755 "$PWD"
# QEMU pins its guest RAM (PA mode): 32 MiB and the firmware, above the default 8 MiB RLIMIT_MEMLOCK
ulimit -l unlimited

QARGS="-machine q35 -m 32M -nodefaults -no-user-config -display none -qtest-log /dev/null
 -netdev vhost-vdpa,id=n0,vhostfd=3 -device virtio-net-pci,netdev=n0,disable-legacy=on,romfile=,addr=0x3"

# launch RUN: the qtest driver on RUN.sock, then QEMU through vluctl run; waits for the traffic
launch() {
	vlu-qtest-net --socket "$PWD/$1.sock" --tag "$S/$1" --frames 256 --queue-size 64 --timeout 120 --wait-eof --trace 120 \
		> "$1.tap" 2> "$1.err" &
	QT=$!
	wait_until 100 test -S "$PWD/$1.sock"
	# shellcheck disable=SC2086
	vluctl --socket "$SOCK" run vm1 --user vmm --device vdpa0=3 --report "$1.json" -- \
		qemu-system-x86_64 $QARGS -qtest "unix:$PWD/$1.sock" > "$1.qemu.log" 2>&1 &
	LAUNCHER=$!
	wait_until 1800 grep -q 'traffic done\|^not ok' "$1.tap"
	QPID=$(jget .pid "$1.json")
	if [ -z "$QPID" ] || ! grep -q 'traffic done' "$1.tap"; then
		t_fail "$1.started" "QEMU or the traffic did not come up"
		kill -9 "$QPID" "$LAUNCHER" "$QT" 2> /dev/null
		report "$1"
		sed 's/^/[vlud] /' vlud.log
		kill "$VLUD_PID"
		exit 1
	fi
}
report() { # RUN: the driver's TAP lines and the logs
	cat "$1.tap"
	sed "s/^/[$1 qtest] /" "$1.err"
	sed "s/^/[$1 vluctl+qemu] /" "$1.qemu.log"
}
node_busy() { (exec 5<> /dev/vhost-vdpa-0) 2>&1 | grep -qi 'resource busy'; }
other_tenant_refused() { # TAG: another tenant (uid 1001) through libvlu and through vluctl run; the node itself
	vlu-devopen "$SOCK" other vdpa0 --expect-busy --uid 1001 > other.out 2>&1
	grep -q '^not ok' other.out && t_fail "$1.other-instance-busy" "$(grep '^not ok' other.out | head -n 3)" ||
		t_ok "$1.other-instance-busy"
	rc=0
	vluctl --socket "$SOCK" run other --user 1001 --device vdpa0=3 -- /bin/true > other-run.out 2>&1 || rc=$?
	if [ $rc -eq 1 ] && grep -q Busy other-run.out; then t_ok "$1.other-launcher-busy"; else
		t_fail "$1.other-launcher-busy" "exit $rc: $(head -c 300 other-run.out)"; fi
	node_busy && t_ok "$1.node-busy" || t_fail "$1.node-busy" "/dev/vhost-vdpa-0 could be opened"
	vctl release other > /dev/null 2>&1
}

# ---- run 1: QEMU through vluctl run, traffic ----
launch run1
expect run1.qemu-pid "$QPID" -gt 1
expect run1.fd3-is-the-device "$(readlink "/proc/$QPID/fd/3")" = /dev/vhost-vdpa-0
expect run1.qemu-uid "$(stat -c %u "/proc/$QPID")" = 1000
expect run1.report-fd "$(jget '.devices[0].fd' run1.json)" = 3
expect run1.report-path "$(jget '.devices[0].path' run1.json)" = /dev/vhost-vdpa-0
expect run1.report-fresh "$(jget .reattached run1.json)" = false
expect run1.vmpin-qemu "$(vmpin "$QPID")" -gt 0
expect run1.instance-attached "$(instate vm1)" = attached
expect run1.device-driver-ok "$(devstatus vdpa0)" = 15
other_tenant_refused run1

# ---- kill -9 of QEMU: vlud keeps the device, nothing reset ----
kill -9 "$QPID"
rc=0
wait "$LAUNCHER" || rc=$?
expect kill9.launcher-exit "$rc" = 137
wait "$QT"
report run1
expect kill9.driver-saw-qemu-gone "$(grep -c 'qemu-gone' run1.tap)" = 1
expect kill9.report-signal "$(jget .exit.signal run1.json)" = 9
wait_until 50 instate_is vm1 orphaned
expect kill9.orphaned "$(instate vm1)" = orphaned
expect kill9.device-held "$(held_list vm1)" = vdpa:vdpa0
expect kill9.device-not-reset "$(devstatus vdpa0)" = 15
other_tenant_refused kill9

# ---- run 2: the same command again reattaches, reopens, traffic flows; the other tenant (uid 1001) asks for
# the device on one connection, again and again, from before the relaunch until after its traffic ----
rm -f relaunch.done
vlu-devopen "$SOCK" other vdpa0 --expect-busy --uid 1001 --until "$PWD/relaunch.done" > hostile.out 2>&1 &
HOSTILE=$!
wait_until 100 grep -q 'devopen.other.register' hostile.out
launch run2
touch relaunch.done
wait "$HOSTILE"
sed 's/^/[other tenant] /' hostile.out
grep -q '^ok - .*devopen.other.open-refused-Busy-every-time' hostile.out && t_ok run2.other-tenant-refused-throughout ||
	t_fail run2.other-tenant-refused-throughout "$(grep '^not ok' hostile.out | head -n 3)"
vctl release other > /dev/null 2>&1
expect run2.report-reattached "$(jget .reattached run2.json)" = true
expect run2.report-reopened "$(jget '.devices[0].reopened' run2.json)" = true
expectf run2.report-release-ms "$(jget '.devices[0].release_ms' run2.json)" '>=' 0
grep -i 'reopen' vlud.log | sed 's/^/[vlud] /'
echo "# run2: device.reopen released the old fd in $(jget '.devices[0].release_ms' run2.json) ms"
grep -q 'instance vm1 reopened device vdpa0' vlud.log && t_ok run2.vlud-reopened ||
	t_fail run2.vlud-reopened "no reopen in vlud.log: $(grep -i reopen vlud.log | tail -n 3)"
expect run2.vmpin-qemu "$(vmpin "$QPID")" -gt 0
expect run2.device-driver-ok "$(devstatus vdpa0)" = 15
expect run2.fd3-is-the-device "$(readlink "/proc/$QPID/fd/3")" = /dev/vhost-vdpa-0
expect run2.instance-attached "$(instate vm1)" = attached
grep -q '^ok - .*run2.traffic' run2.tap && t_ok run2.traffic-again || t_fail run2.traffic-again "see above"

# ---- end: SIGTERM to the launcher reaches QEMU; release ----
kill -TERM "$LAUNCHER"
rc=0
wait "$LAUNCHER" || rc=$?
wait "$QT"
report run2
# QEMU exits 0 on SIGTERM (it prints no "terminating on signal 15" under -qtest: qemu_kill_report() stays
# quiet for a qtest driver); the launcher waited for it and exits with its status: 0 says the forwarded
# SIGTERM ended QEMU (the launcher's death alone would have killed it by PR_SET_PDEATHSIG, a signal status)
expect end.launcher-exit "$rc" = 0
expect end.report-exit-code "$(jget .exit.code run2.json)" = 0
vctl release vm1 > /dev/null 2>&1
expect end.released "$(held vm1)" = 0
(exec 5<> /dev/vhost-vdpa-0) 2> /dev/null && t_ok end.node-free || t_fail end.node-free "still busy after the release"
stop_vlud > /dev/null
exit $((FAILS > 0))
