# shellcheck shell=bash
# tests/vm/roots/debian.sh - the rig's root file system "debian" (scenario key `root: debian`): a Debian 12
# (bookworm) root made with debootstrap from the host's Debian mirror, booted with systemd as PID 1.
#
# Sourced by tests/vm/rig.sh.  Defines
#   root_prepare DEBS_DIR   build (cached) the root image for the packages in DEBS_DIR; on success sets
#                           ROOT_IMG (an ext4 image, raw; the rig boots it with snapshot=on, so it stays
#                           pristine); returns 0, 1 (failed: ROOT_FAIL_WHY) or 2 (cannot here: ROOT_SKIP_WHY)
# The root holds minbase + systemd, systemd-sysv, iproute2 (vdpa), kmod and every dependency the packages of
# DEBS_DIR declare (first alternative, our own packages left out), so that `apt-get install ./*.deb` in the
# guest resolves them from the installed set without a network.  Cached in $RIG_CACHE/root/debian-<hash>/,
# <hash> over the suite, the mirror, the package list and ROOT_RECIPE; the 2 most recent are kept.  The
# .debs debootstrap downloads are kept in $RIG_CACHE/root/debs/ (its --cache-dir).
# Uses from rig.sh: RIG_CACHE RIG_LOG log; from flavours/debian.sh: deb_mirror.

ROOT_SUITE=bookworm
# bump when the recipe below changes
ROOT_RECIPE=2
ROOT_BASE_PKGS=(systemd systemd-sysv iproute2 kmod udev)

# The packages' dependencies, one per line (first alternative, without versions, without DEBS_DIR's own).
root_deb_deps() { # DEBS_DIR
	local f own=() d
	for f in "$1"/*.deb; do own+=("$(dpkg-deb -f "$f" Package)"); done
	for f in "$1"/*.deb; do dpkg-deb -f "$f" Depends; dpkg-deb -f "$f" Pre-Depends; done | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | sort -u |
		while read -r d; do
			[ -n "$d" ] || continue
			case " ${own[*]} " in *" $d "*) continue ;; esac
			echo "$d"
		done
}

root_prepare() {
	local debs=$1 mirror pkgs key dir
	ROOT_IMG= ROOT_FAIL_WHY= ROOT_SKIP_WHY=
	mirror=$(deb_mirror)
	pkgs=$( { printf '%s\n' "${ROOT_BASE_PKGS[@]}"; root_deb_deps "$debs"; } | sort -u | tr '\n' ',')
	pkgs=${pkgs%,}
	key=$(echo "v$ROOT_RECIPE $ROOT_SUITE $mirror $pkgs" | sha256sum | cut -c1-16)
	dir=$RIG_CACHE/root/debian-$key
	if [ -f "$dir/root.img" ]; then
		touch "$dir"
		ROOT_IMG=$dir/root.img
		return 0
	fi
	if [ -z "$mirror" ]; then
		ROOT_SKIP_WHY="no Debian mirror in /etc/apt/sources.list* and no cached root in $RIG_CACHE/root"
		return 2
	fi
	command -v debootstrap > /dev/null || { ROOT_SKIP_WHY="debootstrap not found"; return 2; }
	[ "$(id -u)" = 0 ] || { ROOT_SKIP_WHY="building the root file system needs root (debootstrap)"; return 2; }
	local t0 st=$dir/stage
	t0=$(now_ms)
	# an interrupted debootstrap may leave proc/sys mounted in the stage: never remove through a mount
	if grep -q " $dir/" /proc/mounts; then
		ROOT_FAIL_WHY="file systems mounted under $dir (an interrupted debootstrap?): unmount them"
		return 1
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	log "root debian: debootstrap $ROOT_SUITE ($mirror) with $pkgs into $st"
	# the downloaded .debs are kept apart: a new recipe or package list downloads only what changed
	mkdir -p "$RIG_CACHE/root/debs"
	if ! debootstrap --variant=minbase --cache-dir="$RIG_CACHE/root/debs" --include="$pkgs" "$ROOT_SUITE" "$st" "$mirror" \
		> "$dir/debootstrap.log" 2>&1; then
		ROOT_FAIL_WHY="debootstrap failed (see $dir/debootstrap.log)"
		mkdir -p "$dir.failed" && cp "$dir/debootstrap.log" "$dir.failed/"
		rm -rf "$dir"
		return 1
	fi
	log "root debian: debootstrap took $(( $(now_ms) - t0 )) ms"
	root_customize "$st" >> "$dir/debootstrap.log" 2>&1
	# size: the tree plus 256 MiB of room for the packages, the journal and the scenarios
	local mb
	mb=$(( $(du -sm "$st" | cut -f1) + 256 ))
	if ! mkfs.ext4 -q -F -L rigroot -d "$st" "$dir/root.img.tmp" "${mb}M" >> "$dir/debootstrap.log" 2>&1; then
		ROOT_FAIL_WHY="mkfs.ext4 -d failed (see $dir/debootstrap.log)"
		return 1
	fi
	rm -rf "$st"
	mv "$dir/root.img.tmp" "$dir/root.img"
	log "root debian: image $dir/root.img (${mb} MiB) ready in $(( $(now_ms) - t0 )) ms"
	local old
	for old in $(ls -1dt "$RIG_CACHE"/root/debian-*/ 2> /dev/null | tail -n +3); do rm -rf "$old"; done
	# keep the newest version of each package only
	local -A newest=()
	local f n
	for f in $(ls -1t "$RIG_CACHE"/root/debs/*.deb 2> /dev/null); do
		n=${f##*/}
		n=${n%%_*}
		[ -n "${newest[$n]:-}" ] && rm -f "$f"
		newest[$n]=1
	done
	ROOT_IMG=$dir/root.img
}

# What a guest of the rig needs on top of debootstrap's root: no getty on the serial console (the scenario
# runner writes there), no first-boot questions on it (systemd-firstboot masked: debootstrap's systemd
# writes /etc/machine-id, but an image without one would ask at every boot), no timers that start apt or
# fstrim in the middle of a scenario, a user "vmm" (uid 1000) for unprivileged VMMs, and no apt lists (the
# guest has no network).
root_customize() { # DIR
	local r=$1 u
	echo rig > "$r/etc/hostname"
	: > "$r/etc/fstab"
	for u in systemd-firstboot.service serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
		apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer e2scrub_reap.service man-db.timer systemd-timesyncd.service \
		systemd-networkd-wait-online.service; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	chroot "$r" useradd -u 1000 -U -m -s /bin/sh vmm
	chroot "$r" apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
}
