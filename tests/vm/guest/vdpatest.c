/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vdpatest - the rig's guest test program: asserts what a real vhost-vdpa device (vdpa_sim_net,
 * /dev/vhost-vdpa-N) does, one TAP line per assertion (docs/DESIGN.md), named
 * "<suite>/<command>.<check>" with suite = $VLUD_SCENARIO (or "vdpatest").
 *
 *   vdpatest [-d DEV] features [--backend-features HEX] [--device-features HEX] [--mac MAC]
 *   vdpatest [-d DEV] map-pa       PA mode (vdpa_sim use_va=0): pinning and VmPin, exactly
 *   vdpatest [-d DEV] map-va       VA mode (use_va=1): no pinning, no rlimit, datapath works
 *   vdpatest [-d DEV] rlimit       a 256 MiB PA map needs RLIMIT_MEMLOCK raised (CAP_IPC_LOCK does not help)
 *   vdpatest [-d DEV] loopback     packets looped back TX -> RX with payload compared, batches, filter
 *   vdpatest [-d DEV] suspend      SUSPEND / GET_VRING_BASE / SET_VRING_BASE / RESUME, kicks while suspended
 *   vdpatest [-d DEV] nonowner     what a forked SCM_RIGHTS receiver and the owner after exec() may do
 *
 * Exit status: 0 if every check passed, 1 if one failed, 2 on usage errors.
 * Expected values are those of Debian's 6.12 kernel with our out-of-tree stock vdpa_sim_net (see
 * kernel-facts.md section 10); options override the ones the patched modules change.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "basics.h"
#include "vlud-vhost.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define IOVA_BASE 0x100000000ULL /* device address of offset 0 of the guest-RAM memfd */
#define QSZ 256
#define RING_OFF(q) ((uint64_t)(q) * 0x10000)
#define AVAIL_OFF 0x1000
#define USED_OFF 0x2000
#define BUF_OFF(q) (1 * MiB + (uint64_t)(q) * MiB)
#define BUFSZ 2048
#define RAM_SIZE (4 * MiB) /* fits the default 8 MiB RLIMIT_MEMLOCK */
#define FRAME_LEN 60
#define HDR_LEN ((int)sizeof(struct virtio_net_hdr_v1))

/* Stock vdpa_sim_net on 6.12: MSG_V2 BATCH ASID SUSPEND RESUME ENABLE_AFTER_DRIVER_OK IOTLB_PERSIST */
#define STOCK_BACKEND_FEATURES 0x17eULL
/* NET_F_MTU(3) MAC(5) STATUS(16) CTRL_VQ(17) CTRL_MAC_ADDR(23) ANY_LAYOUT(27) VERSION_1(32) ACCESS_PLATFORM(33) */
#define STOCK_DEVICE_FEATURES 0x308830028ULL

struct rdesc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct ravail { uint16_t flags, idx, ring[QSZ], used_event; };
struct rused_elem { uint32_t id, len; };
struct rused { uint16_t flags, idx; struct rused_elem ring[QSZ]; uint16_t avail_event; };

/* One driver-side view of the device: fds owned by the struct (closed by ctx_done). */
struct ctx {
	int vfd;          /* /dev/vhost-vdpa-N */
	int memfd;        /* guest RAM */
	int kick[2];      /* q0 = RX, q1 = TX */
	int call[2];
	uint8_t *mem;     /* RAM_SIZE mapping of memfd */
	uint16_t rx_avail, tx_avail, rx_used_seen, tx_used_seen;
};

static const char *suite = "vdpatest";
static const char *cmd = "";
static const char *devpath = "/dev/vhost-vdpa-0";
static int failures;

/* ------------------------------------------------------------------ TAP */
#include "guest-tap.h"

static bool expect_u64(const char *name, uint64_t got, uint64_t want)
{
	if (got == want) {
		tap(true, "%s=0x%" PRIx64, name, want);
		return true;
	}
	tap_fail(name, "expected 0x%" PRIx64 ", got 0x%" PRIx64, want, got);
	return false;
}

static bool expect_num(const char *name, uint64_t got, uint64_t want)
{
	if (got == want) {
		tap(true, "%s=%" PRIu64, name, want);
		return true;
	}
	tap_fail(name, "expected %" PRIu64 ", got %" PRIu64, want, got);
	return false;
}

#define SYS(expr) ({ errno = 0; (long)(expr); })

/* ------------------------------------------------------------------ helpers */
static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* A "VmXxx:" value of /proc/self/status in kB, or -1. */
static long status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static bool expect_vmpin(const char *name, uint64_t want_kb)
{
	long kb = status_kb("VmPin");

	if (kb >= 0 && (uint64_t)kb == want_kb) {
		tap(true, "%s=%" PRIu64 "kB", name, want_kb);
		return true;
	}
	tap_fail(name, "VmPin expected %" PRIu64 " kB, got %ld kB", want_kb, kb);
	return false;
}

static int read_sys_int(const char *path)
{
	char buf[32] = "";
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return -1;
	if (buf[0] == 'Y')
		return 1;
	if (buf[0] == 'N')
		return 0;
	return atoi(buf);
}

static long iotlb_msg(int fd, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 m;

	vlud_iotlb_msg(&m, type, iova, size, uaddr, perm);
	return write(fd, &m, sizeof(m));
}

/* IOTLB_UPDATE inside BATCH_BEGIN/END (always batch: unbatched updates cost ~10 s/GiB on vdpa_sim). */
static long map_range(int fd, uint64_t iova, uint64_t size, const void *va)
{
	long r;
	int e;

	if (iotlb_msg(fd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0) < 0)
		return -1;
	r = iotlb_msg(fd, VHOST_IOTLB_UPDATE, iova, size, (uintptr_t)va, VHOST_ACCESS_RW);
	e = errno;
	if (iotlb_msg(fd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0) < 0 && r >= 0) {
		e = errno;
		r = -1;
	}
	errno = e;
	return r;
}

static long unmap_range(int fd, uint64_t iova, uint64_t size)
{
	return iotlb_msg(fd, VHOST_IOTLB_INVALIDATE, iova, size, 0, 0);
}

/* Open the device as owner with every offered backend feature acked.  Returns fd or -errno. */
static int open_owner(uint64_t *ret_backend)
{
	uint64_t bf = 0;
	int fd = open(devpath, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, VHOST_SET_OWNER, NULL) < 0 || ioctl(fd, VHOST_GET_BACKEND_FEATURES, &bf) < 0 ||
	    ioctl(fd, VHOST_SET_BACKEND_FEATURES, &bf) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (ret_backend)
		*ret_backend = bf;
	return fd;
}

