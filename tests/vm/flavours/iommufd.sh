# shellcheck shell=bash
# tests/vm/flavours/iommufd.sh - rig kernel flavour "iommufd": a small kernel built from Debian's newest
# linux-source (>= 6.13: IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_CHANGE_PROCESS) with iommufd, VFIO cdev, vfio-pci
# and intel-iommu built in and the vDPA modules (vhost_vdpa, vdpa_sim, vdpa_sim_net) as modules, booted on
# q35 with QEMU's emulated intel-iommu and an `edu` PCI device (a real DMA engine for vfio-pci).
#
# Interface: see tests/vm/flavours/debian.sh.  Besides FL_KVER FL_KERNEL FL_MODS_CPIO FL_PATCHED FL_NOSUSPEND
# FL_HWRESET it sets FL_QEMU_ARGS (extra qemu arguments: machine, IOMMU, devices) and, for the "patched"
# module set, FL_PATCHED_KERNEL FL_PATCHED_MODS_CPIO FL_PATCHED_KVER: a second kernel image built with
# kernel/iommufd/patches (iommufd is built in, so the fix is a kernel, not modules; its release ends in
# -patched, its vDPA modules are its own).  rig.sh boots it for `modules: patched` scenarios.  No
# nosuspend/hwreset sets (such scenarios fail).  The patched kernel also has CONFIG_IOMMUFD_TEST
# (tests/vm/flavours/iommufd-patched.config: the mock domain of the iommu selftests, docs/IOMMUFD.md) and
# its build makes the series' selftest tools/testing/selftests/iommu/iommufd (static), which its module
# segment carries as /usr/lib/kselftest/iommu/iommufd, with the list of the patches it was built from
# (/lib/modules/rig/patched/series).
#
# Cost (cold): apt index of four suites (~25 s), linux-source .deb (~167 MB), extraction (~40 s), the stock
# kernel build (several minutes on 2 cores) and the patched kernel, built incrementally in the same tree
# right after the stock one (only what the series touches is compiled again, then vmlinux is linked).
# With the stock kernel cached but not this series' patched one (the series changed), the patched kernel
# is a full build of its own (extraction + build: the stock tree is not kept).  The builds run niced; the
# rig itself runs under the machine's rig lock (docs/RIG.md), so no other rig's guest runs while it builds.
#
# Cache: $RIG_CACHE/iommufd-src/<source version>/   the linux-source .deb
#        $RIG_CACHE/iommufd-<hash>/                  bzImage, ko/*.ko, config, build.log, mods.cpio.gz, built
#        $RIG_CACHE/iommufd-<hash>/patched-<phash>/  the same for the patched kernel (patch.log, timing,
#                                                    selftest/iommufd)
# <hash> = sha256 over the source package version, the fragment (iommufd.config), the recipe version and the
# compiler version; <phash> over <hash>, the patched recipe version, its fragment (iommufd-patched.config)
# and the series.  The 2 most recently
# used builds are kept, and in each the 2 most recently used patched builds.
# Uses from rig.sh: RIG_CACHE RIG_DIR RIG_LOG log

