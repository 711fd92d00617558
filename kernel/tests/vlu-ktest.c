/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-ktest - guest tests of the kernel side of live update (kernel/patches/): VHOST_NEW_OWNER and
 * VHOST_IOTLB_REMAP on a real vhost-vdpa device backed by vdpa_sim_net.  Every assertion is one TAP line.
 *
 *   vlu-ktest features stock|patched DEV   feature bits, and what NEW_OWNER/REMAP return
 *   vlu-ktest exec DEV      owner exec()s; the new image takes over (PA: device keeps running;
 *                           VA: suspend + reset path with IOTLB_REMAP)
 *   vlu-ktest scm DEV       a second process gets the fd by SCM_RIGHTS and becomes owner (PA)
 *   vlu-ktest resume DEV    suspend, exec, new owner, remap (VA), resume: no packet lost
 *   vlu-ktest errors DEV    every error case returns its errno and changes nothing
 *   vlu-ktest cost DEV MiB  PA: time of pinning MiB (IOTLB_UPDATE) vs moving it (VHOST_NEW_OWNER)
 *
 * PA or VA mode is the vdpa_sim module parameter use_va.  The suite name of the TAP lines is
 * $VLUD_SCENARIO (set by the rig) or "ktest-CMD".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "ktlib.h"

#define PIN_KB ((long)(KT_RAM / 1024))
#define BIT(b) (1ULL << (b))

static int use_va;
static char why[512];

static int finish(void)
{
	return kt_failures() ? 1 : 0;
}

/* ioctl returning -1/errno captured together */
#define IOCTL(fd, req, arg) ({ errno = 0; long _r = ioctl(fd, req, arg); _err = errno; _r; })
#define WRITE_IOTLB(fd, ...) ({ errno = 0; long _r = kt_iotlb(fd, __VA_ARGS__); _err = errno; _r; })
static int _err;

static bool is_owner(int vfd)
{
	struct vhost_vring_state s = { .index = 1 };

	return ioctl(vfd, VHOST_GET_VRING_BASE, &s) == 0;
}

/* Set up a running device with traffic: open, map, start, one packet.  Reports each step. */
static bool bring_up(struct kt_dev *d, const char *dev)
{
	int r;

	kt_dev_init(d);
	r = kt_raise_memlock(256 * KT_MiB);
	if (!kt_check(r == 0, "setup-memlock", "setrlimit: %s", strerror(-r)))
		return false;
	r = kt_dev_open(d, dev);
	if (!kt_check(r == 0, "setup-open", "%s: %s", dev, strerror(-r)))
		return false;
	r = kt_map_iotlb(d);
	if (!kt_check(r == 0, "setup-map", "IOTLB_UPDATE of %llu MiB: %s", KT_RAM / KT_MiB, strerror(-r)))
		return false;
	r = kt_dev_start(d, true);
	if (!kt_check(r == 0, "setup-start", "device start: %s", strerror(-r)))
		return false;
	return kt_check(kt_packet(d, why, sizeof(why)) == 0, "setup-packet", "%s", why);
}

/* n packets one after the other; why says which failed */
static int packets(struct kt_dev *d, int n)
{
	char w[400];

	for (int i = 0; i < n; i++) {
		if (kt_packet(d, w, sizeof(w)) != 0) {
			snprintf(why, sizeof(why), "packet %d of %d: %s", i + 1, n, w);
			return -1;
		}
	}
	return 0;
}

static long expect_pin(void)
{
	return use_va ? 0 : PIN_KB;
}

