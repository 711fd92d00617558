/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vdev.c - one vhost-vdpa net device, driven the way a VMM drives it.
 *
 * Who may call what (kernel-facts.md section 1): features, backend features, status, suspend and resume
 * work for any holder of the fd; vring ioctls and IOTLB writes only for the owner (SET_OWNER, or
 * VHOST_NEW_OWNER with our patched modules).  A non-owner's IOTLB write fails with EFAULT.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "minivmm.h"

void mv_vdev_init(struct mv_vdev *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = -EBADF;
}

int mv_vdev_open(struct mv_vdev *d, const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return mv_vdev_adopt(d, fd, path);
}

int mv_vdev_adopt(struct mv_vdev *d, int fd, const char *path)
{
	/* takes fd */
	d->fd = safe_close(d->fd);
	d->fd = fd;
	snprintf(d->path, sizeof(d->path), "%s", path ? path : "");
	return 0;
}

void mv_vdev_done(struct mv_vdev *d)
{
	d->fd = safe_close(d->fd);
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

int mv_vdev_query(struct mv_vdev *d)
{
	int r;

	r = xioctl(d->fd, VHOST_VDPA_GET_DEVICE_ID, &d->device_id);
	if (r < 0)
		return r;
	if (d->device_id != VIRTIO_ID_NET)
		return -ENODEV;
	r = xioctl(d->fd, VHOST_GET_FEATURES, &d->dev_features);
	if (r < 0)
		return r;
	r = xioctl(d->fd, VHOST_GET_BACKEND_FEATURES, &d->backend_offered);
	if (r < 0)
		return r;
	if (xioctl(d->fd, VHOST_VDPA_GET_VQS_COUNT, &d->nvqs) < 0)
		d->nvqs = 0;	/* older kernels: not fatal */
	r = xioctl(d->fd, VHOST_VDPA_GET_VRING_NUM, &d->vring_max);
	if (r < 0)
		return r;
	(void)mv_vdev_read_mac(d, d->mac);
	return 0;
}

int mv_vdev_read_mac(struct mv_vdev *d, uint8_t ret[6])
{
	struct {
		struct vhost_vdpa_config h;
		uint8_t b[6];
	} cfg = { .h = { .off = 0, .len = 6 } };
	int r = xioctl(d->fd, VHOST_VDPA_GET_CONFIG, &cfg);

	if (r < 0)
		return r;
	memcpy(ret, cfg.h.buf, 6);
	return 0;
}

int mv_vdev_set_owner(struct mv_vdev *d)
{
	return xioctl(d->fd, VHOST_SET_OWNER, NULL);
}

/* v3 VHOST_NEW_OWNER (kernel/README.md): needs the owner's consent (armed for us, or its mm dead).
 * ENOMEM: the pinned charge that moves does not fit our RLIMIT_MEMLOCK; raised by that charge (up to the
 * hard limit) and tried once more.  *ret_pages (may be NULL) gets the charge in pages. */
int mv_vdev_new_owner(struct mv_vdev *d, uint64_t *ret_pages)
{
	struct vhost_new_owner out;
	struct rlimit rl;
	uint64_t need;

	if (vlud_new_owner(d->fd, 0, -1, &out) == 0)
		return 0;
	if (ret_pages)
		*ret_pages = out.pinned_pages;
	if (errno != ENOMEM || out.pinned_pages == ~0ULL)
		return -errno;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return -ENOMEM;
	need = out.pinned_pages * (uint64_t)sysconf(_SC_PAGESIZE);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur + need > rl.rlim_max)
		return -ENOMEM;
	rl.rlim_cur += need;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return -ENOMEM;
	return vlud_new_owner(d->fd, 0, -1, NULL) < 0 ? -errno : 0;
}

int mv_vdev_arm(struct mv_vdev *d, int pidfd)
{
	return vlud_new_owner(d->fd, VHOST_NEW_OWNER_F_ARM, pidfd, NULL) < 0 ? -errno : 0;
}

