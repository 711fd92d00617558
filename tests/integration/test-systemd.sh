#!/bin/bash
# test-systemd.sh - vlud under the real systemd (Debian 12's systemd 252 as PID 1 in a systemd-nspawn
# container booted from this machine's /usr, --volatile=yes), with the shipped units (systemd/vlud.socket,
# vlud.service and its whole sandbox, vlud.sysusers) and only @SBINDIR@/@SYSCONFDIR@ substituted.
# Checks, inside the container (tests/integration/systemd-inner.sh, TAP back through a bind mount):
# sysusers creates group vlud; socket activation starts vlud on the first connect; Type=notify (active only
# after READY=1, STATUS= shown); a VMM's fds go to the fd store; kill -9, `systemctl restart`, and a
# watchdog timeout (vlud stopped with SIGSTOP, WatchdogSec=3s by a drop-in) each restart vlud with every
# held fd back (same inode) and the instance orphaned; `systemctl stop` then behaves as documented for
# this systemd version (FileDescriptorStorePreserve= needs systemd >= 254).
#   VLU_BUILD=build VLU_TOP=. bash tests/integration/test-systemd.sh        (root; needs systemd-nspawn)
set -uo pipefail

B=$(cd "${VLU_BUILD:-build}" && pwd)
TOP=$(cd "${VLU_TOP:-.}" && pwd)
S=integ-systemd
T=$(mktemp -d /tmp/vlu-systemd.XXXXXX)
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT

. "$TOP/tests/integration/nspawn.sh"
if why=$(nspawn_unavailable) && [ -n "$why" ]; then
	# not a skip: this is the only test of the units under a real systemd
	echo "not ok - $S/preconditions: $why"
	exit 1
fi
nspawn_prepare "$T" "$TOP"
cat > "$T/units/vlud.service.d/test.conf" << 'EOF'
[Service]
# the watchdog case must not wait 30 s
WatchdogSec=3s
EOF
if [ -n "${SANITIZE:-}" ] && [ "$SANITIZE" != 0 ]; then
	# LeakSanitizer stops the world with ptrace, which the unit's syscall filter forbids: leaks are
	# checked by every other host test; ASan and UBSan stay on here
	printf 'Environment=ASAN_OPTIONS=detect_leaks=0\n' >> "$T/units/vlud.service.d/test.conf"
fi
cat > "$T/etc/vlud.conf" << 'EOF'
{ "operators": { "uids": [0] },
  "vmms": [ { "uids": [0], "fd_types": ["memfd", "eventfd"], "max_fds": 16 } ] }
EOF
cat > "$T/units/vlu-test.service" << EOF
[Unit]
Description=vlud under systemd: the test
After=sysinit.target systemd-sysusers.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
Environment=VLU_BUILD=$B
ExecStart=/bin/bash $TOP/tests/integration/systemd-inner.sh /vlu-out/tap
StandardOutput=file:/vlu-out/inner.log
StandardError=inherit
EOF
nspawn_boot "$T" "$B" "$TOP" vlu-test.service 180
rc=$?
if [ -s "$T/out/tap" ]; then
	sed "s/^\(not \)\{0,1\}ok - /&$S\//" "$T/out/tap"
else
	echo "not ok - $S/booted: no result from inside the container (nspawn exit $rc)"
	sed 's/\x1b\[[0-9;]*m//g; s/^/# /' "$T/boot.log" | tail -40
fi
if grep -q '^not ok' "$T/out/tap" 2> /dev/null || [ ! -s "$T/out/tap" ]; then
	sed 's/^/# inner: /' "$T/out/inner.log" 2> /dev/null | tail -60
	exit 1
fi
if ! grep -q '^# done' "$T/out/tap"; then
	echo "not ok - $S/complete: the inner test did not finish (nspawn exit $rc)"
	sed 's/^/# inner: /' "$T/out/inner.log" 2> /dev/null | tail -40
	exit 1
fi
exit 0
