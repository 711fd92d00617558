/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update.c - device bring-up and the VMM side of the live-update paths (exec mode, standalone).
 *
 *   A  new owner + resume: SUSPEND, save, exec | NEW_OWNER, [IOTLB_REMAP], RESUME
 *   B  new owner + reset:  SUSPEND, GET_VRING_BASE, SET_STATUS 0 (IOTLB_PERSIST keeps the map), save, exec |
 *                          NEW_OWNER, [IOTLB_REMAP], features, vrings from saved bases, DRIVER_OK
 *   C  reopen + re-pin:    SUSPEND, GET_VRING_BASE, save, exec (the CLOEXEC device fd closes: release resets
 *                          the device and unpins) | open, SET_OWNER, backend features, map everything
 *                          (batched), features, vrings from saved bases, DRIVER_OK
 * With the CVQ negotiated, every start after a reset (bring-up, B, C, a rollback after B's reset) is
 * CVQ-first (cvq.c): the control state is replayed after DRIVER_OK and before the data queues are enabled.
 * Path A keeps the device's state and replays nothing.
 *
 * What crosses exec: the guest-RAM memfd, the kick/call eventfds and (A, B) the device fd, with FD_CLOEXEC
 * cleared just before execve, plus a sealed memfd with the state blob named by $MINIVMM_STATE_FD.  The new
 * image sets FD_CLOEXEC on all of them again.  The daemon-driven variant (libvlu) replaces "suspend/resume
 * by the VMM" and "fds inherited" with the daemon's doing; the steps below are the same functions.
 * docs/MINIVMM.md lists the exact ioctl sequence of each path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "minivmm.h"
#include "vlu.h"

#define WANT_BACKEND (MV_BF(IOTLB_MSG_V2) | MV_BF(IOTLB_BATCH) | MV_BF(SUSPEND) | MV_BF(RESUME) | \
		      MV_BF(IOTLB_PERSIST) | MV_BF(ENABLE_AFTER_DRIVER_OK) | MV_BF(NEW_OWNER) | MV_BF(IOTLB_REMAP))
#define WANT_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM))
/* control features minivmm can replay (cvq.c); vdpa_sim_net offers exactly these two */
#define WANT_CTRL_FEATURES ((1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR))

static int set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

/* Memory, rlimit and one batched IOTLB update of the whole mapping table (first image, path C). */
static int map_all(struct mv_vmm *v, uint64_t *ret_us)
{
	uint64_t lim = 0, t0;
	int r;

	r = mv_raise_memlock(v->mem.size, &lim);
	if (r < 0)
		mv_log("RLIMIT_MEMLOCK is %" PRIu64 " bytes, below guest RAM (%" PRIu64 "): a PA-mode device "
		       "will refuse the map (vhost-vdpa ignores CAP_IPC_LOCK)", lim, v->mem.size);
	t0 = mv_now_us();
	r = mv_vdev_map(&v->dev, &v->mem);
	if (ret_us)
		*ret_us = mv_now_us() - t0;
	if (r < 0)
		mv_log("IOTLB map of %u range(s), %" PRIu64 " MiB: %s%s", v->mem.nmaps, v->mem.size >> 20,
		       strerror(-r),
		       r == -EFAULT ? " (EFAULT: any failure of the IOTLB message; usually RLIMIT_MEMLOCK, not the owner, "
				      "or, on kernels >= 7.x, more runs of contiguous pages than vhost_vdpa's "
				      "max_iotlb_entries)"
				    : "");
	return r;
}

