# tests/unit/test-proto.mk - cmocka unit tests of protocol/ (owner: wire format).
# Run: CMOCKA_MESSAGE_OUTPUT=TAP $(O)/tests/unit-proto   (TAP is forced when the variable is unset)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

$(O)/tests/unit-proto: $(O)/tests/unit/test-proto.o $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(PKG_LIBS)

TEST_BINS += $(O)/tests/unit-proto
