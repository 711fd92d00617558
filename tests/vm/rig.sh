#!/bin/bash
# tests/vm/rig.sh - the real-device rig: boot QEMU (TCG) guests with vdpa_sim_net and run scenarios.
#
#   rig.sh check [SCENARIO...]   run scenarios (default: tests/vm/scenarios/*.sh but `default: no`), print TAP lines
#                                and "N passed, N failed, N skipped"; exit 1 if anything failed
#   rig.sh shell [KEY=VALUE...]  boot a guest with a shell on the console (modules=stock|patched|nosuspend|hwreset|selftest use_va=0|1
#                                devices=N mac=none|auto memory=2G flavour=debian)
#   rig.sh prepare [FLAVOUR [ROOT]]  only fetch/build the kernel side (and the root file system ROOT,
#                                e.g. debian; cached)
#   rig.sh prepare-inner         only build the inner guest of `inner: tiny` scenarios (kernel cached)
#   rig.sh prepare-selftest [FLAVOUR]  only build the flavour's selftest kernel (`modules: selftest`, on request;
#                                iommufd)
#   rig.sh list                  list scenarios with their boot configuration
#
# Environment:
#   O                      build directory (default build)
#   RIG_BINS               programs for the guest's PATH (default $O/vlud $O/vluctl $O/minivmm $O/guest/*)
#   VLUD_RIG_CACHE         downloads and builds (default ~/.cache/vlud/rig)
#   VLUD_RIG_KVER          pin the debian flavour's kernel release (e.g. 6.12.95+deb12-amd64)
#   VLUD_RIG_PATCH_DIR     patch series of the "patched" modules (default kernel/patches)
#   VLUD_RIG_SCENARIO_DIR  scenario directory (default tests/vm/scenarios)
#   VLUD_RIG_APT_UPDATE=1  refresh the private apt index now (else at most once a day)
#   VLUD_RIG_APPEND        extra guest kernel command line (e.g. loglevel=8)
#   VLUD_RIG_REBUILD=1     retry a patched build that failed before
#   VLUD_RIG_NO_INSTALL=1  never apt-get install missing host packages (missing = skip)
#   QEMU                   default qemu-system-x86_64
# docs/RIG.md describes the rig, the scenario format and the cache.
set -uo pipefail

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$RIG_DIR/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$TOP/$O ;; esac
RIG_OUT=$O/vm
RIG_CACHE=${VLUD_RIG_CACHE:-$HOME/.cache/vlud/rig}
RIG_LOG=$RIG_OUT/rig.log
RIG_SCEN=${VLUD_RIG_SCENARIO_DIR:-$RIG_DIR/scenarios}
case $RIG_SCEN in /*) ;; *) RIG_SCEN=$PWD/$RIG_SCEN ;; esac
RIG_PATCH_DIR=${VLUD_RIG_PATCH_DIR:-$TOP/kernel/patches}
case $RIG_PATCH_DIR in /*) ;; *) RIG_PATCH_DIR=$PWD/$RIG_PATCH_DIR ;; esac
QEMU=${QEMU:-qemu-system-x86_64}
NESTED=${TAP_SUMMARY_NESTED:-}

mkdir -p "$RIG_OUT/logs" "$RIG_CACHE"
# Per-run scratch space: several rig runs may share $O (engineers working in one tree).
RIG_WORK=$(mktemp -d "$RIG_OUT/run.XXXXXX")
QPID=
cleanup() {
	[ -n "$QPID" ] && kill -9 "$QPID" 2> /dev/null
	rm -rf "$RIG_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*"; echo "[$(date +%T)] $*" >> "$RIG_LOG"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---------------------------------------------------------------- results
PASS=0 FAIL=0 SKIP=0
SKIPS=()
tapline() { # one TAP line on stdout, counted
	local l=$1
	printf '%s\n' "$l"
	case $l in
	"not ok"*) FAIL=$((FAIL + 1)) ;;
	*"# SKIP"*) SKIP=$((SKIP + 1)); SKIPS+=("${l#ok - }") ;;
	"ok"*) PASS=$((PASS + 1)) ;;
	esac
}
summary() {
	local s
	for s in "${SKIPS[@]}"; do echo "# skipped: $s"; done
	if [ -n "$NESTED" ]; then
		echo "# vm: $PASS passed, $FAIL failed, $SKIP skipped"
	else
		echo "$PASS passed, $FAIL failed, $SKIP skipped"
	fi
	[ "$FAIL" -eq 0 ]
}

# ---------------------------------------------------------------- host packages
HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod xz-utils bc iproute2 patch make gcc libc6-dev)
# only for scenarios with a root file system (root: debian)
ROOT_HOST_PKGS=(debootstrap e2fsprogs)
ensure_deps() { # [PACKAGE...] (default HOST_PKGS)
	local missing=() p
	[ $# -gt 0 ] || set -- "${HOST_PKGS[@]}"
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "${VLUD_RIG_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
		DEPS_WHY="host packages missing: ${missing[*]} (not root or VLUD_RIG_NO_INSTALL=1: cannot install)"
		return 1
	fi
	log "installing host packages: ${missing[*]}"
	# prepare-all prepares flavours side by side: one apt-get waits for the other's dpkg lock
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
	if ! "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >> "$RIG_LOG" 2>&1; then
		"${apt[@]}" update -q >> "$RIG_LOG" 2>&1
		if ! "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >> "$RIG_LOG" 2>&1; then
			DEPS_WHY="cannot install host packages ${missing[*]} (see $RIG_LOG)"
			return 1
		fi
	fi
}
check_tools() {
	local t
	for t in "$QEMU" cpio gzip xz dpkg-deb busybox vdpa make; do
		command -v "$t" > /dev/null || { DEPS_WHY="$t not found"; return 1; }
	done
	[ -x /bin/busybox ] && file_is_static /bin/busybox || { DEPS_WHY="/bin/busybox is not static (install busybox-static)"; return 1; }
}
file_is_static() { ! ldd "$1" > /dev/null 2>&1; }

# the inner guest of `inner: tiny` scenarios (inner_segment)
# shellcheck source=inner/inner.sh
. "$RIG_DIR/inner/inner.sh"

# ---------------------------------------------------------------- scenarios
declare -A SC_FLAVOUR SC_MODULES SC_USE_VA SC_DEVICES SC_TIMEOUT SC_MEMORY SC_MAC SC_QEMU SC_ROOT SC_INNER SC_DEFAULT
# Parse the header comments of a scenario (the leading block of '#' lines).
parse_scenario() {
	local name=$1 f=$RIG_SCEN/$1.sh line key val
	SC_FLAVOUR[$name]=debian SC_MODULES[$name]=stock SC_USE_VA[$name]=0 SC_DEVICES[$name]=1
	SC_TIMEOUT[$name]=300 SC_MEMORY[$name]=2G SC_MAC[$name]=none SC_QEMU[$name]=no SC_ROOT[$name]=none SC_INNER[$name]=none SC_DEFAULT[$name]=yes
	while IFS= read -r line; do
		case $line in
		'#!'*) continue ;;
		'#'*) ;;
		'') continue ;;
		*) break ;;
		esac
		[[ $line =~ ^#[[:space:]]*([a-z_]+):[[:space:]]*([^[:space:]]+)[[:space:]]*$ ]] || continue
		key=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
		case $key in
		flavour) [[ $val =~ ^[a-z0-9_-]+$ ]] && SC_FLAVOUR[$name]=$val || return 1 ;;
		modules) [[ $val =~ ^(stock|patched|nosuspend|hwreset|selftest)$ ]] && SC_MODULES[$name]=$val || return 1 ;;
		use_va) [[ $val =~ ^[01]$ ]] && SC_USE_VA[$name]=$val || return 1 ;;
		devices) [[ $val =~ ^[0-9]$ ]] && SC_DEVICES[$name]=$val || return 1 ;;
		timeout) [[ $val =~ ^[0-9]+$ ]] && SC_TIMEOUT[$name]=$val || return 1 ;;
		memory) [[ $val =~ ^[0-9]+[MG]$ ]] && SC_MEMORY[$name]=$val || return 1 ;;
		mac) [[ $val =~ ^(none|auto)$ ]] && SC_MAC[$name]=$val || return 1 ;;
		qemu) [[ $val =~ ^(yes|no)$ ]] && SC_QEMU[$name]=$val || return 1 ;;
		root) [[ $val =~ ^(none|debian)$ ]] && SC_ROOT[$name]=$val || return 1 ;;
		inner) [[ $val =~ ^(none|tiny)$ ]] && SC_INNER[$name]=$val || return 1 ;;
		default) [[ $val =~ ^(yes|no)$ ]] && SC_DEFAULT[$name]=$val || return 1 ;;
		esac
	done < "$f"
	# the inner guest needs QEMU in the guest
	[ "${SC_INNER[$name]}" = none ] || SC_QEMU[$name]=yes
}
sc_key() { local n=$1; echo "${SC_FLAVOUR[$n]} ${SC_MODULES[$n]} ${SC_USE_VA[$n]} ${SC_DEVICES[$n]} ${SC_MEMORY[$n]} ${SC_MAC[$n]} ${SC_ROOT[$n]} ${SC_QEMU[$n]}"; }

all_scenarios() {
	local f
	for f in "$RIG_SCEN"/*.sh; do [ -e "$f" ] && basename "$f" .sh; done
}
# The default set (`rig.sh check` without names, prepare-all): every scenario but those whose header says
# `default: no` (run only when named); ON_REQUEST lists those.
default_scenarios() {
	local s
	ON_REQUEST=()
	for s in $(all_scenarios); do
		if parse_scenario "$s" && [ "${SC_DEFAULT[$s]}" = no ]; then ON_REQUEST+=("$s"); else echo "$s"; fi
	done
}

# ---------------------------------------------------------------- initramfs (userland part)
# Copy an ELF and every shared library it needs into the staging tree.
stage_elf() { # SRC DEST-IN-STAGE
	local src=$1 dst=$2 lib
	mkdir -p "$ST/$(dirname "$dst")"
	cp -L "$src" "$ST/$dst"
	file_is_static "$src" && return 0
	while read -r lib; do
		[ -n "$lib" ] || continue
		case $lib in
		/lib/* | /lib64/* | /usr/lib/* | /usr/lib64/*) local to=$lib ;;
		*) local to=/lib/x86_64-linux-gnu/${lib##*/} ;;
		esac
		[ -e "$ST$to" ] && continue
		mkdir -p "$ST$(dirname "$to")"
		cp -L "$lib" "$ST$to"
	done < <(ldd "$src" | awk '/=> \// { print $3; next } /^[[:space:]]*\/[^ ]+ \(0x/ { print $1 }')
}

