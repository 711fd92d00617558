#!/bin/sh
# rig-daemon: vlud in the guest with its own configuration (root is operator and the VMM allowed vdpa0):
# a VMM's device.open of vdpa0 returns the device fd and the expected info, a second open is
# refused (Busy) while the first instance holds it, the node itself is busy for everyone else, and after
# `vluctl release` the device can be opened again (and device.reopen refuses while the VMM still has a
# copy, at most one /proc scan a second per uid, then reopens).  vluctl checks the daemon's view.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 120
. /scenarios/lib/tap.sh
SOCK=/run/vlud/vlud.sock
t() { # NAME COMMAND...: one TAP line from a command's exit status
	n=$1; shift
	if "$@" > /tmp/t.out 2>&1; then t_ok "$n"; else t_fail "$n" "$(head -c 300 /tmp/t.out | tr '\n' ' ')"; fi
}
# the node cannot be opened (EBUSY) because someone holds it
node_busy() { (exec 5<> /dev/vhost-vdpa-0) 2>&1 | grep -qi 'resource busy'; }
for p in vlud vluctl vlu-devopen; do
	command -v $p > /dev/null || { t_fail "$p-on-PATH" "$p is not built (make)"; exit 1; }
done

# our own guest configuration: root is operator and the VMM allowed vdpa0 (and only vdpa0)
mkdir -p /run/vlud
cat > /tmp/vlud.conf <<-EOC
	{
		"socket": { "path": "$SOCK", "mode": "0600", "group": null },
		"orphan_expiry_s": 0,
		"operators": { "uids": [0], "gids": [] },
		"vmms": [
			{ "uids": [0], "gids": [], "devices": ["vdpa0"],
			  "fd_types": ["memfd", "eventfd", "vhost-vdpa"], "max_fds": 16 }
		]
	}
EOC
t config-valid vlud --check-config --config /tmp/vlud.conf
vlud --config /tmp/vlud.conf > /tmp/vlud.log 2>&1 &
VLUD=$!
wait_until 100 test -S $SOCK
t daemon-listening test -S $SOCK
export VLUD_SOCKET=$SOCK
t vluctl-status vluctl status
t vluctl-devices-lists-vdpa0 sh -c 'vluctl devices | grep -q vdpa0'

# device.open needs a registered instance on the same connection: vluctl's one-shot call is refused
vluctl call device.open '{"device":"vdpa0"}' > /tmp/call.out 2>&1
c=$?
if [ $c = 1 ] && grep -q PermissionDenied /tmp/call.out; then
	t_ok vluctl-call-device.open-without-instance-refused
else
	t_fail vluctl-call-device.open-without-instance-refused "exit $c: $(head -c 200 /tmp/call.out)"
fi

# instance vm1 opens vdpa0 and holds it
mkfifo /tmp/hold1
vlu-devopen $SOCK vm1 vdpa0 --hold < /tmp/hold1 > /tmp/vm1.out 2>&1 &
VM1=$!
exec 4> /tmp/hold1
# shellcheck disable=SC2317 # called by wait_until
held_or_gone() { grep -q '^held$' /tmp/vm1.out || ! alive "$VM1"; }
wait_until 100 held_or_gone
grep -E '^(not )?ok ' /tmp/vm1.out
grep '^# ' /tmp/vm1.out
t vm1-holds-vdpa0 grep -q '^held$' /tmp/vm1.out
t vluctl-fds-shows-vm1-device sh -c 'vluctl fds vm1 | grep -q vhost-vdpa'
t vluctl-instances-shows-vm1 sh -c 'vluctl instances | grep -q vm1'

# a device the policy does not list is refused
vlu-devopen $SOCK vm9 vdpa1 --expect-error PermissionDenied || FAILS=$((FAILS + 1))

# a second VMM is refused, and so is anyone opening the node directly
vlu-devopen $SOCK vm2 vdpa0 --expect-busy || FAILS=$((FAILS + 1))
t node-busy-while-held node_busy

# vm1 goes away: the daemon keeps the device (orphaned instance) until an operator releases it
exec 4>&-
wait $VM1 || FAILS=$((FAILS + 1))
t vm1-exited-cleanly true
t device-still-held-after-vm1-left node_busy
t vluctl-instances-shows-vm1-orphaned sh -c 'vluctl instances | grep vm1 | grep -q orphan'
t vluctl-release-vm1 vluctl release vm1
t node-free-after-release sh -c 'exec 5<> /dev/vhost-vdpa-0'
# vm3 also checks device.reopen around its own copy of the fd (the holder scan names it, the scan's
# per-uid rate limit, the reopen once the copy is closed)
vlu-devopen $SOCK vm3 vdpa0 --reopen || FAILS=$((FAILS + 1))

kill $VLUD
wait $VLUD
t vlud-stopped true
sed 's/^/vlud: /' /tmp/vlud.log
exit $((FAILS > 0))
