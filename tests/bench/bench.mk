# tests/bench/bench.mk - `make bench` and `make demo` (docs/BENCH.md).  Benchmarks measure, they assert
# nothing about timings; `make check` runs `make bench-quick` (the whole harness once at tiny sizes, TAP) so
# that a benchmark that no longer builds or runs fails CI.
#
#   make demo     deps, build, boot the rig (stock modules, then patched), vlud with config/demo.conf in the
#                 guest, minivmm with traffic, live updates on every path the kernel offers in exec and
#                 transfer mode; a verdict table on the terminal and one JSON object per update in
#                 $(O)/demo/demo.json
#   make bench    deps, build; host: fd handoff (bench-fd) and control-plane latency (bench-ctl) against the
#                 real daemon, recovery after kill -9 under the real systemd (bench-systemd.sh, bench-sdrec;
#                 root, systemd-nspawn); rig: pause per path against guest memory size, one guest boot per module set,
#                 and CHANGE_PROCESS against the re-pin on the iommufd flavour's VFIO device, one boot;
#                 $(O)/bench/bench.txt, bench.json, pause.png
#   make bench-host   only the host part (and its report);   make bench-vm   only the rig part
#   make bench-quick  everything once, tiny sizes, one update per path ($(O)/bench-quick; a step of make check)
#
# Knobs (environment or make variables): BENCH_REPS (updates per path and size, default 5), BENCH_RUNS
# (minivmm runs per driver, RAM kind, path and size, default 1: each gives one "first" update), BENCH_MEMS
# (default "64M 256M 1G 2G"), BENCH_VM_MEMORY (RAM of the bench guests, default 4G), BENCH_MODULES (default
# "stock patched"; "none": only the iommufd boot), BENCH_DRIVER (default "vlud standalone"), BENCH_RAM
# (default "touched lazy hugetlb"; also nodefer, hugetlb-nodefer), BENCH_PATHS (default: every path the
# modules offer), BENCH_IOMMUFD (default 1: one boot of the iommufd flavour, IOMMU_IOAS_CHANGE_PROCESS
# against unmap + re-map on a VFIO device at the same sizes; 0: not), BENCH_IOF_MODES (default "transfer
# exec").

BENCH_DIR  := $(O)/bench
BENCH_BINS := $(O)/bench/bench-fd $(O)/bench/bench-ctl $(O)/bench/bench-report $(O)/bench/bench-sdrec
BENCH_HELPER_OBJS := $(O)/tests/bench/bstat.o $(O)/tests/integration/integ.o $(O)/tests/integration/sdstore.o
BENCH_REPS ?= 5
BENCH_MEMS ?= 64M 256M 1G 2G
BENCH_VM_MEMORY ?= 4G
BENCH_MODULES ?= stock patched
DEMO_DIR   := $(O)/demo

# the host benchmarks reuse the integration tests' daemon runner and fd-store receiver (integ.h)
$(O)/tests/bench/%.o: ALL_CFLAGS += -I$(TOP)/tests/integration

$(O)/bench/bench-%: $(O)/tests/bench/bench-%.o $(BENCH_HELPER_OBJS) $(O)/libvluproto.a $(O)/libvlu.so
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o %.a,$^) -L$(O) -lvlu -Wl,-rpath,$(abspath $(O)) $(PKG_LIBS) -lpthread

.PHONY: bench bench-host bench-vm bench-build bench-quick demo
# built by `make` (all) too, so a benchmark that no longer compiles fails the first step of make check
TEST_BINS += $(BENCH_BINS)
bench-build: $(BENCH_BINS) $(O)/vlud

bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all bench-build vm-project
	@O=$(O) VLU_BUILD=$(abspath $(O)) BENCH_REPS="$(BENCH_REPS)" BENCH_MEMS="$(BENCH_MEMS)" \
		BENCH_VM_MEMORY=$(BENCH_VM_MEMORY) BENCH_MODULES="$(BENCH_MODULES)" RIG_BINS="$(VM_BINS)" \
		bash $(TOP)/tests/bench/run.sh all

bench-quick: bench-build vm-project
	@O=$(O) VLU_BUILD=$(abspath $(O)) RIG_BINS="$(VM_BINS)" bash $(TOP)/tests/bench/run.sh quick

bench-host: bench-build
	@O=$(O) VLU_BUILD=$(abspath $(O)) bash $(TOP)/tests/bench/run.sh host

bench-vm: all vm-project
	@O=$(O) VLU_BUILD=$(abspath $(O)) BENCH_REPS="$(BENCH_REPS)" BENCH_MEMS="$(BENCH_MEMS)" \
		BENCH_VM_MEMORY=$(BENCH_VM_MEMORY) BENCH_MODULES="$(BENCH_MODULES)" RIG_BINS="$(VM_BINS)" \
		bash $(TOP)/tests/bench/run.sh vm

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all vm-project $(O)/bench/bench-report
	@O=$(O) RIG_BINS="$(VM_BINS)" bash $(TOP)/tests/demo/demo.sh

