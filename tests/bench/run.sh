#!/bin/bash
# tests/bench/run.sh - the driver of `make bench` (docs/BENCH.md).
#
#   run.sh all | host | vm | report
#
# host:   bench-fd and bench-ctl against the built daemon on this machine  -> $OUT/fd.json, ctl.json (+ .txt);
#         recovery after kill -9 under the real systemd (tests/bench/bench-systemd.sh, systemd-nspawn)
#         -> $OUT/sdrec.json (+ .txt); then the report (targets.txt, bench.txt, bench.json)
# vm:     one rig boot per module set (BENCH_MODULES, default "stock patched") running the pause benchmark
#         (tests/bench/guest-pause.sh) on every path the modules offer at each size of BENCH_MEMS
#         -> $OUT/vm-<modules>.log (the guest's log of that boot); then one boot of the iommufd flavour
#         (BENCH_IOMMUFD=1, the default) running tests/bench/guest-iommufd.sh: IOMMU_IOAS_CHANGE_PROCESS
#         against unmap + re-map on a VFIO device at the same sizes -> $OUT/vm-iommufd.log
# report: bench-report over what is there -> $OUT/bench.txt (targets first), bench.json ("targets"), pause.dat, pause.png
# all:    host, vm, report.
# quick:  the whole harness once at tiny sizes (`make bench-quick`, a step of `make check`): host benchmarks
#         with --quick (their tiny sizes, few repetitions; under the real systemd 10 fds, one kill), one guest boot (patched modules, 64 MiB, one
#         update per path, driver and guest RAM kind, touched and hugetlb; one iommufd boot, 64 MiB, one move of each kind per mode),
#         the report; results in $O/bench-quick.  TAP lines: one per harness step and the guest's own (an
#         update that failed, lost a frame or moved the wrong VmPin is "not ok").  Nothing about timings is
#         asserted: the point is that a bench that no longer builds or runs fails CI.
#
# Environment: O (build dir), VLU_BUILD, BENCH_REPS, BENCH_RUNS (minivmm runs per row, default 1),
# BENCH_MEMS, BENCH_VM_MEMORY, BENCH_MODULES ("none": no vhost-vdpa boot),
# BENCH_PATHS (force paths), BENCH_DRIVER (default "vlud standalone": updates driven by the daemon, and by
# minivmm alone without a daemon), BENCH_RAM (default "touched lazy hugetlb": minivmm by default, with
# --no-prefault, with --hugetlb; also nodefer, hugetlb-nodefer: tests/bench/guest-pause.sh),
# BENCH_NOASLR_MEMS (default "64M 1G": the path-A rows with ASLR off in the guest, "" = none),
# BENCH_IOMMUFD (1: the iommufd rows, 0: not), BENCH_IOF_MODES (default "transfer exec"),
# RIG_BINS.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
export VLU_BUILD=${VLU_BUILD:-$O}
OUT=${BENCH_OUT:-$O/bench}
if [ "${1:-}" = quick ]; then
	OUT=${BENCH_OUT:-$O/bench-quick}
	BENCH_REPS=1 BENCH_MEMS=64M BENCH_VM_MEMORY=1G BENCH_MODULES=patched BENCH_RAM="touched hugetlb"
	BENCH_NOASLR_MEMS=64M
fi
mkdir -p "$OUT"
BENCH_REPS=${BENCH_REPS:-5}
BENCH_RUNS=${BENCH_RUNS:-1}
BENCH_MEMS=${BENCH_MEMS:-64M 256M 1G 2G}
BENCH_VM_MEMORY=${BENCH_VM_MEMORY:-4G}
BENCH_MODULES=${BENCH_MODULES:-stock patched}
# none: no vhost-vdpa boot (only the iommufd rows)
[ "$BENCH_MODULES" = none ] && BENCH_MODULES=
BENCH_PATHS=${BENCH_PATHS:-}
BENCH_DRIVER=${BENCH_DRIVER:-vlud standalone}
BENCH_RAM=${BENCH_RAM:-touched lazy hugetlb}
BENCH_NOASLR_MEMS=${BENCH_NOASLR_MEMS-64M 1G}
BENCH_IOMMUFD=${BENCH_IOMMUFD:-1}
BENCH_IOF_MODES=${BENCH_IOF_MODES:-transfer exec}
# the rig boots: one per module set (vhost-vdpa pause), "iommufd" for the CHANGE_PROCESS rows
VM_SETS=$BENCH_MODULES
[ "$BENCH_IOMMUFD" = 1 ] && VM_SETS="$VM_SETS iommufd"
T0=$(date +%s)
PROGRESS_TAG=bench
PROGRESS_T0=$T0
. "$TOP/tests/bench/progress.sh"
trap 'progress_stop' EXIT

