#!/bin/sh
# minivmm-stock-va: live update on a stock kernel in VA mode (vdpa_sim use_va=1, the upstream
# default): path C chosen automatically, twice; zero frames lost (frames posted while suspended are queued
# and delivered after DRIVER_OK); nothing pinned before or after (VmPin 0).
# flavour: debian
# modules: stock
# use_va: 1
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

run auto --mem 256M --duration 6 --update-after 1.5 --updates 2
check_traffic auto 1200
expect auto/mode "$(val auto.out device: mode)" = va
check_update auto 1 C va 0
check_update auto 2 C va 0
exit $((FAILS > 0))
