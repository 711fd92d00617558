/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cvq.c - the control virtqueue and the CVQ-first device start.
 *
 * A real vDPA NIC forgets its control state (MAC, RX mode, filters, MQ pairs) at reset; paths B and C reset
 * the device (SET_STATUS 0; path C also closes and reopens it).  So every start after a reset replays the
 * control state before any data can flow, the way QEMU's vhost_vdpa_net_load() / vhost_vdpa_net_cvq_load()
 * restores a migrated vhost-vdpa net device:
 *
 *   FEATURES_OK (done by the caller)
 *   data vrings: SET_VRING_NUM/BASE/ADDR/KICK/CALL, not enabled
 *   CVQ (queue 2): fresh ring at base 0, SET_VRING_* and SET_VRING_ENABLE 1
 *   SET_STATUS |DRIVER_OK
 *   one command per piece of control state (VIRTIO_NET_CTRL_MAC_ADDR_SET: the only control feature
 *   vdpa_sim_net offers besides CTRL_VQ), one kick, wait until the device has used every one (ack OK)
 *   SET_VRING_ENABLE 1 on each data queue (needs VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK)
 *
 * Without ENABLE_AFTER_DRIVER_OK the data queues are enabled before DRIVER_OK (the only order such a device
 * accepts) and the replay follows DRIVER_OK: frames can then pass before the control state is back, which
 * is logged.  Each command is a two-descriptor chain: [class, cmd, data] device-readable, then a one-byte
 * ack device-writable; descriptor ids 2k and 2k+1 use buffers 2k and 2k+1 of the CVQ's buffer area.  The
 * CVQ's eventfds belong to one image (CLOEXEC): a successor sets up its own CVQ.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "minivmm.h"

#define CVQ_WAIT_MS 5000	/* TCG on a loaded host: the device's worker may take a while */

