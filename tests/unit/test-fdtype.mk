# tests/unit/test-fdtype.mk - cmocka unit test of the /proc/devices and /proc/misc parsers behind the device
# kinds (daemon/fdtype.c: vhost-vdpa, iommufd = misc "iommu", VFIO cdev = char "vfio-dev")
$(O)/tests/unit/test-fdtype.o: ALL_CFLAGS += -I$(TOP)/daemon

$(O)/tests/unit-fdtype: $(O)/tests/unit/test-fdtype.o $(O)/daemon/fdtype.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -Wl,--wrap=readlink -Wl,--wrap=readlinkat -o $@ $^ $(CMOCKA_LIBS)

TEST_BINS += $(O)/tests/unit-fdtype
