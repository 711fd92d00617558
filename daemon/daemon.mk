# daemon/ - vlud, the supervisor daemon; its state unit test; units and configuration.
VLUD_SRCS := main.c config.c policy.c conn.c commands.c instance.c held.c device.c persist.c state.c caps.c \
	     fdtype.c events.c update.c vmpin.c spawn.c
VLUD_OBJS := $(VLUD_SRCS:%.c=$(O)/daemon/%.o)

$(VLUD_OBJS) $(O)/tests/unit/test-state.o: ALL_CFLAGS += -I$(TOP)/daemon -DVLUD_VERSION='"$(VERSION)"'

$(O)/vlud: $(VLUD_OBJS) $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(VLUD_OBJS) $(O)/libvluproto.a $(PKG_LIBS) $(EV_LIBS)

BINS += $(O)/vlud

# unit test of the state serialisation (pure code: daemon/state.c)
$(O)/tests/unit-state: $(O)/tests/unit/test-state.o $(O)/daemon/state.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

TEST_BINS += $(O)/tests/unit-state

# ---- install ----
.PHONY: install-vlud
install-vlud: $(O)/vlud
	install -D -m 0755 $(O)/vlud $(DESTDIR)$(SBINDIR)/vlud
	install -D -m 0644 $(TOP)/config/vlud.conf $(DESTDIR)$(SYSCONFDIR)/vlud/vlud.conf
	install -D -m 0644 $(TOP)/config/demo.conf $(DESTDIR)$(DATADIR)/vlud/demo.conf
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $(TOP)/systemd/vlud.service \
		> $(DESTDIR)$(UNITDIR)/vlud.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vlud.service
	install -m 0644 $(TOP)/systemd/vlud.socket $(DESTDIR)$(UNITDIR)/vlud.socket
	install -D -m 0644 $(TOP)/docs/CONFIG.md $(DESTDIR)$(DATADIR)/doc/vlud/CONFIG.md

INSTALL_TARGETS += install-vlud