say() { progress_say "$@"; }

do_host() { # [extra args for bench-fd and bench-ctl]
	say "host: fd handoff through vlud (bench-fd) ..."
	"$O/bench/bench-fd" --json "$OUT/fd.json" "$@" | tee "$OUT/fd.txt" || { say "bench-fd failed"; return 1; }
	say "host: control plane with concurrent clients (bench-ctl) ..."
	"$O/bench/bench-ctl" --json "$OUT/ctl.json" "$@" | tee "$OUT/ctl.txt" || { say "bench-ctl failed"; return 1; }
}

# recovery after kill -9 under the real systemd (tests/bench/bench-systemd.sh: systemd-nspawn, root); when the
# container cannot run, sdrec.json says "not measured" and why, and this step fails (never a pass)
do_host_systemd() { # [--quick]
	say "host: recovery after kill -9 under the real systemd (bench-systemd.sh, systemd-nspawn) ..."
	VLU_BUILD=$VLU_BUILD VLU_TOP=$TOP bash "$TOP/tests/bench/bench-systemd.sh" --json "$OUT/sdrec.json" "$@" |
		tee "$OUT/sdrec.txt" || { say "bench-systemd.sh: not measured (above)"; return 1; }
}

# quick: every step once, as TAP (the guest's lines come from the rig's output)
tap() { # NAME COMMAND...
	local n=$1
	shift
	if "$@" > "$OUT/$n.step.log" 2>&1; then
		echo "ok - bench-quick/$n"
	else
		echo "not ok - bench-quick/$n: failed (log $OUT/$n.step.log)"
		tail -n 20 "$OUT/$n.step.log" | sed 's/^/# /'
		return 1
	fi
}

