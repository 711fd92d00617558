/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * edu.c - a VFIO device on iommufd next to the vhost-vdpa device (--edu CDEV, with --vlud; docs/MINIVMM.md,
 * docs/IOMMUFD.md "Mixed instances"): QEMU's `edu` test device (PCI 1234:11e8, a DMA engine) bound to
 * vfio-pci, the only VFIO device minivmm knows how to drive.  Its DMA window is the last MiB of guest RAM
 * (the datapath's rings and buffers are in the first 4 MiB), mapped with IOMMU_IOAS_MAP_FILE of the
 * guest-RAM memfd at IOVA 0x100000 (edu's addresses are 28 bits), so a live update moves its pinned memory
 * with IOMMU_IOAS_CHANGE_PROCESS while the vhost-vdpa device takes its own path.
 *
 * The DMA check of image generation G: the copy generation G-1 left at its page (dst(G-1)) is still there,
 * seen through this image's mapping (nothing to check for the first image), then a pattern of G goes RAM
 * -> device -> RAM into dst(G) (zeroed first) and is checked in the mapping and, by pread, in the memfd.
 * A failed successor and the previous binary restarted after it both write dst(G); the data they check,
 * dst(G-1), is the old image's.  The old image taking the charge back after a rollback checks its own
 * copy, dst(G-1) of the failed successor's G, and writes it again.
 *
 * The uapi of Linux >= 6.13 (iommufd.h, the VFIO cdev ioctls) is copied from 7.3's include/uapi: the build
 * host's headers (6.1) have neither.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/types.h>
#include <linux/vfio.h>

#include "minivmm.h"
#include "vlu.h"

/* ---- uapi (Linux >= 6.13) ---- */
#define IOMMUFD_TYPE (';')
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, 0x8f)
#define IOMMU_IOAS_CHANGE_PROCESS _IO(IOMMUFD_TYPE, 0x92)
#define IOMMU_IOAS_MAP_FIXED_IOVA (1 << 0)
#define IOMMU_IOAS_MAP_WRITEABLE (1 << 1)
#define IOMMU_IOAS_MAP_READABLE (1 << 2)
struct iommu_ioas_alloc { __u32 size, flags, out_ioas_id; };
struct iommu_ioas_map_file {
	__u32 size, flags, ioas_id;
	__s32 fd;
	__aligned_u64 start, length, iova;
};
struct iommu_ioas_change_process { __u32 size, __reserved; };
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
struct vfio_device_bind_iommufd { __u32 argsz, flags; __s32 iommufd; __u32 out_devid; };
struct vfio_device_attach_iommufd_pt { __u32 argsz, flags, pt_id; };

/* ---- edu ---- */
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
#define EDU_XFER 256
#define EDU_SRC_PAGE 2
#define EDU_NPAGES (MV_EDU_WINDOW / 4096)

static uint64_t dst_page(uint32_t gen)
{
	return 8 + gen % (EDU_NPAGES - 8);
}

static uint8_t seed(uint32_t gen)
{
	return (uint8_t)(0x21 + gen * 0x1d);
}

static void pattern(uint32_t gen, uint8_t *p)
{
	for (size_t i = 0; i < EDU_XFER; i++)
		p[i] = (uint8_t)(seed(gen) + i * 7);
}

static uint64_t rd64(struct mv_edu *e, unsigned off) { return *(volatile uint64_t *)(e->bar + off); }
static void wr64(struct mv_edu *e, unsigned off, uint64_t x) { *(volatile uint64_t *)(e->bar + off) = x; }
static uint32_t rd32(struct mv_edu *e, unsigned off) { return *(volatile uint32_t *)(e->bar + off); }
static void wr32(struct mv_edu *e, unsigned off, uint32_t x) { *(volatile uint32_t *)(e->bar + off) = x; }

void mv_edu_init(struct mv_edu *e)
{
	*e = (struct mv_edu){ .iommufd = -EBADF, .devfd = -EBADF };
}

void mv_edu_done(struct mv_edu *e)
{
	if (e->bar)
		munmap((void *)e->bar, EDU_BAR_SIZE);
	e->bar = NULL;
	e->devfd = safe_close(e->devfd);
	e->iommufd = safe_close(e->iommufd);
}

/* the held VFIO fd's name in vlud: "vfio:vfioN" */
void mv_edu_name(struct mv_edu *e, const char *cdev)
{
	const char *b = strrchr(cdev, '/');

	snprintf(e->dev_name, sizeof(e->dev_name), "vfio:%s", b ? b + 1 : cdev);
}

/* CAP_IPC_LOCK out of every set (the bounding set too: an exec'ed image must not regain it): iommufd
 * mappings made with it are not accounted and vlud refuses to update them (docs/IOMMUFD.md) */
int mv_edu_drop_ipc_lock(void)
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

/* memory + bus master in the command register (vfio-pci leaves bus mastering off), BAR0 mapped, edu's id */
static int enable(struct mv_edu *e)
{
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t command;
	void *p;

	if (e->bar)
		return 0;
	if (ioctl(e->devfd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
	    ioctl(e->devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0)
		return -errno;
	if (pread(e->devfd, &command, 2, (off_t)cfg.offset + 4) != 2)
		return -EIO;
	command |= 0x6;
	if (pwrite(e->devfd, &command, 2, (off_t)cfg.offset + 4) != 2)
		return -EIO;
	if (bar.size < EDU_BAR_SIZE || !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -ENXIO;
	p = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, e->devfd, (off_t)bar.offset);
	if (p == MAP_FAILED)
		return -errno;
	e->bar = p;
	if ((rd32(e, EDU_ID) & 0xff) != 0xed) {
		mv_log("edu: BAR0 id 0x%08x is not edu's", rd32(e, EDU_ID));
		return -ENODEV;
	}
	wr32(e, EDU_LIVE, 0x12345678);
	if (rd32(e, EDU_LIVE) != ~0x12345678u)
		return -EIO;
	return 0;
}

/* one DMA; the engine runs on a 100 ms virtual-time tick */
static int dma(struct mv_edu *e, uint64_t src, uint64_t dst, uint64_t cnt, uint64_t flags)
{
	uint64_t t0 = mv_now_us();

	wr64(e, EDU_DMA_SRC, src);
	wr64(e, EDU_DMA_DST, dst);
	wr64(e, EDU_DMA_CNT, cnt);
	wr64(e, EDU_DMA_CMD, EDU_CMD_START | flags);
	while (rd64(e, EDU_DMA_CMD) & EDU_CMD_START) {
		if (mv_now_us() - t0 > 10000000)
			return -ETIMEDOUT;
		usleep(1000);
	}
	/* the device wrote guest RAM behind the compiler's back */
	__asm__ __volatile__("" ::: "memory");
	return 0;
}

int mv_edu_check(struct mv_vmm *v, int64_t check_gen, uint32_t gen, const char *what)
{
	struct mv_edu *e = &v->edu;
	uint8_t *w = v->mem.base + (v->mem.size - MV_EDU_WINDOW), pat[EDU_XFER], back[EDU_XFER];
	uint64_t src = EDU_SRC_PAGE * 4096, dst = dst_page(gen) * 4096, t0;
	int r;

	e->checks++;
	r = enable(e);
	if (r < 0) {
		mv_log("edu %s: BAR0: %s", what, strerror(-r));
		goto fail;
	}
	if (check_gen >= 0) {
		uint64_t pd = dst_page((uint32_t)check_gen) * 4096;

		pattern((uint32_t)check_gen, pat);
		if (memcmp(w + pd, pat, EDU_XFER) != 0) {
			mv_log("edu %s: the copy generation %u's DMA left at IOVA %#" PRIx64 " is not in guest RAM",
			       what, (unsigned)check_gen, MV_EDU_IOVA + pd);
			r = -EBADMSG;
			goto fail;
		}
		e->kept++;
	}
	pattern(gen, pat);
	memcpy(w + src, pat, EDU_XFER);
	memset(w + dst, 0, EDU_XFER);
	t0 = mv_now_us();
	r = dma(e, MV_EDU_IOVA + src, EDU_BUF, EDU_XFER, 0);
	if (r == 0)
		r = dma(e, EDU_BUF, MV_EDU_IOVA + dst, EDU_XFER, EDU_CMD_TO_RAM);
	if (r < 0) {
		mv_log("edu %s: DMA: %s", what, strerror(-r));
		goto fail;
	}
	if (memcmp(w + dst, pat, EDU_XFER) != 0) {
		mv_log("edu %s: the DMA's copy at IOVA %#" PRIx64 " differs from the pattern", what, MV_EDU_IOVA + dst);
		r = -EBADMSG;
		goto fail;
	}
	if (pread(v->mem.fd, back, EDU_XFER, (off_t)(v->mem.size - MV_EDU_WINDOW + dst)) != EDU_XFER ||
	    memcmp(back, pat, EDU_XFER) != 0) {
		mv_log("edu %s: the memfd does not hold the DMA's copy", what);
		r = -EBADMSG;
		goto fail;
	}
	e->ok++;
	if (check_gen >= 0)
		mv_log("edu %s: DMA ok, generation %u, generation %u's copy kept, IOVA %#" PRIx64 " (%.0f ms)", what, gen,
		       (unsigned)check_gen, MV_EDU_IOVA + dst, (double)(mv_now_us() - t0) / 1e3);
	else
		mv_log("edu %s: DMA ok, generation %u, IOVA %#" PRIx64 " (%.0f ms)", what, gen, MV_EDU_IOVA + dst,
		       (double)(mv_now_us() - t0) / 1e3);
	return 0;
fail:
	e->fails++;
	e->last_error = r;
	return r;
}

/* first image: device.open of /dev/iommu and the cdev through vlud, bind, IOAS, attach, MAP_FILE of the
 * window, the first DMA check */
int mv_edu_open(struct mv_vmm *v)
{
	struct mv_edu *e = &v->edu;
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
	long pin0 = 0, pin1 = 0;
	int r;

	if (v->mem.size < MV_MIN_MEM + MV_EDU_WINDOW) {
		mv_log("edu: guest RAM must be at least %u MiB (its last MiB is the DMA window)",
		       (unsigned)((MV_MIN_MEM + MV_EDU_WINDOW) >> 20));
		return -EINVAL;
	}
	r = vlu_device_open(v->link, "/dev/iommu", &e->iommufd, NULL);
	if (r < 0) {
		mv_log("edu: device.open /dev/iommu: %s", strerror(-r));
		return r;
	}
	r = vlu_device_open(v->link, v->o.edu, &e->devfd, NULL);
	if (r < 0) {
		mv_log("edu: device.open %s: %s", v->o.edu, strerror(-r));
		return r;
	}
	if (ioctl(e->iommufd, IOMMU_IOAS_ALLOC, &ia) < 0)
		return mv_log("edu: IOMMU_IOAS_ALLOC: %s", strerror(errno)), -errno;
	e->ioas = ia.out_ioas_id;
	b.iommufd = e->iommufd;
	if (ioctl(e->devfd, VFIO_DEVICE_BIND_IOMMUFD, &b) < 0)
		return mv_log("edu: VFIO_DEVICE_BIND_IOMMUFD: %s", strerror(errno)), -errno;
	at.pt_id = e->ioas;
	if (ioctl(e->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0)
		return mv_log("edu: VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s", strerror(errno)), -errno;
	(void)mv_vmpin_kb(&pin0, NULL);
	mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	mf.ioas_id = e->ioas, mf.fd = v->mem.fd, mf.start = v->mem.size - MV_EDU_WINDOW;
	mf.length = MV_EDU_WINDOW, mf.iova = MV_EDU_IOVA;
	if (ioctl(e->iommufd, IOMMU_IOAS_MAP_FILE, &mf) < 0)
		return mv_log("edu: IOMMU_IOAS_MAP_FILE: %s", strerror(errno)), -errno;
	(void)mv_vmpin_kb(&pin1, NULL);
	mv_log("edu: %s (%s) on iommufd IOAS %u: the last MiB of guest RAM at IOVA %#llx, VmPin %ld -> %ld kB",
	       v->o.edu, e->dev_name, e->ioas, (unsigned long long)MV_EDU_IOVA, pin0, pin1);
	e->vmpin_after_kb = pin1;
	return mv_edu_check(v, -1, v->st->generation, "first");
}

/* vmm.mappings "ioas": the one IOAS, its device, the window (kind file, memfd ram0) at this image's address */
json_object *mv_edu_ioas_json(const struct mv_vmm *v)
{
	json_object *io = json_object_new_array(), *e = json_object_new_object(), *ms = json_object_new_array(),
		    *ds = json_object_new_array(), *o = json_object_new_object();

	json_object_object_add(o, "iova", json_object_new_int64((int64_t)MV_EDU_IOVA));
	json_object_object_add(o, "size", json_object_new_int64(MV_EDU_WINDOW));
	json_object_object_add(o, "kind", json_object_new_string("file"));
	json_object_object_add(o, "memfd", json_object_new_string("ram0"));
	json_object_object_add(o, "offset", json_object_new_int64((int64_t)(v->mem.size - MV_EDU_WINDOW)));
	json_object_object_add(o, "uaddr",
			       json_object_new_int64((int64_t)(uintptr_t)(v->mem.base + v->mem.size - MV_EDU_WINDOW)));
	json_object_array_add(ms, o);
	json_object_array_add(ds, json_object_new_string(v->edu.dev_name));
	json_object_object_add(e, "iommufd", json_object_new_string(MV_EDU_IOMMUFD));
	json_object_object_add(e, "ioas_id", json_object_new_int64(v->edu.ioas));
	json_object_object_add(e, "devices", ds);
	json_object_object_add(e, "mappings", ms);
	json_object_array_add(io, e);
	return io;
}

/* the claim reply (or update.rolled-back)'s "iommufd": the IOAS id from its declared table, and whether
 * our iommufd is among those to call CHANGE_PROCESS on */
static int parse_info(struct mv_edu *e, json_object *io, bool *ret_ours)
{
	json_object *cp = NULL, *ioas = NULL;

	*ret_ours = false;
	if (!io || !json_object_object_get_ex(io, "change_process", &cp) || !json_object_is_type(cp, json_type_array))
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(cp); i++)
		*ret_ours |= strcmp(json_object_get_string(json_object_array_get_idx(cp, i)), MV_EDU_IOMMUFD) == 0;
	if (json_object_object_get_ex(io, "ioas", &ioas) && json_object_is_type(ioas, json_type_array) &&
	    json_object_array_length(ioas) > 0) {
		json_object *id = json_object_object_get(json_object_array_get_idx(ioas, 0), "ioas_id");

		if (id)
			e->ioas = (uint32_t)json_object_get_int64(id);
	}
	return 0;
}

/* IOMMU_IOAS_CHANGE_PROCESS (the charge of the window to this process), then the DMA check of gen; *moved
 * (new array) names the iommufd; VmPin before and after the call logged and kept.  io: vlud's "iommufd"
 * (the claim's or update.rolled-back's); NULL: vlud restarted and said nothing, our own iommufd and IOAS
 * (the call moves nothing that is already ours: the kernel skips pages charged to this mm and user) */
int mv_edu_take(struct mv_vmm *v, json_object *io, int64_t check_gen, uint32_t gen, const char *what,
		json_object **moved)
{
	struct mv_edu *e = &v->edu;
	struct iommu_ioas_change_process chp = { .size = sizeof(chp) };
	bool ours = true;
	uint64_t t0;
	int r = 0;

	*moved = NULL;
	if (io)
		r = parse_info(e, io, &ours);
	if (r < 0 || !ours) {
		mv_log("edu %s: vlud did not name %s to call IOMMU_IOAS_CHANGE_PROCESS on", what, MV_EDU_IOMMUFD);
		e->fails++;
		return r < 0 ? r : -ENOENT;
	}
	(void)mv_vmpin_kb(&e->vmpin_before_kb, NULL);
	t0 = mv_now_us();
	if (ioctl(e->iommufd, IOMMU_IOAS_CHANGE_PROCESS, &chp) < 0) {
		r = -errno;
		mv_log("edu %s: IOMMU_IOAS_CHANGE_PROCESS: %s", what, strerror(-r));
		e->fails++;
		e->last_error = r;
		return r;
	}
	e->cp_us = mv_now_us() - t0;
	(void)mv_vmpin_kb(&e->vmpin_after_kb, NULL);
	e->moves++;
	mv_log("edu %s: IOMMU_IOAS_CHANGE_PROCESS in %.2f ms: VmPin %ld -> %ld kB", what, (double)e->cp_us / 1e3,
	       e->vmpin_before_kb, e->vmpin_after_kb);
	r = mv_edu_check(v, check_gen, gen, what);
	if (r < 0)
		return r;
	*moved = json_object_new_array();
	json_object_array_add(*moved, json_object_new_string(MV_EDU_IOMMUFD));
	return 0;
}
