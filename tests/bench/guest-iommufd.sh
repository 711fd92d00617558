# tests/bench/guest-iommufd.sh - the guest half of `make bench`'s iommufd rows (docs/BENCH.md,
# docs/IOMMUFD.md): per guest-memory size, IOMMU_IOAS_CHANGE_PROCESS against unmap + re-map (the re-pin) and
# the first map, on the iommufd flavour's real VFIO device (QEMU's edu behind intel-iommu, bound to vfio-pci).
#
# Not a rig scenario by itself: tests/bench/run.sh writes the scenario bench-iommufd (a header with flavour
# iommufd, memory and timeout, the parameters below, then this file) into its own scenario directory with
# a copy of tests/vm/scenarios/lib/, so `make vm-check` never runs it.
#
# Parameters (set by run.sh before this text):
#   BENCH_REPS      moves of each kind per size          BENCH_MEMS   sizes of the memfd ("64M 256M 1G")
#   BENCH_IOF_MODES transfer (a second process that received the fds calls CHANGE_PROCESS, the first
#                   re-pins) and/or exec (the same process after exec, its old mm gone)
#
# Output (serial console): the TAP lines and one "IOFBENCH {...}" line per (mode, size) from
# tests/vm/guest/vlu-iofbench.c (collected by bench-report), and one TAP line per run for its exit status.
# Timings are never asserted; every move's VmPin and an edu DMA after it are.
# shellcheck shell=sh disable=SC1091,SC2154 # (the guest's scenario libraries; edu, bdf, dev are set by them)
. /scenarios/lib/tap.sh
. /scenarios/lib/edu.sh
: "${BENCH_REPS:=5}" "${BENCH_MEMS:=64M 256M 1G}" "${BENCH_IOF_MODES:=transfer exec}"

# bytes 1G -> 1073741824
mem_bytes() {
	case $1 in
	*G) echo $((${1%G} * 1024 * 1024 * 1024)) ;;
	*M) echo $((${1%M} * 1024 * 1024)) ;;
	*) echo 0 ;;
	esac
}

edu_find
edu_bind
echo "# bench-iommufd: edu at $bdf ($dev), modes '$BENCH_IOF_MODES', sizes '$BENCH_MEMS', reps $BENCH_REPS, $(nproc) cpus, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"
for mode in $BENCH_IOF_MODES; do
	for mem in $BENCH_MEMS; do
		b=$(mem_bytes "$mem")
		echo "# $(cut -d' ' -f1 /proc/uptime) $mode, $mem: first map, then $BENCH_REPS x (CHANGE_PROCESS, unmap + map)"
		vlu-iofbench --mode "$mode" --size "$b" --reps "$BENCH_REPS" --label "$mem" "$dev"
		expect "$mode-$mem/exit" $? -eq 0
	done
done
exit $((FAILS > 0))
