# clients/minivmm/minivmm.mk - the reference VMM (owner: minivmm).
#   $(O)/minivmm                 dynamically linked (json-c), for the host and installs
#   $(O)/guest/minivmm           static, for the rig's busybox guest (GUEST_BINS)
#   $(O)/tests/unit-minivmm-state  cmocka unit test of the state blob, traffic checker, path choice, sizes
MINIVMM_SRCS := main.c util.c mem.c vdev.c vq.c traffic.c state.c path.c update.c
MINIVMM_OBJS := $(patsubst %.c,$(O)/clients/minivmm/%.o,$(MINIVMM_SRCS))
MINIVMM_LIBS := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c) -lm

$(O)/minivmm: $(MINIVMM_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MINIVMM_LIBS)

# The guest has no json-c: link it statically (Debian's libjson-c-dev ships libjson-c.a).
# Sanitizers do not link statically, so the guest objects are compiled apart, without them.
MINIVMM_GUEST_OBJS := $(patsubst %.c,$(O)/guest/obj/minivmm/%.o,$(MINIVMM_SRCS))
$(O)/guest/obj/minivmm/%.o: $(TOP)/clients/minivmm/%.c
	@mkdir -p $(@D)
	$(CC) $(filter-out $(SAN_FLAGS),$(ALL_CFLAGS)) -c -o $@ $<

$(O)/guest/minivmm: $(MINIVMM_GUEST_OBJS)
	@mkdir -p $(@D)
	$(CC) $(filter-out $(SAN_FLAGS),$(ALL_LDFLAGS)) -static -o $@ $^ $(MINIVMM_LIBS)

MINIVMM_TEST_OBJS := $(O)/tests/unit/test-minivmm-state.o $(O)/clients/minivmm/state.o \
	$(O)/clients/minivmm/traffic.o $(O)/clients/minivmm/util.o $(O)/clients/minivmm/path.o
$(O)/tests/unit-minivmm-state: $(MINIVMM_TEST_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

install-minivmm: $(O)/minivmm
	install -D -m 0755 $(O)/minivmm $(DESTDIR)$(BINDIR)/minivmm

.PHONY: install-minivmm
BINS += $(O)/minivmm
TEST_BINS += $(O)/tests/unit-minivmm-state
GUEST_BINS += $(O)/guest/minivmm
INSTALL_TARGETS += install-minivmm
