#!/bin/bash
# test-docs.sh - the user-facing documents (README.md, docs/*.md, kernel/README.md, kernel/iommufd/README.md,
# the man pages) say no project-internal "issue N", cite no kernel-facts.md (a file outside the repository),
# and every repository path they name exists: a path starting with a top-level directory of the tree
# (daemon/, tests/, ...; globs such as tests/vm/*.mk must match something) and every relative markdown link
# target.  Paths under $(O)/, build/, ~/ or / are outputs, caches or guest/host system paths and are not
# checked.
#   VLU_TOP=. bash tests/integration/test-docs.sh
S=integ-docs
. "$(dirname "$0")/lib.sh"

# ---- documents not checked (none: every user-facing document is) ----
EXCLUDED=()

cd "$TOP" || exit 1
shopt -s nullglob
docs=()
for f in README.md docs/*.md kernel/README.md kernel/iommufd/README.md clients/*/*.[1-8] docs/man/*.[1-8]; do
	[ -e "$f" ] || continue
	skip=0
	for x in "${EXCLUDED[@]+"${EXCLUDED[@]}"}"; do [ "$f" = "$x" ] && skip=1; done
	if [ "$skip" = 1 ]; then
		echo "ok - $S/$f # SKIP in the exclusion list of test-docs.sh"
		continue
	fi
	docs+=("$f")
done

# top-level entries of the tree a path may start with
TOPDIRS='\.ci|clients|config|daemon|debian|docs|kernel|protocol|scripts|systemd|tests'

# exists_glob DIR PATH: PATH (relative to DIR, may be a glob or end in /) names something that exists
exists_glob() {
	local d=$1 p=$2 m
	p=${p%/}
	# ktlib.[ch] and *.patch are globs; {a,b} is not used in the documents
	for m in "$d"/$p; do
		[ -e "$m" ] && return 0
	done
	return 1
}

for f in "${docs[@]}"; do
	dir=$(dirname "$f")
	# "issue 5", "Issue #6": project-internal ticket numbers
	hits=$(grep -n -i -E 'issues? #?[0-9]' "$f" | cut -c1-120)
	if [ -z "$hits" ]; then ok "$f/no-issue-numbers"; else notok "$f/no-issue-numbers" "$(echo "$hits" | tr '\n' ' ')"; fi
	hits=$(grep -n -E 'kernel-facts|shared/reference' "$f" | cut -c1-120)
	if [ -z "$hits" ]; then ok "$f/no-outside-references"; else notok "$f/no-outside-references" "$(echo "$hits" | tr '\n' ' ')"; fi

	missing=
	# repository paths: a top-level directory at the start of a word (not after $(O)/, build/, ~/, /, a
	# letter or a dot), optionally preceded by ../ (kernel/README.md is relative to kernel/)
	while IFS= read -r p; do
		p=${p%%[.,:;)]}
		p=${p%%[.,:;)]}
		case $p in *'['*) ;; *) p=${p%%]*} ;; esac # [text](path): the link text's bracket
		# templates: <dir>/<name>.mk, $(O)/..., tests/vm/scenarios/NAME.sh
		case $p in *'<'* | *'>'* | *'$'* | *NAME*) continue ;; esac
		exists_glob . "$p" || exists_glob "$dir" "$p" || missing="$missing $p"
	done < <(grep -o -P '(?<![\w$./~(-])(\.\./)*(?:'"$TOPDIRS"')/[\w./*\[\]+-]*' "$f" | sort -u)
	# relative markdown link targets: [text](path) or [text](path#anchor)
	while IFS= read -r p; do
		p=${p#](}
		p=${p%)}
		p=${p%%#*}
		case $p in '' | http:* | https:* | mailto:* | /*) continue ;; esac
		exists_glob "$dir" "$p" || missing="$missing $p"
	done < <(grep -o -E '\]\([^) ]+\)' "$f" | sort -u)
	# bare top-level files named in backquotes
	for p in $(grep -o -E '`(Makefile|README\.md|\.gitignore)`' "$f" | tr -d '`' | sort -u); do
		[ -e "$p" ] || missing="$missing $p"
	done
	if [ -z "$missing" ]; then ok "$f/paths-exist"; else notok "$f/paths-exist" "missing:$missing"; fi
done

[ "$FAILS" = 0 ]
