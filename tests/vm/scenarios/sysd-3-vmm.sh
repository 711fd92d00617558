#!/bin/sh
# sysd-3-vmm: the reference VMM (minivmm of vlud-minivmm) runs as a systemd service of the unprivileged user
# vmm (group vlud may connect to vlud.socket), gets vdpa0 from vlud (the policy in /etc/vlud/vlud.conf)
# and runs loopback traffic with nothing lost; vlud holds its fds while it runs.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
sysd_policy
expect policy/vlud-active "$(systemctl is-active vlud.service)" = active

vmm_unit vmm-a --mem 64M --duration 6
expect vmm/unit-started "$?" -eq 0
expect vmm/runs-as-vmm "$(prop vmm-a.service User)" = vmm
# shellcheck disable=SC2317 # called by wait_until
six_held() { [ "$(held vmm-a)" -ge 6 ] || ! active vmm-a.service; }
wait_until 100 six_held
expect vmm/vlud-holds-6-fds "$(held vmm-a)" -eq 6
expect vmm/instance-uid "$(vctl --json instances | jget '.instances[name=vmm-a].uid')" -eq 1000
if dev_busy; then t_ok vmm/device-busy; else t_fail vmm/device-busy "/dev/vhost-vdpa-0 could be opened"; fi
vmm_traffic vmm-a 1000
expect vmm/device-fd-from-vlud "$(val traffic.out vlud: device_fd)" = vdpa:vdpa0
exit $((FAILS > 0))
