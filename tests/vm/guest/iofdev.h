/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iofdev.h - what the rig's iommufd guest programs share (vlu-iommufd, vlu-iofbench; flavour iommufd,
 * docs/IOMMUFD.md): the iommufd and VFIO-cdev uapi of Linux >= 6.13 (copied from 7.3's
 * include/uapi/linux/{iommufd,vfio}.h: the build host's headers have no iommufd.h), QEMU's edu device
 * (its DMA engine behind the guest's IOMMU), /proc counters, fd passing, and opening, binding and attaching
 * the VFIO device to a new IOAS.  Included once, by the program's .c file, after guest-tap.h (it reports
 * through expect_ok() and tap()).
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/capability.h>
#include <linux/types.h>
#include <linux/vfio.h>

/* ---- uapi (Linux >= 6.13) ---- */
#define IOMMUFD_TYPE (';')
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#define IOMMU_OPTION _IO(IOMMUFD_TYPE, 0x87)
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f)
#define IOMMU_IOAS_CHANGE_PROCESS _IO(IOMMUFD_TYPE, 0x92)
#define IOMMU_IOAS_MAP_FIXED_IOVA (1 << 0)
#define IOMMU_IOAS_MAP_WRITEABLE (1 << 1)
#define IOMMU_IOAS_MAP_READABLE (1 << 2)
#define IOMMU_OPTION_RLIMIT_MODE 0
#define IOMMU_OPTION_OP_SET 0

struct iommu_ioas_alloc { __u32 size, flags, out_ioas_id; };
struct iommu_ioas_map {
	__u32 size, flags, ioas_id, __reserved;
	__aligned_u64 user_va, length, iova;
};
struct iommu_ioas_map_file {
	__u32 size, flags, ioas_id;
	__s32 fd;
	__aligned_u64 start, length, iova;
};
struct iommu_ioas_unmap { __u32 size, ioas_id; __aligned_u64 iova, length; };
struct iommu_option {
	__u32 size, option_id;
	__u16 op, __reserved;
	__u32 object_id;
	__aligned_u64 val64;
};
struct iommu_ioas_change_process { __u32 size, __reserved; };

#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
struct vfio_device_bind_iommufd { __u32 argsz, flags; __s32 iommufd; __u32 out_devid; };
struct vfio_device_attach_iommufd_pt { __u32 argsz, flags, pt_id; };

/* ---- edu (QEMU docs/specs/edu.rst) ---- */
#define EDU_ID 0x00
#define EDU_LIVE 0x04
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2
#define EDU_BUF 0x40000 /* its 4096-byte DMA buffer */
#define EDU_BAR_SIZE (1 << 20)
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

static inline uint64_t rd64(struct dev *d, unsigned off) { return *(volatile uint64_t *)(d->bar + off); }
static inline void wr64(struct dev *d, unsigned off, uint64_t v) { *(volatile uint64_t *)(d->bar + off) = v; }
static inline uint32_t rd32(struct dev *d, unsigned off) { return *(volatile uint32_t *)(d->bar + off); }
static inline void wr32(struct dev *d, unsigned off, uint32_t v) { *(volatile uint32_t *)(d->bar + off) = v; }

/* Memory + bus master in the command register (vfio-pci leaves bus mastering off), BAR0 mapped. */
static inline int dev_enable(struct dev *d)
{
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t command;
	void *p;

	if (ioctl(d->devfd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
	    ioctl(d->devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0)
		return -errno;
	if (pread(d->devfd, &command, 2, cfg.offset + 4) != 2)
		return -EIO;
	command |= 0x6;
	if (pwrite(d->devfd, &command, 2, cfg.offset + 4) != 2)
		return -EIO;
	if (bar.size < EDU_BAR_SIZE || !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -ENXIO;
	p = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d->devfd, bar.offset);
	if (p == MAP_FAILED)
		return -errno;
	d->bar = p;
	return 0;
}

/* One edu DMA; waits for the engine (it runs on a 100 ms virtual-time timer). */
static inline int edu_dma(struct dev *d, uint64_t src, uint64_t dst, uint64_t cnt, uint64_t flags)
{
	double t0 = now_s();

	wr64(d, EDU_DMA_SRC, src);
	wr64(d, EDU_DMA_DST, dst);
	wr64(d, EDU_DMA_CNT, cnt);
	wr64(d, EDU_DMA_CMD, EDU_CMD_START | flags);
	while (rd64(d, EDU_DMA_CMD) & EDU_CMD_START) {
		if (now_s() - t0 > 10)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return 0;
}

/* CAP_IPC_LOCK out of every set (bounding too: an exec'ed successor must not regain it). */
static inline int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2];

	/* (already out of the bounding set: an exec'ed image of a VMM that dropped it; no CAP_SETPCAP needed) */
	if (prctl(PR_CAPBSET_READ, CAP_IPC_LOCK, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -errno;
	if (syscall(SYS_capget, &h, c) < 0)
		return -errno;
	c[0].effective &= ~(1U << CAP_IPC_LOCK);
	c[0].permitted &= ~(1U << CAP_IPC_LOCK);
	c[0].inheritable &= ~(1U << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &h, c) < 0)
		return -errno;
	return 0;
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
	expect_eq("edu-id-major", rd32(d, EDU_ID) & 0xff, 0xed);
	wr32(d, EDU_LIVE, 0x12345678);
	expect_eq("edu-liveness", rd32(d, EDU_LIVE), (uint32_t)~0x12345678u);
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
