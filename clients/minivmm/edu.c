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
 * The uapi of Linux >= 6.13 (iommufd.h, the VFIO cdev ioctls; the build host's headers, 6.1, have neither),
 * edu's registers, its BAR0 enabling and DMA are kernel/uapi/vlu-vfio-edu.h's, shared with the rig's guest
 * programs vlu-iommufd and vlu-iofbench.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "minivmm.h"
#include "vlu.h"
#include "vlu-vfio-edu.h"

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
	edu_pattern(seed(gen), p, EDU_XFER);
}

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
	return drop_cap_ipc_lock();
}

/* memory + bus master in the command register (vfio-pci leaves bus mastering off), BAR0 mapped, edu's id */
static int enable(struct mv_edu *e)
{
	int r;

	if (e->bar)
		return 0;
	r = edu_enable(e->devfd, &e->bar);
	if (r < 0)
		return r;
	if ((edu_rd32(e->bar, EDU_ID) & 0xff) != 0xed) {
		mv_log("edu: BAR0 id 0x%08x is not edu's", edu_rd32(e->bar, EDU_ID));
		return -ENODEV;
	}
	edu_wr32(e->bar, EDU_LIVE, 0x12345678);
	if (edu_rd32(e->bar, EDU_LIVE) != ~0x12345678u)
		return -EIO;
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
	t0 = mv_now_us();
	r = edu_roundtrip(e->bar, w, MV_EDU_IOVA, src, dst, pat, EDU_XFER);
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
	/* --edu-acct mm: mm accounting (mm->locked_vm, VmLck, besides VmPin), set on the fresh context before any
	 * object exists (CAP_SYS_RESOURCE); vlud refuses to update such a mixed instance (docs/IOMMUFD.md
	 * "Mixed instances"): the rig checks that refusal with it */
	if (v->o.edu_acct_mm) {
		struct iommu_option op = { .size = sizeof(op), .option_id = IOMMU_OPTION_RLIMIT_MODE,
					   .op = IOMMU_OPTION_OP_SET, .val64 = 1 };

		if (ioctl(e->iommufd, IOMMU_OPTION, &op) < 0)
			return mv_log("edu: IOMMU_OPTION RLIMIT_MODE 1 (mm accounting): %s", strerror(errno)), -errno;
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
	mv_log("edu: %s (%s) on iommufd IOAS %u (%s accounting): the last MiB of guest RAM at IOVA %#llx, VmPin %ld -> "
	       "%ld kB",
	       v->o.edu, e->dev_name, e->ioas, v->o.edu_acct_mm ? "mm" : "user", (unsigned long long)MV_EDU_IOVA, pin0,
	       pin1);
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
