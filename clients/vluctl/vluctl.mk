# clients/vluctl/vluctl.mk - the operator CLI.  Linked statically with libvlu's object and the protocol
# library (it needs the command table for `help`), so the binary does not depend on libvlu.so.
VLUCTL_OBJS := $(O)/clients/vluctl/vluctl.o $(O)/clients/libvlu/vlu.o

$(O)/vluctl: $(VLUCTL_OBJS) $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs json-c)

BINS += $(O)/vluctl

install-vluctl: $(O)/vluctl
	install -D -m 0755 $(O)/vluctl $(DESTDIR)$(BINDIR)/vluctl
	install -D -m 0644 $(TOP)/clients/vluctl/vluctl.1 $(DESTDIR)$(MANDIR)/man1/vluctl.1

.PHONY: install-vluctl
INSTALL_TARGETS += install-vluctl
