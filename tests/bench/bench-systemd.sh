#!/bin/bash
# tests/bench/bench-systemd.sh - recovery after kill -9 of vlud under the real systemd (a step of the host
# part of `make bench`, docs/BENCH.md): this machine's systemd as PID 1 of a systemd-nspawn container, the
# shipped vlud.socket and vlud.service with their whole sandbox (tests/integration/nspawn.sh, as
# test-systemd.sh), one container boot per number of held fds, tests/bench/bench-sdrec.c inside.
#
#   bench-systemd.sh --json FILE [--quick]      (root; needs systemd-nspawn)
#
# Held fds 10, 100, 1000, 5 kills each (--quick: 10 fds, 1 kill).  Prints a table on stdout and writes FILE:
# {"bench":"sdrec", "systemd":VERSION, "rows":[bench-sdrec's rows]}, or, when the container cannot be
# booted or the measurement fails, {"bench":"sdrec", "not_measured":REASON} and exit 1 (never a pass).
#
# The bench's own settings, beside the shipped ones (docs/BENCH.md says why):
#   - drop-in: RestartSec=0 (the shipped 1 s is systemd's restart delay, which the target excludes;
#     subtracting it would leave whatever systemd's timer adds to the second in the result) and StartLimitIntervalSec=0 (15 restarts in a minute would hit
#     systemd's default start limit of 5 in 10 s);
#   - vlud.conf: the shipped limits (max_fds_per_instance 252); 1000 fds are held by 4 instances of 250.
# Environment: VLU_BUILD (build directory), VLU_TOP (source tree), BENCH_SD_HELD (held-fd counts),
# BENCH_SD_REPS (kills per count), BENCH_SD_DROPIN (a further drop-in for vlud.service, e.g. one that turns the
# sandbox off to see its share of the restart: docs/BENCH.md).
set -uo pipefail
TOP=$(cd "${VLU_TOP:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
B=$(cd "${VLU_BUILD:-build}" && pwd)
JSON='' QUICK=0
while [ $# -gt 0 ]; do
	case $1 in
	--json) JSON=$2; shift ;;
	--quick) QUICK=1 ;;
	*) echo "usage: bench-systemd.sh --json FILE [--quick]" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$JSON" ] || { echo "usage: bench-systemd.sh --json FILE [--quick]" >&2; exit 2; }
if [ $QUICK = 1 ]; then
	HELD=${BENCH_SD_HELD:-10} REPS=${BENCH_SD_REPS:-1}
else
	HELD=${BENCH_SD_HELD:-10 100 1000} REPS=${BENCH_SD_REPS:-5}
fi
. "$TOP/tests/integration/nspawn.sh"

echo "recovery after kill -9 under the real systemd (PID 1 of a systemd-nspawn container, shipped units, RestartSec=0): ms from the kill"
not_measured() { # REASON
	echo "  not measured: $1"
	jq -n --arg why "$1" '{bench: "sdrec", not_measured: $why}' > "$JSON"
	exit 1
}
why=$(nspawn_unavailable)
[ -z "$why" ] || not_measured "$why"
[ -x "$B/bench/bench-sdrec" ] || not_measured "$B/bench/bench-sdrec is not built"
VER=$(systemctl --version 2> /dev/null | sed -n '1p')
echo "  $VER; vlud's main() from status' uptime_ms (+-0.5 ms)${BENCH_SD_DROPIN:+; extra drop-in $BENCH_SD_DROPIN}"
printf '  %5s %4s %4s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n' held inst reps total_min total_med systemd death_seen \
	restart fork_main exec_bnd vlud_min vlud_med vlud_ready
echo "  (medians unless _min; systemd = kill -> vlud's main() = death_seen + restart + fork_main; fork_main holds vlud's exec"
echo "  and loading, at most exec_bnd (fork -> exit of vlud --version, no sandbox); vlud = main() -> every fd adopted and"
echo "  status answered; vlud_ready = main() -> READY=1 as systemd saw it)"

T=$(mktemp -d /tmp/vlu-sdbench.XXXXXX)
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT
rows=()
for n in $HELD; do
	d=$T/$n
	nspawn_prepare "$d" "$TOP"
	cat > "$d/units/vlud.service.d/bench.conf" << 'EOF'
# bench only (tests/bench/bench-systemd.sh): no restart delay, no start limit over many kills
[Unit]
StartLimitIntervalSec=0
[Service]
RestartSec=0
EOF
	if [ -n "${BENCH_SD_DROPIN:-}" ]; then
		cp "$BENCH_SD_DROPIN" "$d/units/vlud.service.d/zz-extra.conf" || not_measured "cannot read BENCH_SD_DROPIN"
	fi
	cat > "$d/etc/vlud.conf" << 'EOF'
{ "operators": { "uids": [0] },
  "vmms": [ { "uids": [0], "fd_types": ["memfd"], "max_fds": 250 } ] }
EOF
	cat > "$d/units/vlu-bench.service" << EOF
[Unit]
Description=vlud under systemd: recovery after kill -9 with $n held fds
After=sysinit.target systemd-sysusers.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStartPre=/bin/systemctl start vlud.socket
ExecStart=$B/bench/bench-sdrec --socket /run/vlud/vlud.sock --held $n --reps $REPS --vlud $NSPAWN_SB/vlud --json /vlu-out/row.json
StandardOutput=file:/vlu-out/row.txt
StandardError=file:/vlu-out/log.txt
EOF
	nspawn_boot "$d" "$B" "$TOP" vlu-bench.service $((120 + n * REPS / 10))
	rc=$?
	if [ ! -s "$d/out/row.json" ] || ! jq -e 'type == "object"' "$d/out/row.json" > /dev/null 2>&1; then
		sed 's/^/  # /' "$d/out/log.txt" 2> /dev/null | tail -20
		[ -s "$d/out/log.txt" ] || sed 's/\x1b\[[0-9;]*m//g; s/^/  # /' "$d/boot.log" | tail -20
		not_measured "$n held fds: no result from inside the container (nspawn exit $rc; bench-sdrec: $(tail -n1 "$d/out/log.txt" 2> /dev/null))"
	fi
	cat "$d/out/row.txt"
	rows+=("$d/out/row.json")
done
jq -s --arg v "$VER" '{bench: "sdrec", systemd: $v, restart_sec: 0, rows: .}' "${rows[@]}" > "$JSON" ||
	not_measured "cannot write $JSON"
echo "# JSON: $JSON"
