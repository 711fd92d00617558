# tests/bench/progress.sh - sourced by tests/bench/run.sh and tests/demo/demo.sh: show what a rig guest is
# doing while it runs.  The rig reports a scenario's TAP lines only after the guest powered off; the guest's
# serial log ($O/vm/logs/boot-<scenario>.serial.log) grows while it runs, so it is followed here.
#
#   progress_start LABEL SERIAL-LOG-GLOB REGEX [FILE FILE-REGEX]
#       follow in the background the newest file matching the glob (written after this call), print each new
#       line matching REGEX (minus the rig's "  | " and a leading "STEP "/"# "), the same for FILE and
#       FILE-REGEX (e.g. the rig's own output while it prepares the kernel), and every 20 s without news
#       "still: <last line> (for N s)"
#   progress_stop
# Lines are prefixed "[<PROGRESS_TAG> <seconds since PROGRESS_T0>s]".

PROGRESS_TAG=${PROGRESS_TAG:-run}
PROGRESS_T0=${PROGRESS_T0:-$(date +%s)}
PROGRESS_PID=

progress_say() { printf '[%s %4ds] %s\n' "$PROGRESS_TAG" $(($(date +%s) - PROGRESS_T0)) "$*"; }

progress_start() { # LABEL GLOB REGEX [FILE FILE-REGEX]
	local label=$1 glob=$2 re=$3 xfile=${4:-} xre=${5:-} stamp
	stamp=$(mktemp)
	(
		trap 'rm -f "$stamp"; exit 0' TERM INT
		seen=0 xseen=0 last="preparing the rig" since=$(date +%s) quiet=$(date +%s)
		while :; do
			f=$(ls -t $glob 2> /dev/null | head -1)
			lines=()
			if [ -n "$xfile" ] && [ -f "$xfile" ]; then
				mapfile -t xl < <(grep -a -E "$xre" "$xfile" 2> /dev/null)
				[ "$xseen" -lt ${#xl[@]} ] && lines+=("${xl[@]:$xseen}")
				xseen=${#xl[@]}
			fi
			if [ -n "$f" ] && [ "$f" -nt "$stamp" ]; then
				mapfile -t sl < <(grep -a -E "$re" "$f" 2> /dev/null | tr -d '\r')
				[ "$seen" -lt ${#sl[@]} ] && lines+=("${sl[@]:$seen}")
				seen=${#sl[@]}
			fi
			for l in "${lines[@]}"; do
				l=${l#  | }
				l=${l#STEP }
				l=${l#\# }
				last=$l since=$(date +%s) quiet=$since
				progress_say "$label: $l"
			done
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

# rig_snapshot DIR: a private copy of the rig (tests/vm and config/) for a long run: bash reads a script
# while it runs it, so an edit of tests/vm/rig.sh in the working tree during a 20-minute bench would break
# the running rig.  Prints the path of the copy's rig.sh; run it with VLUD_RIG_PATCH_DIR set to the tree's
# kernel/patches (the copy has none).  Needs TOP.
rig_snapshot() {
	local d=$1
	rm -rf "$d"
	mkdir -p "$d/tests" || return 1
	cp -r "$TOP/tests/vm" "$d/tests/vm" && cp -r "$TOP/config" "$d/config" || return 1
	echo "$d/tests/vm/rig.sh"
}
