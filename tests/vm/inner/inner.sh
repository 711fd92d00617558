# shellcheck shell=bash
# tests/vm/inner/inner.sh - the inner guest of `inner: tiny` scenarios (docs/QEMU.md "A tiny inner kernel
# instead of qtest: measured"): a tiny x86_64 kernel (tinyconfig + tests/vm/inner/kernel.config: serial
# console, initramfs, PCI, virtio-pci, virtio-net, AF_PACKET) and an initramfs with one static program,
# tests/vm/inner/init.c, for an unmodified QEMU inside the rig's guest to boot with a virtio-net-pci device
# on vhost-vdpa.  Sourced by rig.sh.
#
# inner_segment: sets INNER_SEG to the path of a cpio segment with /usr/share/vlud/inner/{bzImage,
# initramfs.cpio,kver,config} (built once per run, under $RIG_CACHE/.lock-inner); returns 1 with INNER_WHY
# when it cannot be built.  The kernel source is the iommufd flavour's: the same linux-source .deb (resolved and downloaded the
# same way, into the same $RIG_CACHE/iommufd-src/<version>/, VLUD_RIG_IOMMUFD_SRC pins it).
#
# Cache: $RIG_CACHE/inner-<hash>/  bzImage config kver build.log timing built
#   <hash> = sha256 over the source version, kernel.config, INNER_RECIPE and the compiler; the 2 most recently
#   used are kept; a failed build leaves inner-<hash>.failed/ and is not retried unless VLUD_RIG_REBUILD=1.
# $RIG_OUT/inner-<hash>-<ihash>.cpio.gz: the segment (<ihash> over init.c and the compiler), rebuilt in ~1 s.
# Uses from rig.sh: RIG_CACHE RIG_DIR RIG_OUT RIG_WORK RIG_LOG log now_ms

INNER_DIR=$RIG_DIR/inner
INNER_RECIPE=1

inner_cc() { if command -v gcc-12 > /dev/null; then echo gcc-12; else echo gcc; fi; }