bool mv_vdev_new_owner_supported(struct mv_vdev *d)
{
	return vlud_new_owner_probe(d->fd, NULL) == 1;
}

int mv_vdev_ack_backend(struct mv_vdev *d, uint64_t want)
{
	uint64_t f = want & d->backend_offered;
	int r = xioctl(d->fd, VHOST_SET_BACKEND_FEATURES, &f);
	if (r < 0)
		return r;
	d->backend_acked = f;
	return 0;
}

int mv_vdev_get_status(struct mv_vdev *d, uint8_t *ret)
{
	return xioctl(d->fd, VHOST_VDPA_GET_STATUS, ret);
}

int mv_vdev_set_status(struct mv_vdev *d, uint8_t st)
{
	return xioctl(d->fd, VHOST_VDPA_SET_STATUS, &st);
}

int mv_vdev_features_ok(struct mv_vdev *d, uint64_t want)
{
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	uint64_t f = want & d->dev_features;
	int r;

	r = mv_vdev_set_status(d, st);
	if (r < 0)
		return r;
	r = xioctl(d->fd, VHOST_SET_FEATURES, &f);
	if (r < 0)
		return r;
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	r = mv_vdev_set_status(d, st);
	if (r < 0)
		return r;
	r = mv_vdev_get_status(d, &st);
	if (r < 0)
		return r;
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return -EPROTO;
	d->features = f;
	return 0;
}

int mv_vdev_driver_ok(struct mv_vdev *d)
{
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		     VIRTIO_CONFIG_S_DRIVER_OK;
	int r = mv_vdev_set_status(d, st);
	if (r < 0)
		return r;
	r = mv_vdev_get_status(d, &st);
	if (r < 0)
		return r;
	return (st & VIRTIO_CONFIG_S_DRIVER_OK) && !(st & VIRTIO_CONFIG_S_NEEDS_RESET) ? 0 : -EIO;
}

int mv_vdev_suspend(struct mv_vdev *d)
{
	return xioctl(d->fd, VHOST_VDPA_SUSPEND, NULL);
}

int mv_vdev_resume(struct mv_vdev *d)
{
	return xioctl(d->fd, VHOST_VDPA_RESUME, NULL);
}

/* Is the device's owner another process?  An owner-checked ioctl (GET_VRING_BASE of queue 0, which only
 * reads) fails EPERM then; VHOST_VDPA_SET_STATUS, SUSPEND and RESUME have no owner check. */
bool mv_vdev_other_owner(struct mv_vdev *d)
{
	uint16_t base;

	return mv_vdev_get_vring_base(d, 0, &base) == -EPERM;
}

int mv_vdev_get_vring_base(struct mv_vdev *d, unsigned q, uint16_t *ret)
{
	struct vhost_vring_state s = { .index = q };
	int r = xioctl(d->fd, VHOST_GET_VRING_BASE, &s);
	if (r < 0)
		return r;
	*ret = (uint16_t)s.num;
	return 0;
}

int mv_vdev_vring_setup(struct mv_vdev *d, unsigned q, uint16_t num, uint16_t base,
			uint64_t desc, uint64_t avail, uint64_t used, int kick, int call)
{
	struct vhost_vring_state s = { .index = q, .num = num };
	struct vhost_vring_addr a = {
		.index = q, .desc_user_addr = desc, .avail_user_addr = avail, .used_user_addr = used,
	};
	struct vhost_vring_file fk = { .index = q, .fd = kick }, fc = { .index = q, .fd = call };
	int r;

	if ((r = xioctl(d->fd, VHOST_SET_VRING_NUM, &s)) < 0)
		return r;
	s.num = base;
	if ((r = xioctl(d->fd, VHOST_SET_VRING_BASE, &s)) < 0)
		return r;
	if ((r = xioctl(d->fd, VHOST_SET_VRING_ADDR, &a)) < 0)
		return r;
	if ((r = xioctl(d->fd, VHOST_SET_VRING_KICK, &fk)) < 0)
		return r;
	return xioctl(d->fd, VHOST_SET_VRING_CALL, &fc);
}