int mv_bringup(struct mv_vmm *v)
{
	char names[256];
	long pin0 = 0, pin1 = 0;
	uint64_t map_us = 0;
	int r;

	r = mv_vdev_query(&v->dev);
	if (r < 0) {
		mv_log("%s: query: %s", v->dev.path, strerror(-r));
		return r;
	}
	if (v->dev.vring_max < MV_QSZ) {
		mv_log("%s: vring max %u < %u", v->dev.path, v->dev.vring_max, MV_QSZ);
		return -ENOTSUP;
	}
	r = mv_vdev_set_owner(&v->dev);
	if (r < 0) {
		mv_log("SET_OWNER: %s", strerror(-r));
		return r;
	}
	r = mv_vdev_ack_backend(&v->dev, WANT_BACKEND);
	if (r < 0) {
		mv_log("SET_BACKEND_FEATURES: %s", strerror(-r));
		return r;
	}
	mv_log("device %s: features 0x%" PRIx64 ", backend offered %s", v->dev.path, v->dev.dev_features,
	       mv_backend_names(v->dev.backend_offered, names, sizeof(names)));
	r = mv_vdev_set_status(&v->dev, 0);
	if (r < 0)
		return r;

	(void)mv_vmpin_kb(&pin0, NULL);
	r = map_all(v, &map_us);
	if (r < 0)
		return r;
	v->vmpin_idle_kb = mv_vmpin_kb(&pin1, NULL) < 0 ? -1 : pin1;
	if (!v->o.prefault)
		(void)mv_mem_drop_ptes(&v->mem);	/* pinning faulted all of it in */
	v->st->vmpin_expected_kb = pin1 - pin0;
	v->va_mode = pin1 == pin0;
	mv_log("mapped %" PRIu64 " MiB in %u range(s) at iova 0x%" PRIx64 " in %.1f ms; VmPin +%ld kB (%s mode)",
	       v->mem.size >> 20, v->mem.nmaps, (uint64_t)MV_IOVA_BASE, map_us / 1e3, pin1 - pin0,
	       v->va_mode ? "VA" : "PA");

	uint64_t want = WANT_FEATURES | (v->o.cvq ? WANT_CTRL_FEATURES : 0);
	r = mv_vdev_features_ok(&v->dev, want);
	if (r < 0) {
		mv_log("features 0x%" PRIx64 ": %s", (uint64_t)(want & v->dev.dev_features), strerror(-r));
		return r;
	}
	/* the control state: the MAC set through the CVQ below and replayed after every reset */
	struct mv_ctrl *ctrl = &v->st->ctrl;
	memset(ctrl, 0, sizeof(*ctrl));
	ctrl->cvq = !!(v->dev.features & (1ULL << VIRTIO_NET_F_CTRL_VQ));
	if (ctrl->cvq && (v->dev.features & (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR))) {
		ctrl->mac_set = 1;
		memcpy(ctrl->mac, v->o.mac, 6);
		memcpy(v->st->traffic.dst_mac, ctrl->mac, 6);	/* frames to that MAC, no longer broadcast */
	} else if (v->o.cvq)
		mv_log("device offers no CTRL_VQ/CTRL_MAC_ADDR (features 0x%" PRIx64 "): no control state, "
		       "broadcast frames", v->dev.dev_features);
	for (unsigned q = 0; q < MV_NQ; q++) {
		r = mv_vq_layout(&v->vq[q], &v->mem, true);
		if (r < 0)
			return r;
		r = mv_vq_eventfds(&v->vq[q]);
		if (r < 0)
			return r;
		/* --ring-base: start the 16-bit ring indices there (e.g. 65500: they wrap within a second) */
		struct mv_vq *vq = &v->vq[q];
		vq->avail_idx = vq->used_seen = v->o.ring_base;
		vq->avail->idx = vq->used->idx = v->o.ring_base;
	}
	uint16_t bases[MV_NQ] = { v->o.ring_base, v->o.ring_base };
	r = mv_cvq_start_device(v, bases, true, NULL);
	if (r < 0)
		return r;
	if (mv_cvq_mac_check(v) == 0)
		return -EIO;
	return mv_dp_refill_rx(v);
}

static void fill_state(struct mv_vmm *v, char path)
{
	struct mv_state *s = v->st;

	s->path = (uint8_t)path;
	s->dev_fd = path == 'C' ? -1 : v->dev.fd;
	s->mem_fd = v->mem.fd;
	snprintf(s->dev_path, sizeof(s->dev_path), "%s", v->dev.path);
	s->mem_size = v->mem.size;
	s->features = v->dev.features;
	s->backend_acked = v->dev.backend_acked;
	s->backend_offered = v->dev.backend_offered;
	s->nmaps = v->mem.nmaps;
	memcpy(s->maps, v->mem.maps, sizeof(s->maps));
	s->old_uaddr = (uintptr_t)v->mem.base;
	if (mv_vdev_get_status(&v->dev, &s->status) < 0)
		s->status = 0;
	for (unsigned q = 0; q < MV_NQ; q++)
		mv_vq_save(&v->vq[q], &s->vq[q]);
}

