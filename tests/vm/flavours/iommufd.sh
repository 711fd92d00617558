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
# -patched, its vDPA modules are its own) and then the vhost-vdpa series kernel/patches (VHOST_NEW_OWNER,
# written for 6.12: exact context but for the hunks tests/vm/flavours/iommufd.fuzz allows, iof_apply).
# rig.sh boots it for `modules: patched` scenarios.  No nosuspend/hwreset sets (such scenarios fail).  The
# patched kernel applies only the iommufd series' patches that change the image: a patch that touches nothing
# but tools/testing/ (patch 3, the iommu selftest) is left out of it and of its cache key.
#
# On request only (rig.sh calls flavour_prepare_selftest when a `modules: selftest` scenario is to run,
# never flavour_prepare or prepare-all; docs/RIG.md): the "selftest" kernel, FL_SELFTEST
# FL_SELFTEST_KERNEL FL_SELFTEST_MODS_CPIO FL_SELFTEST_KVER: the whole series (tools/testing/ too) with
# CONFIG_IOMMUFD_TEST (tests/vm/flavours/iommufd-selftest.config, docs/IOMMUFD.md) and the series' selftest
# tools/testing/selftests/iommu/iommufd (static), which its module segment (set "selftest") carries as
# /usr/lib/kselftest/iommu/iommufd with the list of the patches it was built from
# (/lib/modules/rig/selftest/series).  Always a full build of its own (extraction + build, ~17 min on 2 cores
# under load): it is not on make check's path.
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
#        $RIG_CACHE/iommufd-<hash>/patched-<phash>/  the same for the patched kernel (patch.log, timing)
#        $RIG_CACHE/iommufd-<hash>/selftest-<shash>/ the selftest kernel (the same, selftest/iommufd,
#                                                    mods-selftest.cpio.gz)
# <hash> = sha256 over the source package version, the fragment (iommufd.config), the recipe version and the
# compiler version; <phash> over <hash>, the patched recipe version, the diffs of the series' patches that
# change the image (iof_kernel_patches; each from its first "diff --git" line, without git format-patch's
# envelope: renumbering the series or editing a commit message keeps the key, and the key of a series equals
# that of the same series with a tools/testing/ patch added), those of the vhost-vdpa series and the rules
# of iommufd.fuzz; <shash> over <hash>, the selftest recipe
# version, the settings of its fragment (not its comments) and the diffs of every patch of the series.  The
# 2 most recently used builds are kept, and in each the 2 most recently used patched builds and the 2 most
# recently used selftest builds.
# Uses from rig.sh: RIG_CACHE RIG_DIR RIG_LOG log

