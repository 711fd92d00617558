/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-iommufd-decide.c - the iommufd decisions (daemon/iommufd-decide.c, docs/IOMMUFD.md): the checks of
 * a declared IOAS (vmm.mappings "ioas") and every preflight refusal of an update, each with the words its
 * reason must carry; and the cases that pass, with the pinned size and the RLIMIT_MEMLOCK the successor
 * needs (twice the pinned size for the same user in user mode: the kernel charges before it uncharges).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "iommufd-decide.h"

#define MiB (1024u * 1024u)

static struct iof_map m1 = { .iova = 0x100000, .size = MiB, .offset = 0, .file = true, .memfd = "ram",
			     .memfd_stored = true, .memfd_size = 2 * MiB };
static struct iof_map m2 = { .iova = 0x200000, .size = MiB, .offset = MiB, .file = true, .memfd = "ram",
			     .memfd_stored = true, .memfd_size = 2 * MiB };

static struct iof_facts ok_facts(void)
{
	return (struct iof_facts){ .change_process = 1, .exec_mode = true, .vmpin_kb = 2048,
				   .memlock_soft = 8 * MiB, .same_user = true };
}

static struct iof_ioas one(struct iof_map *maps, size_t n)
{
	return (struct iof_ioas){ .iommufd = "iommufd:iommu", .ioas_id = 2, .acct = IOF_ACCT_USER, .ndevs = 1,
				  .maps = maps, .nmaps = n };
}

static void expect_refusal(const struct iof_facts *f, const struct iof_ioas *a, size_t n, const char *words)
{
	char why[512] = "";
	uint64_t pinned = 1, need = 1;

	assert_int_equal(iof_preflight(f, a, n, &pinned, &need, why, sizeof(why)), -1);
	if (!strstr(why, words))
		fail_msg("reason '%s' does not say '%s'", why, words);
}

static void passes_user_exec(void **state)
{
	struct iof_map maps[] = { m1, m2 };
	struct iof_ioas a = one(maps, 2);
	struct iof_facts f = ok_facts();
	uint64_t pinned, need;
	char why[256];

	(void)state;
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	assert_int_equal(pinned, 2 * MiB);
	assert_int_equal(need, 4 * MiB); /* same user, user mode: both charges for a moment */
	f.same_user = false;
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	assert_int_equal(need, 2 * MiB);
}

static void passes_mm_transfer(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();
	uint64_t pinned, need;
	char why[256];

	(void)state;
	a.acct = IOF_ACCT_MM;
	f.exec_mode = false;
	f.vmpin_kb = 1024;
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	assert_int_equal(pinned, MiB);
	assert_int_equal(need, MiB); /* mm mode: the new mm's own charge */
}

static void vdpa_and_iommufd_vmpin(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();
	uint64_t pinned, need;
	char why[256];

	(void)state;
	f.vdpa_pinned_kb = 4096;
	f.vmpin_kb = 4096 + 1024;
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	f.vmpin_kb = 4096;
	expect_refusal(&f, &a, 1, "VmPin of the VMM is 4096 kB, its declared mappings pin 5120 kB");
}

static void no_device_pins_nothing(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();
	uint64_t pinned, need;
	char why[256];

	(void)state;
	a.ndevs = 0;
	f.vmpin_kb = 0;
	f.cap_ipc_lock = true; /* nothing pinned: nothing to account */
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	assert_int_equal(pinned, 0);
	assert_int_equal(need, 0);
}

static void refuses_kernel_without_ioctl(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();

	(void)state;
	f.change_process = 0;
	expect_refusal(&f, &a, 1, "the kernel has no IOMMU_IOAS_CHANGE_PROCESS (probed");
	f.change_process = -EACCES;
	expect_refusal(&f, &a, 1, "cannot probe IOMMU_IOAS_CHANGE_PROCESS");
}

