/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-minivmm-state.c - unit tests of minivmm's pure code: the state blob (round trip, every kind of
 * damage rejected, the memfd that crosses exec), the traffic checker (good, duplicate, corrupt, foreign,
 * unknown, lost, gaps), the split-ring driver (wrap of the 16-bit indices, out-of-order completion, save and
 * restore; the device side played by the test), the path choice and size parsing.  Output: TAP (cmocka; forced if CMOCKA_MESSAGE_OUTPUT is unset).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "../../clients/minivmm/minivmm.h"

static struct mv_state *sample_state(void)
{
	struct mv_state *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->path = MV_PATH_B;
	s->generation = 3;
	s->dev_fd = 5;
	s->mem_fd = 6;
	snprintf(s->dev_path, sizeof(s->dev_path), "/dev/vhost-vdpa-0");
	s->mem_size = 256ULL << 20;
	s->features = 0x300000000ULL;
	s->backend_acked = 0x17e;
	s->backend_offered = 0x77e;
	s->status = 0x0f;
	s->nmaps = 3;
	for (unsigned i = 0; i < s->nmaps; i++)
		s->maps[i] = (struct mv_map){ MV_IOVA_BASE + i * (64ULL << 20), 64ULL << 20, i * (64ULL << 20), 3 };
	s->old_uaddr = 0x7f0000000000ULL;
	s->drive_mark = 0x8badf00d12345678ULL;
	for (unsigned q = 0; q < MV_NQ; q++) {
		s->vq[q].num = MV_QSZ;
		s->vq[q].avail_idx = (uint16_t)(65530 + q);	/* wraps soon: 16-bit indices must survive */
		s->vq[q].used_seen = (uint16_t)(65500 + q);
		s->vq[q].dev_base = (uint16_t)(65520 + q);
		s->vq[q].busy[7] = 1;
		s->vq[q].busy[MV_QSZ - 1] = 1;
		s->vq[q].kick_fd = 10 + 2 * (int)q;
		s->vq[q].call_fd = 11 + 2 * (int)q;
	}
	s->ctrl = (struct mv_ctrl){ .cvq = 1, .mac_set = 1, .mac = { 0x02, 0x6d, 0x76, 0x6d, 0x6d, 0x01 }, .cvq_first = 1 };
	s->t_run_start_us = 1000;
	s->t_deadline_us = 5001000;
	s->t_next_update_us = 2001000;
	s->updates_left = 2;
	s->vmpin_expected_kb = 262144;
	mv_traffic_init(&s->traffic, 128);
	memcpy(s->traffic.dst_mac, s->ctrl.mac, 6);
	uint8_t buf[MV_BUFSZ];
	for (int i = 0; i < 40; i++)
		mv_traffic_build(&s->traffic, buf, sizeof(buf), 0);
	s->traffic.echoed = 30;
	for (uint64_t seq = 1; seq <= 30; seq++)
		s->traffic.win_state[seq % MV_WIN] = 2;
	s->traffic.max_gap_us = 12345;
	s->nupdates = 2;
	s->upd[0] = (struct mv_update_rec){ .path = 'A', .ok = 1, .t_start_us = 1, .t_suspend_us = 2,
		.t_exec_us = 3, .t_image_us = 4, .t_owner_us = 5, .t_mapped_us = 6, .t_resume_us = 7,
		.echo_gap_us = 8, .inflight_at_suspend = 9, .sent_in_pause = 8, .vmpin_before_kb = 262144,
		.vmpin_after_kb = 262144, .lost_before = 0, .dup_before = 0, .mac_ok = 1 };
	s->upd[1] = (struct mv_update_rec){ .path = 'B', .ok = 0, .error = -ENOENT, .vmpin_before_kb = -1,
		.cvq_replayed = 1, .mac_ok = 0, .cvq_cmds = 1, .cvq_used_at_enable = 1, .cvq_restore_us = 1234,
		.t_main_us = 11, .t_connected_us = 12, .t_claimed_us = 13,
		.t_claim_sent_us = 14, .t_claim_reply_us = 15, .t_ready_sent_us = 16, .t_verdict_us = 17 };
	return s;
}

