# tests/fuzz/fuzz.mk - the libFuzzer target for protocol/ and its corpus replay.
#
#   $(O)/tests/fuzz-proto          clang -fsanitize=fuzzer,address,undefined (only when clang is installed)
#                                  fuzz:   $(O)/tests/fuzz-proto -dict=tests/fuzz/proto.dict -max_len=4096 NEWDIR tests/fuzz/corpus
#                                  then:   $(O)/tests/fuzz-proto -merge=1 tests/fuzz/corpus NEWDIR  (keep what adds coverage)
#   $(O)/tests/fuzz-proto-replay   the same target + replay-main.c with $(CC) (always built; under
#                                  SANITIZE=1 with ASan+UBSan): runs every corpus file once, TAP output
#   make fuzz-replay               both replays over tests/fuzz/corpus (TAP), part of CHECK_TARGETS
FUZZ_CLANG  ?= $(shell command -v clang 2>/dev/null)
FUZZ_CORPUS := $(TOP)/tests/fuzz/corpus
FUZZ_SRCS   := $(TOP)/protocol/vlu-proto.c $(TOP)/protocol/vlu-commands.c $(TOP)/tests/fuzz/fuzz-proto.c

$(O)/tests/fuzz-proto-replay: $(O)/tests/fuzz/fuzz-proto.o $(O)/tests/fuzz/replay-main.o $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

TEST_BINS += $(O)/tests/fuzz-proto-replay

ifneq ($(FUZZ_CLANG),)
$(O)/tests/fuzz-proto: $(FUZZ_SRCS) $(TOP)/protocol/vlu-proto.h $(TOP)/protocol/basics.h
	@mkdir -p $(@D)
	$(FUZZ_CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(WARN) $(WERROR) \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-I$(TOP)/protocol $(PKG_CFLAGS) -o $@ $(FUZZ_SRCS) $(shell $(PKG_CONFIG) --libs json-c)
TEST_BINS += $(O)/tests/fuzz-proto
FUZZ_BIN := $(O)/tests/fuzz-proto
else
FUZZ_BIN :=
endif

# TAP: one line per corpus file for the plain replay, one per file for the libFuzzer binary.
fuzz-replay: $(O)/tests/fuzz-proto-replay $(FUZZ_BIN)
	@$(O)/tests/fuzz-proto-replay $(FUZZ_CORPUS)
ifneq ($(FUZZ_CLANG),)
	@fail=0; for f in $(FUZZ_CORPUS)/*; do \
		n=$${f##*/}; \
		if $(FUZZ_BIN) -runs=1 "$$f" >$(O)/tests/fuzz-last.log 2>&1; then \
			echo "ok - fuzz/libfuzzer/$$n"; \
		else \
			echo "not ok - fuzz/libfuzzer/$$n: crashed, see below"; sed 's/^/# /' $(O)/tests/fuzz-last.log | tail -30; fail=1; \
		fi; \
	done; exit $$fail
else
	@echo "ok - fuzz/libfuzzer # SKIP clang not installed (corpus replayed without libFuzzer above)"
endif

.PHONY: fuzz-replay
CHECK_TARGETS += fuzz-replay
