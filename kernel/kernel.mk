# kernel/kernel.mk - guest test programs of the kernel side of live update (kernel/tests/).
#
# $(O)/guest/vlu-ktest runs inside the rig's guest (tests/vm/scenarios/kernel-*.sh) against a real
# vhost-vdpa device; it is appended to GUEST_BINS, which the rig puts on the guest's PATH.
# The patch series itself (kernel/patches/*.patch) is applied and built by the rig (tests/vm/).

KT_OBJS := $(O)/kernel/tests/ktlib.o $(O)/kernel/tests/vlu-ktest.o
KT_BIN  := $(O)/guest/vlu-ktest

GUEST_BINS += $(KT_BIN)

$(KT_BIN): $(KT_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(KT_OBJS)

.PHONY: kernel-tests
kernel-tests: $(KT_BIN)
