#!/bin/sh
# minivmm-vlud-patched: minivmm with its device from vlud on the patched modules (PA): a
# self-driven exec update on path A and on path B keeps the inherited fds, re-registers with reattach
# (the daemon kept the orphaned instance and its fds), nothing lost, VmPin moved to the new image.
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "vlud:", "traffic:", "update N:", "verdict:")
# and TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

start_vlud

runv path-a vm0 --mem 64M --duration 5 --update-after 1.5
check_traffic path-a 1200
check_update path-a 1 A pa 65536
expect path-a/connected-after-update "$(val path-a.out vlud: connected)" -eq 1
if grep -q "instance vm0 reattached" path-a.log; then t_ok path-a/reattached; else t_fail path-a/reattached "no reattach in log"; fi
vluctl --socket "$SOCK" release vm0
expect release/vm0 "$?" -eq 0

runv path-b vm1 --mem 64M --duration 5 --update-after 1.5 --path B
check_traffic path-b 1200
check_update path-b 1 B pa 65536
if grep -q "instance vm1 reattached" path-b.log; then t_ok path-b/reattached; else t_fail path-b/reattached "no reattach in log"; fi
stop_vlud
exit $((FAILS > 0))