const char *mv_mac_str(const uint8_t *m, char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

static int cvq_setup(struct mv_vmm *v)
{
	struct mv_vq *c = &v->cvq;
	int r;

	c->idx = MV_CVQ;
	c->num = MV_QSZ;
	r = mv_vq_layout(c, &v->mem, true);	/* a fresh ring: the device starts it at base 0 */
	if (r < 0)
		return r;
	if (c->kick < 0 && (r = mv_vq_eventfds(c)) < 0)
		return r;
	r = mv_vdev_vring_setup(&v->dev, MV_CVQ, c->num, 0, c->desc_iova, c->avail_iova, c->used_iova, c->kick,
				c->call);
	if (r < 0) {
		mv_log("CVQ vring setup: %s", strerror(-r));
		return r;
	}
	r = mv_vdev_vring_enable(&v->dev, MV_CVQ, true);
	if (r < 0)
		mv_log("CVQ enable: %s", strerror(-r));
	return r;
}

static int cvq_post(struct mv_vq *c, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
	unsigned id = (unsigned)(c->avail_idx * 2u) % c->num;

	if (2 + len > MV_BUFSZ || c->busy[id] || c->busy[id + 1])
		return -ENOBUFS;
	uint8_t *b = mv_vq_buf(c, id), *ack = mv_vq_buf(c, id + 1);
	b[0] = cls;
	b[1] = cmd;
	memcpy(b + 2, data, len);
	ack[0] = 0xff;	/* neither OK (0) nor ERR (1): a command the device did not answer shows */
	c->desc[id].addr = c->buf_iova + (uint64_t)id * MV_BUFSZ;
	c->desc[id].len = (uint32_t)(2 + len);
	c->desc[id].flags = VRING_DESC_F_NEXT;
	c->desc[id].next = (uint16_t)(id + 1);
	c->desc[id + 1].addr = c->buf_iova + (uint64_t)(id + 1) * MV_BUFSZ;
	c->desc[id + 1].len = 1;
	c->desc[id + 1].flags = VRING_DESC_F_WRITE;
	c->desc[id + 1].next = 0;
	c->avail->ring[c->avail_idx % c->num] = (uint16_t)id;
	c->avail_idx++;
	c->busy[id] = c->busy[id + 1] = 1;
	return 0;
}

/* Waits until the device used every posted command; checks each ack. */
static int cvq_wait(struct mv_vq *c)
{
	uint64_t end = mv_now_us() + CVQ_WAIT_MS * 1000ULL;
	int r = 0;

	while (c->used_seen != c->avail_idx) {
		uint32_t id, len;

		if (mv_vq_reap(c, &id, &len)) {
			/* the head of a chain we posted: an even id; its ack is in the next buffer */
			if (id % 2 || id + 1 >= c->num) {
				mv_log("CVQ: the device used descriptor %u, which heads no command", id);
				r = -EIO;
				continue;
			}
			c->busy[id + 1] = 0;
			if (mv_vq_buf(c, id + 1)[0] != VIRTIO_NET_OK) {
				mv_log("CVQ command (class %u cmd %u): ack %u", mv_vq_buf(c, id)[0], mv_vq_buf(c, id)[1],
				       mv_vq_buf(c, id + 1)[0]);
				r = -EIO;
			}
			continue;
		}
		uint64_t now = mv_now_us();
		if (now >= end) {
			mv_log("CVQ: %u of %u commands used after %d ms", c->used_seen, c->avail_idx, CVQ_WAIT_MS);
			return -ETIMEDOUT;
		}
		struct pollfd p = { .fd = c->call, .events = POLLIN };
		(void)poll(&p, 1, 5);
		mv_vq_drain_call(c);
	}
	return r;
}

int mv_cvq_start_device(struct mv_vmm *v, const uint16_t *bases, bool replay, struct mv_update_rec *u)
{
	struct mv_ctrl *ctrl = &v->st->ctrl;
	bool cvq = ctrl->cvq && (v->dev.features & (1ULL << VIRTIO_NET_F_CTRL_VQ));
	bool first = cvq && (v->dev.backend_acked & MV_BF(ENABLE_AFTER_DRIVER_OK));
	unsigned ncmds = 0;
	uint16_t used_at_enable = 0;
	uint64_t t0 = 0, t1 = 0;
	char mac[18];
	int r;

	ctrl->cvq_first = first;
	for (unsigned q = 0; q < MV_NQ; q++) {
		struct mv_vq *vq = &v->vq[q];
		r = mv_vdev_vring_setup(&v->dev, q, vq->num, bases ? bases[q] : 0, vq->desc_iova, vq->avail_iova,
					vq->used_iova, vq->kick, vq->call);
		if (r < 0) {
			mv_log("vring %u setup: %s", q, strerror(-r));
			return r;
		}
		/* CVQ-first: the data queues wait until the control state is back */
		if (!first && (r = mv_vdev_vring_enable(&v->dev, q, true)) < 0) {
			mv_log("vring %u enable: %s", q, strerror(-r));
			return r;
		}
	}
	if (cvq) {
		t0 = mv_now_us();
		r = cvq_setup(v);
		if (r < 0)
			return r;
	}
	r = mv_vdev_driver_ok(&v->dev);
	if (r < 0) {
		mv_log("DRIVER_OK: %s", strerror(-r));
		return r;
	}
	if (cvq && replay) {
		if (!first)
			mv_log("CVQ: the device lacks ENABLE_AFTER_DRIVER_OK: data queues were enabled before the "
			       "control state is restored");
		if (ctrl->mac_set && (v->dev.features & (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR))) {
			r = cvq_post(&v->cvq, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, ctrl->mac, 6);
			if (r < 0)
				return r;
			ncmds++;
		}
		/* (RX mode, VLAN and MAC tables, MQ pairs, RSS, offloads: not offered by vdpa_sim_net, so neither
		 * negotiated nor replayed; each would be one more command here, as in vhost_vdpa_net_cvq_load) */
		if (ncmds) {
			mv_vq_publish(&v->cvq);
			r = mv_vq_kick(&v->cvq);
			if (r >= 0)
				r = cvq_wait(&v->cvq);
			if (r < 0) {
				mv_log("CVQ replay of %u command(s): %s", ncmds, strerror(-r));
				return r;
			}
		}
		t1 = mv_now_us();
	} else if (cvq)
		mv_log("test: control state NOT replayed (MINIVMM_TEST_NO_CVQ_RESTORE=1)");
	if (cvq)
		used_at_enable = __atomic_load_n(&v->cvq.used->idx, __ATOMIC_ACQUIRE);
	if (first) {
		for (unsigned q = 0; q < MV_NQ; q++) {
			r = mv_vdev_vring_enable(&v->dev, q, true);
			if (r < 0) {
				mv_log("vring %u enable after DRIVER_OK: %s", q, strerror(-r));
				return r;
			}
		}
	}
	if (cvq)
		mv_log("CVQ-first start: %u command(s) posted%s%s, CVQ used idx %u when the data queues were enabled "
		       "(%s DRIVER_OK), replay %.3f ms; first data-queue kick follows", ncmds,
		       ctrl->mac_set ? ", MAC " : "", ctrl->mac_set ? mv_mac_str(ctrl->mac, mac) : "", used_at_enable,
		       first ? "after" : "before", t1 ? (t1 - t0) / 1e3 : 0.0);
	if (u) {
		u->cvq_replayed = cvq && replay;
		u->cvq_cmds = (uint16_t)ncmds;
		u->cvq_used_at_enable = used_at_enable;
		u->cvq_restore_us = t1 ? t1 - t0 : 0;
	}
	return 0;
}

int mv_cvq_mac_check(struct mv_vmm *v)
{
	struct mv_ctrl *ctrl = &v->st->ctrl;
	uint8_t mac[6];
	char a[18], b[18];

	if (!ctrl->cvq || !ctrl->mac_set)
		return 2;
	if (mv_vdev_read_mac(&v->dev, mac) < 0)
		return 0;
	if (memcmp(mac, ctrl->mac, 6)) {
		mv_log("device MAC %s differs from the control state's %s: frames to it are dropped", mv_mac_str(mac, a),
		       mv_mac_str(ctrl->mac, b));
		return 0;
	}
	return 1;
}