static void pack(const struct mv_state *s, uint8_t **buf, size_t *len)
{
	assert_int_equal(mv_state_pack(s, buf, len), 0);
	assert_true(*len > 16);
}

static void test_crc32(void **st)
{
	assert_int_equal(mv_crc32("123456789", 9), 0xcbf43926u);
	assert_int_equal(mv_crc32("", 0), 0);
	{
		/* the table against the bitwise definition, over every byte value and a longer buffer */
		uint8_t b[1024];

		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (uint8_t)(i * 7 + (i >> 8));
		for (size_t n = 0; n <= sizeof(b); n += n < 300 ? 1 : 241) {
			uint32_t c = 0xffffffffu;

			for (size_t i = 0; i < n; i++) {
				c ^= b[i];
				for (int k = 0; k < 8; k++)
					c = (c >> 1) ^ (0xedb88320u & -(c & 1));
			}
			assert_int_equal(mv_crc32(b, n), ~c);
		}
	}
}

static void test_roundtrip(void **st)
{
	_cleanup_free_ struct mv_state *s = sample_state(), *r = calloc(1, sizeof(*r));
	_cleanup_free_ uint8_t *b1 = NULL, *b2 = NULL;
	size_t l1, l2;

	pack(s, &b1, &l1);
	assert_int_equal(mv_state_unpack(b1, l1, r), 0);
	/* every field */
	assert_int_equal(r->path, 'B');
	assert_int_equal(r->generation, 3);
	assert_int_equal(r->dev_fd, 5);
	assert_int_equal(r->mem_fd, 6);
	assert_string_equal(r->dev_path, "/dev/vhost-vdpa-0");
	assert_int_equal(r->mem_size, 256ULL << 20);
	assert_int_equal(r->features, 0x300000000ULL);
	assert_int_equal(r->backend_acked, 0x17e);
	assert_int_equal(r->backend_offered, 0x77e);
	assert_int_equal(r->status, 0x0f);
	assert_int_equal(r->nmaps, 3);
	assert_memory_equal(r->maps, s->maps, sizeof(s->maps[0]) * 3);
	assert_int_equal(r->old_uaddr, s->old_uaddr);
	assert_true(r->drive_mark == s->drive_mark);
	for (unsigned q = 0; q < MV_NQ; q++) {
		assert_int_equal(r->vq[q].num, MV_QSZ);
		assert_int_equal(r->vq[q].avail_idx, s->vq[q].avail_idx);
		assert_int_equal(r->vq[q].used_seen, s->vq[q].used_seen);
		assert_int_equal(r->vq[q].dev_base, s->vq[q].dev_base);
		assert_memory_equal(r->vq[q].busy, s->vq[q].busy, MV_QSZ);
		assert_int_equal(r->vq[q].kick_fd, s->vq[q].kick_fd);
		assert_int_equal(r->vq[q].call_fd, s->vq[q].call_fd);
	}
	/* control state (v2) */
	assert_int_equal(r->ctrl.cvq, 1);
	assert_int_equal(r->ctrl.mac_set, 1);
	assert_int_equal(r->ctrl.cvq_first, 1);
	assert_memory_equal(r->ctrl.mac, s->ctrl.mac, 6);
	assert_memory_equal(r->traffic.dst_mac, s->ctrl.mac, 6);
	assert_int_equal(r->t_deadline_us, 5001000);
	assert_int_equal(r->updates_left, 2);
	assert_int_equal(r->vmpin_expected_kb, 262144);
	assert_memory_equal(&r->traffic, &s->traffic, sizeof(s->traffic));
	assert_int_equal(mv_traffic_inflight(&r->traffic), 10);
	assert_int_equal(r->nupdates, 2);
	assert_memory_equal(&r->upd[0], &s->upd[0], sizeof(s->upd[0]));
	assert_int_equal(r->upd[1].error, -ENOENT);
	assert_int_equal(r->upd[1].vmpin_before_kb, -1);
	assert_memory_equal(&r->upd[1], &s->upd[1], sizeof(s->upd[1]));
	assert_int_equal(r->upd[1].cvq_replayed, 1);
	assert_int_equal(r->upd[1].mac_ok, 0);
	assert_int_equal(r->upd[1].cvq_cmds, 1);
	assert_int_equal(r->upd[1].cvq_used_at_enable, 1);
	assert_int_equal(r->upd[1].cvq_restore_us, 1234);
	assert_int_equal(r->upd[1].t_main_us, 11);
	assert_int_equal(r->upd[1].t_connected_us, 12);
	assert_int_equal(r->upd[1].t_claimed_us, 13);
	assert_int_equal(r->upd[1].t_claim_sent_us, 14);
	assert_int_equal(r->upd[1].t_claim_reply_us, 15);
	assert_int_equal(r->upd[1].t_ready_sent_us, 16);
	assert_int_equal(r->upd[1].t_verdict_us, 17);
	/* and byte for byte */
	pack(r, &b2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
}

static void test_reject_damage(void **st)
{
	_cleanup_free_ struct mv_state *s = sample_state(), *r = calloc(1, sizeof(*r));
	_cleanup_free_ uint8_t *b = NULL;
	size_t len;

	pack(s, &b, &len);
	/* every truncation */
	for (size_t l = 0; l < len; l++)
		assert_int_equal(mv_state_unpack(b, l, r), -EBADMSG);
	/* a flipped bit anywhere: header fields or checksum */
	for (size_t i = 0; i < len; i++) {
		b[i] ^= 0x10;
		int e = mv_state_unpack(b, len, r);
		assert_true(e == -EBADMSG || (i >= 4 && i < 8 && e == -EPROTONOSUPPORT));
		b[i] ^= 0x10;
	}
	/* trailing garbage */
	_cleanup_free_ uint8_t *big = calloc(1, len + 4);
	memcpy(big, b, len);
	assert_int_equal(mv_state_unpack(big, len + 4, r), -EBADMSG);
	assert_int_equal(mv_state_unpack(b, len, r), 0);
}

static void test_reject_version(void **st)
{
	_cleanup_free_ struct mv_state *s = sample_state(), *r = calloc(1, sizeof(*r));
	_cleanup_free_ uint8_t *b = NULL;
	size_t len;

	pack(s, &b, &len);
	b[4] = 6;	/* version 6, checksum unaffected (header is not covered) */
	assert_int_equal(mv_state_unpack(b, len, r), -EPROTONOSUPPORT);
	b[4] = 4;	/* version 4 (no drive mark): refused, not misread */
	assert_int_equal(mv_state_unpack(b, len, r), -EPROTONOSUPPORT);
	b[4] = 3;	/* version 3 (no claim and update.ready times in the update records): refused, not misread */
	assert_int_equal(mv_state_unpack(b, len, r), -EPROTONOSUPPORT);
	b[4] = 2;	/* version 2 (no start times in the update records): refused, not misread */
	assert_int_equal(mv_state_unpack(b, len, r), -EPROTONOSUPPORT);
	b[4] = 1;	/* version 1 (no control state): refused, not misread */
	assert_int_equal(mv_state_unpack(b, len, r), -EPROTONOSUPPORT);
}

/* damage inside the body with a valid checksum: the range checks must catch it */
static void test_reject_ranges(void **st)
{
	_cleanup_free_ struct mv_state *s = sample_state(), *r = calloc(1, sizeof(*r));
	uint8_t *b = NULL;
	size_t len;

	s->maps[2].size = 192ULL << 20;	/* 128M + 192M: past the end of guest RAM */
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->maps[2].size = 64ULL << 20;
	s->vq[1].num = 100;	/* not a power of two */
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->vq[1].num = MV_QSZ;
	s->traffic.frame_len = 10;
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->traffic.frame_len = 128;
	s->ctrl.cvq = 0;	/* a MAC set through a CVQ that was not negotiated */
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->ctrl.cvq = 2;
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->ctrl.cvq = 1;
	s->upd[1].mac_ok = 3;
	pack(s, &b, &len);
	assert_int_equal(mv_state_unpack(b, len, r), -EBADMSG);
	free(b);

	s->upd[1].mac_ok = 0;
	s->nmaps = MV_MAX_MAPS + 1;
	assert_int_equal(mv_state_pack(s, &b, &len), -EINVAL);
	s->nmaps = 3;
	s->path = 'Z';
	assert_int_equal(mv_state_pack(s, &b, &len), -EINVAL);
}

static void test_memfd(void **st)
{
	_cleanup_free_ struct mv_state *s = sample_state(), *r = calloc(1, sizeof(*r));
	_cleanup_close_ int fd = mv_state_to_memfd(s);
	int fl;

	assert_true(fd >= 0);
	fl = fcntl(fd, F_GETFD);
	assert_false(fl & FD_CLOEXEC);	/* it must cross exec */
	assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE);
	assert_int_equal(write(fd, "x", 1), -1);
	assert_int_equal(mv_state_from_fd(fd, r), 0);
	assert_int_equal(r->generation, 3);
	assert_int_equal(r->traffic.sent, 40);

	_cleanup_close_ int bad = memfd_create("t", MFD_CLOEXEC);
	assert_true(bad >= 0);
	assert_int_equal(write(bad, "MMVS", 4), 4);
	assert_int_equal(mv_state_from_fd(bad, r), -EBADMSG);
}