static void ctx_init(struct ctx *c)
{
	*c = (struct ctx){ .vfd = -EBADF, .memfd = -EBADF, .kick = { -EBADF, -EBADF }, .call = { -EBADF, -EBADF } };
}

static void ctx_done(struct ctx *c)
{
	if (c->mem && c->mem != MAP_FAILED)
		munmap(c->mem, RAM_SIZE);
	c->mem = NULL;
	c->vfd = safe_close(c->vfd);
	c->memfd = safe_close(c->memfd);
	close_many(c->kick, 2);
	close_many(c->call, 2);
}

/* Guest RAM (memfd, RAM_SIZE, mapped) and eventfds; fds without CLOEXEC when keep_on_exec. */
static int ctx_alloc(struct ctx *c, bool keep_on_exec)
{
	int cl = keep_on_exec ? 0 : MFD_CLOEXEC;
	int ecl = keep_on_exec ? 0 : EFD_CLOEXEC;

	c->memfd = memfd_create("guest-ram", cl);
	if (c->memfd < 0 || ftruncate(c->memfd, RAM_SIZE) < 0)
		return -errno;
	c->mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return -errno;
	}
	for (int q = 0; q < 2; q++) {
		c->kick[q] = eventfd(0, ecl);
		c->call[q] = eventfd(0, ecl | EFD_NONBLOCK);
		if (c->kick[q] < 0 || c->call[q] < 0)
			return -errno;
	}
	return 0;
}

/* Drive the device to DRIVER_OK with rx=q0 and tx=q1 in guest RAM.  On failure: which step, errno set. */
static const char *device_start(struct ctx *c, uint64_t features)
{
	uint8_t st = 0;

	if (ioctl(c->vfd, VHOST_VDPA_SET_STATUS, &st) < 0)
		return "SET_STATUS(0)";
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	if (ioctl(c->vfd, VHOST_VDPA_SET_STATUS, &st) < 0)
		return "SET_STATUS(ACK|DRIVER)";
	if (ioctl(c->vfd, VHOST_SET_FEATURES, &features) < 0)
		return "SET_FEATURES";
	st |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (ioctl(c->vfd, VHOST_VDPA_SET_STATUS, &st) < 0)
		return "SET_STATUS(FEATURES_OK)";
	for (unsigned q = 0; q < 2; q++) {
		struct vhost_vring_state s = { .index = q, .num = QSZ };
		struct vhost_vring_addr a = {
			.index = q,
			.desc_user_addr = IOVA_BASE + RING_OFF(q),
			.avail_user_addr = IOVA_BASE + RING_OFF(q) + AVAIL_OFF,
			.used_user_addr = IOVA_BASE + RING_OFF(q) + USED_OFF,
		};
		struct vhost_vring_file kf = { .index = q, .fd = c->kick[q] };
		struct vhost_vring_file cf = { .index = q, .fd = c->call[q] };

		memset(c->mem + RING_OFF(q), 0, 0x10000);
		if (ioctl(c->vfd, VHOST_SET_VRING_NUM, &s) < 0)
			return "SET_VRING_NUM";
		s.num = 0;
		if (ioctl(c->vfd, VHOST_SET_VRING_BASE, &s) < 0)
			return "SET_VRING_BASE";
		if (ioctl(c->vfd, VHOST_SET_VRING_ADDR, &a) < 0)
			return "SET_VRING_ADDR";
		if (ioctl(c->vfd, VHOST_SET_VRING_KICK, &kf) < 0)
			return "SET_VRING_KICK";
		if (ioctl(c->vfd, VHOST_SET_VRING_CALL, &cf) < 0)
			return "SET_VRING_CALL";
		s.num = 1;
		if (ioctl(c->vfd, VHOST_VDPA_SET_VRING_ENABLE, &s) < 0)
			return "SET_VRING_ENABLE";
	}
	st |= VIRTIO_CONFIG_S_DRIVER_OK;
	if (ioctl(c->vfd, VHOST_VDPA_SET_STATUS, &st) < 0)
		return "SET_STATUS(DRIVER_OK)";
	c->rx_avail = c->tx_avail = c->rx_used_seen = c->tx_used_seen = 0;
	return NULL;
}

static const uint64_t net_features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM);

/* Map guest RAM and start the device; one TAP line for the whole setup. */
static bool setup_datapath(struct ctx *c, const char *name)
{
	const char *step;
	uint8_t st = 0;

	if (map_range(c->vfd, IOVA_BASE, RAM_SIZE, c->mem) < 0) {
		tap_fail(name, "IOTLB_UPDATE of guest RAM: %s", ename(errno));
		return false;
	}
	step = device_start(c, net_features);
	if (step) {
		tap_fail(name, "%s: %s", step, ename(errno));
		return false;
	}
	if (ioctl(c->vfd, VHOST_VDPA_GET_STATUS, &st) < 0 || st != 0x0f) {
		tap_fail(name, "status after DRIVER_OK is 0x%02x, expected 0x0f", st);
		return false;
	}
	tap(true, "%s", name);
	return true;
}

static uint8_t *rx_buf(struct ctx *c, uint16_t slot) { return c->mem + BUF_OFF(0) + (uint64_t)slot * BUFSZ; }
static uint8_t *tx_buf(struct ctx *c, uint16_t slot) { return c->mem + BUF_OFF(1) + (uint64_t)slot * BUFSZ; }
static struct rused *used_ring(struct ctx *c, int q) { return (void *)(c->mem + RING_OFF(q) + USED_OFF); }

/* Post one RX buffer and one TX frame (virtio-net header + ethernet frame to dst), no kick. */
static void post_pkt(struct ctx *c, const uint8_t dst[6], const char *payload)
{
	struct rdesc *rd = (void *)(c->mem + RING_OFF(0)), *td = (void *)(c->mem + RING_OFF(1));
	struct ravail *ra = (void *)(c->mem + RING_OFF(0) + AVAIL_OFF), *ta = (void *)(c->mem + RING_OFF(1) + AVAIL_OFF);
	uint16_t rs = c->rx_avail % QSZ, ts = c->tx_avail % QSZ;
	uint8_t *rb = rx_buf(c, rs), *tb = tx_buf(c, ts);

	memset(rb, 0xee, BUFSZ);
	rd[rs] = (struct rdesc){ IOVA_BASE + BUF_OFF(0) + (uint64_t)rs * BUFSZ, BUFSZ, VRING_DESC_F_WRITE, 0 };
	ra->ring[rs] = rs;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ra->idx = ++c->rx_avail;

	memset(tb, 0, HDR_LEN + FRAME_LEN);
	memcpy(tb + HDR_LEN, dst, 6);
	memcpy(tb + HDR_LEN + 6, "\x02\x00\x00\x00\x00\x01\x88\xb5", 8);
	snprintf((char *)tb + HDR_LEN + 14, FRAME_LEN - 14, "%s", payload);
	td[ts] = (struct rdesc){ IOVA_BASE + BUF_OFF(1) + (uint64_t)ts * BUFSZ, HDR_LEN + FRAME_LEN, 0, 0 };
	ta->ring[ts] = ts;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ta->idx = ++c->tx_avail;
}

