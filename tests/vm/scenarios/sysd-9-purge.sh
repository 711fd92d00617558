#!/bin/sh
# sysd-9-purge: `apt-get remove` stops vlud (no vlud process left, the socket gone) and keeps the
# configuration; `apt-get purge` leaves no file of the packages (nor the units' enablement links).  Runs
# last in its boot: it uninstalls vlud.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }
vctl status > /dev/null 2>&1
files=$(dpkg-query -L vlud libvlu0 libvlu-dev vlud-minivmm | while read -r f; do [ -f "$f" ] && echo "$f"; done)
expect before/files "$(echo "$files" | wc -l)" -ge 10
DEBIAN_FRONTEND=noninteractive apt-get remove -y vlud vlud-minivmm libvlu-dev libvlu0 > remove.log 2>&1
expect remove/apt-get "$?" -eq 0
sed 's/^/[remove] /' remove.log
if [ -z "$(pidof vlud)" ]; then t_ok remove/no-vlud-process; else t_fail remove/no-vlud-process "vlud runs: $(pidof vlud)"; fi
expect remove/socket-unit-gone "$(systemctl is-active vlud.socket)" != active
if [ -e "$SOCK" ]; then t_fail remove/socket-file-gone "$SOCK exists"; else t_ok remove/socket-file-gone; fi
if [ -f /etc/vlud/vlud.conf ]; then t_ok remove/conffile-kept; else t_fail remove/conffile-kept "/etc/vlud/vlud.conf gone"; fi
# after the remove only vlud is still known to dpkg (config-files: its conffile); the others had none
DEBIAN_FRONTEND=noninteractive apt-get purge -y vlud > purge.log 2>&1
expect purge/apt-get "$?" -eq 0
sed 's/^/[purge] /' purge.log
left=$(for f in $files /etc/vlud/vlud.conf; do [ -e "$f" ] && echo "$f"; done)
if [ -z "$left" ]; then t_ok purge/no-files-left; else t_fail purge/no-files-left "$(echo $left)"; fi
links=$(find /etc/systemd -name 'vlud*' 2> /dev/null)
if [ -z "$links" ]; then t_ok purge/no-unit-links; else t_fail purge/no-unit-links "$(echo $links)"; fi
if [ -d /etc/vlud ]; then t_fail purge/etc-vlud-gone "/etc/vlud exists"; else t_ok purge/etc-vlud-gone; fi
expect purge/dpkg-forgot "$(dpkg-query -W -f '${Status}' vlud 2> /dev/null | grep -c installed)" -eq 0
exit $((FAILS > 0))