/* ------------------------------------------------------------------ traffic */
static void test_traffic_ok_dup(void **st)
{
	struct mv_traffic t;
	uint8_t buf[MV_BUFSZ];
	uint32_t len;

	mv_traffic_init(&t, 128);
	len = mv_traffic_build(&t, buf, sizeof(buf), 100);
	assert_int_equal(len, MV_NET_HDR_LEN + 128);
	assert_int_equal(mv_traffic_inflight(&t), 1);
	assert_int_equal(mv_traffic_check(&t, buf, len, 200), MV_ECHO_OK);
	assert_int_equal(mv_traffic_inflight(&t), 0);
	assert_int_equal(mv_traffic_check(&t, buf, len, 300), MV_ECHO_DUP);
	assert_int_equal(t.dup, 1);
	assert_int_equal(t.echoed, 1);
	/* broadcast destination, our ethertype */
	assert_memory_equal(buf + MV_NET_HDR_LEN, "\xff\xff\xff\xff\xff\xff", 6);
	assert_int_equal(buf[MV_NET_HDR_LEN + 12], 0x88);
	assert_int_equal(buf[MV_NET_HDR_LEN + 13], 0xb5);
	/* with a control state: frames go to the CVQ-set MAC (vdpa_sim's receive filter then needs it) */
	memcpy(t.dst_mac, "\x02\x6d\x76\x6d\x6d\x01", 6);
	len = mv_traffic_build(&t, buf, sizeof(buf), 400);
	assert_memory_equal(buf + MV_NET_HDR_LEN, "\x02\x6d\x76\x6d\x6d\x01", 6);
	assert_int_equal(mv_traffic_check(&t, buf, len, 500), MV_ECHO_OK);
}

