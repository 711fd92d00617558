/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-iommufd-decide.c - the iommufd decisions (daemon/iommufd-decide.c, docs/IOMMUFD.md): the checks of
 * a declared IOAS (vmm.mappings "ioas") and every preflight refusal of an update, each with the words its
 * reason must carry; and the cases that pass, with the pinned size and the RLIMIT_MEMLOCK the successor
 * needs (twice the pinned size for the same user in user mode: the kernel charges before it uncharges).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "basics.h"
#include "iommufd-decide.h"

#define MiB (1024u * 1024u)

/* two file mappings of the stored memfd 'ram' (2 MiB): its first and its second MiB */
#define MAP1 .iova = 0x100000, .size = MiB, .offset = 0, .file = true, .memfd = "ram", .memfd_stored = true,           \
	     .memfd_size = 2 * MiB
#define MAP2 .iova = 0x200000, .size = MiB, .offset = MiB, .file = true, .memfd = "ram", .memfd_stored = true,         \
	     .memfd_size = 2 * MiB

static const struct iof_map m1 = { MAP1 }, m2 = { MAP2 };

static struct iof_ioas one(struct iof_map *maps, size_t n)
{
	return (struct iof_ioas){ .iommufd = "iommufd:iommu", .ioas_id = 2, .acct = IOF_ACCT_USER, .ndevs = 1,
				  .maps = maps, .nmaps = n };
}

/* A preflight case: the facts that pass (the kernel has CHANGE_PROCESS, exec mode, VmPin 2 MiB, an 8 MiB
 * RLIMIT_MEMLOCK, the same user) and what the case changes, one IOAS ("iommufd:iommu" IOAS 2, user
 * accounting, one device) with the given mappings; then the pinned size and the successor's need
 * iof_preflight() answers, or the words its refusal carries.  A later designated initializer overrides an
 * earlier one (C11 6.7.9): -Woverride-init is off for this file. */
#pragma GCC diagnostic ignored "-Woverride-init"
struct preflight {
	int line;
	struct iof_facts f;
	struct iof_ioas a;
	const char *words; /* NULL: it passes */
	uint64_t pinned, need;
};

#define FACTS(...)                                                                                                     \
	{ .change_process = 1, .exec_mode = true, .vmpin_kb = 2048, .memlock_soft = 8 * MiB, .same_user = true,        \
	  __VA_ARGS__ }
#define IOAS(m, ...)                                                                                                   \
	{ .iommufd = "iommufd:iommu", .ioas_id = 2, .acct = IOF_ACCT_USER, .ndevs = 1, .maps = (m),                    \
	  .nmaps = ELEMENTSOF(m), __VA_ARGS__ }
#define PASSES(ioas, pinned, need, ...) { __LINE__, FACTS(__VA_ARGS__), ioas, NULL, (pinned), (need) }
#define REFUSED(ioas, words, ...) { __LINE__, FACTS(__VA_ARGS__), ioas, (words), 0, 0 }

static const struct iof_map maps1[] = { { MAP1 } }, maps12[] = { { MAP1 }, { MAP2 } };

static void check_preflight(const struct preflight *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t pinned = 1, need = 1;
		char why[512] = "";
		int r;

		r = iof_preflight(&c[i].f, &c[i].a, 1, &pinned, &need, why, sizeof(why));
		if (c[i].words && (r != -1 || !strstr(why, c[i].words)))
			fail_msg("%s:%d: %d, reason '%s'; want -1, a reason that says '%s'", __FILE__, c[i].line, r, why,
				 c[i].words);
		if (!c[i].words && (r != 0 || pinned != c[i].pinned || need != c[i].need))
			fail_msg("%s:%d: %d, pinned %llu, need %llu, reason '%s'; want 0, pinned %llu, need %llu",
				 __FILE__, c[i].line, r, (unsigned long long)pinned, (unsigned long long)need, why,
				 (unsigned long long)c[i].pinned, (unsigned long long)c[i].need);
	}
}

