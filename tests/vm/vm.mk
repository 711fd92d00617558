# tests/vm/vm.mk - the real-device rig (docs/RIG.md).
#
#   make vm-check                     boot QEMU (TCG) guests with vdpa_sim_net and run every scenario of
#                                     tests/vm/scenarios/ but those with `default: no` (TAP lines +
#                                     "N passed, N failed, N skipped")
#   make vm-check SCENARIOS="a b"     only these scenarios (names without .sh)
#   make vm-shell [VM_ARGS="modules=patched use_va=1 devices=2"]   interactive guest (Ctrl-A X quits)
#   make vm-list                      scenarios and their boot configuration
#   make vm-selftest                  check the rig itself with scenarios that fail on purpose
#   make vm-prepare                   fetch and build the kernel side only (cached in ~/.cache/vlud/rig)
#   make soak [SOAK_KILLS=N SOAK_SEED=S SOAK_MODULES="stock patched"]   the chaos soak (docs/SOAK.md)
#
# Guest programs: every tests/vm/guest/*.c is one program $(O)/guest/<name>, appended to GUEST_BINS;
# everything in GUEST_BINS plus $(O)/vlud, $(O)/vluctl, $(O)/minivmm (if built) and $(O)/libvlu.so* goes
# into the guest's initramfs with its shared libraries.

VM_GUEST_SRCS := $(wildcard $(TOP)/tests/vm/guest/*.c)
VM_GUEST_BINS := $(patsubst $(TOP)/tests/vm/guest/%.c,$(O)/guest/%,$(VM_GUEST_SRCS))
GUEST_BINS += $(VM_GUEST_BINS)

# Dynamically linked (the rig copies every shared library a guest program needs); extra libraries of a
# program NAME in VM_GUEST_LIBS_NAME.
VM_GUEST_LIBS_vlu-devopen := -L$(O) -lvlu -Wl,-rpath,$(abspath $(O)) $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)
$(O)/guest/vlu-devopen: $(O)/libvlu.so
VM_GUEST_LIBS_vlu-ping := $(VM_GUEST_LIBS_vlu-devopen)
$(O)/guest/vlu-ping: $(O)/libvlu.so
VM_GUEST_LIBS_vlu-linger := $(VM_GUEST_LIBS_vlu-devopen)
VM_GUEST_LIBS_vlu-iommufd := $(VM_GUEST_LIBS_vlu-devopen)
$(O)/guest/vlu-iommufd: $(O)/libvlu.so
$(O)/guest/vlu-linger: $(O)/libvlu.so
# vlu-json: the scenarios' JSON reader (lib/tap.sh jget), json-c only
VM_GUEST_LIBS_vlu-json := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)

# vlu-fdstore (the fd-store part of PID 1) shares that code with the host tests' helper
$(O)/guest/vlu-fdstore: $(O)/tests/integration/sdstore.o
$(O)/tests/vm/guest/vlu-fdstore.o: ALL_CFLAGS += -I$(TOP)/tests/integration

$(VM_GUEST_BINS): $(O)/guest/%: $(O)/tests/vm/guest/%.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(VM_GUEST_LIBS_$*)

RIG := $(TOP)/tests/vm/rig.sh
SCENARIOS ?=
VM_ARGS ?=
# Project programs and libraries for the guest.  They are built best effort: a daemon that does not
# build yet must not stop the kernel-side scenarios (a scenario that needs a missing program fails itself).
VM_PROJECT := $(filter $(O)/vlud $(O)/vluctl $(O)/minivmm $(O)/libvlu.so%,$(BINS) $(LIBS)) $(GUEST_BINS)
# On the guest's PATH (rig.sh skips those that do not exist); a GUEST_BINS program wins over a same-named
# one of $(O) (copied last).
VM_BINS = $(O)/vlud $(O)/vluctl $(O)/minivmm $(GUEST_BINS)

.PHONY: vm-check vm-shell vm-list vm-prepare vm-project vm-selftest soak
vm-project:
	@$(MAKE) -s --no-print-directory -k $(VM_PROJECT) >&2 || \
		echo "# rig: warning: some project programs did not build (see above); scenarios using them will fail"

# vm-check: the build is a test line of its own (CI builds with -Werror: a program that a warning kept from
# building made two scenarios fail with nothing saying why)
vm-check:
	@if $(MAKE) -s --no-print-directory -k $(VM_PROJECT) >&2; then echo "ok - vm/programs-built"; else \
		echo "not ok - vm/programs-built: some project programs did not build (the compiler's messages are above); the scenarios using them fail"; fi
	@O=$(O) RIG_BINS="$(VM_BINS)" bash $(RIG) check $(SCENARIOS)

vm-shell: vm-project
	@O=$(O) RIG_BINS="$(VM_BINS)" bash $(RIG) shell $(VM_ARGS)

# The rig's own result handling (hung, failing, silent scenarios...); not part of vm-check.
vm-selftest: vm-project
	@O=$(O) RIG_BINS="$(VM_BINS)" bash $(TOP)/tests/vm/selftest/run.sh

# The chaos soak: not part of make check (its quick mode, the scenario soak-quick, is).
soak: vm-project
	@O=$(O) RIG_BINS="$(VM_BINS)" bash $(TOP)/tests/vm/soak/run.sh

vm-list:
	@bash $(RIG) list

vm-prepare:
	@O=$(O) bash $(RIG) prepare
