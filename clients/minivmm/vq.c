/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vq.c - the driver side of one split virtqueue living in guest RAM.
 *
 * Descriptor id i always uses buffer i (MV_BUFSZ bytes at buf_iova + i * MV_BUFSZ); a descriptor is
 * "busy" from post until its id comes back in the used ring.  Ids are handed out from avail_idx % num
 * onwards, skipping busy ones, so out-of-order completion is handled too.  Memory ordering: descriptors
 * and ring entries are written before a release store of avail->idx; used->idx is read with acquire.
 */
#include <string.h>
#include <sys/eventfd.h>

#include "minivmm.h"

void mv_vq_init(struct mv_vq *vq, unsigned idx)
{
	memset(vq, 0, sizeof(*vq));
	vq->idx = idx;
	vq->num = MV_QSZ;
	vq->kick = -EBADF;
	vq->call = -EBADF;
}

int mv_vq_layout(struct mv_vq *vq, const struct mv_mem *m, bool clear)
{
	uint64_t base = MV_IOVA_BASE + MV_RING_OFF(vq->idx);

	vq->desc_iova = base + MV_DESC_OFF;
	vq->avail_iova = base + MV_AVAIL_OFF;
	vq->used_iova = base + MV_USED_OFF;
	vq->buf_iova = MV_IOVA_BASE + MV_BUF_OFF(vq->idx);
	vq->desc = mv_mem_ptr(m, vq->desc_iova, sizeof(struct vring_desc) * vq->num);
	vq->avail = mv_mem_ptr(m, vq->avail_iova, sizeof(struct vring_avail) + 2u * vq->num + 2);
	vq->used = mv_mem_ptr(m, vq->used_iova, sizeof(struct vring_used) +
			      sizeof(struct vring_used_elem) * vq->num + 2);
	vq->buf = mv_mem_ptr(m, vq->buf_iova, (uint64_t)MV_BUFSZ * vq->num);
	if (!vq->desc || !vq->avail || !vq->used || !vq->buf)
		return -ERANGE;
	if (clear) {
		memset(vq->desc, 0, MV_RING_OFF(1));	/* the queue's whole 64 KiB ring area */
		vq->avail_idx = vq->used_seen = 0;
		memset(vq->busy, 0, sizeof(vq->busy));
	}
	return 0;
}

int mv_vq_eventfds(struct mv_vq *vq)
{
	int k = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (k < 0)
		return -errno;
	int c = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c < 0) {
		int r = -errno;
		safe_close(k);
		return r;
	}
	safe_close(vq->kick);
	safe_close(vq->call);
	vq->kick = k;
	vq->call = c;
	return 0;
}

void mv_vq_done(struct mv_vq *vq)
{
	vq->kick = safe_close(vq->kick);
	vq->call = safe_close(vq->call);
}

unsigned mv_vq_inflight(const struct mv_vq *vq)
{
	unsigned n = 0;
	for (unsigned i = 0; i < vq->num; i++)
		n += vq->busy[i];
	return n;
}

int mv_vq_free_id(const struct mv_vq *vq)
{
	for (unsigned k = 0; k < vq->num; k++) {
		unsigned id = (vq->avail_idx + k) % vq->num;
		if (!vq->busy[id])
			return (int)id;
	}
	return -ENOBUFS;
}

uint8_t *mv_vq_buf(const struct mv_vq *vq, unsigned id)
{
	return vq->buf + (size_t)id * MV_BUFSZ;
}

void mv_vq_post(struct mv_vq *vq, unsigned id, uint32_t len, bool device_writes)
{
	vq->desc[id].addr = vq->buf_iova + (uint64_t)id * MV_BUFSZ;
	vq->desc[id].len = len;
	vq->desc[id].flags = device_writes ? VRING_DESC_F_WRITE : 0;
	vq->desc[id].next = 0;
	vq->avail->ring[vq->avail_idx % vq->num] = (uint16_t)id;
	vq->avail_idx++;
	vq->busy[id] = 1;
}

void mv_vq_publish(struct mv_vq *vq)
{
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
}

int mv_vq_kick(struct mv_vq *vq)
{
	uint64_t one = 1;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (write(vq->kick, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		return -errno;
	return 0;
}

void mv_vq_drain_call(struct mv_vq *vq)
{
	uint64_t v;
	while (read(vq->call, &v, sizeof(v)) == sizeof(v))
		;
}

bool mv_vq_reap(struct mv_vq *vq, uint32_t *ret_id, uint32_t *ret_len)
{
	uint16_t used = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
	if (used == vq->used_seen)
		return false;
	struct vring_used_elem e = vq->used->ring[vq->used_seen % vq->num];
	vq->used_seen++;
	if (e.id < vq->num)
		vq->busy[e.id] = 0;
	*ret_id = e.id;
	*ret_len = e.len;
	return true;
}

/* the driver's shadow state of a queue, for the state blob (dev_base is filled separately) */
void mv_vq_save(const struct mv_vq *vq, struct mv_vq_state *s)
{
	uint16_t base = s->dev_base;	/* filled separately (GET_VRING_BASE) */

	memset(s, 0, sizeof(*s));
	s->num = vq->num;
	s->avail_idx = vq->avail_idx;
	s->used_seen = vq->used_seen;
	s->dev_base = base;
	memcpy(s->busy, vq->busy, sizeof(s->busy));
	s->kick_fd = vq->kick;
	s->call_fd = vq->call;
}

void mv_vq_restore(struct mv_vq *vq, const struct mv_vq_state *s)
{
	vq->num = s->num;
	vq->avail_idx = s->avail_idx;
	vq->used_seen = s->used_seen;
	memcpy(vq->busy, s->busy, sizeof(vq->busy));
}
