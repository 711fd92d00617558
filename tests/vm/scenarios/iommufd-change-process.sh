#!/bin/sh
# iommufd-change-process: a real VFIO device (QEMU's edu behind the emulated intel-iommu, bound to vfio-pci)
# on /dev/iommu: IOAS_MAP_FILE of a memfd, edu DMA RAM -> device -> RAM checked; the iommufd and device fds
# passed by SCM_RIGHTS to an exec'ed second process, which maps the memfd elsewhere, calls
# IOMMU_IOAS_CHANGE_PROCESS and DMAs again into the memfd; VmPin (and VmLck in mm mode) moved exactly from
# the first process to the second, in user and mm accounting modes, with one mapping and with 512 (4 KiB
# areas of a 2 MiB memfd, --maps). Negative: a plain IOMMU_IOAS_MAP
# mapping makes CHANGE_PROCESS fail EINVAL; __reserved set fails EOPNOTSUPP; an empty context is a no-op.
# With CAP_IPC_LOCK kept (no accounting mode) the counters are reported, not asserted (docs/IOMMUFD.md).
# The vdpa_sim device of the same boot is there too (one guest, both kinds of device).
# flavour: iommufd
# use_va: 0
# devices: 1
# timeout: 240
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh

if [ -c /dev/iommu ]; then t_ok iommu-node; else t_fail iommu-node "/dev/iommu missing"; fi
if [ -c /dev/vhost-vdpa-0 ]; then t_ok vhost-vdpa-node; else t_fail vhost-vdpa-node "/dev/vhost-vdpa-0 missing"; fi

edu_find
t_ok edu-found
echo "edu at $bdf"
if [ -e "$edu/iommu_group" ]; then
	t_ok edu-iommu-group
	echo "iommu group $(basename "$(readlink "$edu/iommu_group")"): $(ls "$edu/iommu_group/devices")"
else
	t_fail edu-iommu-group "$bdf has no IOMMU group (intel-iommu not active?)"
fi

# bind to vfio-pci
edu_bind
expect bound-vfio-pci "$(basename "$(readlink "$edu/driver" 2> /dev/null)")" = vfio-pci

# each program's exit status is a test of its own: a program that dies (a signal: 128+N) says so by name
vlu-iommufd --acct user change-process "$dev"
expect change-process-user-exit $? -eq 0
vlu-iommufd --acct mm change-process "$dev"
expect change-process-mm-exit $? -eq 0
# many mappings: 2 MiB as 512 MAP_FILE areas of 4 KiB (user mode needs twice that of RLIMIT_MEMLOCK at the call), one CHANGE_PROCESS moves them all (user and mm)
vlu-iommufd --acct user --size 2097152 --maps 512 change-process "$dev"
expect change-process-user-maps512-exit $? -eq 0
vlu-iommufd --acct mm --size 2097152 --maps 512 change-process "$dev"
expect change-process-mm-maps512-exit $? -eq 0
vlu-iommufd negative "$dev"
expect negative-exit $? -eq 0
# CAP_IPC_LOCK kept (no accounting mode): DMA checked, the counters only reported ("# observed" lines)
vlu-iommufd --acct none change-process "$dev"
expect change-process-none-exit $? -eq 0
exit $((FAILS > 0))