static void refuses_va_mapping(void **state)
{
	struct iof_map maps[] = { m1, m2 };
	struct iof_ioas a = one(maps, 2);
	struct iof_facts f = ok_facts();

	(void)state;
	maps[1].file = false;
	maps[1].memfd = NULL;
	expect_refusal(&f, &a, 1, "mapping IOVA 0x200000 of IOAS 2 of iommufd 'iommufd:iommu' was made with IOMMU_IOAS_MAP;");
}

static void refuses_memfd_not_stored(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();

	(void)state;
	maps[0].memfd_stored = false;
	expect_refusal(&f, &a, 1, "'ram' is not a stored memfd");
	maps[0].memfd_stored = true;
	maps[0].memfd_size = MiB / 2; /* truncated after the declaration */
	expect_refusal(&f, &a, 1, "beyond the end of memfd 'ram'");
}

static void refuses_cap_ipc_lock(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();

	(void)state;
	f.cap_ipc_lock = true;
	f.vmpin_kb = 1024;
	expect_refusal(&f, &a, 1, "the VMM has CAP_IPC_LOCK");
}

static void refuses_mm_exec(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();

	(void)state;
	a.acct = IOF_ACCT_MM;
	f.vmpin_kb = 1024;
	expect_refusal(&f, &a, 1, "mm accounting");
	a.acct = IOF_ACCT_UNKNOWN;
	expect_refusal(&f, &a, 1, "cannot read the accounting mode");
}

static void refuses_undeclared(void **state)
{
	struct iof_map maps[] = { m1 };
	struct iof_ioas a = one(maps, 1);
	struct iof_facts f = ok_facts();

	(void)state;
	f.undeclared_iommufd = "iommufd:iommu";
	expect_refusal(&f, &a, 1, "iommufd 'iommufd:iommu' has no declared IOAS");
	f.undeclared_iommufd = NULL;
	f.unattached_vfio = "vfio:vfio0";
	expect_refusal(&f, &a, 1, "VFIO device 'vfio:vfio0' is in no declared IOAS");
}

static void refuses_memlock(void **state)
{
	struct iof_map maps[] = { m1, m2 };
	struct iof_ioas a = one(maps, 2);
	struct iof_facts f = ok_facts();
	uint64_t pinned, need;
	char why[256];

	(void)state;
	f.memlock_soft = 3 * MiB; /* enough for the pinned 2 MiB, not for both charges */
	expect_refusal(&f, &a, 1, "charges it 4194304 (twice the pinned size");
	f.allow_memlock_raise = true;
	assert_int_equal(iof_preflight(&f, &a, 1, &pinned, &need, why, sizeof(why)), 0);
	assert_int_equal(need, 4 * MiB);
}

static void check_ioas_shape(void **state)
{
	struct iof_map maps[] = { m1, m2 };
	struct iof_ioas a = one(maps, 2);
	char why[256];

	(void)state;
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), 0);
	maps[1].iova = 0x180000; /* into m1's range */
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "overlap"));
	maps[1].iova = 0x200800; /* not 4 KiB aligned */
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "multiples of 4096"));
	maps[1].iova = UINT64_MAX - 4095; /* aligned, but the end overflows */
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "overflows"));
	maps[1] = m2;
	maps[1].size = 0;
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), -1);
	maps[1] = m2;
	maps[1].offset = UINT64_MAX; /* offset + size would wrap */
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "beyond the end"));
	/* a va mapping has no memfd: its shape is checked, its memfd is not */
	maps[1] = m2;
	maps[1].file = false;
	maps[1].memfd = NULL;
	maps[1].memfd_stored = false;
	assert_int_equal(iof_check_ioas(&a, why, sizeof(why)), 0);
}

static void expect_why(int k, const char *why, const char *words)
{
	assert_int_equal(k, -1);
	if (!strstr(why, words))
		fail_msg("reason '%s' does not say '%s'", why, words);
}