static void test_traffic_corrupt_foreign_unknown(void **st)
{
	struct mv_traffic t;
	uint8_t buf[MV_BUFSZ];
	uint32_t len;

	mv_traffic_init(&t, 200);
	len = mv_traffic_build(&t, buf, sizeof(buf), 0);
	buf[len - 1] ^= 1;
	assert_int_equal(mv_traffic_check(&t, buf, len, 1), MV_ECHO_CORRUPT);
	buf[len - 1] ^= 1;
	assert_int_equal(mv_traffic_check(&t, buf, len - 1, 1), MV_ECHO_CORRUPT);	/* short */
	buf[MV_NET_HDR_LEN + 13] = 0x00;
	assert_int_equal(mv_traffic_check(&t, buf, len, 1), MV_ECHO_FOREIGN);
	buf[MV_NET_HDR_LEN + 13] = 0xb5;
	buf[MV_NET_HDR_LEN + MV_ETH_HLEN + 4] = 99;	/* seq 99 never sent */
	assert_int_equal(mv_traffic_check(&t, buf, len, 1), MV_ECHO_UNKNOWN);
	assert_int_equal(t.corrupt, 3);
	assert_int_equal(t.foreign, 1);
	assert_int_equal(t.echoed, 0);
}

static void test_traffic_lost_gap(void **st)
{
	struct mv_traffic t;
	uint8_t buf[MV_BUFSZ], first[MV_BUFSZ];
	uint32_t len;

	mv_traffic_init(&t, 60);
	len = mv_traffic_build(&t, first, sizeof(first), 0);	/* seq 1: never echoed */
	for (int i = 0; i < 3; i++) {
		len = mv_traffic_build(&t, buf, sizeof(buf), 0);
		assert_int_equal(mv_traffic_check(&t, buf, len, 1000 + 5000 * (uint64_t)i), MV_ECHO_OK);
	}
	assert_int_equal(t.max_gap_us, 5000);
	/* the window wraps over seq 1: counted lost once, and its late echo is a duplicate */
	for (int i = 0; i < MV_WIN; i++) {
		len = mv_traffic_build(&t, buf, sizeof(buf), 0);
		assert_int_equal(mv_traffic_check(&t, buf, len, 20000), MV_ECHO_OK);
	}
	assert_int_equal(t.lost, 1);
	assert_int_equal(mv_traffic_check(&t, first, len, 30000), MV_ECHO_DUP);
	assert_int_equal(t.max_gap_us, 9000);	/* 11000 -> 20000; the duplicate does not count */
	mv_traffic_build(&t, buf, sizeof(buf), 0);
	mv_traffic_finish(&t);
	assert_int_equal(t.lost, 2);
	assert_int_equal(mv_traffic_inflight(&t), 0);
	assert_int_equal(t.sent, t.echoed + t.lost);
}