static int kick(struct ctx *c)
{
	uint64_t v = 1;

	if (write(c->kick[0], &v, 8) != 8 || write(c->kick[1], &v, 8) != 8)
		return -errno;
	return 0;
}

static uint16_t used_idx(struct ctx *c, int q)
{
	return __atomic_load_n(&used_ring(c, q)->idx, __ATOMIC_ACQUIRE);
}

/* Wait until rx used idx reaches want (call eventfd, then ring); returns true if it did within ms. */
static bool wait_rx(struct ctx *c, uint16_t want, int ms)
{
	double end = now_ms() + ms;
	uint64_t v;

	for (;;) {
		if ((uint16_t)(used_idx(c, 0) - want) < 0x8000)
			return true;
		double left = end - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = c->call[0], .events = POLLIN };
		if (poll(&p, 1, (int)left + 1) > 0)
			while (read(c->call[0], &v, 8) == 8)
				;
	}
}

/* Compare RX completion n (0-based since setup) with the TX frame it came from. */
static bool check_rx(struct ctx *c, uint16_t n, const char **why)
{
	struct rused_elem e = used_ring(c, 0)->ring[n % QSZ];
	uint8_t *rb, *tb;

	if (e.id != n % QSZ) {
		*why = "RX used element has an unexpected descriptor id";
		return false;
	}
	if (e.len != (uint32_t)(HDR_LEN + FRAME_LEN)) {
		*why = "RX used length differs from the frame length";
		return false;
	}
	rb = rx_buf(c, n % QSZ);
	tb = tx_buf(c, n % QSZ);
	if (memcmp(rb, tb, HDR_LEN + FRAME_LEN)) {
		*why = "RX payload differs from the TX frame";
		return false;
	}
	return true;
}

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* One broadcast packet round trip, one TAP line. */
static bool pkt_roundtrip(struct ctx *c, const char *name, const char *payload)
{
	const char *why = NULL;
	uint16_t n = c->rx_used_seen;
	double t0;

	post_pkt(c, bcast, payload);
	t0 = now_ms();
	if (kick(c) < 0) {
		tap_fail(name, "kick: %s", ename(errno));
		return false;
	}
	if (!wait_rx(c, n + 1, 10000)) {
		tap_fail(name, "no RX completion within 10 s (rx.used.idx=%u tx.used.idx=%u)", used_idx(c, 0),
			 used_idx(c, 1));
		return false;
	}
	c->rx_used_seen++;
	c->tx_used_seen++;
	if (!check_rx(c, n, &why)) {
		tap_fail(name, "%s", why);
		return false;
	}
	printf("# %s: looped back in %.2f ms\n", name, now_ms() - t0);
	tap(true, "%s", name);
	return true;
}

static bool cap_eff_has(int cap)
{
	char line[256];
	bool has = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7)) {
			has = (strtoull(line + 7, NULL, 16) >> cap) & 1;
			break;
		}
	fclose(f);
	return has;
}

