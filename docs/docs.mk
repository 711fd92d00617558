# docs/docs.mk - the daemon's manual pages: vlud(8), vlud.conf(5) (docs/man/; vluctl(1), libvlu(3) and
# minivmm(1) live with their programs and are installed by their fragments).
.PHONY: install-vlud-man
install-vlud-man:
	install -D -m 0644 $(TOP)/docs/man/vlud.8 $(DESTDIR)$(MANDIR)/man8/vlud.8
	install -D -m 0644 $(TOP)/docs/man/vlud.conf.5 $(DESTDIR)$(MANDIR)/man5/vlud.conf.5

INSTALL_TARGETS += install-vlud-man