/* ------------------------------------------------------------------------------------------- features */
static int cmd_features(const char *expect, const char *dev)
{
	bool patched = !strcmp(expect, "patched");
	uint64_t bf = 0, f;
	int vfd, r;
	pid_t pid;

	vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (!kt_check(vfd >= 0, "open", "%s: %m", dev))
		return finish();
	kt_check(ioctl(vfd, VHOST_GET_BACKEND_FEATURES, &bf) == 0, "get-backend-features", "%m");
	kt_diag("backend features 0x%llx, vdpa_sim use_va=%d, modules %s", (unsigned long long)bf, use_va, expect);
	if (patched) {
		kt_check(bf & BIT(VHOST_BACKEND_F_NEW_OWNER), "bit-new-owner", "NEW_OWNER (0x9) not offered: 0x%llx",
			 (unsigned long long)bf);
		kt_check(!!(bf & BIT(VHOST_BACKEND_F_IOTLB_REMAP)) == !!use_va, "bit-iotlb-remap",
			 "IOTLB_REMAP (0xa) %s in %s mode: 0x%llx", bf & BIT(VHOST_BACKEND_F_IOTLB_REMAP) ? "offered" : "missing",
			 use_va ? "VA" : "PA", (unsigned long long)bf);
		f = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) | BIT(VHOST_BACKEND_F_NEW_OWNER);
		r = IOCTL(vfd, VHOST_SET_BACKEND_FEATURES, &f);
		kt_errno(r, _err, 0, "set-new-owner-accepted");
		f = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) | BIT(VHOST_BACKEND_F_IOTLB_REMAP);
		r = IOCTL(vfd, VHOST_SET_BACKEND_FEATURES, &f);
		kt_errno(r, _err, use_va ? 0 : EOPNOTSUPP, use_va ? "set-iotlb-remap-accepted" : "set-iotlb-remap-refused-pa");
	} else {
		kt_check(!(bf & (BIT(VHOST_BACKEND_F_NEW_OWNER) | BIT(VHOST_BACKEND_F_IOTLB_REMAP))), "no-liveupdate-bits",
			 "stock modules offer 0x%llx", (unsigned long long)bf);
		f = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) | BIT(VHOST_BACKEND_F_NEW_OWNER);
		r = IOCTL(vfd, VHOST_SET_BACKEND_FEATURES, &f);
		kt_errno(r, _err, EOPNOTSUPP, "set-new-owner-refused");
		f = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) | BIT(VHOST_BACKEND_F_IOTLB_REMAP);
		r = IOCTL(vfd, VHOST_SET_BACKEND_FEATURES, &f);
		kt_errno(r, _err, EOPNOTSUPP, "set-iotlb-remap-refused");
	}
	/* NEW_OWNER before anyone owns the device */
	r = IOCTL(vfd, VHOST_NEW_OWNER, NULL);
	/* stock: vhost_dev_ioctl's owner check fails first (EPERM); patched: no owner yet (EINVAL) */
	kt_errno(r, _err, patched ? EINVAL : EPERM, "new-owner-unowned");
	r = IOCTL(vfd, VHOST_SET_OWNER, NULL);
	kt_errno(r, _err, 0, "set-owner");
	bf = 0;
	ioctl(vfd, VHOST_GET_BACKEND_FEATURES, &bf);
	ioctl(vfd, VHOST_SET_BACKEND_FEATURES, &bf);
	/* by the owner itself: patched EBUSY; stock falls through to the vring ioctls, NULL index -> EFAULT */
	r = IOCTL(vfd, VHOST_NEW_OWNER, NULL);
	kt_errno(r, _err, patched ? EBUSY : EFAULT, "new-owner-by-owner");
	kt_check(is_owner(vfd), "still-owner", "GET_VRING_BASE fails for the owner: %m");
	/* by a forked child (not the owner): patched takes over, stock EPERM */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		r = ioctl(vfd, VHOST_NEW_OWNER, NULL) < 0 ? errno : 0;
		_exit(r & 0xff);
	}
	int ws = 0;
	waitpid(pid, &ws, 0);
	kt_check(WIFEXITED(ws) && WEXITSTATUS(ws) == (patched ? 0 : EPERM), "new-owner-by-child",
		 "child's VHOST_NEW_OWNER: %s, expected %s", WIFEXITED(ws) ? kt_errname(WEXITSTATUS(ws)) : "crashed",
		 patched ? "success" : "EPERM");
	/* patched: the (now dead) child owned it, we do not; stock: we still do */
	kt_check(is_owner(vfd) == !patched, "owner-after-child", "parent %s the owner", is_owner(vfd) ? "is" : "is not");
	if (patched) {
		r = IOCTL(vfd, VHOST_NEW_OWNER, NULL);
		kt_errno(r, _err, 0, "new-owner-back-from-dead-child");
		kt_check(is_owner(vfd), "owner-again", "GET_VRING_BASE: %m");
	}
	/* IOTLB_REMAP: stock turns every IOTLB error into EFAULT (unknown type 7) */
	if (!patched) {
		r = WRITE_IOTLB(vfd, VHOST_IOTLB_REMAP, KT_IOVA, 4096, 0x1000, 0);
		kt_errno(r, _err, EFAULT, "remap-write-efault");
	}
	close(vfd);
	return finish();
}

/* --------------------------------------------------------------------------------------------- exec */
/* Stage 1 of exec/resume: bring up, traffic, (resume: suspend + pending packets), exec. */
static int stage1(const char *cmd, const char *dev, bool suspend_first, unsigned pending)
{
	struct kt_state s = { 0 };
	struct kt_dev d;
	long pin;
	int sfd, r;

	if (!bring_up(&d, dev))
		return finish();
	if (!kt_check(packets(&d, 3) == 0, "traffic-before", "%s", why))
		return finish();
	pin = kt_vmpin_kb(0);
	kt_check(pin == expect_pin(), "vmpin-before-exec", "VmPin %ld kB, expected %ld", pin, expect_pin());
	if (suspend_first) {
		uint16_t used;

		r = IOCTL(d.vfd, VHOST_VDPA_SUSPEND, NULL);
		kt_errno(r, _err, 0, "suspend");
		/* post and kick while suspended: nothing may complete until resume */
		used = kt_rx_used_idx(&d);
		for (unsigned i = 0; i < pending; i++)
			kt_post(&d);
		kt_kick(&d);
		usleep(200 * 1000);
		kt_check(kt_rx_used_idx(&d) == used, "suspended-no-progress", "rx used idx moved %u -> %u while suspended",
			 used, kt_rx_used_idx(&d));
		s.pending = pending;
	}
	if (use_va && !suspend_first) {
		/* path B (RFC): suspend, reset with IOTLB_PERSIST acked: the mappings stay */
		uint8_t st = 0;

		kt_check(d.bf & BIT(VHOST_BACKEND_F_IOTLB_PERSIST), "persist-offered", "bf 0x%llx",
			 (unsigned long long)d.bf);
		r = IOCTL(d.vfd, VHOST_VDPA_SUSPEND, NULL);
		kt_errno(r, _err, 0, "suspend");
		r = IOCTL(d.vfd, VHOST_VDPA_SET_STATUS, &st);
		kt_errno(r, _err, 0, "reset");
	}
	s.pin_kb = pin;
	s.use_va = use_va;
	sfd = kt_state_save(&d, &s);
	if (!kt_check(sfd >= 0, "save-state", "%s", strerror(-sfd)))
		return finish();
	r = kt_exec_self(&d, sfd, cmd);
	kt_check(false, "exec", "exec: %s", strerror(-r));
	return finish();
}

