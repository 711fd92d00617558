# tests/bench/guest-pause.sh - the guest half of `make bench` (docs/BENCH.md): pause of a live update per
# path against guest memory size, on vdpa_sim_net, with loopback traffic running.
#
# Not a rig scenario by itself: tests/bench/run.sh writes one scenario per module set into
# $O/bench/scenarios/ (a header with modules/memory/timeout, the parameters below, then this file) and
# runs the rig on that directory (VLUD_RIG_SCENARIO_DIR), so `make vm-check` never runs it.
#
# Parameters (set by run.sh before this text):
#   BENCH_REPS    updates per (path, size)          BENCH_MEMS   guest-RAM sizes of minivmm ("64M 256M 1G")
#   BENCH_PATHS   paths to force ("" = every path the modules offer: stock C; patched A B C)
#   BENCH_DRIVER  standalone (minivmm updates itself: exec mode, no daemon) or vlud (the daemon drives the
#                 update: update.start through vluctl, exec mode; the verdict carries the daemon's phases)
#
# Output (serial console): one line per minivmm run
#   BENCH {"modules":..,"driver":..,"path":..,"mem":..,"rc":..,"minivmm":<minivmm --json verdict>,"vlud":[<verdicts>]}
# which run.sh collects from the rig's log, and one TAP line per run: ok when minivmm's verdict passed
# (every update done, no frame lost or duplicated, VmPin as expected), not ok otherwise.  Timings are
# never asserted.

S=${VLUD_SCENARIO:-bench}
DEV=/dev/vhost-vdpa-0
MODS=${RIG_MODULES:-stock}
: "${BENCH_REPS:=5}" "${BENCH_MEMS:=64M 256M 1G}" "${BENCH_PATHS:=}" "${BENCH_DRIVER:=standalone}"
if [ -z "$BENCH_PATHS" ]; then
	case $MODS in patched) BENCH_PATHS="A B C" ;; *) BENCH_PATHS="C" ;; esac
fi
FAILS=0
t_ok() { echo "ok - $S/$1"; }
t_fail() { echo "not ok - $S/$1: $2"; FAILS=$((FAILS + 1)); }
up() { cut -d' ' -f1 /proc/uptime; }

# mem_mb 1G -> 1024
mem_mb() {
	case $1 in
	*G) echo $((${1%G} * 1024)) ;;
	*M) echo "${1%M}" ;;
	*) echo 0 ;;
	esac
}

# run_one PATH MEM: one minivmm with BENCH_REPS updates on PATH; it stops (SIGTERM) once the last update
# is done, or after a deadline generous for TCG (re-pinning costs ~2 ms per MiB there)
run_one() {
	path=$1 mem=$2 tag=$1-$2
	mb=$(mem_mb "$mem")
	limit=$((30 + BENCH_REPS * (2 + mb * 8 / 1000)))
	echo "# $(up) $tag: minivmm --mem $mem --path $path, $BENCH_REPS updates ($BENCH_DRIVER), deadline ${limit}s"
	rm -f "$tag.out" "$tag.log" "$tag.vlud"
	if [ "$BENCH_DRIVER" = vlud ]; then
		minivmm --vlud "$VLUD_SOCK" --instance "bench" --vdpa vdpa0 --mem "$mem" --duration 0 --json \
			> "$tag.out" 2> "$tag.log" &
	else
		minivmm --device "$DEV" --mem "$mem" --path "$path" --duration 0 --update-after 0.5 \
			--updates "$BENCH_REPS" --json > "$tag.out" 2> "$tag.log" &
	fi
	pid=$!
	t0=$(date +%s)
	n=0 why=
	if [ "$BENCH_DRIVER" = vlud ]; then
		# wait until minivmm runs, then ask the daemon for each update (exec mode, forced path)
		while ! grep -q "running:" "$tag.log" 2> /dev/null; do
			sleep 0.2
			kill -0 "$pid" 2> /dev/null || { why="minivmm exited before running"; break; }
			[ $(($(date +%s) - t0)) -lt "$limit" ] || { why="not running after ${limit}s"; break; }
		done
		while [ -z "$why" ] && [ "$n" -lt "$BENCH_REPS" ]; do
			sleep 0.5
			vluctl --socket "$VLUD_SOCK" --json update bench --mode exec --path "$path" >> "$tag.vlud" 2>> "$tag.log" ||
				{ why="update $((n + 1)) failed (vluctl exit $?)"; break; }
			n=$((n + 1))
		done
	else
		while kill -0 "$pid" 2> /dev/null; do
			n=$(grep -c "update [0-9]*: path . done" "$tag.log" 2> /dev/null)
			[ "$n" -ge "$BENCH_REPS" ] && break
			if grep -q -E "rolling back|update [0-9]+ failed|refused" "$tag.log" 2> /dev/null; then
				why="an update failed"
				break
			fi
			[ $(($(date +%s) - t0)) -lt "$limit" ] || { why="only $n of $BENCH_REPS updates after ${limit}s"; break; }
			sleep 0.2
		done
	fi
	sleep 0.3
	kill -TERM "$pid" 2> /dev/null
	wait "$pid"
	rc=$?
	sed "s/^/[$tag] /" "$tag.log"
	verdict=$(cat "$tag.out" 2> /dev/null)
	[ -n "$verdict" ] || verdict=null
	vl=null
	[ -s "$tag.vlud" ] && vl="[$(paste -s -d, "$tag.vlud")]"
	echo "BENCH {\"modules\":\"$MODS\",\"driver\":\"$BENCH_DRIVER\",\"path\":\"$path\",\"mem\":\"$mem\",\"mem_mb\":$mb,\"reps\":$BENCH_REPS,\"rc\":$rc,\"minivmm\":$verdict,\"vlud\":$vl}"
	if [ -z "$why" ] && [ "$rc" -eq 0 ] && echo "$verdict" | grep -q '"verdict":"pass"'; then
		t_ok "$tag/updates-ok-no-frame-lost"
	else
		t_fail "$tag/updates-ok-no-frame-lost" "${why:-minivmm exit $rc}; $(echo "$verdict" | sed -n 's/.*"reasons":\(\[[^]]*\]\).*/\1/p')"
	fi
}

VLUD_SOCK=/run/vlud/vlud.sock
VPID=
if [ "$BENCH_DRIVER" = vlud ]; then
	mkdir -p /run/vlud
	vlud --config /usr/share/vlud/config/demo.conf > vlud.log 2>&1 &
	VPID=$!
	i=0
	while [ ! -S "$VLUD_SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$VLUD_SOCK" ] || { t_fail vlud/start "no socket after 5 s"; cat vlud.log; exit 1; }
fi

echo "# bench: modules=$MODS driver=$BENCH_DRIVER paths='$BENCH_PATHS' sizes='$BENCH_MEMS' reps=$BENCH_REPS, $(nproc) cpus, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"
for path in $BENCH_PATHS; do
	for mem in $BENCH_MEMS; do
		run_one "$path" "$mem"
	done
done
if [ -n "$VPID" ]; then
	kill -TERM "$VPID"
	wait "$VPID"
	sed 's/^/[vlud] /' vlud.log
fi
exit $((FAILS > 0))
