# scripts/bare.mk - `make check-bare`: the fresh-machine proof (scripts/bare-check.sh; docs/TESTING.md "How the
# fresh-machine claim was proven").  Root, a debootstrap and a full `.ci/run` in a chroot: not part of `make check`.
#   make check-bare                          everything (`bash .ci/run` in a bare Debian 12 chroot)
#   make check-bare VLUD_BARE_TARGET=host    only `make deps` + `make check-host` there (quicker)
.PHONY: check-bare
check-bare:
	@bash $(TOP)/scripts/bare-check.sh
