#!/bin/sh
# tenant-linger-update: a hostile tenant cannot delay another tenant's live update (docs/SECURITY.md).
# Tenant B (uid 1000, vlu-linger) stores and removes a TCP socket whose close() blocks for 20 s
# (SO_LINGER, megabytes queued behind a peer that never reads): vlud's copy is the last one, its close
# runs in B's closer lane.  While it blocks, instance vm0 (minivmm, root) runs a path-C live update in
# exec mode, whose release of the old device runs in the DEVICE lane: the update's verdict is ok, VmPin
# moved as expected, DRIVER_OK, no frame lost (every check of update_ok and check_vmm_after); B's close
# was still blocking when the update ended and is logged, with B's lane, once it returns.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
. /scenarios/lib/update.sh
VLUD_FD_TYPES='"memfd", "eventfd", "vhost-vdpa", "socket"'
LINGER_S=20

start_vlud '"update": { "allow_memlock_raise": true }'
chmod 0666 "$SOCK" # uid 1000 connects too (the policy, not the file mode, admits it)
vlu-linger "$SOCK" 1000 tenant-b "$LINGER_S" > linger.out 2> linger.err &
LPID=$!
if wait_until 100 grep -q "vlu-linger: lingering" linger.out; then
	t_ok linger/tenant-b-close-blocking
else
	t_fail linger/tenant-b-close-blocking "$(cat linger.out linger.err)"
fi
sed 's/^/[linger] /' linger.out linger.err
start_vmm run vm0 --mem 64M --duration 9 --pause-frames 8
T0=$(date +%s)
update_ok run vm0 exec C pa
T1=$(date +%s)
# B's close had not returned when the update ended (the update did not wait for it, nor run after it)
if grep -q "lane uid 1000) took" vlud.log; then
	t_fail linger/b-still-blocking-after-update "B's close returned before the update's end ($((T1 - T0)) s)"
else
	t_ok linger/b-still-blocking-after-update
fi
expect linger/update-within-linger "$((T1 - T0))" -lt "$LINGER_S"
wait_vmm run
check_vmm_after run C
if wait_until $(((LINGER_S + 10) * 10)) grep -q "closing 1 fd of tenant-b (lane uid 1000) took" vlud.log; then
	t_ok linger/b-close-logged-in-its-lane
else
	t_fail linger/b-close-logged-in-its-lane "no 'lane uid 1000) took' line in vlud.log"
fi
kill "$LPID" 2> /dev/null
wait "$LPID" 2> /dev/null
stop_vlud
exit $((FAILS > 0))