/* ------------------------------------------------------------------ features */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int cmd_features(int argc, char **argv)
{
	uint64_t want_bf = STOCK_BACKEND_FEATURES, want_df = STOCK_DEVICE_FEATURES, bf = 0, df = 0, u64;
	uint8_t want_mac[6] = { 0 }, st = 0xaa;
	_cleanup_close_ int fd = -EBADF;
	uint32_t u32 = 0;
	uint16_t u16 = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--backend-features") && i + 1 < argc)
			want_bf = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--device-features") && i + 1 < argc)
			want_df = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--mac") && i + 1 < argc && parse_mac(argv[i + 1], want_mac) == 0)
			i++;
		else {
			fprintf(stderr, "features: bad argument %s\n", argv[i]);
			return 2;
		}
	}

	fd = SYS(open(devpath, O_RDWR | O_CLOEXEC));
	if (!expect_ok("open", fd))
		return 1;
	expect_errno("open-again", SYS(open(devpath, O_RDWR | O_CLOEXEC)), EBUSY);
	expect_ok("GET_STATUS", SYS(ioctl(fd, VHOST_VDPA_GET_STATUS, &st)));
	expect_u64("status-after-open", st, 0);
	expect_ok("SET_OWNER", SYS(ioctl(fd, VHOST_SET_OWNER, NULL)));
	expect_errno("SET_OWNER-again", SYS(ioctl(fd, VHOST_SET_OWNER, NULL)), EBUSY);

	expect_ok("GET_BACKEND_FEATURES", SYS(ioctl(fd, VHOST_GET_BACKEND_FEATURES, &bf)));
	printf("# backend features 0x%" PRIx64 ":", bf);
	for (unsigned b = 0; b < 64; b++)
		if (bf & (1ULL << b))
			printf(" %s", vlud_backend_feature_name(b) ? vlud_backend_feature_name(b) : "?");
	printf("\n");
	expect_u64("backend-features", bf, want_bf);
	u64 = bf | (1ULL << 40);
	expect_errno("SET_BACKEND_FEATURES-unknown-bit", SYS(ioctl(fd, VHOST_SET_BACKEND_FEATURES, &u64)), EOPNOTSUPP);
	expect_ok("SET_BACKEND_FEATURES-offered", SYS(ioctl(fd, VHOST_SET_BACKEND_FEATURES, &bf)));
	u64 = 0;
	if (expect_ok("GET_BACKEND_FEATURES-acked", SYS(ioctl(fd, VHOST_GET_BACKEND_FEATURES, &u64))))
		expect_u64("backend-features-acked", u64, bf);

	expect_ok("GET_FEATURES", SYS(ioctl(fd, VHOST_GET_FEATURES, &df)));
	expect_u64("device-features", df, want_df);
	tap((df & net_features) == net_features, "device-features-VERSION_1+ACCESS_PLATFORM");

	if (expect_ok("GET_DEVICE_ID", SYS(ioctl(fd, VHOST_VDPA_GET_DEVICE_ID, &u32))))
		expect_num("device-id-net", u32, 1);
	if (expect_ok("GET_VRING_NUM", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_NUM, &u16))))
		expect_num("vring-num-max", u16, 256);
	if (expect_ok("GET_VQS_COUNT", SYS(ioctl(fd, VHOST_VDPA_GET_VQS_COUNT, &u32))))
		expect_num("vqs", u32, 3);
	if (expect_ok("GET_GROUP_NUM", SYS(ioctl(fd, VHOST_VDPA_GET_GROUP_NUM, &u32))))
		expect_num("groups", u32, 2);
	if (expect_ok("GET_AS_NUM", SYS(ioctl(fd, VHOST_VDPA_GET_AS_NUM, &u32))))
		expect_num("address-spaces", u32, 2);
	struct vhost_vring_state vs = { .index = 0 };
	if (expect_ok("GET_VRING_GROUP-rx", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_GROUP, &vs))))
		expect_num("vring-group-rx", vs.num, 0);
	vs = (struct vhost_vring_state){ .index = 2 };
	if (expect_ok("GET_VRING_GROUP-cvq", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_GROUP, &vs))))
		expect_num("vring-group-cvq", vs.num, 1);
	vs = (struct vhost_vring_state){ .index = 3 };
	expect_errno("GET_VRING_GROUP-out-of-range", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_GROUP, &vs)), ENOBUFS);
	vs = (struct vhost_vring_state){ .index = 0 };
	/* vdpa_sim has no get_vq_size op in 6.12 */
	expect_errno("GET_VRING_SIZE", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_SIZE, &vs)), EOPNOTSUPP);
	struct vhost_vdpa_iova_range ir = { 0 };
	if (expect_ok("GET_IOVA_RANGE", SYS(ioctl(fd, VHOST_VDPA_GET_IOVA_RANGE, &ir)))) {
		expect_u64("iova-first", ir.first, 0);
		expect_u64("iova-last", ir.last, UINT64_MAX);
	}
	if (expect_ok("GET_CONFIG_SIZE", SYS(ioctl(fd, VHOST_VDPA_GET_CONFIG_SIZE, &u32))))
		expect_num("config-size", u32, sizeof(struct virtio_net_config));
	struct {
		struct vhost_vdpa_config h;
		uint8_t b[sizeof(struct virtio_net_config)];
	} cfg = { .h = { .off = 0, .len = sizeof(struct virtio_net_config) } };
	if (expect_ok("GET_CONFIG", SYS(ioctl(fd, VHOST_VDPA_GET_CONFIG, &cfg)))) {
		struct virtio_net_config nc;
		memcpy(&nc, cfg.h.buf, sizeof(nc));
		if (!memcmp(nc.mac, want_mac, 6))
			tap(true, "config-mac=%02x:%02x:%02x:%02x:%02x:%02x", nc.mac[0], nc.mac[1], nc.mac[2], nc.mac[3],
			    nc.mac[4], nc.mac[5]);
		else
			tap_fail("config-mac", "got %02x:%02x:%02x:%02x:%02x:%02x", nc.mac[0], nc.mac[1], nc.mac[2],
				 nc.mac[3], nc.mac[4], nc.mac[5]);
		expect_u64("config-status-link-up", nc.status & VIRTIO_NET_S_LINK_UP, VIRTIO_NET_S_LINK_UP);
		expect_num("config-mtu", nc.mtu, 1500);
	}
	/* unsupported / owner-only oddities, as the 6.12 source and the prototype rig show them */
	u64 = 0;
	expect_errno("SET_LOG_BASE", SYS(ioctl(fd, VHOST_SET_LOG_BASE, &u64)), ENOTTY);
	expect_errno("RESET_OWNER-NULL", SYS(ioctl(fd, VHOST_RESET_OWNER, NULL)), EFAULT);
	u32 = 0;
	expect_errno("RESET_OWNER-idx0", SYS(ioctl(fd, VHOST_RESET_OWNER, &u32)), ENOTTY);
	if (!(bf & (1ULL << VHOST_BACKEND_F_NEW_OWNER)))
		/* unknown to stock vhost: falls through to the vring path, which reads an index from NULL */
		expect_errno("NEW_OWNER-stock", SYS(ioctl(fd, VHOST_NEW_OWNER, NULL)), EFAULT);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ map-pa / rlimit / map-va */
static int cmd_map_pa(int argc, char **argv)
{
	_cleanup_close_ int fd = -EBADF, mfd = -EBADF;
	uint8_t *mem;
	uint64_t sz = 4 * MiB, sz2 = 2 * MiB;

	expect_num("vdpa_sim-use_va", (uint64_t)read_sys_int("/sys/module/vdpa_sim/parameters/use_va"), 0);
	fd = open_owner(NULL);
	if (fd < 0) {
		tap_fail("open-owner", "%s", ename(-fd));
		return 1;
	}
	mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, sz + sz2) < 0)
		return tap_fail("memfd", "%s", ename(errno)), 1;
	mem = mmap(NULL, sz + sz2, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mem == MAP_FAILED)
		return tap_fail("mmap", "%s", ename(errno)), 1;

	expect_vmpin("before-map", 0);
	/* the pages are not touched yet: the map faults them in and pins them */
	expect_ok("map-4MiB", SYS(map_range(fd, IOVA_BASE, sz, mem)));
	expect_vmpin("after-map-4MiB", sz / KiB);
	tap(status_kb("VmLck") == 0, "VmLck-stays-0");
	expect_ok("map-2MiB-second-range", SYS(map_range(fd, IOVA_BASE + 64 * MiB, sz2, mem + sz)));
	expect_vmpin("after-second-map", (sz + sz2) / KiB);
	/* an overlapping update is refused (-EEXIST inside; write() reports every IOTLB error as EFAULT) */
	expect_errno("map-overlap", SYS(map_range(fd, IOVA_BASE, sz, mem)), EFAULT);
	expect_vmpin("after-refused-map", (sz + sz2) / KiB);
	expect_ok("invalidate-second-range", SYS(unmap_range(fd, IOVA_BASE + 64 * MiB, sz2)));
	expect_vmpin("after-invalidate", sz / KiB);
	/* SET_STATUS(0), SUSPEND and RESUME never unpin */
	uint8_t st = 0;
	expect_ok("SET_STATUS-0", SYS(ioctl(fd, VHOST_VDPA_SET_STATUS, &st)));
	expect_vmpin("after-reset", sz / KiB);

	/* a fork child has its own mm: nothing pinned there, the parent's charge is unchanged */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		long kb = status_kb("VmPin");
		_exit(kb == 0 ? 0 : 1);
	}
	int wst = 0;
	waitpid(pid, &wst, 0);
	tap(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "fork-child-VmPin=0");
	expect_vmpin("parent-after-fork", sz / KiB);

	/* last close unpins everything */
	fd = safe_close(fd);
	expect_vmpin("after-close", 0);

	/* anonymous private memory is pinned too in PA mode */
	fd = open_owner(NULL);
	if (fd < 0)
		return tap_fail("reopen-owner", "%s", ename(-fd)), 1;
	uint8_t *anon = mmap(NULL, sz2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		return tap_fail("mmap-anon", "%s", ename(errno)), 1;
	expect_ok("map-anon-2MiB", SYS(map_range(fd, IOVA_BASE, sz2, anon)));
	expect_vmpin("after-map-anon", sz2 / KiB);
	fd = safe_close(fd);
	expect_vmpin("after-close-anon", 0);
	munmap(anon, sz2);
	munmap(mem, sz + sz2);
	return failures ? 1 : 0;
}

