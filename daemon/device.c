/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * device.c - device nodes: vhost-vdpa, /dev/iommu and VFIO device cdevs.  The
 * daemon opens nodes itself (O_RDWR|O_CLOEXEC), checks the node is a character
 * device of the "vhost-vdpa" or "vfio-dev" driver (majors from /proc/devices)
 * or the misc device "iommu" (/proc/misc) on the fd it opened, not on the path
 * before, and asks only what a non-owner may ask: it never calls SET_OWNER,
 * never binds a VFIO device, never maps anything in an iommufd.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "basics.h"
#include "closer.h"
#include "device.h"
#include "fdtype.h"
#include "json-oom.h"
#include "persist.h"
#include "vlud-iommufd.h"
#include "vlud-vhost.h"

int device_vdpa_major(void)
{
	return fdtype_chr_major("vhost-vdpa");
}

int device_resolve(const char *device, char **ret_path)
{
	char dir[512];
	DIR *d;
	struct dirent *de;
	char *path = NULL;

	if (device[0] == '/') {
		path = strdup(device);
		if (!path)
			return -ENOMEM;
		*ret_path = path;
		return 0;
	}
	if (strchr(device, '/') || strcmp(device, ".") == 0 || strcmp(device, "..") == 0 || strlen(device) > 255)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "/sys/bus/vdpa/devices/%s", device);
	d = opendir(dir);
	if (!d)
		return -errno; /* ENOENT: no such vdpa device (or vdpa not loaded) */
	while ((de = readdir(d))) {
		unsigned n;
		char tail;

		if (sscanf(de->d_name, "vhost-vdpa-%u%c", &n, &tail) == 1) {
			if (asprintf(&path, "/dev/vhost-vdpa-%u", n) < 0)
				path = NULL;
			break;
		}
	}
	closedir(d);
	if (!path)
		return -ENODEV; /* the device exists but is not bound to vhost_vdpa */
	*ret_path = path;
	return 0;
}

/* open_path_nofollow() without openat2: one component at a time with O_PATH | O_NOFOLLOW (a symlink
 * component is opened as the link itself and refused with ELOOP); ".." is refused too (the policy's
 * paths are absolute and plain). */
static int open_path_nofollow_walk(const char *path)
{
	_cleanup_close_ int dir = -EBADF;
	char buf[PATH_MAX], *comp, *save = NULL;
	struct stat st;

	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, path);
	dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	for (comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int fd;

		if (strcmp(comp, "..") == 0)
			return -EINVAL;
		fd = openat(dir, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		safe_close(dir);
		dir = fd;
		if (fstat(dir, &st) < 0)
			return -errno;
		if (S_ISLNK(st.st_mode))
			return -ELOOP;
	}
	return TAKE_FD(dir);
}

/* O_PATH of path without following a symlink at any component (a tenant-writable directory on a
 * listed path must not redirect root's open elsewhere); fd or -errno (ELOOP: a symlink). */
static int open_path_nofollow(const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	if (fd < 0 && errno == ENOSYS)
		/* no openat2: a kernel before 5.6, or a seccomp filter that does not know it (systemd 252's
		 * SystemCallFilter=@system-service answers ENOSYS: seen under the rig's real systemd) */
		return open_path_nofollow_walk(path);
	return fd < 0 ? -errno : (int)fd;
}

/* the vhost-vdpa, iommufd or VFIO cdev character device the O_PATH fd pfd names, opened O_RDWR through
 * pfd (never through the path again: what was checked is what is opened) */
static int reopen_checked(int pfd, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat pst, st;
	char proc[64];
	int kind;

	if (fstat(pfd, &pst) < 0)
		return -errno;
	if (!S_ISCHR(pst.st_mode))
		return -ENODEV;
	kind = fdtype_chr_kind(pst.st_rdev, device_vdpa_major());
	if (kind != VLUD_FD_VHOST_VDPA && kind != VLUD_FD_IOMMUFD && kind != VLUD_FD_VFIO)
		return -ENODEV;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode) || st.st_rdev != pst.st_rdev || st.st_ino != pst.st_ino || st.st_dev != pst.st_dev)
		return -ENODEV;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int device_open_node(const char *path, int *ret_fd)
{
	_cleanup_close_ int pfd = -EBADF;
	int k;

	pfd = open_path_nofollow(path);
	if (pfd < 0)
		return pfd;
	k = reopen_checked(pfd, ret_fd);
	if (k == -EBUSY) {
		/* the node is single-open and our last copy may still be closing in the closer's DEVICE lane
		 * (fd.remove / instance.release just before): wait for it, once (rare, and only this caller;
		 * it never waits for a client's close); with the fd store, the service manager's copy of it
		 * goes only when PID 1 has handled our FDSTOREREMOVE (asynchronous): wait for that too
		 * (persist_store_barrier) */
		if (closer_pending() > 0)
			closer_flush();
		(void)persist_store_barrier(); /* no-op without the store */
		k = reopen_checked(pfd, ret_fd);
	}
	return k;
}