IOF_APT=$RIG_CACHE/apt-iommufd
IOF_SUITES="bookworm-backports trixie trixie-backports sid"
IOF_FRAGMENT=$RIG_DIR/flavours/iommufd.config
# Bump when the build recipe changes.
IOF_RECIPE=1
# The "patched" kernel: this series applied to the same source (docs/RIG.md, kernel/iommufd/README.md).
IOF_PATCH_DIR=${VLUD_RIG_IOMMUFD_PATCH_DIR:-$TOP/kernel/iommufd/patches}
case $IOF_PATCH_DIR in /*) ;; *) IOF_PATCH_DIR=$PWD/$IOF_PATCH_DIR ;; esac
# ... and after it the vhost-vdpa series (VHOST_NEW_OWNER: paths A and B; written for 6.12), the same files
# as the debian flavour's patched modules (rig.sh's RIG_PATCH_DIR: kernel/patches or VLUD_RIG_PATCH_DIR),
# applied with exact context but for the hunks IOF_FUZZ allows on this source (iof_apply).
IOF_VDPA_PATCH_DIR=$RIG_PATCH_DIR
IOF_FUZZ=$RIG_DIR/flavours/iommufd.fuzz
# Its kernel release: the stock one + this (uname -r in the guest says which image runs).
IOF_PATCHED_LV=-patched
# Bump when the patched build recipe changes (2: the vhost-vdpa series too; exact context).
IOF_PATCHED_RECIPE=2
# The selftest kernel (on request): merged on top of IOF_FRAGMENT, its recipe version (bump when its recipe
# changes), where its module segment puts the series' selftest in the guest.
IOF_SELFTEST_FRAGMENT=$RIG_DIR/flavours/iommufd-selftest.config
IOF_SELFTEST_RECIPE=1
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
# The patches of $IOF_PATCH_DIR that change the kernel image, one path a line: every patch but those whose
# every file (both sides of each "diff --git a/X b/Y" line) is under tools/testing/ (selftests: not built by
# `make bzImage modules`; tools/ as a whole is not excluded, objtool is part of the kernel build).  A patch
# without "diff --git" lines counts as changing the image.
iof_kernel_patches() {
	local f
	for f in "$IOF_PATCH_DIR"/*.patch; do
		[ -e "$f" ] || continue
		if grep -q '^diff --git ' "$f" &&
			! grep '^diff --git ' "$f" | grep -qvE '^diff --git a/tools/testing/[^ ]* b/tools/testing/[^ ]*$'; then
			continue
		fi
		echo "$f"
	done
}
# What of a patch file reaches the tree: from its first "diff --git" line on, without git format-patch's
# signature (a last "-- " line followed only by the git version and empty lines); the whole file if it has no
# "diff --git" line.
iof_patch_body() { # FILE
	grep -q '^diff --git ' "$1" || { cat "$1"; return; }
	awk '/^diff --git /{ p = 1 } p { l[n++] = $0 }
		END { e = n; while (e > 0 && l[e - 1] ~ /^([0-9][0-9A-Za-z.+~-]*)?$/) e--
			if (e > 0 && l[e - 1] == "-- ") e--; else e = n
			for (i = 0; i < e; i++) print l[i] }' "$1"
}
# The patches of the vhost-vdpa series (IOF_VDPA_PATCH_DIR), one path a line, in order
iof_vdpa_patches() {
	local f
	for f in "$IOF_VDPA_PATCH_DIR"/*.patch; do [ -e "$f" ] && echo "$f"; done
}
# Every patch of the patched kernel, in the order it applies them: the iommufd fixes, then the vhost-vdpa
# series
iof_patched_patches() { iof_kernel_patches; iof_vdpa_patches; }
# 16 hex digits over the stock build's hash, the fuzz allowances (IOF_FUZZ's rules, not its comments) and
# the diffs of iof_kernel_patches and iof_vdpa_patches (each series under its own heading), or "none"
# without such patches
iof_patch_hash() { # STOCK-HASH
	local p=() v=() f
	mapfile -t p < <(iof_kernel_patches)
	mapfile -t v < <(iof_vdpa_patches)
	[ $((${#p[@]} + ${#v[@]})) -gt 0 ] || { echo none; return; }
	{
		echo "patched recipe $IOF_PATCHED_RECIPE lv $IOF_PATCHED_LV stock $1"
		echo "== iommufd series"
		for f in "${p[@]}"; do iof_patch_body "$f"; done
		echo "== vhost-vdpa series"
		for f in "${v[@]}"; do iof_patch_body "$f"; done
		echo "== fuzz"
		grep -v -e '^#' -e '^[[:space:]]*$' "$IOF_FUZZ" 2> /dev/null
	} | sha256sum | cut -c1-16
}
# 16 hex digits over the stock build's hash, the settings of the selftest fragment (CONFIG_ lines and
# "# CONFIG_X is not set", not its comments) and the diffs of every patch of the series, or "none" without
# patches
iof_selftest_hash() { # STOCK-HASH
	local p=() f
	for f in "$IOF_PATCH_DIR"/*.patch; do [ -e "$f" ] && p+=("$f"); done
	[ ${#p[@]} -gt 0 ] || { echo none; return; }
	{
		echo "selftest recipe $IOF_SELFTEST_RECIPE lv $IOF_PATCHED_LV stock $1"
		grep -E '^(CONFIG_|# CONFIG_[A-Za-z0-9_]+ is not set)' "$IOF_SELFTEST_FRAGMENT"
		for f in "${p[@]}"; do iof_patch_body "$f"; done
	} | sha256sum | cut -c1-16
}
iof_cc() { if command -v gcc-12 > /dev/null; then echo gcc-12; else echo gcc; fi; }

# Download (cached) the linux-source .deb and extract its tree into DIR/x (build dependencies: the kernel's and
# EXTRA-PACKAGEs).  Returns 1/2 with IOF_WHY.
iof_extract() { # PKG SRCVER DIR [EXTRA-PACKAGE...]
	local pkg=$1 ver=$2 d=$3 sd=$RIG_CACHE/iommufd-src/$2 p
	local missing=()
	for p in bc bison flex libelf-dev libssl-dev "${@:4}"; do
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
	log "iommufd: building the kernel${lv:+ $lv}${extra:+ + ${extra##*/}} ($(iof_cc), -j$(nproc), niced; log $3)"
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

