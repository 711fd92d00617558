# clients/libvlu/libvlu.mk - libvlu.so.0 (+ vlu.h, libvlu.pc).  Exports only what libvlu.sym lists
# (the vlu_* functions of vlu.h); the wire format from libvluproto.a is linked in and hidden.
LIBVLU_SOVER   := 0
LIBVLU_REAL    := $(O)/libvlu.so.$(LIBVLU_SOVER).1.0
LIBVLU_SONAME  := libvlu.so.$(LIBVLU_SOVER)
LIBVLU_OBJS    := $(O)/clients/libvlu/vlu.o $(O)/clients/libvlu/vlu-update.o $(O)/clients/libvlu/vlu-teardown.o
LIBVLU_SYM     := $(TOP)/clients/libvlu/libvlu.sym
# the exported functions (the global: part of the version script)
LIBVLU_FUNCS   := $(shell sed -n 's/^[[:space:]]*\(vlu_[a-z_]*\);/\1/p' $(LIBVLU_SYM))

$(LIBVLU_OBJS): ALL_CFLAGS += -fvisibility=hidden

$(LIBVLU_REAL): $(LIBVLU_OBJS) $(O)/libvluproto.a $(LIBVLU_SYM)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,$(LIBVLU_SONAME) -Wl,--version-script=$(LIBVLU_SYM) \
		-Wl,--exclude-libs,ALL -Wl,-z,defs -Wl,-z,relro -Wl,-z,now \
		-o $@ $(LIBVLU_OBJS) $(O)/libvluproto.a $(shell $(PKG_CONFIG) --libs json-c)

# the soname link (runtime) and the development link (-lvlu); whoever links with -lvlu also gets
# the soname link it needs at run time
$(O)/$(LIBVLU_SONAME): $(LIBVLU_REAL)
	ln -sf $(notdir $<) $@
$(O)/libvlu.so: $(LIBVLU_REAL) | $(O)/$(LIBVLU_SONAME)
	ln -sf $(notdir $<) $@

LIBVLU_PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|'

# the build tree's copy (default paths); `make install` writes its own with the install paths
$(O)/libvlu.pc: $(TOP)/clients/libvlu/libvlu.pc.in $(TOP)/Makefile
	@mkdir -p $(@D)
	$(LIBVLU_PC_SED) $< > $@

LIBS += $(LIBVLU_REAL) $(O)/$(LIBVLU_SONAME) $(O)/libvlu.so $(O)/libvlu.pc

install-libvlu: $(LIBVLU_REAL) $(O)/libvlu.pc
	install -D -m 0755 $(LIBVLU_REAL) $(DESTDIR)$(LIBDIR)/$(notdir $(LIBVLU_REAL))
	ln -sf $(notdir $(LIBVLU_REAL)) $(DESTDIR)$(LIBDIR)/$(LIBVLU_SONAME)
	ln -sf $(LIBVLU_SONAME) $(DESTDIR)$(LIBDIR)/libvlu.so
	install -D -m 0644 $(TOP)/clients/libvlu/vlu.h $(DESTDIR)$(INCLUDEDIR)/vlu.h
	@mkdir -p $(DESTDIR)$(LIBDIR)/pkgconfig
	$(LIBVLU_PC_SED) $(TOP)/clients/libvlu/libvlu.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libvlu.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/libvlu.pc
	install -D -m 0644 $(TOP)/clients/libvlu/libvlu.3 $(DESTDIR)$(MANDIR)/man3/libvlu.3
	@# one name per exported function (`man vlu_connect`), all on the one page
	for f in $(LIBVLU_FUNCS); do ln -sf libvlu.3 $(DESTDIR)$(MANDIR)/man3/$$f.3; done

.PHONY: install-libvlu
INSTALL_TARGETS += install-libvlu
