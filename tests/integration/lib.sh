#!/bin/bash
# lib.sh - the opening every shell integration test shares (sourced, after setting S, the suite name of its
# TAP lines):
#   S=integ-run
#   . "$(dirname "$0")/lib.sh"
# Sets: B (the build directory, absolute: $VLU_BUILD, default ./build; empty when it does not exist),
# TOP (the source tree, absolute: $VLU_TOP, default .), FAILS=0, T (a fresh temporary directory
# /tmp/vlu-<S without integ->.XXXXXX, mode 755 so that a dropped uid can read it), PIDS=() (background
# processes a test starts: killed with SIGKILL and reaped at exit).  At exit T is removed unless
# VLU_KEEP_TMP is set.  Functions: ok NAME, notok NAME WHY (counts FAILS), check NAME WHY COMMAND... (ok
# when the command succeeds; expect is the same), diag FILE... (a file as TAP comments).
set -uo pipefail

B=$(cd "${VLU_BUILD:-build}" 2> /dev/null && pwd)
TOP=$(cd "${VLU_TOP:-.}" && pwd)
FAILS=0
T=$(mktemp -d "/tmp/vlu-${S#integ-}.XXXXXX")
chmod 755 "$T"
PIDS=()

lib_cleanup() {
	local p
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do
		kill -KILL "$p" 2> /dev/null
		wait "$p" 2> /dev/null
	done
	[ -n "${VLU_KEEP_TMP:-}" ] || rm -rf "$T"
}
trap lib_cleanup EXIT

ok() { echo "ok - $S/$1"; }
notok() {
	echo "not ok - $S/$1: $2"
	FAILS=$((FAILS + 1))
}
check() { # check NAME WHY COMMAND...
	local name=$1 why=$2
	shift 2
	if "$@"; then ok "$name"; else notok "$name" "$why"; fi
}
expect() { check "$@"; }
diag() { sed 's/^/# /' "$@"; }
