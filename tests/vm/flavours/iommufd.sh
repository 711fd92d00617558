# shellcheck shell=bash
# tests/vm/flavours/iommufd.sh - rig kernel flavour "iommufd": a small kernel built from Debian's newest
# linux-source (>= 6.13: IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_CHANGE_PROCESS) with iommufd, VFIO cdev, vfio-pci
# and intel-iommu built in and the vDPA modules (vhost_vdpa, vdpa_sim, vdpa_sim_net) as modules, booted on
# q35 with QEMU's emulated intel-iommu and an `edu` PCI device (a real DMA engine for vfio-pci).
#
# Interface: see tests/vm/flavours/debian.sh.  Besides FL_KVER FL_KERNEL FL_MODS_CPIO FL_PATCHED FL_NOSUSPEND
# FL_HWRESET it sets FL_QEMU_ARGS (extra qemu arguments: machine, IOMMU, devices) and FL_MODS_PARAMS.
# Only the "stock" module set exists (patched/nosuspend/hwreset scenarios are reported, not run).
#
# Cost (cold): apt index of four suites (~25 s), linux-source .deb (~167 MB), extraction (~40 s) and a
# kernel build (several minutes on 2 cores).  The build runs niced; the rig itself runs under the machine's
# rig lock (docs/RIG.md), so no other rig's guest runs while it builds.
#
# Cache: $RIG_CACHE/iommufd-src/<source version>/   the linux-source .deb
#        $RIG_CACHE/iommufd-<hash>/                  bzImage, ko/*.ko, config, build.log, mods.cpio.gz, built
# <hash> = sha256 over the source package version, the fragment (iommufd.config), the recipe version and the
# compiler version.  The 2 most recently used builds are kept.
# Uses from rig.sh: RIG_CACHE RIG_DIR RIG_LOG log

IOF_APT=$RIG_CACHE/apt-iommufd
IOF_SUITES="bookworm-backports trixie trixie-backports sid"
IOF_FRAGMENT=$RIG_DIR/flavours/iommufd.config
# Bump when the build recipe changes.
IOF_RECIPE=1
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
iof_cc() { if command -v gcc-12 > /dev/null; then echo gcc-12; else echo gcc; fi; }

