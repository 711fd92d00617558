#!/bin/bash
# tests/vm/soak/run.sh - the chaos soak (`make soak`, docs/SOAK.md): one rig boot per module set
# (SOAK_MODULES, default "stock patched"), each running lib/soak.sh with SOAK_KILLS kills (default 1000)
# from the seed SOAK_SEED (default: a random one, printed first so that the run can be replayed) and the
# plan SOAK_PLAN (mixed, phase or delay: lib/soak.sh).
# The scenarios are written for this run into $O/soak/scenarios (with the rig's scenario library); the TAP
# output and the soak's summaries go to $O/soak/soak.log and $O/soak/report.txt.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
KILLS=${SOAK_KILLS:-1000}
SEED=${SOAK_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
MODULES=${SOAK_MODULES:-stock patched}
PLAN=${SOAK_PLAN:-mixed}
case $KILLS in '' | *[!0-9]*) echo "soak: SOAK_KILLS must be a number" >&2; exit 2 ;; esac
case $SEED in '' | *[!0-9]*) echo "soak: SOAK_SEED must be a number" >&2; exit 2 ;; esac
case $PLAN in mixed | phase | delay) ;; *) echo "soak: SOAK_PLAN: mixed, phase or delay" >&2; exit 2 ;; esac
OUT=$O/soak
DIR=$OUT/scenarios
rm -rf "$DIR"
mkdir -p "$DIR/lib"
cp "$TOP"/tests/vm/scenarios/lib/*.sh "$DIR/lib/"
names=()
for m in $MODULES; do
	case $m in stock | patched) ;; *) echo "soak: SOAK_MODULES: stock, patched" >&2; exit 2 ;; esac
	cat > "$DIR/soak-$m.sh" <<-EOS
		#!/bin/sh
		# soak-$m: the chaos soak on the $m modules (written by tests/vm/soak/run.sh)
		# flavour: debian
		# modules: $m
		# use_va: 0
		# devices: 1
		# timeout: $((KILLS * 20 + 300))
		SOAK_KILLS=$KILLS
		SOAK_SEED=$SEED
		SOAK_PLAN=$PLAN
		. /scenarios/lib/soak.sh
		soak_run
		exit \$((FAILS > 0))
	EOS
	names+=("soak-$m")
done
echo "# soak: SOAK_SEED=$SEED SOAK_KILLS=$KILLS SOAK_MODULES=\"$MODULES\" SOAK_PLAN=$PLAN (replay with these)"
VLUD_RIG_SCENARIO_DIR=$DIR bash "$TOP/tests/vm/rig.sh" check "${names[@]}" | tee "$OUT/soak.log"
rc=${PIPESTATUS[0]}
{
	echo "SOAK_SEED=$SEED SOAK_KILLS=$KILLS SOAK_MODULES=\"$MODULES\" SOAK_PLAN=$PLAN"
	for n in "${names[@]}"; do
		# the summary soak.sh printed (comment lines of the guest's log)
		sed -n 's/^  | # //p' "$O/vm/logs/$n.log" 2> /dev/null | grep -E '^(soak:|kills |outcomes:|  |longest recovery|traffic checks)'
	done
	grep -E '^not ok' "$OUT/soak.log"
} > "$OUT/report.txt"
echo "# soak: report in ${OUT#"$TOP"/}/report.txt, logs in ${O#"$TOP"/}/vm/logs/"
exit "$rc"
