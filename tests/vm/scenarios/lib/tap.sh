#!/bin/sh
# lib/tap.sh: the TAP library of the rig scenarios (sourced: . /scenarios/lib/tap.sh; lib/vlud.sh and the
# libraries on top of it source it themselves).  Defines S (the scenario's name, the TAP prefix) and FAILS
# (failed checks); a scenario ends with `exit $((FAILS > 0))`.  Sourcing it twice changes nothing.
[ -n "${LIB_TAP:-}" ] && return 0
LIB_TAP=1
S=${VLUD_SCENARIO:-SCEN}
FAILS=0

# ---- TAP lines
t_ok() { echo "ok - $S/$1"; }
t_fail() { echo "not ok - $S/$1: $2"; FAILS=$((FAILS + 1)); }
t_skip() { echo "ok - $S/$1 # SKIP $2"; }
# expect NAME ACTUAL OP EXPECTED: integer or string test ([ ACTUAL OP EXPECTED ]), one TAP line; an empty
# ACTUAL fails
expect() {
	if [ -n "$2" ] && test "$2" "$3" "$4" 2> /dev/null; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}
# expectf NAME ACTUAL OP EXPECTED: numeric (float) comparison with awk (OP: > >= < <= ==)
expectf() {
	if [ -n "$2" ] && awk -v a="$2" -v b="$4" "BEGIN { exit !(a $3 b) }"; then t_ok "$1"; else t_fail "$1" "got '$2', expected $3 $4"; fi
}

# ---- reading results
# val FILE LINE-PREFIX KEY: the value of KEY=... on the first line of FILE starting with LINE-PREFIX (minivmm's
# report lines "traffic: sent=N ...", docs/MINIVMM.md)
val() { grep "^$2" "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }
# jget [-s] PATH [FILE]: the values at PATH of the JSON documents in FILE (default: standard input), one a
# line, read by vlu-json (tests/vm/guest/vlu-json.c, json-c: the guest has no jq): PATH like
# .vmpin.moved_ok, .instances[name=vm0].state, .fds[].name; strings unquoted, other values as compact JSON;
# -s: the documents of FILE as one array (.[event=update.completed].data.result).  Lines vluctl writes to
# stderr ("vluctl: ...", in files written with 2>&1) are not JSON and are left out.  Status 0 when a value
# was found, 1 when none, 2 when the input is not JSON.
jget() {
	_s=
	[ "$1" = -s ] && _s=-s && shift
	# shellcheck disable=SC2086 # _s: empty or -s
	grep -v '^vluctl: ' ${2:+"$2"} 2> /dev/null | vlu-json $_s "$1"
}
# jhas PATH FILE VALUE: some value at PATH of FILE (- : standard input) is exactly VALUE
jhas() {
	if [ "$2" = - ]; then jget "$1"; else jget "$1" "$2"; fi | grep -qxF -- "$3"
}

# ---- waiting
# wait_until TENTHS COMMAND...: run COMMAND every 0.1 s until it succeeds, at most TENTHS times more; the
# status of its last run.  COMMAND may be a shell function (the waits of the libraries are).
wait_until() {
	_max=$1
	shift
	_i=0
	until "$@"; do
		[ "$_i" -ge "$_max" ] && return 1
		sleep 0.1
		_i=$((_i + 1))
	done
}
# alive PID: the process exists
alive() { kill -0 "$1" 2> /dev/null; }
