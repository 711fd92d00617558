/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state.c - the minivmm state blob that crosses a live update.
 *
 * Explicit little-endian serialization, field by field in a fixed order (version 4, documented in
 * docs/MINIVMM.md), so the blob does not depend on struct padding or on the compiler of either image.
 * Header: magic u32, version u32, total length u32, crc32 u32 of the bytes after the header.
 * A reader rejects: short input, wrong magic, unknown version, length mismatch, bad checksum, and any
 * count or index out of range.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "minivmm.h"

#define HDR_LEN 16

/* CRC-32 (IEEE 802.3, reflected, 0xedb88320), one table lookup per byte: the blob is packed and checked
 * inside the pause of every update (both images), and a bit at a time costs 8 times as many steps */
static uint32_t crc_table[256];

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
		crc_table[i] = c;
	}
}

uint32_t mv_crc32(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t crc = 0xffffffffu;

	if (!crc_table[1])
		crc_table_init();
	for (size_t i = 0; i < len; i++)
		crc = (crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xff];
	return ~crc;
}

/* ------------------------------------------------------------------ writer */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void w_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *np = realloc(w->p, cap);
		if (!np) {
			w->err = -ENOMEM;
			return;
		}
		w->p = np;
		w->cap = cap;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void w_le(struct wbuf *w, uint64_t v, unsigned n)
{
	uint8_t b[8];
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w_bytes(w, b, n);
}
#define w_u8(w, v)  w_le(w, (uint8_t)(v), 1)
#define w_u16(w, v) w_le(w, (uint16_t)(v), 2)
#define w_u32(w, v) w_le(w, (uint32_t)(v), 4)
#define w_u64(w, v) w_le(w, (uint64_t)(v), 8)

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------------ reader */
struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static uint64_t r_le(struct rbuf *r, unsigned n)
{
	uint64_t v = 0;
	if (r->err || r->off + n > r->len) {
		r->err = -EBADMSG;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)r->p[r->off + i] << (8 * i);
	r->off += n;
	return v;
}

