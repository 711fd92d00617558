#!/bin/sh
# sysd-2-activation: vlud.service stopped (vlud.socket stays), the first connect starts it through the
# socket (socket activation), the daemon reports ready (Type=notify) and answers.
# root: debian
# timeout: 300
. /scenarios/lib/sysd.sh
sysd_install || { t_fail install "apt-get install failed"; exit 1; }

systemctl stop vlud.service
expect stopped/service-inactive "$(systemctl is-active vlud.service)" = inactive
expect stopped/socket-still-active "$(systemctl is-active vlud.socket)" = active
if [ -z "$(pidof vlud)" ]; then t_ok stopped/no-vlud; else t_fail stopped/no-vlud "vlud runs: $(pidof vlud)"; fi
vctl status > status.txt 2>&1
expect connect/vluctl-status "$?" -eq 0
sed 's/^/[vluctl] /' status.txt
expect connect/service-active "$(systemctl is-active vlud.service)" = active
expect connect/triggered-by-socket "$(prop vlud.service TriggeredBy)" = vlud.socket
expect connect/vlud-running "$(pidof vlud)" = "$(mainpid)"
exit $((FAILS > 0))