# The userland segment is reused while none of its inputs changed (names, sizes, mtimes of the programs,
# libvlu, scenarios and scenarios/lib/, runner, config, busybox, vdpa, and dpkg's status file for the system
# libraries).
user_cpio() {
	local bins=${RIG_BINS:-} key f
	if [ -z "$bins" ]; then
		for f in "$O/vlud" "$O/vluctl" "$O/minivmm" "$O"/guest/*; do [ -f "$f" ] && [ -x "$f" ] && bins="$bins $f"; done
	fi
	key=$( { echo "v1 $bins"; stat -L -c '%n %s %Y' $bins "$O"/libvlu.so* "$RIG_SCEN"/*.sh "$RIG_SCEN"/lib/*.sh "$RIG_DIR/guest/init" "$RIG_DIR/guest/root-switch" "$RIG_DIR/guest/run-scenarios" "$RIG_DIR/guest/rig-scenarios.service" \
		"$TOP"/config/* /bin/busybox "$(command -v vdpa)" /var/lib/dpkg/status 2> /dev/null; } | sha256sum | cut -c1-16)
	if [ -f "$RIG_OUT/user-$key.cpio.gz" ]; then
		cp "$RIG_OUT/user-$key.cpio.gz" "$RIG_WORK/user.cpio.gz" && return 0
	fi
	RIG_BINS=$bins build_user_cpio
	rm -f "$RIG_OUT"/user-*.cpio.gz
	cp "$RIG_WORK/user.cpio.gz" "$RIG_OUT/user-$key.cpio.gz.$$" && mv "$RIG_OUT/user-$key.cpio.gz.$$" "$RIG_OUT/user-$key.cpio.gz"
}

build_user_cpio() {
	ST=$RIG_WORK/stage
	rm -rf "$ST"
	mkdir -p "$ST"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,scenarios,lib/x86_64-linux-gnu,lib64,usr/lib/x86_64-linux-gnu,usr/share/vlud}
	cp /bin/busybox "$ST/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do
		[ -e "$ST/bin/$a" ] || ln -s busybox "$ST/bin/$a"
	done
	stage_elf "$(command -v vdpa)" /usr/sbin/vdpa
	# project programs
	local bins=${RIG_BINS:-} b
	if [ -z "$bins" ]; then
		for b in "$O/vlud" "$O/vluctl" "$O/minivmm" "$O"/guest/*; do [ -f "$b" ] && [ -x "$b" ] && bins="$bins $b"; done
	fi
	for b in $bins; do
		[ -f "$b" ] || continue
		# scripts are copied as they are, ELF files with their libraries
		if head -c4 "$b" | grep -q 'ELF'; then stage_elf "$b" "/usr/bin/${b##*/}"; else cp "$b" "$ST/usr/bin/"; fi
	done
	for b in "$O"/libvlu.so*; do
		if [ -L "$b" ]; then
			cp -a "$b" "$ST/lib/x86_64-linux-gnu/"
		elif [ -f "$b" ]; then
			stage_elf "$b" "/lib/x86_64-linux-gnu/${b##*/}"
		fi
	done
	[ -d "$TOP/config" ] && cp -r "$TOP/config" "$ST/usr/share/vlud/"
	cp "$RIG_SCEN"/*.sh "$ST/scenarios/" 2>/dev/null
	# shared code the scenarios source (not scenarios: all_scenarios lists only $RIG_SCEN/*.sh)
	if [ -d "$RIG_SCEN/lib" ]; then mkdir -p "$ST/scenarios/lib" && cp "$RIG_SCEN"/lib/*.sh "$ST/scenarios/lib/" 2>/dev/null; fi
	cp "$RIG_DIR/guest/init" "$ST/init"
	# the scenario loop (/init sources it; in a root file system, rig-scenarios.service runs it) and the
	# hand-over to a root file system (root: scenarios)
	cp "$RIG_DIR/guest/run-scenarios" "$RIG_DIR/guest/root-switch" "$RIG_DIR/guest/rig-scenarios.service" "$ST/"
	chmod 755 "$ST/init" "$ST/run-scenarios"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nvmm:x:1000:1000:vmm:/tmp:/bin/sh\n' > "$ST/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\nvmm:x:1000:\n' > "$ST/etc/group"
	printf 'export PATH=/usr/bin:/usr/sbin:/bin:/sbin\nexport PS1="rig# "\n' > "$ST/etc/profile"
	(cd "$ST" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$RIG_WORK/user.cpio.gz"
	rm -rf "$ST"
}

# The segment of the `qemu: yes` boots: the host's qemu-system-x86_64 with its libraries, its TCG
# accelerator module and the firmware q35 loads, for scenarios that run an unmodified QEMU as the VMM
# (qtest, no guest CPU).  Built once per QEMU package (cached in $RIG_OUT); prints its path when one of
# the given scenarios wants it.
qemu_segment() { # SCENARIO...
	local s want= q key f
	for s in "$@"; do [ "${SC_QEMU[$s]:-no}" = yes ] && want=1; done
	[ -n "$want" ] || return 0
	q=$(command -v qemu-system-x86_64) || return 0
	key=$( { echo v2; stat -L -c '%n %s %Y' "$q" /var/lib/dpkg/status; } | sha256sum | cut -c1-16)
	if [ ! -f "$RIG_OUT/qemu-$key.cpio.gz" ]; then
		local ST=$RIG_WORK/qemu.stage
		rm -rf "$ST"
		stage_elf "$q" /usr/bin/qemu-system-x86_64
		for f in /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so; do [ -f "$f" ] && stage_elf "$f" "$f"; done
		# linuxboot*.bin: the option ROM of -kernel (an inner guest's kernel, `inner: tiny`)
		for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin /usr/share/qemu/linuxboot_dma.bin \
			/usr/share/qemu/linuxboot.bin; do
			[ -e "$f" ] && mkdir -p "$ST$(dirname "$f")" && cp -L "$f" "$ST$f"
		done
		rm -f "$RIG_OUT"/qemu-*.cpio.gz
		(cd "$ST" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$RIG_OUT/qemu-$key.cpio.gz.$$" &&
			mv "$RIG_OUT/qemu-$key.cpio.gz.$$" "$RIG_OUT/qemu-$key.cpio.gz"
		rm -rf "$ST"
	fi
	echo "$RIG_OUT/qemu-$key.cpio.gz"
}

# The kernel image, its release and the modules segment of a boot with module set MODULES: the flavour's,
# or its patched kernel's when it has one, or its selftest kernel's (BOOT_KERNEL BOOT_KVER BOOT_MODS_CPIO).
boot_kernel() { # MODULES
	BOOT_KERNEL=$FL_KERNEL BOOT_KVER=$FL_KVER BOOT_MODS_CPIO=$FL_MODS_CPIO
	if [ "$1" = patched ] && [ -n "$FL_PATCHED_KERNEL" ]; then
		BOOT_KERNEL=$FL_PATCHED_KERNEL BOOT_KVER=$FL_PATCHED_KVER BOOT_MODS_CPIO=$FL_PATCHED_MODS_CPIO
	elif [ "$1" = selftest ]; then
		BOOT_KERNEL=$FL_SELFTEST_KERNEL BOOT_KVER=$FL_SELFTEST_KVER BOOT_MODS_CPIO=$FL_SELFTEST_MODS_CPIO
	fi
}

# A one-file cpio segment with this boot's configuration.
build_conf_cpio() { # OUT MODULES USE_VA DEVICES MAC ROOT SHELL SCENARIO...
	local out=$1 mods=$2 va=$3 dev=$4 mac=$5 root=$6 sh=$7 st
	shift 7
	st=$RIG_WORK/conf.stage
	rm -rf "$st"
	mkdir -p "$st/etc"
	cat > "$st/etc/rig.conf" <<-EOF
		RIG_FLAVOUR=$CUR_FLAVOUR
		RIG_KVER=$BOOT_KVER
		RIG_MODULES=$mods
		RIG_USE_VA=$va
		RIG_DEVICES=$dev
		RIG_MAC=$mac
		RIG_ROOT=$root
		RIG_SHELL=$sh
	EOF
	: > "$st/etc/rig.scenarios"
	# the flavour's module parameters of this boot (FL_MOD_PARAMS: lines "MODULE PARAM=VALUE..."; the
	# guest's init gives them to insmod after the cached modules segment's own: the last value wins)
	printf '%s\n' "$FL_MOD_PARAMS" > "$st/etc/rig.modparams"
	local s
	for s in "$@"; do echo "$s ${SC_TIMEOUT[$s]}" >> "$st/etc/rig.scenarios"; done
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$out"
	rm -rf "$st"
}

qemu_cmd() { # INITRD MEMORY [ROOT-IMAGE]
	local extra=
	QEMU_ARGS=("$QEMU" -accel tcg -cpu qemu64 -smp 2 -m "$2" -nographic -no-reboot -nic none
		"${FL_QEMU_ARGS[@]}" -kernel "$BOOT_KERNEL" -initrd "$1")
	if [ -n "${3:-}" ]; then
		# snapshot=on: the guest's writes go to a temporary file qemu deletes; the cached image stays pristine
		QEMU_ARGS+=(-drive "file=$3,format=raw,if=virtio,snapshot=on")
		extra="systemd.show_status=false"
	fi
	QEMU_ARGS+=(-append "console=ttyS0 loglevel=4 panic=-1 oops=panic rdinit=/init $extra ${VLUD_RIG_APPEND:-}")
}

# ---------------------------------------------------------------- one boot
# Boots one guest for the given scenarios (same boot configuration); prints their TAP lines.  Sets
# REMAINING to the scenarios that never started because an earlier one hung (the caller boots again).
BOOT_N=0
FIRST_TEST_MS=
run_boot() { # MODULES USE_VA DEVICES MEMORY MAC ROOT SCENARIO...
	local mods=$1 va=$2 dev=$3 mem=$4 mac=$5 root=$6
	shift 6
	local scen=("$@") s
	BOOT_N=$((BOOT_N + 1))
	local tag="boot-${scen[0]}"
	local blog=$RIG_OUT/logs/$tag.serial.log initrd=$RIG_WORK/initrd-$BOOT_N.img
	boot_kernel "$mods"
	build_conf_cpio "$RIG_WORK/conf-$BOOT_N.cpio.gz" "$mods" "$va" "$dev" "$mac" "$root" 0 "${scen[@]}"
	local segs=("$BOOT_MODS_CPIO" "$RIG_WORK/user.cpio.gz") img=
	# shellcheck disable=SC2207 # qemu_segment prints at most one path
	segs+=($(qemu_segment "${scen[@]}"))
	for s in "${scen[@]}"; do
		if [ "${SC_INNER[$s]}" != none ]; then segs+=("$INNER_SEG"); break; fi
	done
	segs+=("$RIG_WORK/conf-$BOOT_N.cpio.gz")
	if [ "$root" != none ]; then
		segs+=("$FL_ROOT_MODS_CPIO" "$RIG_WORK/debs.cpio.gz")
		img=$ROOT_IMG
	fi
	cat "${segs[@]}" > "$initrd"
	rm -f "$RIG_WORK/conf-$BOOT_N.cpio.gz"
	qemu_cmd "$initrd" "$mem" "$img"
	log "boot $BOOT_N: ${CUR_FLAVOUR} $BOOT_KVER modules=$mods use_va=$va devices=$dev memory=$mem root=$root: ${scen[*]}"
	echo "# ${QEMU_ARGS[*]}" > "$blog"
	local t0 t
	t0=$(now_ms)
	"${QEMU_ARGS[@]}" < /dev/null >> "$blog" 2>&1 &
	QPID=$!
	local qpid=$! deadline=$((t0 + 120000)) cur= timed_out= started_ms= seen=1 n l rest
	local -A ended=() began=()
	# Follow the serial log: complete lines only; TAP lines are printed as they come.
	consume() {
		n=$(wc -l < "$blog")
		[ "$n" -gt "$seen" ] || return 0
		while IFS= read -r l; do
			l=${l%$'\r'}
			case $l in
			"VMTAP "*) tapline "${l#VMTAP }" ;;
			"VMSTART "*)
				rest=${l#VMSTART }
				cur=${rest%% *}
				began[$cur]=1
				t=$(now_ms)
				[ -n "$started_ms" ] || started_ms=$((t - t0))
				deadline=$((t + ${SC_TIMEOUT[$cur]:-300} * 1000))
				;;
			"VMEND "*)
				rest=${l#VMEND }
				ended[${rest%% *}]=1
				cur=
				deadline=$(($(now_ms) + 60000))
				;;
			"VMDONE "*) deadline=$(($(now_ms) + 30000)) ;;
			esac
		done < <(sed -n "$((seen + 1)),${n}p" "$blog")
		seen=$n
	}
	while kill -0 "$qpid" 2> /dev/null; do
		sleep 0.2
		consume
		if [ "$(now_ms)" -gt "$deadline" ]; then
			timed_out=${cur:-boot}
			kill "$qpid" 2> /dev/null
			sleep 1
			kill -9 "$qpid" 2> /dev/null
			break
		fi
	done
	wait "$qpid" 2> /dev/null
	local qrc=$?
	QPID=
	local elapsed=$(( $(now_ms) - t0 ))
	# the last line may lack its newline
	[ -z "$(tail -c1 "$blog")" ] || echo >> "$blog"
	consume
	[ -n "$FIRST_TEST_MS" ] || FIRST_TEST_MS=$started_ms
	echo "# host: qemu exit status $qrc after $elapsed ms, first scenario started at ${started_ms:-never} ms${timed_out:+, killed: $timed_out timed out}" >> "$blog"

	local done_seen=
	grep -a -q '^VMDONE' "$blog" && done_seen=1
	REMAINING=()
	local why
	for s in "${scen[@]}"; do
		# per-scenario log: the boot up to the first scenario + this scenario's section
		awk -v s="$s" '{ sub(/\r$/, "") } /^VMSTART /{ inpre = 0; on = ($2 == s) } NR == 1 { inpre = 1 }
			inpre || on { print } /^VMEND /{ if ($2 == s) on = 0 }' "$blog" > "$RIG_OUT/logs/$s.log"
		echo "# full serial log of this boot: $blog" >> "$RIG_OUT/logs/$s.log"
		if [ -n "${ended[$s]:-}" ]; then
			continue
		elif [ -n "${began[$s]:-}" ]; then
			if [ -n "$timed_out" ]; then
				why="timed out after ${SC_TIMEOUT[$s]} s (guest killed)"
			else
				why="guest stopped while it ran (qemu exit status $qrc)"
			fi
			tapline "not ok - $s/run: $why; log: $RIG_OUT/logs/$s.log"
		elif [ ${#began[@]} -gt 0 ]; then
			REMAINING+=("$s") # an earlier scenario hung or crashed the guest: boot again for this one
		elif [ "$EARLY_RETRY_LEFT" -gt 0 ]; then
			# The guest died before its first scenario (seen: rare early-boot oopses of the stock
			# kernel under a loaded TCG host). Boot once more; a second early death is a failure.
			REMAINING+=("$s")
		else
			why="not run: the guest never reached it (${timed_out:+killed after a timeout, }qemu exit status $qrc)"
			tapline "not ok - $s/run: $why; log: $RIG_OUT/logs/$s.log"
		fi
	done
	if [ ${#began[@]} -eq 0 ] && [ ${#REMAINING[@]} -gt 0 ]; then
		echo "# guest died before its first scenario (${timed_out:+killed after a timeout, }qemu exit status $qrc; log $blog): booting once more"
		EARLY_RETRY_LEFT=$((EARLY_RETRY_LEFT - 1))
		cp "$blog" "$RIG_OUT/logs/early-death-$tag.serial.log" 2> /dev/null
	fi
	if [ -z "$done_seen" ] && [ ${#REMAINING[@]} -eq 0 ] && [ ${#ended[@]} -eq ${#scen[@]} ]; then
		tapline "not ok - vm/$tag: guest ran every scenario but printed no VMDONE marker; log: $blog"
	fi
	for s in "${scen[@]}"; do
		if grep -a -q "^VMTAP not ok - $s/" "$blog" || [ -z "${ended[$s]:-}" ]; then
			[ -n "${began[$s]:-}" ] && echo "# $s failed: log $RIG_OUT/logs/$s.log"
		fi
	done
	rm -f "$initrd"
}

# ---------------------------------------------------------------- flavour
CUR_FLAVOUR=
load_flavour() { # NAME -> 0 ready, 1 failed (FL_FAIL_WHY), 2 skip (FL_SKIP_WHY)
	[ "$CUR_FLAVOUR" = "$1" ] && return "$FL_RC"
	CUR_FLAVOUR=$1
	FL_KVER= FL_KERNEL= FL_MODS_CPIO= FL_PATCHED= FL_PATCHED_WHY= FL_SKIP_WHY= FL_FAIL_WHY=
	# a flavour whose "patched" set is a kernel image of its own (iommufd: the fixes are built in) sets these
	FL_PATCHED_KERNEL= FL_PATCHED_MODS_CPIO= FL_PATCHED_KVER=
	# its selftest kernel (`modules: selftest`): prepared on request only, by load_selftest
	FL_SELFTEST= FL_SELFTEST_WHY= FL_SELFTEST_KERNEL= FL_SELFTEST_MODS_CPIO= FL_SELFTEST_KVER=
	unset -f flavour_prepare_selftest
	FL_QEMU_ARGS=() # the flavour's extra qemu arguments (machine, IOMMU, devices)
	FL_MOD_PARAMS= # the flavour's module parameters set at every boot (build_conf_cpio; not cached)
	if [ ! -f "$RIG_DIR/flavours/$1.sh" ]; then
		FL_FAIL_WHY="unknown flavour '$1' (no tests/vm/flavours/$1.sh)"
		FL_RC=1
		return 1
	fi
	# shellcheck source=/dev/null
	. "$RIG_DIR/flavours/$1.sh"
	local t0
	t0=$(now_ms)
	# one preparation of a flavour at a time per cache (concurrent runs would build into the same
	# directories); flavours have their own directories, so two different ones may be prepared at once
	exec 9> "$RIG_CACHE/.lock-flavour-$1"
	# (a background prepare-all may be building it: vm-check waits here, per flavour, not for everything)
	flock -n 9 || { log "flavour $1: waiting for its preparation by another run (make check: $RIG_OUT/prepare-all.log)"; flock 9; }
	flavour_prepare
	FL_RC=$?
	# private copy: another run may prune the cache's one while we boot
	if [ "$FL_RC" = 0 ]; then
		cp "$FL_MODS_CPIO" "$RIG_WORK/mods-$1.cpio.gz" && FL_MODS_CPIO=$RIG_WORK/mods-$1.cpio.gz
		cp "$FL_KERNEL" "$RIG_WORK/kernel-$1" && FL_KERNEL=$RIG_WORK/kernel-$1
		if [ -n "$FL_PATCHED_KERNEL" ]; then
			cp "$FL_PATCHED_MODS_CPIO" "$RIG_WORK/mods-$1-patched.cpio.gz" &&
				FL_PATCHED_MODS_CPIO=$RIG_WORK/mods-$1-patched.cpio.gz
			cp "$FL_PATCHED_KERNEL" "$RIG_WORK/kernel-$1-patched" && FL_PATCHED_KERNEL=$RIG_WORK/kernel-$1-patched
		fi
	fi
	flock -u 9
	log "flavour $1: ${FL_KVER:-?} prepared in $(( $(now_ms) - t0 )) ms (rc $FL_RC, patched: ${FL_PATCHED:-?}, nosuspend: ${FL_NOSUSPEND:-?}, hwreset: ${FL_HWRESET:-?})"
	return "$FL_RC"
}

# The loaded flavour's selftest kernel (`modules: selftest`): built only when a scenario that is to run asks
# for it, never by load_flavour or prepare-all (its build is not on make check's path: docs/RIG.md).  0 ready
# (FL_SELFTEST=yes), 1 not (FL_SELFTEST_WHY; a flavour without flavour_prepare_selftest has none).
load_selftest() {
	[ -z "$FL_SELFTEST" ] || { [ "$FL_SELFTEST" = yes ]; return; }
	if ! declare -F flavour_prepare_selftest > /dev/null; then
		FL_SELFTEST=failed FL_SELFTEST_WHY="the flavour $CUR_FLAVOUR has no selftest kernel (only iommufd has one)"
		return 1
	fi
	local t0
	t0=$(now_ms)
	exec 9> "$RIG_CACHE/.lock-flavour-$CUR_FLAVOUR"
	flock -n 9 || { log "flavour $CUR_FLAVOUR: waiting for its preparation by another run"; flock 9; }
	flavour_prepare_selftest
	[ "$FL_SELFTEST" = yes ] || FL_SELFTEST=failed
	# private copy: another run may prune the cache's one while we boot
	if [ "$FL_SELFTEST" = yes ]; then
		if cp "$FL_SELFTEST_MODS_CPIO" "$RIG_WORK/mods-$CUR_FLAVOUR-selftest.cpio.gz" &&
			cp "$FL_SELFTEST_KERNEL" "$RIG_WORK/kernel-$CUR_FLAVOUR-selftest"; then
			FL_SELFTEST_MODS_CPIO=$RIG_WORK/mods-$CUR_FLAVOUR-selftest.cpio.gz
			FL_SELFTEST_KERNEL=$RIG_WORK/kernel-$CUR_FLAVOUR-selftest
		else
			FL_SELFTEST=failed FL_SELFTEST_WHY="cannot copy the selftest kernel into $RIG_WORK"
		fi
	fi
	flock -u 9
	log "flavour $CUR_FLAVOUR: selftest kernel ${FL_SELFTEST_KVER:-?} prepared in $(( $(now_ms) - t0 )) ms ($FL_SELFTEST${FL_SELFTEST_WHY:+: $FL_SELFTEST_WHY})"
	[ "$FL_SELFTEST" = yes ]
}

# ---------------------------------------------------------------- root file system
# The Debian packages of this tree (scripts/build-deb.sh into $RIG_OUT/debs), rebuilt only when a file
# git knows (tracked or untracked, not ignored: what build-deb.sh packages) outside tests/ changed (names,
# sizes, mtimes): editing a scenario does not rebuild them.
rig_debs() {
	local key out=$RIG_OUT/debs
	key=$( (cd "$TOP" && { git ls-files -z --cached --others --exclude-standard 2> /dev/null || find . -path ./build -prune -o -type f -print0; } |
		tr '\0' '\n' | grep -v '^\(\./\)\?tests/' | tr '\n' '\0' | xargs -0 stat -c '%n %s %Y' 2> /dev/null) | sha256sum | cut -c1-16)
	if [ "$(cat "$out/key" 2> /dev/null)" != "$key" ] || ! ls "$out"/*.deb > /dev/null 2>&1; then
		log "root: building the Debian packages (scripts/build-deb.sh $out)"
		rm -f "$out/key"
		if ! bash "$TOP/scripts/build-deb.sh" "$out" >> "$RIG_LOG" 2>&1; then
			ROOT_FAIL_WHY="make deb (scripts/build-deb.sh) failed: see $RIG_LOG"
			return 1
		fi
		echo "$key" > "$out/key"
	fi
	local st=$RIG_WORK/debs.stage
	rm -rf "$st"
	mkdir -p "$st/rig/debs"
	cp "$out"/*.deb "$st/rig/debs/"
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) > "$RIG_WORK/debs.cpio.gz"
	rm -rf "$st"
}

# load_root NAME: the packages, the root image (tests/vm/roots/NAME.sh, cached) and the flavour's modules
# to mount it; 0 ready, else ROOT_SKIP_WHY (skip) or ROOT_FAIL_WHY (fail) says why.
ROOT_CUR=
load_root() {
	[ "$ROOT_CUR" = "$1" ] && return "$ROOT_RC"
	ROOT_CUR=$1 ROOT_SKIP_WHY= ROOT_FAIL_WHY= ROOT_RC=1
	local t0
	t0=$(now_ms)
	DEPS_WHY=
	if ! ensure_deps "${ROOT_HOST_PKGS[@]}"; then
		ROOT_SKIP_WHY=$DEPS_WHY
		return 1
	fi
	rig_debs || return 1
	if ! declare -F flavour_root_mods > /dev/null || ! flavour_root_mods; then
		ROOT_FAIL_WHY="flavour $CUR_FLAVOUR: no modules to mount a root file system (see $RIG_LOG)"
		return 1
	fi
	# shellcheck source=/dev/null
	. "$RIG_DIR/roots/$1.sh"
	exec 9> "$RIG_CACHE/.lock-root-$1"
	flock -n 9 || { log "root $1: waiting for its preparation by another run (make check: $RIG_OUT/prepare-all.log)"; flock 9; }
	root_prepare "$RIG_OUT/debs"
	local rc=$?
	flock -u 9
	log "root $1: ${ROOT_IMG:-none} prepared in $(( $(now_ms) - t0 )) ms (rc $rc)"
	[ "$rc" = 0 ] && ROOT_RC=0
	return "$ROOT_RC"
}

# ---------------------------------------------------------------- commands
cmd_check() {
	local t_start names=() s
	t_start=$(now_ms)
	if [ $# -gt 0 ]; then
		names=("$@")
	else
		default_scenarios > "$RIG_WORK/default"
		mapfile -t names < "$RIG_WORK/default"
		# not a skip: these are not part of the run at all (docs/RIG.md, `default: no`)
		[ ${#ON_REQUEST[@]} -eq 0 ] || echo "# not in the default set (run only when named: make vm-check SCENARIOS=\"${ON_REQUEST[*]}\"): ${ON_REQUEST[*]}"
	fi
	if [ ${#names[@]} -eq 0 ]; then
		tapline "ok - vm # SKIP no scenarios in ${RIG_SCEN#$TOP/}"
		summary
		return
	fi
	# a `prepare-all` that `make check` started in the background while the host tests ran may still be
	# preparing: each boot waits for its own flavour and root only (load_flavour, load_root take their locks),
	# so the Debian boots run while the iommufd kernel still builds (at autogroup nice 19: on idle CPU only)
	exec 8> "$RIG_CACHE/.prepare-all.lock"
	flock -n 8 || log "the background preparation (prepare-all, log $RIG_OUT/prepare-all.log) still runs: each boot waits for its flavour"
	exec 8>&-
	DEPS_WHY=
	if ! ensure_deps || ! check_tools; then
		tapline "ok - vm # SKIP $DEPS_WHY"
		summary
		return
	fi
	local ok_names=()
	for s in "${names[@]}"; do
		s=${s%.sh}
		s=${s##*/}
		if ! [[ $s =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
			tapline "not ok - vm/scenario-name: '$s' is not a valid scenario name ([A-Za-z0-9._-])"
		elif [ ! -f "$RIG_SCEN/$s.sh" ]; then
			tapline "not ok - $s/run: no such scenario (${RIG_SCEN#$TOP/}/$s.sh)"
		elif ! parse_scenario "$s"; then
			tapline "not ok - $s/run: bad header in ${RIG_SCEN#$TOP/}/$s.sh (see docs/RIG.md)"
		else
			ok_names+=("$s")
		fi
	done
	# group by boot configuration, flavour first so each flavour is prepared once
	local keys
	keys=$(for s in "${ok_names[@]}"; do sc_key "$s"; done | sort -u)
	local user_built= key fl mods va dev mem mac root group
	local -A SKIPPED_FL=()
	while read -r key; do
		[ -n "$key" ] || continue
		read -r fl mods va dev mem mac root _ <<< "$key"
		group=()
		for s in "${ok_names[@]}"; do [ "$(sc_key "$s")" = "$key" ] && group+=("$s"); done
		load_flavour "$fl"
		case $? in
		2)
			# one line for the whole rig (per flavour), not one per scenario
			if [ -z "${SKIPPED_FL[$fl]:-}" ]; then
				SKIPPED_FL[$fl]=1
				tapline "ok - vm # SKIP flavour $fl: $FL_SKIP_WHY"
			fi
			echo "# not run (flavour $fl unavailable): ${group[*]}"
			continue
			;;
		1) for s in "${group[@]}"; do tapline "not ok - $s/run: flavour $fl: $FL_FAIL_WHY"; done; continue ;;
		esac
		if [ "$mods" = patched ] && [ "$FL_PATCHED" != yes ]; then
			for s in "${group[@]}"; do
				if [ "$FL_PATCHED" = none ]; then
					tapline "ok - $s/run # SKIP needs patched modules: $FL_PATCHED_WHY"
				else
					tapline "not ok - $s/run: patched modules: $FL_PATCHED_WHY"
				fi
			done
			continue
		fi
		if [ "$mods" = nosuspend ] && [ "$FL_NOSUSPEND" != yes ]; then
			for s in "${group[@]}"; do tapline "not ok - $s/run: nosuspend modules: $FL_NOSUSPEND_WHY"; done
			continue
		fi
		if [ "$mods" = hwreset ] && [ "$FL_HWRESET" != yes ]; then
			for s in "${group[@]}"; do tapline "not ok - $s/run: hwreset modules: $FL_HWRESET_WHY"; done
			continue
		fi
		# built here, on request: only because one of these scenarios was named
		if [ "$mods" = selftest ] && ! load_selftest; then
			for s in "${group[@]}"; do tapline "not ok - $s/run: selftest kernel: $FL_SELFTEST_WHY"; done
			continue
		fi
		if [ "$root" != none ] && ! load_root "$root"; then
			for s in "${group[@]}"; do
				if [ -n "$ROOT_SKIP_WHY" ]; then
					tapline "ok - $s/run # SKIP root $root: $ROOT_SKIP_WHY"
				else
					tapline "not ok - $s/run: root $root: $ROOT_FAIL_WHY"
				fi
			done
			continue
		fi
		# the inner guest's kernel and init (`inner: tiny`): its scenarios fail when it cannot be built
		local inner_ok=() ti
		for s in "${group[@]}"; do
			if [ "${SC_INNER[$s]}" = none ]; then inner_ok+=("$s"); continue; fi
			if [ -z "$INNER_RC" ]; then
				ti=$(now_ms)
				inner_segment && log "inner guest: kernel $(cat "$RIG_WORK/inner-kver") and init ready in $(( $(now_ms) - ti )) ms"
			fi
			if [ "$INNER_RC" = 0 ]; then inner_ok+=("$s"); else tapline "not ok - $s/run: inner guest: $INNER_WHY"; fi
		done
		group=("${inner_ok[@]}")
		[ ${#group[@]} -gt 0 ] || continue
		if [ -z "$user_built" ]; then
			local tu
			tu=$(now_ms)
			user_cpio
			log "userland initramfs segment ready in $(( $(now_ms) - tu )) ms ($(stat -c %s "$RIG_WORK/user.cpio.gz") bytes)"
			user_built=1
		fi
		local tries=0
		EARLY_RETRY_LEFT=1
		while [ ${#group[@]} -gt 0 ] && [ $tries -lt 10 ]; do
			run_boot "$mods" "$va" "$dev" "$mem" "$mac" "$root" "${group[@]}"
			group=("${REMAINING[@]}")
			tries=$((tries + 1))
		done
	done <<< "$keys"
	echo "# vm-check took $(( $(now_ms) - t_start )) ms${FIRST_TEST_MS:+, boot to first scenario ${FIRST_TEST_MS} ms}; logs in $RIG_OUT/logs"
	summary
}

cmd_shell() {
	local fl=debian mods=stock va=0 dev=1 mem=2G mac=none kv
	for kv in "$@"; do
		case $kv in
		flavour=*) fl=${kv#*=} ;; modules=*) mods=${kv#*=} ;; use_va=*) va=${kv#*=} ;;
		devices=*) dev=${kv#*=} ;; memory=*) mem=${kv#*=} ;; mac=*) mac=${kv#*=} ;;
		*) echo "rig.sh shell: unknown argument $kv" >&2; return 2 ;;
		esac
	done
	ensure_deps && check_tools || { echo "rig: $DEPS_WHY" >&2; return 1; }
	load_flavour "$fl" || { echo "rig: flavour $fl: $FL_SKIP_WHY$FL_FAIL_WHY" >&2; return 1; }
	[ "$mods" != patched ] || [ "$FL_PATCHED" = yes ] || { echo "rig: patched modules: $FL_PATCHED_WHY" >&2; return 1; }
	[ "$mods" != nosuspend ] || [ "$FL_NOSUSPEND" = yes ] || { echo "rig: nosuspend modules: $FL_NOSUSPEND_WHY" >&2; return 1; }
	[ "$mods" != hwreset ] || [ "$FL_HWRESET" = yes ] || { echo "rig: hwreset modules: $FL_HWRESET_WHY" >&2; return 1; }
	[ "$mods" != selftest ] || load_selftest || { echo "rig: selftest kernel: $FL_SELFTEST_WHY" >&2; return 1; }
	user_cpio
	boot_kernel "$mods"
	build_conf_cpio "$RIG_WORK/conf-shell.cpio.gz" "$mods" "$va" "$dev" "$mac" none 1
	cat "$BOOT_MODS_CPIO" "$RIG_WORK/user.cpio.gz" "$RIG_WORK/conf-shell.cpio.gz" > "$RIG_WORK/initrd-shell.img"
	qemu_cmd "$RIG_WORK/initrd-shell.img" "$mem"
	echo "rig: ${QEMU_ARGS[*]}  (Ctrl-A X quits qemu)" >&2
	"${QEMU_ARGS[@]}"
}

# cmd_prepare_all: every flavour and root file system the scenarios name, one job per flavour side by side
# (niced: the host tests keep the CPU they need); holds $RIG_CACHE/.prepare-all.lock until done (cmd_check
# waits)
cmd_prepare_all() {
	local s fl rc=0 t0 inner=
	declare -A fls=() roots=()
	t0=$(now_ms)
	exec 8> "$RIG_CACHE/.prepare-all.lock"
	flock 8
	ensure_deps && check_tools || { log "prepare-all: $DEPS_WHY"; return 1; }
	for s in $(default_scenarios); do
		parse_scenario "$s" || continue
		fls[${SC_FLAVOUR[$s]}]=1
		[ "${SC_ROOT[$s]}" != none ] && roots[${SC_ROOT[$s]}]=${SC_FLAVOUR[$s]}
		[ "${SC_INNER[$s]}" = none ] || inner=1
	done
	# one job per flavour, side by side (the iommufd kernel's build is CPU, a root's debootstrap mostly
	# downloads and dpkg): the flavour, then each root it boots
	local pids=() p r
	for fl in "${!fls[@]}"; do
		(
			nice -n 10 bash "$0" prepare "$fl" > /dev/null 2>&1 || exit 1
			for r in "${!roots[@]}"; do
				[ "${roots[$r]}" = "$fl" ] || continue
				nice -n 10 bash "$0" prepare "$fl" "$r" > /dev/null 2>&1 || exit 1
			done
		) &
		pids+=($!)
	done
	# the inner guest's kernel (`inner: tiny`), a job of its own
	if [ -n "$inner" ]; then
		nice -n 10 bash "$0" prepare-inner > /dev/null 2>&1 &
		pids+=($!)
	fi
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	log "prepare-all: flavours ${!fls[*]}, roots ${!roots[*]}${inner:+, the inner guest} prepared in $(($(now_ms) - t0)) ms (rc $rc)"
	return $rc
}

cmd_list() {
	local s
	printf '%-28s %-8s %-8s %-6s %-7s %-7s %-6s %-4s %-6s %-4s %-5s %s\n' SCENARIO FLAVOUR MODULES USE_VA DEVICES TIMEOUT MEMORY MAC ROOT QEMU INNER DEFAULT
	for s in $(all_scenarios); do
		parse_scenario "$s" || { echo "$s: bad header"; continue; }
		printf '%-28s %-8s %-8s %-6s %-7s %-7s %-6s %-4s %-6s %-4s %-5s %s\n' "$s" "${SC_FLAVOUR[$s]}" "${SC_MODULES[$s]}" \
			"${SC_USE_VA[$s]}" "${SC_DEVICES[$s]}" "${SC_TIMEOUT[$s]}" "${SC_MEMORY[$s]}" "${SC_MAC[$s]}" "${SC_ROOT[$s]}" "${SC_QEMU[$s]}" "${SC_INNER[$s]}" "${SC_DEFAULT[$s]}"
	done
}

case ${1:-check} in
check) shift; cmd_check "$@" ;;
shell) shift; cmd_shell "$@" ;;
prepare)
	ensure_deps && check_tools || { echo "rig: $DEPS_WHY" >&2; exit 1; }
	load_flavour "${2:-debian}"; rc=$?
	if [ "$rc" = 0 ] && [ -n "${3:-}" ]; then
		load_root "$3"; rc=$?
		echo "rig: root $3: ${ROOT_IMG:-none} ${ROOT_SKIP_WHY:-}${ROOT_FAIL_WHY:-}"
	fi
	echo "rig: flavour ${2:-debian}: kernel ${FL_KVER:-?}, patched: ${FL_PATCHED:-?} ${FL_PATCHED_WHY:-}${FL_SKIP_WHY:-}${FL_FAIL_WHY:-}, nosuspend: ${FL_NOSUSPEND:-?} ${FL_NOSUSPEND_WHY:-}, hwreset: ${FL_HWRESET:-?} ${FL_HWRESET_WHY:-}"
	exit $rc ;;