static bool stage2_load(int argc, char **argv, struct kt_dev *d, struct kt_state *s)
{
	int sfd = argc > 3 ? atoi(argv[3]) : -1, r;

	r = sfd >= 0 ? kt_state_load(sfd, s) : -EINVAL;
	if (!kt_check(r == 0, "load-state", "state fd %d: %s", sfd, strerror(-r)))
		return false;
	close(sfd);
	kt_dev_from_state(d, s);
	r = kt_map_ram(d, s->old_addr);
	if (!kt_check(r == 0, "remap-ram", "mmap of the memfd: %s", strerror(-r)))
		return false;
	kt_diag("new image pid %d: memfd mapped at %p (predecessor: 0x%llx)", getpid(), (void *)d->mem,
		(unsigned long long)s->old_addr);
	return true;
}

/* new owner (+ remap in VA mode); reports vmpin before/after */
static bool take_over(struct kt_dev *d, const struct kt_state *s, bool remap)
{
	long pin = kt_vmpin_kb(0);
	int r;

	kt_check(pin == 0, "vmpin-after-exec", "VmPin of the new image %ld kB, expected 0", pin);
	kt_check(!is_owner(d->vfd), "not-owner-after-exec", "the new image passes the owner check before NEW_OWNER");
	r = IOCTL(d->vfd, VHOST_NEW_OWNER, NULL);
	if (!kt_errno(r, _err, 0, "new-owner"))
		return false;
	pin = kt_vmpin_kb(0);
	kt_check(pin == s->pin_kb, "vmpin-after-new-owner", "VmPin %ld kB, expected %ld", pin, s->pin_kb);
	kt_check(is_owner(d->vfd), "owner-after-new-owner", "GET_VRING_BASE: %m");
	r = IOCTL(d->vfd, VHOST_NEW_OWNER, NULL);
	kt_errno(r, _err, EBUSY, "new-owner-twice");
	if (use_va && remap) {
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0);
		if (!kt_errno(r, _err, 0, "iotlb-remap"))
			return false;
	}
	return true;
}

/* after the device runs for the new image: more IOTLB work, then last close */
static void new_owner_checks(struct kt_dev *d, long base_pin)
{
	int mfd = memfd_create("kt-extra", MFD_CLOEXEC), r;
	void *p = MAP_FAILED;
	long pin;

	/* a new mapping by the new owner: pinned and charged to it (PA) */
	if (mfd >= 0 && ftruncate(mfd, KT_MiB) == 0)
		p = mmap(NULL, KT_MiB, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (kt_check(p != MAP_FAILED, "extra-memfd", "%m")) {
		memset(p, 1, KT_MiB);
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_UPDATE, 2 * KT_IOVA, KT_MiB, (uintptr_t)p, VHOST_ACCESS_RW);
		kt_errno(r, _err, 0, "iotlb-update-new-owner");
		pin = kt_vmpin_kb(0);
		kt_check(pin == base_pin + (use_va ? 0 : 1024), "vmpin-extra-map", "VmPin %ld kB, expected %ld", pin,
			 base_pin + (use_va ? 0 : 1024));
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_INVALIDATE, 2 * KT_IOVA, KT_MiB, 0, 0);
		kt_errno(r, _err, 0, "iotlb-invalidate-new-owner");
		pin = kt_vmpin_kb(0);
		kt_check(pin == base_pin, "vmpin-extra-unmap", "VmPin %ld kB, expected %ld", pin, base_pin);
		munmap(p, KT_MiB);
	}
	if (mfd >= 0)
		close(mfd);
	{
		struct vhost_vring_state s = { .index = 1 };

		r = IOCTL(d->vfd, VHOST_GET_VRING_BASE, &s);
		kt_check(r == 0 && s.num == d->tx_avail, "vring-base", "GET_VRING_BASE(tx) r=%d num=%u, driver avail %u",
			 r, s.num, d->tx_avail);
	}
	kt_dev_close(d);
	pin = kt_vmpin_kb(0);
	kt_check(pin == 0, "vmpin-after-last-close", "VmPin %ld kB after the last close, expected 0", pin);
}

