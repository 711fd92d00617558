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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
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

/* VHOST_NEW_OWNER (v3) take-over: 0 or -1 with errno */
static int take(int vfd)
{
	return vlud_new_owner(vfd, 0, -1, NULL);
}

/* the owner consents to a hand-over to pid (0: withdraw): 0 or -1 with errno */
static int arm(int vfd, pid_t pid)
{
	int pfd = pid ? (int)syscall(SYS_pidfd_open, pid, 0) : -1, r, e;

	if (pid && pfd < 0)
		return -1;
	r = vlud_new_owner(vfd, VHOST_NEW_OWNER_F_ARM, pfd, NULL);
	e = errno;
	if (pfd >= 0)
		close(pfd);
	errno = e;
	return r;
}

/* Fork a child that waits until the parent armed a hand-over to it (when arm_it), then runs fn(d, arg) and
 * exits with its return value (an errno or 0).  Returns that value (255: crashed). */
static int run_child(struct kt_dev *d, int (*fn)(struct kt_dev *, long), long arg, bool arm_it)
{
	int ws = 0, go[2];
	char c = 0;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) < 0)
		return 254;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(253);
		_exit(fn(d, arg) & 0xff);
	}
	close(go[0]);
	if (arm_it && arm(d->vfd, pid) < 0)
		kt_check(false, "arm", "arming a hand-over to %d: %s", (int)pid, kt_errname(errno));
	if (write(go[1], &c, 1) != 1)
		kt_check(false, "release-child", "%m");
	close(go[1]);
	waitpid(pid, &ws, 0);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 255;
}

