#!/bin/bash
# test-man.sh - the manual pages: each renders without a groff or man warning, says what the program or
# library really offers (every option of `vlud --help`, `vluctl --help`, `minivmm --help`; every function
# libvlu exports; every configuration key `vlud --check-config` prints, and the example file of
# vlud.conf(5) is accepted), and `make install` installs every page (plus one vlu_*(3) name per function).
#   VLU_BUILD=build VLU_TOP=. bash tests/integration/test-man.sh
S=integ-man
. "$(dirname "$0")/lib.sh"

# page -> the program whose --help it documents ("" = none)
declare -A PAGES=(
	[docs/man/vlud.8]=vlud
	[docs/man/vlud.conf.5]=
	[clients/vluctl/vluctl.1]=vluctl
	[clients/libvlu/libvlu.3]=
	[clients/minivmm/minivmm.1]=minivmm
)

for tool in groff man; do
	if ! command -v "$tool" >/dev/null; then
		# not a skip: man-db and groff-base are in tests/integration/apt-packages (make deps)
		notok preconditions "$tool is missing: run 'make deps'"
		exit 1
	fi
done

for p in $(printf '%s\n' "${!PAGES[@]}" | sort); do
	f=$TOP/$p
	if [ ! -f "$f" ]; then
		notok "$p/exists" "missing"
		continue
	fi
	# groff's own warnings (-ww), then man-db's pipeline (preconv, tbl, the Debian macros) as lintian
	# runs it
	w=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
	if [ -z "$w" ]; then ok "$p/groff-no-warnings"; else notok "$p/groff-no-warnings" "$(echo "$w" | head -3 | tr '\n' ' ')"; fi
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
	if [ -z "$w" ]; then ok "$p/man-no-warnings"; else notok "$p/man-no-warnings" "$(echo "$w" | head -3 | tr '\n' ' ')"; fi
	# the text as a reader sees it, ASCII, no overstriking
	groff -man -Tascii -P-cbou "$f" 2>/dev/null >"$T/$(basename "$p").txt"

	prog=${PAGES[$p]}
	[ -n "$prog" ] || continue
	if [ ! -x "$B/$prog" ]; then
		notok "$p/options" "$B/$prog not built"
		continue
	fi
	missing=
	for o in $("$B/$prog" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -q -- "$o\\b" "$T/$(basename "$p").txt" || missing="$missing $o"
	done
	if [ -z "$missing" ]; then ok "$p/every-option-of-help"; else notok "$p/every-option-of-help" "not in the page:$missing"; fi
done

# libvlu(3): every exported function (libvlu.sym's global: part)
missing=
for fn in $(sed -n 's/^[[:space:]]*\(vlu_[a-z_]*\);/\1/p' "$TOP/clients/libvlu/libvlu.sym"); do
	grep -q "\\b$fn\\b" "$T/libvlu.3.txt" || missing="$missing $fn"
done
if [ -z "$missing" ]; then ok "libvlu.3/every-exported-function"; else notok "libvlu.3/every-exported-function" "not in the page:$missing"; fi

# vlud.conf(5): every key the parser prints (dotted: socket.path), and the keys of a VMM rule
printf '{"vmms": [{"uids": [0], "gids": [0], "devices": ["vdpa0"], "fd_types": ["memfd"], "max_fds": 4}]}\n' >"$T/rule.conf"
if "$B/vlud" --check-config --config "$T/rule.conf" >"$T/rule.json" 2>"$T/rule.err"; then
	missing=
	n=0
	# leaves with their parents: "socket": { "path": ... } -> socket.path (two levels are enough here:
	# timeouts.update.* is matched by its leaf after the dotted prefix)
	for k in $(awk '
		/^  "[a-z_]*": \{/ { match($0, /"[a-z_]*"/); top = substr($0, RSTART + 1, RLENGTH - 2); next }
		/^  "[a-z_]*": [^{]/ { match($0, /"[a-z_]*"/); print substr($0, RSTART + 1, RLENGTH - 2); next }
		/^    "[a-z_]*": [^{]/ { match($0, /"[a-z_]*"/); print top "." substr($0, RSTART + 1, RLENGTH - 2); next }
		/^      "[a-z_]*": / { match($0, /"[a-z_]*"/); print "." substr($0, RSTART + 1, RLENGTH - 2); next }
		/^  \}/ { top = "" }' "$T/rule.json" | sort -u); do
		n=$((n + 1))
		grep -q -- "$k\\b" "$T/vlud.conf.5.txt" || missing="$missing $k"
	done
	[ "$n" -ge 30 ] || missing="$missing (only $n keys found in the --check-config output)"
	if [ -z "$missing" ]; then ok "vlud.conf.5/every-key"; else notok "vlud.conf.5/every-key" "not in the page:$missing"; fi
	# the page's EXAMPLE (between .RS and .RE after .SH EXAMPLE), with its user and group replaced by
	# root (the names must exist on this host)
	sed -n '/^\.SH EXAMPLE/,/^\.SH FILES/p' "$TOP/docs/man/vlud.conf.5" | sed -n '/^\.RS/,/^\.RE/p' | sed '1d;$d' |
		sed 's/\\-/-/g; s/"qemu"/"root"/; s/"kvm"/"root"/' >"$T/example.conf"
	if "$B/vlud" --check-config --config "$T/example.conf" >/dev/null 2>"$T/example.err"; then
		ok "vlud.conf.5/example-accepted"
	else
		notok "vlud.conf.5/example-accepted" "$(head -1 "$T/example.err")"
	fi
else
	notok "vlud.conf.5/every-key" "vlud --check-config failed: $(head -1 "$T/rule.err")"
fi

# make install puts every page (and the vlu_*(3) names) under MANDIR
if make -s -C "$TOP" --no-print-directory O="$B" DESTDIR="$T/inst" PREFIX=/usr install >"$T/install.log" 2>&1; then
	missing=
	for p in man8/vlud.8 man5/vlud.conf.5 man1/vluctl.1 man3/libvlu.3 man1/minivmm.1 man3/vlu_connect.3 man3/vlu_update_ready.3; do
		[ -e "$T/inst/usr/share/man/$p" ] || missing="$missing $p"
	done
	if [ -z "$missing" ]; then ok "make-install/pages"; else notok "make-install/pages" "not installed:$missing"; fi
else
	notok "make-install/pages" "make install failed: $(tail -3 "$T/install.log" | tr '\n' ' ')"
fi

[ "$FAILS" = 0 ]