static int cmd_exec(int argc, char **argv)
{
	struct kt_state s;
	struct kt_dev d;
	int r;

	if (argc < 3 || strcmp(argv[2], "--stage2"))
		return stage1("exec", argv[2], false, 0);
	if (!stage2_load(argc, argv, &d, &s))
		return finish();
	if (!use_va) {
		/* PA: the device kept running across exec with the old (dead) mm's pins */
		if (!kt_check(kt_packet(&d, why, sizeof(why)) == 0, "traffic-after-exec-before-new-owner", "%s", why))
			return finish();
	}
	if (!take_over(&d, &s, !use_va))
		return finish();
	if (use_va) {
		uint8_t st = 0;

		/* path B: rings re-created from the saved indices; the device still has the predecessor's
		 * addresses (unmapped in this image), so DRIVER_OK is refused until IOTLB_REMAP */
		r = kt_dev_start(&d, false);
		kt_status(d.vfd, &st);
		kt_check(r == -EINVAL && !(st & VIRTIO_CONFIG_S_DRIVER_OK), "driver-ok-refused-before-remap",
			 "start returned %s, status 0x%02x", kt_errname(-r), st);
		kt_post(&d);
		kt_kick(&d);
		kt_check(kt_wait_rx(&d, 1, 300, why, sizeof(why)) != 0 && kt_rx_used_idx(&d) == d.rx_used_seen,
			 "no-traffic-before-remap", "a packet looped back before IOTLB_REMAP");
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d.mem, 0);
		if (!kt_errno(r, _err, 0, "iotlb-remap"))
			return finish();
		st |= VIRTIO_CONFIG_S_DRIVER_OK;
		r = IOCTL(d.vfd, VHOST_VDPA_SET_STATUS, &st);
		if (!kt_errno(r, _err, 0, "driver-ok-after-remap"))
			return finish();
		kt_kick(&d);
		if (!kt_check(kt_wait_rx(&d, 1, KT_TIMEOUT_MS, why, sizeof(why)) == 0, "traffic-after-remap", "%s", why))
			return finish();
	}
	kt_check(packets(&d, 3) == 0, "traffic-after-new-owner", "%s", why);
	new_owner_checks(&d, s.pin_kb);
	return finish();
}

/* ------------------------------------------------------------------------------------------- resume */
#define RESUME_PENDING 3

static int cmd_resume(int argc, char **argv)
{
	struct kt_state s;
	struct kt_dev d;
	uint8_t st = 0;
	int r;

	if (argc < 3 || strcmp(argv[2], "--stage2"))
		return stage1("resume", argv[2], true, RESUME_PENDING);
	if (!stage2_load(argc, argv, &d, &s))
		return finish();
	kt_check(kt_rx_used_idx(&d) == d.rx_used_seen, "still-suspended-after-exec",
		 "rx used idx %u, last seen %u", kt_rx_used_idx(&d), d.rx_used_seen);
	if (!take_over(&d, &s, false))
		return finish();
	if (use_va) {
		r = IOCTL(d.vfd, VHOST_VDPA_RESUME, NULL);
		kt_errno(r, _err, EINVAL, "resume-refused-before-remap");
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d.mem, 0);
		if (!kt_errno(r, _err, 0, "iotlb-remap"))
			return finish();
	}
	r = IOCTL(d.vfd, VHOST_VDPA_RESUME, NULL);
	if (!kt_errno(r, _err, 0, "resume"))
		return finish();
	kt_status(d.vfd, &st);
	kt_check(st & VIRTIO_CONFIG_S_DRIVER_OK, "driver-ok-kept", "status 0x%02x", st);
	/* the packets posted before exec arrive, in order, none lost, no ring re-initialisation */
	kt_check(kt_wait_rx(&d, s.pending, KT_TIMEOUT_MS, why, sizeof(why)) == 0, "pending-packets-delivered", "%s", why);
	kt_check(packets(&d, 5) == 0, "traffic-after-resume", "%s", why);
	new_owner_checks(&d, s.pin_kb);
	return finish();
}

/* ---------------------------------------------------------------------------------------------- scm */
struct scm_msg {
	struct kt_state s;
	long pin_child_before, pin_child_after;
	int result;
};

static int scm_child(int sock)
{
	struct scm_msg m;
	struct kt_dev d;
	int fds[6], r;
	long pin;

	r = kt_recv_fds(sock, &m, sizeof(m), fds, 6);
	if (r < 0)
		return 10;
	m.s.vfd = fds[0];
	m.s.memfd = fds[1];
	m.s.kick[0] = fds[2];
	m.s.kick[1] = fds[3];
	m.s.call[0] = fds[4];
	m.s.call[1] = fds[5];
	kt_dev_from_state(&d, &m.s);
	if (kt_map_ram(&d, 0) < 0)
		return 11;
	m.pin_child_before = kt_vmpin_kb(0);
	kt_raise_memlock(256 * KT_MiB);
	r = ioctl(d.vfd, VHOST_NEW_OWNER, NULL) < 0 ? errno : 0;
	m.result = r;
	m.pin_child_after = kt_vmpin_kb(0);
	if (r == 0 && m.s.use_va) {
		/* VA: the parent suspended the device; remap to our address, then resume */
		r = kt_iotlb(d.vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d.mem, 0) < 0 ? errno : 0;
		kt_errno(r ? -1 : 0, r, 0, "child-iotlb-remap");
		r = ioctl(d.vfd, VHOST_VDPA_RESUME, NULL) < 0 ? errno : 0;
		kt_errno(r ? -1 : 0, r, 0, "child-resume");
	}
	if (m.result == 0) {
		kt_check(kt_packet(&d, why, sizeof(why)) == 0, "child-traffic", "%s", why);
		kt_check(is_owner(d.vfd), "child-is-owner", "GET_VRING_BASE: %m");
	}
	/* report, then wait until the parent dropped its copy before the last close */
	kt_send_fds(sock, &m, sizeof(m), NULL, 0);
	if (read(sock, &r, sizeof(r)) != sizeof(r))
		return 12;
	kt_dev_close(&d);
	pin = kt_vmpin_kb(0);
	kt_check(pin == 0, "child-vmpin-after-last-close", "VmPin %ld kB, expected 0", pin);
	return 0;
}

