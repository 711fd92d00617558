/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* device.h - vhost-vdpa, iommufd and VFIO cdev devices: resolution, opening, non-owner queries */
#ifndef VLUD_DEVICE_H
#define VLUD_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

/* major of "vhost-vdpa" in /proc/devices, or -ENOENT (driver not loaded) */
int device_vdpa_major(void);

/* "vdpa0" -> "/dev/vhost-vdpa-N" via /sys/bus/vdpa/devices/vdpa0/vhost-vdpa-N; a path is copied. */
int device_resolve(const char *device, char **ret_path);

/* Open path O_RDWR|O_CLOEXEC without following a symlink at any component (openat2
 * RESOLVE_NO_SYMLINKS: ELOOP), and check on the fd opened, not on the path, that it is a vhost-vdpa
 * character device, /dev/iommu or a VFIO device cdev (fdtype_chr_kind()): the node is opened O_PATH,
 * checked, and reopened through that fd.
 * -EBUSY: open by someone else; -ENODEV: none of those kinds; -ELOOP: a symlink on the path; other
 * -errno from open(). */
int device_open_node(const char *path, int *ret_fd);
/* the device number of the character device at path (no symlink followed: -ELOOP; not a character
 * device: -ENODEV) */
int device_node_rdev(const char *path, dev_t *ret);
/* entry n of a /proc/PID/fd directory (dirfd) is a character device whose rdev equals rdev (the
 * kernel's cached attributes: never waits for the file's file system) */
bool proc_fd_is_rdev(int dirfd, const char *n, uint64_t rdev);
/* How many open fds of the character device rdev other processes hold (vlud's own are not counted, nor,
 * with skip_store, the service manager's fd-store copies: PID 1's and vlud's parent's, which is PID 1
 * under the system manager and the user manager or the rig's vlu-fdstore otherwise; O_PATH fds are not
 * opens).  who: the first, "pid N (comm)
 * fd M" when that process belongs to uid viewer (the owner of its /proc directory), else "a process of
 * another user".  A scan of /proc: what vlud cannot see (another pid namespace, an fd in flight in a
 * socket) is not counted. */
unsigned device_holders(uint64_t rdev, bool skip_store, uid_t viewer, char *who, size_t len);
/* the device number of vdpa device NAME's vhost-vdpa node (sysfs "dev"); 0 or -errno */
int device_sysfs_rdev(const char *device, dev_t *ret);

/* What a non-owner can learn: device_id, features, backend_features (+names), vqs, vring_num,
 * config_size, status.  Fields whose ioctl fails are null.  Sets *ret_backend_features (0 if unknown).
 * Never NULL: json-c allocation failures abort (json-oom.h), as in device_backend_feature_names(). */
json_object *device_query(int fd, uint64_t *ret_backend_features);

/* device_query() for a vhost-vdpa fd (plus "kind"); for kind VLUD_FD_IOMMUFD: {kind, change_process
 * (the probe below; null if it failed otherwise), change_process_error}; for VLUD_FD_VFIO (a cdev answers no
 * ioctl before it is bound, so from sysfs): {kind, pci, vendor, pci_device, driver, iommu_group}. */
json_object *device_query_kind(int fd, int kind, uint64_t *ret_backend_features);
/* IOMMU_IOAS_CHANGE_PROCESS on fd, an iommufd that must hold no IOAS yet (vlud's fresh open: a no-op
 * then): 1 the kernel has it, 0 it does not (ENOTTY: before 6.13), -errno otherwise; *ret_errno the
 * ioctl's errno (0 on success). */
int device_iommufd_probe(int fd, int *ret_errno);

/* JSON array of the names of the backend feature bits set in f */
json_object *device_backend_feature_names(uint64_t f);

#endif
