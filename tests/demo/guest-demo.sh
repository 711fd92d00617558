# tests/demo/guest-demo.sh - the guest half of `make demo` (tests/demo/demo.sh writes it, after a rig
# header and the parameters below, into $O/demo/scenarios/demo-<modules>.sh and boots the rig on it).
#
# In the guest: vlud with the shipped demo configuration (/usr/share/vlud/config/demo.conf), then for each
# path A, B, C and each mode exec, transfer: minivmm gets its device and stores its guest RAM and eventfds
# through vlud (--vlud), runs loopback traffic, the operator asks vlud for a live update on that path
# (`vluctl call update.start`, which answers with the verdict when the update ends), traffic runs on, the
# VMM is stopped and its own report (frames lost, the largest gap between echoes) read, the instance
# released.  A path the modules do not offer is refused by the daemon before anything is touched; that is
# reported as such (result "not offered", with the daemon's reason).
#
# Parameters (set by demo.sh): DEMO_MEM (minivmm guest RAM, default 256M), DEMO_PATHS (default "A B C"),
# DEMO_MODES (default "exec transfer").
# Output: "STEP <text>" lines (progress, shown by demo.sh while it runs), one
#   DEMO {"modules":..,"path":..,"mode":..,"mem":..,"rc":..,"verdict":<update.start reply or error>,
#         "client":<minivmm --json report of the process that ran last>}
# line per update, and one TAP line per update (ok when the daemon's result is "ok" and the client lost
# nothing; a refusal of a path the modules do not offer is ok too - it is what must happen).

S=${VLUD_SCENARIO:-demo}
MODS=${RIG_MODULES:-stock}
: "${DEMO_MEM:=256M}" "${DEMO_PATHS:=A B C}" "${DEMO_MODES:=exec transfer}"
SOCK=/run/vlud/vlud.sock
CONF=/usr/share/vlud/config/demo.conf
FAILS=0
t_ok() { echo "ok - $S/$1"; }
t_fail() { echo "not ok - $S/$1: $2"; FAILS=$((FAILS + 1)); }
step() { echo "STEP $*"; }
oneline() { tr -d '\n' < "$1"; }

mkdir -p /run/vlud
step "starting vlud with $CONF"
vlud --config "$CONF" > vlud.log 2>&1 &
VPID=$!
n=0
while [ ! -S "$SOCK" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
if [ ! -S "$SOCK" ]; then
	t_fail vlud/start "no socket $SOCK after 10 s"
	sed 's/^/[vlud] /' vlud.log
	exit 1
fi
t_ok vlud/start

# the newest minivmm --json report of PID printed into FILE (one line: {..,"minivmm":"0.1.0","pid":N,..})
report_of() { grep "^{.*\"minivmm\":\".*\"pid\":$1," "$2" 2> /dev/null | tail -1; }

run_update() { # PATH MODE
	path=$1 mode=$2 inst=demo-$1-$2 tag=$1-$2
	step "path $path, $mode mode: starting minivmm ($DEMO_MEM guest RAM, loopback traffic 1000 frames/s) as instance $inst"
	minivmm --vlud "$SOCK" --instance "$inst" --vdpa vdpa0 --mem "$DEMO_MEM" --duration 0 --json \
		> "$tag.out" 2> "$tag.log" &
	pid=$!
	n=0
	while ! grep -q "running:" "$tag.log" 2> /dev/null && kill -0 "$pid" 2> /dev/null && [ $n -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	sleep 1
	step "path $path, $mode mode: live update through vlud (update.start, the daemon drives it)"
	vluctl --socket "$SOCK" --json --timeout 300000 call update.start \
		"{\"instance\":\"$inst\",\"mode\":\"$mode\",\"path\":\"$path\"}" > "$tag.verdict" 2> "$tag.err"
	rc=$?
	[ -s "$tag.verdict" ] || echo "{\"error\":{\"class\":\"vluctl\",\"desc\":\"exit $rc: $(tr -d '\n"' < "$tag.err")\"}}" > "$tag.verdict"
	verdict=$(oneline "$tag.verdict")
	newpid=$(echo "$verdict" | sed -n 's/.*"new_pid": *\([0-9][0-9]*\).*/\1/p')
	[ -n "$newpid" ] || newpid=$pid
	res=$(echo "$verdict" | sed -n 's/.*"result": *"\([^"]*\)".*/\1/p')
	pz=$(echo "$verdict" | sed -n 's/.*"pause_ms": *\([0-9.]*\).*/\1/p')
	desc=$(echo "$verdict" | sed -n 's/.*"desc": *"\([^"]*\)".*/\1/p')
	if [ -n "$res" ]; then
		step "path $path, $mode mode: update result $res, device paused ${pz%.*} ms (pid $pid -> $newpid); traffic runs on for 1 s"
	else
		step "path $path, $mode mode: refused by vlud: ${desc:-vluctl exit $rc}"
	fi
	sleep 1
	# stop whoever runs the VMM now (exec: same pid; transfer: the successor), then the old one if alive
	kill -TERM "$newpid" 2> /dev/null
	[ "$newpid" != "$pid" ] && kill -TERM "$pid" 2> /dev/null
	n=0
	while kill -0 "$newpid" 2> /dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	wait "$pid" 2> /dev/null
	# the client's view: the successor's report (its stdout is vlud's when vlud spawned it), else ours
	client=$(report_of "$newpid" "$tag.out")
	[ -n "$client" ] || client=$(report_of "$newpid" vlud.log)
	[ -n "$client" ] || client=$(report_of "$pid" "$tag.out")
	[ -n "$client" ] || client=null
	sed "s/^/[$tag] /" "$tag.log" "$tag.err"
	echo "DEMO {\"modules\":\"$MODS\",\"path\":\"$path\",\"mode\":\"$mode\",\"mem\":\"$DEMO_MEM\",\"rc\":$rc,\"verdict\":$verdict,\"client\":$client}"
	vluctl --socket "$SOCK" release "$inst" > /dev/null 2>&1
	if [ "$rc" -eq 0 ] && echo "$verdict" | grep -q '"result": *"ok"' && echo "$client" | grep -q '"lost":0,'; then
		t_ok "$tag/update-ok-nothing-lost"
	elif [ "$rc" -ne 0 ] && echo "$verdict" | grep -q '"Unsupported"'; then
		t_ok "$tag/not-offered-refused-up-front"
	else
		t_fail "$tag/update-ok-nothing-lost" "vluctl exit $rc: $(echo "$verdict" | cut -c1-300)"
	fi
}

for path in $DEMO_PATHS; do
	for mode in $DEMO_MODES; do
		run_update "$path" "$mode"
	done
done
step "stopping vlud"
kill -TERM "$VPID"
wait "$VPID"
sed 's/^/[vlud] /' vlud.log
exit $((FAILS > 0))
