#!/bin/sh
# flavour: debian
# modules: patched
# use_va: 1
# devices: 1
# timeout: 300
#
# Hand-over with consent (va mode): NEW_OWNER without consent and with consent for another pid refused (EPERM),
# query (CONSENT, pinned_pages), armed take-over; a hostile previous owner keeping a copy of the fd (SET_STATUS
# with all 256 values, SUSPEND, RESUME, SET_BACKEND_FEATURES, IOTLB UPDATE/INVALIDATE/BATCH_BEGIN/BATCH_END/REMAP,
# SET_VRING_*, NEW_OWNER, ARM) fails with EPERM/EFAULT while the new owner's datapath runs and a decoy at the old
# address stays untouched; a batch left open (EBUSY), REMAP inside a batch then RESUME (EINVAL until BATCH_END);
# 100 ping-pong hand-overs with VmPin on both sides; NEW_OWNER while the old owner loops IOTLB updates; two
# NEW_OWNER at once; ASID 1 mappings counted (PA); a non-root owner; ENOMEM after the owner died, nothing changed.
# See kernel/README.md.
if ! command -v vlu-ktest > /dev/null; then
	echo "not ok - ${VLUD_SCENARIO:-kernel-handover-va}/run: vlu-ktest is not on PATH (make kernel-tests)"
	exit 1
fi
exec vlu-ktest handover /dev/vhost-vdpa-0