/* fds that cross exec: memfd, eventfds, device (A, B) */
static int keep_fds(struct mv_vmm *v, char path, bool keep)
{
	int r = set_cloexec(v->mem.fd, !keep);
	for (unsigned q = 0; q < MV_NQ && r >= 0; q++) {
		r = set_cloexec(v->vq[q].kick, !keep);
		if (r >= 0)
			r = set_cloexec(v->vq[q].call, !keep);
	}
	if (r >= 0 && path != 'C')
		r = set_cloexec(v->dev.fd, !keep);
	return r;
}

/*
 * Old image, step 1: stop the device and capture everything the successor needs into v->st.
 * flags: MV_UPD_DAEMON_SUSPENDS (the daemon already suspended the device), MV_UPD_DAEMON_RESETS (path B:
 * the daemon does SET_STATUS 0).  The VMM is still the owner, so it reads the vring bases itself.
 */
int mv_update_quiesce(struct mv_vmm *v, char path, unsigned flags)
{
	struct mv_state *s = v->st;
	struct mv_update_rec *u = &s->upd[s->nupdates];
	long pin = -1;
	int r;

	/* daemon-driven, vlud suspended the device before update.save: inside the pause already, so no /proc
	 * read here; VmPin has not changed since it was last read outside a pause (the set-up, the last
	 * update's end: minivmm pins nothing else) */
	if ((flags & MV_UPD_DAEMON_SUSPENDS) && v->vmpin_idle_kb >= 0)
		pin = (long)v->vmpin_idle_kb;
	else
		(void)mv_vmpin_kb(&pin, NULL);
	u->vmpin_before_kb = pin;
	if (!(flags & MV_UPD_DAEMON_SUSPENDS)) {
		r = mv_vdev_suspend(&v->dev);
		if (r < 0) {
			mv_log("SUSPEND: %s", strerror(-r));
			return r;
		}
	} else if (!(v->dev.backend_offered & MV_BF(SUSPEND)))
		/* disruptive update (vlud's allow_disruptive): nobody can suspend this device; it runs on until
		 * its release (path C) resets it, so the vring bases read below are only a snapshot: the new
		 * image takes the bases from the used rings instead (mv_update_takeover) */
		mv_log("update: the device has no SUSPEND and keeps running (disruptive update)");
	u->t_suspend_us = mv_now_us();
	v->suspended = true;	/* the datapath stops (main.c); the device is suspended if it offers SUSPEND */
	/* the device completes nothing more: take what it completed before */
	mv_dp_reap(v, u->t_suspend_us);
	u->inflight_at_suspend = mv_traffic_inflight(&s->traffic);
	/* Frames "sent" during the pause go into the TX ring and stay queued: the saved ring state covers
	 * them (the device's base is below them) and the device processes them after RESUME / DRIVER_OK. */
	u->sent_in_pause = mv_dp_send_now(v, v->o.pause_frames);
	for (unsigned q = 0; q < MV_NQ; q++) {
		r = mv_vdev_get_vring_base(&v->dev, q, &s->vq[q].dev_base);
		if (r < 0) {
			mv_log("GET_VRING_BASE %u: %s", q, strerror(-r));
			return r;
		}
	}
	fill_state(v, path);
	/* from here on this process does not drive the rings: if it ever does again (a rollback, a take-back),
	 * it writes a fresh drive mark, which tells a successor holding this state that it is stale */
	s->drive_mark = mv_drive_mark_read(v);
	v->drive_marked = false;
	if (path == 'B' && !(flags & MV_UPD_DAEMON_RESETS)) {
		r = mv_vdev_set_status(&v->dev, 0);	/* IOTLB_PERSIST acked: the device keeps its map */
		if (r < 0) {
			mv_log("SET_STATUS 0: %s", strerror(-r));
			return r;
		}
		v->was_reset = true;
	}
	return 0;
}

/*
 * Exec mode, old image, right before execve: keep our address space alive across the exec in libvlu's
 * helper (vlu_exec_defer_teardown), so the exec does not tear down the page tables of the guest RAM we
 * touched inside the pause; the new image lets the helper go after the pause (vlu_update_ready(), or
 * mv_update_finish() standalone).  While the helper lives our mm has a user, so the kernel no longer takes
 * the exec as our consent to the new image's VHOST_NEW_OWNER (paths A and B): arm the device for our own
 * pid first (it is the new image's).  If either step fails the exec goes on as before (teardown inside
 * the pause).  MINIVMM_NO_DEFER_TEARDOWN=1 turns it off (the bench's before/after).
 */
