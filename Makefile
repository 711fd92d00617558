# vlud - one non-recursive Makefile.  Each directory contributes a fragment
# (<dir>/*.mk) that only appends to the variables below; nothing recurses.
#
#   make                 build everything into $(O) (default build/)
#   make check           install deps if missing, host tests (plain + SANITIZE), rig tests; summary line
#   make install         DESTDIR=, PREFIX= (default /usr/local), LIBDIR=, UNITDIR=, ... (below)
#   make programs        only what `make install` installs (no tests)
#   make deb             Debian binary packages into $(O)/deb/ (scripts/deb.mk)
#   make SANITIZE=1 ...  ASan+UBSan build into build-san/
#   make clean
.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := all

TOP        := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(LIBDIR)/systemd/system
DESTDIR    ?=

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
O ?= build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
O ?= build
SAN_FLAGS :=
endif

CC       ?= cc
PKG_CONFIG ?= pkg-config
PKGS     := json-c libsystemd libcap
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# Debian's libev ships no .pc file
EV_LIBS  := $(shell $(PKG_CONFIG) --libs libev 2>/dev/null || echo -lev)

WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wmissing-prototypes -Wstrict-prototypes \
            -Wformat=2 -Wvla -Wpointer-arith -Wundef
ifneq ($(CI),)
WERROR   ?= -Werror
endif
WERROR   ?=
CFLAGS   ?= -O2 -g
ALL_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -fPIC $(WARN) $(WERROR) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS) \
              -I$(TOP)/protocol -I$(TOP)/kernel/uapi -I$(TOP)/clients/libvlu -I$(O)/gen $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

# Fragments append to these.
BINS       :=
LIBS       :=
TEST_BINS  :=
GUEST_BINS :=
CLEAN      :=
INSTALL_TARGETS :=
CHECK_TARGETS   :=

$(O)/%.o: $(TOP)/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

include $(sort $(wildcard $(TOP)/*/*.mk $(TOP)/*/*/*.mk))

all: depcheck $(LIBS) $(BINS) $(TEST_BINS)

# what `make install` installs, without the tests (debian/rules builds this)
programs: $(LIBS) $(BINS)

# A build before `make deps` on a bare machine says what is missing instead of failing on headers.
.PHONY: depcheck
depcheck:
	@$(PKG_CONFIG) --version >/dev/null 2>&1 || { echo "pkg-config is missing: run 'make deps' (scripts/install-deps.sh) as root first" >&2; exit 1; }
	@missing=; for p in $(PKGS) cmocka; do $(PKG_CONFIG) --exists $$p || missing="$$missing $$p"; done; \
	 [ -e /usr/include/ev.h ] || missing="$$missing libev"; \
	 [ -z "$$missing" ] || { echo "missing development packages for:$$missing: run 'make deps' (scripts/install-deps.sh) as root first" >&2; exit 1; }

.PHONY: all programs check check-host check-san vm-check install clean deps bench demo
deps:
	bash $(TOP)/scripts/install-deps.sh

install: all $(INSTALL_TARGETS)

clean:
	rm -rf build build-san $(CLEAN)

-include $(shell find $(O) -name '*.d' -type f 2>/dev/null)
