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

#include "fdtype.h"

static const char *const names[_VLUD_FD_TYPE_MAX] = {
	[VLUD_FD_VHOST_VDPA] = "vhost-vdpa",
	[VLUD_FD_MEMFD] = "memfd",
	[VLUD_FD_EVENTFD] = "eventfd",
	[VLUD_FD_SOCKET] = "socket",
	[VLUD_FD_PIPE] = "pipe",
	[VLUD_FD_FILE] = "file",
	[VLUD_FD_CHARDEV] = "chardev",
	[VLUD_FD_OTHER] = "other",
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
		if (vdpa_major >= 0 && major(st.st_rdev) == (unsigned)vdpa_major)
			return VLUD_FD_VHOST_VDPA;
		return VLUD_FD_CHARDEV;
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