static bool teardown_deferred;

void mv_exec_defer_teardown(struct mv_vmm *v, char path)
{
	const char *off = getenv("MINIVMM_NO_DEFER_TEARDOWN");
	int pfd, r;

	teardown_deferred = false;
	if (off && strcmp(off, "0") != 0)
		return;
	if (path != 'C') {
		pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		r = pfd < 0 ? -errno : mv_vdev_arm(&v->dev, pfd);
		safe_close(pfd);
		if (r < 0) {
			mv_log("update: old address space torn down in the exec: arming the device for our own pid: %s",
			       strerror(-r));
			return;
		}
	}
	r = vlu_exec_defer_teardown(0);
	if (r < 0) {
		mv_log("update: old address space torn down in the exec: %s", strerror(-r));
		if (path != 'C')
			(void)mv_vdev_arm(&v->dev, -1);
		return;
	}
	teardown_deferred = true;
}

/* The exec failed: stop the helper, withdraw the consent (we stay the owner). */
void mv_exec_undo_defer(struct mv_vmm *v, char path)
{
	if (!teardown_deferred)
		return;
	teardown_deferred = false;
	(void)vlu_exec_teardown_release();
	if (path != 'C')
		(void)mv_vdev_arm(&v->dev, -1);
}

/*
 * Old image, step 2 (exec mode, standalone): hand the fds and the state to the next image by exec.
 * Returns only on failure, with every fd back to CLOEXEC.
 */
int mv_update_exec(struct mv_vmm *v, char path)
{
	struct mv_state *s = v->st;
	_cleanup_close_ int sfd = -EBADF;
	char num[16];
	int r;

	r = keep_fds(v, path, true);
	if (r < 0)
		goto out;
	s->upd[s->nupdates].t_exec_us = mv_now_us();
	s->nupdates++;	/* the record travels in the blob; the new image completes it */
	sfd = mv_state_to_memfd(s);
	s->nupdates--;
	if (sfd < 0) {
		r = sfd;
		mv_log("state memfd: %s", strerror(-r));
		goto out;
	}
	snprintf(num, sizeof(num), "%d", sfd);
	setenv(MV_STATE_ENV, num, 1);
	mv_debug("exec %s (state fd %d, q0 base %u, q1 base %u)", v->o.exec_path, sfd, s->vq[0].dev_base,
		 s->vq[1].dev_base);
	fflush(NULL);
	mv_exec_defer_teardown(v, path);
	execv(v->o.exec_path, v->o.argv);
	r = -errno;
	mv_exec_undo_defer(v, path);
	mv_log("exec %s: %s; rolling back", v->o.exec_path, strerror(-r));
	unsetenv(MV_STATE_ENV);
out:
	(void)keep_fds(v, path, false);
	return r;
}

/* Old image after a failure: still the owner with the fd open (exec failed, CLOEXEC did not fire). */
int mv_update_rollback(struct mv_vmm *v)
{
	struct mv_state *s = v->st;
	int r = 0;

	if (v->reopened) {
		/* transfer mode, path C, the successor died after its claim: vlud reopened the node and we
		 * fd.retrieve'd the fresh fd into v->dev: take it like a path-C successor (SET_OWNER, backend
		 * features, one batched map = re-pin), then the vrings from our saved bases below */
		r = mv_vdev_set_owner(&v->dev);
		if (r == -EBUSY) {
			/* the fresh open has an owner already: a process that received it (the successor, from
			 * its claim) set it up and died since; the caller asks vlud to reopen it (vlud.c) */
			mv_log("rollback (take the reopened device): another process owns it already (SET_OWNER: %s)",
			       strerror(-r));
			v->reopened = v->was_reset = v->suspended = false;
			return r;
		}
		if (r >= 0)
			r = mv_vdev_ack_backend(&v->dev, v->dev.backend_acked);
		if (r >= 0)
			r = map_all(v, NULL);
		if (r < 0) {
			mv_log("rollback (take the reopened device): %s", strerror(-r));
			v->reopened = v->was_reset = v->suspended = false;
			return r;
		}
		v->was_reset = true;
		v->suspended = false;
	}
	if (v->was_reset) {
		uint16_t bases[MV_NQ] = { s->vq[0].dev_base, s->vq[1].dev_base };
		/* path B, from a reset: a successor killed after its restore left the device DRIVER_OK (vlud's
		 * verification failed), and the status bits cannot be cleared but by a reset (IOTLB_PERSIST:
		 * the map stays).  Not a reopened device: fresh, and its new map would not survive a reset */
		r = v->reopened ? 0 : mv_vdev_set_status(&v->dev, 0);
		if (r >= 0)
			r = mv_vdev_features_ok(&v->dev, v->dev.features);
		if (r >= 0)	/* the reset lost the control state too */
			r = mv_cvq_start_device(v, bases, true, NULL);
		if (r < 0)
			mv_log("rollback (re-create vrings): %s", strerror(-r));
	} else if (v->suspended && (v->dev.backend_offered & MV_BF(SUSPEND))) {
		/* (a device without SUSPEND was never suspended: nothing to resume) */
		r = mv_vdev_resume(&v->dev);
		if (r < 0)
			mv_log("rollback RESUME: %s", strerror(-r));
	}
	if (v->reopened && r >= 0 && !v->o.prefault)
		(void)mv_mem_drop_ptes(&v->mem);	/* the re-pin faulted all of it in */
	v->was_reset = v->suspended = v->reopened = false;
	for (unsigned q = 0; q < MV_NQ; q++)
		(void)mv_vq_kick(&v->vq[q]);
	return r;
}

