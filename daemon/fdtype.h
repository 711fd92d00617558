/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fdtype.h - classify an fd (fstat + readlink of /proc/self/fd/N) */
#ifndef VLUD_FDTYPE_H
#define VLUD_FDTYPE_H

#include <stdbool.h>
#include <sys/stat.h>

enum vlud_fd_type {
	VLUD_FD_VHOST_VDPA,
	VLUD_FD_MEMFD,
	VLUD_FD_EVENTFD,
	VLUD_FD_SOCKET,
	VLUD_FD_PIPE,
	VLUD_FD_FILE,
	VLUD_FD_CHARDEV,
	VLUD_FD_OTHER,
	VLUD_FD_IOMMUFD,	/* /dev/iommu: the misc device "iommu" (docs/IOMMUFD.md) */
	VLUD_FD_VFIO,		/* a VFIO device cdev /dev/vfio/devices/vfioN: char driver "vfio-dev" */
	_VLUD_FD_TYPE_MAX,
};

const char *fdtype_name(enum vlud_fd_type t);
/* -> type or -EINVAL */
int fdtype_from_name(const char *name);
/* Open /proc/self/fd once (CLOEXEC) for fdtype_detect()'s readlinkat(): a lookup of one name instead of
 * four path components per fd (1000 adopted fds at a restart).  Without it (no /proc at start-up),
 * fdtype_detect() reads the link by its full path as before. */
void fdtype_init(void);
/* Classify fd; fills *ret_st.  vdpa_major < 0: no vhost-vdpa driver known, never VHOST_VDPA. */
int fdtype_detect(int fd, int vdpa_major, struct stat *ret_st); /* -EBADFD: an O_PATH fd (refused) */
/* The same answer, but a memfd sealed against writes (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW) is told by its
 * seals alone, without the readlink: for the state memfd of an update, inside the pause. */
int fdtype_detect_sealed(int fd, int vdpa_major, struct stat *ret_st);

/* The kind of the character device rdev: VLUD_FD_VHOST_VDPA (major vdpa_major), VLUD_FD_IOMMUFD (misc
 * major 10, the minor of "iommu" in /proc/misc), VLUD_FD_VFIO (the major of "vfio-dev" in /proc/devices),
 * else VLUD_FD_CHARDEV.  The iommu and vfio-dev numbers are read at each call (their drivers may load
 * after vlud started). */
int fdtype_chr_kind(dev_t rdev, int vdpa_major);
/* the major of character driver name in /proc/devices, or -ENOENT (or -errno) */
int fdtype_chr_major(const char *name);
/* the minor of misc device name in /proc/misc, or -ENOENT (or -errno) */
int fdtype_misc_minor(const char *name);
/* the same, parsed from text (the content of /proc/devices or /proc/misc): pure, unit-tested */
int fdtype_parse_chr_major(const char *text, const char *name);
int fdtype_parse_misc_minor(const char *text, const char *name);

#endif