static int cmd_rlimit(int argc, char **argv)
{
	const uint64_t sz = 256 * MiB;
	_cleanup_close_ int fd = -EBADF, mfd = -EBADF;
	struct rlimit rl;
	uint8_t *mem;

	expect_num("vdpa_sim-use_va", (uint64_t)read_sys_int("/sys/module/vdpa_sim/parameters/use_va"), 0);
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return tap_fail("getrlimit", "%s", ename(errno)), 1;
	expect_u64("default-RLIMIT_MEMLOCK", rl.rlim_cur, 8 * MiB);
	tap(cap_eff_has(14), "has-CAP_IPC_LOCK");

	fd = open_owner(NULL);
	if (fd < 0)
		return tap_fail("open-owner", "%s", ename(-fd)), 1;
	mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, sz) < 0)
		return tap_fail("memfd", "%s", ename(errno)), 1;
	mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd, 0);
	if (mem == MAP_FAILED)
		return tap_fail("mmap", "%s", ename(errno)), 1;

	/* -ENOMEM from the pinned_vm check; write() turns it into EFAULT; CAP_IPC_LOCK is no bypass */
	expect_errno("map-256MiB-default-limit", SYS(map_range(fd, IOVA_BASE, sz, mem)), EFAULT);
	expect_vmpin("after-refused-map", 0);

	/* the check is npages + pinned_vm > limit: one page short fails, exactly enough succeeds */
	rl.rlim_cur = sz - 4 * KiB;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < sz)
		rl.rlim_max = sz;
	expect_ok("setrlimit-256MiB-minus-4KiB", SYS(setrlimit(RLIMIT_MEMLOCK, &rl)));
	expect_errno("map-256MiB-limit-one-page-short", SYS(map_range(fd, IOVA_BASE, sz, mem)), EFAULT);
	rl.rlim_cur = sz;
	expect_ok("setrlimit-256MiB", SYS(setrlimit(RLIMIT_MEMLOCK, &rl)));
	double t0 = now_ms();
	expect_ok("map-256MiB-limit-exact", SYS(map_range(fd, IOVA_BASE, sz, mem)));
	printf("# 256 MiB PA map (pin) took %.1f ms\n", now_ms() - t0);
	expect_vmpin("after-map-256MiB", sz / KiB);
	/* one more page is over the limit now */
	expect_errno("map-one-more-page", SYS(map_range(fd, IOVA_BASE + sz, 4 * KiB, mem)), EFAULT);
	t0 = now_ms();
	expect_ok("invalidate-256MiB", SYS(unmap_range(fd, IOVA_BASE, sz)));
	printf("# 256 MiB unmap (unpin) took %.1f ms\n", now_ms() - t0);
	expect_vmpin("after-invalidate", 0);
	rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
	expect_ok("setrlimit-infinity", SYS(setrlimit(RLIMIT_MEMLOCK, &rl)));
	expect_ok("map-256MiB-unlimited", SYS(map_range(fd, IOVA_BASE, sz, mem)));
	expect_vmpin("after-map-unlimited", sz / KiB);
	fd = safe_close(fd);
	expect_vmpin("after-close", 0);
	munmap(mem, sz);
	return failures ? 1 : 0;
}

static int cmd_map_va(int argc, char **argv)
{
	const uint64_t big = 256 * MiB;
	_cleanup_close_ int mfd = -EBADF;
	struct ctx c;
	uint8_t *mem, *anon;
	int r;

	expect_num("vdpa_sim-use_va", (uint64_t)read_sys_int("/sys/module/vdpa_sim/parameters/use_va"), 1);
	ctx_init(&c);
	c.vfd = open_owner(NULL);
	if (c.vfd < 0)
		return tap_fail("open-owner", "%s", ename(-c.vfd)), 1;
	mfd = memfd_create("big", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, big) < 0)
		return tap_fail("memfd", "%s", ename(errno)), 1;
	mem = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mem == MAP_FAILED)
		return tap_fail("mmap", "%s", ename(errno)), 1;
	/* VA mode: no pinning, no rlimit check, 256 MiB maps at the default 8 MiB limit */
	expect_ok("map-256MiB-default-limit", SYS(map_range(c.vfd, 64 * MiB * 1024, big, mem)));
	expect_vmpin("after-map-256MiB", 0);
	/* anonymous private memory is silently skipped, not refused */
	anon = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		return tap_fail("mmap-anon", "%s", ename(errno)), 1;
	expect_ok("map-anon-accepted", SYS(map_range(c.vfd, 32 * MiB * 1024, 2 * MiB, anon)));
	expect_vmpin("after-map-anon", 0);
	expect_ok("invalidate-256MiB", SYS(unmap_range(c.vfd, 64 * MiB * 1024, big)));
	munmap(mem, big);
	munmap(anon, 2 * MiB);

	/* the datapath works on a memfd in VA mode */
	r = ctx_alloc(&c, false);
	if (r < 0)
		return tap_fail("alloc", "%s", ename(-r)), 1;
	if (setup_datapath(&c, "datapath-setup")) {
		expect_vmpin("after-datapath-map", 0);
		pkt_roundtrip(&c, "packet-1", "va mode packet 1");
		pkt_roundtrip(&c, "packet-2", "va mode packet 2");
	}
	ctx_done(&c);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ loopback / suspend */