int device_node_rdev(const char *path, dev_t *ret)
{
	_cleanup_close_ int pfd = open_path_nofollow(path);
	struct stat st;

	if (pfd < 0)
		return pfd;
	if (fstat(pfd, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENODEV;
	*ret = st.st_rdev;
	return 0;
}

bool proc_fd_is_rdev(int dirfd, const char *n, uint64_t rdev)
{
	struct statx stx;

	/* AT_STATX_DONT_SYNC: the attributes the kernel has, no request to the file's file system (a
	 * process's fd on a FUSE file whose server does not answer must not stall vlud's loop) */
	if (statx(dirfd, n, AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0 || !S_ISCHR(stx.stx_mode))
		return false;
	return makedev(stx.stx_rdev_major, stx.stx_rdev_minor) == rdev;
}

/* fd N of process pid (dirfd: its /proc/PID/fd) is open on the character device rdev, and not O_PATH
 * (an O_PATH fd of the node holds no open of the device) */
static bool fd_opens_rdev(int dirfd, pid_t pid, const char *n, uint64_t rdev)
{
	char p[320], line[64];
	unsigned flags = 0;
	FILE *f;

	if (!proc_fd_is_rdev(dirfd, n, rdev))
		return false;
	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%s", (int)pid, n);
	f = fopen(p, "re");
	if (!f)
		return errno != ENOENT; /* closed since: not a holder; unreadable: counted (a refusal is safe, a
					 * missed holder is not) */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "flags: %o", &flags) == 1)
			break;
	fclose(f);
	return !(flags & O_PATH);
}

/* The service manager that keeps vlud's fd store: PID 1 (systemd), or vlud's parent when the environment
 * names it $MANAGERPID (a user manager sets it for its services; the rig's stand-in vlu-fdstore too).  Any
 * other parent (a wrapper or shell that passed NOTIFY_SOCKET on, a subreaper after the parent died) is a
 * process like any other: its opens of the node count. */
static pid_t store_manager(void)
{
	const char *e = getenv("MANAGERPID");
	pid_t pp = getppid();
	char *end;
	long m;

	if (!e || !*e)
		return 1;
	errno = 0;
	m = strtol(e, &end, 10);
	return !errno && !*end && m > 1 && m == (long)pp ? pp : 1;
}

unsigned device_holders(uint64_t rdev, bool skip_store, uid_t viewer, char *who, size_t len)
{
	DIR *proc = opendir("/proc");
	pid_t self = getpid(), manager = skip_store ? store_manager() : 0;
	struct dirent *de;
	unsigned n = 0;

	if (len)
		who[0] = 0;
	if (!proc)
		return 0;
	while ((de = readdir(proc))) {
		char dir[64], comm[32] = "?";
		struct dirent *fe;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		DIR *fds;

		if (*end || pid <= 0 || pid == self || (skip_store && (pid == 1 || pid == manager)))
			continue;
		snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
		fds = opendir(dir);
		if (!fds)
			continue; /* exited, or a kernel thread */
		while ((fe = readdir(fds))) {
			FILE *f;

			if (fe->d_name[0] == '.' || !fd_opens_rdev(dirfd(fds), (pid_t)pid, fe->d_name, rdev))
				continue;
			if (n++ == 0 && len) {
				struct stat pst;

				/* another user's process is not described to the viewer (docs/SECURITY.md) */
				snprintf(dir, sizeof(dir), "/proc/%ld", pid);
				if (stat(dir, &pst) < 0 || pst.st_uid != viewer) {
					snprintf(who, len, "a process of another user");
					continue;
				}
				snprintf(dir, sizeof(dir), "/proc/%ld/comm", pid);
				f = fopen(dir, "re");
				if (f) {
					if (fgets(comm, sizeof(comm), f))
						comm[strcspn(comm, "\n")] = 0;
					fclose(f);
				}
				snprintf(who, len, "pid %ld (%s) fd %s", pid, comm, fe->d_name);
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return n;
}

int device_sysfs_rdev(const char *device, dev_t *ret)
{
	char dir[512], p[800], buf[32];
	struct dirent *de;
	unsigned ma, mi;
	FILE *f;
	DIR *d;
	int k = -ENODEV;

	if (device[0] == '/' || strchr(device, '/') || strlen(device) > 255)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "/sys/bus/vdpa/devices/%s", device);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vhost-vdpa-", 11) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s/dev", dir, de->d_name);
		f = fopen(p, "re");
		if (!f) {
			k = -errno;
			break;
		}
		if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%u:%u", &ma, &mi) == 2) {
			*ret = makedev(ma, mi);
			k = 0;
		}
		fclose(f);
		break;
	}
	closedir(d);
	return k;
}

json_object *device_backend_feature_names(uint64_t f)
{
	json_object *a = jnew_arr();

	for (unsigned bit = 0; bit < 64; bit++) {
		const char *n;
		char tmp[16];

		if (!(f & (1ull << bit)))
			continue;
		n = vlud_backend_feature_name(bit);
		if (!n) {
			snprintf(tmp, sizeof(tmp), "bit%u", bit);
			n = tmp;
		}
		jappend(a, jnew_str(n));
	}
	return a;
}

