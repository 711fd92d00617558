#!/bin/bash
# install-deps.sh - install the Debian 12 packages vlud needs to build, test (host and rig) and bench.
#
#   bash scripts/install-deps.sh          (what `make deps` runs; `make check` runs it first)
#
# Asks nothing and reads no stdin.  Installs only what dpkg says is missing, with one `apt-get update`
# before the first install; does nothing at all when everything is present.  Needs root only when
# something is missing, and then says exactly what.
#
# Extra packages: a module that needs more (e.g. the rig) may list them, one per line (# comments allowed),
# in a file named `apt-packages` inside its directory (tests/vm/apt-packages, ...); they are added here.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Why each is needed is in README.md ("Dependencies").
PKGS=(
	# build
	gcc libc6-dev make pkg-config
	libev-dev libjson-c-dev libsystemd-dev libcap-dev libcmocka-dev
	# fuzzing (libFuzzer comes from libclang-rt-14-dev)
	clang libclang-rt-14-dev
	# systemd-socket-activate and systemd-analyze for the integration tests
	systemd
	# the real-device rig (tests/vm)
	qemu-system-x86 busybox-static cpio kmod xz-utils bc iproute2 patch perl debian-archive-keyring
	# bench plots
	gnuplot-nox
)

shopt -s nullglob
for f in "$TOP"/*/apt-packages "$TOP"/*/*/apt-packages; do
	while read -r line; do
		line=${line%%#*}
		for p in $line; do PKGS+=("$p"); done
	done <"$f"
done

# installed = dpkg says so for at least one architecture (one line per installed architecture)
is_installed() { dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed; }
missing=()
for p in "${PKGS[@]}"; do
	is_installed "$p" || missing+=("$p")
done
# de-duplicate, keep order
declare -A seen=()
uniq=()
for p in "${missing[@]}"; do
	[ -n "${seen[$p]:-}" ] && continue
	seen[$p]=1
	uniq+=("$p")
done
missing=("${uniq[@]}")

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: error: not root; run as root, or: apt-get install --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A freshly booted machine often has apt busy (unattended-upgrades, cloud-init): wait for its lock
# instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
if ! apt-get "${APT_OPTS[@]}" update </dev/null; then
	echo "install-deps: error: apt-get update failed (is a Debian mirror configured in /etc/apt/sources.list*?)" >&2
	exit 1
fi
if ! apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null; then
	echo "install-deps: error: apt-get install ${missing[*]} failed" >&2
	exit 1
fi

# verify: a package apt could not install is an error here, not later
still=()
for p in "${missing[@]}"; do
	is_installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
	echo "install-deps: error: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: installed ${missing[*]}"