static int start_ctx(struct ctx *c, bool keep_on_exec)
{
	int r;

	ctx_init(c);
	c->vfd = open_owner(NULL);
	if (c->vfd < 0) {
		tap_fail("open-owner", "%s", ename(-c->vfd));
		return -1;
	}
	if (keep_on_exec) /* deliberately kept across exec (nonowner) */
		fcntl(c->vfd, F_SETFD, 0);
	r = ctx_alloc(c, keep_on_exec);
	if (r < 0) {
		tap_fail("alloc", "%s", ename(-r));
		return -1;
	}
	return setup_datapath(c, "datapath-setup") ? 0 : -1;
}

static int cmd_loopback(int argc, char **argv)
{
	struct ctx c;
	char p[48];

	if (start_ctx(&c, false) < 0) {
		ctx_done(&c);
		return 1;
	}
	for (int i = 1; i <= 3; i++) {
		snprintf(p, sizeof(p), "packet %d hello vdpa_sim", i);
		char n[32];
		snprintf(n, sizeof(n), "packet-%d", i);
		pkt_roundtrip(&c, n, p);
	}
	/* 16 frames with a single kick: the sim handles 5 per run and reschedules itself */
	uint16_t base = c.rx_used_seen;
	for (int i = 0; i < 16; i++) {
		snprintf(p, sizeof(p), "batch frame %d", i);
		post_pkt(&c, bcast, p);
	}
	kick(&c);
	if (wait_rx(&c, base + 16, 10000)) {
		const char *why = NULL;
		int bad = -1;
		for (int i = 0; i < 16 && bad < 0; i++)
			if (!check_rx(&c, base + i, &why))
				bad = i;
		if (bad < 0)
			tap(true, "batch-16-frames");
		else
			tap_fail("batch-16-frames", "frame %d: %s", bad, why);
	} else {
		tap_fail("batch-16-frames", "only %u of 16 completed within 10 s", (uint16_t)(used_idx(&c, 0) - base));
	}
	c.rx_used_seen = base + 16;
	c.tx_used_seen += 16;

	/* a unicast frame to another MAC is dropped by the receive filter: TX completes, RX does not */
	static const uint8_t other[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 };
	uint16_t tx0 = used_idx(&c, 1), rx0 = used_idx(&c, 0);
	post_pkt(&c, other, "not for us");
	kick(&c);
	double end = now_ms() + 2000;
	while (used_idx(&c, 1) == tx0 && now_ms() < end)
		usleep(1000);
	usleep(100 * 1000);
	tap(used_idx(&c, 1) == (uint16_t)(tx0 + 1), "filtered-frame-tx-completes");
	tap(used_idx(&c, 0) == rx0, "filtered-frame-not-received");
	/* the RX buffer posted for it is still available: the next broadcast lands in it */
	c.tx_used_seen++;
	uint16_t rxn = c.rx_used_seen;
	post_pkt(&c, bcast, "after filtered");
	kick(&c);
	if (wait_rx(&c, rxn + 1, 10000)) {
		/* it used the RX slot of the dropped frame, and carries the frame of the next TX slot */
		struct rused_elem e = used_ring(&c, 0)->ring[rxn % QSZ];
		bool ok = e.id == rxn % QSZ && !memcmp(rx_buf(&c, rxn % QSZ), tx_buf(&c, (uint16_t)(c.tx_avail - 1) % QSZ),
						      HDR_LEN + FRAME_LEN);
		tap(ok, "frame-after-filtered-one");
	} else {
		tap_fail("frame-after-filtered-one", "no RX completion");
	}
	ctx_done(&c);
	return failures ? 1 : 0;
}

static int cmd_suspend(int argc, char **argv)
{
	struct ctx c;
	struct vhost_vring_state s;
	uint8_t st;

	if (start_ctx(&c, false) < 0) {
		ctx_done(&c);
		return 1;
	}
	pkt_roundtrip(&c, "packet-before", "before suspend");
	s = (struct vhost_vring_state){ .index = 0, .num = 0 };
	/* running (DRIVER_OK, not suspended): the vring base cannot be set */
	expect_errno("SET_VRING_BASE-running", SYS(ioctl(c.vfd, VHOST_SET_VRING_BASE, &s)), EINVAL);
	expect_ok("SUSPEND", SYS(ioctl(c.vfd, VHOST_VDPA_SUSPEND)));
	for (unsigned q = 0; q < 2; q++) {
		char n[32];
		s = (struct vhost_vring_state){ .index = q };
		snprintf(n, sizeof(n), "GET_VRING_BASE-q%u", q);
		if (expect_ok(n, SYS(ioctl(c.vfd, VHOST_GET_VRING_BASE, &s)))) {
			snprintf(n, sizeof(n), "vring-base-q%u", q);
			expect_num(n, s.num, 1);
		}
	}
	st = 0;
	expect_ok("GET_STATUS-suspended", SYS(ioctl(c.vfd, VHOST_VDPA_GET_STATUS, &st)));
	expect_u64("status-suspended", st, 0x0f);
	s = (struct vhost_vring_state){ .index = 0, .num = 1 };
	expect_ok("SET_VRING_BASE-suspended", SYS(ioctl(c.vfd, VHOST_SET_VRING_BASE, &s)));
	s = (struct vhost_vring_state){ .index = 1, .num = 1 };
	expect_ok("SET_VRING_BASE-suspended-q1", SYS(ioctl(c.vfd, VHOST_SET_VRING_BASE, &s)));

	/* a frame kicked while suspended is not processed ... */
	uint16_t n = c.rx_used_seen;
	post_pkt(&c, bcast, "kicked while suspended");
	kick(&c);
	tap(!wait_rx(&c, n + 1, 500), "no-processing-while-suspended");
	tap(used_idx(&c, 1) == c.tx_used_seen, "no-tx-completion-while-suspended");
	/* ... and RESUME replays the pending kick */
	expect_ok("RESUME", SYS(ioctl(c.vfd, VHOST_VDPA_RESUME)));
	const char *why = NULL;
	if (wait_rx(&c, n + 1, 10000) && check_rx(&c, n, &why))
		tap(true, "pending-kick-replayed-on-resume");
	else
		tap_fail("pending-kick-replayed-on-resume", "%s", why ? why : "no RX completion after RESUME");
	c.rx_used_seen++;
	c.tx_used_seen++;
	pkt_roundtrip(&c, "packet-after-resume", "after resume");

	/* SUSPEND again: bases advanced to 3 */
	expect_ok("SUSPEND-2", SYS(ioctl(c.vfd, VHOST_VDPA_SUSPEND)));
	s = (struct vhost_vring_state){ .index = 0 };
	if (expect_ok("GET_VRING_BASE-q0-2", SYS(ioctl(c.vfd, VHOST_GET_VRING_BASE, &s))))
		expect_num("vring-base-q0-after-3", s.num, 3);
	expect_ok("RESUME-2", SYS(ioctl(c.vfd, VHOST_VDPA_RESUME)));
	pkt_roundtrip(&c, "packet-after-resume-2", "after second resume");

	/* without DRIVER_OK, SUSPEND is a successful no-op */
	st = 0;
	expect_ok("SET_STATUS-0", SYS(ioctl(c.vfd, VHOST_VDPA_SET_STATUS, &st)));
	expect_ok("SUSPEND-after-reset", SYS(ioctl(c.vfd, VHOST_VDPA_SUSPEND)));
	expect_ok("RESUME-after-reset", SYS(ioctl(c.vfd, VHOST_VDPA_RESUME)));
	ctx_done(&c);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ nonowner */
static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char b = 'x';
	struct iovec io = { &b, 1 };
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	return sendmsg(sock, &m, 0) < 0 ? -errno : 0;
}

