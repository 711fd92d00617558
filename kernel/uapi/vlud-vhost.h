/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlud-vhost.h - vhost / vhost-vdpa uAPI values that system headers may lack.
 *
 * The project builds against Debian 12's linux-libc-dev (6.1), which predates
 * VHOST_VDPA_RESUME, IOTLB_PERSIST and friends, and no kernel carries the
 * live-update uAPI (VHOST_NEW_OWNER, VHOST_IOTLB_REMAP) except our own patched
 * modules (kernel/patches/).  Everything here is defined only when missing, so
 * newer headers win; support is always detected at run time with
 * VHOST_GET_BACKEND_FEATURES, never assumed from these definitions.
 */
#ifndef VLUD_VHOST_H
#define VLUD_VHOST_H

#include <linux/types.h>
#include <linux/vhost.h>
#include <linux/vhost_types.h>

#ifndef VHOST_VDPA_SUSPEND
#define VHOST_VDPA_SUSPEND		_IO(VHOST_VIRTIO, 0x7D)
#endif
#ifndef VHOST_VDPA_RESUME
#define VHOST_VDPA_RESUME		_IO(VHOST_VIRTIO, 0x7E)
#endif
#ifndef VHOST_VDPA_GET_VRING_DESC_GROUP
#define VHOST_VDPA_GET_VRING_DESC_GROUP	_IOWR(VHOST_VIRTIO, 0x7F, struct vhost_vring_state)
#endif
#ifndef VHOST_VDPA_GET_VQS_COUNT
#define VHOST_VDPA_GET_VQS_COUNT	_IOR(VHOST_VIRTIO, 0x80, __u32)
#endif
#ifndef VHOST_VDPA_GET_GROUP_NUM
#define VHOST_VDPA_GET_GROUP_NUM	_IOR(VHOST_VIRTIO, 0x81, __u32)
#endif
#ifndef VHOST_VDPA_GET_VRING_SIZE
#define VHOST_VDPA_GET_VRING_SIZE	_IOWR(VHOST_VIRTIO, 0x82, struct vhost_vring_state)
#endif

/* Backend feature bits (bit numbers, as in vhost_types.h). */
#ifndef VHOST_BACKEND_F_IOTLB_MSG_V2
#define VHOST_BACKEND_F_IOTLB_MSG_V2		0x1
#endif
#ifndef VHOST_BACKEND_F_IOTLB_BATCH
#define VHOST_BACKEND_F_IOTLB_BATCH		0x2
#endif
#ifndef VHOST_BACKEND_F_IOTLB_ASID
#define VHOST_BACKEND_F_IOTLB_ASID		0x3
#endif
#ifndef VHOST_BACKEND_F_SUSPEND
#define VHOST_BACKEND_F_SUSPEND			0x4
#endif
#ifndef VHOST_BACKEND_F_RESUME
#define VHOST_BACKEND_F_RESUME			0x5
#endif
#ifndef VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK
#define VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK	0x6
#endif
#ifndef VHOST_BACKEND_F_DESC_ASID
#define VHOST_BACKEND_F_DESC_ASID		0x7
#endif
#ifndef VHOST_BACKEND_F_IOTLB_PERSIST
#define VHOST_BACKEND_F_IOTLB_PERSIST		0x8
#endif

/*
 * Live-update uAPI (proposed upstream, implemented by kernel/patches/; kernel/README.md has the details).
 *
 * VHOST_NEW_OWNER (ioctl, no argument, any fd holder): the caller becomes the owner; the PA-mode pinned
 *   charge moves to its mm (checked against its RLIMIT_MEMLOCK).  Errors: EINVAL no owner yet, or a
 *   VA-mode device that is running and not suspended; EBUSY caller already owns it; ENOMEM the charge does
 *   not fit (nothing changed).  Stock kernels: EPERM for a non-owner, EFAULT for the owner (NULL arg).
 * VHOST_IOTLB_REMAP (IOTLB message type, write(), owner only): iova + size of one existing mapping, new
 *   uaddr (same file, same offset), perm 0.  write() fails with the real errno: EOPNOTSUPP PA mode,
 *   EPERM not owner, ENOENT no mapping, EINVAL partial match / perm / not the same file+offset.
 *   (Stock kernels: EFAULT, like every failed IOTLB message.)
 * After NEW_OWNER on a device with F_IOTLB_REMAP, RESUME and SET_STATUS(DRIVER_OK) fail with EINVAL until
 *   every mapping was remapped or unmapped.
 */
#ifndef VHOST_NEW_OWNER
#define VHOST_NEW_OWNER				_IO(VHOST_VIRTIO, 0x27)
#endif
#ifndef VHOST_BACKEND_F_NEW_OWNER
#define VHOST_BACKEND_F_NEW_OWNER		0x9
#endif
#ifndef VHOST_BACKEND_F_IOTLB_REMAP
#define VHOST_BACKEND_F_IOTLB_REMAP		0xa
#endif
#ifndef VHOST_IOTLB_REMAP
#define VHOST_IOTLB_REMAP			7
#endif

/* Names of the backend feature bits, indexed by bit number (NULL: unnamed). */
static inline const char *vlud_backend_feature_name(unsigned bit)
{
	static const char *const names[] = {
		[0x0] = NULL,
		[VHOST_BACKEND_F_IOTLB_MSG_V2] = "IOTLB_MSG_V2",
		[VHOST_BACKEND_F_IOTLB_BATCH] = "IOTLB_BATCH",
		[VHOST_BACKEND_F_IOTLB_ASID] = "IOTLB_ASID",
		[VHOST_BACKEND_F_SUSPEND] = "SUSPEND",
		[VHOST_BACKEND_F_RESUME] = "RESUME",
		[VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK] = "ENABLE_AFTER_DRIVER_OK",
		[VHOST_BACKEND_F_DESC_ASID] = "DESC_ASID",
		[VHOST_BACKEND_F_IOTLB_PERSIST] = "IOTLB_PERSIST",
		[VHOST_BACKEND_F_NEW_OWNER] = "NEW_OWNER",
		[VHOST_BACKEND_F_IOTLB_REMAP] = "IOTLB_REMAP",
	};
	return bit < sizeof(names) / sizeof(names[0]) ? names[bit] : NULL;
}

/* Not uAPI: the one IOTLB message (v2, ASID 0) every userspace program of the project writes to a
 * vhost-vdpa fd (minivmm, the rig's vdpatest, the kernel tests); zeroed first, padding included. */
#include <string.h>
static inline void vlud_iotlb_msg(struct vhost_msg_v2 *m, __u8 type, __u64 iova, __u64 size, __u64 uaddr,
				  __u8 perm)
{
	memset(m, 0, sizeof(*m));
	m->type = VHOST_IOTLB_MSG_V2;
	m->iotlb.iova = iova;
	m->iotlb.size = size;
	m->iotlb.uaddr = uaddr;
	m->iotlb.perm = perm;
	m->iotlb.type = type;
}

#endif /* VLUD_VHOST_H */
