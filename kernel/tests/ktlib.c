/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ktlib.c - helpers of the guest kernel tests; see ktlib.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "ktlib.h"

#define RING_OFF(q)	((uint64_t)(q) * 0x10000)
#define DESC_OFF	0x0
#define AVAIL_OFF	0x1000
#define USED_OFF	0x2000
#define BUF_OFF(q)	(KT_MiB + (uint64_t)(q) * KT_MiB)
#define HDR_LEN		((int)sizeof(struct virtio_net_hdr_v1))
#define FRAME_LEN	60

struct rdesc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct ravail { uint16_t flags, idx, ring[KT_QSZ], used_event; };
struct rused_elem { uint32_t id, len; };
struct rused { uint16_t flags, idx; struct rused_elem ring[KT_QSZ]; uint16_t avail_event; };

static const char *suite = "ktest";
static int failures;

void kt_init(const char *s)
{
	const char *env = getenv("VLUD_SCENARIO");

	suite = env && *env ? env : s;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

bool kt_check(bool cond, const char *name, const char *fmt, ...)
{
	char why[512] = "";
	va_list ap;

	if (cond) {
		printf("ok - %s/%s\n", suite, name);
	} else {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		printf("not ok - %s/%s: %s\n", suite, name, why);
		failures++;
	}
	fflush(stdout);
	return cond;
}

const char *kt_errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "?";
}

bool kt_errno(long r, int err, int want_errno, const char *name)
{
	if (want_errno == 0)
		return kt_check(r >= 0, name, "returned %ld, errno %s, expected success", r, kt_errname(err));
	return kt_check(r == -1 && err == want_errno, name, "returned %ld errno %s, expected -1 errno %s", r,
			r == -1 ? kt_errname(err) : "-", kt_errname(want_errno));
}

int kt_failures(void)
{
	return failures;
}

void kt_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