# Download (cached) and build the kernel into DIR.  Returns 1 with IOF_WHY on failure.
iof_build() { # PKG SRCVER DIR
	local pkg=$1 ver=$2 d=$3 sd=$RIG_CACHE/iommufd-src/$2 t0 t1 t2
	IOF_WHY=
	local missing=() p
	for p in bc bison flex libelf-dev libssl-dev; do
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
	t0=$(now_ms)
	if ! ls "$sd"/"$pkg"_*.deb > /dev/null 2>&1; then
		mkdir -p "$sd"
		log "iommufd: downloading $pkg $ver"
		(cd "$sd" && iof_apt download "$pkg=$ver") >> "$RIG_LOG" 2>&1 ||
			{ IOF_WHY="downloading $pkg=$ver failed (see $RIG_LOG)"; rm -rf "$sd"; return 2; }
	fi
	t1=$(now_ms)
	rm -rf "$d.tmp"
	mkdir -p "$d.tmp/x"
	log "iommufd: extracting $pkg $ver"
	if ! dpkg-deb --fsys-tarfile "$sd"/"$pkg"_*.deb | tar -x -O --wildcards '*/linux-source-*.tar.xz' |
		nice -n 10 tar -xJ -C "$d.tmp/x" --strip-components=1; then
		IOF_WHY="extracting $pkg failed"
		return 1
	fi
	local src=$d.tmp/x
	if ! grep -q IOMMU_IOAS_CHANGE_PROCESS "$src/include/uapi/linux/iommufd.h" ||
		! grep -q IOMMU_IOAS_MAP_FILE "$src/include/uapi/linux/iommufd.h"; then
		IOF_WHY="$pkg $ver has no IOMMU_IOAS_CHANGE_PROCESS/IOMMU_IOAS_MAP_FILE in include/uapi/linux/iommufd.h"
		return 1
	fi
	t2=$(now_ms)
	local cc mk
	cc=$(iof_cc)
	# Not our make's variables (see debian.sh: MAKEFLAGS would carry O= into Kbuild).
	mk=(env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL nice -n 10 make -C "$src" ARCH=x86_64 CC="$cc" HOSTCC="$cc")
	log "iommufd: building the kernel ($cc, -j$(nproc), niced; log $d.tmp/build.log)"
	{
		"${mk[@]}" tinyconfig &&
			(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$IOF_FRAGMENT") &&
			"${mk[@]}" olddefconfig &&
			"${mk[@]}" -j"$(nproc)" bzImage modules
	} > "$d.tmp/build.log" 2>&1 || {
		IOF_WHY="kernel build failed (see $d.failed/build.log)"
		rm -rf "$d.failed"; mkdir -p "$d.failed"; cp "$d.tmp/build.log" "$src/.config" "$d.failed/" 2> /dev/null
		rm -rf "$d.tmp"
		return 1
	}
	# every symbol of the fragment must have survived olddefconfig
	local line sym val bad=
	while IFS= read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		sym=${line%%=*} val=${line#*=}
		if [ "$val" = n ]; then
			grep -qE "^$sym=" "$src/.config" && bad="$bad $sym"
		else
			grep -qxF "$line" "$src/.config" || bad="$bad $sym"
		fi
	done < "$IOF_FRAGMENT"
	if [ -n "$bad" ]; then
		IOF_WHY="the kernel configuration lost:$bad (fragment $IOF_FRAGMENT; .config in $d.failed)"
		rm -rf "$d.failed"; mkdir -p "$d.failed"; cp "$d.tmp/build.log" "$src/.config" "$d.failed/"
		rm -rf "$d.tmp"
		return 1
	fi
	mkdir -p "$d.tmp/ko"
	cp "$src/arch/x86/boot/bzImage" "$d.tmp/bzImage"
	cp "$src/.config" "$d.tmp/config"
	"${mk[@]}" -s kernelrelease > "$d.tmp/kver" 2>> "$d.tmp/build.log"
	find "$src" -name '*.ko' -exec cp {} "$d.tmp/ko/" \;
	log "iommufd: download $((t1 - t0)) ms, extraction $((t2 - t1)) ms, build $(( $(now_ms) - t2 )) ms"
	echo "download_ms=$((t1 - t0)) extract_ms=$((t2 - t1)) build_ms=$(( $(now_ms) - t2 )) src=$pkg=$ver" > "$d.tmp/timing"
	rm -rf "$src" "$d" "$d.failed"
	mv "$d.tmp" "$d"
}

# newest completed build (any source version): offline fallback
iof_newest_built() {
	local b
	b=$(ls -1dt "$RIG_CACHE"/iommufd-*/built 2> /dev/null | head -1)
	[ -n "$b" ] && dirname "$b"
}

flavour_prepare() {
	local pkg= ver= line d
	FL_PATCHED=none FL_PATCHED_WHY="the iommufd flavour has only the stock module set"
	FL_NOSUSPEND=failed FL_NOSUSPEND_WHY="the iommufd flavour has only the stock module set"
	FL_HWRESET=failed FL_HWRESET_WHY="the iommufd flavour has only the stock module set"
	if [ -n "${VLUD_RIG_IOMMUFD_SRC:-}" ]; then
		# pinned: PKG=VERSION (e.g. linux-source-7.3=7.3.4-1~bpo13+1)
		pkg=${VLUD_RIG_IOMMUFD_SRC%%=*} ver=${VLUD_RIG_IOMMUFD_SRC#*=}
	elif iof_apt_update && line=$(iof_resolve); then
		read -r pkg ver <<< "$line"
	fi
	if [ -n "$ver" ]; then
		d=$RIG_CACHE/iommufd-$(iof_hash "$ver")
		if [ ! -f "$d/built" ]; then
			if [ -f "$d.failed/build.log" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
				FL_FAIL_WHY="the kernel build failed before (see $d.failed/build.log; VLUD_RIG_REBUILD=1 retries)"
				return 1
			fi
			iof_build "$pkg" "$ver" "$d"
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
	if [ ! -f "$FL_MODS_CPIO" ]; then
		local st=$d/mods.stage m order=
		rm -rf "$st"
		mkdir -p "$st/lib/modules/rig/stock"
		for m in $IOF_ORDER; do
			[ -f "$d/ko/$m.ko" ] || continue
			cp "$d/ko/$m.ko" "$st/lib/modules/rig/stock/"
			order="$order var:$m"
		done
		strip --strip-debug "$st"/lib/modules/rig/stock/*.ko
		echo "${order# }" > "$st/lib/modules/rig/order"
		# vdpa_sim of >= 6.13 refuses max_iotlb_entries < 2 (the runner passes 0 = unlimited, as 6.12 has it)
		echo "vdpa_sim max_iotlb_entries=2048" > "$st/lib/modules/rig/params"
		(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$FL_MODS_CPIO.tmp" &&
			mv "$FL_MODS_CPIO.tmp" "$FL_MODS_CPIO"
		rm -rf "$st"
	fi
	return 0
}
