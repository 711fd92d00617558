# clients/minivmm/minivmm.mk - the reference VMM (owner: minivmm).
#   $(O)/minivmm                   the VMM; libvlu's object and the protocol library are linked in (like
#                                  vluctl), so it needs only json-c at run time; the rig puts it and its
#                                  shared libraries into the guest
#   $(O)/tests/unit-minivmm-state  cmocka unit test of the state blob, traffic checker, ring driver, path
#                                  choice, sizes
MINIVMM_SRCS := main.c util.c mem.c vdev.c vq.c cvq.c traffic.c state.c path.c update.c link.c vlud.c edu.c
MINIVMM_OBJS := $(patsubst %.c,$(O)/clients/minivmm/%.o,$(MINIVMM_SRCS))
# full RELRO and every symbol bound at load (-z now): hardening, and no lazy binding on a new image's
# first calls of json-c and libc inside the pause of a live update (docs/BENCH.md)
MINIVMM_LDFLAGS := -Wl,-z,relro,-z,now
MINIVMM_LIBS := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c) -lm

# libvluproto.a is named directly: clients/*.mk are read before protocol/protocol.mk
$(O)/minivmm: $(MINIVMM_OBJS) $(O)/clients/libvlu/vlu.o $(O)/clients/libvlu/vlu-update.o \
		$(O)/clients/libvlu/vlu-teardown.o $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(MINIVMM_LDFLAGS) -o $@ $^ $(MINIVMM_LIBS)

MINIVMM_TEST_OBJS := $(O)/tests/unit/test-minivmm-state.o $(O)/clients/minivmm/state.o \
	$(O)/clients/minivmm/traffic.o $(O)/clients/minivmm/util.o $(O)/clients/minivmm/path.o \
	$(O)/clients/minivmm/vq.o $(O)/clients/minivmm/mem.o
$(O)/tests/unit-minivmm-state: $(MINIVMM_TEST_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

install-minivmm: $(O)/minivmm
	install -D -m 0755 $(O)/minivmm $(DESTDIR)$(BINDIR)/minivmm
	install -D -m 0644 $(TOP)/clients/minivmm/minivmm.1 $(DESTDIR)$(MANDIR)/man1/minivmm.1

.PHONY: install-minivmm
BINS += $(O)/minivmm
TEST_BINS += $(O)/tests/unit-minivmm-state
INSTALL_TARGETS += install-minivmm