static int child_take(struct kt_dev *d, long unused)
{
	return take(d->vfd) < 0 ? errno : 0;
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
	r = IOCTL(vfd, VLUD_NEW_OWNER_V2, NULL);
	/* stock: vhost_dev_ioctl's owner check fails first (EPERM); patched: no owner yet (EINVAL) */
	kt_errno(r, _err, patched ? EINVAL : EPERM, "new-owner-unowned");
	r = take(vfd);
	kt_errno(r, errno, patched ? EINVAL : EPERM, "new-owner-v3-unowned");
	{
		struct vhost_new_owner q = { 0 };
		int ours = vlud_new_owner_probe(vfd, &q);

		/* the probe by behaviour: ours answers a query even before SET_OWNER? no: EINVAL, no owner */
		kt_check(!ours, "probe-unowned", "probe said supported on an unowned device");
	}
	r = IOCTL(vfd, VHOST_SET_OWNER, NULL);
	kt_errno(r, _err, 0, "set-owner");
	bf = 0;
	ioctl(vfd, VHOST_GET_BACKEND_FEATURES, &bf);
	ioctl(vfd, VHOST_SET_BACKEND_FEATURES, &bf);
	/* by the owner itself: patched EBUSY; stock falls through to the vring ioctls, NULL index -> EFAULT */
	r = IOCTL(vfd, VLUD_NEW_OWNER_V2, NULL);
	kt_errno(r, _err, patched ? EBUSY : EFAULT, "new-owner-by-owner");
	r = take(vfd);
	kt_check(patched ? r < 0 && errno == EBUSY : r < 0, "new-owner-v3-by-owner", "r %d %s", r, kt_errname(errno));
	{
		struct vhost_new_owner q = { 0 };
		int ours = vlud_new_owner_probe(vfd, &q);

		kt_check(ours == patched, "probe", "probe %d out_flags 0x%x pinned %llu", ours, q.out_flags,
			 (unsigned long long)q.pinned_pages);
		if (patched)
			kt_check(!!(q.out_flags & VHOST_NEW_OWNER_OUT_REMAP) == !!use_va && q.pinned_pages == 0 &&
				 !(q.out_flags & VHOST_NEW_OWNER_OUT_CONSENT), "probe-out", "out_flags 0x%x pinned %llu",
				 q.out_flags, (unsigned long long)q.pinned_pages);
	}
	if (patched) {
		struct vhost_new_owner a = { .size = sizeof(a), .flags = 1U << 7 };
		struct { struct vhost_new_owner n; uint64_t more; } big = { .n = { .size = sizeof(big) }, .more = 0 };

		r = IOCTL(vfd, VLUD_NEW_OWNER, &a);
		kt_errno(r, _err, EINVAL, "unknown-flag-einval");
		a.flags = VHOST_NEW_OWNER_F_QUERY | VHOST_NEW_OWNER_F_ARM;
		r = IOCTL(vfd, VLUD_NEW_OWNER, &a);
		kt_errno(r, _err, EINVAL, "both-flags-einval");
		a.flags = VHOST_NEW_OWNER_F_QUERY;
		a.reserved = 1;
		r = IOCTL(vfd, VLUD_NEW_OWNER, &a);
		kt_errno(r, _err, EINVAL, "reserved-einval");
		a.reserved = 0;
		a.size = 16;
		r = IOCTL(vfd, VLUD_NEW_OWNER, &a);
		kt_errno(r, _err, EINVAL, "short-size-einval");
		/* a bigger struct from a newer user space: fine while the unknown tail is zero */
		big.n.flags = VHOST_NEW_OWNER_F_QUERY;
		r = IOCTL(vfd, VLUD_NEW_OWNER, &big);
		kt_errno(r, _err, 0, "bigger-size-zero-tail");
		big.more = 1;
		r = IOCTL(vfd, VLUD_NEW_OWNER, &big);
		kt_errno(r, _err, EINVAL, "bigger-size-nonzero-tail-einval");
		/* F_ARM with an fd that is not a pidfd */
		r = vlud_new_owner(vfd, VHOST_NEW_OWNER_F_ARM, vfd, NULL);
		kt_errno(r, errno, EBADF, "arm-not-a-pidfd-ebadf");
	}
	kt_check(is_owner(vfd), "still-owner", "GET_VRING_BASE fails for the owner: %m");
	{
		struct kt_dev cd;

		kt_dev_init(&cd);
		cd.vfd = vfd;
		/* by a forked child (not the owner) without consent: patched EPERM, stock EPERM */
		r = run_child(&cd, child_take, 0, false);
		kt_errno(r ? -1 : 0, r, EPERM, "new-owner-by-child-no-consent");
		kt_check(is_owner(vfd), "owner-after-refusal", "parent lost the device");
		/* with consent (patched: armed for the child's pid): taken over; stock: arming fails, EPERM */
		r = run_child(&cd, child_take, 0, patched);
		kt_errno(r ? -1 : 0, r, patched ? 0 : EPERM, "new-owner-by-child");
		cd.vfd = -1;
	}
	(void)pid;
	/* patched: the (now dead) child owned it, we do not; stock: we still do */
	kt_check(is_owner(vfd) == !patched, "owner-after-child", "parent %s the owner", is_owner(vfd) ? "is" : "is not");
	if (patched) {
		r = take(vfd);
		kt_errno(r, errno, 0, "new-owner-back-from-dead-child");
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
	{
		struct vhost_new_owner q = { 0 };

		/* the predecessor exec()ed: its mm has no users, which is consent */
		kt_check(vlud_new_owner_probe(d->vfd, &q) && (q.out_flags & VHOST_NEW_OWNER_OUT_CONSENT) &&
			 q.pinned_pages * 4 == (uint64_t)s->pin_kb, "query-before-new-owner",
			 "out_flags 0x%x pinned %llu pages, predecessor VmPin %ld kB", q.out_flags,
			 (unsigned long long)q.pinned_pages, s->pin_kb);
	}
	if (s->pin_kb > 0) {
		/* the predecessor exec()ed (dead mm): a limit one page short of its charge is ENOMEM, nothing moves */
		struct rlimit rl, low;
		struct vhost_new_owner q = { 0 };

		getrlimit(RLIMIT_MEMLOCK, &rl);
		low = rl;
		low.rlim_cur = (rlim_t)s->pin_kb * 1024 - 4096;
		setrlimit(RLIMIT_MEMLOCK, &low);
		r = vlud_new_owner(d->vfd, 0, -1, &q);
		kt_errno(r, errno, ENOMEM, "new-owner-enomem-dead-mm");
		kt_check(q.pinned_pages * 4 == (uint64_t)s->pin_kb && kt_vmpin_kb(0) == 0 && !is_owner(d->vfd),
			 "enomem-dead-mm-nothing-changed", "pinned %llu pages, VmPin %ld kB, owner %d",
			 (unsigned long long)q.pinned_pages, kt_vmpin_kb(0), is_owner(d->vfd));
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	r = take(d->vfd);
	if (!kt_errno(r, errno, 0, "new-owner"))
		return false;
	pin = kt_vmpin_kb(0);
	kt_check(pin == s->pin_kb, "vmpin-after-new-owner", "VmPin %ld kB, expected %ld", pin, s->pin_kb);
	kt_check(is_owner(d->vfd), "owner-after-new-owner", "GET_VRING_BASE: %m");
	r = take(d->vfd);
	kt_errno(r, errno, EBUSY, "new-owner-twice");
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
	r = take(d.vfd) < 0 ? errno : 0;
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
		/* a live owner hands over: it consents to the child's pid */
		r = arm(d.vfd, pid);
		kt_errno(r, errno, 0, "parent-arm");
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
static int in_child(struct kt_dev *d, int (*fn)(struct kt_dev *, long), long arg)
{
	return run_child(d, fn, arg, true);
}

static int child_new_owner_with_limit(struct kt_dev *d, long limit_bytes)
{
	struct rlimit rl = { limit_bytes, limit_bytes };
	long before = kt_vmpin_kb(0), after;
	int r;

	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return 200;
	r = take(d->vfd) < 0 ? errno : 0;
	after = kt_vmpin_kb(0);
	if (r == ENOMEM && (before != 0 || after != 0))
		return 201;	/* nothing may have moved */
	if (r == 0 && after != PIN_KB)
		return 202;
	return r;
}

static int child_new_owner(struct kt_dev *d, long unused)
{
	return take(d->vfd) < 0 ? errno : 0;
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
	r = take(d->vfd);
	kt_errno(r, errno, 0, "new-owner-back");
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
	r = take(d->vfd);
	kt_errno(r, errno, 0, "new-owner-back");
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
		r = take(vfd);
		kt_errno(r, errno, EINVAL, "new-owner-unowned");
		close(vfd);
	}
	if (!bring_up(&d, dev))
		return finish();
	/* EBUSY: the caller already is the owner */
	r = take(d.vfd);
	kt_errno(r, errno, EBUSY, "new-owner-ebusy");
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
		double t;

		if (read(p2c[0], &c, 1) != 1)	/* the parent armed the hand-over */
			_exit(98);
		t = ms_now();
		r = take(vfd) < 0 ? errno : 0;
		t = ms_now() - t;
		if (write(c2p[1], &t, sizeof(t)) != sizeof(t) || read(p2c[0], &c, 1) != 1)
			_exit(99);
		_exit(r);
	}
	r = arm(vfd, pid);
	kt_errno(r, errno, 0, "arm");
	if (write(p2c[1], &c, 1) != 1)
		kt_check(false, "start-child", "%m");
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
	r = take(vfd);
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

/* ----------------------------------------------------------------------------------------- handover */
/* P (this process) and its forked peer C hand the device back and forth; C maps the RAM elsewhere and puts
 * a decoy at P's address.  Ring state travels with each message. */
enum { OP_TAKE = 1, OP_GIVE, OP_QUERY, OP_PACKETS, OP_DECOY, OP_EXIT, OP_HOSTILE_STATUS };
struct hmsg {
	int op, arg, result;
	long pin;
	uint32_t out_flags;
	uint64_t pinned;
	uint16_t rx_avail, tx_avail, rx_used_seen, tx_used_seen;
	uint32_t seq;
	char why[200];
};
#define DECOY 0xa5
#define EXTRA_IOVA (3 * KT_IOVA)

static void ring_out(const struct kt_dev *d, struct hmsg *m)
{
	m->rx_avail = d->rx_avail;
	m->tx_avail = d->tx_avail;
	m->rx_used_seen = d->rx_used_seen;
	m->tx_used_seen = d->tx_used_seen;
	m->seq = d->seq;
}

static void ring_in(struct kt_dev *d, const struct hmsg *m)
{
	d->rx_avail = m->rx_avail;
	d->tx_avail = m->tx_avail;
	d->rx_used_seen = m->rx_used_seen;
	d->tx_used_seen = m->tx_used_seen;
	d->seq = m->seq;
}

/* the new owner's part of a hand-over: take, drop EXTRA (stale in VA), remap, resume */
static int do_take(struct kt_dev *d, char *w, size_t wl)
{
	if (take(d->vfd) < 0)
		return snprintf(w, wl, "NEW_OWNER: %s", kt_errname(errno)), errno;
	kt_iotlb(d->vfd, VHOST_IOTLB_INVALIDATE, EXTRA_IOVA, KT_MiB, 0, 0);
	if (use_va) {
		if (kt_iotlb(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0) < 0)
			return snprintf(w, wl, "REMAP: %s", kt_errname(errno)), 100;
		if (ioctl(d->vfd, VHOST_VDPA_RESUME) < 0)
			return snprintf(w, wl, "RESUME: %s", kt_errname(errno)), 101;
	}
	return 0;
}

/* the owner's part: suspend (VA), consent to pid */
static int do_give(struct kt_dev *d, pid_t to)
{
	if (use_va && ioctl(d->vfd, VHOST_VDPA_SUSPEND) < 0)
		return errno;
	return arm(d->vfd, to) < 0 ? errno : 0;
}

static bool decoy_intact(const uint8_t *p)
{
	for (uint64_t i = 0; i < KT_RAM; i += 64)
		if (p[i] != DECOY)
			return false;
	return true;
}

static int peer(struct kt_dev *d, int sock, pid_t parent)
{
	uint8_t *old = d->mem;
	struct hmsg m;

	/* our own mapping of the RAM elsewhere, a decoy where P has it */
	d->mem = NULL;
	if (kt_map_ram(d, (uintptr_t)old) < 0 || munmap(old, KT_RAM) < 0 ||
	    mmap(old, KT_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != old)
		return 10;
	memset(old, DECOY, KT_RAM);
	while (read(sock, &m, sizeof(m)) == sizeof(m)) {
		m.why[0] = 0;
		m.result = 0;
		ring_in(d, &m);
		switch (m.op) {
		case OP_TAKE:
			m.result = do_take(d, m.why, sizeof(m.why));
			if (!m.result && m.arg && kt_packet(d, m.why, sizeof(m.why)) != 0)
				m.result = 102;
			break;
		case OP_GIVE:
			m.result = do_give(d, parent);
			break;
		case OP_QUERY: {
			struct vhost_new_owner q = { 0 };

			m.result = vlud_new_owner(d->vfd, VHOST_NEW_OWNER_F_QUERY, -1, &q) < 0 ? errno : 0;
			m.out_flags = q.out_flags;
			m.pinned = q.pinned_pages;
			break;
		}
		case OP_PACKETS:
			for (int i = 0; i < m.arg && !m.result; i++)
				if (kt_packet(d, m.why, sizeof(m.why)) != 0)
					m.result = 103;
			break;
		case OP_DECOY:
			m.result = decoy_intact(old) ? 0 : 104;
			break;
		case OP_HOSTILE_STATUS: {
			uint8_t st = (uint8_t)m.arg;

			m.result = ioctl(d->vfd, VHOST_VDPA_SET_STATUS, &st) < 0 ? errno : 0;
			break;
		}
		case OP_EXIT:
			if (use_va && is_owner(d->vfd))
				ioctl(d->vfd, VHOST_VDPA_SUSPEND);
			return 0;
		}
		m.pin = kt_vmpin_kb(0);
		ring_out(d, &m);
		if (write(sock, &m, sizeof(m)) != sizeof(m))
			return 11;
	}
	return 0;
}

static int hsock = -1;
static pid_t hpeer;

static struct hmsg call_peer(struct kt_dev *d, int op, int arg)
{
	struct hmsg m = { .op = op, .arg = arg };

	ring_out(d, &m);
	if (write(hsock, &m, sizeof(m)) != sizeof(m) || read(hsock, &m, sizeof(m)) != sizeof(m)) {
		memset(&m, 0, sizeof(m));
		m.result = 999;
		snprintf(m.why, sizeof(m.why), "peer gone");
		return m;
	}
	if (op != OP_QUERY && op != OP_DECOY && op != OP_HOSTILE_STATUS)
		ring_in(d, &m);
	return m;
}

/* every call a previous owner holding a copy of the fd could make: each must fail (errno listed) */
static void hostile(struct kt_dev *d, const char *who)
{
	struct vhost_vring_state vs = { .index = 0, .num = 0 };
	struct vhost_vring_addr va = { .index = 0 };
	struct vhost_vring_file vf = { .index = 0, .fd = -1 };
	uint64_t f = d->bf;
	char n[96];
	int bad = 0, r;
	uint8_t st;

	for (int v = 0; v < 256; v++) {
		st = (uint8_t)v;
		r = IOCTL(d->vfd, VHOST_VDPA_SET_STATUS, &st);
		if (!(r < 0 && _err == EPERM))
			bad++;
	}
	snprintf(n, sizeof(n), "%s-set-status-all-256", who);
	kt_check(bad == 0, n, "%d of 256 status values not refused with EPERM", bad);
#define H(name, call, want) do { r = (call); snprintf(n, sizeof(n), "%s-%s", who, name); \
		kt_errno(r, _err, want, n); } while (0)
	H("suspend", IOCTL(d->vfd, VHOST_VDPA_SUSPEND, NULL), EPERM);
	H("resume", IOCTL(d->vfd, VHOST_VDPA_RESUME, NULL), EPERM);
	H("set-backend-features", IOCTL(d->vfd, VHOST_SET_BACKEND_FEATURES, &f), EPERM);
	H("iotlb-update", WRITE_IOTLB(d->vfd, VHOST_IOTLB_UPDATE, 4 * KT_IOVA, 4096, (uintptr_t)d->mem,
				      VHOST_ACCESS_RW), EFAULT);
	H("iotlb-invalidate", WRITE_IOTLB(d->vfd, VHOST_IOTLB_INVALIDATE, KT_IOVA, KT_RAM, 0, 0), EFAULT);
	H("iotlb-batch-begin", WRITE_IOTLB(d->vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0), EFAULT);
	H("iotlb-batch-end", WRITE_IOTLB(d->vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0), EFAULT);
	H("iotlb-remap", WRITE_IOTLB(d->vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d->mem, 0),
	  EPERM);
	H("set-vring-num", IOCTL(d->vfd, VHOST_SET_VRING_NUM, &vs), EPERM);
	H("set-vring-base", IOCTL(d->vfd, VHOST_SET_VRING_BASE, &vs), EPERM);
	H("set-vring-addr", IOCTL(d->vfd, VHOST_SET_VRING_ADDR, &va), EPERM);
	H("set-vring-kick", IOCTL(d->vfd, VHOST_SET_VRING_KICK, &vf), EPERM);
	H("set-vring-call", IOCTL(d->vfd, VHOST_SET_VRING_CALL, &vf), EPERM);
	vs.num = 0;
	H("set-vring-enable", IOCTL(d->vfd, VHOST_VDPA_SET_VRING_ENABLE, &vs), EPERM);
	{
		struct { struct vhost_vdpa_config c; uint8_t b[8]; } cfg = { .c = { .off = 0, .len = 6 } };
		int efd = -1;

		H("set-config", IOCTL(d->vfd, VHOST_VDPA_SET_CONFIG, &cfg), EPERM);
		H("set-config-call", IOCTL(d->vfd, VHOST_VDPA_SET_CONFIG_CALL, &efd), EPERM);
	}
	H("new-owner-no-consent", ({ long _r = take(d->vfd); _err = errno; _r; }), EPERM);
	H("arm-not-owner", ({ long _r = arm(d->vfd, getpid()); _err = errno; _r; }), EPERM);
#undef H
}

struct loop_arg {
	int vfd;
	void *p;
	volatile int stop;
	long ok, err;
};

static void *iotlb_loop(void *a_)
{
	struct loop_arg *a = a_;

	while (!a->stop) {
		if (kt_iotlb(a->vfd, VHOST_IOTLB_UPDATE, EXTRA_IOVA, KT_MiB, (uintptr_t)a->p, VHOST_ACCESS_RW) < 0 ||
		    kt_iotlb(a->vfd, VHOST_IOTLB_INVALIDATE, EXTRA_IOVA, KT_MiB, 0, 0) < 0) {
			a->err = errno;
			break;
		}
		__atomic_add_fetch(&a->ok, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* ring state a forked child hands back (MAP_SHARED) */
static struct hmsg *child_ring;

static int child_take_and_go(struct kt_dev *d, long drop_uid)
{
	char w[200];
	int r;

	if (drop_uid && setresuid((uid_t)drop_uid, (uid_t)drop_uid, (uid_t)drop_uid) < 0)
		return 120;
	r = do_take(d, w, sizeof(w));
	if (r)
		return r;
	if (kt_packet(d, w, sizeof(w)) != 0)
		return 121;
	if (child_ring)
		ring_out(d, child_ring);
	if (kt_vmpin_kb(0) != expect_pin())
		return 122;
	if (use_va)
		ioctl(d->vfd, VHOST_VDPA_SUSPEND);
	return 0;
}

static bool p_take(struct kt_dev *d, const char *name)
{
	char w[200];
	int r = do_take(d, w, sizeof(w));

	if (!kt_check(r == 0, name, "%s", w))
		return false;
	return kt_check(kt_packet(d, w, sizeof(w)) == 0, name, "packet: %s", w);
}

static int cmd_handover(const char *dev)
{
	struct kt_dev d;
	struct hmsg m;
	int sv[2], r, ws = 0, bad;
	long pin;
	char n[64];

	if (!bring_up(&d, dev))
		return finish();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return kt_check(false, "socketpair", "%m"), finish();
	fflush(stdout);
	hpeer = fork();
	if (hpeer == 0) {
		close(sv[0]);
		_exit(peer(&d, sv[1], getppid()));
	}
	close(sv[1]);
	hsock = sv[0];

	/* ---- consent */
	m = call_peer(&d, OP_QUERY, 0);
	kt_check(m.result == 0 && !(m.out_flags & VHOST_NEW_OWNER_OUT_CONSENT) &&
		 m.pinned * 4 == (uint64_t)expect_pin(), "query-no-consent", "r %d out 0x%x pinned %llu", m.result,
		 m.out_flags, (unsigned long long)m.pinned);
	if (use_va)
		ioctl(d.vfd, VHOST_VDPA_SUSPEND);
	m = call_peer(&d, OP_TAKE, 1);
	kt_errno(m.result ? -1 : 0, m.result, EPERM, "no-consent-refused");
	r = arm(d.vfd, 1);	/* consent for another process (init) */
	kt_errno(r, errno, 0, "arm-other-pid");
	m = call_peer(&d, OP_TAKE, 1);
	kt_errno(m.result ? -1 : 0, m.result, EPERM, "consent-for-other-refused");
	kt_check(is_owner(d.vfd), "still-owner-after-refusals", "lost the device");
	r = arm(d.vfd, hpeer);
	kt_errno(r, errno, 0, "arm-peer");
	m = call_peer(&d, OP_QUERY, 0);
	kt_check(m.result == 0 && (m.out_flags & VHOST_NEW_OWNER_OUT_CONSENT), "query-consent", "out 0x%x",
		 m.out_flags);
	m = call_peer(&d, OP_TAKE, 1);
	kt_check(m.result == 0, "armed-take", "%d %s", m.result, m.why);
	kt_check(m.pin == expect_pin() && kt_vmpin_kb(0) == 0, "armed-take-vmpin", "peer %ld kB, us %ld kB", m.pin,
		 kt_vmpin_kb(0));
	m = call_peer(&d, OP_TAKE, 0);
	kt_errno(m.result ? -1 : 0, m.result, EBUSY, "consent-used-up");

	/* ---- a hostile previous owner */
	hostile(&d, "hostile");
	m = call_peer(&d, OP_PACKETS, 3);
	kt_check(m.result == 0, "hostile-datapath-unaffected", "%s", m.why);
	m = call_peer(&d, OP_DECOY, 0);
	kt_check(m.result == 0, "hostile-decoy-untouched", "decoy at the old address changed");
	kt_check(m.pin == expect_pin() && kt_vmpin_kb(0) == 0, "hostile-vmpin", "peer %ld kB, us %ld kB", m.pin,
		 kt_vmpin_kb(0));

	/* ---- the peer hands back; in VA we REMAP inside a batch: RESUME refused until BATCH_END */
	m = call_peer(&d, OP_GIVE, 0);
	kt_check(m.result == 0, "give-back", "%s", kt_errname(m.result));
	r = take(d.vfd);
	kt_errno(r, errno, 0, "take-back");
	if (use_va) {
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0);
		kt_errno(r, _err, 0, "batch-begin");
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM, (uintptr_t)d.mem, 0);
		kt_errno(r, _err, 0, "remap-in-batch");
		r = IOCTL(d.vfd, VHOST_VDPA_RESUME, NULL);
		kt_errno(r, _err, EINVAL, "resume-refused-before-batch-end");
		{
			uint8_t st = 0;

			kt_status(d.vfd, &st);
			r = IOCTL(d.vfd, VHOST_VDPA_SET_STATUS, &st);
			kt_errno(r, _err, EINVAL, "same-status-refused-before-batch-end");
		}
		r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0);
		kt_errno(r, _err, 0, "batch-end");
		r = IOCTL(d.vfd, VHOST_VDPA_RESUME, NULL);
		kt_errno(r, _err, 0, "resume-after-batch-end");
	}
	kt_check(packets(&d, 2) == 0, "traffic-after-take-back", "%s", why);
	/* our own batch left open: the peer (armed) is refused with EBUSY until we end it */
	if (use_va)
		ioctl(d.vfd, VHOST_VDPA_SUSPEND);
	r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0);
	kt_errno(r, _err, 0, "open-batch");
	arm(d.vfd, hpeer);
	m = call_peer(&d, OP_TAKE, 1);
	kt_errno(m.result ? -1 : 0, m.result, EBUSY, "new-owner-refused-batch-open");
	r = WRITE_IOTLB(d.vfd, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0);
	kt_errno(r, _err, 0, "end-batch");
	m = call_peer(&d, OP_TAKE, 1);
	kt_check(m.result == 0, "take-after-batch-end", "%d %s", m.result, m.why);
	/* a suspended device's status written by the (hostile) previous owner: EPERM, still running */
	hostile(&d, "hostile2");
	m = call_peer(&d, OP_PACKETS, 2);
	kt_check(m.result == 0, "hostile2-datapath-unaffected", "%s", m.why);

	/* ---- 100 ping-pong hand-overs between two live processes, VmPin on both sides each time */
	bad = 0;
	for (int i = 0; i < 100; i++) {
		bool peer_owns = (i % 2) == 0;
		long pp, pu;

		if (peer_owns) {
			m = call_peer(&d, OP_GIVE, 0);
			if (m.result || take(d.vfd) < 0 || (use_va && (kt_iotlb(d.vfd, VHOST_IOTLB_REMAP, KT_IOVA, KT_RAM,
				(uintptr_t)d.mem, 0) < 0 || ioctl(d.vfd, VHOST_VDPA_RESUME) < 0)) ||
			    kt_packet(&d, why, sizeof(why)) != 0) {
				kt_diag("ping-pong %d (to us): %s / %s", i, kt_errname(errno), m.why);
				bad++;
				break;
			}
		} else {
			if (do_give(&d, hpeer)) {
				bad++;
				break;
			}
			m = call_peer(&d, OP_TAKE, 1);
			if (m.result) {
				kt_diag("ping-pong %d (to peer): %d %s", i, m.result, m.why);
				bad++;
				break;
			}
		}
		pu = kt_vmpin_kb(0);
		pp = kt_vmpin_kb(hpeer);
		if (pu != (peer_owns ? expect_pin() : 0) || pp != (peer_owns ? 0 : expect_pin())) {
			kt_diag("ping-pong %d: VmPin us %ld peer %ld", i, pu, pp);
			bad++;
		}
	}
	kt_check(bad == 0, "ping-pong-100", "%d bad hand-overs", bad);
	/* after 100 (even) the peer owns it */
	m = call_peer(&d, OP_DECOY, 0);
	kt_check(m.result == 0, "ping-pong-decoy-untouched", "decoy changed");

	/* ---- NEW_OWNER while the old owner loops IOTLB updates (peer owns: take it back first) */
	m = call_peer(&d, OP_GIVE, 0);
	if (kt_check(m.result == 0 && p_take(&d, "take-for-loop"), "take-for-loop-ok", "%s", m.why)) {
		int efd = memfd_create("kt-loop", MFD_CLOEXEC);
		struct loop_arg la = { .vfd = d.vfd };
		pthread_t th;

		if (efd >= 0 && ftruncate(efd, KT_MiB) == 0)
			la.p = mmap(NULL, KT_MiB, PROT_READ | PROT_WRITE, MAP_SHARED, efd, 0);
		if (use_va)
			ioctl(d.vfd, VHOST_VDPA_SUSPEND);
		arm(d.vfd, hpeer);
		pthread_create(&th, NULL, iotlb_loop, &la);
		/* the take must meet the loop running: wait for its first rounds (a loaded TCG guest may not
		 * schedule the thread within a fixed sleep) */
		for (int w = 0; w < 1000 && __atomic_load_n(&la.ok, __ATOMIC_ACQUIRE) < 10 && !la.err; w++)
			usleep(10 * 1000);
		m = call_peer(&d, OP_TAKE, 1);
		usleep(50 * 1000);
		la.stop = 1;
		pthread_join(th, NULL);
		kt_check(m.result == 0, "take-during-iotlb-loop", "%d %s", m.result, m.why);
		kt_check(la.ok > 0 && la.err == EFAULT, "loop-stopped-by-take", "%ld loops, then %s", la.ok,
			 kt_errname((int)la.err));
		pin = kt_vmpin_kb(0);
		kt_check(pin == 0 && m.pin == expect_pin(), "loop-vmpin", "us %ld kB, peer %ld kB", pin, m.pin);
		if (la.p && la.p != MAP_FAILED)
			munmap(la.p, KT_MiB);
		if (efd >= 0)
			close(efd);
	}

	/* ---- two NEW_OWNER at once: armed one wins, the other gets EPERM */
	m = call_peer(&d, OP_GIVE, 0);
	if (kt_check(m.result == 0 && p_take(&d, "take-for-race"), "take-for-race-ok", "%s", m.why)) {
		int go[2], res[2];
		pid_t c[2];

		if (use_va)
			ioctl(d.vfd, VHOST_VDPA_SUSPEND);
		if (pipe2(go, O_CLOEXEC) < 0)
			return finish();
		fflush(stdout);
		for (int k = 0; k < 2; k++) {
			c[k] = fork();
			if (c[k] == 0) {
				char ch;

				close(go[1]);
				if (read(go[0], &ch, 1) < 0)
					_exit(250);
				r = take(d.vfd) < 0 ? errno : 0;
				usleep(500 * 1000);	/* alive: the loser must not see a dead owner */
				_exit(r & 0xff);
			}
		}
		close(go[0]);
		arm(d.vfd, c[0]);
		close(go[1]);	/* both start at once */
		for (int k = 0; k < 2; k++) {
			waitpid(c[k], &ws, 0);
			res[k] = WIFEXITED(ws) ? WEXITSTATUS(ws) : 255;
		}
		kt_check(res[0] == 0 && res[1] == EPERM, "two-at-once", "armed child %s, other child %s",
			 kt_errname(res[0]), kt_errname(res[1]));
		/* the winner exited: its mm has no users, we take it back */
		kt_check(p_take(&d, "take-back-from-dead-winner"), "race-take-back", "-");
	}

	/* ---- ASID 1 mappings are counted (PA) */
	if (!use_va && (d.bf & BIT(VHOST_BACKEND_F_IOTLB_ASID))) {
		int efd = memfd_create("kt-asid1", MFD_CLOEXEC);
		void *p = MAP_FAILED;
		struct vhost_msg_v2 a;

		if (efd >= 0 && ftruncate(efd, KT_MiB) == 0)
			p = mmap(NULL, KT_MiB, PROT_READ | PROT_WRITE, MAP_SHARED, efd, 0);
		vlud_iotlb_msg(&a, VHOST_IOTLB_UPDATE, EXTRA_IOVA, KT_MiB, (uintptr_t)p, VHOST_ACCESS_RW);
		a.asid = 1;
		r = write(d.vfd, &a, sizeof(a)) == sizeof(a) ? 0 : -1;
		kt_errno(r, errno, 0, "asid1-map");
		kt_check(kt_vmpin_kb(0) == PIN_KB + 1024, "asid1-charged", "VmPin %ld kB", kt_vmpin_kb(0));
		arm(d.vfd, hpeer);
		m = call_peer(&d, OP_QUERY, 0);
		kt_check(m.pinned == (PIN_KB + 1024) / 4, "asid1-query", "pinned %llu pages",
			 (unsigned long long)m.pinned);
		/* the peer's take drops EXTRA in ASID 0 only: the ASID 1 mapping moves with the charge */
		m = call_peer(&d, OP_TAKE, 1);
		kt_check(m.result == 0 && m.pin == PIN_KB + 1024 && kt_vmpin_kb(0) == 0, "asid1-moved",
			 "r %d peer %ld kB us %ld kB", m.result, m.pin, kt_vmpin_kb(0));
		m = call_peer(&d, OP_GIVE, 0);
		r = take(d.vfd);
		kt_errno(r, errno, 0, "asid1-take-back");
		a.iotlb.type = VHOST_IOTLB_INVALIDATE;
		r = write(d.vfd, &a, sizeof(a)) == sizeof(a) ? 0 : -1;
		kt_errno(r, errno, 0, "asid1-unmap");
		kt_check(kt_vmpin_kb(0) == PIN_KB, "asid1-uncharged", "VmPin %ld kB", kt_vmpin_kb(0));
		kt_check(packets(&d, 1) == 0, "asid1-traffic", "%s", why);
		if (p != MAP_FAILED)
			munmap(p, KT_MiB);
		if (efd >= 0)
			close(efd);
	}

	/* ---- a non-root owner */
	if (use_va)
		ioctl(d.vfd, VHOST_VDPA_SUSPEND);
	child_ring = mmap(NULL, sizeof(*child_ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (child_ring == MAP_FAILED)
		child_ring = NULL;
	if (child_ring)
		ring_out(&d, child_ring);
	r = run_child(&d, child_take_and_go, 65534, true);
	kt_errno(r ? -1 : 0, r, 0, "non-root-owner");
	if (child_ring)
		ring_in(&d, child_ring);
	kt_check(p_take(&d, "take-back-from-non-root"), "non-root-take-back", "-");

	/* ---- ENOMEM after the owner died (dead mm), nothing changed; then it fits */
	if (use_va)
		ioctl(d.vfd, VHOST_VDPA_SUSPEND);
	arm(d.vfd, hpeer);
	m = call_peer(&d, OP_TAKE, 1);
	kt_check(m.result == 0, "peer-owns-before-exit", "%s", m.why);
	call_peer(&d, OP_EXIT, 0);
	waitpid(hpeer, &ws, 0);
	kt_check(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "peer-exit", "status 0x%x", ws);
	if (!use_va) {
		struct rlimit rl;
		struct vhost_new_owner q = { 0 };

		getrlimit(RLIMIT_MEMLOCK, &rl);
		rl.rlim_cur = KT_RAM - 4096;
		setrlimit(RLIMIT_MEMLOCK, &rl);
		r = vlud_new_owner(d.vfd, 0, -1, &q);
		kt_errno(r, errno, ENOMEM, "dead-mm-enomem");
		kt_check(q.pinned_pages == KT_RAM / 4096 && kt_vmpin_kb(0) == 0 && !is_owner(d.vfd),
			 "dead-mm-enomem-nothing-changed", "pinned %llu VmPin %ld owner %d",
			 (unsigned long long)q.pinned_pages, kt_vmpin_kb(0), is_owner(d.vfd));
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	kt_check(p_take(&d, "dead-mm-take"), "dead-mm-take-ok", "-");
	kt_check(kt_vmpin_kb(0) == expect_pin(), "dead-mm-vmpin", "VmPin %ld kB", kt_vmpin_kb(0));
	snprintf(n, sizeof(n), "end");
	kt_dev_close(&d);
	kt_check(kt_vmpin_kb(0) == 0, "vmpin-after-close", "VmPin %ld kB", kt_vmpin_kb(0));
	close(hsock);
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
	if (!strcmp(argv[1], "handover"))
		return cmd_handover(argv[2]);
	if (!strcmp(argv[1], "cost") && argc > 3)
		return cmd_cost(argv[2], argv[3]);
	fprintf(stderr, "vlu-ktest: unknown command %s\n", argv[1]);
	return 2;
}