static void r_bytes(struct rbuf *r, void *dst, size_t n)
{
	if (r->err || r->off + n > r->len) {
		r->err = -EBADMSG;
		return;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}
#define r_u8(r)  ((uint8_t)r_le(r, 1))
#define r_u16(r) ((uint16_t)r_le(r, 2))
#define r_u32(r) ((uint32_t)r_le(r, 4))
#define r_u64(r) r_le(r, 8)

/* ------------------------------------------------------------------ fields, version 4
 * (2 added: the control state after the vring states, the traffic's destination MAC, the CVQ restore
 * figures of each update record; 3: the new image's start times of each record; 4: its claim and
 * update.ready times.  An older blob is
 * refused: both images of an update are the same minivmm in the rig, and an upgrade across the version is
 * a fresh start) */
static void pack_traffic(struct wbuf *w, const struct mv_traffic *t)
{
	w_u64(w, t->next_seq);
	w_u64(w, t->sent);
	w_u64(w, t->echoed);
	w_u64(w, t->lost);
	w_u64(w, t->dup);
	w_u64(w, t->corrupt);
	w_u64(w, t->foreign);
	w_u64(w, t->tx_full);
	w_u64(w, t->rx_short);
	w_u64(w, t->last_echo_us);
	w_u64(w, t->max_gap_us);
	w_u64(w, t->max_gap_at_us);
	w_u32(w, t->frame_len);
	w_u32(w, t->generation);
	w_bytes(w, t->dst_mac, 6);	/* v2 */
	/* window: only slots in use, as (index u16, seq u64, state u8), preceded by their count */
	uint32_t n = 0;
	for (unsigned i = 0; i < MV_WIN; i++)
		n += t->win_state[i] != 0;
	w_u32(w, n);
	for (unsigned i = 0; i < MV_WIN; i++)
		if (t->win_state[i]) {
			w_u16(w, i);
			w_u64(w, t->win_seq[i]);
			w_u8(w, t->win_state[i]);
		}
}

static void unpack_traffic(struct rbuf *r, struct mv_traffic *t)
{
	memset(t, 0, sizeof(*t));
	t->next_seq = r_u64(r);
	t->sent = r_u64(r);
	t->echoed = r_u64(r);
	t->lost = r_u64(r);
	t->dup = r_u64(r);
	t->corrupt = r_u64(r);
	t->foreign = r_u64(r);
	t->tx_full = r_u64(r);
	t->rx_short = r_u64(r);
	t->last_echo_us = r_u64(r);
	t->max_gap_us = r_u64(r);
	t->max_gap_at_us = r_u64(r);
	t->frame_len = r_u32(r);
	t->generation = r_u32(r);
	r_bytes(r, t->dst_mac, 6);
	uint32_t n = r_u32(r);
	if (n > MV_WIN) {
		r->err = -EBADMSG;
		return;
	}
	for (uint32_t k = 0; k < n && !r->err; k++) {
		uint16_t i = r_u16(r);
		uint64_t seq = r_u64(r);
		uint8_t st = r_u8(r);
		if (i >= MV_WIN || st == 0 || st > 2 || seq % MV_WIN != i || t->win_state[i]) {
			r->err = -EBADMSG;
			return;
		}
		t->win_seq[i] = seq;
		t->win_state[i] = st;
	}
	if (t->frame_len < MV_FRAME_MIN || t->frame_len > MV_FRAME_MAX)
		r->err = -EBADMSG;
}

static void pack_upd(struct wbuf *w, const struct mv_update_rec *u)
{
	w_u8(w, u->path);
	w_u8(w, u->ok);
	w_u8(w, u->va_mode);
	w_u32(w, (uint32_t)u->error);
	w_u64(w, u->t_start_us);
	w_u64(w, u->t_suspend_us);
	w_u64(w, u->t_exec_us);
	w_u64(w, u->t_image_us);
	w_u64(w, u->t_owner_us);
	w_u64(w, u->t_mapped_us);
	w_u64(w, u->t_resume_us);
	w_u64(w, u->echo_gap_us);
	w_u64(w, u->inflight_at_suspend);
	w_u64(w, u->sent_in_pause);
	w_u64(w, (uint64_t)u->vmpin_before_kb);
	w_u64(w, (uint64_t)u->vmpin_after_kb);
	w_u64(w, u->lost_before);
	w_u64(w, u->dup_before);
	/* v2 */
	w_u8(w, u->cvq_replayed);
	w_u8(w, u->mac_ok);
	w_u16(w, u->cvq_cmds);
	w_u16(w, u->cvq_used_at_enable);
	w_u64(w, u->cvq_restore_us);
	/* v3 */
	w_u64(w, u->t_main_us);
	w_u64(w, u->t_connected_us);
	w_u64(w, u->t_claimed_us);
	/* v4 */
	w_u64(w, u->t_claim_sent_us);
	w_u64(w, u->t_claim_reply_us);
	w_u64(w, u->t_ready_sent_us);
	w_u64(w, u->t_verdict_us);
}

static void unpack_upd(struct rbuf *r, struct mv_update_rec *u)
{
	memset(u, 0, sizeof(*u));
	u->path = r_u8(r);
	u->ok = r_u8(r);
	u->va_mode = r_u8(r);
	u->error = (int32_t)r_u32(r);
	u->t_start_us = r_u64(r);
	u->t_suspend_us = r_u64(r);
	u->t_exec_us = r_u64(r);
	u->t_image_us = r_u64(r);
	u->t_owner_us = r_u64(r);
	u->t_mapped_us = r_u64(r);
	u->t_resume_us = r_u64(r);
	u->echo_gap_us = r_u64(r);
	u->inflight_at_suspend = r_u64(r);
	u->sent_in_pause = r_u64(r);
	u->vmpin_before_kb = (int64_t)r_u64(r);
	u->vmpin_after_kb = (int64_t)r_u64(r);
	u->lost_before = r_u64(r);
	u->dup_before = r_u64(r);
	u->cvq_replayed = r_u8(r);
	u->mac_ok = r_u8(r);
	u->cvq_cmds = r_u16(r);
	u->cvq_used_at_enable = r_u16(r);
	u->cvq_restore_us = r_u64(r);
	u->t_main_us = r_u64(r);
	u->t_connected_us = r_u64(r);
	u->t_claimed_us = r_u64(r);
	u->t_claim_sent_us = r_u64(r);
	u->t_claim_reply_us = r_u64(r);
	u->t_ready_sent_us = r_u64(r);
	u->t_verdict_us = r_u64(r);
	if (u->cvq_replayed > 1 || u->mac_ok > 2)
		r->err = -EBADMSG;
}

static bool path_valid(uint8_t p)
{
	return p == MV_PATH_NONE || p == MV_PATH_A || p == MV_PATH_B || p == MV_PATH_C;
}

int mv_state_pack(const struct mv_state *s, uint8_t **ret_buf, size_t *ret_len)
{
	struct wbuf w = { 0 };

	if (s->nmaps > MV_MAX_MAPS || s->nupdates > MV_MAX_UPDATES || !path_valid(s->path))
		return -EINVAL;

	w_u32(&w, MV_STATE_MAGIC);
	w_u32(&w, MV_STATE_VERSION);
	w_u32(&w, 0);	/* length, patched below */
	w_u32(&w, 0);	/* crc, patched below */

	w_u8(&w, s->path);
	w_u32(&w, s->generation);
	w_u32(&w, (uint32_t)s->dev_fd);
	w_u32(&w, (uint32_t)s->mem_fd);
	w_bytes(&w, s->dev_path, sizeof(s->dev_path));
	w_u64(&w, s->mem_size);
	w_u64(&w, s->features);
	w_u64(&w, s->backend_acked);
	w_u64(&w, s->backend_offered);
	w_u8(&w, s->status);
	w_u32(&w, s->nmaps);
	for (unsigned i = 0; i < s->nmaps; i++) {
		w_u64(&w, s->maps[i].iova);
		w_u64(&w, s->maps[i].size);
		w_u64(&w, s->maps[i].offset);
		w_u8(&w, s->maps[i].perm);
	}
	w_u64(&w, s->old_uaddr);
	w_u64(&w, s->drive_mark);
	w_u32(&w, MV_NQ);
	for (unsigned q = 0; q < MV_NQ; q++) {
		const struct mv_vq_state *v = &s->vq[q];
		w_u16(&w, v->num);
		w_u16(&w, v->avail_idx);
		w_u16(&w, v->used_seen);
		w_u16(&w, v->dev_base);
		w_bytes(&w, v->busy, MV_QSZ);
		w_u32(&w, (uint32_t)v->kick_fd);
		w_u32(&w, (uint32_t)v->call_fd);
	}
	/* v2: control state */
	w_u8(&w, s->ctrl.cvq);
	w_u8(&w, s->ctrl.mac_set);
	w_bytes(&w, s->ctrl.mac, 6);
	w_u8(&w, s->ctrl.cvq_first);
	w_u64(&w, s->t_run_start_us);
	w_u64(&w, s->t_deadline_us);
	w_u64(&w, s->t_next_update_us);
	w_u32(&w, s->updates_left);
	w_u64(&w, (uint64_t)s->vmpin_expected_kb);
	pack_traffic(&w, &s->traffic);
	w_u32(&w, s->nupdates);
	for (unsigned i = 0; i < s->nupdates; i++)
		pack_upd(&w, &s->upd[i]);

	if (w.err) {
		free(w.p);
		return w.err;
	}
	put_le32(w.p + 8, (uint32_t)w.len);
	put_le32(w.p + 12, mv_crc32(w.p + HDR_LEN, w.len - HDR_LEN));
	*ret_buf = w.p;
	*ret_len = w.len;
	return 0;
}

int mv_state_unpack(const uint8_t *buf, size_t len, struct mv_state *ret)
{
	struct rbuf r = { .p = buf, .len = len };
	_cleanup_free_ struct mv_state *s = NULL;

	if (len < HDR_LEN)
		return -EBADMSG;
	if (r_u32(&r) != MV_STATE_MAGIC)
		return -EBADMSG;
	if (r_u32(&r) != MV_STATE_VERSION)
		return -EPROTONOSUPPORT;
	if (r_u32(&r) != len)
		return -EBADMSG;
	if (r_u32(&r) != mv_crc32(buf + HDR_LEN, len - HDR_LEN))
		return -EBADMSG;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->path = r_u8(&r);
	s->generation = r_u32(&r);
	s->dev_fd = (int32_t)r_u32(&r);
	s->mem_fd = (int32_t)r_u32(&r);
	r_bytes(&r, s->dev_path, sizeof(s->dev_path));
	s->mem_size = r_u64(&r);
	s->features = r_u64(&r);
	s->backend_acked = r_u64(&r);
	s->backend_offered = r_u64(&r);
	s->status = r_u8(&r);
	s->nmaps = r_u32(&r);
	if (s->nmaps > MV_MAX_MAPS)
		return -EBADMSG;
	for (unsigned i = 0; i < s->nmaps; i++) {
		s->maps[i].iova = r_u64(&r);
		s->maps[i].size = r_u64(&r);
		s->maps[i].offset = r_u64(&r);
		s->maps[i].perm = r_u8(&r);
	}
	s->old_uaddr = r_u64(&r);
	s->drive_mark = r_u64(&r);
	if (r_u32(&r) != MV_NQ)
		return -EBADMSG;
	for (unsigned q = 0; q < MV_NQ; q++) {
		struct mv_vq_state *v = &s->vq[q];
		v->num = r_u16(&r);
		v->avail_idx = r_u16(&r);
		v->used_seen = r_u16(&r);
		v->dev_base = r_u16(&r);
		r_bytes(&r, v->busy, MV_QSZ);
		v->kick_fd = (int32_t)r_u32(&r);
		v->call_fd = (int32_t)r_u32(&r);
		if (!r.err && (v->num == 0 || v->num > MV_QSZ || (v->num & (v->num - 1))))
			return -EBADMSG;
	}
	s->ctrl.cvq = r_u8(&r);
	s->ctrl.mac_set = r_u8(&r);
	r_bytes(&r, s->ctrl.mac, 6);
	s->ctrl.cvq_first = r_u8(&r);
	if (!r.err && (s->ctrl.cvq > 1 || s->ctrl.mac_set > 1 || s->ctrl.cvq_first > 1 || (s->ctrl.mac_set && !s->ctrl.cvq)))
		return -EBADMSG;
	s->t_run_start_us = r_u64(&r);
	s->t_deadline_us = r_u64(&r);
	s->t_next_update_us = r_u64(&r);
	s->updates_left = r_u32(&r);
	s->vmpin_expected_kb = (int64_t)r_u64(&r);
	unpack_traffic(&r, &s->traffic);
	s->nupdates = r_u32(&r);
	if (s->nupdates > MV_MAX_UPDATES)
		return -EBADMSG;
	for (unsigned i = 0; i < s->nupdates; i++)
		unpack_upd(&r, &s->upd[i]);

	if (r.err)
		return r.err;
	if (r.off != len || !path_valid(s->path) || s->dev_path[sizeof(s->dev_path) - 1] != '\0')
		return -EBADMSG;
	for (unsigned i = 0; i < s->nmaps; i++)
		if (!s->maps[i].size || s->maps[i].offset + s->maps[i].size > s->mem_size ||
		    s->maps[i].offset + s->maps[i].size < s->maps[i].offset)
			return -EBADMSG;
	*ret = *s;
	return 0;
}

int mv_state_to_memfd(const struct mv_state *s)
{
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t len = 0;
	int r;

	r = mv_state_pack(s, &buf, &len);
	if (r < 0)
		return r;
	/* Deliberately without MFD_CLOEXEC: this fd is how the state crosses exec. */
	fd = memfd_create("minivmm-state", MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(fd, buf + off, len - off, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	/* the successor gets exactly what we wrote */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	return TAKE_FD(fd);
}

int mv_state_from_fd(int fd, struct mv_state *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < HDR_LEN || st.st_size > (16 << 20))
		return -EBADMSG;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	for (size_t off = 0; off < (size_t)st.st_size;) {
		ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		off += (size_t)n;
	}
	return mv_state_unpack(buf, (size_t)st.st_size, ret);
}