/* Returns a new fd (owned by the caller, CLOEXEC) or -errno. */
static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char b;
	struct iovec io = { &b, 1 };
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd = -EBADF;

	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) <= 0)
		return -EIO;
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -EPROTO;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

/* What a process that holds the fd but is not the owner (different mm) may do.  Non-destructive part. */
static void nonowner_matrix(int fd, uint8_t want_status)
{
	uint64_t u64 = 0;
	uint32_t u32 = 0;
	uint16_t u16 = 0;
	uint8_t st = 0xaa;
	struct vhost_vring_state s = { .index = 0 };
	static uint8_t page[4096] __attribute__((aligned(4096)));

	expect_vmpin("own-VmPin", 0);
	/* allowed: queries */
	expect_ok("GET_FEATURES", SYS(ioctl(fd, VHOST_GET_FEATURES, &u64)));
	expect_ok("GET_BACKEND_FEATURES", SYS(ioctl(fd, VHOST_GET_BACKEND_FEATURES, &u64)));
	expect_ok("GET_DEVICE_ID", SYS(ioctl(fd, VHOST_VDPA_GET_DEVICE_ID, &u32)));
	expect_ok("GET_VRING_NUM", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_NUM, &u16)));
	expect_ok("GET_VQS_COUNT", SYS(ioctl(fd, VHOST_VDPA_GET_VQS_COUNT, &u32)));
	expect_ok("GET_CONFIG_SIZE", SYS(ioctl(fd, VHOST_VDPA_GET_CONFIG_SIZE, &u32)));
	if (expect_ok("GET_STATUS", SYS(ioctl(fd, VHOST_VDPA_GET_STATUS, &st))))
		expect_u64("status-seen", st, want_status);
	/* denied: vring ioctls (EPERM from the owner check) */
	expect_errno("GET_VRING_BASE", SYS(ioctl(fd, VHOST_GET_VRING_BASE, &s)), EPERM);
	s = (struct vhost_vring_state){ .index = 1, .num = 1 };
	expect_errno("SET_VRING_ENABLE", SYS(ioctl(fd, VHOST_VDPA_SET_VRING_ENABLE, &s)), EPERM);
	s = (struct vhost_vring_state){ .index = 0, .num = QSZ };
	expect_errno("SET_VRING_NUM", SYS(ioctl(fd, VHOST_SET_VRING_NUM, &s)), EPERM);
	s = (struct vhost_vring_state){ .index = 2 };
	expect_errno("GET_VRING_GROUP", SYS(ioctl(fd, VHOST_VDPA_GET_VRING_GROUP, &s)), EPERM);
	struct vhost_vring_file vf = { .index = 0, .fd = -1 };
	expect_errno("SET_VRING_KICK", SYS(ioctl(fd, VHOST_SET_VRING_KICK, &vf)), EPERM);
	/* denied: IOTLB writes (EPERM inside, EFAULT from write()) */
	page[0] = 1;
	expect_errno("IOTLB_UPDATE", SYS(iotlb_msg(fd, VHOST_IOTLB_UPDATE, 0x10000, 4096, (uintptr_t)page, VHOST_ACCESS_RW)),
		     EFAULT);
	expect_errno("IOTLB_INVALIDATE", SYS(iotlb_msg(fd, VHOST_IOTLB_INVALIDATE, IOVA_BASE, 4096, 0, 0)), EFAULT);
	/* ownership cannot be taken */
	expect_errno("SET_OWNER", SYS(ioctl(fd, VHOST_SET_OWNER, NULL)), EBUSY);
	expect_errno("RESET_OWNER", SYS(ioctl(fd, VHOST_RESET_OWNER, NULL)), EPERM);
	/* the node cannot be opened again while any copy is open */
	expect_errno("open-again", SYS(open(devpath, O_RDWR | O_CLOEXEC)), EBUSY);
}

/* Destructive part: SUSPEND/RESUME/SET_BACKEND_FEATURES/SET_STATUS(0) are allowed to a non-owner. */
static void nonowner_destructive(int fd)
{
	uint64_t bf = 0;
	uint8_t st = 0;

	expect_ok("SUSPEND", SYS(ioctl(fd, VHOST_VDPA_SUSPEND)));
	expect_ok("RESUME", SYS(ioctl(fd, VHOST_VDPA_RESUME)));
	ioctl(fd, VHOST_GET_BACKEND_FEATURES, &bf);
	expect_ok("SET_BACKEND_FEATURES-same", SYS(ioctl(fd, VHOST_SET_BACKEND_FEATURES, &bf)));
	expect_ok("SET_STATUS-0", SYS(ioctl(fd, VHOST_VDPA_SET_STATUS, &st)));
	st = 0xaa;
	if (expect_ok("GET_STATUS-after-reset", SYS(ioctl(fd, VHOST_VDPA_GET_STATUS, &st))))
		expect_u64("status-after-reset", st, 0);
}