json_object *device_query(int fd, uint64_t *ret_backend_features)
{
	json_object *o = jnew_obj();
	uint32_t u32;
	uint64_t u64;
	uint16_t u16;
	uint8_t u8;

	*ret_backend_features = 0;
	jadd(o, "device_id", ioctl(fd, VHOST_VDPA_GET_DEVICE_ID, &u32) == 0 ? jnew_int(u32) : NULL);
	jadd(o, "features", ioctl(fd, VHOST_GET_FEATURES, &u64) == 0 ? jnew_uint(u64) : NULL);
	if (ioctl(fd, VHOST_GET_BACKEND_FEATURES, &u64) == 0) {
		*ret_backend_features = u64;
		jadd(o, "backend_features", jnew_uint(u64));
		jadd(o, "backend_feature_names", device_backend_feature_names(u64));
	} else {
		jadd(o, "backend_features", NULL);
		jadd(o, "backend_feature_names", jnew_arr());
	}
	jadd(o, "vqs", ioctl(fd, VHOST_VDPA_GET_VQS_COUNT, &u32) == 0 ? jnew_int(u32) : NULL);
	jadd(o, "vring_num", ioctl(fd, VHOST_VDPA_GET_VRING_NUM, &u16) == 0 ? jnew_int(u16) : NULL);
	jadd(o, "config_size", ioctl(fd, VHOST_VDPA_GET_CONFIG_SIZE, &u32) == 0 ? jnew_int(u32) : NULL);
	jadd(o, "status", ioctl(fd, VHOST_VDPA_GET_STATUS, &u8) == 0 ? jnew_int(u8) : NULL);
	return o;
}

int device_iommufd_probe(int fd, int *ret_errno)
{
	struct vlud_iommu_ioas_change_process cp = { .size = sizeof(cp) };

	/* on a context with no IOAS (vlud's fresh open, before the VMM has it): nothing to move, so the call
	 * succeeds where the kernel has the command and changes nothing; before 6.13 it is unknown (ENOTTY) */
	*ret_errno = 0;
	if (ioctl(fd, VLUD_IOMMU_IOAS_CHANGE_PROCESS, &cp) == 0)
		return 1;
	*ret_errno = errno;
	return errno == ENOTTY ? 0 : -errno;
}

/* basename of the symlink at path into buf ("" if it is not one) */
static void link_base(const char *path, char *buf, size_t len)
{
	char t[PATH_MAX];
	ssize_t n = readlink(path, t, sizeof(t) - 1);
	const char *b;

	buf[0] = '\0';
	if (n <= 0)
		return;
	t[n] = '\0';
	b = strrchr(t, '/');
	b = b ? b + 1 : t;
	if (strlen(b) < len)
		memcpy(buf, b, strlen(b) + 1);
}

static json_object *sysfs_str(const char *path)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return n ? jnew_str(buf) : NULL;
}

json_object *device_query_kind(int fd, int kind, uint64_t *ret_backend_features)
{
	json_object *o;
	struct stat st;
	char p[128], b[256];
	int e, k;

	*ret_backend_features = 0;
	if (kind == VLUD_FD_VHOST_VDPA) {
		o = device_query(fd, ret_backend_features);
		jadd(o, "kind", jnew_str("vhost-vdpa"));
		return o;
	}
	o = jnew_obj();
	jadd(o, "kind", jnew_str(fdtype_name(kind)));
	if (kind == VLUD_FD_IOMMUFD) {
		k = device_iommufd_probe(fd, &e);
		jadd(o, "change_process", k >= 0 ? jnew_bool(k > 0) : NULL);
		jadd(o, "change_process_error", e ? jnew_str(strerror(e)) : NULL);
		return o;
	}
	/* VFIO cdev: before VFIO_DEVICE_BIND_IOMMUFD the device answers no ioctl, so sysfs tells what it is */
	if (fstat(fd, &st) < 0)
		return o;
	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u/device", major(st.st_rdev), minor(st.st_rdev));
	link_base(p, b, sizeof(b));
	jadd(o, "pci", b[0] ? jnew_str(b) : NULL);
	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u/device/vendor", major(st.st_rdev), minor(st.st_rdev));
	jadd(o, "vendor", sysfs_str(p));
	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u/device/device", major(st.st_rdev), minor(st.st_rdev));
	jadd(o, "pci_device", sysfs_str(p));
	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u/device/driver", major(st.st_rdev), minor(st.st_rdev));
	link_base(p, b, sizeof(b));
	jadd(o, "driver", b[0] ? jnew_str(b) : NULL);
	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u/device/iommu_group", major(st.st_rdev), minor(st.st_rdev));
	link_base(p, b, sizeof(b));
	jadd(o, "iommu_group", b[0] ? jnew_int(atoi(b)) : NULL);
	return o;
}
