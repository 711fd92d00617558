#!/bin/sh
# sysd-1-install: the guest runs systemd (252, Debian 12) as PID 1; `apt-get install ./*.deb` of the
# packages built by `make deb` resolves their dependencies from the guest's own package set (no network);
# vlud.socket is enabled and listening as the package sets it up, the sysusers group exists, the
# configuration is a conffile.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh

expect systemd/pid1 "$(cat /proc/1/comm)" = systemd
expect systemd/version-252 "$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')" -ge 252
expect systemd/system-running "$(systemctl is-system-running)" != offline
ls /rig/debs
sysd_install
expect install/apt-get "$?" -eq 0
for p in vlud libvlu0 libvlu-dev vlud-minivmm; do
	expect "install/$p" "$(dpkg-query -W -f '${Status}' "$p" 2> /dev/null)" = "install ok installed"
done
expect install/socket-enabled "$(systemctl is-enabled vlud.socket)" = enabled
expect install/socket-active "$(systemctl is-active vlud.socket)" = active
expect install/socket-path "$(stat -c %F "$SOCK" 2> /dev/null)" = socket
expect install/socket-group "$(stat -c %G "$SOCK" 2> /dev/null)" = vlud
expect install/group-vlud "$(getent group vlud | cut -d: -f1)" = vlud
expect install/conffile "$(dpkg-query -W -f '${Conffiles}' vlud | awk '{ print $1 }')" = /etc/vlud/vlud.conf
expect install/vlud-binary "$(command -v vlud)" = /usr/sbin/vlud
systemctl status --no-pager vlud.socket vlud.service 2>&1 | sed 's/^/[status] /'
exit $((FAILS > 0))
