#!/bin/sh
# qemu-inner-kernel: Debian's unmodified qemu-system-x86_64 started by `vluctl run` (uid vmm, vlud's
# vhost-vdpa fd at fd 3) boots a real inner guest under TCG inside this TCG guest: the tiny kernel of
# tests/vm/inner/kernel.config and the static init of tests/vm/inner/init.c, whose virtio-net driver (the
# kernel's own) sends sequence-numbered frames through AF_PACKET on eth0 and counts them back from
# vdpa_sim_net's loopback.  Measures the time to the inner init and the traffic (docs/QEMU.md "A tiny inner
# kernel instead of qtest: measured").  Not in make check's default set (its kernel build would push a cold
# `make check` past its budget): `make vm-check SCENARIOS=qemu-inner-kernel`.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# qemu: yes
# inner: tiny
# default: no
# timeout: 720
SOCK=/run/vlud-inner.sock
. /scenarios/lib/vlud.sh
INNER=/usr/share/vlud/inner
FRAMES=${INNER_FRAMES:-256}
# the inner guest's own limit (s): its init, then the traffic; the rig's timeout above is the last resort
LIMIT=${INNER_LIMIT:-600}
# more of the inner kernel's command line, for experiments (lpj=86656 i8042.nokbd i8042.noaux, tried: no gain
# measurable against the run-to-run spread, docs/QEMU.md)
APPEND=${INNER_APPEND-}

for p in vlud vluctl qemu-system-x86_64; do
	command -v $p > /dev/null || { t_fail "$p-on-PATH" "$p is not in the guest"; exit 1; }
done
for f in bzImage initramfs.cpio kver; do
	[ -s "$INNER/$f" ] || { t_fail inner-files "$INNER/$f is missing (the rig's inner segment)"; exit 1; }
done
t_ok programs-and-inner-files
echo "# inner kernel $(cat $INNER/kver), bzImage $(stat -c %s $INNER/bzImage) bytes, initramfs $(stat -c %s $INNER/initramfs.cpio) bytes"

cat > vlud.conf << EOF
{ "socket": { "path": "$SOCK", "mode": "0666" }, "operators": { "uids": [0] },
  "vmms": [ { "uids": [1000], "devices": ["vdpa0"], "fd_types": ["memfd", "eventfd"], "max_fds": 16 } ] }
EOF
vlud -c vlud.conf > vlud.log 2>&1 &
VLUD_PID=$!
wait_until 50 test -S "$SOCK" && t_ok vlud/started || { t_fail vlud/started "no socket"; cat vlud.log; exit 1; }
chmod 0755 "$PWD"
ulimit -l unlimited

up() { cut -d' ' -f1 /proc/uptime; }
running() { grep -q '^State:[[:space:]]*[^Z]' "/proc/$1/status" 2> /dev/null; } # not a zombie yet
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
at() { if [ -n "$1" ]; then echo "$(secs "$T0" "$1") s"; else echo never; fi; } # TIME: since the launch
# -no-reboot: the inner init ends with a reboot (its kernel has no ACPI to power off), QEMU then exits 0
T0=$(up)
vluctl --socket "$SOCK" run vm1 --user vmm --device vdpa0=3 --report run.json -- \
	qemu-system-x86_64 -machine q35 -cpu qemu64 -smp 1 -m 64M -nodefaults -no-user-config -display none \
	-no-reboot -serial stdio -kernel $INNER/bzImage -initrd $INNER/initramfs.cpio \
	-append "console=ttyS0 printk.time=1 panic=-1 frames=$FRAMES timeout=120 $APPEND" \
	-netdev vhost-vdpa,id=n0,vhostfd=3 -device virtio-net-pci,netdev=n0,disable-legacy=on,romfile=,addr=0x3 \
	> console.log 2> launcher.err &
LAUNCHER=$!
T_INIT= T_LINK= T_RESULT= VMPIN=
while running "$LAUNCHER"; do
	now=$(up)
	if [ -z "$T_INIT" ] && grep -q '^INNER-INIT' console.log; then T_INIT=$now; fi
	if [ -z "$T_LINK" ] && grep -q '^INNER-LINK' console.log; then
		T_LINK=$now
		# QEMU still runs the traffic: vhost-vdpa pinned its guest RAM (PA mode)
		QPID=$(jget .pid run.json)
		[ -n "$QPID" ] && VMPIN=$(vmpin "$QPID")
	fi
	if [ -z "$T_RESULT" ] && grep -q '^INNER-RESULT' console.log; then T_RESULT=$now; fi
	if [ "$(secs "$T0" "$now" | cut -d. -f1)" -ge "$LIMIT" ]; then
		t_fail inner/limit "the inner guest ran $LIMIT s (init: $(at "$T_INIT"))"
		kill -9 "$(jget .pid run.json)" 2> /dev/null
		break
	fi
	sleep 0.1
done
rc=0
wait "$LAUNCHER" || rc=$?
T_END=$(up)
sed 's/^/[inner console] /' console.log | tr -d '\r'
sed 's/^/[launcher] /' launcher.err
[ -n "$T_INIT" ] && t_ok inner/init-reached || t_fail inner/init-reached "no INNER-INIT on the inner console"
expect inner/link-up "$(grep -c '^INNER-LINK' console.log)" = 1
expect inner/frames-sent "$(grep -o '^INNER-RESULT frames=[0-9]*' console.log | cut -d= -f2)" = "$FRAMES"
expect inner/frames-back "$(grep -o 'received=[0-9]*' console.log | cut -d= -f2)" = "$FRAMES"
grep -q '^INNER-TRAFFIC ok' console.log && t_ok inner/traffic || t_fail inner/traffic "$(grep '^INNER-TRAFFIC' console.log | tr -d '\r')"
expect inner/vmpin-qemu "$VMPIN" -gt 0
expect inner/launcher-exit "$rc" = 0
expect inner/report-fd "$(jget '.devices[0].fd' run.json)" = 3
expect inner/report-path "$(jget '.devices[0].path' run.json)" = /dev/vhost-vdpa-0
expect inner/report-exit-code "$(jget .exit.code run.json)" = 0

# the measurement (host side: this guest's clock; inner: the inner kernel's /proc/uptime)
IUP=$(sed -n 's/^INNER-INIT uptime=\([0-9.]*\).*/\1/p' console.log | tr -d '\r')
echo "# inner: launch -> INNER-INIT $(at "$T_INIT") (inner uptime ${IUP:-?} s), -> link $(at "$T_LINK")," \
	"-> result $(at "$T_RESULT"), QEMU gone after $(at "$T_END"); $(grep '^INNER-RESULT' console.log | tr -d '\r')" \
	"${APPEND:+; append: $APPEND}"

vctl release vm1 > /dev/null 2>&1
expect end.released "$(held vm1)" = 0
stop_vlud > /dev/null
exit $((FAILS > 0))
