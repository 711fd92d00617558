/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iofdev.h - what the rig's iommufd guest programs share (vlu-iommufd, vlu-iofbench; flavour iommufd,
 * docs/IOMMUFD.md): /proc counters, fd passing, and opening, binding and attaching the VFIO device (QEMU's
 * edu, its DMA engine behind the guest's IOMMU) to a new IOAS.  The iommufd and VFIO-cdev uapi and the edu
 * device's registers and DMA are kernel/uapi/vlu-vfio-edu.h's, shared with minivmm --edu.  Included once,
 * by the program's .c file, after guest-tap.h (it reports through expect_ok() and tap()).
 */
#ifndef VLU_IOFDEV_H
#define VLU_IOFDEV_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "vlu-vfio-edu.h" /* iommufd + VFIO-cdev uapi, edu */

/* edu clamps DMA addresses to 28 bits by default: the IOVA window stays below 256 MiB */
#define IOVA_BASE 0x100000ULL
#define XFER 256

static inline bool expect_eq(const char *name, long long got, long long want)
{
	if (got == want) {
		tap(true, "%s=%lld", name, want);
		return true;
	}
	tap_fail(name, "%lld, expected %lld", got, want);
	return false;
}

/* "VmPin:" / "VmLck:" of /proc/PID/status in kB, -1 if unreadable */
static inline long long status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long long v = -1;
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the device ---- */
struct dev {
	int iommufd;         /* /dev/iommu */
	int devfd;           /* /dev/vfio/devices/vfioN */
	uint32_t ioas;
	volatile uint8_t *bar;
};

static inline void dev_done(struct dev *d)
{
	if (d->bar)
		munmap((void *)d->bar, EDU_BAR_SIZE);
	d->bar = NULL;
	d->devfd = safe_close(d->devfd);
	d->iommufd = safe_close(d->iommufd);
}

/* Memory + bus master, BAR0 mapped (vlu-vfio-edu.h) */
static inline int dev_enable(struct dev *d)
{
	return edu_enable(d->devfd, &d->bar);
}

static inline int send_fds(int sock, const int *fds, int n, const void *data, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

static inline int recv_fds(int sock, int *fds, int n, void *data, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { .iov_base = data, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != (ssize_t)len)
		return -EIO;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * n))
		return -EBADMSG;
	memcpy(fds, CMSG_DATA(c), sizeof(int) * n);
	return 0;
}

/* d->iommufd and d->devfd open: (RLIMIT_MODE), IOAS_ALLOC, BIND, ATTACH, BAR0, edu's identity */
static inline int bind_attach(struct dev *d, bool mm_mode)
{
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };

	if (mm_mode) {
		struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_RLIMIT_MODE,
					  .op = IOMMU_OPTION_OP_SET, .val64 = 1 };
		if (!expect_ok("option-rlimit-mode-mm", ioctl(d->iommufd, IOMMU_OPTION, &o)))
			return -1;
	}
	if (!expect_ok("ioas-alloc", ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &ia)))
		return -1;
	d->ioas = ia.out_ioas_id;
	b.iommufd = d->iommufd;
	if (!expect_ok("bind-iommufd", ioctl(d->devfd, VFIO_DEVICE_BIND_IOMMUFD, &b)))
		return -1;
	at.pt_id = d->ioas;
	if (!expect_ok("attach-ioas", ioctl(d->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at)))
		return -1;
	if (!expect_ok("enable-bar0", dev_enable(d) < 0 ? (errno = ENXIO, -1) : 0))
		return -1;
	expect_eq("edu-id-major", edu_rd32(d->bar, EDU_ID) & 0xff, 0xed);
	edu_wr32(d->bar, EDU_LIVE, 0x12345678);
	expect_eq("edu-liveness", edu_rd32(d->bar, EDU_LIVE), (uint32_t)~0x12345678u);
	return 0;
}

static inline int open_bind_attach(struct dev *d, const char *path, bool mm_mode)
{
	d->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (!expect_ok("open-iommu", d->iommufd))
		return -1;
	d->devfd = open(path, O_RDWR | O_CLOEXEC);
	if (!expect_ok("open-vfio-cdev", d->devfd))
		return -1;
	return bind_attach(d, mm_mode);
}

#endif