struct mv_update_rec *mv_update_rec_begin(struct mv_vmm *v)
{
	struct mv_state *s = v->st;
	struct mv_update_rec *u = &s->upd[s->nupdates];

	memset(u, 0, sizeof(*u));
	u->t_start_us = mv_now_us();
	u->lost_before = s->traffic.lost;
	u->dup_before = s->traffic.dup;
	u->va_mode = v->va_mode;
	return u;
}

int mv_update_start(struct mv_vmm *v)
{
	struct mv_state *s = v->st;
	struct mv_update_rec *u;
	const char *why = NULL;
	char path;
	int r;

	v->update_requested = false;
	if (s->nupdates >= MV_MAX_UPDATES) {
		mv_log("update refused: already %u updates in this run", s->nupdates);
		return -E2BIG;
	}
	u = mv_update_rec_begin(v);
	{
		uint64_t off = v->dev.backend_offered;

		/* bit 0x9 is ours only if the device answers our VHOST_NEW_OWNER query (we own it now) */
		if ((off & MV_BF(NEW_OWNER)) && !mv_vdev_new_owner_supported(&v->dev)) {
			mv_log("update: the device offers bit 0x9 but does not answer the VHOST_NEW_OWNER query: "
			       "not our NEW_OWNER");
			off &= ~(MV_BF(NEW_OWNER) | MV_BF(IOTLB_REMAP));
		}
		path = mv_choose_path(off, v->o.path, &why);
	}
	u->path = (uint8_t)(path ? path : (v->o.path ? v->o.path : '-'));
	if (!path) {
		mv_log("update refused before touching anything: %s", why);
		r = -EOPNOTSUPP;
		goto done;
	}
	if (path == 'C' && v->link) {
		/* the daemon's copy of the device fd keeps the device open: only vlud can release and reopen it */
		mv_log("update refused before touching anything: path C (%s) needs vlud's update engine when "
		       "vlud holds the device", why);
		r = -EOPNOTSUPP;
		goto done;
	}
	mv_log("update %u: path %c (%s)", s->nupdates + 1, path, why);
	v->suspended = v->was_reset = false;
	r = mv_update_quiesce(v, path, 0);
	if (r >= 0)
		r = mv_update_exec(v, path);	/* returns only on failure */
	bool touched = v->suspended;
	(void)mv_update_rollback(v);
	v->vmpin_idle_kb = -1; /* read again before the next update */
	u->t_resume_us = touched ? mv_now_us() : 0;
	if (touched)
		v->await_echo_upd = (int)s->nupdates;	/* traffic must come back after the rollback too */
done:
	u->error = r;
	s->nupdates++;
	return r;
}

