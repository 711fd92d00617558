# shellcheck shell=bash
# tests/vm/flavours/debian.sh - rig kernel flavour "debian": Debian's bookworm-backports kernel
# (linux-image-*-amd64-unsigned, resolved at run time) with vhost, vhost_vdpa, vringh, vdpa_sim and
# vdpa_sim_net built out of tree from the matching linux-source, "stock", "patched" (kernel/patches/) and
# "nosuspend" (stock + the test-only tests/vm/kpatches/nosuspend/: vdpa_sim without .suspend/.resume) and
# "hwreset" (patched + the test-only tests/vm/kpatches/hwreset/: a reset returns vdpa_sim_net's MAC to the
# provisioned one, as hardware does).
#
# Sourced by tests/vm/rig.sh.  A flavour defines:
#   flavour_prepare           fetch + build (cached); on success sets
#                               FL_KVER         kernel release (uname -r in the guest)
#                               FL_KERNEL       path of the bzImage
#                               FL_MODS_CPIO    path of a gzip'ed newc cpio holding /lib/modules/rig/...
#                                               (base/ stock/ and, if built, patched/ nosuspend/ hwreset/;
#                                               plus order)
#                               FL_PATCHED      "yes" if patched/ differs from stock/, "none" if there are
#                                               no patches (patched == stock), "failed" if patching/building
#                                               failed (FL_PATCHED_WHY says why, with a log path)
#                               FL_NOSUSPEND    "yes" if nosuspend/ was built, else "failed"
#                                               (FL_NOSUSPEND_WHY says why)
#                               FL_HWRESET      the same for hwreset/ (FL_HWRESET_WHY)
#                             returns 0, 2 (cannot prepare here: skip, FL_SKIP_WHY says why), 1 (failed:
#                             FL_FAIL_WHY says why)
# Everything it downloads or builds lives under $RIG_CACHE/debian/<kernel release>/.
# Uses from rig.sh: RIG_CACHE TOP log note die_fail

DEB_SUITE=bookworm-backports
DEB_APT=$RIG_CACHE/apt
# Files of linux-source extracted (and patchable).  A patch touching anything else needs this list extended
# (bump DEB_SUBSET_VERSION so cached extractions are redone).
DEB_SUBSET_VERSION=1
DEB_SUBSET=(drivers/vhost drivers/vdpa include/uapi/linux/vhost.h include/uapi/linux/vhost_types.h
	include/uapi/linux/vdpa.h include/uapi/linux/virtio_net.h include/uapi/linux/virtio_config.h
	include/linux/vhost_iotlb.h include/linux/vdpa.h include/linux/vringh.h include/linux/virtio_net.h)
# Bump when the build recipe below changes: cached module builds of another version are redone.
DEB_BUILD_VERSION=1
# Modules we build (object = source files relative to the subset root).
DEB_OOT_FILES=(drivers/vhost/vhost.c drivers/vhost/vhost.h drivers/vhost/vdpa.c drivers/vhost/vringh.c
	drivers/vdpa/vdpa_sim/vdpa_sim.c drivers/vdpa/vdpa_sim/vdpa_sim.h drivers/vdpa/vdpa_sim/vdpa_sim_net.c)
# Modules taken from the Debian image as they are (path under lib/modules/KVER/kernel, without .ko.xz).
DEB_BASE_MODS=(drivers/vhost/vhost_iotlb drivers/vdpa/vdpa virt/lib/irqbypass)
# Load order in the guest: base:NAME = image module, var:NAME = stock or patched one.
# The test-only "nosuspend" module set: stock sources with this series applied (never kernel/patches/).
DEB_NOSUSPEND_DIR=$RIG_DIR/kpatches/nosuspend
# The test-only "hwreset" module set: kernel/patches/ (NEW_OWNER for paths A and B) then this series.
DEB_HWRESET_DIR=$RIG_DIR/kpatches/hwreset
DEB_LOAD_ORDER="base:vhost_iotlb base:vdpa base:irqbypass var:vhost var:vhost_vdpa var:vringh var:vdpa_sim var:vdpa_sim_net"

# shellcheck source=lib/apt.sh
. "$RIG_DIR/flavours/lib/apt.sh"
deb_apt() { rig_apt "$DEB_APT" "$@"; }
deb_apt_cache() { rig_apt_cache "$DEB_APT" "$@"; }
deb_mirror() { rig_debian_mirror; }

