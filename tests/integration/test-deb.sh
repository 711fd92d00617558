#!/bin/bash
# test-deb.sh - the Debian packages: `make deb` into a temporary O builds them with Debian's tooling and
# leaves the source tree as it was; each package holds exactly the expected files; the conffile, the
# maintainer scripts debhelper generated (sysusers before the units; the socket never restarted on
# upgrade) and libvlu0's symbols file are there; lintian reports no error or warning (every overridden
# tag carries a comment in debian/*.lintian-overrides); the packaged man pages render without warnings;
# and, unpacked with dpkg-deb -x (never installed: that would start a daemon on this machine), the units
# sit in systemd's unit search path and pass `systemd-analyze verify`, systemd-sysusers --root finds
# sysusers.d/vlud.conf and creates the group, and the packaged vlud accepts the packaged configuration.
#   VLU_TOP=. bash tests/integration/test-deb.sh          (root when packages are missing: it installs them)
S=integ-deb
. "$(dirname "$0")/lib.sh"

if [ "${SANITIZE:-0}" = 1 ]; then
	# the packages are built by dpkg-buildpackage with Debian's flags whatever SANITIZE says: the plain
	# `make check-host` runs this test, the sanitizer pass would only build the same packages again
	echo "ok - $S/all # SKIP SANITIZE=1: the packages do not depend on it; run by the plain check-host"
	exit 0
fi

# ---- the tools: installed here if missing (tests/integration/apt-packages lists them) ----
need_tools() {
	local c
	for c in dpkg-buildpackage dh dh_installsysusers lintian man groff systemd-analyze systemd-sysusers; do
		command -v "$c" >/dev/null || return 1
	done
	return 0
}
if ! need_tools; then
	echo "# packaging tools missing: running scripts/install-deps.sh"
	bash "$TOP/scripts/install-deps.sh" 2>&1 | diag
fi
if ! need_tools; then
	notok preconditions "packaging tools still missing after scripts/install-deps.sh (needs root)"
	exit 1
fi
ok preconditions

# debian/rules runs the install targets by name (two `make` runs, see there): it must run every one
# `make install` runs, or a new one would be missing from the packages without dh_missing noticing
targets=$(make -C "$TOP" -pnq 2>/dev/null | sed -n 's/^INSTALL_TARGETS := //p')
missing=
for t in $targets; do grep -q -E -- " $t( |$)" "$TOP/debian/rules" || missing="$missing $t"; done
if [ -n "$targets" ] && [ -z "$missing" ]; then
	ok "rules-run-every-install-target ($(echo $targets | wc -w))"
else
	notok rules-run-every-install-target "not in debian/rules:${missing:- (no INSTALL_TARGETS found)}"
fi

# ---- make deb ----
O=$T/o
status_before=$(git -C "$TOP" status --porcelain --ignored 2>/dev/null)
start=$(date +%s)
if make -s -C "$TOP" --no-print-directory O="$O" deb >"$T/make-deb.log" 2>&1; then
	ok "make-deb ($(($(date +%s) - start)) s)"
else
	notok make-deb "$(tail -5 "$T/make-deb.log" | tr '\n' ' ')"
	diag "$T/make-deb.log"
	exit 1
fi
if git -C "$TOP" rev-parse >/dev/null 2>&1; then
	status_after=$(git -C "$TOP" status --porcelain --ignored 2>/dev/null)
	if [ "$status_before" = "$status_after" ]; then
		ok source-tree-untouched
	else
		notok source-tree-untouched "git status changed: $(diff <(echo "$status_before") <(echo "$status_after") | grep '^[<>]' | head -5 | tr '\n' ' ')"
	fi
fi
[ ! -e "$O/deb/src" ] && ok build-copy-removed || notok build-copy-removed "$O/deb/src left behind"

D=$O/deb
VERSION=$(sed -n 's/^VERSION *:= *//p' "$TOP/Makefile")
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd)
PKGS=(vlud libvlu0 libvlu-dev vlud-minivmm)