# The kernel: resolve and download the source like the iommufd flavour (in a subshell: its functions stay
# out of rig.sh), then build bzImage once.  Sets INNER_KDIR or INNER_WHY.
inner_kernel() {
	local line pkg= ver= d
	INNER_KDIR= INNER_WHY=
	line=$(
		# shellcheck source=../flavours/iommufd.sh
		. "$RIG_DIR/flavours/iommufd.sh"
		if [ -n "${VLUD_RIG_IOMMUFD_SRC:-}" ]; then
			echo "${VLUD_RIG_IOMMUFD_SRC%%=*} ${VLUD_RIG_IOMMUFD_SRC#*=}"
		elif iof_apt_update; then
			iof_resolve
		fi
	)
	read -r pkg ver <<< "$line"
	if [ -z "$ver" ]; then
		# offline: the newest build made from any source
		d=$(ls -1dt "$RIG_CACHE"/inner-*/built 2> /dev/null | head -1)
		if [ -z "$d" ]; then
			INNER_WHY="cannot resolve a linux-source (no index from the Debian mirror, no inner kernel in $RIG_CACHE)"
			return 1
		fi
		INNER_KDIR=${d%/built}
		log "inner: index unavailable, using the cached build $INNER_KDIR"
		return 0
	fi
	d=$RIG_CACHE/inner-$({ echo "recipe $INNER_RECIPE src $ver"; cat "$INNER_DIR/kernel.config"; "$(inner_cc)" --version | head -1; } |
		sha256sum | cut -c1-16)
	if [ ! -f "$d/built" ]; then
		if [ -f "$d.failed/build.log" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
			INNER_WHY="the inner kernel's build failed before (see $d.failed/build.log; VLUD_RIG_REBUILD=1 retries)"
			return 1
		fi
		inner_build "$pkg" "$ver" "$d" || return 1
		echo "$pkg=$ver" > "$d/built"
	fi
	touch "$d/built"
	local old
	for old in $(ls -1dt "$RIG_CACHE"/inner-*/built 2> /dev/null | tail -n +3); do
		log "inner: removing old build ${old%/built}"
		rm -rf "${old%/built}"
	done
	INNER_KDIR=$d
}

inner_build() { # PKG VERSION DIR
	local pkg=$1 ver=$2 d=$3 sd=$RIG_CACHE/iommufd-src/$2 t0 t1 t2 cc src p missing=()
	# the iommufd flavour's build dependencies (kconfig, objtool)
	for p in bc bison flex libelf-dev libssl-dev; do
		dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "${VLUD_RIG_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
			INNER_WHY="kernel build dependencies missing: ${missing[*]}"
			return 1
		fi
		log "inner: installing kernel build dependencies: ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
			"${missing[@]}" >> "$RIG_LOG" 2>&1 || { INNER_WHY="cannot install ${missing[*]} (see $RIG_LOG)"; return 1; }
	fi
	t0=$(now_ms)
	if ! ls "$sd"/"$pkg"_*.deb > /dev/null 2>&1; then
		mkdir -p "$sd"
		log "inner: downloading $pkg $ver"
		if ! (
			# shellcheck source=../flavours/iommufd.sh
			. "$RIG_DIR/flavours/iommufd.sh"
			cd "$sd" && iof_apt download "$pkg=$ver"
		) >> "$RIG_LOG" 2>&1; then
			INNER_WHY="downloading $pkg=$ver failed (see $RIG_LOG)"
			rm -rf "$sd"
			return 1
		fi
	fi
	t1=$(now_ms)
	rm -rf "$d.tmp"
	mkdir -p "$d.tmp/x"
	src=$d.tmp/x
	log "inner: extracting $pkg $ver"
	if ! dpkg-deb --fsys-tarfile "$sd"/"$pkg"_*.deb | tar -x -O --wildcards '*/linux-source-*.tar.xz' |
		nice -n 10 tar -xJ -C "$src" --strip-components=1; then
		INNER_WHY="extracting $pkg failed"
		rm -rf "$d.tmp"
		return 1
	fi
	t2=$(now_ms)
	cc=$(inner_cc)
	local mk=(env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL nice -n 10 make -C "$src" ARCH=x86_64 CC="$cc" HOSTCC="$cc")
	log "inner: building the inner kernel ($cc, -j$(nproc), niced; log $d.tmp/build.log)"
	local bad= line sym val
	if {
		"${mk[@]}" tinyconfig &&
			(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$INNER_DIR/kernel.config") &&
			"${mk[@]}" olddefconfig &&
			"${mk[@]}" -j"$(nproc)" bzImage
	} > "$d.tmp/build.log" 2>&1; then
		# every symbol of the fragment must have survived olddefconfig
		while IFS= read -r line; do
			case $line in CONFIG_*=*) ;; *) continue ;; esac
			sym=${line%%=*} val=${line#*=}
			if [ "$val" = n ]; then
				grep -qE "^$sym=" "$src/.config" && bad="$bad $sym"
			else
				grep -qxF "$line" "$src/.config" || bad="$bad $sym"
			fi
		done < "$INNER_DIR/kernel.config"
		[ -z "$bad" ] || INNER_WHY="the inner kernel's configuration lost:$bad (.config in $d.failed)"
	else
		INNER_WHY="the inner kernel's build failed (see $d.failed/build.log)"
	fi
	if [ -n "$INNER_WHY" ]; then
		rm -rf "$d.failed"
		mkdir -p "$d.failed"
		cp "$d.tmp/build.log" "$src/.config" "$d.failed/" 2> /dev/null
		rm -rf "$d.tmp"
		return 1
	fi
	cp "$src/arch/x86/boot/bzImage" "$src/.config" "$d.tmp/"
	mv "$d.tmp/.config" "$d.tmp/config"
	"${mk[@]}" -s kernelrelease > "$d.tmp/kver" 2>> "$d.tmp/build.log"
	log "inner: download $((t1 - t0)) ms, extraction $((t2 - t1)) ms, build $(($(now_ms) - t2)) ms, bzImage $(stat -c %s "$d.tmp/bzImage") bytes"
	echo "download_ms=$((t1 - t0)) extract_ms=$((t2 - t1)) build_ms=$(($(now_ms) - t2)) src=$pkg=$ver bzimage_bytes=$(stat -c %s "$d.tmp/bzImage")" > "$d.tmp/timing"
	rm -rf "$src" "$d" "$d.failed"
	mv "$d.tmp" "$d"
}

# The kernel (cached, under its own lock) and the init, as one cpio segment.
INNER_SEG= INNER_RC=
inner_segment() {
	[ -z "$INNER_RC" ] || return "$INNER_RC"
	INNER_RC=1
	local ihash seg st
	exec 7> "$RIG_CACHE/.lock-inner"
	flock -n 7 || { log "inner: waiting for its preparation by another run"; flock 7; }
	inner_kernel
	local rc=$?
	if [ "$rc" = 0 ]; then
		cp "$INNER_KDIR/bzImage" "$RIG_WORK/inner-bzImage"
		cp "$INNER_KDIR/config" "$RIG_WORK/inner-config"
		cp "$INNER_KDIR/kver" "$RIG_WORK/inner-kver"
	fi
	flock -u 7
	exec 7>&-
	[ "$rc" = 0 ] || return 1
	ihash=$({ cat "$INNER_DIR/init.c"; gcc --version | head -1; sha256sum < "$RIG_WORK/inner-bzImage"; } | sha256sum | cut -c1-16)
	seg=$RIG_OUT/inner-$ihash.cpio.gz
	if [ ! -f "$seg" ]; then
		st=$RIG_WORK/inner.stage
		rm -rf "$st"
		mkdir -p "$st/init.d" "$st/usr/share/vlud/inner"
		if ! gcc -static -Os -Wall -o "$st/init.d/init" "$INNER_DIR/init.c" >> "$RIG_LOG" 2>&1; then
			INNER_WHY="the inner init does not build (gcc -static; see $RIG_LOG)"
			return 1
		fi
		strip "$st/init.d/init"
		(cd "$st/init.d" && echo init | cpio -o -H newc --quiet -R 0:0) > "$st/usr/share/vlud/inner/initramfs.cpio"
		rm -rf "$st/init.d"
		cp "$RIG_WORK/inner-bzImage" "$st/usr/share/vlud/inner/bzImage"
		cp "$RIG_WORK/inner-config" "$st/usr/share/vlud/inner/config"
		cp "$RIG_WORK/inner-kver" "$st/usr/share/vlud/inner/kver"
		rm -f "$RIG_OUT"/inner-*.cpio.gz
		(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$seg.$$" && mv "$seg.$$" "$seg"
		rm -rf "$st"
	fi
	INNER_SEG=$seg INNER_RC=0
}
