# tests/tests.mk - `make check`, `make check-host`, `make check-san` and the host integration tests.
#
#   make check        deps, build, host tests, the same under SANITIZE=1 (build-san/), then `make vm-check`;
#                     everything through ONE scripts/tap-summary, so ONE final line "N passed, N failed, N skipped"
#   make check-host   build $(O) and run the host tests (unit, fuzz corpus replay, integration) with a summary
#   make check-san    the same with SANITIZE=1 (ASan + UBSan, in build-san/)
#
# How tests plug in (no edit of this file needed):
#   - unit tests: any $(O)/tests/unit-* in TEST_BINS; run with CMOCKA_MESSAGE_OUTPUT=TAP, no arguments.
#   - other host checks (e.g. fuzz corpus replay): a make target appended to CHECK_TARGETS whose recipe
#     prints TAP lines (docs/DESIGN.md) and fails when a check fails; run as `$(MAKE) -s <target>`.
#     vm-check is never run as part of the host tests, even if listed there.
#   - the rig: a `vm-check` rule in its own fragment (tests/vm/*.mk).
#   - integration tests: tests/integration/ (this file).

TAP_SUMMARY := $(TOP)/scripts/tap-summary

# ---- host integration tests ----
INTEG_DIR  := $(O)/tests/integration
# test programs: tests/integration/test-*.c, each one binary, linked with the helpers and libvlu
INTEG_SRCS := $(wildcard $(TOP)/tests/integration/test-*.c)
INTEG_BINS := $(patsubst $(TOP)/tests/integration/%.c,$(INTEG_DIR)/%,$(INTEG_SRCS))
INTEG_HELPER_OBJS := $(O)/tests/integration/integ.o $(O)/tests/integration/sdstore.o
# shell tests: tests/integration/test-*.sh, run with the build directory in the environment
INTEG_SCRIPTS := $(sort $(wildcard $(TOP)/tests/integration/test-*.sh))

TEST_BINS += $(INTEG_BINS)

# test-lib-*.c drive the daemon through libvlu; the others speak the wire format through libvluproto
$(INTEG_DIR)/test-lib-%: $(O)/tests/integration/test-lib-%.o $(INTEG_HELPER_OBJS) $(O)/libvluproto.a $(O)/libvlu.so
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) -L$(O) -lvlu -Wl,-rpath,$(abspath $(O)) $(PKG_LIBS)

$(INTEG_DIR)/test-%: $(O)/tests/integration/test-%.o $(INTEG_HELPER_OBJS) $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(PKG_LIBS)

# ---- the list of host test commands (each prints TAP lines) ----
# Every command runs from $(TOP) with the build directory's programs named through the environment
# (VLU_BUILD; the integration tests default to ./build).
TEST_ENV := VLU_BUILD=$(abspath $(O)) VLU_TOP=$(TOP) SANITIZE=$(SANITIZE) CMOCKA_MESSAGE_OUTPUT=TAP \
	ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
HOST_UNIT_BINS = $(sort $(filter $(O)/tests/unit-%,$(TEST_BINS)))
HOST_CHECK_TARGETS = $(filter-out vm-check check check-host check-san,$(CHECK_TARGETS))
HOST_TEST_CMDS = \
	$(foreach t,$(HOST_UNIT_BINS),"$(t)") \
	$(foreach t,$(HOST_CHECK_TARGETS),"$(MAKE) -s --no-print-directory $(t)") \
	$(foreach t,$(INTEG_BINS),"$(t)") \
	$(foreach t,$(INTEG_SCRIPTS),"bash $(t)")

# Time limits (seconds): per host test program, and per step of `make check` (the rig is one step; CI
# allows 90 minutes for everything).  A command over its limit is killed and counted as failed.
# The rig step includes waiting for the background preparation (kernels, root file system): on a cold machine
# that wait plus the scenarios take more than 45 minutes (a cold run of 2026-12-02 was cut at the former
# 2700 s), so the per-step limit is 75 minutes, within CI's 90 for everything.
HOST_TEST_TIMEOUT ?= 600
CHECK_STEP_TIMEOUT ?= 4500

check-host: all
	@cd $(TOP) && $(TEST_ENV) $(TAP_SUMMARY) -t $(HOST_TEST_TIMEOUT) $(HOST_TEST_CMDS)

check-san:
	@$(MAKE) --no-print-directory SANITIZE=1 O=$(CHECK_SAN_O) check-host

# `make O=DIR check` builds and tests in DIR and DIR-san (default build/ and build-san/); the rig's
# vm-check and the rig's own self-test (tests/vm/selftest: scenarios that fail on purpose) use DIR.
CHECK_SAN_O := $(if $(filter build,$(O)),build-san,$(O)-san)

# One tap-summary over everything; the nested ones inside check-host only pass TAP lines through.  Right after
# `make deps`, the rig starts preparing its kernels and root file system in the background (rig.sh prepare-bg,
# autogroup nice 19): on a cold machine those downloads and builds overlap the host tests instead of adding to
# them; each of vm-check's boots waits for its own flavour and root only (docs/RIG.md).
check:
	@cd $(TOP) && $(TAP_SUMMARY) -t $(CHECK_STEP_TIMEOUT) \
		"$(MAKE) --no-print-directory deps" \
		"env O=$(O) bash $(TOP)/tests/vm/rig.sh prepare-bg" \
		"$(MAKE) --no-print-directory SANITIZE=0 O=$(O) all" \
		"$(MAKE) --no-print-directory SANITIZE=0 O=$(O) check-host" \
		"$(MAKE) --no-print-directory SANITIZE=1 O=$(CHECK_SAN_O) all" \
		"$(MAKE) --no-print-directory SANITIZE=1 O=$(CHECK_SAN_O) check-host" \
		"$(MAKE) --no-print-directory SANITIZE=0 O=$(O) vm-check" \
		"$(MAKE) --no-print-directory -s SANITIZE=0 O=$(O) bench-quick" \
		"$(MAKE) --no-print-directory -s SANITIZE=0 O=$(O) vm-selftest"

.PHONY: check check-host check-san

# helper programs for the shell tests (not tests themselves)
$(INTEG_DIR)/helper-vmm: $(O)/tests/integration/helper-vmm.o $(O)/libvlu.so
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) -L$(O) -lvlu -Wl,-rpath,$(abspath $(O)) $(PKG_LIBS)
TEST_BINS += $(INTEG_DIR)/helper-vmm

# keep the test objects (they are intermediate files of the pattern rules above)
.SECONDARY: $(patsubst $(TOP)/tests/integration/%.c,$(O)/tests/integration/%.o,$(INTEG_SRCS)) \
	$(INTEG_HELPER_OBJS) $(O)/tests/integration/helper-vmm.o