/*
 * Did anybody drive the rings after st was saved?  A process about to drive them from a saved state (a new
 * image after its VHOST_NEW_OWNER or SET_OWNER, an old VMM taking the device back from a dead successor)
 * must find them where that state left them.  If another process drove them since (the old VMM took the
 * device back when vlud died, ran its datapath, and died; then the successor's VHOST_NEW_OWNER got the dead
 * mm's consent), the driver's side of the rings moved on from st, and driving them from st duplicates and
 * corrupts frames (chaos soak, patched, seed 20261205 kill 600).  Every driver writes a fresh drive mark
 * before it first posts or reaps (mv_drive_mark); st recorded the mark when it was saved: -ESTALE if they
 * differ.
 * The device alone moving on is fine: vlud RESUMEs a device whose update it ends while nobody drives it
 * (R10, the daemon stopping after the claim), and the device completes what st had posted (the frames
 * queued in the pause); st's driver shadows reap those completions from the used ring.  So where the
 * bases mean something (SUSPEND acked: read from a stopped device; the device DRIVER_OK: not reset or
 * freshly opened), st takes the device's bases (returns 1): a re-creation of the vrings starts there.
 */
int mv_update_rings_undriven(struct mv_vmm *v, struct mv_state *st, const char *who)
{
	uint64_t mark = mv_drive_mark_read(v);
	uint16_t bases[MV_NQ];
	uint8_t status = 0;
	int moved = 0;

	if (mark != st->drive_mark) {
		mv_log("%s: the rings were driven after our state was saved (drive mark %016" PRIx64 ", saved %016" PRIx64
		       "): another process took the device back and ran it; this state is stale and must not drive it",
		       who, mark, st->drive_mark);
		return -ESTALE;
	}
	if (!(v->dev.backend_acked & MV_BF(SUSPEND)) || mv_vdev_get_status(&v->dev, &status) < 0 ||
	    !(status & VIRTIO_CONFIG_S_DRIVER_OK))
		return 0;
	/* every base read before any is taken: a failed read leaves st as it was, not half updated */
	for (unsigned q = 0; q < MV_NQ; q++) {
		int r = mv_vdev_get_vring_base(&v->dev, q, &bases[q]);

		if (r < 0) {
			mv_log("%s: GET_VRING_BASE %u: %s", who, q, strerror(-r));
			return r;
		}
	}
	for (unsigned q = 0; q < MV_NQ; q++) {
		uint16_t base = bases[q];

		if (base != st->vq[q].dev_base) {
			mv_log("%s: vring %u: the device ran after our state was saved with nobody driving it (base %u, "
			       "saved %u): it completed what the state had posted, which we reap; going on from its base",
			       who, q, base, st->vq[q].dev_base);
			st->vq[q].dev_base = base;
			moved = 1;
		}
	}
	return moved;
}

/*
 * New image: take the device over from the state in v->st, whose fd fields name fds this process holds
 * (inherited across exec here; claimed from the daemon in the daemon-driven flow).
 * flags: MV_UPD_DAEMON_RESUMES (path A: the daemon RESUMEs after update.ready, the VMM does not).
 */
