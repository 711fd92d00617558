# tests/unit/test-iommufd-decide.mk - cmocka unit test of the iommufd decisions (daemon/iommufd-decide.c,
# pure): the vmm.mappings "ioas" checks and every preflight refusal of docs/IOMMUFD.md
$(O)/tests/unit/test-iommufd-decide.o: ALL_CFLAGS += -I$(TOP)/daemon

$(O)/tests/unit-iommufd-decide: $(O)/tests/unit/test-iommufd-decide.o $(O)/daemon/iommufd-decide.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

TEST_BINS += $(O)/tests/unit-iommufd-decide