#define CHECK_PREFLIGHT(cases) check_preflight((cases), ELEMENTSOF(cases))

static void passes_user_exec(void **state)
{
	static const struct preflight cases[] = {
		/* same user, user mode: both charges for a moment */
		PASSES(IOAS(maps12), 2 * MiB, 4 * MiB),
		PASSES(IOAS(maps12), 2 * MiB, 2 * MiB, .same_user = false),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void passes_mm_transfer(void **state)
{
	static const struct preflight cases[] = {
		/* mm mode: the new mm's own charge */
		PASSES(IOAS(maps1, .acct = IOF_ACCT_MM), MiB, MiB, .exec_mode = false, .vmpin_kb = 1024),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void vdpa_and_iommufd_vmpin(void **state)
{
	static const struct preflight cases[] = {
		/* the successor's need: the larger of twice the iommufd share and vhost-vdpa + iommufd */
		PASSES(IOAS(maps1), MiB, 5 * MiB, .vdpa_pinned_kb = 4096, .vmpin_kb = 4096 + 1024),
		REFUSED(IOAS(maps1), "VmPin of the VMM is 4096 kB, its declared mappings pin 5120 kB",
			.vdpa_pinned_kb = 4096, .vmpin_kb = 4096),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void no_device_pins_nothing(void **state)
{
	static const struct preflight cases[] = {
		/* nothing pinned: nothing to account */
		PASSES(IOAS(maps1, .ndevs = 0), 0, 0, .vmpin_kb = 0, .cap_ipc_lock = true),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_kernel_without_ioctl(void **state)
{
	static const struct preflight cases[] = {
		REFUSED(IOAS(maps1), "the kernel has no IOMMU_IOAS_CHANGE_PROCESS (probed", .change_process = 0),
		REFUSED(IOAS(maps1), "cannot probe IOMMU_IOAS_CHANGE_PROCESS", .change_process = -EACCES),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_va_mapping(void **state)
{
	static const struct iof_map va2[] = { { MAP1 }, { MAP2, .file = false, .memfd = NULL } };
	static const struct preflight cases[] = {
		REFUSED(IOAS(va2),
			"mapping IOVA 0x200000 of IOAS 2 of iommufd 'iommufd:iommu' was made with IOMMU_IOAS_MAP;"),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_memfd_not_stored(void **state)
{
	static const struct iof_map unstored[] = { { MAP1, .memfd_stored = false } };
	static const struct iof_map truncated[] = { { MAP1, .memfd_size = MiB / 2 } }; /* after the declaration */
	static const struct preflight cases[] = {
		REFUSED(IOAS(unstored), "'ram' is not a stored memfd"),
		REFUSED(IOAS(truncated), "beyond the end of memfd 'ram'"),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_cap_ipc_lock(void **state)
{
	static const struct preflight cases[] = {
		REFUSED(IOAS(maps1), "the VMM has CAP_IPC_LOCK", .cap_ipc_lock = true, .vmpin_kb = 1024),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_mm_exec(void **state)
{
	static const struct preflight cases[] = {
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "mm accounting", .vmpin_kb = 1024),
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_UNKNOWN), "cannot read the accounting mode", .vmpin_kb = 1024),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

/* a mixed instance (vhost-vdpa devices too) in mm accounting mode: refused in transfer mode as well, since a
 * rollback after the successor's CHANGE_PROCESS must end the successor before the old VMM takes its
 * vhost-vdpa devices back, leaving the charge on an mm without users (docs/IOMMUFD.md "Mixed instances");
 * exec mode keeps its own reason (it comes first); user accounting, an iommufd-only instance and a context
 * that pins nothing pass */
static void refuses_mm_mixed(void **state)
{
	static const struct preflight cases[] = {
		/* PA-mode vhost-vdpa devices (their pins in VmPin) */
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "the instance also holds vhost-vdpa devices: a rollback after "
			"the successor's IOMMU_IOAS_CHANGE_PROCESS must end the successor", .exec_mode = false,
			.vdpa = true, .vdpa_pinned_kb = 4096, .vmpin_kb = 4096 + 1024),
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "use user accounting for a mixed instance", .exec_mode = false,
			.vdpa = true, .vdpa_pinned_kb = 4096, .vmpin_kb = 4096 + 1024, .allow_memlock_raise = true),
		/* VA-mode devices pin nothing, but need the successor gone all the same */
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "also holds vhost-vdpa devices", .exec_mode = false, .vdpa = true,
			.vmpin_kb = 1024),
		/* exec mode: the exec reason first */
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "exec mode leaves no old mm", .vdpa = true,
			.vdpa_pinned_kb = 4096, .vmpin_kb = 4096 + 1024),
		/* the refusal comes before the VmPin check (a wrong VmPin is not what the operator must fix first) */
		REFUSED(IOAS(maps1, .acct = IOF_ACCT_MM), "also holds vhost-vdpa devices", .exec_mode = false, .vdpa = true,
			.vdpa_pinned_kb = 4096, .vmpin_kb = 4096),
		/* user accounting: the mixed update runs (kill first is safe: a dead mm's uncharge works there) */
		PASSES(IOAS(maps1), MiB, 5 * MiB, .exec_mode = false, .vdpa = true, .vdpa_pinned_kb = 4096,
		       .vmpin_kb = 4096 + 1024),
		/* iommufd-only in mm mode: R14 holds the successor instead */
		PASSES(IOAS(maps1, .acct = IOF_ACCT_MM), MiB, MiB, .exec_mode = false, .vmpin_kb = 1024),
		/* nothing pinned (no device attached): nothing is charged, nothing to uncharge */
		PASSES(IOAS(maps1, .acct = IOF_ACCT_MM, .ndevs = 0), 0, 4 * MiB, .exec_mode = false, .vdpa = true,
		       .vdpa_pinned_kb = 4096, .vmpin_kb = 4096),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

/* exec mode's refusal in mm accounting advises what will pass: transfer mode for an iommufd-only instance,
 * user accounting for a mixed one (refused in transfer mode too), never transfer mode there */
static void exec_mm_advice(void **state)
{
	const struct iof_ioas a = IOAS(maps1, .acct = IOF_ACCT_MM);
	const struct iof_facts only = FACTS(.vmpin_kb = 1024);
	const struct iof_facts mixed = FACTS(.vdpa = true, .vdpa_pinned_kb = 4096, .vmpin_kb = 4096 + 1024);
	uint64_t pinned, need;
	char why[512];

	(void)state;
	assert_int_equal(iof_preflight(&only, &a, 1, &pinned, &need, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "exec mode leaves no old mm"));
	assert_non_null(strstr(why, "): use transfer mode"));
	assert_int_equal(iof_preflight(&mixed, &a, 1, &pinned, &need, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "exec mode leaves no old mm"));
	assert_null(strstr(why, "use transfer mode"));
	assert_non_null(strstr(why, "): use user accounting (the instance also holds vhost-vdpa devices"));
	assert_true(strlen(why) < sizeof(why) - 1); /* not truncated */
}

static void refuses_undeclared(void **state)
{
	static const struct preflight cases[] = {
		REFUSED(IOAS(maps1), "iommufd 'iommufd:iommu' has no declared IOAS",
			.undeclared_iommufd = "iommufd:iommu"),
		REFUSED(IOAS(maps1), "VFIO device 'vfio:vfio0' is in no declared IOAS", .unattached_vfio = "vfio:vfio0"),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

static void refuses_memlock(void **state)
{
	static const struct preflight cases[] = {
		/* enough for the pinned 2 MiB, not for both charges */
		REFUSED(IOAS(maps12), "charges it 4194304 (twice the pinned size", .memlock_soft = 3 * MiB),
		PASSES(IOAS(maps12), 2 * MiB, 4 * MiB, .memlock_soft = 3 * MiB, .allow_memlock_raise = true),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

/* the successor's RLIMIT_MEMLOCK with vhost-vdpa pins in the same update: not the sum of the two rules
 * (user->locked_vm holds 2 * iof for a moment, the new mm's pinned_vm vdpa + iof), their maximum */
static void memlock_need_mixed(void **state)
{
	(void)state;
	assert_int_equal(iof_memlock_need(MiB, 0, true, true), 2 * MiB);   /* iommufd only, as before */
	assert_int_equal(iof_memlock_need(0, 8 * MiB, true, true), 8 * MiB); /* vhost-vdpa only */
	assert_int_equal(iof_memlock_need(MiB, 8 * MiB, true, true), 9 * MiB);
	assert_int_equal(iof_memlock_need(4 * MiB, MiB, true, true), 8 * MiB); /* 2 * iof > vdpa + iof */
	assert_int_equal(iof_memlock_need(4 * MiB, MiB, false, true), 5 * MiB); /* mm mode */
	assert_int_equal(iof_memlock_need(4 * MiB, MiB, true, false), 5 * MiB); /* another user */
}

/* iof_preflight refuses a mixed instance whose successor's limit is short for vdpa + iof */
static void refuses_memlock_mixed(void **state)
{
	static const struct preflight cases[] = {
		/* the vhost-vdpa pins alone fit */
		REFUSED(IOAS(maps1), "charges it 9437184 (the iommufd pinned size plus the vhost-vdpa devices' pins",
			.vdpa_pinned_kb = 8192, .vmpin_kb = 8192 + 1024, .memlock_soft = 8 * MiB),
		PASSES(IOAS(maps1), MiB, 9 * MiB, .vdpa_pinned_kb = 8192, .vmpin_kb = 8192 + 1024,
		       .memlock_soft = 8 * MiB, .allow_memlock_raise = true),
	};

	(void)state;
	CHECK_PREFLIGHT(cases);
}

/* what VmPin and VmLck must show per path: the sum of both shares in VmPin on A, B and C (C's vhost-vdpa
 * share re-pinned, not moved), VmLck the iommufd share in mm mode only */
static void mix_plan_paths(void **state)
{
	struct iof_mix_plan p;

	(void)state;
	for (const char *r = "ABC"; *r; r++) {
		iof_mix_plan(&(struct iof_mix){ .route = *r, .vdpa_bytes = 16 * MiB, .iof_bytes = MiB,
						.acct = IOF_ACCT_USER, .same_user = true },
			     &p);
		assert_int_equal(p.expected_kb, 17 * 1024);
		assert_int_equal(p.vdpa_kb, 16 * 1024);
		assert_int_equal(p.iof_kb, 1024);
		assert_int_equal(p.vdpa_repinned, *r == 'C');
		assert_false(p.vmlck_verified);
		assert_int_equal(p.vmlck_kb, 0);
		assert_int_equal(p.memlock_need, 17 * MiB);
		/* user mode: nothing in /proc shows user->locked_vm, so VmLck is not looked at */
		assert_true(iof_vmlck_moved(&p, true, 0, 5, 0, 7));
		iof_mix_plan(&(struct iof_mix){ .route = *r, .vdpa_bytes = 16 * MiB, .iof_bytes = MiB,
						.acct = IOF_ACCT_MM, .same_user = true },
			     &p);
		assert_int_equal(p.expected_kb, 17 * 1024);
		assert_true(p.vmlck_verified);
		assert_int_equal(p.vmlck_kb, 1024); /* vhost-vdpa never charges locked_vm */
		assert_true(iof_vmlck_moved(&p, true, 1024, 0, 0, 1024));
		assert_false(iof_vmlck_moved(&p, true, 1024, 0, 0, 17 * 1024)); /* the sum is wrong for VmLck */
		assert_false(iof_vmlck_moved(&p, true, 1024, 1024, 0, 1024));    /* O kept it */
		assert_true(iof_vmlck_moved(&p, false, 0, 0, 0, 0));		      /* exec mode: refused before */
		/* N mlock()ed 4096 kB of its own before its claim (QEMU -overcommit mem-lock=on): its baseline */
		assert_true(iof_vmlck_moved(&p, true, 1024, 0, 4096, 5120));
		assert_false(iof_vmlck_moved(&p, true, 1024, 0, 4096, 4096)); /* it did not get the charge */
		assert_false(iof_vmlck_moved(&p, true, 1024, 0, 4096, 1024)); /* exactly vmlck_kb is not enough */
	}
	/* VA-mode vhost-vdpa devices pin nothing: the iommufd share alone */
	iof_mix_plan(&(struct iof_mix){ .route = 'C', .vdpa_bytes = 0, .iof_bytes = MiB, .acct = IOF_ACCT_USER,
					.same_user = true },
		     &p);
	assert_int_equal(p.expected_kb, 1024);
	assert_false(p.vdpa_repinned);
	assert_int_equal(p.memlock_need, 2 * MiB);
	/* no vhost-vdpa device (route 0): the iommufd-only update, whatever vdpa_bytes says */
	iof_mix_plan(&(struct iof_mix){ .route = 0, .vdpa_bytes = 4 * MiB, .iof_bytes = MiB, .acct = IOF_ACCT_USER,
					.same_user = true },
		     &p);
	assert_int_equal(p.expected_kb, 1024);
	assert_int_equal(p.vdpa_kb, 0);
	assert_int_equal(p.memlock_need, 2 * MiB);
}

/* O's take-back at a transfer-mode rollback (its own CHANGE_PROCESS, R8/R14): VmLck back where it was at
 * the start in mm accounting mode, a table of (mode, before, after, verdict) */
static void vmlck_retaken(void **state)
{
	static const struct {
		int acct;
		uint64_t iof_bytes;
		int64_t before, after;
		bool ok;
	} cases[] = {
		/* mm mode: the charge back with O, exactly (its own mlock()s are part of both) */
		{ IOF_ACCT_MM, MiB, 1024, 1024, true },
		{ IOF_ACCT_MM, MiB, 5120, 5120, true },
		/* mm mode: still with the successor (O's CHANGE_PROCESS failed, or moved part of it: the partial
		 * move of the second kernel bug), or charged twice, or unreadable */
		{ IOF_ACCT_MM, MiB, 1024, 0, false },
		{ IOF_ACCT_MM, MiB, 1024, 512, false },
		{ IOF_ACCT_MM, MiB, 1024, 2048, false },
		{ IOF_ACCT_MM, MiB, 1024, -1, false },
		/* user mode: VmLck never moves, nothing to verify (user->locked_vm is in no /proc file) */
		{ IOF_ACCT_USER, MiB, 0, 0, true },
		{ IOF_ACCT_USER, MiB, 0, 1024, true },
		{ IOF_ACCT_USER, MiB, 0, -1, true },
		/* mm mode, nothing pinned: nothing moves */
		{ IOF_ACCT_MM, 0, 0, 7, true },
	};
	struct iof_mix_plan p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		iof_mix_plan(&(struct iof_mix){ .route = 0, .iof_bytes = cases[i].iof_bytes, .acct = cases[i].acct,
						.same_user = true },
			     &p);
		if (iof_vmlck_retaken(&p, cases[i].before, cases[i].after) != cases[i].ok)
			fail_msg("case %zu: acct %d, %" PRId64 " -> %" PRId64 " kB: want %s", i, cases[i].acct,
				 cases[i].before, cases[i].after, cases[i].ok ? "retaken" : "not retaken");
	}
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
		cmocka_unit_test(refuses_mm_mixed),
		cmocka_unit_test(exec_mm_advice),
		cmocka_unit_test(refuses_undeclared),
		cmocka_unit_test(refuses_memlock),
		cmocka_unit_test(memlock_need_mixed),
		cmocka_unit_test(refuses_memlock_mixed),
		cmocka_unit_test(mix_plan_paths),
		cmocka_unit_test(vmlck_retaken),
		cmocka_unit_test(check_ioas_shape),
		cmocka_unit_test(moved_names),
		cmocka_unit_test(same_layout),
	};

	return cmocka_run_group_tests_name("iommufd-decide", tests, NULL, NULL);
}