static int cmd_scm(int argc, char **argv)
{
	struct scm_msg m = { 0 };
	struct kt_dev d;
	int sv[2], ws = 0, r, go = 1;
	pid_t pid;
	long pin;

	if (argc > 3 && !strcmp(argv[2], "--child"))
		return scm_child(atoi(argv[3]));
	if (!bring_up(&d, argv[2]))
		return finish();
	pin = kt_vmpin_kb(0);
	kt_check(pin == expect_pin(), "parent-vmpin-before", "VmPin %ld kB, expected %ld", pin, expect_pin());
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return kt_check(false, "socketpair", "%m"), finish();
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* a fresh process image (exec), which gets the device only by SCM_RIGHTS */
		char a[16];
		int fl = fcntl(sv[1], F_GETFD);

		fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC);
		snprintf(a, sizeof(a), "%d", sv[1]);
		execl("/proc/self/exe", "vlu-ktest", "scm", "--child", a, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	{
		int fds[6] = { d.vfd, d.memfd, d.kick[0], d.kick[1], d.call[0], d.call[1] };
		struct kt_state s = { 0 };

		s.use_va = use_va;
		if (use_va) {
			/* VA: the worker must not run with the child's mm before it remapped */
			r = IOCTL(d.vfd, VHOST_VDPA_SUSPEND, NULL);
			kt_errno(r, _err, 0, "parent-suspend");
		}
		r = kt_state_save(&d, &s);
		if (r >= 0)
			close(r);
		m.s = s;
		r = kt_send_fds(sv[0], &m, sizeof(m), fds, 6);
		kt_check(r == 0, "send-fds", "%s", strerror(-r));
	}
	r = kt_recv_fds(sv[0], &m, sizeof(m), NULL, 0);
	if (kt_check(r == 0, "child-report", "%s", strerror(-r))) {
		kt_check(m.pin_child_before == 0, "child-vmpin-before", "VmPin %ld kB, expected 0", m.pin_child_before);
		kt_errno(m.result ? -1 : 0, m.result, 0, "child-new-owner");
		kt_check(m.pin_child_after == expect_pin(), "child-vmpin-after", "VmPin %ld kB, expected %ld",
			 m.pin_child_after, expect_pin());
		pin = kt_vmpin_kb(0);
		kt_check(pin == 0, "parent-vmpin-after", "VmPin %ld kB, expected 0 (moved to the child)", pin);
		kt_check(!is_owner(d.vfd), "parent-not-owner", "the parent still passes the owner check");
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_UPDATE, 3 * KT_IOVA, 4096, (uintptr_t)d.mem, VHOST_ACCESS_RW);
		kt_errno(r, _err, EFAULT, "parent-iotlb-refused");
	}
	kt_dev_close(&d);	/* drop the parent's copies: the child holds the last reference */
	if (write(sv[0], &go, sizeof(go)) != sizeof(go))
		kt_check(false, "release-child", "%m");
	waitpid(pid, &ws, 0);
	kt_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child-exit", "child status 0x%x", ws);
	pin = kt_vmpin_kb(0);
	kt_check(pin == 0, "parent-vmpin-end", "VmPin %ld kB, expected 0", pin);
	close(sv[0]);
	return finish();
}

/* ------------------------------------------------------------------------------------------- errors */
/* Fork a child that runs fn(d) and exits with its return value (an errno or 0). */
static int in_child(struct kt_dev *d, int (*fn)(struct kt_dev *, long), long arg)
{
	int ws = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(fn(d, arg) & 0xff);
	waitpid(pid, &ws, 0);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 255;
}

static int child_new_owner_with_limit(struct kt_dev *d, long limit_bytes)
{
	struct rlimit rl = { limit_bytes, limit_bytes };
	long before = kt_vmpin_kb(0), after;
	int r;

	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return 200;
	r = ioctl(d->vfd, VHOST_NEW_OWNER, NULL) < 0 ? errno : 0;
	after = kt_vmpin_kb(0);
	if (r == ENOMEM && (before != 0 || after != 0))
		return 201;	/* nothing may have moved */
	if (r == 0 && after != PIN_KB)
		return 202;
	return r;
}

static int child_new_owner(struct kt_dev *d, long unused)
{
	return ioctl(d->vfd, VHOST_NEW_OWNER, NULL) < 0 ? errno : 0;
}

