# tests/bench/guest-pause.sh - the guest half of `make bench` (docs/BENCH.md): pause of a live update per
# path against guest memory size, on vdpa_sim_net, with loopback traffic running.
#
# Not a rig scenario by itself: tests/bench/run.sh writes one scenario per module set into
# $O/bench/scenarios/ (a header with modules/memory/timeout, the parameters below, then this file) and
# runs the rig on that directory (VLUD_RIG_SCENARIO_DIR), so `make vm-check` never runs it.
#
# Parameters (set by run.sh before this text):
#   BENCH_REPS    updates per (path, size)          BENCH_MEMS   guest-RAM sizes of minivmm ("64M 256M 1G")
#   BENCH_RUNS    minivmm runs per (driver, RAM, path, size) (default 1); the first update of a run is a
#                 sample of its own (exec tears down the first image's mapping), so it takes runs to get
#                 more than one of it
#   BENCH_PATHS   paths to force ("" = every path the modules offer: stock C; patched A B C)
#   BENCH_DRIVER  one or more of: vlud (the daemon drives the update: update.start through vluctl, exec
#                 mode; its verdict carries the pause it measured, its own time and the phases) and standalone
#                 (minivmm --device updates itself, no daemon: the kernel's and the VMM's share alone)
#   BENCH_RAM     one or more of: touched (guest RAM mapped, the default of minivmm), lazy (--no-prefault),
#                 nodefer (touched, and the exec tears the old image's address space down inside the pause as
#                 before libvlu's vlu_exec_defer_teardown: MINIVMM_NO_DEFER_TEARDOWN=1), hugetlb (touched, in
#                 2 MiB hugetlb pages: minivmm --hugetlb; the guest reserves vm.nr_hugepages for each such
#                 run and gives them back after it), hugetlb-nodefer (hugetlb without the deferred teardown);
#                 any of them with "-noaslr": the run with kernel.randomize_va_space 0 (restored after it)
#   BENCH_NOASLR_MEMS  sizes of the extra path-A rows "touched-noaslr" of both drivers after the others
#                 (patched modules, when A is among BENCH_PATHS; "" = none): the protocol's cost without
#                 TCG translating every fresh image's code again (docs/BENCH.md)
#
# Output (serial console): one line per minivmm run
#   BENCH {"modules":..,"driver":..,"ram":..,"path":..,"mem":..,"rc":..,"minivmm":<minivmm --json verdict>,"vlud":[<verdicts>]}
# which run.sh collects from the rig's log, and one TAP line per run: ok when minivmm's verdict passed
# (every update done, no frame lost or duplicated, VmPin as expected), not ok otherwise.  Timings are
# never asserted.

S=${VLUD_SCENARIO:-bench}
DEV=/dev/vhost-vdpa-0
MODS=${RIG_MODULES:-stock}
: "${BENCH_RUNS:=1}" "${BENCH_REPS:=5}" "${BENCH_MEMS:=64M 256M 1G}" "${BENCH_PATHS:=}" "${BENCH_DRIVER:=vlud}" "${BENCH_RAM:=touched}"
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

# wait_released: the device node opens again (at most 10 s).  vlud closes a released instance's device fd
# in its closer thread, after its reply, and the kernel's release (reset, unpin of all guest RAM: ~0.1 s
# per GiB under TCG) runs inside that close; the node is single-open, so a standalone minivmm started
# meanwhile failed with "setup failed: Device or resource busy".  (vlud's own device.open waits for its
# closer itself.)
wait_released() {
	i=0
	# (a subshell: a failed redirection of exec ends the shell that runs it)
	while ! (exec 3<> "$DEV") 2> /dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "# $DEV still busy after 10 s"; return 1; }
		sleep 0.1
	done
	[ $i -eq 0 ] || echo "# waited $i x 0.1 s for the release of $DEV"
}

# huge_reserve MB: vm.nr_hugepages for MB of guest RAM plus 8 MiB (2 MiB pages); 0 frees them all.  Reserved
# per hugetlb run, not once for the whole boot: the pool is taken out of the guest's RAM, and the touched
# rows of the same boot need theirs.  A pool that cannot grow that far (fragmented RAM) is said here;
# minivmm then refuses with "no free 2 MiB hugepages" and the run fails, it is not skipped.
huge_reserve() {
	want=0
	[ "$1" -gt 0 ] && want=$((($1 + 1) / 2 + 4))
	echo "$want" > /proc/sys/vm/nr_hugepages
	got=$(cat /proc/sys/vm/nr_hugepages)
	[ "$want" -eq 0 ] || echo "# vm.nr_hugepages: $got of $want reserved ($(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages) free)"
}