/* update.ready's iommufd_moved: every held iommufd, nothing else, nothing twice */
static void moved_names(void **state)
{
	const char *held[] = { "iommufd:iommu", "iommufd:b" };
	const char *all[] = { "iommufd:b", "iommufd:iommu" };
	const char *one[] = { "iommufd:iommu" };
	const char *twice[] = { "iommufd:iommu", "iommufd:iommu", "iommufd:b" };
	const char *other[] = { "iommufd:iommu", "iommufd:b", "ram" };
	char why[512] = "";

	(void)state;
	assert_int_equal(iof_check_moved(held, 2, all, 2, why, sizeof(why)), 0);
	assert_int_equal(iof_check_moved(held, 0, NULL, 0, why, sizeof(why)), 0);
	expect_why(iof_check_moved(held, 2, one, 1, why, sizeof(why)), why,
		   "did not call IOMMU_IOAS_CHANGE_PROCESS on iommufd 'iommufd:b'");
	expect_why(iof_check_moved(held, 2, NULL, 0, why, sizeof(why)), why, "iommufd 'iommufd:iommu'");
	expect_why(iof_check_moved(held, 2, twice, 3, why, sizeof(why)), why, "names 'iommufd:iommu' twice");
	expect_why(iof_check_moved(held, 2, other, 3, why, sizeof(why)), why, "'ram', which is not an iommufd");
}

/* update.ready's ioas: only uaddr may change (it is not part of struct iof_map) */
static void same_layout(void **state)
{
	struct iof_map a1[] = { m1, m2 }, b1[] = { m2, m1 }, c1[] = { m1, m2 };
	struct iof_ioas a = one(a1, 2), b = one(b1, 2), c;
	char why[512] = "";

	(void)state;
	/* the same mappings in another order */
	assert_int_equal(iof_same_layout(&a, 1, &b, 1, why, sizeof(why)), 0);
	/* a mapping that moved in IOVA, changed size, offset, memfd or kind */
	c = one(c1, 2);
	c1[1].iova += 0x1000;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "the mapping at IOVA 0x200000 differs");
	c1[1] = m2, c1[1].size /= 2;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "IOVA 0x200000");
	c1[1] = m2, c1[1].offset = 0;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "IOVA 0x200000");
	c1[1] = m2, c1[1].memfd = "ram2";
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "IOVA 0x200000");
	c1[1] = m2, c1[1].file = false;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "IOVA 0x200000");
	/* fewer mappings, devices, another IOAS, another count of IOASes */
	c1[1] = m2;
	c = one(c1, 1);
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "1 mappings");
	c = one(c1, 2);
	c.ndevs = 0;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "0 devices");
	c.ndevs = 1;
	c.ioas_id = 3;
	expect_why(iof_same_layout(&a, 1, &c, 1, why, sizeof(why)), why, "IOAS 2 of 'iommufd:iommu' is missing");
	expect_why(iof_same_layout(&a, 1, &c, 0, why, sizeof(why)), why, "declares 0 IOASes, 1 were declared");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(passes_user_exec),
		cmocka_unit_test(passes_mm_transfer),
		cmocka_unit_test(vdpa_and_iommufd_vmpin),
		cmocka_unit_test(no_device_pins_nothing),
		cmocka_unit_test(refuses_kernel_without_ioctl),
		cmocka_unit_test(refuses_va_mapping),
		cmocka_unit_test(refuses_memfd_not_stored),
		cmocka_unit_test(refuses_cap_ipc_lock),
		cmocka_unit_test(refuses_mm_exec),
		cmocka_unit_test(refuses_undeclared),
		cmocka_unit_test(refuses_memlock),
		cmocka_unit_test(check_ioas_shape),
		cmocka_unit_test(moved_names),
		cmocka_unit_test(same_layout),
	};

	return cmocka_run_group_tests_name("iommufd-decide", tests, NULL, NULL);
}