static int child_remap(struct kt_dev *d, long unused)
{
	return kt_iotlb(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0) < 0 ? errno : 0;
}

static void still_works(struct kt_dev *d, const char *name)
{
	char n[96];
	long pin = kt_vmpin_kb(0);

	snprintf(n, sizeof(n), "%s-unchanged", name);
	if (kt_packet(d, why, sizeof(why)) != 0)
		kt_check(false, n, "datapath broken: %s", why);
	else
		kt_check(pin == expect_pin() && is_owner(d->vfd), n, "VmPin %ld kB (expected %ld), owner %d", pin,
			 expect_pin(), is_owner(d->vfd));
}

static void errors_pa(struct kt_dev *d)
{
	uint64_t f;
	int r;

	/* ENOMEM: the child's limit is one page short of the charge; nothing changes */
	r = in_child(d, child_new_owner_with_limit, KT_RAM - 4096);
	kt_errno(r ? -1 : 0, r, ENOMEM, "new-owner-enomem");
	still_works(d, "new-owner-enomem");
	/* exactly the charge fits (pinned_vm of the child is 0) */
	r = in_child(d, child_new_owner_with_limit, KT_RAM);
	kt_errno(r ? -1 : 0, r, 0, "new-owner-limit-exact");
	kt_check(kt_vmpin_kb(0) == 0 && !is_owner(d->vfd), "old-owner-uncharged", "VmPin %ld kB owner %d",
		 kt_vmpin_kb(0), is_owner(d->vfd));
	/* take it back from the dead child's mm */
	r = IOCTL(d->vfd, VHOST_NEW_OWNER, NULL);
	kt_errno(r, _err, 0, "new-owner-back");
	still_works(d, "new-owner-back");
	/* IOTLB_REMAP is refused in PA mode: the entries hold physical addresses */
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, EOPNOTSUPP, "remap-pa-refused");
	still_works(d, "remap-pa-refused");
	f = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) | BIT(VHOST_BACKEND_F_IOTLB_REMAP);
	r = IOCTL(d->vfd, VHOST_SET_BACKEND_FEATURES, &f);
	kt_errno(r, _err, EOPNOTSUPP, "set-iotlb-remap-pa-refused");
	ioctl(d->vfd, VHOST_SET_BACKEND_FEATURES, &d->bf);
}