/* ------------------------------------------------------------------ vq (driver side, device simulated by the test) */
static void device_complete(struct mv_vq *vq, uint16_t *dev_used, unsigned id, uint32_t len)
{
	vq->used->ring[*dev_used % vq->num] = (struct vring_used_elem){ id, len };
	(*dev_used)++;
	__atomic_store_n(&vq->used->idx, *dev_used, __ATOMIC_RELEASE);
}

/* --hugetlb: sizes rounded up to 2 MiB pages; with too few free hugepages a clear -ENOSPC and nothing
 * created (the host running this usually has vm.nr_hugepages = 0: that branch; the rig's bench rows run
 * the other one with hugepages reserved) */
static void test_mem_hugetlb(void **st)
{
	struct mv_mem m, a;
	const uint64_t size = 5ULL << 20, chunk = 3ULL << 20;	/* -> 6 MiB in two ranges of 4 and 2 MiB */
	long avail = mv_mem_huge_avail();

	(void)st;
	assert_int_equal(mv_mem_huge_round(1), MV_HUGE_PAGE);
	assert_int_equal(mv_mem_huge_round(MV_HUGE_PAGE), MV_HUGE_PAGE);
	assert_int_equal(mv_mem_huge_round(size), 6ULL << 20);
	mv_mem_init(&m);
	int r = mv_mem_create(&m, size, chunk, true, true);
	if (avail >= 0 && avail < 3) {
		assert_int_equal(r, -ENOSPC);
		assert_true(m.fd < 0);
		assert_null(m.base);
		assert_int_equal(mv_mem_huge_avail(), avail);	/* nothing reserved by the failed attempt */
		return;
	}
	if (avail < 0) {	/* no hugetlb in this kernel: memfd_create or mmap says so */
		assert_true(r < 0);
		assert_true(m.fd < 0);
		return;
	}
	assert_int_equal(r, 0);
	assert_true(m.hugetlb);
	assert_int_equal(m.size, 6ULL << 20);
	assert_int_equal(m.nmaps, 2);
	assert_int_equal(m.maps[0].size, 4ULL << 20);
	assert_int_equal(m.maps[1].offset, 4ULL << 20);
	assert_int_equal(m.maps[1].size, 2ULL << 20);
	m.base[m.size - 1] = 0x5a;
	/* the new image of an update maps the same memfd and sees it is hugetlbfs */
	mv_mem_init(&a);
	assert_int_equal(mv_mem_attach(&a, fcntl(m.fd, F_DUPFD_CLOEXEC, 3), m.size), 0);
	assert_true(a.hugetlb);
	assert_int_equal(a.base[a.size - 1], 0x5a);
	mv_mem_done(&a);
	mv_mem_done(&m);
}

