#!/bin/sh
# iommufd-vlud: vlud holds /dev/iommu and a real VFIO device cdev (QEMU's edu behind the emulated
# intel-iommu, bound to vfio-pci) for a VMM (docs/IOMMUFD.md): the policy names both nodes; the VMM
# (vlu-iommufd vlud) gets both fds from device.open, checks them (the nodes' device numbers, O_RDWR, kind,
# CHANGE_PROCESS probed, the PCI device behind the cdev), binds, attaches, maps a memfd with MAP_FILE and
# DMAs through them; a second open is Busy, another instance gets its own iommufd but not the device.
# vmm.mappings "ioas" declarations refused (memfd not stored, overlap, beyond the memfd, not an iommufd)
# and update.start's preflight refusals, each with its reason, on the real kernel: undeclared iommufd,
# device in no IOAS, VmPin not what is declared, a plain IOMMU_IOAS_MAP mapping, mm accounting in exec
# mode; with nothing in the way (user mode exec, mm mode transfer) path B is refused after the preflight,
# which says what could move (the update itself: iommufd-update); run again keeping CAP_IPC_LOCK, that is
# refused instead.  After the VMM closed its copies, the fds retrieved from vlud still
# carry the same IOAS and device (DMA again); after the release the device opens again.
# vlud's view (vluctl fds) is checked from the shell.
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
SOCK=/run/vlud/vlud.sock

edu_find
edu_bind
echo "edu $bdf: $dev"
grep -E 'vfio|vhost' /proc/devices | sed 's/^/# \/proc\/devices: /'
grep -E 'iommu|vfio' /proc/misc | sed 's/^/# \/proc\/misc: /'

mkdir -p /run/vlud
cat > /tmp/vlud.conf <<-EOC
	{
		"socket": { "path": "$SOCK", "mode": "0600", "group": null },
		"orphan_expiry_s": 0,
		"operators": { "uids": [0], "gids": [] },
		"vmms": [
			{ "uids": [0], "gids": [], "devices": ["vdpa0", "/dev/iommu", "$dev"],
			  "fd_types": ["memfd", "eventfd"], "max_fds": 16 }
		]
	}
EOC
if vlud --check-config --config /tmp/vlud.conf > /tmp/check.out 2>&1; then t_ok config-valid; else t_fail config-valid "$(head -c 300 /tmp/check.out)"; fi
vlud --config /tmp/vlud.conf > /tmp/vlud.log 2>&1 &
VLUD=$!
if wait_until 100 test -S $SOCK; then t_ok daemon-listening; else t_fail daemon-listening "no socket"; fi

vlu-iommufd vlud "$SOCK" "$dev" "$bdf"
expect vlud-exit $? -eq 0

# vlud's view after the program: iof2 holds the device (reopened after iof1's release) and its iommufd
vluctl --socket $SOCK --json fds > /tmp/fds.json 2> /tmp/fds.err
if grep -q "\"vfio:$vf\"" /tmp/fds.json && grep -q '"iommufd:iommu"' /tmp/fds.json && grep -q '"type": *"vfio"' /tmp/fds.json; then
	t_ok vluctl-fds-shows-kinds
else
	t_fail vluctl-fds-shows-kinds "$(head -c 400 /tmp/fds.json /tmp/fds.err | tr '\n' ' ')"
fi
vluctl --socket $SOCK --json devices > /tmp/devs.json 2>&1
sed 's/^/# device.list: /' /tmp/devs.json | head -20
# again with CAP_IPC_LOCK kept (QEMU run as root): the preflight refuses the unaccounted mappings
if vluctl --socket $SOCK release iof2 > /tmp/rel.out 2>&1; then t_ok release-iof2; else t_fail release-iof2 "$(head -c 300 /tmp/rel.out)"; fi
vlu-iommufd vlud "$SOCK" "$dev" "$bdf" --keep-ipc-lock
expect vlud-ipc-lock-exit $? -eq 0
kill "$VLUD"
wait "$VLUD" 2> /dev/null
sed 's/^/[vlud] /' /tmp/vlud.log
exit $((FAILS > 0))