static int cmd_exec_image(int argc, char **argv)
{
	struct ctx c;
	int use_va;

	/* argv: vfd memfd kick0 kick1 call0 call1 rx_avail tx_avail rx_used_seen tx_used_seen */
	if (argc < 10)
		return 2;
	cmd = "nonowner.exec";
	ctx_init(&c);
	c.vfd = atoi(argv[0]);
	c.memfd = atoi(argv[1]);
	c.kick[0] = atoi(argv[2]);
	c.kick[1] = atoi(argv[3]);
	c.call[0] = atoi(argv[4]);
	c.call[1] = atoi(argv[5]);
	c.rx_avail = atoi(argv[6]);
	c.tx_avail = atoi(argv[7]);
	c.rx_used_seen = atoi(argv[8]);
	c.tx_used_seen = atoi(argv[9]);
	use_va = read_sys_int("/sys/module/vdpa_sim/parameters/use_va");

	nonowner_matrix(c.vfd, 0x0f);
	/* the datapath without any ioctl: re-mmap guest RAM, use the inherited eventfds */
	c.mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c.memfd, 0);
	if (c.mem == MAP_FAILED) {
		c.mem = NULL;
		tap_fail("mmap-ram", "%s", ename(errno));
	} else if (use_va == 0) {
		/* PA mode: the pinned pages stay mapped, the device keeps working for the new image */
		pkt_roundtrip(&c, "datapath-continues-PA", "sent by the exec'ed image");
	} else {
		/* VA mode: the sim works in the owner's (dead) mm, so it stops */
		uint16_t n = c.rx_used_seen;
		post_pkt(&c, bcast, "sent by the exec'ed image");
		kick(&c);
		tap(!wait_rx(&c, n + 1, 1000), "datapath-stops-VA");
	}
	expect_vmpin("VmPin-after-datapath", 0);
	nonowner_destructive(c.vfd);
	/* last close (the old, dead mm is still charged until now), then the node opens again */
	c.vfd = safe_close(c.vfd);
	int fd2 = SYS(open(devpath, O_RDWR | O_CLOEXEC));
	if (expect_ok("open-after-last-close", fd2)) {
		expect_ok("SET_OWNER-fresh-fd", SYS(ioctl(fd2, VHOST_SET_OWNER, NULL)));
		close(fd2);
	}
	ctx_done(&c);
	return failures ? 1 : 0;
}

static int cmd_nonowner(int argc, char **argv, const char *self)
{
	struct ctx c;
	int sp[2], wst = 0;
	uint8_t st;
	pid_t pid;

	if (start_ctx(&c, true) < 0) {
		ctx_done(&c);
		return 1;
	}
	pkt_roundtrip(&c, "packet-owner", "from the owner");
	bool pa = read_sys_int("/sys/module/vdpa_sim/parameters/use_va") == 0;
	expect_vmpin("owner-VmPin", pa ? RAM_SIZE / KiB : 0);

	/* a forked child that receives the fd over SCM_RIGHTS (it drops the one fork gave it) */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return tap_fail("socketpair", "%s", ename(errno)), 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return tap_fail("fork", "%s", ename(errno)), 1;
	if (pid == 0) {
		int fd;
		close(c.vfd);
		close(sp[0]);
		cmd = "nonowner.child";
		failures = 0;
		fd = recv_fd(sp[1]);
		if (fd < 0) {
			tap_fail("recv-fd", "%s", ename(-fd));
			_exit(1);
		}
		nonowner_matrix(fd, 0x0f);
		nonowner_destructive(fd);
		close(fd);
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	close(sp[1]);
	int r = send_fd(sp[0], c.vfd);
	if (r < 0)
		tap_fail("send-fd", "%s", ename(-r));
	close(sp[0]);
	waitpid(pid, &wst, 0);
	if (!WIFEXITED(wst) || (WEXITSTATUS(wst) != 0 && WEXITSTATUS(wst) != 1))
		tap_fail("child-exit", "child died (wait status 0x%x)", wst);
	else if (WEXITSTATUS(wst) == 1)
		failures++; /* its not-ok lines are already printed */

	/* the child's SET_STATUS(0) reset the owner's device; mappings and pins stay (IOTLB_PERSIST) */
	st = 0xaa;
	if (expect_ok("owner-GET_STATUS-after-child", SYS(ioctl(c.vfd, VHOST_VDPA_GET_STATUS, &st))))
		expect_u64("owner-status-reset-by-child", st, 0);
	expect_vmpin("owner-VmPin-after-child", pa ? RAM_SIZE / KiB : 0);
	const char *step = device_start(&c, net_features);
	if (step)
		tap_fail("owner-restart-without-remap", "%s: %s", step, ename(errno));
	else
		tap(true, "owner-restart-without-remap");
	pkt_roundtrip(&c, "packet-owner-after-restart", "owner again");

	/* exec ourselves keeping vfd, memfd and eventfds (created without CLOEXEC) */
	char a[10][16];
	int vals[10] = { c.vfd, c.memfd, c.kick[0], c.kick[1], c.call[0], c.call[1],
			 c.rx_avail, c.tx_avail, c.rx_used_seen, c.tx_used_seen };
	char *nargv[16] = { (char *)self, "-d", (char *)devpath, "exec-image" };
	for (int i = 0; i < 10; i++) {
		snprintf(a[i], sizeof(a[i]), "%d", vals[i]);
		nargv[4 + i] = a[i];
	}
	nargv[14] = NULL;
	if (failures)
		setenv("VDPATEST_FAILED_BEFORE_EXEC", "1", 1);
	fflush(stdout);
	execv("/proc/self/exe", nargv);
	tap_fail("exec", "%s", ename(errno));
	return 1;
}

/* ------------------------------------------------------------------ main */
static void usage(void)
{
	fprintf(stderr, "usage: vdpatest [-d DEV] features|map-pa|map-va|rlimit|loopback|suspend|nonowner [options]\n");
}

int main(int argc, char **argv)
{
	int i = 1, r;
	const char *s = getenv("VLUD_SCENARIO");

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (s && *s)
		suite = s;
	if (i + 1 < argc && !strcmp(argv[i], "-d")) {
		devpath = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		usage();
		return 2;
	}
	cmd = argv[i++];
	argc -= i;
	char **rest = argv + i;
	if (!strcmp(cmd, "features"))
		r = cmd_features(argc, rest);
	else if (!strcmp(cmd, "map-pa"))
		r = cmd_map_pa(argc, rest);
	else if (!strcmp(cmd, "map-va"))
		r = cmd_map_va(argc, rest);
	else if (!strcmp(cmd, "rlimit"))
		r = cmd_rlimit(argc, rest);
	else if (!strcmp(cmd, "loopback"))
		r = cmd_loopback(argc, rest);
	else if (!strcmp(cmd, "suspend"))
		r = cmd_suspend(argc, rest);
	else if (!strcmp(cmd, "nonowner"))
		r = cmd_nonowner(argc, rest, argv[0]);
	else if (!strcmp(cmd, "exec-image")) {
		r = cmd_exec_image(argc, rest);
		if (getenv("VDPATEST_FAILED_BEFORE_EXEC"))
			r = 1;
	} else {
		usage();
		return 2;
	}
	return r;
}