static void test_vq_ring(void **st)
{
	struct mv_mem m;
	struct mv_vq vq;
	uint32_t id, len;
	uint16_t dev_used, dev_avail;

	mv_mem_init(&m);
	assert_int_equal(mv_mem_create(&m, MV_MIN_MEM, 0, false, false), 0);
	assert_int_equal(m.nmaps, 1);
	assert_int_equal(m.maps[0].iova, MV_IOVA_BASE);
	mv_vq_init(&vq, MV_TXQ);
	assert_int_equal(mv_vq_layout(&vq, &m, true), 0);
	assert_ptr_equal(vq.desc, m.base + MV_RING_OFF(MV_TXQ) + MV_DESC_OFF);
	assert_ptr_equal(vq.buf, m.base + MV_BUF_OFF(MV_TXQ));
	assert_null(mv_mem_ptr(&m, MV_IOVA_BASE + MV_MIN_MEM - 8, 16));	/* past the end */
	assert_null(mv_mem_ptr(&m, MV_IOVA_BASE - 1, 1));

	/* start just below the 16-bit wrap, as the blob may say after a long run */
	vq.avail_idx = vq.used_seen = dev_used = dev_avail = 65530;
	vq.used->idx = 65530;
	for (unsigned n = 0; n < vq.num; n++) {
		int i = mv_vq_free_id(&vq);
		assert_true(i >= 0);
		mv_vq_post(&vq, (unsigned)i, 100, false);
	}
	assert_int_equal(mv_vq_free_id(&vq), -ENOBUFS);
	assert_int_equal(mv_vq_inflight(&vq), vq.num);
	mv_vq_publish(&vq);
	assert_int_equal(vq.avail->idx, (uint16_t)(65530 + vq.num));	/* wrapped */
	assert_false(mv_vq_reap(&vq, &id, &len));

	/* the device takes them in avail order; descriptors point at their own buffers */
	for (unsigned n = 0; n < 3; n++) {
		unsigned d = vq.avail->ring[dev_avail++ % vq.num];
		assert_int_equal(vq.desc[d].addr, vq.buf_iova + (uint64_t)d * MV_BUFSZ);
		assert_int_equal(vq.desc[d].len, 100);
		assert_int_equal(vq.desc[d].flags, 0);
	}
	/* out of order: complete the third, then the first */
	unsigned third = vq.avail->ring[(uint16_t)(65530 + 2) % vq.num], first = vq.avail->ring[65530 % vq.num];
	device_complete(&vq, &dev_used, third, 0);
	device_complete(&vq, &dev_used, first, 0);
	assert_true(mv_vq_reap(&vq, &id, &len));
	assert_int_equal(id, third);
	assert_true(mv_vq_reap(&vq, &id, &len));
	assert_int_equal(id, first);
	assert_false(mv_vq_reap(&vq, &id, &len));
	assert_int_equal(mv_vq_inflight(&vq), vq.num - 2);
	/* the free id search skips the second, still busy, and finds the completed ones */
	int f1 = mv_vq_free_id(&vq);
	assert_true(f1 == (int)first || f1 == (int)third);
	mv_vq_post(&vq, (unsigned)f1, 60, true);
	assert_int_equal(vq.desc[f1].flags, VRING_DESC_F_WRITE);
	int f2 = mv_vq_free_id(&vq);
	assert_true((f2 == (int)first || f2 == (int)third) && f2 != f1);
	assert_int_equal(vq.used_seen, (uint16_t)65532);

	/* save / restore keeps the shadow state */
	struct mv_vq_state vs = { .dev_base = 7 };
	struct mv_vq vq2;
	mv_vq_save(&vq, &vs);
	assert_int_equal(vs.dev_base, 7);
	mv_vq_init(&vq2, MV_TXQ);
	assert_int_equal(mv_vq_layout(&vq2, &m, false), 0);
	mv_vq_restore(&vq2, &vs);
	assert_int_equal(vq2.avail_idx, vq.avail_idx);
	assert_int_equal(vq2.used_seen, vq.used_seen);
	assert_memory_equal(vq2.busy, vq.busy, MV_QSZ);
	mv_mem_done(&m);
	assert_int_equal(m.fd, -EBADF);
}

