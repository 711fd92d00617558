#!/bin/bash
# bare-check.sh - prove the fresh-machine claim: on a bare Debian 12 system, `bash .ci/run` as root with no
# stdin installs everything it needs and passes.
#
#   bash scripts/bare-check.sh            (what `make check-bare` runs; root; several minutes to an hour)
#
# 1. a pristine Debian 12 base system (`debootstrap --variant=minbase bookworm`, from the host's configured
#    Debian mirror), made once and kept as a tarball under $VLUD_BARE_CACHE (default ~/.cache/vlud/bare);
# 2. a fresh root tree unpacked from it ($VLUD_BARE_CACHE/root; the previous run's tree, kept until then for
#    inspection, 1-3 GB, is removed first), with the host's apt
#    sources, apt Acquire settings (proxy, validity checks) and resolv.conf copied in: its only network is
#    the Debian mirror, through apt-get;
# 3. `git clone` of this repository at HEAD into /root/vlud of that tree (committed work only);
# 4. in a private mount namespace (unshare -m: nothing it mounts is seen by the host, and every mount goes
#    away with it, whatever happens): ROOT bound onto itself (so "/" is a mount point, as systemd-nspawn
#    in tests/integration/test-systemd.sh needs), /proc, /sys, /dev, /dev/pts, a tmpfs /dev/shm, then
#    `chroot ROOT env -i HOME=/root PATH=... bash -c 'cd /root/vlud && bash .ci/run' </dev/null`;
# 5. checks the run: install-deps.sh installed the packages itself, the rig fetched its kernel packages
#    itself, and the last line is "N passed, 0 failed, N skipped"; prints one result line:
#      bare-check: N passed, N failed, N skipped (TARGET, N packages installed, N s)
#    and exits 0 only when nothing failed.  The whole output is kept in $VLUD_BARE_CACHE/logs/.
#
# Environment:
#   VLUD_BARE_CACHE       base tarball, root tree, logs (default ~/.cache/vlud/bare; never inside the tree)
#   VLUD_BARE_TARGET      ci (default: `bash .ci/run`, everything, rig included) or host (install-deps.sh, then
#                         `make check-host`: the quick proof, ~10 min)
#   VLUD_BARE_REBASE=1    debootstrap a new base tarball even if one is cached
#   VLUD_BARE_MIRROR      Debian mirror for debootstrap (default: the host's, from /etc/apt/sources.list*)
#   VLUD_BARE_REPO        repository to clone (default: this one)
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VLUD_BARE_CACHE:-$HOME/.cache/vlud/bare}
TARGET=${VLUD_BARE_TARGET:-ci}
REPO=${VLUD_BARE_REPO:-$TOP}
SUITE=bookworm
BASE_TAR=$CACHE/base-$SUITE-minbase.tar
ROOT=$CACHE/root
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "bare-check: $*" >&2; }
die() { say "error: $*"; echo "bare-check: 0 passed, 1 failed, 0 skipped ($*)"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mounts)"
case $TARGET in ci | host) ;; *) die "VLUD_BARE_TARGET must be ci or host, not '$TARGET'" ;; esac
case $CACHE/ in "$TOP"/*) die "VLUD_BARE_CACHE ($CACHE) must be outside the repository" ;; esac
mkdir -p "$CACHE/logs" || die "cannot create $CACHE"
CACHE=$(cd "$CACHE" && pwd) ROOT=$CACHE/root BASE_TAR=$CACHE/base-$SUITE-minbase.tar

# ---------------------------------------------------------------- mounts under ROOT
# The chroot runs in its own mount namespace, so the host never sees its mounts; these two only matter
# for a tree left mounted by something else (an older run, a hand-made chroot) before it is deleted.
mounts_under() { # mount points at or below $1, deepest first
	awk -v r="$1" '{ gsub(/\\040/, " ", $2); if ($2 == r || index($2, r "/") == 1) print $2 }' /proc/self/mounts |
		sort -r
}
unmount_all() {
	local m
	for m in $(mounts_under "$ROOT"); do umount "$m" 2>/dev/null || umount -l "$m"; done
	[ -z "$(mounts_under "$ROOT")" ]
}
# Processes whose root is ROOT (only ever started by this script: qemu of the rig, a daemon...)
# (repeated until none is left: one may fork while the others are being killed)
kill_chrooted() {
	local p r n
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		n=0
		for p in /proc/[0-9]*; do
			r=$(readlink "$p/root" 2>/dev/null) || continue
			[ "$r" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null && n=$((n + 1))
		done
		[ "$n" -eq 0 ] && return 0
		sleep 0.2
	done
	say "warning: processes still running in $ROOT"
}
RUN_PID=
cleanup() {
	kill_chrooted
	if [ -n "$RUN_PID" ]; then
		# the chroot is empty now: the namespace's shell unmounts and ends, then tee
		wait "$RUN_PID" 2>/dev/null
		RUN_PID=
	fi
	unmount_all || say "warning: still mounted under $ROOT: $(mounts_under "$ROOT" | tr '\n' ' ')"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# ---------------------------------------------------------------- host tools
host_need=()
command -v debootstrap > /dev/null || host_need+=(debootstrap)
command -v git > /dev/null || host_need+=(git)
command -v unshare > /dev/null || host_need+=(util-linux)
if [ ${#host_need[@]} -gt 0 ]; then
	say "installing on the host: ${host_need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${host_need[@]}" </dev/null ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${host_need[@]}" </dev/null; } ||
		die "cannot install ${host_need[*]} on the host"
fi

# The host's Debian mirror: deb822 .sources first, then one-line sources.list.
host_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return 0; }
	done
	uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -m1 -oE '^deb +(\[[^]]*\] +)?https?://[^ ]+/debian/? ' | grep -oE 'https?://[^ ]+')
	[ -n "$uri" ] && echo "$uri"
}
MIRROR=${VLUD_BARE_MIRROR:-$(host_mirror)}
[ -n "$MIRROR" ] || die "no Debian mirror in /etc/apt/sources.list* (set VLUD_BARE_MIRROR)"

T0=$(date +%s)
# ---------------------------------------------------------------- 1. base tarball
if [ ! -f "$BASE_TAR" ] || [ "${VLUD_BARE_REBASE:-0}" = 1 ]; then
	say "debootstrap --variant=minbase $SUITE from $MIRROR"
	tmp=$CACHE/base.tmp
	ROOT=$tmp unmount_all || die "$tmp is mounted"
	rm -rf --one-file-system "$tmp"
	debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" > "$CACHE/logs/debootstrap.log" 2>&1 ||
		die "debootstrap failed (see $CACHE/logs/debootstrap.log)"
	# the apt lists and .debs of the bootstrap are not part of a fresh machine's state
	rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/*.bin
	find "$tmp/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
	tar --numeric-owner --xattrs -C "$tmp" -cf "$BASE_TAR.tmp" . || die "cannot write $BASE_TAR"
	mv "$BASE_TAR.tmp" "$BASE_TAR"
	rm -rf --one-file-system "$tmp"
else
	say "reusing $BASE_TAR"
fi

# ---------------------------------------------------------------- 2. fresh root tree
kill_chrooted
unmount_all || die "cannot unmount what is mounted under $ROOT"
rm -rf --one-file-system "$ROOT"
[ ! -e "$ROOT" ] || die "cannot remove the previous $ROOT"
mkdir -p "$ROOT"
tar --numeric-owner --xattrs -C "$ROOT" -xf "$BASE_TAR" || die "cannot unpack $BASE_TAR"

# apt: the host's sources and its Acquire settings (proxy, Check-Valid-Until of a snapshot mirror), no more
rm -f "$ROOT"/etc/apt/sources.list "$ROOT"/etc/apt/sources.list.d/*
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$ROOT/etc/apt/"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && cp "$f" "$ROOT/etc/apt/sources.list.d/"
done
[ -f /etc/apt/apt.conf ] && cp /etc/apt/apt.conf "$ROOT/etc/apt/"
for f in /etc/apt/apt.conf.d/*; do
	[ -f "$f" ] && grep -qE '^[[:space:]]*Acquire' "$f" && ! grep -q 'Invoke' "$f" && cp "$f" "$ROOT/etc/apt/apt.conf.d/"
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/hosts "$ROOT/etc/hosts"
# packages of the bare system, for the count of what the run installs
pkgs_before=$(chroot "$ROOT" dpkg-query -W -f='${db:Status-Status}\n' | grep -c '^installed$')

# ---------------------------------------------------------------- 3. the repository at HEAD
head=$(git -C "$REPO" rev-parse --short HEAD) || die "$REPO is not a git repository"
git clone -q "$REPO" "$ROOT/root/vlud" || die "git clone $REPO failed"
say "cloned $REPO at $head ($(git -C "$REPO" log -1 --format=%s HEAD | cut -c1-60))"
T1=$(date +%s)

# ---------------------------------------------------------------- 4. the run
case $TARGET in
ci) cmd='cd /root/vlud && bash .ci/run' ;;
host) cmd='cd /root/vlud && export CI=true && bash scripts/install-deps.sh && make check-host' ;;
esac
LOG=$CACHE/logs/run-$(date +%Y%m%d-%H%M%S)-$TARGET.log
say "chroot $ROOT: $cmd (log: $LOG)"
# inside the namespace: mount, run, and unmount on every exit path (the namespace drops them anyway)
unshare -m --propagation private bash -c '
	R=$1 P=$2 C=$3
	set -u
	umnt() {
		for m in dev/shm dev/pts dev sys proc; do umount -R "$R/$m" 2>/dev/null || umount -l "$R/$m" 2>/dev/null; done
		umount "$R" 2>/dev/null || umount -l "$R" 2>/dev/null
	}
	trap umnt EXIT
	# ROOT bound onto itself: "/" of the chroot is a mount point, as on a machine (systemd-nspawn needs it)
	mount --bind "$R" "$R" && mount -t proc proc "$R/proc" && mount --rbind /sys "$R/sys" && mount --make-rslave "$R/sys" &&
		mount --bind /dev "$R/dev" && mount --bind /dev/pts "$R/dev/pts" &&
		mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm" || { echo "bare-check: mounts failed" >&2; exit 1; }
	chroot "$R" /usr/bin/env -i HOME=/root PATH="$P" TERM=dumb /bin/bash -c "$C" </dev/null
' bare "$ROOT" "$PATH_IN" "$cmd" 2>&1 | tee "$LOG" &
# in the background and waited for, so that a signal to this script runs its traps at once (the EXIT trap
# kills everything in the chroot, then the namespace's own trap unmounts); pipefail: unshare's status
RUN_PID=$!
wait "$RUN_PID"
rc=$?
RUN_PID=
T2=$(date +%s)
kill_chrooted

# ---------------------------------------------------------------- 5. what happened
pkgs_after=$(chroot "$ROOT" dpkg-query -W -f='${db:Status-Status}\n' | grep -c '^installed$')
result=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$LOG" | tail -1)
problems=()
grep -q '^install-deps: installed ' "$LOG" || problems+=("install-deps.sh did not install the packages")
if [ "$TARGET" = ci ]; then
	ls "$ROOT"/root/.cache/vlud/rig/debian/*/fetched > /dev/null 2>&1 ||
		problems+=("the rig fetched no kernel packages")
	[ -n "$result" ] || problems+=("no summary line")
else
	# check-host prints its own summary; `make deps` prints none
	[ -n "$result" ] || problems+=("no summary line")
fi
[ "$rc" -eq 0 ] || problems+=("exit status $rc")
failed=$(echo "$result" | awk '{ print $3 }')
[ -z "$failed" ] || [ "$failed" = 0 ] || problems+=("$failed failed")

line="${result:-0 passed, 1 failed, 0 skipped} ($TARGET at $head, $((pkgs_after - pkgs_before)) packages installed on a $pkgs_before-package minbase, setup $((T1 - T0)) s, run $((T2 - T1)) s)"
echo "# bare-check: log $LOG" >&2
if [ ${#problems[@]} -gt 0 ]; then
	for p in "${problems[@]}"; do echo "# bare-check: problem: $p"; done
	# a clean summary with a problem beside it is still a failure: say so in the line itself
	[ -z "$failed" ] || [ "$failed" = 0 ] && line="$line; FAILED: ${problems[*]}"
	echo "bare-check: $line"
	exit 1
fi
echo "bare-check: $line"