IOF_APT=$RIG_CACHE/apt-iommufd
IOF_SUITES="bookworm-backports trixie trixie-backports sid"
IOF_FRAGMENT=$RIG_DIR/flavours/iommufd.config
# Bump when the build recipe changes.
IOF_RECIPE=1
# The "patched" kernel: this series applied to the same source (docs/RIG.md, kernel/iommufd/README.md).
IOF_PATCH_DIR=${VLUD_RIG_IOMMUFD_PATCH_DIR:-$TOP/kernel/iommufd/patches}
case $IOF_PATCH_DIR in /*) ;; *) IOF_PATCH_DIR=$PWD/$IOF_PATCH_DIR ;; esac
# Its kernel release: the stock one + this (uname -r in the guest says which image runs).
IOF_PATCHED_LV=-patched
# Merged on top of IOF_FRAGMENT for the patched kernel only (CONFIG_IOMMUFD_TEST; docs/IOMMUFD.md).
IOF_PATCHED_FRAGMENT=$RIG_DIR/flavours/iommufd-patched.config
# Bump when the patched build recipe changes.
IOF_PATCHED_RECIPE=2
# Where the patched module segment puts the series' selftest in the guest.
IOF_SELFTEST_GUEST=/usr/lib/kselftest/iommu/iommufd
# Load order of the modules the build produced (those built in are left out).
IOF_ORDER="irqbypass vhost_iotlb vdpa vhost vhost_vdpa vringh vdpa_sim vdpa_sim_net"
# QEMU 7.2 (TCG): q35 for the emulated VT-d (intel-iommu before the PCI devices it translates);
# kernel-irqchip=split is what intremap=on needs under KVM, TCG accepts and ignores it (checked); caching-mode
# makes the guest send invalidations for new mappings too (what a VFIO device behind it needs); edu's DMA
# engine goes through the IOMMU (pci_dma_*), with addresses clamped to 28 bits.
IOF_QEMU_ARGS=(-machine q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on -device edu)

# shellcheck source=lib/apt.sh
. "$RIG_DIR/flavours/lib/apt.sh"
iof_apt() { rig_apt "$IOF_APT" "$@"; }
iof_apt_cache() { rig_apt_cache "$IOF_APT" "$@"; }

# shellcheck disable=SC2086 # IOF_SUITES: one word per suite
iof_apt_update() { rig_apt_update "$IOF_APT" iommufd $IOF_SUITES; }

# Newest linux-source-X.Y (X.Y >= 6.13) over all suites -> "PKG VERSION".
iof_resolve() {
	local pkg ver best= bestver=
	for pkg in $(iof_apt_cache pkgnames linux-source- 2>/dev/null | grep -E '^linux-source-[0-9]+\.[0-9]+$'); do
		dpkg --compare-versions "${pkg#linux-source-}" ge 6.13 || continue
		for ver in $(iof_apt_cache madison "$pkg" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'); do
			if [ -z "$bestver" ] || dpkg --compare-versions "$ver" gt "$bestver"; then
				best=$pkg bestver=$ver
			fi
		done
	done
	[ -n "$best" ] || return 1
	echo "$best $bestver"
}

iof_hash() { # SRCVER
	{ echo "recipe $IOF_RECIPE src $1"; cat "$IOF_FRAGMENT"; "$(iof_cc)" --version | head -1; } | sha256sum | cut -c1-16
}
# 16 hex digits over the stock build's hash and the series, or "none" without patches
iof_patch_hash() { # STOCK-HASH
	local p=() f
	for f in "$IOF_PATCH_DIR"/*.patch; do [ -e "$f" ] && p+=("$f"); done
	[ ${#p[@]} -gt 0 ] || { echo none; return; }
	{ echo "patched recipe $IOF_PATCHED_RECIPE lv $IOF_PATCHED_LV stock $1"; cat "$IOF_PATCHED_FRAGMENT" "${p[@]}"; } |
		sha256sum | cut -c1-16
}
iof_cc() { if command -v gcc-12 > /dev/null; then echo gcc-12; else echo gcc; fi; }

# Download (cached) the linux-source .deb and extract its tree into DIR/x.  Returns 1/2 with IOF_WHY.
iof_extract() { # PKG SRCVER DIR
	local pkg=$1 ver=$2 d=$3 sd=$RIG_CACHE/iommufd-src/$2 p
	local missing=()
	# libcap-dev: the iommu selftest (static, in the patched build)
	for p in bc bison flex libelf-dev libssl-dev libcap-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "${VLUD_RIG_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
			IOF_WHY="kernel build dependencies missing: ${missing[*]}"
			return 2
		fi
		log "iommufd: installing kernel build dependencies: ${missing[*]}"
		# DPkg::Lock::Timeout: a root's preparation may install its host packages at the same time
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
			"${missing[@]}" >> "$RIG_LOG" 2>&1 ||
			{ IOF_WHY="cannot install ${missing[*]} (see $RIG_LOG)"; return 2; }
	fi
	IOF_T0=$(now_ms)
	if ! ls "$sd"/"$pkg"_*.deb > /dev/null 2>&1; then
		mkdir -p "$sd"
		log "iommufd: downloading $pkg $ver"
		(cd "$sd" && iof_apt download "$pkg=$ver") >> "$RIG_LOG" 2>&1 ||
			{ IOF_WHY="downloading $pkg=$ver failed (see $RIG_LOG)"; rm -rf "$sd"; return 2; }
	fi
	IOF_T1=$(now_ms)
	rm -rf "$d"
	mkdir -p "$d/x"
	log "iommufd: extracting $pkg $ver"
	if ! dpkg-deb --fsys-tarfile "$sd"/"$pkg"_*.deb | tar -x -O --wildcards '*/linux-source-*.tar.xz' |
		nice -n 10 tar -xJ -C "$d/x" --strip-components=1; then
		IOF_WHY="extracting $pkg failed"
		return 1
	fi
	if ! grep -q IOMMU_IOAS_CHANGE_PROCESS "$d/x/include/uapi/linux/iommufd.h" ||
		! grep -q IOMMU_IOAS_MAP_FILE "$d/x/include/uapi/linux/iommufd.h"; then
		IOF_WHY="$pkg $ver has no IOMMU_IOAS_CHANGE_PROCESS/IOMMU_IOAS_MAP_FILE in include/uapi/linux/iommufd.h"
		return 1
	fi
	IOF_T2=$(now_ms)
}