int mv_update_takeover(struct mv_vmm *v, unsigned flags)
{
	struct mv_state *s = v->st;
	struct mv_update_rec *u = &s->upd[s->nupdates - 1];
	uint16_t bases[MV_NQ];
	char path = (char)s->path;
	int r;

	u->t_image_us = mv_now_us();
	u->t_main_us = mv_t_main_us;
	u->t_connected_us = mv_t_connected_us;
	u->t_claimed_us = mv_t_claimed_us;
	u->t_claim_sent_us = mv_t_claim_sent_us;
	u->t_claim_reply_us = mv_t_claim_reply_us;
	s->generation++;
	s->traffic.generation = s->generation;
	v->va_mode = s->vmpin_expected_kb == 0;

	/* every fd named by the state is ours now and gets CLOEXEC back */
	r = set_cloexec(s->mem_fd, true);
	if (r < 0)
		goto fail;
	r = mv_mem_attach(&v->mem, s->mem_fd, s->mem_size);
	if (r < 0) {
		mv_log("guest RAM memfd %d: %s", s->mem_fd, strerror(-r));
		goto fail;
	}
	v->mem.nmaps = s->nmaps;
	memcpy(v->mem.maps, s->maps, sizeof(v->mem.maps));
	for (unsigned q = 0; q < MV_NQ; q++) {
		struct mv_vq *vq = &v->vq[q];
		vq->kick = s->vq[q].kick_fd;
		vq->call = s->vq[q].call_fd;
		if ((r = set_cloexec(vq->kick, true)) < 0 || (r = set_cloexec(vq->call, true)) < 0)
			goto fail;
		r = mv_vq_layout(vq, &v->mem, false);
		if (r < 0)
			goto fail;
		mv_vq_restore(vq, &s->vq[q]);
		bases[q] = s->vq[q].dev_base;
	}

	if (path == 'C' && s->dev_fd < 0) {	/* daemon-driven: vlud reopened it, s->dev_fd is the claimed fd */
		r = mv_vdev_open(&v->dev, s->dev_path);
		if (r < 0) {
			mv_log("reopen %s: %s", s->dev_path, strerror(-r));
			goto fail;
		}
	} else {
		if ((r = set_cloexec(s->dev_fd, true)) < 0)
			goto fail;
		mv_vdev_adopt(&v->dev, s->dev_fd, s->dev_path);
	}
	r = mv_vdev_query(&v->dev);
	if (r < 0)
		goto fail;
	v->dev.features = s->features;
	v->dev.backend_acked = s->backend_acked;
	if (path == 'C' && !(v->dev.backend_offered & MV_BF(SUSPEND))) {
		/* disruptive update: the old device was never suspended and ran on after the save until its
		 * release reset it (before we got this fresh fd), so the saved bases are stale.  Where it stopped
		 * is in guest RAM: the used rings (an in-order device like vdpa_sim completes every descriptor it
		 * takes: last_avail_idx == used->idx).  Completions after our saved shadows are reaped as usual. */
		for (unsigned q = 0; q < MV_NQ; q++) {
			uint16_t used = __atomic_load_n(&v->vq[q].used->idx, __ATOMIC_ACQUIRE);

			mv_log("update: no SUSPEND (disruptive): vring %u base %u from the used ring (saved %u)", q, used,
			       bases[q]);
			bases[q] = used;
		}
	}

	{
		uint64_t pages = 0;

		r = path == 'C' ? mv_vdev_set_owner(&v->dev) : mv_vdev_new_owner(&v->dev, &pages);
		/* EPERM: no consent yet.  A process the old owner did not arm (a previous binary vlud restarted
		 * after the new image died) waits for the old mm's last user to go: the dead image's deferred-
		 * teardown helper exits once the pipe closed, within ms.  Up to 2 s. */
		for (unsigned i = 0; r == -EPERM && path != 'C' && i < 200; i++) {
			(void)usleep(10000);
			r = mv_vdev_new_owner(&v->dev, &pages);
		}
		if (r == -ENOMEM && path != 'C')
			mv_log("VHOST_NEW_OWNER: %s: the pinned charge of %" PRIu64 " pages does not fit RLIMIT_MEMLOCK "
			       "(and it could not be raised)", strerror(-r), pages);
		else if (r == -EPERM && path != 'C')
			mv_log("VHOST_NEW_OWNER: %s: no consent (the old VMM did not arm this process and is alive)",
			       strerror(-r));
		else if (r < 0)
			mv_log("%s: %s", path == 'C' ? "SET_OWNER" : "VHOST_NEW_OWNER", strerror(-r));
		if (r < 0)
			goto fail;
		/* the owner now: did anybody drive the rings since our state was saved? */
		r = mv_update_rings_undriven(v, s, "takeover");
		if (r < 0)
			goto fail;
		for (unsigned q = 0; r > 0 && q < MV_NQ; q++)
			bases[q] = s->vq[q].dev_base;	/* the device ran on: its bases */
	}
	u->t_owner_us = mv_now_us();

	if (path == 'C') {
		/* fresh open: backend features were cleared with the old file */
		r = mv_vdev_ack_backend(&v->dev, s->backend_acked);
		if (r < 0)
			goto fail;
		r = map_all(v, NULL);
		if (r < 0)
			goto fail;
	} else if (v->dev.backend_acked & MV_BF(IOTLB_REMAP)) {
		/* VA mode: the device keeps user addresses; ours changed with the new mm */
		r = mv_vdev_remap(&v->dev, &v->mem);
		if (r < 0) {
			mv_log("IOTLB_REMAP: %s", strerror(-r));
			goto fail;
		}
	}
	u->t_mapped_us = mv_now_us();

	if (path == 'A') {
		if (!(flags & MV_UPD_DAEMON_RESUMES)) {
			r = mv_vdev_resume(&v->dev);
			if (r < 0) {
				mv_log("RESUME: %s", strerror(-r));
				goto fail;
			}
		}
	} else {
		if (path == 'B' && (r = mv_vdev_ack_backend(&v->dev, s->backend_acked)) < 0)
			goto fail;
		r = mv_vdev_features_ok(&v->dev, s->features);
		if (r < 0) {
			mv_log("features: %s", strerror(-r));
			goto fail;
		}
		/* the reset (B: SET_STATUS 0; C: release) lost the device's control state: CVQ-first start */
		r = mv_cvq_start_device(v, bases, !v->test_no_cvq_restore, u);
		if (r < 0)
			goto fail;
	}
	u->t_resume_us = mv_now_us();
	u->ok = 1;
	v->await_echo_upd = (int)s->nupdates - 1;
	if (!(flags & MV_UPD_CHECKS_LATER))
		mv_update_after_pause(v);
	/* frames queued before and during the suspend are processed now; RX buffers topped up (daemon-driven
	 * path A: before update.ready, so that the device vlud RESUMEs has them) */
	r = mv_dp_refill_rx(v);
	if (r < 0)
		goto fail;
	for (unsigned q = 0; q < MV_NQ; q++)
		(void)mv_vq_kick(&v->vq[q]);
	return 0;
fail:
	u->ok = 0;
	u->error = r;
	u->t_resume_us = 0;
	return r;
}

