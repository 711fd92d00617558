/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fdtype.c - the parsers that tell vlud which driver a character device belongs to
 * (daemon/fdtype.c): the major of a char driver in /proc/devices, the minor of a misc device in
 * /proc/misc.  The texts have the kernel's format (numbers made up); vfio's group nodes ("vfio") and the
 * device cdevs ("vfio-dev") are different drivers, and block devices never count.  And on real fds,
 * fdtype_detect_sealed() (the state memfd's check inside an update's pause) gives fdtype_detect()'s answer
 * for every kind of fd, a sealed memfd without the readlink, an O_PATH fd refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fdtype.h"

/* readlink(at) calls made by daemon/fdtype.c (linked with --wrap): the fast path must make none */
static unsigned n_readlink;
ssize_t __real_readlink(const char *path, char *buf, size_t len);
ssize_t __real_readlinkat(int dirfd, const char *path, char *buf, size_t len);
ssize_t __wrap_readlink(const char *path, char *buf, size_t len);
ssize_t __wrap_readlinkat(int dirfd, const char *path, char *buf, size_t len);

ssize_t __wrap_readlink(const char *path, char *buf, size_t len)
{
	n_readlink++;
	return __real_readlink(path, buf, len);
}

ssize_t __wrap_readlinkat(int dirfd, const char *path, char *buf, size_t len)
{
	n_readlink++;
	return __real_readlinkat(dirfd, path, buf, len);
}

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

/* fdtype_detect_sealed(fd) == want, and fdtype_detect(fd) agrees */
static void both(int fd, int want)
{
	struct stat a, b;

	assert_true(fd >= 0);
	assert_int_equal(fdtype_detect_sealed(fd, -1, &a), want);
	assert_int_equal(fdtype_detect(fd, -1, &b), want);
	if (want >= 0)
		assert_true(a.st_ino == b.st_ino && a.st_size == b.st_size);
}

static void sealed(void **state)
{
	char path[64], tmpl[] = "/dev/shm/vlu-test-fdtype.XXXXXX";
	int m = memfd_create("state", MFD_CLOEXEC | MFD_ALLOW_SEALING), p[2], f, o;

	(void)state;
	assert_true(m >= 0);
	assert_int_equal(write(m, "saved", 5), 5);
	both(m, VLUD_FD_MEMFD); /* not sealed yet: fdtype_detect's answer (the caller refuses the seals) */
	assert_int_equal(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0);
	both(m, VLUD_FD_MEMFD);
	{
		struct stat st;

		n_readlink = 0;
		assert_int_equal(fdtype_detect_sealed(m, -1, &st), VLUD_FD_MEMFD);
		assert_int_equal(n_readlink, 0); /* told by its seals alone */
		assert_int_equal(st.st_size, 5);
	}
	/* an O_PATH fd of the sealed memfd proves nothing: refused, as every O_PATH fd */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
	o = open(path, O_PATH | O_CLOEXEC);
	both(o, -EBADFD);
	close(o);
	close(m);

	/* no sealing allowed: a memfd, with F_SEAL_SEAL only */
	m = memfd_create("state", MFD_CLOEXEC);
	both(m, VLUD_FD_MEMFD);
	/* F_SEAL_SEAL, or F_SEAL_EXEC where vm.memfd_noexec makes it MFD_NOEXEC_SEAL (6.3+): not write-sealed */
	assert_int_equal(fcntl(m, F_GET_SEALS) & F_SEAL_WRITE, 0);
	close(m);

	/* a tmpfs file that is no memfd: born with F_SEAL_SEAL, it can never carry F_SEAL_WRITE */
	f = mkstemp(tmpl);
	assert_true(f >= 0);
	unlink(tmpl);
	both(f, VLUD_FD_FILE);
	assert_int_equal(fcntl(f, F_ADD_SEALS, F_SEAL_WRITE), -1);
	close(f);

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	both(p[0], VLUD_FD_PIPE);
	close(p[0]);
	close(p[1]);
	f = eventfd(0, EFD_CLOEXEC);
	both(f, VLUD_FD_EVENTFD);
	close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chr_major),
		cmocka_unit_test(misc_minor),
		cmocka_unit_test(names),
		cmocka_unit_test(sealed),
	};

	return cmocka_run_group_tests_name("fdtype", tests, NULL, NULL);
}