# ---- contents: exactly these files (dpkg-deb -c; directories left out) ----
declare -A FILES
FILES[vlud]="/etc/vlud/vlud.conf $UNITDIR/vlud.service $UNITDIR/vlud.socket /usr/bin/vluctl
	/usr/lib/sysusers.d/vlud.conf /usr/sbin/vlud /usr/share/doc/vlud/CONFIG.md.gz
	/usr/share/doc/vlud/changelog.gz /usr/share/doc/vlud/copyright /usr/share/lintian/overrides/vlud
	/usr/share/man/man1/vluctl.1.gz /usr/share/man/man5/vlud.conf.5.gz /usr/share/man/man8/vlud.8.gz
	/usr/share/vlud/demo.conf"
FILES[libvlu0]="/usr/lib/$MA/libvlu.so.0 /usr/lib/$MA/libvlu.so.0.1.0 /usr/share/doc/libvlu0/changelog.gz
	/usr/share/doc/libvlu0/copyright /usr/share/lintian/overrides/libvlu0"
FILES[libvlu-dev]="/usr/include/vlu.h /usr/lib/$MA/libvlu.so /usr/lib/$MA/pkgconfig/libvlu.pc
	/usr/share/doc/libvlu-dev/changelog.gz /usr/share/doc/libvlu-dev/copyright
	/usr/share/lintian/overrides/libvlu-dev /usr/share/man/man3/libvlu.3.gz
	$(sed -n 's|^[[:space:]]*\(vlu_[a-z_]*\);|/usr/share/man/man3/\1.3.gz|p' "$TOP/clients/libvlu/libvlu.sym")"
FILES[vlud-minivmm]="/usr/bin/minivmm /usr/share/doc/vlud-minivmm/changelog.gz
	/usr/share/doc/vlud-minivmm/copyright /usr/share/lintian/overrides/vlud-minivmm
	/usr/share/man/man1/minivmm.1.gz"

debs=()
for p in "${PKGS[@]}"; do
	deb=$D/${p}_${VERSION}_${ARCH}.deb
	if [ ! -f "$deb" ]; then
		notok "$p/built" "no $deb"
		continue
	fi
	debs+=("$deb")
	got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' | sort)
	want=$(printf '%s\n' ${FILES[$p]} | sort)
	if [ "$got" = "$want" ]; then
		ok "$p/contents ($(echo "$got" | wc -l) files)"
	else
		notok "$p/contents" "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^</missing/; s/^>/extra/' | head -6 | tr '\n' ' ')"
	fi