# The rules of IOF_FUZZ for source package PKG and patch file NAME: "FILE HUNK MAX-FUZZ" lines
iof_fuzz_rules() { # PKG NAME
	[ -f "$IOF_FUZZ" ] || return 0
	awk -v pkg="$1" -v name="$2" '!/^#/ && NF >= 5 && $1 == pkg && $2 == name { print $3, $4, $5 }' "$IOF_FUZZ"
}
# Hunk N (counted per file, as patch(1) reports it) of FILE in PATCH, split for iof_anchored: line 1 the
# nearest non-blank context line before its added lines, line 2 the nearest one after them, then the added
# lines without the blank lines at either end.  Fails for a hunk that removes lines, whose added lines are
# not one block, that has no non-blank added line, or that is not there.
iof_hunk_split() { # PATCH FILE N
	awk -v file="$2" -v n="$3" '
		function flush() {
			if (!inh) return
			inh = 0
			if (bad || nb == 0) exit 1
			s = 0; e = nb - 1
			while (s <= e && b[s] ~ /^[ \t]*$/) s++
			while (e >= s && b[e] ~ /^[ \t]*$/) e--
			if (s > e) exit 1
			print lead; print trail
			for (i = s; i <= e; i++) print b[i]
			found = 1
		}
		rem > 0 || remn > 0 {
			c = substr($0, 1, 1); t = substr($0, 2)
			if (c == "\\") next
			if (c == " ") { rem--; remn--; if (inh) { if (nb == 0) { if (t !~ /^[ \t]*$/) lead = t } else { if (trail == "" && t !~ /^[ \t]*$/) trail = t; after = 1 } } }
			else if (c == "-") { rem--; if (inh) bad = 1 }
			else if (c == "+") { remn--; if (inh) { if (after) bad = 1; b[nb++] = t } }
			if (rem <= 0 && remn <= 0) flush()
			next
		}
		/^\+\+\+ / { cur = $2; sub(/^b\//, "", cur); h = 0; next }
		/^@@ / {
			split($2, o, ","); split($3, w, ",")
			rem = (o[2] == "" ? 1 : o[2]) + 0; remn = (w[2] == "" ? 1 : w[2]) + 0
			if (cur == file && ++h == n) { inh = 1; lead = ""; trail = ""; nb = 0; bad = 0; after = 0 }
		}
		END { if (!found) exit 1 }' "$1"
}
# How many times FILE has the added lines of SPLIT (iof_hunk_split's output) next to one of their anchors:
# the nearest non-blank line before them is the leading one, or the nearest after them the trailing one
iof_anchored() { # SPLIT FILE
	[ -f "$2" ] || { echo 0; return; }
	awk 'FNR == NR { if (FNR == 1) lead = $0; else if (FNR == 2) trail = $0; else b[nb++] = $0; next }
		{ l[nl++] = $0 }
		END {
			c = 0
			for (i = 0; i + nb <= nl; i++) {
				for (j = 0; j < nb && l[i + j] == b[j]; j++) ;
				if (j < nb) continue
				for (p = i - 1; p >= 0 && l[p] ~ /^[ \t]*$/; p--) ;
				for (q = i + nb; q < nl && l[q] ~ /^[ \t]*$/; q++) ;
				if ((lead != "" && p >= 0 && l[p] == lead) || (trail != "" && q < nl && l[q] == trail)) c++
			}
			print c
		}' "$1" "$2"
}
# Applies the PATCHes in order to SRC, the source of package PKG (log to LOG).  Exact context (patch
# --fuzz=0, offsets allowed) except for the hunks IOF_FUZZ allows for PKG and the patch's file name, each up
# to its maximum fuzz; a hunk applied with fuzz that no rule allows fails, and so does an allowed hunk whose
# added lines do not sit next to one of their own context lines afterwards (iof_hunk_split: the nearest
# non-blank one before or after them; counted before and after the patch, it must be one more): a fuzzy
# match that lands somewhere else is a conflict, not a context change.  Returns 1 with IOF_WHY (naming the
# log as WHERE, its path once kept).
iof_apply() { # SRC LOG WHERE PKG PATCH...
	local p name rules fuzz out rc f n k line cur ok
	local -a rf rn rk rb
	for p in "${@:5}"; do
		name=${p##*/}
		rules=$(iof_fuzz_rules "$4" "$name")
		fuzz=0 rf=() rn=() rk=() rb=()
		while read -r f n k; do
			[ -n "$f" ] || continue
			[ "$k" -gt "$fuzz" ] && fuzz=$k
			if ! iof_hunk_split "$p" "$f" "$n" > "$2.hunk${#rf[@]}"; then
				IOF_WHY="$name: the fuzz rule for hunk $n of $f ($IOF_FUZZ) names no hunk that only adds one block of lines (see $3)"
				echo "== $IOF_WHY" >> "$2"
				return 1
			fi
			rb+=("$(iof_anchored "$2.hunk${#rf[@]}" "$1/$f")")
			rf+=("$f") rn+=("$n") rk+=("$k")
		done <<< "$rules"
		echo "== patch -p1 < $p" >> "$2"
		[ "$fuzz" = 0 ] || echo "== $name: fuzz allowed up to $fuzz (${IOF_FUZZ##*/}: ${rules//$'\n'/; })" >> "$2"
		out=$(patch -p1 -d "$1" --no-backup-if-mismatch --fuzz="$fuzz" < "$p" 2>&1)
		rc=$?
		printf '%s\n' "$out" >> "$2"
		if [ "$rc" != 0 ]; then
			IOF_WHY="$name does not apply$([ "$fuzz" = 0 ] && echo " with exact context" || echo " (fuzz up to $fuzz)") (see $3)"
			return 1
		fi
		# every fuzzy hunk must be allowed
		cur=
		while IFS= read -r line; do
			case $line in
			"patching file "*) cur=${line#patching file } ;;
			"Hunk #"*" with fuzz "*)
				n=${line#Hunk #} n=${n%% *} k=${line##* with fuzz } k=${k%%[!0-9]*}
				ok=
				for f in "${!rf[@]}"; do
					[ "${rf[$f]}" = "$cur" ] && [ "${rn[$f]}" = "$n" ] && [ "$k" -le "${rk[$f]}" ] && ok=1
				done
				if [ -z "$ok" ]; then
					IOF_WHY="$name: hunk $n of $cur applied only with fuzz $k, which ${IOF_FUZZ#"$TOP"/} does not allow for $4 (see $3)"
					echo "== $IOF_WHY" >> "$2"
					return 1
				fi ;;
			esac
		done <<< "$out"
		# every allowed hunk sits next to its own context
		for f in "${!rf[@]}"; do
			k=$(iof_anchored "$2.hunk$f" "$1/${rf[$f]}")
			echo "== $name: hunk ${rn[$f]} of ${rf[$f]}: its lines next to their context $k time(s), before the patch ${rb[$f]}" >> "$2"
			if [ "$k" != $((rb[f] + 1)) ]; then
				IOF_WHY="$name: hunk ${rn[$f]} of ${rf[$f]} (fuzz allowed by ${IOF_FUZZ#"$TOP"/}) did not land next to its own context lines: a conflict (see $3)"
				echo "== $IOF_WHY" >> "$2"
				return 1
			fi
			rm -f "$2.hunk$f"
		done
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
# OUT (renamed from OUT.tmp on success).  PKG: the source package (iof_apply's fuzz rules).  Returns 1 with
# IOF_WHY, the log in OUT.failed.
iof_build_patched_in() { # SRC OUT INCREMENTAL(0|1) PKG
	local src=$1 out=$2 t0
	t0=$(now_ms)
	rm -rf "$out.tmp" "$out.failed"
	mkdir -p "$out.tmp"
	local kp=()
	mapfile -t kp < <(iof_patched_patches)
	if ! iof_apply "$src" "$out.tmp/patch.log" "$out.failed/patch.log" "$4" "${kp[@]}"; then
		iof_failed "$out.tmp" "$out.failed"
		return 1
	fi
	if [ "$3" = 1 ]; then
		log "iommufd: building the patched kernel incrementally (log $out.tmp/build.log)"
		iof_make "$src" "$IOF_PATCHED_LV" -j"$(nproc)" bzImage modules >> "$out.tmp/build.log" 2>&1
	else
		iof_make_all "$src" "$IOF_PATCHED_LV" "$out.tmp/build.log"
	fi || {
		IOF_WHY="patched kernel build failed (see $out.failed/build.log)"
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
		iof_failed "$out.tmp" "$out.failed"
		return 1
	}
	iof_collect "$src" "$IOF_PATCHED_LV" "$out.tmp" || {
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
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
		iof_build_patched_in "$src" "$d.tmp/${pd##*/}" 1 "$pkg" || IOF_PATCHED_WHY=$IOF_WHY
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
	iof_build_patched_in "$3.src/x" "$3" 0 "$1"
	rc=$?
	rm -rf "$3.src"
	return $rc
}

# The selftest kernel (on request) into OUT: extract (libcap-dev: the static selftest), apply every patch of
# the series, configure with IOF_SELFTEST_FRAGMENT, a full build, collect, build the selftest (renamed from
# OUT.tmp on success; the tree in OUT.src is removed).  Returns 1/2 with IOF_WHY, the log in OUT.failed.
iof_build_selftest() { # PKG SRCVER OUT
	local out=$3 src=$3.src/x t0 rc p=() f
	IOF_WHY=
	t0=$(now_ms)
	for f in "$IOF_PATCH_DIR"/*.patch; do [ -e "$f" ] && p+=("$f"); done
	rm -rf "$out.tmp" "$out.failed"
	iof_extract "$1" "$2" "$out.src" libcap-dev || { rc=$?; rm -rf "$out.src"; return $rc; }
	mkdir -p "$out.tmp"
	rc=0
	if ! iof_apply "$src" "$out.tmp/patch.log" "$out.failed/patch.log" "$1" "${p[@]}"; then
		rc=1
	elif ! iof_make_all "$src" "$IOF_PATCHED_LV" "$out.tmp/build.log" "$IOF_SELFTEST_FRAGMENT"; then
		IOF_WHY="selftest kernel build failed (see $out.failed/build.log)"
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
		rc=1
	elif ! iof_collect "$src" "$IOF_PATCHED_LV" "$out.tmp" "$IOF_SELFTEST_FRAGMENT"; then
		cp "$src/.config" "$out.tmp/config" 2> /dev/null
		rc=1
	elif ! iof_selftest "$src" "$out.tmp"; then
		rc=1
	fi
	rm -rf "$out.src"
	if [ "$rc" != 0 ]; then
		iof_failed "$out.tmp" "$out.failed"
		return 1
	fi
	log "iommufd: selftest kernel build $(( $(now_ms) - t0 )) ms (full)"
	echo "build_ms=$(( $(now_ms) - t0 )) incremental=0" > "$out.tmp/timing"
	rm -rf "$out"
	mv "$out.tmp" "$out"
}

# The modules cpio segment of a build in DIR: its modules as the module set SET (stock, patched or selftest;
# DIR/mods.cpio.gz, for selftest DIR/mods-selftest.cpio.gz with the series' list and its selftest).
iof_mods_cpio() { # DIR SET
	local d=$1 st=$1/mods.stage m out=$1/mods.cpio.gz order=
	[ "$2" = selftest ] && out=$1/mods-selftest.cpio.gz
	[ -f "$out" ] && return 0
	rm -rf "$st"
	mkdir -p "$st/lib/modules/rig/$2"
	for m in $IOF_ORDER; do
		[ -f "$d/ko/$m.ko" ] || continue
		cp "$d/ko/$m.ko" "$st/lib/modules/rig/$2/"
		order="$order var:$m"
	done
	strip --strip-debug "$st"/lib/modules/rig/"$2"/*.ko
	if [ "$2" = selftest ]; then
		# the patches it was built from, one file name a line (from its patch.log: iommufd-selftest tells
		# the whole series from the selftest patch alone by it), and the series' selftest (iof_selftest)
		sed -n 's|^== patch -p1 < .*/||p' "$d/patch.log" > "$st/lib/modules/rig/$2/series"
		mkdir -p "$st${IOF_SELFTEST_GUEST%/*}"
		cp "$d/selftest/iommufd" "$st$IOF_SELFTEST_GUEST"
	fi
	echo "${order# }" > "$st/lib/modules/rig/order"
	# vdpa_sim of >= 6.13 refuses max_iotlb_entries < 2 (the runner passes 0 = unlimited, as 6.12 has it)
	echo "vdpa_sim max_iotlb_entries=2048" > "$st/lib/modules/rig/params"
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$out.tmp" &&
		mv "$out.tmp" "$out"
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
	FL_PATCHED=none FL_PATCHED_WHY="no patches in ${IOF_PATCH_DIR#"$TOP"/} or ${IOF_VDPA_PATCH_DIR#"$TOP"/} (patched == stock)"
	if [ -z "$(iof_patched_patches)" ] && ls "$IOF_PATCH_DIR"/*.patch > /dev/null 2>&1; then
		FL_PATCHED_WHY="no patch in ${IOF_PATCH_DIR#"$TOP"/} changes the kernel image, only tools/testing/, and ${IOF_VDPA_PATCH_DIR#"$TOP"/} has none (patched == stock)"
	fi
	IOF_D='' IOF_PKG='' IOF_VER=''
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
	# for flavour_prepare_selftest
	IOF_D=$d IOF_PKG=$pkg IOF_VER=$ver
	local old
	for old in $(ls -1dt "$RIG_CACHE"/iommufd-*/built 2> /dev/null | tail -n +3); do
		log "iommufd: removing old build ${old%/built}"
		rm -rf "${old%/built}"
	done
	FL_KVER=$(cat "$d/kver")
	FL_KERNEL=$d/bzImage
	FL_QEMU_ARGS=("${IOF_QEMU_ARGS[@]}")
	# 7.3 caps vhost-vdpa's IOTLB (and vdpa_sim's) at 2048 entries per address space; in PA mode each
	# physically contiguous run of pinned pages is an entry, so 16 MiB of guest RAM in 4 KiB memfd pages needs
	# up to 4096 and its map fails (write(): EFAULT) when the pages come back fragmented (the intermittent
	# b1 failure of iommufd-update-mixed-patched, 2026-12-03): the rig's guests map up to 64 MiB in PA mode
	FL_MOD_PARAMS=$'vhost_vdpa max_iotlb_entries=16384\nvdpa_sim max_iotlb_entries=16384'
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
			log "iommufd: the patched kernel ${IOF_PATCH_DIR#"$TOP"/} + ${IOF_VDPA_PATCH_DIR#"$TOP"/} ($h): a full build (the stock tree is not kept)"
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
		iof_prune "$d" patched
	fi
	return 0
}

# Keep the 2 most recently used KIND (patched, selftest) builds of the stock build in DIR.
iof_prune() { # DIR KIND
	local old
	for old in $(ls -1t "$1/$2"-*/bzImage 2> /dev/null | tail -n +3); do
		old=${old%/bzImage}
		log "iommufd: removing old $2 build $old"
		rm -rf "$old" "$old.failed"
	done
}

# The selftest kernel, on request (rig.sh's load_selftest, for `modules: selftest` scenarios, after
# flavour_prepare and under the same lock): cached in DIR/selftest-<shash>, else a full build (~17 min).
# Sets FL_SELFTEST (yes/failed), FL_SELFTEST_WHY, FL_SELFTEST_KERNEL FL_SELFTEST_MODS_CPIO FL_SELFTEST_KVER.
flavour_prepare_selftest() {
	local h sd
	FL_SELFTEST=failed FL_SELFTEST_WHY=
	if [ -z "$IOF_D" ]; then
		FL_SELFTEST_WHY="the iommufd flavour is not prepared"
		return 1
	fi
	h=$(iof_selftest_hash "${IOF_D##*/iommufd-}")
	if [ "$h" = none ]; then
		FL_SELFTEST_WHY="no patches in ${IOF_PATCH_DIR#"$TOP"/}"
		return 1
	fi
	sd=$IOF_D/selftest-$h
	if [ -f "$sd/bzImage" ]; then
		FL_SELFTEST=yes
	elif [ -f "$sd.failed/failed" ] && [ "${VLUD_RIG_REBUILD:-0}" != 1 ]; then
		FL_SELFTEST_WHY="$(cat "$sd.failed/failed") (failed before; VLUD_RIG_REBUILD=1 retries)"
	else
		log "iommufd: the selftest kernel ${IOF_PATCH_DIR#"$TOP"/} ($h): a full build (on request; ~17 min on 2 cores)"
		iof_build_selftest "$IOF_PKG" "$IOF_VER" "$sd"
		case $? in
		0) FL_SELFTEST=yes ;;
		2) FL_SELFTEST_WHY=$IOF_WHY ;; # a missing dependency or download: not cached as a failed build
		*) FL_SELFTEST_WHY=$IOF_WHY; mkdir -p "$sd.failed" && echo "$IOF_WHY" > "$sd.failed/failed" ;;
		esac
	fi
	if [ "$FL_SELFTEST" = yes ]; then
		touch "$sd/bzImage"
		iof_mods_cpio "$sd" selftest
		FL_SELFTEST_KERNEL=$sd/bzImage
		FL_SELFTEST_MODS_CPIO=$sd/mods-selftest.cpio.gz
		FL_SELFTEST_KVER=$(cat "$sd/kver")
	fi
	iof_prune "$IOF_D" selftest
	[ "$FL_SELFTEST" = yes ]
}
