# scripts/deb.mk - `make deb`: the Debian binary packages (debian/), built with Debian's own tooling
# (dpkg-buildpackage -us -uc -b) on a copy of the tree, so the source tree gets no build junk and the
# parent directory no .deb files (scripts/build-deb.sh).
#   make deb                 $(O)/deb/*.deb (+ .buildinfo, .changes; debug symbols in $(O)/deb/dbgsym/)
#   make deb O=/tmp/x        into /tmp/x/deb/
# Needs the Build-Depends of debian/control (`make deps` installs them: tests/integration/apt-packages).
.PHONY: deb
deb:
	@bash $(TOP)/scripts/build-deb.sh $(abspath $(O))/deb