static void errors_va(struct kt_dev *d)
{
	void *alias = MAP_FAILED, *anon = MAP_FAILED, *other = MAP_FAILED, *shifted = MAP_FAILED;
	void *off = MAP_FAILED, *ro = MAP_FAILED;
	int ofd = memfd_create("kt-other", MFD_CLOEXEC), r;

	/* NEW_OWNER on a running VA device would let the worker use stale addresses in the new mm */
	r = in_child(d, child_new_owner, 0);
	kt_errno(r ? -1 : 0, r, EINVAL, "new-owner-va-running");
	still_works(d, "new-owner-va-running");
	/* a non-owner may not remap */
	r = in_child(d, child_remap, 0);
	kt_errno(r ? -1 : 0, r, EPERM, "remap-not-owner");
	/* no mapping at that IOVA */
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, 4 * KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, ENOENT, "remap-enoent");
	/* partial matches, perm, size */
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM / 2, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, EINVAL, "remap-partial-size");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA + 4096, KT_RAM - 4096, (uintptr_t)d->mem + 4096, 0);
	kt_errno(r, _err, EINVAL, "remap-partial-start");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA - 4096, KT_RAM + 4096, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, EINVAL, "remap-superset");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, VHOST_ACCESS_RW);
	kt_errno(r, _err, EINVAL, "remap-perm");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, 0, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, EINVAL, "remap-size-zero");
	/* the new address must map the same file at the same offset */
	anon = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ofd >= 0 && ftruncate(ofd, KT_RAM) == 0)
		other = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
	/* same memfd, file offset one page further (a shared file mapping may extend past EOF) */
	off = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 4096);
	ro = mmap(NULL, KT_RAM, PROT_READ, MAP_SHARED, d->memfd, 0);
	alias = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	shifted = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	kt_check(anon != MAP_FAILED && other != MAP_FAILED && off != MAP_FAILED && ro != MAP_FAILED &&
		 alias != MAP_FAILED && shifted != MAP_FAILED, "remap-setup", "mmap: %m");
	if (anon != MAP_FAILED) {
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)anon, 0);
		kt_errno(r, _err, EINVAL, "remap-anonymous");
	}
	if (other != MAP_FAILED) {
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)other, 0);
		kt_errno(r, _err, EINVAL, "remap-other-file");
	}
	if (off != MAP_FAILED) {
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)off, 0);
		kt_errno(r, _err, EINVAL, "remap-wrong-offset");
	}
	if (ro != MAP_FAILED) {
		/* the right file and offset, but the device could not write through it */
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)ro, 0);
		kt_errno(r, _err, EINVAL, "remap-readonly-vma");
	}
	if (alias != MAP_FAILED) {
		/* only part of the range mapped: the last page is a hole */
		munmap((uint8_t *)alias + KT_RAM - 4096, 4096);
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)alias, 0);
		kt_errno(r, _err, EINVAL, "remap-hole");
		munmap(alias, KT_RAM);
		alias = mmap(NULL, KT_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	}
	still_works(d, "remap-errors");
	/* valid remaps while running: to an alias of the same memfd, alone then inside a batch; the old
	 * mapping is removed, so packets can only loop through the new address */
	if (alias != MAP_FAILED && shifted != MAP_FAILED) {
		void *old = d->mem;

		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)alias, 0);
		kt_errno(r, _err, 0, "remap-alias");
		d->mem = alias;
		munmap(old, KT_RAM);
		kt_check(kt_packet(d, why, sizeof(why)) == 0, "traffic-after-remap", "%s", why);
		kt_iotlb(d->vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0);
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)shifted, 0);
		kt_errno(r, _err, 0, "remap-in-batch");
		r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0);
		kt_errno(r, _err, 0, "batch-end");
		d->mem = shifted;
		munmap(alias, KT_RAM);
		alias = MAP_FAILED;
		shifted = MAP_FAILED;
		kt_check(kt_packet(d, why, sizeof(why)) == 0, "traffic-after-batch-remap", "%s", why);
	}
	if (anon != MAP_FAILED)
		munmap(anon, KT_RAM);
	if (other != MAP_FAILED)
		munmap(other, KT_RAM);
	if (off != MAP_FAILED)
		munmap(off, KT_RAM);
	if (ro != MAP_FAILED)
		munmap(ro, KT_RAM);
	if (alias != MAP_FAILED)
		munmap(alias, KT_RAM);
	if (shifted != MAP_FAILED)
		munmap(shifted, KT_RAM);
	if (ofd >= 0)
		close(ofd);
	/* suspended: a child may now take the device; then it is gone and we take it back.  A second
	 * mapping shows that every mapping must be remapped (or unmapped) before the device resumes. */
	ofd = memfd_create("kt-second", MFD_CLOEXEC);
	other = MAP_FAILED;
	if (ofd >= 0 && ftruncate(ofd, KT_MiB) == 0)
		other = mmap(NULL, KT_MiB, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_UPDATE, 2 * KT_IOVA, KT_MiB, (uintptr_t)other, VHOST_ACCESS_RW);
	kt_errno(r, _err, 0, "second-mapping");
	r = IOCTL(d->vfd, VHOST_VDPA_SUSPEND, NULL);
	kt_errno(r, _err, 0, "suspend");
	r = in_child(d, child_new_owner, 0);
	kt_errno(r ? -1 : 0, r, 0, "new-owner-va-suspended");
	r = IOCTL(d->vfd, VHOST_NEW_OWNER, NULL);
	kt_errno(r, _err, 0, "new-owner-back");
	r = IOCTL(d->vfd, VHOST_VDPA_RESUME, NULL);
	kt_errno(r, _err, EINVAL, "resume-refused-stale");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0);
	kt_errno(r, _err, 0, "remap-first");
	r = IOCTL(d->vfd, VHOST_VDPA_RESUME, NULL);
	kt_errno(r, _err, EINVAL, "resume-refused-one-stale");
	r = WRITE_IOTLB(d->vfd, VHOST_IOTLB_INVALIDATE, 2 * KT_IOVA, KT_MiB, 0, 0);
	kt_errno(r, _err, 0, "unmap-second");
	r = IOCTL(d->vfd, VHOST_VDPA_RESUME, NULL);
	kt_errno(r, _err, 0, "resume");
	still_works(d, "after-handback");
	if (other != MAP_FAILED)
		munmap(other, KT_MiB);
	if (ofd >= 0)
		close(ofd);
}

static int cmd_errors(const char *dev)
{
	struct kt_dev d;
	int vfd, r;

	/* EINVAL: nobody owns the device yet */
	vfd = open(dev, O_RDWR | O_CLOEXEC);
	if (kt_check(vfd >= 0, "open-unowned", "%s: %m", dev)) {
		r = IOCTL(vfd, VHOST_NEW_OWNER, NULL);
		kt_errno(r, _err, EINVAL, "new-owner-unowned");
		close(vfd);
	}
	if (!bring_up(&d, dev))
		return finish();
	/* EBUSY: the caller already is the owner */
	r = IOCTL(d.vfd, VHOST_NEW_OWNER, NULL);
	kt_errno(r, _err, EBUSY, "new-owner-ebusy");
	still_works(&d, "new-owner-ebusy");
	if (use_va)
		errors_va(&d);
	else
		errors_pa(&d);
	kt_dev_close(&d);
	kt_check(kt_vmpin_kb(0) == 0, "vmpin-after-close", "VmPin %ld kB", kt_vmpin_kb(0));
	return finish();
}

