# tests/unit/test-update-told.mk - cmocka unit test of who the update engine takes for the old VMM in exec
# mode (daemon/update.c upd_old_execed(), upd_pid_holds_rdev(); update-rollback.c upd_old_conn_told()),
# against real child processes holding or not holding a character device.  Links every daemon object
# but main.o: the test defines vl and the logging main.c would.
$(O)/tests/unit/test-update-told.o: ALL_CFLAGS += -I$(TOP)/daemon -DVLUD_VERSION='"$(VERSION)"' -pthread

$(O)/tests/unit-update-told: $(O)/tests/unit/test-update-told.o $(filter-out $(O)/daemon/main.o,$(VLUD_OBJS)) \
			     $(O)/libvluproto.a
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS) $(EV_LIBS) -lcmocka

TEST_BINS += $(O)/tests/unit-update-told
