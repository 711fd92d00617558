# tests/unit/test-update-decide.mk - cmocka unit test of the rollback decision and the phase table
# (daemon/update-decide.c, pure): one case per row of docs/UPDATE.md's rollback table (R1..Rn), and a case
# that checks the table's row ids against the cases (reads $(VLU_TOP)/docs/UPDATE.md; check-host sets it).
$(O)/tests/unit/test-update-decide.o: ALL_CFLAGS += -I$(TOP)/daemon

$(O)/tests/unit-update-decide: $(O)/tests/unit/test-update-decide.o $(O)/daemon/update-decide.o $(O)/daemon/update-proc.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

TEST_BINS += $(O)/tests/unit-update-decide