/* --------------------------------------------------------------------------------------------- cost */
static double ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmd_cost(const char *dev, const char *mib_s)
{
	uint64_t size = strtoull(mib_s, NULL, 10) * KT_MiB, bf = 0;
	double t0, t_pin, t_move, t_back, t_unpin;
	int vfd, mfd, r, p2c[2], c2p[2];
	uint8_t *mem;
	char c = 0;
	pid_t pid;
	long pin;

	if (!kt_check(size > 0 && !use_va, "mode", "needs PA mode (use_va=0) and a size, got use_va=%d size %s",
		      use_va, mib_s))
		return finish();
	kt_raise_memlock(4 * size);
	vfd = open(dev, O_RDWR | O_CLOEXEC);
	mfd = memfd_create("kt-cost", MFD_CLOEXEC);
	if (!kt_check(vfd >= 0 && mfd >= 0 && ftruncate(mfd, size) == 0, "setup", "%m"))
		return finish();
	ioctl(vfd, VHOST_SET_OWNER, NULL);
	ioctl(vfd, VHOST_GET_BACKEND_FEATURES, &bf);
	ioctl(vfd, VHOST_SET_BACKEND_FEATURES, &bf);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (!kt_check(mem != MAP_FAILED, "mmap", "%m"))
		return finish();
	for (uint64_t o = 0; o < size; o += 4096)
		mem[o] = 1;
	t0 = ms_now();
	kt_iotlb(vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0);
	r = WRITE_IOTLB(vfd, VHOST_IOTLB_UPDATE, KT_IOVA, size, (uintptr_t)mem, VHOST_ACCESS_RW);
	kt_iotlb(vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0);
	t_pin = ms_now() - t0;
	kt_errno(r, _err, 0, "pin");
	pin = kt_vmpin_kb(0);
	kt_check(pin == (long)(size / 1024), "vmpin", "VmPin %ld kB, expected %llu", pin,
		 (unsigned long long)(size / 1024));
	/* a child takes the device over (timed there), then we take it back (timed here) */
	if (pipe2(p2c, O_CLOEXEC) < 0 || pipe2(c2p, O_CLOEXEC) < 0)
		return kt_check(false, "pipe", "%m"), finish();
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		double t = ms_now();

		r = ioctl(vfd, VHOST_NEW_OWNER, NULL) < 0 ? errno : 0;
		t = ms_now() - t;
		if (write(c2p[1], &t, sizeof(t)) != sizeof(t) || read(p2c[0], &c, 1) != 1)
			_exit(99);
		_exit(r);
	}
	if (read(c2p[0], &t_move, sizeof(t_move)) != sizeof(t_move))
		t_move = -1;
	pin = kt_vmpin_kb(0);
	kt_check(pin == 0 && t_move >= 0, "moved", "parent VmPin %ld kB after the child's NEW_OWNER", pin);
	if (write(p2c[1], &c, 1) != 1)
		kt_check(false, "release-child", "%m");
	{
		int ws = 0;

		waitpid(pid, &ws, 0);
		kt_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child-new-owner", "child status 0x%x", ws);
	}
	t0 = ms_now();
	r = IOCTL(vfd, VHOST_NEW_OWNER, NULL);
	t_back = ms_now() - t0;
	kt_errno(r, _err, 0, "new-owner-back");
	t0 = ms_now();
	r = WRITE_IOTLB(vfd, VHOST_IOTLB_INVALIDATE, KT_IOVA, size, 0, 0);
	t_unpin = ms_now() - t0;
	kt_errno(r, _err, 0, "unpin");
	kt_diag("COST size=%lluMiB pin=%.2fms new_owner(child)=%.3fms new_owner(back)=%.3fms unpin=%.2fms",
		(unsigned long long)(size / KT_MiB), t_pin, t_move, t_back, t_unpin);
	/* the point of the series: moving the charge is much cheaper than unpin + pin */
	kt_check(t_move < (t_pin + t_unpin) / 10 && t_back < (t_pin + t_unpin) / 10, "new-owner-cheaper",
		 "NEW_OWNER %.3f/%.3f ms vs unpin+pin %.2f ms", t_move, t_back, t_pin + t_unpin);
	close(vfd);
	munmap(mem, size);
	close(mfd);
	kt_check(kt_vmpin_kb(0) == 0, "vmpin-end", "VmPin %ld kB", kt_vmpin_kb(0));
	return finish();
}

int main(int argc, char **argv)
{
	char suite[64];

	if (argc < 3) {
		fprintf(stderr, "usage: vlu-ktest features stock|patched DEV | exec|scm|resume|errors DEV\n");
		return 2;
	}
	snprintf(suite, sizeof(suite), "ktest-%s", argv[1]);
	kt_init(suite);
	signal(SIGPIPE, SIG_IGN);
	use_va = kt_module_use_va();
	if (use_va < 0) {
		kt_check(false, "mode", "cannot read /sys/module/vdpa_sim/parameters/use_va");
		return 1;
	}
	if (!strcmp(argv[1], "features") && argc > 3)
		return cmd_features(argv[2], argv[3]);
	if (!strcmp(argv[1], "exec"))
		return cmd_exec(argc, argv);
	if (!strcmp(argv[1], "resume"))
		return cmd_resume(argc, argv);
	if (!strcmp(argv[1], "scm"))
		return cmd_scm(argc, argv);
	if (!strcmp(argv[1], "errors"))
		return cmd_errors(argv[2]);
	if (!strcmp(argv[1], "cost") && argc > 3)
		return cmd_cost(argv[2], argv[3]);
	fprintf(stderr, "vlu-ktest: unknown command %s\n", argv[1]);
	return 2;
}