prepare-inner)
	# the inner guest of `inner: tiny` scenarios (kernel cached, init and segment in $O/vm)
	ensure_deps && check_tools || { echo "rig: $DEPS_WHY" >&2; exit 1; }
	inner_segment; rc=$?
	echo "rig: inner guest: ${INNER_SEG:-none} ${INNER_WHY:-}"
	exit $rc ;;
prepare-selftest)
	# the flavour's selftest kernel (on request; `modules: selftest` scenarios build it themselves)
	ensure_deps && check_tools || { echo "rig: $DEPS_WHY" >&2; exit 1; }
	load_flavour "${2:-iommufd}" && load_selftest; rc=$?
	echo "rig: flavour ${2:-iommufd}: selftest kernel: ${FL_SELFTEST:-?} ${FL_SELFTEST_KERNEL:-}${FL_SELFTEST_WHY:-}${FL_SKIP_WHY:-}${FL_FAIL_WHY:-}"
	exit $rc ;;
prepare-all) cmd_prepare_all ;;
prepare-bg)
	# `make check`: prepare-all in the background (its own session, output in $RIG_OUT/prepare-all.log), so
	# that a cold machine downloads and builds the kernels and the root file system while the host tests run;
	# vm-check waits for it.  Started after `make deps` (both may run apt-get).
	# setsid makes a new scheduler autogroup (kernel.sched_autogroup_enabled, Debian's default): a process's
	# nice value counts only inside its autogroup, so the group's own nice is set to 19: the builds get the
	# CPU the host tests and the guests leave idle, not half of it
	setsid bash -c 'echo 19 > /proc/self/autogroup 2> /dev/null; exec bash "$0" prepare-all' "$0" \
		> "$RIG_OUT/prepare-all.log" 2>&1 < /dev/null &
	echo "# rig: preparing every flavour and root in the background (pid $!, log ${RIG_OUT#$TOP/}/prepare-all.log)" ;;
list) cmd_list ;;
*) sed -n '2,/^set -uo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
