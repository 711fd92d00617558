#!/bin/sh
# iommufd-update: the live update of a VMM with a real VFIO device on iommufd through vlud, exec mode
# (docs/IOMMUFD.md "The update sequence"): QEMU's edu behind the emulated intel-iommu, bound to vfio-pci.
# The VMM (vlu-iommufd vmm) gets /dev/iommu and the cdev from device.open, binds, attaches, maps a 1 MiB
# memfd with IOMMU_IOAS_MAP_FILE (user accounting, no CAP_IPC_LOCK), stores the memfd, declares the IOAS
# (vmm.mappings "ioas") and checks a DMA; then:
#  1. an update that works: the new image claims, maps the memfd elsewhere, finds the old DMA's data there,
#     calls IOMMU_IOAS_CHANGE_PROCESS, DMAs again (the write lands in the memfd) and says iommufd_moved;
#     the verdict is ok with the iommufd counters, VmPin of the (same) pid is the declared size, vlud keeps
#     every fd (same held entries and inodes) and its own fd count;
#  2. a successor that does not call CHANGE_PROCESS but says it did: VmPin did not move, the verification
#     fails, vlud kills it and restarts the previous binary, which is told (rollback:true) to call
#     CHANGE_PROCESS: rolled-back, the charge with the restarted process, DMA works there;
#  3. a successor that dies after its claim, before update.ready: rolled back the same way.
# The VMM's own TAP lines (every image's) are in its log, printed at the end.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
SOCK=/run/vlud/vlud.sock
LOG=/tmp/vmm.log
MARK=/tmp/vmm.ready

edu_find
edu_bind
echo "edu $bdf: $dev"

mkdir -p /run/vlud
cat > /tmp/vlud.conf <<-EOC
	{
		"socket": { "path": "$SOCK", "mode": "0600", "group": null },
		"orphan_expiry_s": 0,
		"operators": { "uids": [0], "gids": [] },
		"vmms": [
			{ "uids": [0], "gids": [], "devices": ["/dev/iommu", "$dev"],
			  "fd_types": ["memfd", "eventfd"], "max_fds": 16 }
		]
	}
EOC
vlud --config /tmp/vlud.conf > /tmp/vlud.log 2>&1 &
VLUD=$!
if wait_until 100 test -S $SOCK; then t_ok daemon-listening; else t_fail daemon-listening "no socket"; fi

