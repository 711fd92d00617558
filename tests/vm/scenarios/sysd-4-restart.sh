#!/bin/sh
# sysd-4-restart: vlud.service holds a running VMM's fds (minivmm of user vmm, a systemd service, traffic
# running); `systemctl restart vlud` and then `kill -9` of vlud: systemd keeps them in vlud's fd store
# (FileDescriptorStoreMax=) and hands them back to the new vlud: the same memfds (inodes), the device still
# held, the instance back, and the VMM's traffic ran through both with nothing lost.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
sysd_policy

vmm_unit vmm-r --mem 64M --duration 30
# shellcheck disable=SC2317 # called by wait_until
six_held() { [ "$(held vmm-r)" -ge 6 ] || ! active vmm-r.service; }
wait_until 100 six_held
expect before/held "$(held vmm-r)" -eq 6
names0=$(held_list vmm-r)
ino0=$(inodes "$(mainpid)")
echo "# held: $names0; memfd inodes: $ino0; stored: $(nstored)"
expect before/memfds-held "$(echo "$ino0" | wc -w)" -ge 1
expect before/device-fd-held "$(vdpa_fds "$(mainpid)")" -ge 1
expect before/store-holds-them "$(nstored)" -ge 6

# after_restart TAG OLDPID: the new vlud has every fd back
after_restart() {
	_new=$(mainpid)
	expect "$1/new-pid" "$_new" -ne "$2"
	expect "$1/service-active" "$(systemctl is-active vlud.service)" = active
	wait_until 50 instate_is vmm-r attached
	expect "$1/instance-back" "$(instate vmm-r)" = attached
	expect "$1/same-held-names" "$(held_list vmm-r)" = "$names0"
	expect "$1/same-memfd-inodes" "$(inodes "$_new")" = "$ino0"
	expect "$1/device-fd-back" "$(vdpa_fds "$_new")" -ge 1
	if dev_busy; then t_ok "$1/device-still-held"; else t_fail "$1/device-still-held" "/dev/vhost-vdpa-0 could be opened"; fi
	expect "$1/store-kept" "$(nstored)" -ge 6
}

p0=$(mainpid)
systemctl restart vlud.service
expect restart/systemctl "$?" -eq 0
after_restart restart "$p0"

p1=$(mainpid)
kill -9 "$p1"
# Restart=on-failure, RestartSec=1s
# shellcheck disable=SC2317 # called by wait_until
restarted() { [ "$(mainpid)" != "$p1" ] && [ "$(mainpid)" != 0 ] && active vlud.service; }
wait_until 100 restarted
expect kill9/restarted-by-systemd "$(prop vlud.service NRestarts)" -ge 1
after_restart kill9 "$p1"

vmm_traffic vmm-r 3000
exit $((FAILS > 0))
