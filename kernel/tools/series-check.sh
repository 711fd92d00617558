#!/bin/bash
# series-check.sh - every prefix of kernel/patches builds out of tree with W=1 (no warning), and every patch
# passes checkpatch.pl --strict.  Uses the rig's cached extraction of linux-source-6.12 and its headers
# (~/.cache/vlud/rig/debian/<kver>/, made by `make vm-check`); checkpatch.pl comes from the cached
# linux-source .deb.  Work directory: $SERIES_CHECK_DIR (default /tmp/vlud-series-check).
#   kernel/tools/series-check.sh            all prefixes + checkpatch
#   kernel/tools/series-check.sh --last     only the full series + checkpatch
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
K=$(ls -d "$HOME"/.cache/vlud/rig/debian/*-amd64 | tail -1)
kver=${K##*/}; kabi=${kver%-amd64}
W=${SERIES_CHECK_DIR:-/tmp/vlud-series-check}
rm -rf "$W"; mkdir -p "$W/cp"
cp -a "$K/src" "$W/linux"
git -C "$W/linux" init -q
git -C "$W/linux" -c user.name=x -c user.email=x@x add -A
git -C "$W/linux" -c user.name=x -c user.email=x@x commit -qm base
base=$(git -C "$W/linux" rev-parse HEAD)
git -C "$W/linux" -c user.name=x -c user.email=x@x am -q "$TOP"/kernel/patches/*.patch
dpkg-deb --fsys-tarfile "$K"/debs/linux-source-*.deb | tar -xO --wildcards '*/linux-source-*.tar.xz' |
	tar -xJ -C "$W/cp" --strip-components=1 --wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
fail=0
build() { # REV
	local b=$W/b
	rm -rf "$b"; mkdir -p "$b/src" "$b/oot"
	git -C "$W/linux" archive "$1" | tar -x -C "$b/src"
	cp -al "$K/hdr" "$b/hdr"
	local common=$b/hdr/usr/src/linux-headers-$kabi-common flav=$b/hdr/usr/src/linux-headers-$kver f
	for f in include/uapi/linux/vhost.h include/uapi/linux/vhost_types.h include/linux/vdpa.h \
		include/linux/vhost_iotlb.h; do cp --remove-destination "$b/src/$f" "$common/$f"; done
	cp --remove-destination "$K/hdr/usr/src/linux-headers-$kver/Makefile" "$flav/Makefile"
	sed -i "s#^include .*/linux-headers-$kabi-common/#include $common/#" "$flav/Makefile"
	for f in drivers/vhost/vhost.c drivers/vhost/vhost.h drivers/vhost/vdpa.c drivers/vhost/vringh.c \
		drivers/vdpa/vdpa_sim/vdpa_sim.c drivers/vdpa/vdpa_sim/vdpa_sim.h drivers/vdpa/vdpa_sim/vdpa_sim_net.c; do
		cp "$b/src/$f" "$b/oot/"; done
	printf 'obj-m += vhost.o vhost_vdpa.o vringh.o vdpa_sim.o vdpa_sim_net.o\nvhost_vdpa-y := vdpa.o\n' > "$b/oot/Kbuild"
	if ! env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL make -C "$flav" M="$b/oot" \
		CC="$(command -v gcc-12 || echo gcc)" W=1 -j"$(nproc)" CONFIG_DEBUG_INFO_BTF_MODULES= modules > "$b/log" 2>&1; then
		echo "not ok - build $(git -C "$W/linux" log -1 --format=%s "$1")"; grep -E 'error' "$b/log" | head; fail=1; return
	fi
	if grep -q 'warning:' "$b/log"; then
		echo "not ok - build $(git -C "$W/linux" log -1 --format=%s "$1"): warnings"; grep 'warning:' "$b/log" | head; fail=1
	else
		echo "ok - build W=1: $(git -C "$W/linux" log -1 --format=%s "$1")"
	fi
}
revs=$(git -C "$W/linux" rev-list --reverse "$base"..HEAD)
[ "${1:-}" = --last ] && revs=$(git -C "$W/linux" rev-parse HEAD)
for r in $revs; do build "$r"; done
for p in "$TOP"/kernel/patches/*.patch; do
	out=$(perl "$W/cp/scripts/checkpatch.pl" --strict --no-tree "$p" 2>&1 || true)
	if echo "$out" | grep -q '^total: 0 errors, 0 warnings, 0 checks'; then
		echo "ok - checkpatch --strict: ${p##*/}"
	else
		echo "not ok - checkpatch --strict: ${p##*/}"; echo "$out" | grep -E '^(ERROR|WARNING|CHECK)' | head; fail=1
	fi
done
exit $fail