done
n=$(ls "$D"/*.deb 2>/dev/null | wc -l)
[ "$n" = 4 ] && ok "four-packages-in-O/deb" || notok "four-packages-in-O/deb" "$n .deb files (debug symbols belong in dbgsym/)"
[ "$(ls "$D"/dbgsym/*-dbgsym_*.deb 2>/dev/null | wc -l)" = 3 ] && ok dbgsym-apart || notok dbgsym-apart "$(ls "$D/dbgsym" 2>&1 | tr '\n' ' ')"

# ---- control data ----
ctl() { dpkg-deb --ctrl-tarfile "$D/${1}_${VERSION}_${ARCH}.deb" | tar -xOf - "./$2" 2>/dev/null; }
field() { dpkg-deb -f "$D/${1}_${VERSION}_${ARCH}.deb" "$2"; }
check vlud/conffile "conffiles: $(ctl vlud conffiles | tr '\n' ' ')" test "$(ctl vlud conffiles)" = /etc/vlud/vlud.conf
ctl vlud postinst >"$T/postinst"
ctl vlud prerm >"$T/prerm"
# debhelper's snippets only: every command line of the scripts comes from an "Automatically added" section
check vlud/scripts-by-debhelper-only "hand-written lines in the maintainer scripts" \
	test -z "$(for f in postinst prerm; do sed '/^# Automatically added/,/^# End automatically added/d' "$T/$f" | grep -v -E '^(#|set -e$|$)'; done)"
line() { grep -n -m1 -- "$1" "$T/postinst" | cut -d: -f1; }
su=$(line 'systemd-sysusers .*vlud.conf')
st=$(line "deb-systemd-invoke start 'vlud.socket'")
check vlud/postinst-sysusers-before-socket "sysusers at line ${su:-none}, socket start at ${st:-none}" \
	test -n "$su" -a -n "$st" -a "${su:-0}" -lt "${st:-0}"
check vlud/postinst-enables-both "enable lines: $(grep -o "helper enable '[^']*'" "$T/postinst" | tr '\n' ' ')" \
	test "$(grep -c -E "deb-systemd-helper enable '(vlud.socket|vlud.service)'" "$T/postinst")" = 2
check vlud/upgrade-restarts-service-only "invoke lines: $(grep -o "invoke [^>]*" "$T/postinst" | tr '\n' ' ')" \
	test "$(grep -o "deb-systemd-invoke [^>]*" "$T/postinst" | tr -s ' ')" = "$(printf "deb-systemd-invoke start 'vlud.socket' \ndeb-systemd-invoke \$_dh_action 'vlud.service' ")"
check vlud/no-stop-on-upgrade "prerm stops outside remove" \
	test -z "$(grep -B3 'deb-systemd-invoke stop' "$T/prerm" | grep 'if \[' | grep -v '"\$1" = remove')"
check vlud/depends-sysusers "Depends: $(field vlud Depends)" grep -q 'systemd | systemd-standalone-sysusers' <<<"$(field vlud Depends)"
check libvlu-dev/depends "Depends: $(field libvlu-dev Depends)" \
	grep -q "libvlu0 (= $VERSION)" <<<"$(field libvlu-dev Depends)"
check libvlu-dev/depends-json-c "Depends: $(field libvlu-dev Depends)" grep -q 'libjson-c-dev' <<<"$(field libvlu-dev Depends)"
for p in libvlu0 libvlu-dev; do
	check "$p/multi-arch-same" "Multi-Arch: $(field $p Multi-Arch)" test "$(field $p Multi-Arch)" = same
done
ctl libvlu0 symbols >"$T/symbols"
missing=
for fn in $(sed -n 's/^[[:space:]]*\(vlu_[a-z_]*\);/\1/p' "$TOP/clients/libvlu/libvlu.sym"); do
	grep -q "^ $fn@LIBVLU_0 " "$T/symbols" || missing="$missing $fn"
done
check libvlu0/symbols "not in the symbols file:$missing" test -z "$missing" -a -s "$T/symbols"
# the source file too: a symbol missing there is only a dpkg-gensymbols warning at build time
src_missing=
for fn in $(sed -n 's/^[[:space:]]*\(vlu_[a-z_]*\);/\1/p' "$TOP/clients/libvlu/libvlu.sym"); do
	grep -q "^ $fn@LIBVLU_0 " "$TOP/debian/libvlu0.symbols" || src_missing="$src_missing $fn"
done
check libvlu0/symbols-source "not in debian/libvlu0.symbols:$src_missing" test -z "$src_missing"
check libvlu0/shlibs "shlibs: $(ctl libvlu0 shlibs)" test "$(ctl libvlu0 shlibs)" = "libvlu 0 libvlu0 (>= $VERSION)"

# ---- lintian ----
lintian -I --pedantic --show-overrides "${debs[@]}" >"$T/lintian.out" 2>"$T/lintian.err"
bad=$(grep -E '^[EW]: ' "$T/lintian.out")
if [ -z "$bad" ] && ! grep -v 'running with root privileges' "$T/lintian.err" | grep -q .; then
	ok "lintian ($(grep -c '^O: ' "$T/lintian.out") overridden, $(grep -c -E '^[IPX]: ' "$T/lintian.out") info/pedantic/experimental)"
else
	notok lintian "$(echo "$bad" | head -5 | tr '\n' ' ') $(head -3 "$T/lintian.err" | tr '\n' ' ')"
fi
diag "$T/lintian.out"
# every override line is preceded by a comment line (its justification)
uncommented=
for f in "$TOP"/debian/*.lintian-overrides; do
	uncommented+=$(awk -v f="$(basename "$f")" '/^#/ { c = 1; next } /^[[:space:]]*$/ { c = 0; next } { if (!c) print " " f ":" NR; }' "$f")
done
check lintian-overrides-justified "override without a comment right above:$uncommented" test -z "$uncommented"

# ---- unpacked: where systemd expects things, and the man pages render ----
R=$T/root
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$R"; done
for pg in man8/vlud.8 man5/vlud.conf.5 man1/vluctl.1 man3/libvlu.3 man1/minivmm.1; do
	f=$R/usr/share/man/$pg.gz
	if [ ! -f "$f" ]; then
		notok "man/$pg" "not packaged"
		continue
	fi
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >"$T/man.txt")
	if [ -z "$w" ] && [ -s "$T/man.txt" ]; then ok "man/$pg"; else notok "man/$pg" "$(echo "$w" | head -3 | tr '\n' ' ')"; fi
done
w=$(LC_ALL=C.UTF-8 man --warnings -l "$R/usr/share/man/man3/vlu_connect.3.gz" 2>&1 >"$T/man.txt")
check man/vlu_connect.3-link "${w:-empty}" test -z "$w" -a -s "$T/man.txt"

# the unit directory is one systemd searches
check units/in-search-path "$UNITDIR not in systemd-analyze unit-paths" \
	grep -qx "$UNITDIR" <(systemd-analyze unit-paths 2>/dev/null)
# verify the packaged units, ExecStart= pointed at the unpacked binary (verify wants it to exist) and no
# man page lookup (the pages are not installed here)
mkdir -p "$T/units"
sed "s|/usr/sbin/vlud|$R/usr/sbin/vlud|" "$R$UNITDIR/vlud.service" >"$T/units/vlud.service"
cp "$R$UNITDIR/vlud.socket" "$T/units/"
if systemd-analyze verify --man=no "$T/units/vlud.service" "$T/units/vlud.socket" >"$T/verify.out" 2>&1; then
	ok units/systemd-analyze-verify
else
	notok units/systemd-analyze-verify "$(grep -v FileDescriptorStorePreserve "$T/verify.out" | head -3 | tr '\n' ' ')"
fi
check units/paths-substituted "unsubstituted @...@ in the units" test -z "$(grep -l '@[A-Z]*@' "$R$UNITDIR"/vlud.*)"
check units/execstart "ExecStart: $(grep ExecStart= "$R$UNITDIR/vlud.service")" \
	grep -qx 'ExecStart=/usr/sbin/vlud --config /etc/vlud/vlud.conf' "$R$UNITDIR/vlud.service"
# systemd-sysusers reads <root>/usr/lib/sysusers.d and creates the group in <root>/etc/group
mkdir -p "$R/etc"
: >"$R/etc/group"
: >"$R/etc/passwd"
if systemd-sysusers --root="$R" >"$T/sysusers.out" 2>&1 && grep -q '^vlud:x:' "$R/etc/group"; then
	ok sysusers/creates-group-vlud
else
	notok sysusers/creates-group-vlud "$(head -3 "$T/sysusers.out" | tr '\n' ' ')"
fi
if "$R/usr/sbin/vlud" --check-config --config "$R/etc/vlud/vlud.conf" >/dev/null 2>"$T/cc.err"; then
	ok vlud/packaged-config-accepted
else
	notok vlud/packaged-config-accepted "$(head -1 "$T/cc.err")"
fi
check vlud/version "$("$R/usr/sbin/vlud" --version 2>&1)" test "$("$R/usr/sbin/vlud" --version 2>&1)" = "vlud $VERSION"
# the .pc file points at the multiarch directory
check libvlu-dev/pc-libdir "$(grep ^libdir= "$R/usr/lib/$MA/pkgconfig/libvlu.pc")" \
	grep -qx "libdir=/usr/lib/$MA" "$R/usr/lib/$MA/pkgconfig/libvlu.pc"

[ "$FAILS" = 0 ]
