#!/bin/sh
# minivmm-traffic: loopback traffic without an update through vdpa_sim_net in PA mode:
# every frame echoed once and intact (also across the 16-bit ring index wrap), all guest RAM pinned;
# the JSON verdict; one VMM per device;
# usage and setup errors have their exit status.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

run plain --mem 256M --duration 3 --rate 1000
check_traffic plain 800
expect plain/mode "$(val plain.out device: mode)" = pa
expect plain/guest-ram-pinned "$(val plain.out device: vmpin_expected_kb)" -eq 262144
expect plain/no-update "$(val plain.out traffic: updates)" -eq 0

# 16-bit ring indices wrapping (they start at 65500)
run wrap --mem 16M --duration 2 --ring-base 65500
check_traffic wrap 600

run json --mem 16M --duration 1 --json
expect json/exit-status "$RC" -eq 0
expect json/one-line "$(wc -l < json.out)" -eq 1
if grep -q '^{.*"traffic":{"sent":[1-9][0-9]*,"echoed":[1-9].*"verdict":"pass".*}$' json.out; then
	t_ok json/verdict-pass
else
	t_fail json/verdict-pass "no single JSON object with verdict pass"
fi

# a second VMM cannot open the device while the first holds it (vhost-vdpa: EBUSY), the first is unaffected
minivmm --device "$DEV" --mem 16M --duration 4 > first.out 2> first.log &
pid=$!
sleep 2
run second --mem 16M --duration 1
expect second/open-refused-exit-3 "$RC" -eq 3
if grep -q "busy" second.log; then t_ok second/ebusy-reported; else t_fail second/ebusy-reported "no EBUSY in log"; fi
wait $pid
RC=$?
sed 's/^/[first] /' first.log first.out
check_traffic first 1000

run badmem --mem 1K
expect usage/bad-mem-exit-2 "$RC" -eq 2
run badpath --path D
expect usage/bad-path-exit-2 "$RC" -eq 2
DEV=/dev/vhost-vdpa-9
run nodev --mem 16M --duration 1
DEV=/dev/vhost-vdpa-0
expect setup/missing-device-exit-3 "$RC" -eq 3
exit $((FAILS > 0))
