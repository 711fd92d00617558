# tests/bench/progress.sh - sourced by tests/bench/run.sh and tests/demo/demo.sh: show what a rig guest is
# doing while it runs.  The rig reports a scenario's TAP lines only after the guest powered off; the guest's
# serial log ($O/vm/logs/boot-<scenario>.serial.log) grows while it runs, so it is followed here.
#
#   progress_start LABEL SERIAL-LOG-GLOB REGEX   follow in the background the newest file matching the glob
#                                              (written after this call), print each new line matching REGEX
#                                              (minus the rig's "  | " and a leading "STEP "/"# "), and every
#                                              20 s without news "still: <last line> (for N s)"
#   progress_stop
# Lines are prefixed "[<PROGRESS_TAG> <seconds since PROGRESS_T0>s]".

PROGRESS_TAG=${PROGRESS_TAG:-run}
PROGRESS_T0=${PROGRESS_T0:-$(date +%s)}
PROGRESS_PID=

progress_say() { printf '[%s %4ds] %s\n' "$PROGRESS_TAG" $(($(date +%s) - PROGRESS_T0)) "$*"; }

progress_start() { # LABEL GLOB REGEX
	local label=$1 glob=$2 re=$3 stamp
	stamp=$(mktemp)
	(
		trap 'rm -f "$stamp"; exit 0' TERM INT
		seen=0 last="booting the guest" since=$(date +%s) quiet=$(date +%s)
		while :; do
			f=$(ls -t $glob 2> /dev/null | head -1)
			if [ -n "$f" ] && [ "$f" -nt "$stamp" ]; then
				mapfile -t lines < <(grep -a -E "$re" "$f" 2> /dev/null | tr -d '\r')
				while [ "$seen" -lt ${#lines[@]} ]; do
					l=${lines[$seen]}
					seen=$((seen + 1))
					l=${l#  | }
					l=${l#STEP }
					l=${l#\# }
					last=$l since=$(date +%s) quiet=$since
					progress_say "$label: $l"
				done
			fi
			now=$(date +%s)
			if [ $((now - quiet)) -ge 20 ]; then
				progress_say "$label: still: $last (for $((now - since)) s)"
				quiet=$now
			fi
			sleep 1
		done
	) &
	PROGRESS_PID=$!
}

progress_stop() {
	if [ -n "$PROGRESS_PID" ]; then
		kill -TERM "$PROGRESS_PID" 2> /dev/null
		wait "$PROGRESS_PID" 2> /dev/null
		PROGRESS_PID=
	fi
}
