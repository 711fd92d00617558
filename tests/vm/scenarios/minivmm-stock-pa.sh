#!/bin/sh
# minivmm-stock-pa: live update on a stock kernel in PA mode: path C chosen automatically
# (reopen + re-pin), twice, with 256 MiB of guest RAM; zero frames lost; frames posted while suspended
# are queued in the TX ring and delivered after DRIVER_OK; VmPin of the new image equals guest RAM.
# The same with the mapping split in four ranges, and after the 16-bit ring indices wrapped.  Forcing path A is refused before anything is
# touched; a failed exec rolls back (RESUME) and traffic comes back.
# flavour: debian
# modules: stock
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

run auto --mem 256M --duration 6 --update-after 1.5 --updates 2
check_traffic auto 1200
check_update auto 1 C pa 262144
check_update auto 2 C pa 262144
if grep -q "auto: no NEW_OWNER" auto.log; then t_ok auto/reason-logged; else t_fail auto/reason-logged "no path reason in log"; fi

# four ranges in one batched IOTLB sequence, re-pinned together on path C
run chunked --mem 256M --chunk 64M --duration 4 --update-after 1.5
check_traffic chunked 800
check_update chunked 1 C pa 262144
expect chunked/four-ranges "$(val chunked.out device: maps)" -eq 4

# the update happens after the ring indices wrapped (start 65000, ~1000 frames before the update)
run wrapped --mem 64M --ring-base 65000 --duration 3 --update-after 1.2
check_traffic wrapped 600
check_update wrapped 1 C pa 65536

run forced-a --mem 64M --duration 2 --update-after 1 --path A
expect forced-a/exit-status-1 "$RC" -eq 1
expect forced-a/update1-refused "$(val forced-a.out "update 1:" ok)" -eq 0
if grep -q "refused before touching anything: path A needs NEW_OWNER" forced-a.log; then
	t_ok forced-a/reason
else
	t_fail forced-a/reason "no refusal reason in log"
fi
expect forced-a/traffic-unaffected-none-lost "$(val forced-a.out traffic: lost)" -eq 0
expect forced-a/traffic-unaffected-all-echoed "$(val forced-a.out traffic: echoed)" -eq "$(val forced-a.out traffic: sent)"

run exec-fail --mem 64M --duration 3 --update-after 1 --exec /nonexistent
expect exec-fail/exit-status-1 "$RC" -eq 1
expect exec-fail/update1-failed "$(val exec-fail.out "update 1:" ok)" -eq 0
if grep -q "rolling back" exec-fail.log; then t_ok exec-fail/rolled-back; else t_fail exec-fail/rolled-back "no rollback in log"; fi
expectf exec-fail/echo-after-rollback "$(val exec-fail.out "update 1:" pause_echo_gap_ms)" '>' 0
expect exec-fail/none-lost "$(val exec-fail.out traffic: lost)" -eq 0
expect exec-fail/all-echoed "$(val exec-fail.out traffic: echoed)" -eq "$(val exec-fail.out traffic: sent)"
exit $((FAILS > 0))
