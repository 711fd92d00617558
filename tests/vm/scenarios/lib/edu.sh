#!/bin/sh
# lib/edu.sh: the iommufd flavour's VFIO device, QEMU's `edu` (PCI 1234:11e8, a DMA engine behind the
# emulated intel-iommu), for the iommufd-*.sh scenarios (sourced after lib/tap.sh).
#
# edu_find: sets edu (its sysfs directory) and bdf; not ok edu-found and exit when there is none
edu_find() {
	edu=
	for _d in /sys/bus/pci/devices/*; do
		[ "$(cat "$_d/vendor")" = 0x1234 ] && [ "$(cat "$_d/device")" = 0x11e8 ] && edu=$_d && break
	done
	if [ -z "$edu" ]; then
		t_fail edu-found "no PCI device 1234:11e8 (qemu -device edu)"
		exit 1
	fi
	bdf=${edu##*/}
}
# edu_bind: binds it to vfio-pci and waits for its VFIO cdev: sets vf (vfioN) and dev
# (/dev/vfio/devices/vfioN); ok/not ok vfio-cdev (exit when missing)
edu_bind() {
	echo vfio-pci > "$edu/driver_override"
	[ -e "$edu/driver" ] && echo "$bdf" > "$edu/driver/unbind"
	echo "$bdf" > /sys/bus/pci/drivers_probe
	vf=$(ls "$edu/vfio-dev" 2> /dev/null | head -1)
	if [ -n "$vf" ] && wait_until 50 test -c "/dev/vfio/devices/$vf"; then
		t_ok vfio-cdev
	else
		t_fail vfio-cdev "no /dev/vfio/devices/${vf:-vfioN} for $bdf"
		exit 1
	fi
	dev=/dev/vfio/devices/$vf
}
