/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * traffic.c - loopback frames and their bookkeeping.
 *
 * Frame (after the 12-byte virtio_net_hdr_v1, all zero):
 *   dst t->dst_mac: ff:ff:ff:ff:ff:ff without CVQ (vdpa_sim's receive_filter passes broadcast whatever the
 *   device MAC), else the MAC set through the CVQ (passes only while the device has that MAC)
 *   src 02:6d:76:6d:6d:00 (locally administered), ethertype 0x88b5
 *   "MVMM" | seq u64 LE | generation u32 LE | frame_len u32 LE | pattern bytes to frame_len
 *   pattern byte i (counted from the start of the Ethernet frame) = (seq * 131 + i * 7) & 0xff
 * Every frame sent is remembered in a window indexed by seq % MV_WIN (in flight / echoed), so an echo is
 * classified as good, duplicate, corrupt (pattern/length mismatch), foreign (not ours) or unknown
 * (a sequence number never sent).  The largest gap between consecutive good echoes is the pause as this
 * client sees it.
 */
#include <string.h>

#include "minivmm.h"

static const uint8_t src_mac[6] = { 0x02, 0x6d, 0x76, 0x6d, 0x6d, 0x00 };
#define PAYLOAD_OFF (MV_ETH_HLEN)
#define HDR_BYTES (PAYLOAD_OFF + 4 + 8 + 4 + 4)

void mv_traffic_init(struct mv_traffic *t, uint32_t frame_len)
{
	memset(t, 0, sizeof(*t));
	t->next_seq = 1;
	t->frame_len = frame_len;
	memset(t->dst_mac, 0xff, sizeof(t->dst_mac));
}

static void le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t rd_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 131 + (uint64_t)i * 7);
}

uint32_t mv_traffic_build(struct mv_traffic *t, uint8_t *buf, size_t cap, uint64_t now_us)
{
	uint32_t total = MV_NET_HDR_LEN + t->frame_len;
	uint64_t seq = t->next_seq++;
	uint8_t *f = buf + MV_NET_HDR_LEN;
	unsigned slot = seq % MV_WIN;

	if (total > cap)
		return 0;
	memset(buf, 0, MV_NET_HDR_LEN);
	memcpy(f, t->dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = MV_ETHERTYPE >> 8;
	f[13] = MV_ETHERTYPE & 0xff;
	memcpy(f + PAYLOAD_OFF, "MVMM", 4);
	le(f + PAYLOAD_OFF + 4, seq, 8);
	le(f + PAYLOAD_OFF + 12, t->generation, 4);
	le(f + PAYLOAD_OFF + 16, t->frame_len, 4);
	for (uint32_t i = HDR_BYTES; i < t->frame_len; i++)
		f[i] = pattern(seq, i);

	/* a slot still in flight from MV_WIN frames ago: that frame never came back */
	if (t->win_state[slot] == 1)
		t->lost++;
	t->win_seq[slot] = seq;
	t->win_state[slot] = 1;
	t->sent++;
	(void)now_us;
	return total;
}

int mv_traffic_check(struct mv_traffic *t, const uint8_t *buf, uint32_t len, uint64_t now_us)
{
	const uint8_t *f = buf + MV_NET_HDR_LEN;

	if (len < MV_NET_HDR_LEN + HDR_BYTES || f[12] != (MV_ETHERTYPE >> 8) || f[13] != (MV_ETHERTYPE & 0xff) ||
	    memcmp(f + PAYLOAD_OFF, "MVMM", 4)) {
		t->foreign++;
		return MV_ECHO_FOREIGN;
	}
	uint64_t seq = rd_le(f + PAYLOAD_OFF + 4, 8);
	uint32_t flen = (uint32_t)rd_le(f + PAYLOAD_OFF + 16, 4);
	if (seq == 0 || seq >= t->next_seq) {
		t->corrupt++;
		return MV_ECHO_UNKNOWN;
	}
	bool good = flen == t->frame_len && len == MV_NET_HDR_LEN + flen;
	for (uint32_t i = HDR_BYTES; good && i < flen; i++)
		good = f[i] == pattern(seq, i);
	if (!good) {
		t->corrupt++;
		return MV_ECHO_CORRUPT;
	}
	unsigned slot = seq % MV_WIN;
	if (t->win_seq[slot] != seq || t->win_state[slot] != 1) {
		/* echoed already, or older than the window (it was counted lost when its slot was reused) */
		t->dup++;
		return MV_ECHO_DUP;
	}
	t->win_state[slot] = 2;
	t->echoed++;
	if (t->last_echo_us && now_us > t->last_echo_us && now_us - t->last_echo_us > t->max_gap_us) {
		t->max_gap_us = now_us - t->last_echo_us;
		t->max_gap_at_us = now_us;
	}
	t->last_echo_us = now_us;
	return MV_ECHO_OK;
}

uint64_t mv_traffic_inflight(const struct mv_traffic *t)
{
	/* every frame sent enters "in flight" once and leaves it by an echo or by being counted lost */
	return t->sent - t->echoed - t->lost;
}

void mv_traffic_finish(struct mv_traffic *t)
{
	for (unsigned i = 0; i < MV_WIN; i++)
		if (t->win_state[i] == 1) {
			t->lost++;
			t->win_state[i] = 2;
		}
}
