#!/bin/sh
# sysd-7-stop: `systemctl stop vlud` on systemd 252 releases the fd store as docs/CONFIG.md documents
# (FileDescriptorStorePreserve= needs systemd >= 254: 252 warns about the key and drops the store at a
# stop): the device is free afterwards and the next vlud (socket activation) starts without the instance.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
sysd_policy

vmm_unit vmm-s --mem 16M --duration 1
unit_result vmm-s.service > /dev/null
expect before/orphaned "$(instate vmm-s)" = orphaned
if dev_busy; then t_ok before/device-held; else t_fail before/device-held "/dev/vhost-vdpa-0 could be opened"; fi
expect before/store "$(nstored)" -ge 6
systemctl stop vlud.service
expect stop/systemctl "$?" -eq 0
expect stop/inactive "$(systemctl is-active vlud.service)" = inactive
expect stop/store-released "$(nstored)" -eq 0
if dev_busy; then t_fail stop/device-free "/dev/vhost-vdpa-0 still busy"; else t_ok stop/device-free; fi
if journalctl -b -u vlud.service -o cat | grep -q "Unknown key name 'FileDescriptorStorePreserve'"; then
	t_ok stop/252-warns-about-preserve
else
	t_skip stop/252-warns-about-preserve "no warning in the journal (systemd >= 254 keeps the store)"
fi
vctl status > status.txt 2>&1
expect activation/vluctl-status "$?" -eq 0
if [ -z "$(instate vmm-s)" ]; then t_ok activation/instance-gone; else t_fail activation/instance-gone "vmm-s is $(instate vmm-s)"; fi
exit $((FAILS > 0))
