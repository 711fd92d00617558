#!/bin/bash
# build-deb.sh - build the Debian binary packages of this tree into OUTDIR (what `make deb` runs).
#
#   bash scripts/build-deb.sh OUTDIR
#
# dpkg-buildpackage writes debian/build, debian/tmp, debian/<package>/, debian/files ... next to the
# sources and the .deb files into the parent directory, so it runs on a copy: OUTDIR/src/vlud-VERSION/,
# made of the files git knows (tracked or untracked, not ignored: uncommitted changes are packaged),
# or of the whole tree without build outputs when this is no git checkout.  The packages, the debug
# symbol packages (*-dbgsym, in OUTDIR/dbgsym/), .buildinfo and .changes end up in OUTDIR; the copy is removed after a
# successful build (kept with VLU_KEEP_TMP=1, and always after a failure, for a look).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: build-deb.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for tool in dpkg-buildpackage dpkg-checkbuilddeps dh; do
	if ! command -v "$tool" >/dev/null; then
		echo "build-deb: $tool is missing: run 'make deps' (scripts/install-deps.sh) as root first" >&2
		exit 1
	fi
done

if ! (cd "$TOP" && dpkg-checkbuilddeps) 2>"$OUT/checkbuilddeps.err"; then
	cat "$OUT/checkbuilddeps.err" >&2
	echo "build-deb: run 'make deps' (scripts/install-deps.sh) as root first" >&2
	exit 1
fi
rm -f "$OUT/checkbuilddeps.err"

version=$(cd "$TOP" && dpkg-parsechangelog -S Version)
mkversion=$(sed -n 's/^VERSION *:= *//p' "$TOP/Makefile")
if [ "$version" != "$mkversion" ]; then
	echo "build-deb: debian/changelog says $version, the Makefile's VERSION $mkversion: add a changelog entry (dch -v $mkversion)" >&2
	exit 1
fi

SRC=$OUT/src
rm -rf "$SRC"
mkdir -p "$SRC/vlud-$version"
if git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked (minus deleted ones) and untracked-but-not-ignored files
	(cd "$TOP" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -C "$SRC/vlud-$version" -xf -
else
	tar -C "$TOP" --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . | tar -C "$SRC/vlud-$version" -xf -
fi

rm -f "$OUT"/*.deb "$OUT"/*.buildinfo "$OUT"/*.changes
echo "build-deb: dpkg-buildpackage -us -uc -b in $SRC/vlud-$version (log: $OUT/build.log)"
# Not a sub-make: `make deb O=...` would pass O (and -j, ...) through MAKEFLAGS to debian/rules.
if ! (cd "$SRC/vlud-$version" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	dpkg-buildpackage -us -uc -b -Jauto) >"$OUT/build.log" 2>&1; then
	tail -n 30 "$OUT/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed; full log $OUT/build.log, build tree $SRC/vlud-$version" >&2
	exit 1
fi
shopt -s nullglob
# debug symbols apart, so that `apt-get install ./OUTDIR/*.deb` installs the four packages only
mkdir -p "$OUT/dbgsym"
rm -f "$OUT"/dbgsym/*
mv "$SRC"/*-dbgsym_* "$OUT"/dbgsym/
mv "$SRC"/*.deb "$SRC"/*.buildinfo "$SRC"/*.changes "$OUT"/
[ -n "${VLU_KEEP_TMP:-}" ] || rm -rf "$SRC"
cd "$OUT" && ls -1 ./*.deb | sed 's|^\./|build-deb: |'
