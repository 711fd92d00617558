# shellcheck shell=bash
# tests/integration/nspawn.sh - sourced by tests/integration/test-systemd.sh and tests/bench/bench-systemd.sh:
# this machine's systemd as PID 1 of a systemd-nspawn container booted from its /usr (--volatile=yes), with
# the shipped units (systemd/vlud.socket, vlud.service with its whole sandbox, vlud.sysusers) and only
# @SBINDIR@/@SYSCONFDIR@/@DATADIR@ substituted.  The caller adds drop-ins ($T/units/vlud.service.d/),
# /etc/vlud/vlud.conf ($T/etc/vlud.conf) and the oneshot unit that does its work ($T/units/NAME), which
# writes its results to /vlu-out ($T/out) and powers the container off.

# vlud.service has ProtectHome=yes: a tree cloned under /root or /home (CI) must work too, so the unit
# starts vlud from a read-only bind of the build directory outside them
NSPAWN_SB=/opt/vlu-build

# nspawn_unavailable: why the container cannot be booted here, on stdout (nothing: it can)
nspawn_unavailable() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root (systemd-nspawn)"
	elif ! command -v systemd-nspawn > /dev/null; then
		echo "needs systemd-nspawn (package systemd-container, tests/integration/apt-packages)"
	fi
}

# nspawn_prepare T TOP: the units, sysusers and the directories nspawn_boot binds, under T
nspawn_prepare() {
	local t=$1 top=$2 u
	mkdir -p "$t/units/vlud.service.d" "$t/etc" "$t/sysusers" "$t/out"
	for u in vlud.socket vlud.service; do
		sed -e "s|@SBINDIR@|$NSPAWN_SB|g" -e "s|@SYSCONFDIR@|/etc|g" -e "s|@DATADIR@|/usr/share|g" \
			"$top/systemd/$u" > "$t/units/$u"
	done
	cp "$top/systemd/vlud.sysusers" "$t/sysusers/vlud.conf"
	# no first-boot questions on an empty /etc
	ln -sf /dev/null "$t/units/systemd-firstboot.service"
}

# nspawn_boot T B TOP UNIT SECONDS: boot, run UNIT (it powers off), at most SECONDS; nspawn's console in
# $T/boot.log; returns nspawn's exit status
nspawn_boot() {
	local t=$1 b=$2 top=$3 unit=$4 secs=$5
	timeout "$secs" systemd-nspawn --quiet -D / --volatile=yes --register=no --keep-unit -M "vlu-$$-$RANDOM" \
		--bind-ro="$t/units:/run/systemd/system" --bind-ro="$t/sysusers:/run/sysusers.d" \
		--bind-ro="$t/etc:/etc/vlud" --bind="$t/out:/vlu-out" --bind-ro="$b" --bind-ro="$b:$NSPAWN_SB" \
		--bind-ro="$top" -b -- systemd.unit="$unit" < /dev/null > "$t/boot.log" 2>&1
}