# Refresh the private index when it is missing or older than a day (lib/apt.sh).
deb_apt_update() { rig_apt_update "$DEB_APT" debian "$DEB_SUITE"; }

# Newest linux-image-X.Y.Z+debN-amd64-unsigned in the suite -> "KVER PKGVER".
deb_resolve() {
	local pkg ver best= bestver=
	for pkg in $(deb_apt_cache pkgnames linux-image- 2>/dev/null |
		grep -E '^linux-image-[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64-unsigned$'); do
		ver=$(deb_apt_cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
		[ -n "$ver" ] && [ "$ver" != "(none)" ] || continue
		if [ -z "$bestver" ] || dpkg --compare-versions "$ver" gt "$bestver"; then
			best=$pkg bestver=$ver
		fi
	done
	[ -n "$best" ] || return 1
	best=${best#linux-image-}
	echo "${best%-unsigned} $bestver"
}

deb_fetch() { # KVER PKGVER DIR
	local kver=$1 pkgver=$2 d=$3 kabi=${1%-amd64} mm
	mm=$(echo "$kver" | grep -oE '^[0-9]+\.[0-9]+')
	mkdir -p "$d/debs"
	log "debian: downloading $kver ($pkgver)"
	(cd "$d/debs" && deb_apt download "linux-image-$kver-unsigned=$pkgver" "linux-headers-$kver=$pkgver" \
		"linux-headers-$kabi-common=$pkgver" "linux-kbuild-$kabi=$pkgver" "linux-source-$mm=$pkgver") \
		>> "$RIG_LOG" 2>&1 || return 1
	log "debian: extracting image, headers, kbuild and a subset of linux-source-$mm"
	rm -rf "$d/image" "$d/hdr" "$d/src" "$d/srcdeb"
	mkdir -p "$d/image" "$d/hdr" "$d/src" "$d/srcdeb"
	dpkg-deb -x "$d"/debs/linux-image-"$kver"-unsigned_*.deb "$d/image" || return 1
	local f
	for f in "$d"/debs/linux-headers-*.deb "$d"/debs/linux-kbuild-*.deb; do
		dpkg-deb -x "$f" "$d/hdr" || return 1
	done
	dpkg-deb --fsys-tarfile "$d"/debs/linux-source-"$mm"_*.deb |
		tar -x -C "$d/srcdeb" --wildcards '*/linux-source-*.tar.xz' || return 1
	local pat=()
	for f in "${DEB_SUBSET[@]}"; do pat+=("linux-source-$mm/$f"); done
	tar -xJf "$d"/srcdeb/usr/src/linux-source-"$mm".tar.xz -C "$d/src" --strip-components=1 "${pat[@]}" ||
		return 1
	rm -rf "$d/srcdeb"
	cp "$d/image/boot/vmlinuz-$kver" "$d/vmlinuz"
	# Image modules we load unchanged, decompressed.
	mkdir -p "$d/base"
	local m
	for m in "${DEB_BASE_MODS[@]}"; do
		xz -dc "$d/image/lib/modules/$kver/kernel/$m.ko.xz" > "$d/base/${m##*/}.ko" || return 1
	done
	grep -E '^CONFIG_(VDPA|VHOST)[A-Z0-9_]*=' "$d/image/boot/config-$kver" > "$d/kconfig-vdpa.txt" || true
	rm -rf "$d/image"
	echo "$DEB_SUBSET_VERSION" > "$d/fetched"
}

# Build the out-of-tree modules.  $1 = output dir, $2 = source tree (subset), $3 = headers root (the
# extracted /usr/src of linux-headers + -common + kbuild).
deb_build() {
	local out=$1 src=$2 hdr=$3 kver=$4 kabi=${4%-amd64}
	local flav=$hdr/usr/src/linux-headers-$kver
	# The flavour Makefile includes the -common one by absolute /usr/src path: point it at this copy.
	sed -i "s#^include /usr/src/linux-headers-$kabi-common/#include $hdr/usr/src/linux-headers-$kabi-common/#" \
		"$flav/Makefile"
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp/oot"
	local f
	for f in "${DEB_OOT_FILES[@]}"; do cp "$src/$f" "$out.tmp/oot/" || return 1; done
	cat > "$out.tmp/oot/Kbuild" <<-'EOF'
		obj-m += vhost.o vhost_vdpa.o vringh.o vdpa_sim.o vdpa_sim_net.o
		vhost_vdpa-y := vdpa.o
	EOF
	local cc=gcc
	command -v gcc-12 > /dev/null && cc=gcc-12
	# BTF for modules needs pahole and the image's vmlinux: not needed here.
	# Not our make's command-line variables: MAKEFLAGS carries them to every sub-make, and Kbuild reads
	# a command-line O= (ours: the build directory, e.g. `make O=build check`) as its output tree.
	if ! env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL \
		make -C "$flav" M="$out.tmp/oot" CC="$cc" -j"$(nproc)" CONFIG_DEBUG_INFO_BTF_MODULES= modules \
		> "$out.tmp/build.log" 2>&1; then
		mkdir -p "$out.failed" && cp "$out.tmp/build.log" "$out.failed/build.log"
		return 1
	fi
	mkdir -p "$out.tmp/ko"
	cp "$out.tmp"/oot/*.ko "$out.tmp/ko/"
	local m
	for m in "$out.tmp"/ko/*.ko; do
		[ "$(modinfo -F vermagic "$m" | awk '{print $1}')" = "$kver" ] || {
			echo "vermagic mismatch: $m" >> "$out.tmp/build.log"; return 1; }
	done
	echo "$DEB_BUILD_VERSION" > "$out.tmp/recipe"
	rm -rf "$out.tmp/oot" "$out" "$out.failed"
	mv "$out.tmp" "$out"
}

# a module build directory made by this recipe version (builds from before the marker count as 1)
deb_built() { [ -f "$1/ko/vhost_vdpa.ko" ] && [ "$(cat "$1/recipe" 2> /dev/null || echo 1)" = "$DEB_BUILD_VERSION" ]; }

deb_patch_hash() { # [SERIES_DIR...] (several: applied in that order, hashed together)
	local d p=()
	for d in "${@:-$RIG_PATCH_DIR}"; do
		for d in "$d"/*.patch; do [ -e "$d" ] && p+=("$d"); done
	done
	[ ${#p[@]} -gt 0 ] || { echo none; return; }
	cat "${p[@]}" | sha256sum | cut -c1-16
}

# Patched variant: copy of the source subset with the series applied, and a copy of the headers tree
# (hard links, patched include/ files replaced) so uapi/include changes reach the build.  Builds into
# DIR/NAME-HASH/mods (NAME: patched, nosuspend, hwreset); on failure DEB_WHY says why.  SERIES_DIRS: one
# directory, or several separated by ':' (applied in that order).
deb_build_patched() { # DIR KVER HASH [SERIES_DIRS NAME]
	local d=$1 kver=$2 h=$3 kabi=${2%-amd64} series=${4:-$RIG_PATCH_DIR} name=${5:-patched}
	local pd=$d/$name-$h
	DEB_WHY=
	rm -rf "$pd"
	mkdir -p "$pd"
	cp -a "$d/src" "$pd/src"
	local p sd
	local -a sds
	IFS=: read -r -a sds <<< "$series"
	for sd in "${sds[@]}"; do
	for p in "$sd"/*.patch; do
		[ -e "$p" ] || continue
		echo "== patch -p1 < $p" >> "$pd/patch.log"
		if ! patch -p1 -d "$pd/src" --no-backup-if-mismatch < "$p" >> "$pd/patch.log" 2>&1; then
			DEB_WHY="$(basename "$p") does not apply (see $pd/patch.log)"
			return 1
		fi
	done
	done
	# a change to a file we neither build nor copy into the headers would be silently lost: refuse it
	local f changed
	changed=$(cd "$pd/src" && find . -type f | sed 's|^\./||' | while read -r f; do
		cmp -s "$pd/src/$f" "$d/src/$f" && continue
		case " ${DEB_OOT_FILES[*]} " in *" $f "*) continue ;; esac
		case $f in include/*) continue ;; esac
		echo "$f"
	done)
	if [ -n "$changed" ]; then
		DEB_WHY="the series changes $(echo $changed), which the rig does not build (extend DEB_OOT_FILES and the Kbuild in tests/vm/flavours/debian.sh)"
		return 1
	fi
	cp -al "$d/hdr" "$pd/hdr"
	local common=$pd/hdr/usr/src/linux-headers-$kabi-common
	(cd "$pd/src" && find include -type f) | while read -r f; do
		if ! cmp -s "$pd/src/$f" "$d/src/$f"; then
			mkdir -p "$(dirname "$common/$f")"
			cp --remove-destination "$pd/src/$f" "$common/$f"
		fi
	done
	# The flavour Makefile is a hard link into the pristine tree: give the copy its own before editing.
	cp --remove-destination "$d/hdr/usr/src/linux-headers-$kver/Makefile" "$pd/hdr/usr/src/linux-headers-$kver/Makefile"
	sed -i "s#^include .*/linux-headers-$kabi-common/#include /usr/src/linux-headers-$kabi-common/#" \
		"$pd/hdr/usr/src/linux-headers-$kver/Makefile"
	if ! deb_build "$pd/mods" "$pd/src" "$pd/hdr" "$kver"; then
		DEB_WHY="$name module build failed (see $pd/mods.failed/build.log)"
		return 1
	fi
}

# The modules a guest with a root file system (`root:` scenarios, tests/vm/roots/) needs before it can mount
# it: virtio_blk, ext4 and crc32c with what they depend on (modinfo), from the kept linux-image .deb.
# FL_ROOT_MODS_CPIO: a gzip'ed newc cpio with /lib/modules/rig/root/*.ko and /lib/modules/rig/root/order
# (load order, dependencies first).  Cached per kernel.
DEB_ROOT_MODS=(virtio_blk crc32c_generic ext4)
flavour_root_mods() {
	local d=$RIG_CACHE/debian/$FL_KVER kver=$FL_KVER
	FL_ROOT_MODS_CPIO=$d/rootmods-v1.cpio.gz
	[ -f "$FL_ROOT_MODS_CPIO" ] && return 0
	local st=$d/rootmods.stage img=("$d"/debs/linux-image-"$kver"-unsigned_*.deb)
	rm -rf "$st"
	mkdir -p "$st/x" "$st/lib/modules/rig/root"
	dpkg-deb --fsys-tarfile "${img[0]}" | tar -xO "./lib/modules/$kver/modules.order" > "$st/order.all" || return 1
	# depth-first: dependencies before the module that needs them
	local -A seen=()
	local order=()
	add_mod() {
		local m=$1 path dep
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		path=$(grep -m1 -E "/${m//_/[_-]}\.ko\$" "$st/order.all") || return 1
		dpkg-deb --fsys-tarfile "${img[0]}" | tar -xO "./lib/modules/$kver/$path.xz" | xz -dc > "$st/lib/modules/rig/root/$m.ko" || return 1
		for dep in $(modinfo -F depends "$st/lib/modules/rig/root/$m.ko" | tr ',' ' '); do add_mod "${dep//-/_}" || return 1; done
		order+=("$m")
	}
	local m
	for m in "${DEB_ROOT_MODS[@]}"; do add_mod "$m" || { log "debian: root module $m not found in ${img[0]}"; return 1; }; done
	strip --strip-debug "$st"/lib/modules/rig/root/*.ko
	echo "${order[*]}" > "$st/lib/modules/rig/root/order"
	(cd "$st" && find lib | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$FL_ROOT_MODS_CPIO.tmp" &&
		mv "$FL_ROOT_MODS_CPIO.tmp" "$FL_ROOT_MODS_CPIO"
	rm -rf "$st"
}

# newest kernel release completely fetched into the cache (by version)
deb_newest_cached() {
	local k
	for k in $(ls -1 "$RIG_CACHE/debian" 2> /dev/null | sort -V); do
		[ "$(cat "$RIG_CACHE/debian/$k/fetched" 2> /dev/null)" = "$DEB_SUBSET_VERSION" ] && echo "$k"
	done | tail -1
}

flavour_prepare() {
	local kver= pkgver= line
	if [ -n "${VLUD_RIG_KVER:-}" ]; then
		kver=$VLUD_RIG_KVER
		if [ ! -f "$RIG_CACHE/debian/$kver/fetched" ] && deb_apt_update; then
			pkgver=$(deb_apt_cache policy "linux-image-$kver-unsigned" 2>/dev/null | awk '/Candidate:/ { print $2 }')
			[ "$pkgver" != "(none)" ] || pkgver=
		fi
	elif deb_apt_update && line=$(deb_resolve); then
		read -r kver pkgver <<< "$line"
	else
		kver=$(deb_newest_cached)
		if [ -z "$kver" ]; then
			FL_SKIP_WHY="cannot resolve a $DEB_SUITE kernel (no index from the Debian mirror, nothing cached in $RIG_CACHE/debian)"
			return 2
		fi
		log "debian: index unavailable, using cached kernel $kver"
	fi
	local d=$RIG_CACHE/debian/$kver
	if [ "$(cat "$d/fetched" 2>/dev/null)" != "$DEB_SUBSET_VERSION" ]; then
		if [ -z "$pkgver" ]; then
			FL_SKIP_WHY="kernel $kver is not cached and its package version is unknown"
			return 2
		fi
		if ! deb_fetch "$kver" "$pkgver" "$d"; then
			# e.g. a mirror that has the new image but not yet its linux-source: keep testing on the last one
			local prev
			prev=$(deb_newest_cached)
			if [ -z "$prev" ] || [ -n "${VLUD_RIG_KVER:-}" ]; then
				FL_SKIP_WHY="downloading/extracting the $kver packages failed (see $RIG_LOG)"
				return 2
			fi
			log "debian: fetching $kver failed (see $RIG_LOG), using cached kernel $prev"
			kver=$prev d=$RIG_CACHE/debian/$prev
		fi
	fi
	FL_KVER=$kver
	FL_KERNEL=$d/vmlinuz
	# keep this kernel and the one before it
	touch "$d/fetched"
	local k
	for k in $(ls -1dt "$RIG_CACHE"/debian/*/fetched 2>/dev/null | tail -n +3); do
		log "debian: removing old cached kernel ${k%/fetched}"
		rm -rf "${k%/fetched}"
	done
	if ! deb_built "$d/stock"; then
		log "debian: building stock modules for $kver"
		if ! deb_build "$d/stock" "$d/src" "$d/hdr" "$kver"; then
			FL_FAIL_WHY="stock module build failed (see $d/stock.failed/build.log)"
			return 1
		fi
	fi
	local h
	h=$(deb_patch_hash)
	FL_PATCHED=none FL_PATCHED_WHY="no patches in ${RIG_PATCH_DIR#$TOP/} (patched == stock)"
	local pdir=
	if [ "$h" != none ]; then
		pdir=$d/patched-$h
		if deb_built "$pdir/mods"; then
			FL_PATCHED=yes FL_PATCHED_WHY=
		elif [ -f "$pdir/failed" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
			FL_PATCHED=failed FL_PATCHED_WHY=$(cat "$pdir/failed")
		else
			log "debian: applying ${RIG_PATCH_DIR#$TOP/}/*.patch ($h) and building patched modules for $kver"
			if deb_build_patched "$d" "$kver" "$h"; then
				FL_PATCHED=yes FL_PATCHED_WHY=
			else
				FL_PATCHED=failed FL_PATCHED_WHY=$DEB_WHY
				echo "$FL_PATCHED_WHY" > "$pdir/failed"
			fi
		fi
	fi
	# Keep the 6 most recently used patched builds (a kernel developer makes one per edit of the series).
	[ -n "$pdir" ] && touch "$pdir"
	local old
	for old in $(ls -1dt "$d"/patched-* 2>/dev/null | tail -n +7); do
		rm -rf "$old" "$d"/mods-*"${old##*/patched-}".cpio.gz
	done
	# "nosuspend": stock + $DEB_NOSUSPEND_DIR, cached per hash of that series like patched/
	local nh nsdir=
	nh=$(deb_patch_hash "$DEB_NOSUSPEND_DIR")
	FL_NOSUSPEND=failed FL_NOSUSPEND_WHY="no patch in ${DEB_NOSUSPEND_DIR#$TOP/}"
	if [ "$nh" != none ]; then
		nsdir=$d/nosuspend-$nh
		if deb_built "$nsdir/mods"; then
			FL_NOSUSPEND=yes FL_NOSUSPEND_WHY=
		elif [ -f "$nsdir/failed" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
			FL_NOSUSPEND_WHY=$(cat "$nsdir/failed")
		else
			log "debian: applying ${DEB_NOSUSPEND_DIR#$TOP/}/*.patch ($nh) and building nosuspend modules for $kver"
			if deb_build_patched "$d" "$kver" "$nh" "$DEB_NOSUSPEND_DIR" nosuspend; then
				FL_NOSUSPEND=yes FL_NOSUSPEND_WHY=
			else
				FL_NOSUSPEND_WHY=$DEB_WHY
				echo "$FL_NOSUSPEND_WHY" > "$nsdir/failed"
			fi
		fi
		touch "$nsdir"
		for old in $(ls -1dt "$d"/nosuspend-* 2>/dev/null | tail -n +4); do
			rm -rf "$old" "$d"/mods-*"-ns${old##*/nosuspend-}"-*.cpio.gz
		done
	fi
	# "hwreset": kernel/patches/ + $DEB_HWRESET_DIR, cached per hash of both series together
	local hh hwdir=
	hh=$(deb_patch_hash "$RIG_PATCH_DIR" "$DEB_HWRESET_DIR")
	FL_HWRESET=failed FL_HWRESET_WHY="no patch in ${DEB_HWRESET_DIR#$TOP/}"
	if [ "$(deb_patch_hash "$DEB_HWRESET_DIR")" = none ]; then
		:
	elif [ "$FL_PATCHED" = failed ]; then
		FL_HWRESET_WHY="it is built on the patched set, which failed: $FL_PATCHED_WHY"
	else
		hwdir=$d/hwreset-$hh
		if deb_built "$hwdir/mods"; then
			FL_HWRESET=yes FL_HWRESET_WHY=
		elif [ -f "$hwdir/failed" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
			FL_HWRESET_WHY=$(cat "$hwdir/failed")
		else
			log "debian: applying ${RIG_PATCH_DIR#$TOP/}/*.patch + ${DEB_HWRESET_DIR#$TOP/}/*.patch ($hh) and building hwreset modules for $kver"
			if deb_build_patched "$d" "$kver" "$hh" "$RIG_PATCH_DIR:$DEB_HWRESET_DIR" hwreset; then
				FL_HWRESET=yes FL_HWRESET_WHY=
			else
				FL_HWRESET_WHY=$DEB_WHY
				echo "$FL_HWRESET_WHY" > "$hwdir/failed"
			fi
		fi
		touch "$hwdir"
		for old in $(ls -1dt "$d"/hwreset-* 2>/dev/null | tail -n +4); do
			rm -rf "$old" "$d"/mods-*"-hw${old##*/hwreset-}"-*.cpio.gz
		done
	fi
	# The modules cpio segment, cached per (kernel, patch hash, nosuspend and hwreset series hashes).
	FL_MODS_CPIO=$d/mods-v4-$h-$FL_PATCHED-ns$nh-$FL_NOSUSPEND-hw$hh-$FL_HWRESET.cpio.gz
	if [ ! -f "$FL_MODS_CPIO" ] ||
		[ -n "$(find "$d/base" "$d/stock/ko" ${pdir:+"$pdir/mods/ko"} ${nsdir:+"$nsdir/mods/ko"} ${hwdir:+"$hwdir/mods/ko"} -newer "$FL_MODS_CPIO" 2> /dev/null)" ]; then
		local st=$d/mods-$h.stage
		rm -rf "$st"
		mkdir -p "$st/lib/modules/rig/base" "$st/lib/modules/rig/stock"
		cp "$d"/base/*.ko "$st/lib/modules/rig/base/"
		cp "$d"/stock/ko/*.ko "$st/lib/modules/rig/stock/"
		if [ "$FL_PATCHED" = yes ]; then
			mkdir -p "$st/lib/modules/rig/patched"
			cp "$pdir"/mods/ko/*.ko "$st/lib/modules/rig/patched/"
		fi
		if [ "$FL_NOSUSPEND" = yes ]; then
			mkdir -p "$st/lib/modules/rig/nosuspend"
			cp "$nsdir"/mods/ko/*.ko "$st/lib/modules/rig/nosuspend/"
		fi
		if [ "$FL_HWRESET" = yes ]; then
			mkdir -p "$st/lib/modules/rig/hwreset"
			cp "$hwdir"/mods/ko/*.ko "$st/lib/modules/rig/hwreset/"
		fi
		# debug info stays in the cache (stock/ko, patched-*/mods/ko: decode oopses there); the guest
		# gets stripped copies (10x smaller, faster to unpack under TCG)
		strip --strip-debug "$st"/lib/modules/rig/*/*.ko
		echo "$DEB_LOAD_ORDER" > "$st/lib/modules/rig/order"
		(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$FL_MODS_CPIO.tmp" &&
			mv "$FL_MODS_CPIO.tmp" "$FL_MODS_CPIO"
		rm -rf "$st"
	fi
	return 0
}
