/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdtype.c - what kind of file an fd is.  fstat() gives the file type and,
 * for character devices, the major (compared with the "vhost-vdpa" entry of
 * /proc/devices); readlink(/proc/self/fd/N) tells memfds ("/memfd:NAME")
 * and eventfds ("anon_inode:[eventfd]") apart from plain files and other
 * anonymous inodes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdlib.h>

#include "fdtype.h"

#define MISC_MAJOR 10

int fdtype_parse_chr_major(const char *text, const char *name)
{
	const char *l = text;
	int chr = 0;

	for (; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char nm[64];
		int m;

		if (strncmp(l, "Character devices:", 18) == 0) {
			chr = 1;
			continue;
		}
		if (strncmp(l, "Block devices:", 14) == 0) {
			chr = 0;
			continue;
		}
		if (chr && sscanf(l, "%d %63s", &m, nm) == 2 && strcmp(nm, name) == 0)
			return m;
	}
	return -ENOENT;
}

int fdtype_parse_misc_minor(const char *text, const char *name)
{
	const char *l = text;

	for (; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char nm[64];
		int m;

		if (sscanf(l, "%d %63s", &m, nm) == 2 && strcmp(nm, name) == 0)
			return m;
	}
	return -ENOENT;
}

/* the whole of a small /proc file, NUL-terminated, into buf; 0 or -errno */
static int read_proc(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), k = 0;
	size_t n = 0;
	ssize_t r = 0;

	if (fd < 0)
		return -errno;
	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	if (r < 0)
		k = -errno;
	close(fd);
	buf[n] = '\0';
	return k;
}

int fdtype_chr_major(const char *name)
{
	char buf[8192];
	int k = read_proc("/proc/devices", buf, sizeof(buf));

	return k < 0 ? k : fdtype_parse_chr_major(buf, name);
}

int fdtype_misc_minor(const char *name)
{
	char buf[8192];
	int k = read_proc("/proc/misc", buf, sizeof(buf));

	return k < 0 ? k : fdtype_parse_misc_minor(buf, name);
}

int fdtype_chr_kind(dev_t rdev, int vdpa_major)
{
	int m;

	if (vdpa_major >= 0 && major(rdev) == (unsigned)vdpa_major)
		return VLUD_FD_VHOST_VDPA;
	if (major(rdev) == MISC_MAJOR) {
		m = fdtype_misc_minor("iommu");
		return m >= 0 && minor(rdev) == (unsigned)m ? VLUD_FD_IOMMUFD : VLUD_FD_CHARDEV;
	}
	m = fdtype_chr_major("vfio-dev");
	if (m >= 0 && major(rdev) == (unsigned)m)
		return VLUD_FD_VFIO;
	return VLUD_FD_CHARDEV;
}

static const char *const names[_VLUD_FD_TYPE_MAX] = {
	[VLUD_FD_VHOST_VDPA] = "vhost-vdpa",
	[VLUD_FD_MEMFD] = "memfd",
	[VLUD_FD_EVENTFD] = "eventfd",
	[VLUD_FD_SOCKET] = "socket",
	[VLUD_FD_PIPE] = "pipe",
	[VLUD_FD_FILE] = "file",
	[VLUD_FD_CHARDEV] = "chardev",
	[VLUD_FD_OTHER] = "other",
	[VLUD_FD_IOMMUFD] = "iommufd",
	[VLUD_FD_VFIO] = "vfio",
};

const char *fdtype_name(enum vlud_fd_type t)
{
	return (unsigned)t < _VLUD_FD_TYPE_MAX ? names[t] : "other";
}

int fdtype_from_name(const char *name)
{
	for (unsigned i = 0; i < _VLUD_FD_TYPE_MAX; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -EINVAL;
}

static int proc_fd_dir = -EBADF;

void fdtype_init(void)
{
	if (proc_fd_dir < 0)
		proc_fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int fdtype_detect(int fd, int vdpa_major, struct stat *ret_st)
{
	char proc[64], link[256];
	struct stat st;
	ssize_t n;

	int fl;

	/* an O_PATH fd needs no permission on what it names, so it proves nothing: refused for every type
	 * (it would pass for the device node or memfd it names and block the real holder) */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (fl & O_PATH)
		return -EBADFD;
	if (fstat(fd, &st) < 0)
		return -errno;
	*ret_st = st;

	switch (st.st_mode & S_IFMT) {
	case S_IFSOCK:
		return VLUD_FD_SOCKET;
	case S_IFIFO:
		return VLUD_FD_PIPE;
	case S_IFCHR:
		return fdtype_chr_kind(st.st_rdev, vdpa_major);
	default:
		break;
	}

	if (proc_fd_dir >= 0) {
		snprintf(proc, sizeof(proc), "%d", fd);
		n = readlinkat(proc_fd_dir, proc, link, sizeof(link) - 1);
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		n = readlink(proc, link, sizeof(link) - 1);
	}
	if (n < 0)
		n = 0;
	link[n] = '\0';

	if (S_ISREG(st.st_mode)) {
		/* memfd_create() files live on an internal shmem mount and read back as "/memfd:NAME (deleted)" */
		if (strncmp(link, "/memfd:", 7) == 0 && fcntl(fd, F_GET_SEALS) >= 0)
			return VLUD_FD_MEMFD; /* F_GET_SEALS: shmem, not a file someone named "/memfd:..." */
		return VLUD_FD_FILE;
	}
	if (strcmp(link, "anon_inode:[eventfd]") == 0)
		return VLUD_FD_EVENTFD;
	return VLUD_FD_OTHER;
}

/* Only memfd_create() (MFD_ALLOW_SEALING or MFD_NOEXEC_SEAL) makes a file that can carry F_SEAL_WRITE: other
 * shmem and hugetlbfs files are born with F_SEAL_SEAL, other file systems have no seals (EINVAL).  So a file
 * sealed so is a memfd, and the readlink of /proc/self/fd (0.2-0.4 ms under TCG, inside the pause when vlud
 * checks O's state memfd: docs/BENCH.md) is not needed to tell it; anything else gets fdtype_detect()'s answer. */
int fdtype_detect_sealed(int fd, int vdpa_major, struct stat *ret_st)
{
	const int need = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;
	int fl = fcntl(fd, F_GETFL), seals;

	/* the seals before fstat(): once F_SEAL_SHRINK and F_SEAL_GROW are in, the size it reads is final (the
	 * other order takes a size the sender may still change, then seals it) */
	if (fl >= 0 && !(fl & O_PATH)) {
		seals = fcntl(fd, F_GET_SEALS);
		if (seals >= 0 && (seals & need) == need && fstat(fd, ret_st) == 0 && S_ISREG(ret_st->st_mode))
			return VLUD_FD_MEMFD;
	}
	return fdtype_detect(fd, vdpa_major, ret_st);
}
