#!/bin/sh
# minivmm-patched-va: live update with the patched modules in VA mode (vdpa_sim use_va=1): the
# device offers IOTLB_REMAP, so the new image remaps its new user address after VHOST_NEW_OWNER; path A
# automatically (twice), B forced (twice), C forced (once), A with four ranges remapped in one batch; zero
# frames lost; VmPin 0 throughout.
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

run auto --mem 256M --duration 6 --update-after 1.5 --updates 2
check_traffic auto 1200
expect auto/mode "$(val auto.out device: mode)" = va
if grep -q "backend_offered=.*NEW_OWNER" auto.out; then t_ok auto/new-owner-offered; else t_fail auto/new-owner-offered "patched modules do not offer NEW_OWNER"; fi
check_update auto 1 A va 0
check_update auto 2 A va 0

run path-b --mem 256M --duration 6 --update-after 1.5 --updates 2 --path B
check_traffic path-b 1200
check_update path-b 1 B va 0
check_update path-b 2 B va 0

run path-c --mem 256M --duration 4 --update-after 1.5 --path C
check_traffic path-c 800
check_update path-c 1 C va 0
# IOTLB_REMAP of four ranges in one batch
run chunked --mem 256M --chunk 64M --duration 4 --update-after 1.5
check_traffic chunked 800
check_update chunked 1 A va 0
expect chunked/four-ranges "$(val chunked.out device: maps)" -eq 4
exit $((FAILS > 0))