do_quick() {
	local r=0 m
	rm -f "$OUT"/*.json "$OUT"/vm-*.log "$OUT"/rig-*.out
	tap host do_host --quick || r=1
	tap host-systemd do_host_systemd --quick || r=1
	tap vm do_vm || r=1
	for m in $VM_SETS; do
		grep -E '^(ok|not ok) ' "$OUT/rig-$m.out" 2> /dev/null
	done
	tap report do_report || r=1
	# the report must have a row per update the guest ran, and JSON that parses
	if [ -s "$OUT/bench.json" ] && jq -e "type == \"object\" and length > 0" \
		"$OUT/bench.json" > /dev/null 2>&1; then
		echo "ok - bench-quick/report-json"
	else
		echo "not ok - bench-quick/report-json: $OUT/bench.json missing or not JSON"
		r=1
	fi
	# the iommufd boot's rows reached the report (one per mode, the guest checked each move itself)
	if [ "$BENCH_IOMMUFD" = 1 ]; then
		local want n why
		want=$(echo "$BENCH_IOF_MODES" | wc -w)
		n=$(jq -r '.iommufd // [] | length' "$OUT/bench.json" 2> /dev/null)
		if why=$(grep -m1 -o 'SKIP flavour iommufd:.*' "$OUT/rig-iommufd.out" 2> /dev/null); then
			echo "ok - bench-quick/iommufd-rows # SKIP ${why#SKIP }"
		elif [ "${n:-0}" -eq "$want" ]; then
			echo "ok - bench-quick/iommufd-rows"
		else
			echo "not ok - bench-quick/iommufd-rows: ${n:-no} iommufd rows in $OUT/bench.json, expected $want (log $OUT/vm-iommufd.log)"
			r=1
		fi
	fi
	return $r
}

# the scenario of the iommufd boot (tests/bench/guest-iommufd.sh with its parameters)
iof_scenario() {
	local mb=0 x
	for x in $BENCH_MEMS; do
		case $x in *G) mb=$((mb + ${x%G} * 1024)) ;; *M) mb=$((mb + ${x%M})) ;; esac
	done
	echo "#!/bin/sh"
	echo "# bench-iommufd: IOMMU_IOAS_CHANGE_PROCESS against unmap + re-map per guest-memory size on a VFIO"
	echo "# device; generated by tests/bench/run.sh from tests/bench/guest-iommufd.sh"
	echo "# flavour: iommufd"
	echo "# use_va: 0"
	echo "# devices: 1"
	echo "# memory: $BENCH_VM_MEMORY"
	# generous for TCG: pinning costs ~2-4 ms per MiB there, 2 pins per repetition and mode
	echo "# timeout: $((600 + mb * BENCH_REPS * 2 / 10))"
	echo "BENCH_REPS='$BENCH_REPS'"
	echo "BENCH_MEMS='$BENCH_MEMS'"
	echo "BENCH_IOF_MODES='$BENCH_IOF_MODES'"
	cat "$TOP/tests/bench/guest-iommufd.sh"
}

do_vm() {
	local drv=$BENCH_DRIVER scen=$OUT/scenarios m name rc=0 t rig
	rig=$(rig_snapshot "$OUT/rig") || { say "cannot copy the rig"; return 1; }
	rm -rf "$scen"
	mkdir -p "$scen"
	# the iommufd scenario sources the rig's scenario libraries (lib/tap.sh, lib/edu.sh)
	cp -r "$TOP/tests/vm/scenarios/lib" "$scen/lib"
	for m in $VM_SETS; do
		name=bench-$m
		if [ "$m" = iommufd ]; then
			iof_scenario > "$scen/$name.sh"
			continue
		fi
		{
			echo "#!/bin/sh"
			echo "# $name: pause of a live update per path against guest memory size ($m modules); generated"
			echo "# by tests/bench/run.sh from tests/bench/guest-pause.sh"
			echo "# flavour: debian"
			echo "# modules: $m"
			echo "# use_va: 0"
			echo "# devices: 1"
			echo "# memory: $BENCH_VM_MEMORY"
			echo "# timeout: 3000"
			echo "BENCH_REPS='$BENCH_REPS'"
			echo "BENCH_RUNS='$BENCH_RUNS'"
			echo "BENCH_MEMS='$BENCH_MEMS'"
			echo "BENCH_PATHS='$BENCH_PATHS'"
			echo "BENCH_DRIVER='$drv'"
			echo "BENCH_RAM='$BENCH_RAM'"
			echo "BENCH_NOASLR_MEMS='$BENCH_NOASLR_MEMS'"
			cat "$TOP/tests/bench/guest-pause.sh"
		} > "$scen/$name.sh"
	done
	for m in $VM_SETS; do
		name=bench-$m
		if [ "$m" = iommufd ]; then
			say "rig: booting a guest ($BENCH_VM_MEMORY, flavour iommufd, VFIO device edu): modes '$BENCH_IOF_MODES' x sizes '$BENCH_MEMS' x $BENCH_REPS x (CHANGE_PROCESS, unmap + map) ..."
		else
			say "rig: booting a guest ($BENCH_VM_MEMORY, $m modules): drivers '$drv' x guest RAM '$BENCH_RAM' x paths '${BENCH_PATHS:-offered}' x sizes '$BENCH_MEMS' x $BENCH_RUNS run(s) x $BENCH_REPS updates ..."
		fi
		t=$(date +%s)
		# the guest is TCG on the host's cores: other load on the host inflates and spreads its times
		echo "$m: host load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cpus)" > "$OUT/load-$m.txt"
		say "host load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cpus"
		# progress from the guest's serial log while it runs; the rig's TAP lines after; the guest's log is the result
		local try rrc
		for try in 1 2; do
			rm -f "$OUT/rig-$m.out"
			progress_start "$m" "$O/vm/logs/boot*-$name.serial.log" '^(  \| # |VMSTART |VMEND )' "$OUT/rig-$m.out" '^# '
			VLUD_RIG_SCENARIO_DIR=$scen VLUD_RIG_PATCH_DIR=${VLUD_RIG_PATCH_DIR:-$TOP/kernel/patches} O=$O \
				RIG_BINS="${RIG_BINS:-}" bash "$rig" check "$name" > "$OUT/rig-$m.out" 2>&1
			rrc=$?
			progress_stop
			# a guest that died before the scenario started (TCG boot flake, e.g. an Oops in early boot) is
			# booted once more; anything else counts
			grep -q "the guest never reached it" "$OUT/rig-$m.out" && [ $try -eq 1 ] || break
			say "$m: the guest died before the benchmark started (log $O/vm/logs/$name.log); booting again"
		done
		[ $rrc -eq 0 ] || rc=1
		echo "$m: host load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load-$m.txt"
		grep -E '^(ok|not ok|[0-9]+ passed)' "$OUT/rig-$m.out" | while IFS= read -r l; do say "$m: $l"; done
		cp "$O/vm/logs/$name.log" "$OUT/vm-$m.log" 2> /dev/null
		say "rig: $m done in $(($(date +%s) - t)) s ($(grep -c -E '^  \| (BENCH|IOFBENCH) ' "$OUT/vm-$m.log" 2> /dev/null) runs recorded)"
	done
	return $rc
}

do_report() {
	local args=() m
	[ -f "$OUT/fd.json" ] && args+=(--fd "$OUT/fd.json")
	[ -f "$OUT/ctl.json" ] && args+=(--ctl "$OUT/ctl.json")
	[ -f "$OUT/sdrec.json" ] && args+=(--sdrec "$OUT/sdrec.json")
	for m in $VM_SETS; do [ -f "$OUT/vm-$m.log" ] && args+=(--vm-log "$OUT/vm-$m.log"); done
	"$O/bench/bench-report" --out "$OUT" "${args[@]}" || return 1
	if command -v gnuplot > /dev/null && [ -s "$OUT/pause.dat" ]; then
		gnuplot -e "datafile='$OUT/pause.dat'; outfile='$OUT/pause.png'" "$TOP/tests/bench/pause.gp" &&
			say "plot: $OUT/pause.png"
	else
		say "no plot (gnuplot missing or no pause data)"
	fi
	{
		cat "$OUT/targets.txt"
		echo
		cat "$OUT/pause.txt"
		echo
		cat "$OUT"/load-*.txt 2> /dev/null
		[ -f "$OUT/fd.txt" ] && cat "$OUT/fd.txt" && echo
		[ -f "$OUT/ctl.txt" ] && cat "$OUT/ctl.txt" && echo
		[ -f "$OUT/sdrec.txt" ] && cat "$OUT/sdrec.txt"
	} > "$OUT/bench.txt"
	cat "$OUT/targets.txt" "$OUT/pause.txt"
	say "results: $OUT/bench.txt, $OUT/bench.json, $OUT/pause.png"
}

rc=0
case ${1:-all} in
host)
	do_host || rc=1
	do_host_systemd || rc=1
	# the report of the host part alone: rig logs of an earlier run in $OUT are not mixed in
	VM_SETS='' do_report || rc=1
	;;
vm) do_vm || rc=1; do_report || rc=1 ;;
report) do_report || rc=1 ;;
quick) do_quick || rc=1 ;;
all)
	do_host || rc=1
	do_host_systemd || rc=1
	do_vm || rc=1
	do_report || rc=1
	;;
*) sed -n '2,16p' "$0"; exit 2 ;;
esac
say "done in $(($(date +%s) - T0)) s (exit $rc)"
exit $rc
