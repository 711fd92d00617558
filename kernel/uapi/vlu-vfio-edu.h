/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-vfio-edu.h - a VFIO device on iommufd, as the tree's VFIO users drive it: minivmm --edu
 * (clients/minivmm/edu.c) and the rig's guest programs vlu-iommufd and vlu-iofbench (through
 * tests/vm/guest/iofdev.h); docs/IOMMUFD.md.  Header only, on every program's include path like the
 * other kernel/uapi/ headers.
 *
 *  - the iommufd and VFIO-cdev uAPI of Linux >= 6.13, copied from 7.3's include/uapi/linux/{iommufd,vfio}.h:
 *    the build host's headers (Debian 12, 6.1) have no iommufd.h (never include it next to this header) and
 *    a vfio.h without the cdev ioctls (defined here only when missing, so a newer vfio.h wins).  vlud's own
 *    copy, with VLUD_ names, is vlud-iommufd.h;
 *  - QEMU's edu test device (PCI 1234:11e8, QEMU docs/specs/edu.rst): its BAR0 registers, enabling it
 *    through the cdev (memory + bus master, BAR0 mapped), one DMA through its engine and the round trip
 *    RAM -> device -> RAM the programs check;
 *  - dropping CAP_IPC_LOCK: iommufd does not account the mappings of a process that has it, and vlud
 *    refuses to update those (docs/IOMMUFD.md).
 *
 * Support is detected at run time (the ioctls fail), never assumed from these definitions.
 */
#ifndef VLU_VFIO_EDU_H
#define VLU_VFIO_EDU_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/types.h>
#include <linux/vfio.h>

/* ---- iommufd uAPI (Linux >= 6.13) ---- */
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

/* ---- VFIO cdev uAPI (Linux >= 6.6) ---- */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
struct vfio_device_bind_iommufd { __u32 argsz, flags; __s32 iommufd; __u32 out_devid; };
#endif
#ifndef VFIO_DEVICE_ATTACH_IOMMUFD_PT
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
struct vfio_device_attach_iommufd_pt { __u32 argsz, flags, pt_id; };
#endif

/* ---- edu (QEMU docs/specs/edu.rst) ---- */
#define EDU_ID 0x00       /* 0xRRrr00ed: its low byte is 0xed */
#define EDU_LIVE 0x04     /* reads back the complement of what was written */
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2
#define EDU_BUF 0x40000 /* its 4096-byte DMA buffer */
#define EDU_BAR_SIZE (1 << 20)

static inline uint64_t edu_rd64(volatile uint8_t *bar, unsigned off) { return *(volatile uint64_t *)(bar + off); }
static inline void edu_wr64(volatile uint8_t *bar, unsigned off, uint64_t x) { *(volatile uint64_t *)(bar + off) = x; }
static inline uint32_t edu_rd32(volatile uint8_t *bar, unsigned off) { return *(volatile uint32_t *)(bar + off); }
static inline void edu_wr32(volatile uint8_t *bar, unsigned off, uint32_t x) { *(volatile uint32_t *)(bar + off) = x; }

/* Memory + bus master in the command register of the VFIO device devfd (vfio-pci leaves bus mastering off),
 * BAR0 mapped into *ret_bar (EDU_BAR_SIZE bytes).  0 or -errno; the device's identity is the caller's to check. */
static inline int edu_enable(int devfd, volatile uint8_t **ret_bar)
{
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t command;
	void *p;

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 || ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0)
		return -errno;
	if (pread(devfd, &command, 2, (off_t)cfg.offset + 4) != 2)
		return -EIO;
	command |= 0x6;
	if (pwrite(devfd, &command, 2, (off_t)cfg.offset + 4) != 2)
		return -EIO;
	if (bar.size < EDU_BAR_SIZE || !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -ENXIO;
	p = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, (off_t)bar.offset);
	if (p == MAP_FAILED)
		return -errno;
	*ret_bar = p;
	return 0;
}

/* One DMA of cnt bytes (flags 0: src in RAM -> dst in edu's buffer; EDU_CMD_TO_RAM: the other way), waiting
 * for the engine (it runs on a 100 ms virtual-time timer) up to 10 s.  0 or -ETIMEDOUT. */
static inline int edu_dma(volatile uint8_t *bar, uint64_t src, uint64_t dst, uint64_t cnt, uint64_t flags)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	edu_wr64(bar, EDU_DMA_SRC, src);
	edu_wr64(bar, EDU_DMA_DST, dst);
	edu_wr64(bar, EDU_DMA_CNT, cnt);
	edu_wr64(bar, EDU_DMA_CMD, EDU_CMD_START | flags);
	while (edu_rd64(bar, EDU_DMA_CMD) & EDU_CMD_START) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 > 10)
			return -ETIMEDOUT;
		usleep(1000);
	}
	/* the device wrote RAM behind the compiler's back */
	__asm__ __volatile__("" ::: "memory");
	return 0;
}

/* The test pattern of the round trip: byte i is seed + 7 i */
static inline void edu_pattern(uint8_t seed, uint8_t *pat, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pat[i] = (uint8_t)(seed + i * 7);
}

/* RAM -> device -> RAM through the IOMMU, mem being mapped at IOVA iova: n (<= 4096) bytes of pat written at
 * mem + src and mem + dst zeroed, DMA'd into edu's buffer and back to mem + dst.  0 or -ETIMEDOUT; the copy
 * is the caller's to check. */
static inline int edu_roundtrip(volatile uint8_t *bar, uint8_t *mem, uint64_t iova, uint64_t src, uint64_t dst,
				const uint8_t *pat, size_t n)
{
	int r;

	memcpy(mem + src, pat, n);
	memset(mem + dst, 0, n);
	r = edu_dma(bar, iova + src, EDU_BUF, n, 0);
	if (r == 0)
		r = edu_dma(bar, EDU_BUF, iova + dst, n, EDU_CMD_TO_RAM);
	return r;
}

/* CAP_IPC_LOCK out of every set, the bounding set too (an exec'ed image must not regain it; already out of
 * it, as in the exec'ed image of a process that dropped it, needs no CAP_SETPCAP).  0 or -errno. */
static inline int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2];

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

#endif