/* New image, the takeover done: the VMM's own checks and the log line.  Standalone right after the
 * takeover (its RESUME / DRIVER_OK ended the pause); daemon-driven (MV_UPD_CHECKS_LATER) after
 * update.ready, where vlud's pause ends (path A: vlud's RESUME), so that none of it is inside the pause. */
void mv_update_after_pause(struct mv_vmm *v)
{
	struct mv_state *s = v->st;
	struct mv_update_rec *u = &s->upd[s->nupdates - 1];
	char path = (char)s->path;
	long pin = -1;

	/* what the device's config space says now: a MAC the reset lost (and nobody restored) shows here */
	u->mac_ok = (uint8_t)mv_cvq_mac_check(v);
	if (path == 'C' && !v->o.prefault)
		(void)mv_mem_drop_ptes(&v->mem);	/* after the pause: the re-pin faulted all of it in */
	v->vmpin_idle_kb = mv_vmpin_kb(&pin, NULL) < 0 ? -1 : pin;
	/* the vhost-vdpa device's share: read after update.ready, VmPin also holds the edu window's charge
	 * this image took with IOMMU_IOAS_CHANGE_PROCESS (--edu; docs/IOMMUFD.md "Mixed instances") */
	if (pin >= 0 && v->o.edu && v->edu.moves && v->edu.vmpin_after_kb > v->edu.vmpin_before_kb)
		pin -= v->edu.vmpin_after_kb - v->edu.vmpin_before_kb;
	u->vmpin_after_kb = pin;
	mv_log("update %u: path %c done: device paused %.1f ms (suspend -> %s), exec -> image %.1f ms, "
	       "owner %.1f ms, %s %.1f ms; VmPin %" PRId64 " kB -> %ld kB (expected %" PRId64 " kB); CVQ replay %u "
	       "command(s) in %.3f ms, MAC %s",
	       s->nupdates, path, (u->t_resume_us - u->t_suspend_us) / 1e3, path == 'A' ? "RESUME" : "DRIVER_OK",
	       (u->t_image_us - u->t_exec_us) / 1e3, (u->t_owner_us - u->t_image_us) / 1e3,
	       path == 'C' ? "re-map" : "remap", (u->t_mapped_us - u->t_owner_us) / 1e3,
	       u->vmpin_before_kb, pin, s->vmpin_expected_kb, u->cvq_cmds, u->cvq_restore_us / 1e3,
	       u->mac_ok == 1 ? "ok" : u->mac_ok == 2 ? "n/a" : "MISMATCH");
}

int mv_update_finish(struct mv_vmm *v, int state_fd)
{
	int r = mv_state_from_fd(state_fd, v->st);

	safe_close(state_fd);
	unsetenv(MV_STATE_ENV);
	if (r < 0) {
		mv_log("state blob: %s", strerror(-r));
		return r;
	}
	if (!v->st->nupdates || !v->st->path)
		return -EBADMSG;
	r = mv_update_takeover(v, 0);
	/* the pause is over (or failed): the old image's address space may be torn down now */
	(void)vlu_exec_teardown_release();
	return r;
}
