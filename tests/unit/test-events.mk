# tests/unit/test-events.mk - cmocka unit test of the daemon's event delivery (daemon/events.c) with the
# events.subscribe filter: the connection list, instance lookup and conn_send() are stubs in the test.
$(O)/tests/unit/test-events.o: ALL_CFLAGS += -I$(TOP)/daemon -DVLUD_VERSION='"$(VERSION)"'

$(O)/tests/unit-events: $(O)/tests/unit/test-events.o $(O)/daemon/events.o $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(PKG_LIBS)

TEST_BINS += $(O)/tests/unit-events
