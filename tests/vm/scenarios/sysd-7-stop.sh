#!/bin/sh
# sysd-7-stop: `systemctl stop vlud` on systemd 252 releases the fd store as docs/CONFIG.md documents
# (FileDescriptorStorePreserve= needs systemd >= 254: 252 drops the store at a stop, and warns about the
# unknown key each time it loads the unit file): the device is free afterwards and the next vlud (socket
# activation) starts without the instance.
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
# systemd < 254 does not know FileDescriptorStorePreserve=: its unit file parser (config_parse() in
# src/shared/conf-parser.c) logs "FILE:LINE: Unknown key 'FileDescriptorStorePreserve' in section [Service],
# ignoring." (with UNIT=vlud.service) each time PID 1 loads the unit file: at the daemon-reload of the
# package's installation and every daemon-reload after it, not at the stop
ver=$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
unitfile=$(prop vlud.service FragmentPath)
line=$(grep -n '^FileDescriptorStorePreserve=' "$unitfile" | cut -d: -f1)
nwarn() { journalctl -b -u vlud.service -o cat | grep -c "^$unitfile:$line: Unknown key 'FileDescriptorStorePreserve' in section \[Service\], ignoring\.\$"; }
n1=$(nwarn)
journalctl -b -u vlud.service -o cat | grep -F 'FileDescriptorStorePreserve' | sed 's/^/[journal] /'
systemctl daemon-reload
# shellcheck disable=SC2317 # called by wait_until
warned_again() { [ "$(nwarn)" -gt "$n1" ]; }
if [ "$ver" -lt 254 ]; then
	expect stop/unit-file-line "${line:-0}" -gt 0
	expect stop/pre-254-warned-at-load "$n1" -ge 1
	wait_until 50 warned_again
	expect stop/pre-254-warns-again-at-daemon-reload "$(nwarn)" -eq $((n1 + 1))
else
	expect stop/254-knows-preserve "$n1" -eq 0
fi
vctl status > status.txt 2>&1
expect activation/vluctl-status "$?" -eq 0
if [ -z "$(instate vmm-s)" ]; then t_ok activation/instance-gone; else t_fail activation/instance-gone "vmm-s is $(instate vmm-s)"; fi
exit $((FAILS > 0))