vmpin() { sed -n 's/^VmPin:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2> /dev/null; }
# the held entries (id and inode) of the three fds the updates must keep
held() {
	vluctl --socket $SOCK --json fds iofu > /tmp/fds.json 2>&1
	for _n in iommufd:iommu "vfio:$vf" ram; do
		printf '%s:%s/%s ' "$_n" "$(jget ".fds[name=$_n].id" /tmp/fds.json)" "$(jget ".fds[name=$_n].ino" /tmp/fds.json)"
	done
}
vludfds() { ls "/proc/$VLUD/fd" | wc -l; }
# gone PID: exited (a zombie of this shell counts: the first VMM is its child)
gone() { ! grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2> /dev/null; }
# ready GEN ROLE: the VMM image GEN (updates so far) of that role serves; its pid in $pid
ready() { grep -q "^ready [0-9]* $1 $2\$" $MARK 2> /dev/null && pid=$(cut -d' ' -f2 $MARK); }
# update NAME [vluctl update start options]: the verdict in /tmp/NAME.json
update() {
	_n=$1
	shift
	vluctl --socket $SOCK --json update start iofu --mode exec "$@" > "/tmp/$_n.json" 2> "/tmp/$_n.err"
	sed "s/^/# $_n: /" "/tmp/$_n.err" | head -5
}
v() { jget "$1" "/tmp/$2.json"; }

: > $LOG
vlu-iommufd vmm "$SOCK" "$dev" "$bdf" $LOG $MARK &
VMM=$!
if wait_until 300 ready 0 first; then t_ok vmm-first-ready; else t_fail vmm-first-ready "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect vmpin-first "$(vmpin "$VMM")" -eq 1024
held0=$(held)
echo "# held: $held0"
fds0=$(vludfds)
BIN=$(readlink "/proc/$VMM/exe")

# 1. the update
update u1
expect u1-result "$(v .result u1)" = ok
expect u1-same-pid "$(v .new_pid u1)" -eq "$VMM"
expect u1-iommufd-moved "$(v '.iommufd.moved[]' u1)" = iommufd:iommu
expect u1-accounting "$(v .iommufd.accounting u1)" = user
expect u1-charge-moved "$(v .iommufd.charge_moved_kb u1)" -eq 1024
expect u1-vmpin-before "$(v .iommufd.vmpin_before_kb u1)" -eq 1024
expect u1-vmpin-after "$(v .iommufd.vmpin_after_kb u1)" -eq 1024
expect u1-moved-ok "$(v .vmpin.moved_ok u1)" = true
expect u1-new-uaddr-declared "$(v '.iommufd.ioas[].mappings[].uaddr' u1 | wc -l)" -eq 1
if wait_until 100 ready 1 successor; then t_ok u1-successor-serves; else t_fail u1-successor-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u1-vmpin-now "$(vmpin "$VMM")" -eq 1024
expect u1-fds-kept "$(held)" = "$held0"
wait_until 50 test "$(vludfds)" -eq "$fds0"
expect u1-vlud-fds "$(vludfds)" -eq "$fds0"
# the new image's DMA went through its own mapping and landed in the memfd
for c in data-kept change-process vmpin-after-change-process after.dma after.data after.in-memfd; do
	expect "u1-vmm-$c" "$(grep -c "^ok - .*/vmm-1-successor\.$c\(=.*\)\?\$" $LOG)" -eq 1
done

# 2. a successor that says it moved the charge but did not
update u2 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --skip-change-process
expect u2-result "$(v .result u2)" = rolled-back
expect u2-restarted "$(v .restarted_previous u2)" = true
expect u2-killed "$(v .killed_pid u2)" -eq "$VMM"
if v .error u2 | grep -q "VmPin mismatch"; then t_ok u2-reason-vmpin; else t_fail u2-reason-vmpin "$(v .error u2)"; fi
if wait_until 100 ready 2 restarted; then t_ok u2-restarted-serves; else t_fail u2-restarted-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u2-new-pid "$(v .new_pid u2)" -eq "$pid"
if gone "$VMM"; then t_ok u2-skipper-gone; else t_fail u2-skipper-gone "pid $VMM alive"; fi
expect u2-vmpin-restarted "$(vmpin "$pid")" -eq 1024
expect u2-charge-moved "$(v .iommufd.charge_moved_kb u2)" -eq 1024
expect u2-fds-kept "$(held)" = "$held0"
expect u2-skipper-not-moved "$(grep -c "^ok - .*/vmm-2-skip\.vmpin-before-change-process=0\$" $LOG)" -eq 1
for c in claim told-to-change-process change-process vmpin-after-change-process after.dma after.data after.in-memfd; do
	expect "u2-restarted-$c" "$(grep -c "^ok - .*/vmm-2-restarted\.$c\(=.*\)\?\$" $LOG)" -eq 1
done
VMM=$pid

# 3. a successor killed (it exits) after its claim, before update.ready
update u3 --arg "$BIN" --arg vmm --arg "$SOCK" --arg "$dev" --arg "$bdf" --arg $LOG --arg $MARK --arg --die-after-claim
expect u3-result "$(v .result u3)" = rolled-back
expect u3-restarted "$(v .restarted_previous u3)" = true
if v .error u3 | grep -q "exited in phase restore"; then t_ok u3-reason-exit; else t_fail u3-reason-exit "$(v .error u3)"; fi
if wait_until 100 ready 3 restarted; then t_ok u3-restarted-serves; else t_fail u3-restarted-serves "$(tail -3 $LOG | tr '\n' ' ')"; fi
expect u3-vmpin-restarted "$(vmpin "$pid")" -eq 1024
expect u3-fds-kept "$(held)" = "$held0"
for c in change-process after.dma after.in-memfd; do
	expect "u3-restarted-$c" "$(grep -c "^ok - .*/vmm-3-restarted\.$c\(=.*\)\?\$" $LOG)" -eq 1
done
wait_until 50 test "$(vludfds)" -eq "$fds0"
expect vlud-fds-at-end "$(vludfds)" -eq "$fds0"

kill "$pid" 2> /dev/null
wait_until 50 gone "$pid"
kill "$VLUD"
wait "$VLUD" 2> /dev/null
echo "# the VMM's log (every image):"
cat $LOG
sed 's/^/[vlud] /' /tmp/vlud.log | tail -60
exit $((FAILS > 0))
