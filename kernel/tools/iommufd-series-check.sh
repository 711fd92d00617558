#!/bin/bash
# iommufd-series-check.sh - every prefix of kernel/iommufd/patches builds drivers/iommu/iommufd/ with W=1
# and the iommu selftest (tools/testing/selftests/iommu/iommufd, patch 3; its Makefile's flags, the uapi
# headers of `make headers`) without a warning the unpatched source does not have, and every patch passes
# checkpatch.pl --strict (from the same source).  The tree is the rig's iommufd flavour's: Debian's linux-source-7.3 from the
# rig's cached .deb (~/.cache/vlud/rig/iommufd-src/, made by `make vm-check`), tinyconfig +
# tests/vm/flavours/iommufd.config.
#   kernel/tools/iommufd-series-check.sh          all prefixes + checkpatch
#   kernel/tools/iommufd-series-check.sh --last   only the full series + checkpatch
# Environment:
#   IOF_TREE          an extracted, configured tree to build in (e.g. a kernel build tree of the same
#                     source and configuration: only drivers/iommu/iommufd/ is rebuilt and `make headers`
#                     run, and drivers/iommu/iommufd/ and tools/testing/selftests/iommu/ are put back to
#                     the unpatched files at the end); default: extract and configure one in the work dir
#                     (about 1 GB, `make prepare headers` only)
#   IOF_LV            LOCALVERSION of that tree's build (the flavour's patched one: -patched)
#   LINUX_GIT         a clone of linux.git: checkpatch then also verifies the Fixes: commit ids (without
#                     one it cannot, and UNKNOWN_COMMIT_ID is ignored)
#   SERIES_CHECK_DIR  work directory (default /tmp/vlud-iommufd-series-check)
# Run it at autogroup nice 19 on a shared machine (docs/RIG.md).
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
P=$TOP/kernel/iommufd/patches
W=${SERIES_CHECK_DIR:-/tmp/vlud-iommufd-series-check}
CC=$(command -v gcc-12 || command -v gcc)
LV=${IOF_LV:-}
deb=$(ls -1 "$HOME"/.cache/vlud/rig/iommufd-src/*/linux-source-*_all.deb 2> /dev/null | sort -V | tail -1)
[ -n "$deb" ] || { echo "no linux-source .deb in ~/.cache/vlud/rig/iommufd-src (run make vm-check first)" >&2; exit 2; }
rm -rf "$W"
mkdir -p "$W"
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL make -C "$T" ARCH=x86_64 CC="$CC" HOSTCC="$CC" \
	LOCALVERSION="$LV" "$@"; }
if [ -n "${IOF_TREE:-}" ]; then
	T=$IOF_TREE
else
	T=$W/linux
	mkdir -p "$T"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*/linux-source-*.tar.xz' | tar -xJ -C "$T" --strip-components=1
	mk tinyconfig > "$W/prepare.log" 2>&1
	(cd "$T" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$TOP/tests/vm/flavours/iommufd.config") >> "$W/prepare.log" 2>&1
	mk olddefconfig >> "$W/prepare.log" 2>&1
	mk -j"$(nproc)" prepare >> "$W/prepare.log" 2>&1
fi
# the uapi headers the selftest includes (usr/include)
mk headers >> "$W/prepare.log" 2>&1
# the series in a git repository of the subset it touches, from the .deb (IOF_TREE may hold patched files)
G=$W/git
SUB=(drivers/iommu/iommufd tools/testing/selftests/iommu)
mkdir -p "$G"
dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*/linux-source-*.tar.xz' |
	tar -xJ -C "$G" --strip-components=1 --wildcards '*/drivers/iommu/iommufd/*' '*/tools/testing/selftests/iommu/*'
g() { git -C "$G" -c user.name=x -c user.email=x@x "$@"; }
g init -q
g add -A
g commit -qm base
base=$(g rev-parse HEAD)
g am -q "$P"/*.patch
fail=0
# warnings of a build, without line and column numbers (a patch moves the base's lines): the kernel part
# with W=1, then the iommu selftest with its own Makefile (-Wall) into LOG.st/
build() { # REV LOG
	g archive "$1" "${SUB[@]}" | tar -x -C "$T"
	touch "$T"/drivers/iommu/iommufd/*.c
	mk W=1 -j"$(nproc)" drivers/iommu/iommufd/ > "$2" 2>&1 || return 1
	rm -rf "$2.st"
	mkdir -p "$2.st"
	env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL make -C "$T/tools/testing/selftests/iommu" \
		CC="$CC" OUTPUT="$2.st" "$2.st/iommufd" >> "$2" 2>&1 || return 1
	grep 'warning:' "$2" | sed -E 's/:[0-9]+:[0-9]+:/:/' | sort -u > "$2.w" || true
}
if ! build "$base" "$W/base.log"; then
	echo "not ok - the unpatched drivers/iommu/iommufd/ or iommu selftest does not build (see $W/base.log)"
	exit 1
fi
echo "# base: $(wc -l < "$W/base.log.w") W=1 warning(s) of the unpatched source (ignored)"
revs=$(g rev-list --reverse "$base"..HEAD)
[ "${1:-}" = --last ] && revs=$(g rev-parse HEAD)
n=0
for r in $revs; do
	n=$((n + 1))
	s=$(g log -1 --format=%s "$r")
	if ! build "$r" "$W/p$n.log"; then
		echo "not ok - build W=1 + selftest: $s"
		grep -E 'error' "$W/p$n.log" | head
		fail=1
	elif new=$(comm -13 "$W/base.log.w" "$W/p$n.log.w") && [ -n "$new" ]; then
		echo "not ok - build W=1 + selftest: $s: new warnings"
		echo "$new" | head
		fail=1
	else
		echo "ok - build W=1 + selftest: $s"
	fi
done
# the tree back to the unpatched files
g archive "$base" "${SUB[@]}" | tar -x -C "$T"
touch "$T"/drivers/iommu/iommufd/*.c
ign=(--ignore UNKNOWN_COMMIT_ID)
[ -n "${LINUX_GIT:-}" ] && ign=()
for p in "$P"/*.patch; do
	out=$(cd "${LINUX_GIT:-$W}" && perl "$T/scripts/checkpatch.pl" --strict --no-tree "${ign[@]}" "$p" 2>&1 || true)
	if echo "$out" | grep -q '^total: 0 errors, 0 warnings, 0 checks'; then
		echo "ok - checkpatch --strict${ign[*]:+ (${ign[*]})}: ${p##*/}"
	else
		echo "not ok - checkpatch --strict: ${p##*/}"
		echo "$out" | grep -E '^(ERROR|WARNING|CHECK)' | head
		fail=1
	fi
done
exit $fail
