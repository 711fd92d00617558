/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fdtype.c - the parsers that tell vlud which driver a character device belongs to
 * (daemon/fdtype.c): the major of a char driver in /proc/devices, the minor of a misc device in
 * /proc/misc.  The texts have the kernel's format (numbers made up); vfio's group nodes ("vfio") and the
 * device cdevs ("vfio-dev") are different drivers, and block devices never count.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fdtype.h"

static const char devices[] = "Character devices:\n"
			      "  1 mem\n"
			      "  4 /dev/vc/0\n"
			      " 10 misc\n"
			      "238 vfio\n"
			      "239 vhost-vdpa\n"
			      "240 vfio-dev\n"
			      "\n"
			      "Block devices:\n"
			      "241 vfio-dev-blk\n"
			      "254 virtblk\n"
			      "250 vfio-only-block\n";

static const char misc[] = "124 vfio\n"
			   "125 iommu\n"
			   "200 tun\n"
			   "237 loop-control\n";

static void chr_major(void **state)
{
	(void)state;
	assert_int_equal(fdtype_parse_chr_major(devices, "vhost-vdpa"), 239);
	assert_int_equal(fdtype_parse_chr_major(devices, "vfio-dev"), 240);
	assert_int_equal(fdtype_parse_chr_major(devices, "vfio"), 238);
	assert_int_equal(fdtype_parse_chr_major(devices, "misc"), 10);
	/* a prefix is not the name; a block driver is not a char driver */
	assert_int_equal(fdtype_parse_chr_major(devices, "vfio-d"), -ENOENT);
	assert_int_equal(fdtype_parse_chr_major(devices, "vfio-only-block"), -ENOENT);
	assert_int_equal(fdtype_parse_chr_major(devices, "virtblk"), -ENOENT);
	assert_int_equal(fdtype_parse_chr_major("", "vfio-dev"), -ENOENT);
	/* no "Character devices:" header: nothing is a char driver */
	assert_int_equal(fdtype_parse_chr_major("240 vfio-dev\n", "vfio-dev"), -ENOENT);
	/* the last line without its newline */
	assert_int_equal(fdtype_parse_chr_major("Character devices:\n 10 misc\n240 vfio-dev", "vfio-dev"), 240);
}

static void misc_minor(void **state)
{
	(void)state;
	assert_int_equal(fdtype_parse_misc_minor(misc, "iommu"), 125);
	assert_int_equal(fdtype_parse_misc_minor(misc, "vfio"), 124);
	assert_int_equal(fdtype_parse_misc_minor(misc, "iommufd"), -ENOENT);
	assert_int_equal(fdtype_parse_misc_minor(misc, "iomm"), -ENOENT);
	assert_int_equal(fdtype_parse_misc_minor("", "iommu"), -ENOENT);
	assert_int_equal(fdtype_parse_misc_minor("125 iommu", "iommu"), 125);
}

static void names(void **state)
{
	(void)state;
	assert_string_equal(fdtype_name(VLUD_FD_IOMMUFD), "iommufd");
	assert_string_equal(fdtype_name(VLUD_FD_VFIO), "vfio");
	assert_int_equal(fdtype_from_name("iommufd"), VLUD_FD_IOMMUFD);
	assert_int_equal(fdtype_from_name("vfio"), VLUD_FD_VFIO);
	assert_int_equal(fdtype_from_name("vfio-dev"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chr_major),
		cmocka_unit_test(misc_minor),
		cmocka_unit_test(names),
	};

	return cmocka_run_group_tests_name("fdtype", tests, NULL, NULL);
}