static void test_parse_size(void **st)
{
	uint64_t v;
	assert_int_equal(mv_parse_size("256M", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(mv_parse_size("1G", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(mv_parse_size("64MiB", &v), 0);
	assert_int_equal(v, 64ULL << 20);
	assert_int_equal(mv_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(mv_parse_size("0x1000", &v), 0);
	assert_int_equal(v, 4096);
	const char *bad[] = { "", "-1", "12X", "1.5G", "M", "1GG", "99999999999999G" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_true(mv_parse_size(bad[i], &v) < 0);
}

static void test_choose_path(void **st)
{
	const uint64_t stock = MV_BF(IOTLB_MSG_V2) | MV_BF(IOTLB_BATCH) | MV_BF(SUSPEND) | MV_BF(RESUME) |
			       MV_BF(IOTLB_PERSIST), patched = stock | MV_BF(NEW_OWNER);
	const struct { uint64_t off; char forced, want; } rows[] = {
		{ stock, 0, 'C' }, { stock, 'A', 0 }, { stock, 'B', 0 }, { stock, 'C', 'C' },
		{ patched, 0, 'A' }, { patched, 'A', 'A' }, { patched, 'B', 'B' }, { patched, 'C', 'C' },
		{ patched & ~MV_BF(RESUME), 0, 'B' }, { patched & ~MV_BF(RESUME), 'A', 0 },
		{ patched & ~MV_BF(RESUME) & ~MV_BF(IOTLB_PERSIST), 0, 'C' },
		{ patched & ~MV_BF(IOTLB_PERSIST), 'B', 0 },
		{ patched & ~MV_BF(SUSPEND), 0, 0 }, { 0, 'C', 0 }, { 0, 0, 0 },
	};
	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		const char *why = NULL;
		char p = mv_choose_path(rows[i].off, rows[i].forced, &why);
		assert_int_equal(p, rows[i].want);
		assert_non_null(why);
		assert_true(strlen(why) > 0);
	}
	assert_int_equal(MV_BF(NEW_OWNER), 1ULL << 9);
	assert_int_equal(MV_BF(IOTLB_REMAP), 1ULL << 10);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		{ "minivmm/state/crc32", test_crc32, NULL, NULL, NULL },
		{ "minivmm/state/roundtrip", test_roundtrip, NULL, NULL, NULL },
		{ "minivmm/state/reject-damage", test_reject_damage, NULL, NULL, NULL },
		{ "minivmm/state/reject-version", test_reject_version, NULL, NULL, NULL },
		{ "minivmm/state/reject-ranges", test_reject_ranges, NULL, NULL, NULL },
		{ "minivmm/state/memfd", test_memfd, NULL, NULL, NULL },
		{ "minivmm/traffic/ok-dup", test_traffic_ok_dup, NULL, NULL, NULL },
		{ "minivmm/traffic/corrupt-foreign-unknown", test_traffic_corrupt_foreign_unknown, NULL, NULL, NULL },
		{ "minivmm/traffic/lost-gap", test_traffic_lost_gap, NULL, NULL, NULL },
		{ "minivmm/vq/ring-wrap-out-of-order-save", test_vq_ring, NULL, NULL, NULL },
		{ "minivmm/mem/hugetlb", test_mem_hugetlb, NULL, NULL, NULL },
		{ "minivmm/util/parse-size", test_parse_size, NULL, NULL, NULL },
		{ "minivmm/path/choose", test_choose_path, NULL, NULL, NULL },
	};

	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		cmocka_set_message_output(CM_OUTPUT_TAP);
	return _cmocka_run_group_tests("minivmm", t, ELEMENTSOF(t), NULL, NULL) == 0 ? 0 : 1;
}