int mv_vdev_vring_enable(struct mv_vdev *d, unsigned q, bool on)
{
	struct vhost_vring_state s = { .index = q, .num = on };
	return xioctl(d->fd, VHOST_VDPA_SET_VRING_ENABLE, &s);
}

/* ------------------------------------------------------------------ IOTLB */
static int iotlb_msg(struct mv_vdev *d, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr,
		     uint8_t perm)
{
	struct vhost_msg_v2 m;

	vlud_iotlb_msg(&m, type, iova, size, uaddr, perm);
	for (;;) {
		ssize_t n = write(d->fd, &m, sizeof(m));
		if (n == (ssize_t)sizeof(m))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

/* type: UPDATE, INVALIDATE or REMAP; whole table in one batch when BATCH is acked. */
static int iotlb_table(struct mv_vdev *d, const struct mv_mem *m, uint8_t type)
{
	bool batch = d->backend_acked & MV_BF(IOTLB_BATCH);
	unsigned n = m->nmaps;
	int r = 0, r2;

	if (!(d->backend_acked & MV_BF(IOTLB_MSG_V2)))
		return -EOPNOTSUPP;
	if (batch && (r = iotlb_msg(d, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0)) < 0)
		return r;
	if (type == VHOST_IOTLB_UPDATE && m->test_map_short && n > 1) {
		/* test knob MINIVMM_TEST_MAP_SHORT (mem.c): one range less than the table */
		n--;
		mv_log("test: mapping %u of %u ranges, range %u (%" PRIu64 " MiB) left out (MINIVMM_TEST_MAP_SHORT=1)",
		       n, m->nmaps, n, m->maps[n].size >> 20);
	}
	for (unsigned i = 0; i < n && r >= 0; i++) {
		const struct mv_map *mp = &m->maps[i];
		uint64_t uaddr = (uintptr_t)(m->base + mp->offset);
		switch (type) {
		case VHOST_IOTLB_UPDATE:
			r = iotlb_msg(d, type, mp->iova, mp->size, uaddr, mp->perm);
			break;
		case VHOST_IOTLB_INVALIDATE:
			r = iotlb_msg(d, type, mp->iova, mp->size, 0, 0);
			break;
		default: /* REMAP: iova and size must match an existing entry, perm 0 */
			r = iotlb_msg(d, type, mp->iova, mp->size, uaddr, 0);
			break;
		}
	}
	/* END even after a failure: the kernel applies (set_map) what it has and leaves batch mode */
	if (batch && (r2 = iotlb_msg(d, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0)) < 0 && r >= 0)
		r = r2;
	return r;
}

int mv_vdev_map(struct mv_vdev *d, const struct mv_mem *m)
{
	return iotlb_table(d, m, VHOST_IOTLB_UPDATE);
}

int mv_vdev_unmap(struct mv_vdev *d, const struct mv_mem *m)
{
	return iotlb_table(d, m, VHOST_IOTLB_INVALIDATE);
}

int mv_vdev_remap(struct mv_vdev *d, const struct mv_mem *m)
{
	if (!(d->backend_acked & MV_BF(IOTLB_REMAP)))
		return -EOPNOTSUPP;
	return iotlb_table(d, m, VHOST_IOTLB_REMAP);
}

const char *mv_backend_names(uint64_t bits, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned b = 0; b < 64 && off < len; b++) {
		if (!(bits & (1ULL << b)))
			continue;
		const char *n = vlud_backend_feature_name(b);
		char tmp[16];
		if (!n) {
			snprintf(tmp, sizeof(tmp), "bit%u", b);
			n = tmp;
		}
		int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "", n);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}