# make in SRC: not our make's variables (see debian.sh: MAKEFLAGS would carry O= into Kbuild).  LOCALVERSION
# is set (empty for stock) so that an incremental build after the stock one sees the change.
iof_make() { # SRC LOCALVERSION MAKE-ARGS...
	local src=$1 lv=$2 cc
	shift 2
	cc=$(iof_cc)
	env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL nice -n 10 make -C "$src" ARCH=x86_64 CC="$cc" \
		HOSTCC="$cc" LOCALVERSION="$lv" "$@"
}

# The configuration (the fragment, then EXTRA-FRAGMENT if given) and the full build in SRC (log appended to
# LOG).
iof_make_all() { # SRC LOCALVERSION LOG [EXTRA-FRAGMENT]
	local src=$1 lv=$2 extra=${4:-}
	log "iommufd: building the kernel${lv:+ $lv} ($(iof_cc), -j$(nproc), niced; log $3)"
	{
		iof_make "$src" "$lv" tinyconfig &&
			(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$IOF_FRAGMENT" ${extra:+"$extra"}) &&
			iof_make "$src" "$lv" olddefconfig &&
			iof_make "$src" "$lv" -j"$(nproc)" bzImage modules
	} >> "$3" 2>&1
}

# Every symbol of the fragment (and EXTRA-FRAGMENT) survived olddefconfig, then bzImage, config, kver, ko/ of
# SRC into OUT (which has build.log).  Returns 1 with IOF_WHY.
iof_collect() { # SRC LOCALVERSION OUT [EXTRA-FRAGMENT]
	local src=$1 lv=$2 out=$3 line sym val bad=
	while IFS= read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		sym=${line%%=*} val=${line#*=}
		if [ "$val" = n ]; then
			grep -qE "^$sym=" "$src/.config" && bad="$bad $sym"
		else
			grep -qxF "$line" "$src/.config" || bad="$bad $sym"
		fi
	done < <(cat "$IOF_FRAGMENT" ${4:+"$4"})
	if [ -n "$bad" ]; then
		IOF_WHY="the kernel configuration lost:$bad (fragment $IOF_FRAGMENT${4:+ $4})"
		return 1
	fi
	mkdir -p "$out/ko"
	cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
	cp "$src/.config" "$out/config"
	iof_make "$src" "$lv" -s kernelrelease > "$out/kver" 2>> "$out/build.log"
	find "$src" -name '*.ko' -exec cp {} "$out/ko/" \;
}

# Applies the series of $IOF_PATCH_DIR to SRC (log to LOG).  Returns 1 with IOF_WHY (naming the log as
# WHERE, its path once kept).
iof_apply() { # SRC LOG WHERE
	local p
	for p in "$IOF_PATCH_DIR"/*.patch; do
		echo "== patch -p1 < $p" >> "$2"
		if ! patch -p1 -d "$1" --no-backup-if-mismatch < "$p" >> "$2" 2>&1; then
			IOF_WHY="$(basename "$p") does not apply (see $3)"
			return 1
		fi
	done
}

# The iommu selftest of SRC (with the series applied) into OUT/selftest/iommufd: the uapi headers (make
# headers: usr/include, what the selftests' Makefile includes) and tools/testing/selftests/iommu's own
# Makefile, linked statically (the guest has no libcap of its own).  Log appended to OUT/build.log.
# Returns 1 with IOF_WHY.
iof_selftest() { # SRC OUT
	local cc
	cc=$(iof_cc)
	mkdir -p "$2/selftest"
	if ! {
		echo "== the iommu selftest"
		iof_make "$1" "$IOF_PATCHED_LV" headers &&
			env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL nice -n 10 \
				make -C "$1/tools/testing/selftests/iommu" CC="$cc" LDFLAGS=-static OUTPUT="$2/selftest" \
				"$2/selftest/iommufd"
	} >> "$2/build.log" 2>&1 || [ ! -x "$2/selftest/iommufd" ]; then
		IOF_WHY="the iommu selftest does not build (see the end of ${2%.tmp}.failed/build.log)"
		return 1
	fi
}

# A failed build: keep its log and .config in FAILED, drop the rest.
iof_failed() { # TMPDIR FAILED
	rm -rf "$2"; mkdir -p "$2"
	cp "$1/build.log" "$2/" 2> /dev/null
	cp "$1/x/.config" "$2/config" 2> /dev/null || cp "$1/config" "$2/config" 2> /dev/null
	[ -f "$1/patch.log" ] && cp "$1/patch.log" "$2/"
	rm -rf "$1"
}

# The patched kernel from SRC (already built stock, or fresh): apply, build (incrementally when SRC holds
# the stock build: only what the series touches is compiled again, then vmlinux is linked), collect into
# OUT (renamed from OUT.tmp on success).  Returns 1 with IOF_WHY, the log in OUT.failed.
iof_build_patched_in() { # SRC OUT INCREMENTAL(0|1)
	local src=$1 out=$2 t0
	t0=$(now_ms)
	rm -rf "$out.tmp" "$out.failed"
	mkdir -p "$out.tmp"
	if ! iof_apply "$src" "$out.tmp/patch.log" "$out.failed/patch.log"; then
		iof_failed "$out.tmp" "$out.failed"
		return 1
	fi
	if [ "$3" = 1 ]; then
		log "iommufd: building the patched kernel incrementally (log $out.tmp/build.log)"
		{
			(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$IOF_PATCHED_FRAGMENT") &&
				iof_make "$src" "$IOF_PATCHED_LV" olddefconfig &&
				iof_make "$src" "$IOF_PATCHED_LV" -j"$(nproc)" bzImage modules
		} >> "$out.tmp/build.log" 2>&1
	else
		iof_make_all "$src" "$IOF_PATCHED_LV" "$out.tmp/build.log" "$IOF_PATCHED_FRAGMENT"
	fi || {
		IOF_WHY="patched kernel build failed (see $out.failed/build.log)"
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
		iof_failed "$out.tmp" "$out.failed"
		return 1
	}
	iof_collect "$src" "$IOF_PATCHED_LV" "$out.tmp" "$IOF_PATCHED_FRAGMENT" || {
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
		iof_failed "$out.tmp" "$out.failed"
		return 1
	}
	iof_selftest "$src" "$out.tmp" || {
		iof_failed "$out.tmp" "$out.failed"
		return 1
	}
	log "iommufd: patched build $(( $(now_ms) - t0 )) ms ($([ "$3" = 1 ] && echo incremental || echo full))"
	echo "build_ms=$(( $(now_ms) - t0 )) incremental=$3" > "$out.tmp/timing"
	rm -rf "$out"
	mv "$out.tmp" "$out"
}

# Download (cached) and build the stock kernel into DIR and, when PATCHED-DIR is given, the patched one
# into PATCHED-DIR from the same tree (incremental).  Returns 1/2 with IOF_WHY on a stock failure; a
# patched failure leaves PATCHED-DIR.failed (IOF_PATCHED_WHY) and the stock build stands.
iof_build() { # PKG SRCVER DIR [PATCHED-DIR]
	local pkg=$1 ver=$2 d=$3 pd=${4:-} rc
	IOF_WHY= IOF_PATCHED_WHY=
	iof_extract "$pkg" "$ver" "$d.tmp" || { rc=$?; rm -rf "$d.tmp"; return $rc; }
	local src=$d.tmp/x
	iof_make_all "$src" "" "$d.tmp/build.log" || {
		IOF_WHY="kernel build failed (see $d.failed/build.log)"
		iof_failed "$d.tmp" "$d.failed"
		return 1
	}
	iof_collect "$src" "" "$d.tmp" || {
		IOF_WHY="$IOF_WHY (.config in $d.failed)"
		iof_failed "$d.tmp" "$d.failed"
		return 1
	}
	local t3
	t3=$(now_ms)
	log "iommufd: download $((IOF_T1 - IOF_T0)) ms, extraction $((IOF_T2 - IOF_T1)) ms, build $((t3 - IOF_T2)) ms"
	echo "download_ms=$((IOF_T1 - IOF_T0)) extract_ms=$((IOF_T2 - IOF_T1)) build_ms=$((t3 - IOF_T2)) src=$pkg=$ver" > "$d.tmp/timing"
	if [ -n "$pd" ]; then
		# inside DIR: built under DIR.tmp, moved with it
		iof_build_patched_in "$src" "$d.tmp/${pd##*/}" 1 || IOF_PATCHED_WHY=$IOF_WHY
		[ -d "$d.tmp/${pd##*/}.failed" ] && echo "$IOF_PATCHED_WHY" > "$d.tmp/${pd##*/}.failed/failed"
	fi
	rm -rf "$src" "$d" "$d.failed"
	mv "$d.tmp" "$d"
}

# The patched kernel alone (the stock one is cached, its tree gone): extract again, full build.
iof_build_patched() { # PKG SRCVER PATCHED-DIR
	local rc
	IOF_WHY=
	iof_extract "$1" "$2" "$3.src" || { rc=$?; rm -rf "$3.src"; return $rc; }
	iof_build_patched_in "$3.src/x" "$3" 0
	rc=$?
	rm -rf "$3.src"
	return $rc
}

# The modules cpio segment of a build in DIR: its modules as the module set SET (stock or patched).
iof_mods_cpio() { # DIR SET
	local d=$1 st=$1/mods.stage m order=
	[ -f "$d/mods.cpio.gz" ] && return 0
	rm -rf "$st"
	mkdir -p "$st/lib/modules/rig/$2"
	for m in $IOF_ORDER; do
		[ -f "$d/ko/$m.ko" ] || continue
		cp "$d/ko/$m.ko" "$st/lib/modules/rig/$2/"
		order="$order var:$m"
	done
	strip --strip-debug "$st"/lib/modules/rig/"$2"/*.ko
	# the patches the patched kernel was built from, one file name a line (from its patch.log: the
	# scenarios tell the series from the selftest patch alone by it)
	if [ -f "$d/patch.log" ]; then
		sed -n 's|^== patch -p1 < .*/||p' "$d/patch.log" > "$st/lib/modules/rig/$2/series"
	fi
	# the patched kernel's selftest (iof_selftest)
	if [ -x "$d/selftest/iommufd" ]; then
		mkdir -p "$st${IOF_SELFTEST_GUEST%/*}"
		cp "$d/selftest/iommufd" "$st$IOF_SELFTEST_GUEST"
	fi
	echo "${order# }" > "$st/lib/modules/rig/order"
	# vdpa_sim of >= 6.13 refuses max_iotlb_entries < 2 (the runner passes 0 = unlimited, as 6.12 has it)
	echo "vdpa_sim max_iotlb_entries=2048" > "$st/lib/modules/rig/params"
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$d/mods.cpio.gz.tmp" &&
		mv "$d/mods.cpio.gz.tmp" "$d/mods.cpio.gz"
	rm -rf "$st"
}

# newest completed build (any source version): offline fallback
iof_newest_built() {
	local b
	b=$(ls -1dt "$RIG_CACHE"/iommufd-*/built 2> /dev/null | head -1)
	[ -n "$b" ] && dirname "$b"
}

flavour_prepare() {
	local pkg= ver= line d h pd
	FL_PATCHED=none FL_PATCHED_WHY="no patches in ${IOF_PATCH_DIR#$TOP/} (patched == stock)"
	FL_NOSUSPEND=failed FL_NOSUSPEND_WHY="the iommufd flavour has no nosuspend module set"
	FL_HWRESET=failed FL_HWRESET_WHY="the iommufd flavour has no hwreset module set"
	if [ -n "${VLUD_RIG_IOMMUFD_SRC:-}" ]; then
		# pinned: PKG=VERSION (e.g. linux-source-7.3=7.3.4-1~bpo13+1)
		pkg=${VLUD_RIG_IOMMUFD_SRC%%=*} ver=${VLUD_RIG_IOMMUFD_SRC#*=}
	elif iof_apt_update && line=$(iof_resolve); then
		read -r pkg ver <<< "$line"
	fi
	if [ -n "$ver" ]; then
		d=$RIG_CACHE/iommufd-$(iof_hash "$ver")
		h=$(iof_patch_hash "${d##*/iommufd-}")
		pd=
		[ "$h" = none ] || pd=$d/patched-$h
		if [ ! -f "$d/built" ]; then
			if [ -f "$d.failed/build.log" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
				FL_FAIL_WHY="the kernel build failed before (see $d.failed/build.log; VLUD_RIG_REBUILD=1 retries)"
				return 1
			fi
			iof_build "$pkg" "$ver" "$d" "$pd"
			case $? in
			0) echo "$pkg=$ver" > "$d/built" ;;
			2) FL_SKIP_WHY=$IOF_WHY; return 2 ;;
			*) FL_FAIL_WHY=$IOF_WHY; return 1 ;;
			esac
		fi
	else
		d=$(iof_newest_built)
		if [ -z "$d" ]; then
			FL_SKIP_WHY="cannot resolve a linux-source >= 6.13 (no index from the Debian mirror, nothing built in $RIG_CACHE)"
			return 2
		fi
		log "iommufd: index unavailable, using the cached build $d"
		line=$(cat "$d/built")
		pkg=${line%%=*} ver=${line#*=}
		h=$(iof_patch_hash "${d##*/iommufd-}")
		pd=
		[ "$h" = none ] || pd=$d/patched-$h
	fi
	touch "$d/built"
	local old
	for old in $(ls -1dt "$RIG_CACHE"/iommufd-*/built 2> /dev/null | tail -n +3); do
		log "iommufd: removing old build ${old%/built}"
		rm -rf "${old%/built}"
	done
	FL_KVER=$(cat "$d/kver")
	FL_KERNEL=$d/bzImage
	FL_QEMU_ARGS=("${IOF_QEMU_ARGS[@]}")
	FL_MODS_CPIO=$d/mods.cpio.gz
	iof_mods_cpio "$d" stock
	# "patched": a second kernel image (the fixes are in the built-in iommufd) with its own modules, cached
	# in DIR/patched-<hash of the stock hash and the series>
	if [ -n "$pd" ]; then
		if [ -f "$pd/bzImage" ]; then
			FL_PATCHED=yes FL_PATCHED_WHY=
		elif [ -f "$pd.failed/failed" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
			FL_PATCHED=failed FL_PATCHED_WHY="$(cat "$pd.failed/failed") (failed before; VLUD_RIG_REBUILD=1 retries)"
		else
			log "iommufd: the patched kernel ${IOF_PATCH_DIR#$TOP/} ($h): a full build (the stock tree is not kept)"
			if iof_build_patched "$pkg" "$ver" "$pd"; then
				FL_PATCHED=yes FL_PATCHED_WHY=
			else
				FL_PATCHED=failed FL_PATCHED_WHY=$IOF_WHY
				mkdir -p "$pd.failed" && echo "$IOF_WHY" > "$pd.failed/failed"
			fi
		fi
		if [ "$FL_PATCHED" = yes ]; then
			touch "$pd/bzImage"
			iof_mods_cpio "$pd" patched
			FL_PATCHED_KERNEL=$pd/bzImage
			FL_PATCHED_MODS_CPIO=$pd/mods.cpio.gz
			FL_PATCHED_KVER=$(cat "$pd/kver")
		fi
		# the 2 most recently used patched builds of this stock build
		for old in $(ls -1t "$d"/patched-*/bzImage 2> /dev/null | tail -n +3); do
			old=${old%/bzImage}
			log "iommufd: removing old patched build $old"
			rm -rf "$old" "$old.failed"
		done
	fi
	return 0
}
