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

#include <string.h>
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
 * Live-update uAPI v3 (kernel/patches/, kernel/README.md has the details).  None of these values is
 * allocated upstream, and 0x9 has been proposed there for other features: never trust the bits alone.
 * vlud_new_owner_probe() asks the device by behaviour (a VHOST_NEW_OWNER query must succeed and
 * answer VHOST_NEW_OWNER_OUT_SUPPORTED); only then do VHOST_BACKEND_F_NEW_OWNER/IOTLB_REMAP mean ours.
 *
 * VHOST_NEW_OWNER (ioctl, struct vhost_new_owner):
 *   flags 0      take over, with the owner's consent: an armed transfer to the caller's process, or
 *                an owner whose address space no process uses anymore (exec()ed or exited).  The
 *                PA-mode pinned charge moves to the caller (checked against its RLIMIT_MEMLOCK).
 *   F_QUERY      any holder: fills out_flags (SUPPORTED, REMAP: mappings must be remapped after a
 *                take-over, CONSENT: a take-over by the caller would be accepted now) and pinned_pages
 *                (the charge that would move).  Changes nothing.
 *   F_ARM        owner only: consent to a hand-over to the process of pidfd (-1: withdraw).  Used up
 *                by that process's take-over, dropped at any change of owner.
 *   Errors: EINVAL no owner yet, unknown flag, reserved != 0, size too small; EBUSY caller is the owner
 *   or an IOTLB batch is open; EPERM no consent (or F_ARM by a non-owner); ENOMEM the charge does not fit
 *   (out fields filled, nothing changed); EINVAL a running (not suspended) VA bind_mm device;
 *   EOPNOTSUPP the device cannot change hands; EBADF F_ARM with something else than a pidfd.
 *   After a take-over the previous owner's process gets EPERM for SET_STATUS, SUSPEND, RESUME,
 *   SET_CONFIG, SET_CONFIG_CALL and SET_BACKEND_FEATURES (other holders, e.g. vlud, are unaffected).
 * VLUD_NEW_OWNER_V2 (_IO 0x27, no argument): the v2 form, still accepted by the patched modules as a
 *   take-over without flags (same consent rule).  VHOST_NEW_OWNER below stays that value for user
 *   space not yet moved to v3 (clients/minivmm); new code uses VLUD_NEW_OWNER.
 * VHOST_IOTLB_REMAP (IOTLB message type, write(), owner only): iova + size of one existing mapping, new
 *   uaddr (same file, same offset), perm 0.  write() fails with the real errno: EOPNOTSUPP PA mode,
 *   EPERM not owner, ENOENT no mapping, EINVAL partial match / perm / not the same file+offset.
 *   Inside a batch it takes effect (and the mapping stops being stale) only at a successful BATCH_END.
 * After a take-over on a device with F_IOTLB_REMAP, RESUME and any SET_STATUS with DRIVER_OK fail with
 *   EINVAL until every mapping was remapped or unmapped.  While suspended, SET_STATUS of the unchanged
 *   status is a no-op and any other non-zero status is EBUSY.
 */
#ifndef VHOST_NEW_OWNER_F_QUERY
struct vhost_new_owner {
	__u32 size;		/* in: size of this struct */
	__u32 flags;		/* in: VHOST_NEW_OWNER_F_* */
	__s32 pidfd;		/* in, F_ARM: the successor, -1 disarms */
	__u32 out_flags;	/* out: VHOST_NEW_OWNER_OUT_* */
	__u64 pinned_pages;	/* out: pinned pages whose charge moves */
	__u64 reserved;		/* must be 0 */
};
#define VHOST_NEW_OWNER_F_QUERY		(1U << 0)
#define VHOST_NEW_OWNER_F_ARM		(1U << 1)
#define VHOST_NEW_OWNER_OUT_SUPPORTED	(1U << 0)
#define VHOST_NEW_OWNER_OUT_REMAP	(1U << 1)
#define VHOST_NEW_OWNER_OUT_CONSENT	(1U << 2)
#endif
#define VLUD_NEW_OWNER				_IOWR(VHOST_VIRTIO, 0x27, struct vhost_new_owner)
#define VLUD_NEW_OWNER_V2			_IO(VHOST_VIRTIO, 0x27)
#ifndef VHOST_NEW_OWNER
#define VHOST_NEW_OWNER				VLUD_NEW_OWNER_V2
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

#include <sys/ioctl.h>
/* VLUD_NEW_OWNER; a zeroed argument with size set.  out may be NULL.  0 or -1 with errno. */
static inline int vlud_new_owner(int vfd, __u32 flags, int pidfd, struct vhost_new_owner *out)
{
	struct vhost_new_owner a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.flags = flags;
	a.pidfd = pidfd;
	a.pinned_pages = ~0ULL;
	if (ioctl(vfd, VLUD_NEW_OWNER, &a) < 0) {
		if (out)
			*out = a;
		return -1;
	}
	if (out)
		*out = a;
	return 0;
}

/* 1 if the device implements our VHOST_NEW_OWNER (probed by behaviour: a query succeeds, answers
 * OUT_SUPPORTED and fills pinned_pages), 0 if not.  out (may be NULL) gets the answer. */
static inline int vlud_new_owner_probe(int vfd, struct vhost_new_owner *out)
{
	struct vhost_new_owner a;
	int r = vlud_new_owner(vfd, VHOST_NEW_OWNER_F_QUERY, -1, &a);

	if (out)
		*out = a;
	if (r < 0)
		return 0;
	return (a.out_flags & VHOST_NEW_OWNER_OUT_SUPPORTED) && a.pinned_pages != ~0ULL;
}

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
