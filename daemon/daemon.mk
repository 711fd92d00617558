# daemon/ - vlud, the supervisor daemon; its unit tests (state, vmpin); units and configuration.
VLUD_SRCS := main.c clock.c config.c policy.c conn.c commands.c instance.c held.c device.c persist.c state.c caps.c \
	     fdtype.c events.c iommufd-decide.c update.c update-iommufd.c update-decide.c update-preflight.c update-phases.c \
	     update-rollback.c update-restore.c update-held.c update-proc.c vmpin.c spawn.c closer.c devstate.c
VLUD_OBJS := $(VLUD_SRCS:%.c=$(O)/daemon/%.o)

$(VLUD_OBJS) $(O)/tests/unit/test-state.o $(O)/tests/unit/test-vmpin.o $(O)/tests/unit/test-devstate.o: ALL_CFLAGS += -I$(TOP)/daemon -DVLUD_VERSION='"$(VERSION)"'

# closer.c runs a worker thread
$(VLUD_OBJS): ALL_CFLAGS += -pthread

$(O)/vlud: $(VLUD_OBJS) $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -pthread -o $@ $(VLUD_OBJS) $(O)/libvluproto.a $(PKG_LIBS) $(EV_LIBS)

BINS += $(O)/vlud

# unit test of the state serialisation (pure code: daemon/state.c)
$(O)/tests/unit-state: $(O)/tests/unit/test-state.o $(O)/daemon/state.o $(O)/daemon/update-decide.o $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

TEST_BINS += $(O)/tests/unit-state

# unit test of the VmPin/VmLck parser (daemon/vmpin.c)
$(O)/tests/unit-vmpin: $(O)/tests/unit/test-vmpin.o $(O)/daemon/vmpin.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

TEST_BINS += $(O)/tests/unit-vmpin

# unit test of the device-state read and comparison (daemon/devstate.c: the update verdict's
# device_state, read by update-preflight.c and update-phases.c)
$(O)/tests/unit-devstate: $(O)/tests/unit/test-devstate.o $(O)/daemon/devstate.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

TEST_BINS += $(O)/tests/unit-devstate

# ---- install ----
VLUD_UNIT_SED = -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g'

.PHONY: install-vlud
install-vlud: $(O)/vlud
	install -D -m 0755 $(O)/vlud $(DESTDIR)$(SBINDIR)/vlud
	install -D -m 0644 $(TOP)/config/vlud.conf $(DESTDIR)$(SYSCONFDIR)/vlud/vlud.conf
	install -D -m 0644 $(TOP)/config/demo.conf $(DESTDIR)$(DATADIR)/vlud/demo.conf
	install -d $(DESTDIR)$(UNITDIR)
	sed $(VLUD_UNIT_SED) $(TOP)/systemd/vlud.service > $(DESTDIR)$(UNITDIR)/vlud.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vlud.service
	install -m 0644 $(TOP)/systemd/vlud.socket $(DESTDIR)$(UNITDIR)/vlud.socket
	install -D -m 0644 $(TOP)/systemd/vlud.sysusers $(DESTDIR)$(LIBDIR)/sysusers.d/vlud.conf
	install -D -m 0644 $(TOP)/docs/CONFIG.md $(DESTDIR)$(DATADIR)/doc/vlud/CONFIG.md

INSTALL_TARGETS += install-vlud

# ---- checks (TAP, run by `make check-host` through CHECK_TARGETS) ----
# The shipped configuration files must load, and the units must pass `systemd-analyze verify`
# (ExecStart pointed at the built binary, since verify wants it to exist).
.PHONY: vlud-static-check
vlud-static-check: $(O)/vlud
	@for f in $(TOP)/config/vlud.conf $(TOP)/config/demo.conf; do \
		if $(O)/vlud --check-config --config $$f >/dev/null 2>$(O)/vlud-check-config.err; \
		then echo "ok - vlud/check-config $$(basename $$f)"; \
		else echo "not ok - vlud/check-config $$(basename $$f): $$(head -1 $(O)/vlud-check-config.err)"; fi; \
	done
	@if ! command -v systemd-analyze >/dev/null; then \
		echo "ok - vlud/systemd-analyze-verify # SKIP systemd-analyze is not installed"; \
	else \
		d=$(O)/units-verify; rm -rf $$d; mkdir -p $$d; \
		sed -e 's|@SBINDIR@/vlud|$(abspath $(O))/vlud|g' $(VLUD_UNIT_SED) $(TOP)/systemd/vlud.service > $$d/vlud.service; \
		cp $(TOP)/systemd/vlud.socket $$d/vlud.socket; \
		if systemd-analyze verify $$d/vlud.service $$d/vlud.socket >$$d/out 2>&1; \
		then echo "ok - vlud/systemd-analyze-verify"; \
		else echo "not ok - vlud/systemd-analyze-verify: $$(grep -v FileDescriptorStorePreserve $$d/out | head -3 | tr '\n' ' ')"; fi; \
	fi

CHECK_TARGETS += vlud-static-check
