#!/bin/sh
# minivmm-patched-pa: live update with the patched modules (VHOST_NEW_OWNER) in PA mode, 256 MiB:
# path A chosen automatically (NEW_OWNER + RESUME: vrings, eventfds and mappings kept, the pinned charge
# moves to the new image), twice; path B forced (reset with IOTLB_PERSIST, vrings re-created from the saved
# bases), twice, and once after the ring indices wrapped; path C forced once; path A with 1 GiB and
# --no-prefault.  Zero frames lost each time; VmPin of the new image = guest RAM.
# flavour: debian
# modules: patched
# use_va: 0
# devices: 1
# timeout: 300
# Output of each minivmm run: TAG.out (report lines "device:", "traffic:", "update N:", "verdict:") and
# TAG.log (its log) in the scenario's work directory; docs/MINIVMM.md describes both.
. /scenarios/lib/minivmm.sh

run auto --mem 256M --duration 6 --update-after 1.5 --updates 2
check_traffic auto 1200
expect auto/mode "$(val auto.out device: mode)" = pa
if grep -q "backend_offered=.*NEW_OWNER" auto.out; then t_ok auto/new-owner-offered; else t_fail auto/new-owner-offered "patched modules do not offer NEW_OWNER"; fi
check_update auto 1 A pa 262144
check_update auto 2 A pa 262144

run path-b --mem 256M --duration 6 --update-after 1.5 --updates 2 --path B
check_traffic path-b 1200
check_update path-b 1 B pa 262144
check_update path-b 2 B pa 262144

run path-c --mem 256M --duration 4 --update-after 1.5 --path C
check_traffic path-c 800
check_update path-c 1 C pa 262144
# path B re-creates the vrings from saved bases that wrapped (start 65000)
run wrapped --mem 64M --ring-base 65000 --duration 3 --update-after 1.2 --path B
check_traffic wrapped 600
check_update wrapped 1 B pa 65536

# --no-prefault: guest RAM fallocated, this image's page tables dropped after the pin (pages stay pinned)
run lazy --mem 1G --no-prefault --duration 4 --update-after 1.5
check_traffic lazy 800
check_update lazy 1 A pa 1048576
exit $((FAILS > 0))