# run_one DRIVER RAM PATH MEM: one minivmm with BENCH_REPS updates on PATH; it is stopped (SIGTERM) once the
# last update is done, or after a deadline generous for TCG (re-pinning costs ~2-4 ms per MiB there).
# RAM: touched (minivmm's default: all guest RAM mapped, like a guest that used it; the exec tears the
# mapping down inside the pause) or lazy (--no-prefault: allocated, pinned, not mapped).
run_one() {
	drv=$1 ram=$2 path=$3 mem=$4 tag=$1-$2-$3-$4
	[ "$BENCH_RUNS" -gt 1 ] && tag=$tag-r$5
	mb=$(mem_mb "$mem")
	limit=$((30 + BENCH_REPS * (3 + mb * 8 / 1000)))
	extra=
	nodefer=0
	aslr=
	case $ram in *-noaslr)
		# the same run with ASLR off for it (BENCH_NOASLR_MEMS): the old and the new image map their
		# libraries at the same addresses, so TCG reuses the code it translated for the previous image
		# (docs/BENCH.md); vlud, already running, is not affected
		aslr=$(cat /proc/sys/kernel/randomize_va_space)
		echo 0 > /proc/sys/kernel/randomize_va_space
		ram=${ram%-noaslr}
		;;
	esac
	case $ram in
	lazy) extra=--no-prefault ;;
	nodefer) nodefer=1 ;;
	hugetlb) extra=--hugetlb ;;
	hugetlb-nodefer) extra=--hugetlb nodefer=1 ;;
	esac
	case $ram in hugetlb*) huge_reserve "$mb" ;; esac
	echo "# $(up) path $path, $mem guest RAM ($ram${aslr:+, ASLR off}), $BENCH_REPS updates driven by $drv (deadline ${limit}s)"
	rm -f "$tag.out" "$tag.log" "$tag.vlud"
	if [ "$drv" = vlud ]; then
		MINIVMM_NO_DEFER_TEARDOWN=$nodefer minivmm --vlud "$VLUD_SOCK" --instance bench --vdpa vdpa0 --mem "$mem" --duration 0 --json $extra \
			> "$tag.out" 2> "$tag.log" &
	else
		MINIVMM_NO_DEFER_TEARDOWN=$nodefer minivmm --device "$DEV" --mem "$mem" --path "$path" --duration 0 --update-after 0.5 \
			--updates "$BENCH_REPS" --json $extra > "$tag.out" 2> "$tag.log" &
	fi
	pid=$!
	t0=$(date +%s)
	n=0 why=
	if [ "$drv" = vlud ]; then
		# minivmm registered and sent its mappings (it logs "running:" once traffic runs)
		while ! grep -q "running:" "$tag.log" 2> /dev/null; do
			sleep 0.2
			kill -0 "$pid" 2> /dev/null || { why="minivmm exited before running"; break; }
			[ $(($(date +%s) - t0)) -lt "$limit" ] || { why="not running after ${limit}s"; break; }
		done
		while [ -z "$why" ] && [ "$n" -lt "$BENCH_REPS" ]; do
			sleep 0.5
			vluctl --socket "$VLUD_SOCK" --json --timeout 120000 call update.start \
				"{\"instance\":\"bench\",\"mode\":\"exec\",\"path\":\"$path\"}" > "$tag.v1" 2>> "$tag.log"
			urc=$?
			tr -d '\n' < "$tag.v1" >> "$tag.vlud"
			echo >> "$tag.vlud"
			[ "$urc" -eq 0 ] || { why="update $((n + 1)): vluctl exit $urc: $(tr -d '\n' < "$tag.v1" | cut -c1-200)"; break; }
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
	[ "$drv" = vlud ] && vluctl --socket "$VLUD_SOCK" release bench > /dev/null 2>&1
	wait_released
	case $ram in hugetlb*) huge_reserve 0 ;; esac
	[ -n "$aslr" ] && { echo "$aslr" > /proc/sys/kernel/randomize_va_space; ram=$ram-noaslr; }
	sed "s/^/[$tag] /" "$tag.log"
	verdict=$(cat "$tag.out" 2> /dev/null)
	[ -n "$verdict" ] || verdict=null
	vl=null
	[ -s "$tag.vlud" ] && vl="[$(paste -s -d, "$tag.vlud")]"
	echo "BENCH {\"modules\":\"$MODS\",\"driver\":\"$drv\",\"ram\":\"$ram\",\"path\":\"$path\",\"mem\":\"$mem\",\"mem_mb\":$mb,\"reps\":$BENCH_REPS,\"rc\":$rc,\"minivmm\":$verdict,\"vlud\":$vl}"
	if [ -z "$why" ] && [ "$rc" -eq 0 ] && echo "$verdict" | grep -q '"verdict":"pass"'; then
		t_ok "$tag/updates-ok-no-frame-lost"
	else
		t_fail "$tag/updates-ok-no-frame-lost" "${why:-minivmm exit $rc}; $(echo "$verdict" | sed -n 's/.*"reasons":\(\[[^]]*\]\).*/\1/p')"
	fi
}

VLUD_SOCK=/run/vlud/vlud.sock
VPID=
case " $BENCH_DRIVER " in *" vlud "*)
	mkdir -p /run/vlud
	vlud --config /usr/share/vlud/config/demo.conf > vlud.log 2>&1 &
	VPID=$!
	i=0
	while [ ! -S "$VLUD_SOCK" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$VLUD_SOCK" ] || { t_fail vlud/start "no socket after 5 s"; cat vlud.log; exit 1; }
	;;
esac

echo "# bench: modules=$MODS drivers='$BENCH_DRIVER' ram='$BENCH_RAM' paths='$BENCH_PATHS' sizes='$BENCH_MEMS' reps=$BENCH_REPS runs=$BENCH_RUNS, $(nproc) cpus, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"
for drv in $BENCH_DRIVER; do
	for ram in $BENCH_RAM; do
		for path in $BENCH_PATHS; do
			for mem in $BENCH_MEMS; do
				rn=1
				while [ $rn -le "$BENCH_RUNS" ]; do
					run_one "$drv" "$ram" "$path" "$mem" $rn
					rn=$((rn + 1))
				done
			done
		done
	done
done
case " $BENCH_PATHS " in *" A "*)
	if [ "$MODS" = patched ]; then
		for mem in ${BENCH_NOASLR_MEMS:-}; do
			for drv in $BENCH_DRIVER; do
				run_one "$drv" touched-noaslr A "$mem" 1
			done
		done
	fi
	;;
esac
if [ -n "$VPID" ]; then
	kill -TERM "$VPID"
	wait "$VPID"
	sed 's/^/[vlud] /' vlud.log
fi
exit $((FAILS > 0))