long kt_vmpin_kb(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

int kt_raise_memlock(uint64_t bytes)
{
	struct rlimit rl = { .rlim_cur = bytes, .rlim_max = bytes };
	struct rlimit cur;

	if (getrlimit(RLIMIT_MEMLOCK, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max > bytes)
		rl.rlim_max = cur.rlim_max;
	return setrlimit(RLIMIT_MEMLOCK, &rl) < 0 ? -errno : 0;
}

int kt_module_use_va(void)
{
	char c = 0;
	int fd = open("/sys/module/vdpa_sim/parameters/use_va", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == 'Y' || c == '1' ? 1 : c == 'N' || c == '0' ? 0 : -1;
}

void kt_dev_init(struct kt_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->vfd = d->memfd = -EBADF;
	d->kick[0] = d->kick[1] = d->call[0] = d->call[1] = -EBADF;
	d->mem = MAP_FAILED;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -EBADF;
}

void kt_dev_close(struct kt_dev *d)
{
	if (d->mem != MAP_FAILED)
		munmap(d->mem, KT_RAM);
	d->mem = MAP_FAILED;
	close_fd(&d->vfd);
	close_fd(&d->memfd);
	for (int q = 0; q < 2; q++) {
		close_fd(&d->kick[q]);
		close_fd(&d->call[q]);
	}
}

int kt_map_ram(struct kt_dev *d, uint64_t avoid)
{
	static const uint64_t hints[] = { 0x500000000000ULL, 0x600000000000ULL };
	void *p = MAP_FAILED;

	for (unsigned i = 0; i < 2 && p == MAP_FAILED; i++) {
		if (hints[i] == avoid)
			continue;
		p = mmap((void *)hints[i], KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
			 d->memfd, 0);
	}
	if (p == MAP_FAILED)
		p = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if ((uint64_t)p == avoid) {
		munmap(p, KT_RAM);
		return -EADDRINUSE;
	}
	d->mem = p;
	return 0;
}

int kt_dev_open(struct kt_dev *d, const char *path)
{
	int r;

	d->vfd = open(path, O_RDWR | O_CLOEXEC);
	if (d->vfd < 0)
		return -errno;
	if (ioctl(d->vfd, VHOST_SET_OWNER, NULL) < 0)
		return -errno;
	if (ioctl(d->vfd, VHOST_GET_BACKEND_FEATURES, &d->bf) < 0)
		return -errno;
	if (ioctl(d->vfd, VHOST_SET_BACKEND_FEATURES, &d->bf) < 0)
		return -errno;
	d->memfd = memfd_create("kt-guest-ram", MFD_CLOEXEC);
	if (d->memfd < 0)
		return -errno;
	if (ftruncate(d->memfd, KT_RAM) < 0)
		return -errno;
	for (int q = 0; q < 2; q++) {
		d->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->kick[q] < 0 || d->call[q] < 0)
			return -errno;
	}
	r = kt_map_ram(d, 0);
	if (r < 0)
		return r;
	/* fault everything in: pinning and VA translation see real pages */
	memset(d->mem, 0, KT_RAM);
	return 0;
}

long kt_iotlb(int vfd, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 m;

	vlud_iotlb_msg(&m, type, iova, size, uaddr, perm);
	return write(vfd, &m, sizeof(m));
}

int kt_map_iotlb(struct kt_dev *d)
{
	bool batch = d->bf & (1ULL << VHOST_BACKEND_F_IOTLB_BATCH);
	int r = 0;

	if (batch && kt_iotlb(d->vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0) < 0)
		return -errno;
	if (kt_iotlb(d->vfd, VHOST_IOTLB_UPDATE, KT_IOVA, KT_RAM, (uintptr_t)d->mem, VHOST_ACCESS_RW) < 0)
		r = -errno;
	if (batch && kt_iotlb(d->vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0) < 0 && !r)
		r = -errno;
	return r;
}

int kt_status(int vfd, uint8_t *st)
{
	return ioctl(vfd, VHOST_VDPA_GET_STATUS, st) < 0 ? -errno : 0;
}

static int set_status(int vfd, uint8_t st)
{
	return ioctl(vfd, VHOST_VDPA_SET_STATUS, &st) < 0 ? -errno : 0;
}

int kt_dev_start(struct kt_dev *d, bool fresh_rings)
{
	uint64_t features = 0;
	uint8_t st;
	int r;

	if ((r = set_status(d->vfd, 0)) < 0)
		return r;
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	if ((r = set_status(d->vfd, st)) < 0)
		return r;
	if (ioctl(d->vfd, VHOST_GET_FEATURES, &features) < 0)
		return -errno;
	features &= (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM);
	if (ioctl(d->vfd, VHOST_SET_FEATURES, &features) < 0)
		return -errno;
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	if ((r = set_status(d->vfd, st)) < 0)
		return r;
	for (unsigned q = 0; q < 2; q++) {
		struct vhost_vring_state s = { .index = q, .num = KT_QSZ };
		struct vhost_vring_addr a = {
			.index = q,
			.desc_user_addr = KT_IOVA + RING_OFF(q) + DESC_OFF,
			.avail_user_addr = KT_IOVA + RING_OFF(q) + AVAIL_OFF,
			.used_user_addr = KT_IOVA + RING_OFF(q) + USED_OFF,
		};
		struct vhost_vring_file f = { .index = q, .fd = d->kick[q] };

		if (fresh_rings) {
			memset(d->mem + RING_OFF(q), 0, 0x10000);
			if (q == 0)
				d->rx_avail = d->rx_used_seen = 0;
			else
				d->tx_avail = d->tx_used_seen = 0;
		}
		if (ioctl(d->vfd, VHOST_SET_VRING_NUM, &s) < 0)
			return -errno;
		/* the device resumes where the driver's avail index stands */
		s.num = q == 0 ? d->rx_avail : d->tx_avail;
		if (ioctl(d->vfd, VHOST_SET_VRING_BASE, &s) < 0)
			return -errno;
		if (ioctl(d->vfd, VHOST_SET_VRING_ADDR, &a) < 0)
			return -errno;
		if (ioctl(d->vfd, VHOST_SET_VRING_KICK, &f) < 0)
			return -errno;
		f.fd = d->call[q];
		if (ioctl(d->vfd, VHOST_SET_VRING_CALL, &f) < 0)
			return -errno;
		s.num = 1;
		if (ioctl(d->vfd, VHOST_VDPA_SET_VRING_ENABLE, &s) < 0)
			return -errno;
	}
	st |= VIRTIO_CONFIG_S_DRIVER_OK;
	return set_status(d->vfd, st);
}

static struct rused *used_ring(struct kt_dev *d, unsigned q)
{
	return (struct rused *)(d->mem + RING_OFF(q) + USED_OFF);
}

uint16_t kt_rx_used_idx(struct kt_dev *d)
{
	return __atomic_load_n(&used_ring(d, 0)->idx, __ATOMIC_ACQUIRE);
}

static void frame_fill(uint8_t *buf, uint32_t seq)
{
	memset(buf, 0, HDR_LEN + FRAME_LEN);
	memset(buf + HDR_LEN, 0xff, 6);					/* broadcast: passes the filter */
	memcpy(buf + HDR_LEN + 6, "\x02\x00\x00\x00\x00\x01\x88\xb5", 8);	/* src MAC, local ethertype */
	snprintf((char *)buf + HDR_LEN + 14, FRAME_LEN - 14, "kt-packet-%u", seq);
}

void kt_post(struct kt_dev *d)
{
	struct rdesc *rd = (void *)(d->mem + RING_OFF(0) + DESC_OFF);
	struct rdesc *td = (void *)(d->mem + RING_OFF(1) + DESC_OFF);
	struct ravail *ra = (void *)(d->mem + RING_OFF(0) + AVAIL_OFF);
	struct ravail *ta = (void *)(d->mem + RING_OFF(1) + AVAIL_OFF);
	uint16_t rs = d->rx_avail % KT_QSZ, ts = d->tx_avail % KT_QSZ;
	uint8_t *rbuf = d->mem + BUF_OFF(0) + rs * KT_BUFSZ, *tbuf = d->mem + BUF_OFF(1) + ts * KT_BUFSZ;

	memset(rbuf, 0xee, KT_BUFSZ);
	rd[rs] = (struct rdesc){ KT_IOVA + BUF_OFF(0) + rs * KT_BUFSZ, KT_BUFSZ, VRING_DESC_F_WRITE, 0 };
	ra->ring[rs] = rs;
	__atomic_store_n(&ra->idx, ++d->rx_avail, __ATOMIC_RELEASE);

	frame_fill(tbuf, d->seq++);
	td[ts] = (struct rdesc){ KT_IOVA + BUF_OFF(1) + ts * KT_BUFSZ, HDR_LEN + FRAME_LEN, 0, 0 };
	ta->ring[ts] = ts;
	__atomic_store_n(&ta->idx, ++d->tx_avail, __ATOMIC_RELEASE);
}

int kt_kick(struct kt_dev *d)
{
	uint64_t v = 1;

	for (int q = 0; q < 2; q++)
		if (write(d->kick[q], &v, sizeof(v)) != sizeof(v))
			return -errno;
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int kt_wait_rx(struct kt_dev *d, unsigned n, int timeout_ms, char *why, size_t whylen)
{
	struct rused *ru = used_ring(d, 0);
	uint16_t want = d->rx_used_seen + n;
	double end = now_ms() + timeout_ms;
	uint64_t v;

	while ((uint16_t)(kt_rx_used_idx(d) - d->rx_used_seen) < n) {
		struct pollfd p = { .fd = d->call[0], .events = POLLIN };
		int left = (int)(end - now_ms());

		if (left <= 0) {
			snprintf(why, whylen, "only %u of %u RX completions after %d ms (rx used idx %u, tx used idx %u)",
				 (uint16_t)(kt_rx_used_idx(d) - d->rx_used_seen), n, timeout_ms, kt_rx_used_idx(d),
				 __atomic_load_n(&used_ring(d, 1)->idx, __ATOMIC_ACQUIRE));
			return -1;
		}
		poll(&p, 1, left < 50 ? left : 50);
		while (read(d->call[0], &v, sizeof(v)) == sizeof(v))
			;
	}
	if (kt_rx_used_idx(d) != want) {
		snprintf(why, whylen, "rx used idx %u, expected exactly %u", kt_rx_used_idx(d), want);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct rused_elem e = ru->ring[d->rx_used_seen % KT_QSZ];
		uint16_t slot = d->rx_used_seen % KT_QSZ;
		uint8_t *rbuf = d->mem + BUF_OFF(0) + (uint64_t)slot * KT_BUFSZ;
		uint8_t expect[HDR_LEN + FRAME_LEN];
		/* RX completion k carries TX frame k: same slot numbers, payload number seq - pending + i */
		uint32_t seq = d->seq - (uint16_t)(d->rx_avail - d->rx_used_seen);

		frame_fill(expect, seq);
		if (e.id != slot || e.len != (uint32_t)(HDR_LEN + FRAME_LEN) || memcmp(rbuf, expect, sizeof(expect))) {
			snprintf(why, whylen, "RX completion %u: id %u len %u, payload '%.20s', expected slot %u len %d '%s'",
				 d->rx_used_seen, e.id, e.len, (char *)rbuf + HDR_LEN + 14, slot, HDR_LEN + FRAME_LEN,
				 (char *)expect + HDR_LEN + 14);
			return -1;
		}
		d->rx_used_seen++;
	}
	return 0;
}

int kt_packet(struct kt_dev *d, char *why, size_t whylen)
{
	int r;

	kt_post(d);
	r = kt_kick(d);
	if (r < 0) {
		snprintf(why, whylen, "kick: %s", strerror(-r));
		return -1;
	}
	return kt_wait_rx(d, 1, KT_TIMEOUT_MS, why, whylen);
}

int kt_state_save(const struct kt_dev *d, struct kt_state *s)
{
	int fd;

	s->magic = KT_STATE_MAGIC;
	s->vfd = d->vfd;
	s->memfd = d->memfd;
	for (int q = 0; q < 2; q++) {
		s->kick[q] = d->kick[q];
		s->call[q] = d->call[q];
	}
	s->old_addr = (uintptr_t)d->mem;
	s->bf = d->bf;
	s->rx_avail = d->rx_avail;
	s->tx_avail = d->tx_avail;
	s->rx_used_seen = d->rx_used_seen;
	s->tx_used_seen = d->tx_used_seen;
	s->seq = d->seq;
	/* kept across exec on purpose: no MFD_CLOEXEC */
	fd = memfd_create("kt-state", 0);
	if (fd < 0)
		return -errno;
	if (pwrite(fd, s, sizeof(*s), 0) != sizeof(*s)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int kt_state_load(int fd, struct kt_state *s)
{
	if (pread(fd, s, sizeof(*s), 0) != sizeof(*s))
		return -EIO;
	return s->magic == KT_STATE_MAGIC ? 0 : -EINVAL;
}

void kt_dev_from_state(struct kt_dev *d, const struct kt_state *s)
{
	kt_dev_init(d);
	d->vfd = s->vfd;
	d->memfd = s->memfd;
	for (int q = 0; q < 2; q++) {
		d->kick[q] = s->kick[q];
		d->call[q] = s->call[q];
	}
	d->bf = s->bf;
	d->rx_avail = s->rx_avail;
	d->tx_avail = s->tx_avail;
	d->rx_used_seen = s->rx_used_seen;
	d->tx_used_seen = s->tx_used_seen;
	d->seq = s->seq;
}

static int keep_fd(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int kt_exec_self(const struct kt_dev *d, int statefd, const char *cmd)
{
	char sfd[16];
	int fds[] = { d->vfd, d->memfd, d->kick[0], d->kick[1], d->call[0], d->call[1], statefd };

	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (keep_fd(fds[i]) < 0)
			return -errno;
	snprintf(sfd, sizeof(sfd), "%d", statefd);
	fflush(stdout);
	execl("/proc/self/exe", "vlu-ktest", cmd, "--stage2", sfd, (char *)NULL);
	return -errno;
}

int kt_send_fds(int sock, const void *data, size_t len, const int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds > 16)
		return -EINVAL;
	if (nfds) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int kt_recv_fds(int sock, void *data, size_t len, int *fds, unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = data, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	unsigned got = 0;
	ssize_t n;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int tmp[16];

			memcpy(tmp, CMSG_DATA(c), sizeof(int) * (k > 16 ? 16 : k));
			for (unsigned i = 0; i < k && i < 16; i++) {
				if (got < nfds)
					fds[got++] = tmp[i];
				else
					close(tmp[i]);
			}
		}
	}
	if ((size_t)n != len || got != nfds || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		for (unsigned i = 0; i < got; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return 0;
}
