/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-rollback.c - what happens after a failure (docs/UPDATE.md "Rollback"): the facts are read
 * (rb_facts()), update_decide() (update-decide.c, pure) says what to do, upd_rollback_act() does it.  The triggers:
 * a deadline (timer_cb), O or the successor exiting (upd_old_exit_cb, new_exit_cb), and every failed step,
 * update.abort, a verification that failed, the instance released or the daemon stopping (upd_rollback()).
 *
 * The recoveries that take more than one step live here too: the previous binary restarted (exec mode),
 * the kill of a late process, the instance handed back to O (reclaim, transfer mode A/B), and the path-C
 * retake (D releases and reopens the device, O takes the fresh fds and calls update.ready).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <json-c/json.h>

#include "config.h"
#include "conn.h"
#include "events.h"
#include "instance.h"
#include "iommufd-decide.h"
#include "json-oom.h"
#include "persist.h"
#include "spawn.h"
#include "update-int.h"
#include "vlud-vhost.h"
#include "vlud.h"
#include "vmpin.h"

/* ---------------------------------------------------------------- the facts */

static struct rb_facts rb_facts(const struct update *u, enum rb_trigger t)
{
	struct conn *oc = upd_conn_by_id(u->old_conn);
	struct rb_facts f = {
		.trigger = t,
		.transfer = u->mode == MODE_TRANSFER,
		.route = u->route,
		.phase = u->phase,
		.old_alive = upd_pidfd_alive(u->old_pidfd),
		/* exec mode: a connection the new image kept across the exec is not O's any more */
		.old_conn = oc != NULL && !upd_old_execed(u),
		.old_conn_free = oc && !oc->inst,
		.inst_on_old_conn = oc && u->inst->conn == oc,
		.new_alive = upd_pidfd_alive(u->new_pidfd),
		.spawned = u->spawned,
		.saved = u->state_fd >= 0,
		.released = u->release_us >= 0,
		.claim_pending = u->claim_job != NULL,
		.prev_binary = u->prev_binary != NULL,
		.restarted = u->restarted,
		.retake = u->retake,
		.device_state = u->fail[u->restarted || u->retake].cause == CAUSE_DEVICE_STATE,
		.iommufd = u->iof,
		.vdpa = u->ndevs > 0,
		.iof_mm = u->iof && u->iof_acct == IOF_ACCT_MM,
		.new_held = u->new_held,
		.kill_pending = u->kill_pending,
		.old_killed = u->fail[0].killed == u->old_pid || u->fail[1].killed == u->old_pid,
		.pol_restart_previous = vl.cfg->update_policy.restart_previous,
		.pol_kill_failed_successor = vl.cfg->update_policy.kill_failed_successor,
	};

	for (unsigned i = 0; i < u->ndevs; i++)
		f.lost |= u->devs[i].lost;
	return f;
}

struct conn *upd_old_conn_told(const struct update *u)
{
	struct rb_facts f = rb_facts(u, RBT_FAILED);

	return update_tells_old(&f) ? upd_conn_by_id(u->old_conn) : NULL;
}

/* ---------------------------------------------------------------- the recoveries */

/* Exec mode, the old image is gone and its successor failed: start the previous binary (with the
 * instance's uid and gid, a new token) to claim the device back from the saved state.  0 when started. */
static int restart_previous(struct update *u)
{
	char reason[1024];
	json_object *d;
	uint8_t rnd[16];
	pid_t pid;
	int pfd = -EBADF, k;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -errno;
	for (unsigned i = 0; i < sizeof(rnd); i++)
		snprintf(u->token + 2 * i, 3, "%02x", rnd[i]);
	ev_io_stop(vl.loop, &u->old_io);
	ev_io_stop(vl.loop, &u->new_io);
	u->new_pidfd = safe_close(u->new_pidfd);
	if (u->route == 'B' && u->phase >= PH_RESTORE)
		/* path B after the claim: the dead image may have re-created features and vrings (DRIVER_OK);
		 * the restarted binary, like any path-B successor, takes a reset device (SET_STATUS 0 needs no
		 * ownership; IOTLB_PERSIST keeps the mappings) */
		for (unsigned i = 0; i < u->ndevs; i++) {
			uint8_t zero = 0;

			k = upd_dev_ioctl(u, i, VHOST_VDPA_SET_STATUS, &zero);
			if (k < 0)
				log_warning("update %" PRIu64 ": SET_STATUS 0 on %s for the restarted binary: %s", u->id,
					    u->devs[i].name, strerror(-k));
		}
	upd_set_phase(u, PH_SPAWN);
	k = spawn_successor(u->prev_binary, u->prev_argv, u->inst->uid, u->inst->gid, u->groups, u->n_groups, u->token,
			    u->inst->name,
			    vl.cfg->update_policy.allow_memlock_raise ? upd_memlock_need(u) : 0, &pid, &pfd);
	if (k < 0) {
		explicit_bzero(u->token, sizeof(u->token));
		upd_add_note(u, "; restarting %s failed: %s", u->prev_binary, strerror(-k));
		return k;
	}
	upd_error_text(u, reason, sizeof(reason));
	u->restarted = true;
	u->kill_pending = false; /* the restarted binary gets its own deadline (and kill) */
	u->token_valid = true;
	u->new_pid = pid;
	u->new_pidfd = pfd;
	upd_watch_pid(u, &u->new_io, u->new_pidfd);
	upd_set_phase(u, PH_CLAIM);
	log_warning("update %" PRIu64 " of %s: %s; restarted the previous binary %s as pid %d to take the device back",
		    u->id, u->inst->name, reason, u->prev_binary, (int)pid);
	d = upd_event_base(u);
	jadd(d, "reason", jnew_str(reason));
	jadd(d, "binary", jnew_str(u->prev_binary));
	jadd(d, "pid", jnew_int(pid));
	events_emit(VLU_EV_UPDATE_RESTARTING_PREVIOUS, u->inst->name, d);
	return 0;
}

/* Kill pid (pfd its pidfd) that failed the update while it holds (or is about to take) the instance's fds:
 * SIGKILL now, and the rollback runs when its exit is seen (old_exit_cb/new_exit_cb), exactly as when it
 * dies by itself: the kernel closes the fds it holds, so a device can go back to a running VMM (transfer
 * mode: O; exec mode: the previous binary restarted).  Without the kill, a rollback could only keep every
 * fd and report failed while that process still runs with copies of the device.  Policy
 * update.kill_failed_successor (default true, checked by update_decide()).  -errno when the signal
 * failed. */
static int kill_process(struct update *u, int pfd, pid_t pid)
{
	struct upd_failure *f = &u->fail[u->restarted || u->retake];
	char reason[1024];
	json_object *d;

	if (pfd < 0)
		return -EBADF;
	if (pidfd_send_signal(pfd, SIGKILL, NULL, 0) < 0)
		return -errno;
	f->killed = pid;
	u->kill_pending = true;
	upd_error_text(u, reason, sizeof(reason));
	log_warning("update %" PRIu64 " of %s: killed pid %d (SIGKILL) in phase %s: %s; rolling back when it has exited",
		    u->id, u->inst->name, (int)pid, update_phase_name(u->phase), reason);
	d = upd_event_base(u);
	jadd(d, "pid", jnew_int(pid));
	jadd(d, "phase", jnew_str(update_phase_name(u->phase)));
	jadd(d, "reason", jnew_str(reason));
	events_emit(VLU_EV_UPDATE_KILLED, u->inst->name, d);
	/* its exit (pidfd readable) rolls back; this deadline only guards against never seeing it */
	ev_timer_stop(vl.loop, &u->timer);
	ev_timer_set(&u->timer, 5.0, 0.);
	ev_timer_start(vl.loop, &u->timer);
	return 0;
}

/* tell O to take the reopened devices (fd.retrieve them, then update.ready) */
static void retake_tell(struct update *u)
{
	json_object *d = upd_event_base(u), *names = jnew_arr();
	char reason[1024];

	upd_error_text(u, reason, sizeof(reason));
	for (unsigned i = 0; i < u->ndevs; i++)
		jappend(names, jnew_str(u->devs[i].name));
	jadd(d, "reason", jnew_str(reason));
	jadd(d, "phase", jnew_str(update_phase_name(u->retake_from)));
	jadd(d, "reinit", jnew_bool(true));
	jadd(d, "reclaim", jnew_bool(true));
	jadd(d, "reopened", jnew_bool(true));
	jadd(d, "devices", names);
	/* a mixed instance: the successor may have moved the iommufd charge too (or, claimant gone before the
	 * hand-over, nobody did: O's CHANGE_PROCESS is then a no-op from itself); O takes it back as well */
	if (u->iof)
		jadd(d, "iommufd", upd_iof_claim_info(u));
	events_tell(upd_conn_by_id(u->old_conn), VLU_EV_UPDATE_ROLLED_BACK, u->inst->name, d);
	log_info("update %" PRIu64 " of %s: device reopened, the old VMM %d takes it back", u->id, u->inst->name,
		 (int)u->old_pid);
}

/* path C, the retake (the device is reopened): O is told, or the update ends when O's connection went */
static void retake_released(void *userdata, int64_t close_us)
{
	struct update *u = userdata;
	int64_t t0 = now_monotonic_us();
	char why[256];

	upd_own_begin(u, t0);
	u->claim_job = NULL;
	u->release_us = (u->release_us > 0 ? u->release_us : 0) + close_us;
	if (upd_reopen_devices(u, why, sizeof(why)) < 0) {
		upd_own_end(u);
		upd_add_note(u, "; bringing the device back to the old VMM: %s", why);
		u->retake = false;
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	}
	upd_own_end(u);
	if (!u->inst->conn || u->inst->conn != upd_conn_by_id(u->old_conn)) {
		upd_add_note(u, "; the old VMM disconnected while the device was released: every fd kept");
		u->retake = false;
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	}
	retake_tell(u);
}

/* Transfer mode, path C, rollback after N's claim (N is gone, O alive on its connection): the instance
 * returns to O's connection; D's copies of the device (the reopened ones N got: N may have owned and
 * mapped them) go to the closer, the last references (reset, unpin); retake_released() reopens the nodes
 * and tells O (update.rolled-back with reopened:true); O fd.retrieves the fresh fds, takes them like a
 * path-C successor and calls update.ready; D verifies there (retake_ready).  0: under way. */
static int retake_start(struct update *u, char *why, size_t len)
{
	struct conn *oc = upd_conn_by_id(u->old_conn);
	char reason[1024];
	int pfd;

	if (!oc || oc->inst)
		return snprintf(why, len, "the old VMM's connection is gone or busy"), -ENOTCONN;
	if (u->claim_job)
		return snprintf(why, len, "the old device is still being released"), -EBUSY;
	pfd = fcntl(u->old_pidfd, F_DUPFD_CLOEXEC, 3); /* owned: goes to the instance */
	if (pfd < 0)
		return snprintf(why, len, "dup: %s", strerror(errno)), -errno;
	if (upd_release_devices(u, retake_released, why, len) < 0) {
		safe_close(pfd);
		return -EIO;
	}
	/* from N's connection back to O's: a hand-over, not an orphan */
	instance_hand_over(u->inst, oc, u->old_pid, pfd);
	u->retake = true;
	u->retake_from = u->phase;
	ev_io_stop(vl.loop, &u->new_io);
	upd_set_phase(u, PH_ROLLBACK);
	upd_error_text(u, reason, sizeof(reason));
	log_warning("update %" PRIu64 " of %s: %s; releasing the device to bring it back to the old VMM %d", u->id,
		    u->inst->name, reason, (int)u->old_pid);
	return 0;
}

/* transfer mode A/B after the claim: the instance returns to O's connection; O re-owns with
 * VHOST_NEW_OWNER (remaps in VA mode) and resumes (B: re-creates the vrings) itself, so D does not
 * RESUME a device whose owner may still be the dead successor */
static void reclaim(struct update *u)
{
	struct conn *oc = upd_conn_by_id(u->old_conn);
	int pfd = fcntl(u->old_pidfd, F_DUPFD_CLOEXEC, 3);

	if (pfd >= 0 && oc && !oc->inst) {
		if (u->inst->state == INSTANCE_ATTACHED)
			instance_orphan(u->inst, "taken back by the old VMM (update rolled back)");
		instance_attach(u->inst, oc, u->old_pid, pfd);
	} else
		safe_close(pfd);
}

/* R14 (RB_HOLD_RECLAIM): stop the failed successor instead of killing it, so that its mm still has users
 * when O's CHANGE_PROCESS takes the charge from it (mm accounting: the uncharge of an mm without users is
 * the second kernel bug, docs/IOMMUFD.md).  Stopped, not left running: it can neither call CHANGE_PROCESS
 * again nor unmap at a teardown of its own while O takes back.  The state records it first (the
 * instance's "held_successor", with O's pid and start time), so that a vlud restarted from here on knows
 * it; a write that fails means no hold (a stopped process no restart would know of): killed first, as
 * without mm accounting.  The stop itself is awaited (upd_hold_timer_cb()) before O is told.  It is killed
 * when the update ends (upd_finish() -> upd_held_kill()), which the phase rollback's deadline bounds.
 * 0, or -errno with the reason in the verdict's words (not stopped, not held). */
static int hold_successor(struct update *u)
{
	uint64_t st = 0, ost = 0;
	int k;

	if (u->new_pidfd < 0)
		return -EBADF;
	k = upd_pid_starttime(u->new_pid, &st);
	if (k < 0 || !upd_pidfd_alive(u->new_pidfd))
		return k < 0 ? k : -ESRCH; /* (the pid may name another process by now) */
	/* O's identity for a restarted vlud, which keeps N stopped until O reattached or exited (0: unread, the
	 * record names no O and the restarted vlud waits for commit_ms) */
	if (upd_pid_starttime(u->old_pid, &ost) < 0 || !upd_pidfd_alive(u->old_pidfd))
		ost = 0;
	u->held_start = st;
	u->held_old_start = ost;
	u->new_held = true;
	k = persist_state_write_checked();
	if (k < 0) {
		u->new_held = false;
		u->held_start = u->held_old_start = 0;
		persist_state_write(); /* (most likely failing as well: then it still names nobody held) */
		upd_add_note(u, "; the state could not record the successor %d as held (%s): not held, killed first",
			     (int)u->new_pid, strerror(-k));
		log_warning("update %" PRIu64 " of %s: writing the state that names the successor %d held: %s; "
			    "killing it first instead",
			    u->id, u->inst->name, (int)u->new_pid, strerror(-k));
		return k;
	}
	if (pidfd_send_signal(u->new_pidfd, SIGSTOP, NULL, 0) < 0) {
		k = -errno;
		u->new_held = false;
		u->held_start = u->held_old_start = 0;
		persist_state_write();
		upd_add_note(u, "; stopping the successor %d (SIGSTOP) failed (%s): killed first", (int)u->new_pid,
			     strerror(-k));
		log_warning("update %" PRIu64 " of %s: stopping the successor %d (SIGSTOP): %s", u->id, u->inst->name,
			    (int)u->new_pid, strerror(-k));
		return k;
	}
	/* a signal is delivered when the process next returns to user space: inside a system call (an ioctl
	 * of its own, CHANGE_PROCESS itself) it runs on until that returns.  O is told once N is seen
	 * stopped (upd_hold_timer_cb(), polled on the loop) */
	u->hold_wait = HOLD_WAIT_STOP;
	u->hold_t0_us = now_monotonic_us();
	ev_timer_stop(vl.loop, &u->hold_timer);
	ev_timer_set(&u->hold_timer, 0.001, 0.005);
	ev_timer_start(vl.loop, &u->hold_timer);
	log_warning("update %" PRIu64 " of %s: stopped the successor %d (SIGSTOP): it is killed once the old VMM "
		    "took the iommufd charge back from its mm (mm accounting)",
		    u->id, u->inst->name, (int)u->new_pid);
	return 0;
}

void upd_held_kill(struct update *u)
{
	struct upd_failure *f = &u->fail[0];
	json_object *d;
	int k = 0;

	ev_timer_stop(vl.loop, &u->hold_timer);
	u->hold_wait = HOLD_WAIT_NONE;
	if (!u->new_held)
		return;
	u->new_held = false; /* (the state's record goes with the update's at its end) */
	/* vlud stopping (SIGTERM, RB_STOP), the state outliving it (the fd store kept across a stop, as the
	 * operator says: upd_held_survives_stop()): O may not have taken the charge back yet, and killing N now
	 * would leave it on an mm without users.  N stays stopped and recorded; the next vlud kills it once O
	 * reattached or exited, or commit_ms passed.  (Not the instance's release: nobody takes back through
	 * vlud then; not without a state that survives the stop: nobody would ever end it) */
	if (vl.stopping && upd_held_survives_stop() && !persist_frozen() && !u->inst_gone &&
	    (k = upd_held_leave(u)) == 0) {
		upd_add_note(u, "; vlud is stopping: the successor %d stays stopped, named by the state: the next vlud "
			     "kills it once the old VMM reattached or exited, or commit_ms passed",
			     (int)u->new_pid);
		log_warning("update %" PRIu64 " of %s: the successor %d, held stopped, stays stopped: vlud is stopping",
			    u->id, u->inst->name, (int)u->new_pid);
		return;
	}
	if (vl.stopping && !u->inst_gone && !upd_held_survives_stop())
		upd_add_note(u, "; vlud is stopping and its state is not known to outlive the stop "
			     "(update.held_successor_survives_stop): the successor %d is not left stopped",
			     (int)u->new_pid);
	else if (vl.stopping && !u->inst_gone)
		upd_add_note(u, "; vlud is stopping, but the successor %d could not be left stopped (%s)", (int)u->new_pid,
			     k < 0 ? strerror(-k) : "the state is no longer written");
	k = 0;
	if (pidfd_send_signal(u->new_pidfd, SIGKILL, NULL, 0) < 0)
		k = -errno;
	if (k == 0) {
		/* the kill that R5/R4 would have made first: the verdict's killed_pid, the cause's words */
		f->killed = u->new_pid;
		upd_add_note(u, "; the successor %d was killed only then: it was kept stopped until then (its mm "
			     "alive for the old VMM's IOMMU_IOAS_CHANGE_PROCESS, mm accounting)",
			     (int)u->new_pid);
		d = upd_event_base(u);
		jadd(d, "pid", jnew_int(u->new_pid));
		jadd(d, "phase", jnew_str(update_phase_name(u->phase)));
		jadd(d, "reason", jnew_str("kept stopped while the old VMM took the iommufd charge back"));
		events_emit(VLU_EV_UPDATE_KILLED, u->inst->name, d);
	} else if (k == -ESRCH)
		upd_add_note(u, "; the successor %d, stopped by vlud, had exited meanwhile", (int)u->new_pid);
	else
		upd_add_note(u, "; killing the successor %d, stopped by vlud, failed: %s", (int)u->new_pid, strerror(-k));
	log_warning("update %" PRIu64 " of %s: the successor %d, held stopped: %s", u->id, u->inst->name,
		    (int)u->new_pid, k == 0 ? "killed (SIGKILL)" : strerror(-k));
}

/* iommufd/VFIO, transfer mode after N's claim (RB_RECLAIM): N may have called CHANGE_PROCESS, and only a
 * caller of it can take the charge back; the instance returns to O's connection and O is told to call it
 * (update.rolled-back with iommufd), then update.ready, where its VmPin is verified (upd_retake_ready(),
 * phase rollback).  A mixed instance on path A or B: O re-owns its vhost-vdpa devices in the same step
 * (reclaim:true, VHOST_NEW_OWNER; reinit on B) before its update.ready, and the VmPin verified is both
 * shares.  0: under way. */
static void iof_reclaim_tell(struct update *u, struct conn *oc);

static int iof_reclaim(struct update *u)
{
	struct conn *oc = upd_conn_by_id(u->old_conn);

	if (!oc || (oc->inst && oc->inst != u->inst))
		return -ENOTCONN;
	reclaim(u);
	if (u->inst->conn != oc)
		return -ENOTCONN;
	u->retake = true;
	u->retake_from = u->phase;
	ev_io_stop(vl.loop, &u->new_io);
	upd_set_phase(u, PH_ROLLBACK);
	if (u->hold_wait == HOLD_WAIT_NONE)
		iof_reclaim_tell(u, oc);
	/* else: O is told once the held successor is seen stopped (upd_hold_timer_cb()) */
	return 0;
}

/* O is told to take the charge back (update.rolled-back with iommufd; R14: successor_held while N is
 * held stopped) */
static void iof_reclaim_tell(struct update *u, struct conn *oc)
{
	json_object *d, *claim;
	char reason[1024];

	upd_error_text(u, reason, sizeof(reason));
	claim = upd_iof_claim_info(u);
	d = upd_event_base(u);
	jadd(d, "reason", jnew_str(reason));
	jadd(d, "phase", jnew_str(update_phase_name(u->retake_from)));
	/* a mixed instance on path B: the successor may have re-created the vrings; O re-creates them too */
	jadd(d, "reinit", jnew_bool(u->ndevs && u->route == 'B'));
	jadd(d, "reclaim", jnew_bool(true));
	jadd(d, "reopened", jnew_bool(false));
	jadd(d, "iommufd", claim);
	/* R14: the successor is alive and stopped (mm accounting: O takes the charge from a live mm) */
	jadd(d, "successor_held", jnew_bool(u->new_held));
	jadd(d, "successor_pid", u->new_pid > 0 ? jnew_int(u->new_pid) : NULL);
	events_tell(oc, VLU_EV_UPDATE_ROLLED_BACK, u->inst->name, d);
	log_warning("update %" PRIu64 " of %s: %s; the old VMM %d takes the instance back and must call "
		    "IOMMU_IOAS_CHANGE_PROCESS, then update.ready",
		    u->id, u->inst->name, reason, (int)u->old_pid);
}

/* R14: the stop awaited.  HOLD_WAIT_STOP: /proc/N/stat says 'T' (stopped) -> O is told; N gone meanwhile
 * (on its own, or killed by its uid) -> O is told all the same, with nothing held (it takes the charge from
 * the dead mm: nothing alive is left to take from); not stopped after HOLD_STOP_WAIT_MS (inside a system
 * call that does not end: an ioctl stuck in the driver, a sleep that ignores signals) -> killed, the
 * kill-first behaviour of R5/R4: HOLD_WAIT_EXIT until its exit is seen (at most 5 s, as kill_process()'s
 * guard), then O is told.  Polled on the loop every 5 ms: no pidfd tells a stop, and waitid() tells only a
 * child's (an operator-named successor is not vlud's child).  Whatever ends the update meanwhile (O's
 * exit, the phase's deadline, vlud stopping) stops this timer (upd_held_kill()). */
void upd_hold_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct update *u = container_of(w, struct update, hold_timer);
	int64_t waited = now_monotonic_us() - u->hold_t0_us;
	struct conn *oc;
	uint64_t st = 0;
	char state = '?';
	json_object *d;

	(void)loop;
	(void)revents;
	if (u->hold_wait == HOLD_WAIT_STOP) {
		/* every thread's state, not the leader's alone: another thread may still be inside an ioctl */
		bool alive = upd_pidfd_alive(u->new_pidfd);
		int k = alive ? upd_pid_stat_all(u->new_pid, &st, &state) : -ESRCH;
		enum held_look l = update_held_look(alive, k, st, state, u->held_start);
		char why[96];

		switch (update_hold_step(l, alive, waited, HOLD_STOP_WAIT_MS * 1000LL)) {
		case HOLD_STEP_WAIT:
			return;
		case HOLD_STEP_TELL:
			log_info("update %" PRIu64 " of %s: the successor %d is stopped (%.1f ms after the SIGSTOP)",
				 u->id, u->inst->name, (int)u->new_pid, (double)waited / 1000.0);
			break;
		case HOLD_STEP_GONE:
			u->new_held = false;
			u->held_start = u->held_old_start = 0;
			persist_state_write();
			upd_add_note(u, "; the successor %d exited before it was seen stopped: nothing held, the old VMM "
				     "takes the charge from its dead mm",
				     (int)u->new_pid);
			log_warning("update %" PRIu64 " of %s: the successor %d exited before it was seen stopped", u->id,
				    u->inst->name, (int)u->new_pid);
			break;
		case HOLD_STEP_KILL:
			/* not stopped in time: it must not run on next to O's take-back, so it goes first.  /proc
			 * lost it while its pidfd says alive: the pidfd is that very process, killed through it
			 * rather than trusted gone */
			if (l == HELD_GONE || l == HELD_OTHER)
				snprintf(why, sizeof(why), "its pidfd alive, /proc/%d/stat %s", (int)u->new_pid,
					 l == HELD_GONE ? "gone" : "another process's");
			else
				snprintf(why, sizeof(why), "not stopped %d ms after the SIGSTOP (state %c)", HOLD_STOP_WAIT_MS,
					 k == 0 ? state : '?');
			u->new_held = false;
			u->held_start = u->held_old_start = 0;
			if (pidfd_send_signal(u->new_pidfd, SIGKILL, NULL, 0) == 0)
				u->fail[0].killed = u->new_pid;
			persist_state_write();
			upd_add_note(u, "; the successor %d was %s: killed first, the old VMM takes the charge from its "
				     "dead mm",
				     (int)u->new_pid, why);
			log_warning("update %" PRIu64 " of %s: the successor %d was %s: killed (SIGKILL); the old VMM is "
				    "told once it has exited",
				    u->id, u->inst->name, (int)u->new_pid, why);
			d = upd_event_base(u);
			jadd(d, "pid", jnew_int(u->new_pid));
			jadd(d, "phase", jnew_str(update_phase_name(u->phase)));
			jadd(d, "reason", jnew_str(l == HELD_GONE || l == HELD_OTHER
							   ? "its pidfd alive while /proc no longer shows it"
							   : "not stopped in time after the SIGSTOP"));
			events_emit(VLU_EV_UPDATE_KILLED, u->inst->name, d);
			u->hold_wait = HOLD_WAIT_EXIT;
			u->hold_t0_us = now_monotonic_us();
			return;
		}
	} else if (u->hold_wait == HOLD_WAIT_EXIT) {
		if (upd_pidfd_alive(u->new_pidfd)) {
			if (waited < 5000000)
				return;
			upd_add_note(u, "; it had not exited 5 s after the SIGKILL, the old VMM was told all the same");
		}
	}
	ev_timer_stop(vl.loop, &u->hold_timer);
	u->hold_wait = HOLD_WAIT_NONE;
	oc = upd_conn_by_id(u->old_conn);
	if (!oc || u->inst->conn != oc) {
		u->retake = false;
		upd_add_note(u, "; the old VMM's connection is gone: the iommufd charge stays where it is, every fd kept");
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	}
	iof_reclaim_tell(u, oc);
}

/* ---------------------------------------------------------------- the decision, executed */

/* the words an end state adds to the cause */
static void end_note(struct update *u, enum rb_action a, bool old_alive)
{
	switch (a) {
	case RB_KEEP_SUSPENDED:
		upd_add_note(u, "; the old image is gone (%s): devices stay suspended, every fd is kept",
			 old_alive ? "exec'ed, never claimed" : "process exited");
		break;
	case RB_RESUME_ORPHANED:
		upd_add_note(u, "; the VMM process exited: devices resumed, every fd kept (instance orphaned)");
		break;
	case RB_KEEP:
		if (u->mode == MODE_EXEC)
			upd_add_note(u, "; exec mode after claim: no old image to return to, every fd kept");
		else if (u->route == 'C')
			upd_add_note(u, "; path C after the claim: the device was reopened for the successor, and the "
				    "successor still runs or the old VMM is gone; every fd kept");
		else
			upd_add_note(u, "; the old VMM is gone too; every fd kept");
		break;
	case RB_KEEP_RETAKE:
		upd_add_note(u, "; while the reopened device was being brought back to the old VMM: every fd kept");
		break;
	case RB_STOP:
		upd_add_note(u, "; devices resumed");
		break;
	default:
		break;
	}
}

/* the update rolls back (an action that ends it, or brings the device back to a running VMM) */
static void rolling_back(struct update *u, bool *logged)
{
	char reason[1024];

	if (*logged)
		return;
	*logged = true;
	u->token_valid = false;
	upd_error_text(u, reason, sizeof(reason));
	log_warning("update %" PRIu64 " of %s: rolling back in phase %s: %s", u->id, u->inst->name,
		    update_phase_name(u->phase), reason);
}

/* Execute what update_decide() says about trigger t (the cause already recorded). */
void upd_rollback_act(struct update *u, enum rb_trigger t)
{
	struct rb_facts f = rb_facts(u, t);
	bool logged = false;
	enum rb_action a;
	const char *result;
	char reason[1024];
	json_object *d;
	pid_t pid;

	for (;;) {
		a = update_decide(&f);
		log_debug("update %" PRIu64 " of %s: phase %s, %s: %s", u->id, u->inst->name, update_phase_name(u->phase),
			  update_trigger_name(t), update_action_name(a));
		if (a == RB_KILL_OLD || a == RB_KILL_NEW) {
			pid = a == RB_KILL_OLD ? u->old_pid : u->new_pid;
			if (kill_process(u, a == RB_KILL_OLD ? u->old_pidfd : u->new_pidfd, pid) == 0) {
				u->acted = a;
				return; /* the exit rolls back */
			}
			f.kill_failed = true;
			continue;
		}
		if (a == RB_HOLD_RECLAIM) {
			if (hold_successor(u) == 0)
				break;
			f.hold_failed = true; /* then it is killed first, as without mm accounting */
			continue;
		}
		if (a == RB_RESTART_PREVIOUS) {
			rolling_back(u, &logged);
			u->acted = a;
			/* O is gone (exec'd or dead): a connection its image kept across the exec is not O's, for
			 * whatever follows (the previous binary's claim, a failed restart's next decision, the
			 * verdict) */
			u->old_conn = 0;
			if (restart_previous(u) == 0)
				return;
			f = rb_facts(u, t); /* the phase may have moved (spawn) */
			f.restart_failed = true;
			continue;
		}
		break;
	}
	u->acted = a;
	if (a != RB_STOP && a != RB_FAIL && a != RB_IGNORE && a != RB_CONTINUE)
		rolling_back(u, &logged);
	switch (a) {
	case RB_IGNORE:
	case RB_CONTINUE:
	case RB_KILL_OLD:
	case RB_KILL_NEW:
	case RB_RESTART_PREVIOUS:
		return;
	case RB_STOP:
		u->token_valid = false;
		upd_resume_all(u);
		end_note(u, a, f.old_alive);
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	case RB_FAIL:
		/* the devices' owner runs on (exec mode: the one process; transfer mode: the successor, O gone):
		 * a device still suspended (a mixed instance on path A whose charge check failed before D's
		 * RESUME) would stay stopped under it for good (path A only: path B's reset leaves the flags set on
		 * devices its successor re-created and runs) */
		if (u->route == 'A' && upd_any_suspended(u)) {
			upd_resume_all(u);
			upd_add_note(u, "; its devices resumed under the process that owns them");
		}
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	case RB_KEEP_RETAKE:
		end_note(u, a, f.old_alive);
		instance_hand_over_failed(u->inst, "live update failed while rolling back");
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, NULL);
		return;
	case RB_RETAKE_REOPENED:
		/* path C: the claim released and reopened the device, but the claimant's connection was gone
		 * before the hand-over: O (still attached) takes the fresh fd like a successor */
		u->retake = true;
		u->retake_from = u->phase;
		upd_set_phase(u, PH_ROLLBACK);
		retake_tell(u);
		return;
	case RB_RETAKE: {
		char why[256];

		if (retake_start(u, why, sizeof(why)) == 0)
			return;
		upd_add_note(u, "; bringing the device back to the old VMM failed: %s", why);
		f = rb_facts(u, t); /* lost may have changed */
		result = "failed";
		break;
	}
	case RB_RESUME:
	case RB_RESUME_ORPHANED:
		upd_resume_all(u);
		end_note(u, a, f.old_alive);
		result = update_action_result(a, f.lost);
		break;
	case RB_HOLD_RECLAIM:
		u->acted = a;
		if (iof_reclaim(u) == 0)
			return;
		/* nobody to take the charge back: the held successor is killed at the end (upd_finish()) */
		upd_add_note(u, "; the old VMM's connection is gone: the iommufd charge stays where it is, every fd kept");
		result = "failed";
		break;
	case RB_RECLAIM:
		if (u->iof) {
			if (iof_reclaim(u) == 0)
				return;
			upd_add_note(u, "; the old VMM's connection is gone: the iommufd charge stays where it is, every fd kept");
			result = "failed";
			break;
		}
		reclaim(u);
		result = update_action_result(a, f.lost);
		break;
	case RB_KEEP_SUSPENDED:
	case RB_KEEP:
	default:
		end_note(u, a, f.old_alive);
		result = "failed";
		break;
	}
	if (f.lost)
		result = "failed"; /* device_lost in the verdict */
	upd_error_text(u, reason, sizeof(reason));
	d = upd_event_base(u);
	jadd(d, "reason", jnew_str(reason));
	jadd(d, "phase", jnew_str(update_phase_name(u->phase)));
	jadd(d, "reinit", jnew_bool(u->route == 'B' && u->phase >= PH_EXEC));
	jadd(d, "reclaim", jnew_bool(u->phase >= PH_RESTORE));
	/* O hears it whatever the result and whatever it subscribed to: a "failed" (a device lost, the charge
	 * not taken back) leaves O suspended just as well until it reads this (f: the facts this action was
	 * decided on, not a second scan of O's fds) */
	events_tell(update_tells_old(&f) ? upd_conn_by_id(u->old_conn) : NULL, VLU_EV_UPDATE_ROLLED_BACK,
		    u->inst->name, d);
	upd_finish(u, result, VLU_EV_UPDATE_COMPLETED, NULL);
}

void upd_rollback(struct update *u, enum rb_trigger t, enum cause c, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	upd_set_failure(u, c, "%s", reason);
	upd_rollback_act(u, t);
}

/* ---------------------------------------------------------------- the watchers */

/* A deadline passed: a late process that holds (or is about to take) the fds is killed first; otherwise,
 * or when its exit was never seen, the rollback runs now. */
void upd_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct update *u = container_of(w, struct update, timer);

	(void)loop;
	(void)revents;
	upd_rollback(u, RBT_DEADLINE, CAUSE_TIMEOUT, "timeout in phase %s", update_phase_name(u->phase));
}

void upd_old_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct update *u = container_of(w, struct update, old_io);
	struct rb_facts f = rb_facts(u, RBT_OLD_EXIT);

	(void)loop;
	(void)revents;
	ev_io_stop(vl.loop, w);
	switch (update_decide(&f)) {
	case RB_IGNORE:
		return; /* O may exit once N has everything: D verifies without it */
	case RB_CONTINUE:
		/* transfer mode, O saved and N is started (or named): everything N needs is with D (the saved
		 * state, every fd), so the update goes on without O (a path-C release under way too) */
		log_warning("update %" PRIu64 " of %s: the VMM process %d exited in phase claim; the successor %d may "
			    "still claim", u->id, u->inst->name, (int)u->old_pid, (int)u->new_pid);
		return;
	default:
		upd_rollback(u, RBT_OLD_EXIT, CAUSE_OLD_EXIT, "the VMM process %d exited in phase %s", (int)u->old_pid,
			 update_phase_name(u->phase));
	}
}

void upd_new_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct update *u = container_of(w, struct update, new_io);
	struct rb_facts f = rb_facts(u, RBT_NEW_EXIT);

	(void)loop;
	(void)revents;
	ev_io_stop(vl.loop, w);
	if (update_decide(&f) == RB_IGNORE)
		return; /* the device is being brought back to O: N no longer matters */
	upd_rollback(u, RBT_NEW_EXIT, CAUSE_NEW_EXIT, "the successor %d exited in phase %s", (int)u->new_pid,
		 update_phase_name(u->phase));
}

/* ---------------------------------------------------------------- update.ready from O (the retake) */

/* R14, at O's update.ready: the held successor's VmPin and VmLck (the verdict's held_successor), read by pid
 * only while that pid is still the process D stopped: its pidfd alive and its start time the one read at
 * the SIGSTOP, before and after the read (a pid reused in between reads another process's counters).  Not
 * stopped any more (somebody of its uid sent SIGCONT) is said too: the counters are then a running process's. */
static void held_read(struct update *u)
{
	uint64_t st = 0, st2 = 0;
	char state = '?';
	enum held_look l;
	bool alive;
	int k;

	u->held_pin_kb = u->held_lck_kb = -1;
	alive = upd_pidfd_alive(u->new_pidfd);
	k = alive ? upd_pid_stat_all(u->new_pid, &st, &state) : -ESRCH; /* every thread stopped, not the leader */
	l = update_held_look(alive, k, st, state, u->held_start);
	if (l == HELD_STOPPED || l == HELD_RUNNING) {
		(void)upd_vmpin_read(u->new_pid, &u->held_pin_kb, &u->held_lck_kb);
		/* the same process after the read too (else the counters may be a later process's) */
		alive = upd_pidfd_alive(u->new_pidfd);
		k = upd_pid_starttime(u->new_pid, &st2);
		if (update_held_look(alive, k, st2, state, u->held_start) != l) {
			u->held_pin_kb = u->held_lck_kb = -1;
			l = HELD_GONE;
		}
	}
	u->held_seen = update_held_look_name(l);
	switch (l) {
	case HELD_STOPPED:
		break;
	case HELD_RUNNING:
		upd_add_note(u, "; the successor %d held stopped was running again at the take-back (state %c: "
			     "continued by another process)",
			     (int)u->new_pid, state);
		break;
	case HELD_GONE:
		upd_add_note(u, "; the successor %d held stopped had exited at the take-back", (int)u->new_pid);
		break;
	case HELD_OTHER:
	case HELD_UNREADABLE:
		upd_add_note(u, "; the successor %d held stopped cannot be told to be that process any more (%s): "
			     "its counters are not read",
			     (int)u->new_pid, k < 0 ? strerror(-k) : "another start time");
		break;
	}
}

/* O's update.ready after it took the reopened device back (retake_released): DRIVER_OK and O's VmPin =
 * expected (the re-pin) -> rolled-back, and the event says the device was brought back to O */
int upd_retake_ready(struct request *r, struct update *u, const char *err)
{
	int64_t t0 = now_monotonic_us();
	json_object *v = NULL, *d;
	char reason[1024];
	bool ok = true;

	if (!update_phase_permits(u->phase, EXPECT_READY, PARTY_OLD) || u->claim_job || r->c->cred.pid != u->old_pid)
		return request_error(r, VLU_ERR_PERMISSION_DENIED,
				     "update.ready is for the old VMM once the device was reopened (now: %s)",
				     update_phase_name(u->phase));
	if (u->hold_wait != HOLD_WAIT_NONE)
		return request_error(r, VLU_ERR_PERMISSION_DENIED,
				     "update.ready: the old VMM was not told to take the charge back yet (vlud waits for "
				     "the successor %d to stop)",
				     (int)u->new_pid);
	upd_own_begin(u, t0);
	u->retake = false; /* any failure from here ends the update, no second rollback */
	if (err) {
		upd_add_note(u, "; the old VMM could not take the %s back: %s; every fd kept",
			     u->iof ? "iommufd charge" : "reopened device", err);
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, &v);
		r->ret = v;
		return 0;
	}
	upd_set_phase(u, PH_VERIFY);
	for (unsigned i = 0; i < u->ndevs && ok; i++) {
		uint8_t st = 0;
		int k = upd_dev_status(u, i, &st);

		if (k < 0 || !(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
			upd_add_note(u, "; brought back to the old VMM, but device %s: status %s0x%x, not DRIVER_OK",
				 u->devs[i].name, k < 0 ? "unreadable " : "", st);
			ok = false;
		}
	}
	if (u->iof && ok) {
		char why[512];

		if (upd_iof_ready(u, r->args, why, sizeof(why)) < 0) {
			upd_add_note(u, "; taken back by the old VMM, but %s", why);
			ok = false;
		}
	}
	(void)upd_vmpin_read(u->old_pid, &u->old_after_kb, u->iof ? &u->iof_lck_retaken_kb : NULL);
	if (ok && u->old_after_kb != u->expected_kb) {
		upd_add_note(u, "; brought back to the old VMM, but its VmPin is %" PRId64 " kB, expected %" PRId64 " kB",
			 u->old_after_kb, u->expected_kb);
		ok = false;
	}
	/* mm accounting: the take-back moves VmLck (mm->locked_vm) as well: O's is what it was at the start */
	if (ok && u->iof && !iof_vmlck_retaken(&u->iof_plan, u->iof_lck_before_kb, u->iof_lck_retaken_kb)) {
		upd_add_note(u, "; taken back by the old VMM, but its VmLck is %" PRId64 " kB, %" PRId64
			     " kB before the update (mm accounting)",
			     u->iof_lck_retaken_kb, u->iof_lck_before_kb);
		ok = false;
	}
	/* R14: the stopped successor's counters, the charge gone from its live mm (the verdict) */
	if (u->new_held)
		held_read(u);
	upd_own_end(u);
	if (!ok) {
		upd_finish(u, "failed", VLU_EV_UPDATE_COMPLETED, &v);
		r->ret = v;
		return 0;
	}
	if (u->iof && u->ndevs)
		upd_add_note(u, "; the old VMM (pid %d) took the device%s back (%s) and the iommufd charge "
			     "(IOMMU_IOAS_CHANGE_PROCESS; VmPin %" PRId64 " kB)",
			     (int)u->old_pid, u->ndevs > 1 ? "s" : "",
			     u->route == 'C' ? "reopened, re-pinned" : "VHOST_NEW_OWNER", u->old_after_kb);
	else if (u->iof)
		upd_add_note(u, "; the old VMM (pid %d) took the iommufd charge back (IOMMU_IOAS_CHANGE_PROCESS; VmPin %" PRId64
			     " kB)", (int)u->old_pid, u->old_after_kb);
	else
		upd_add_note(u, "; the device was reopened and brought back to the old VMM (pid %d)", (int)u->old_pid);
	upd_error_text(u, reason, sizeof(reason));
	d = upd_event_base(u);
	jadd(d, "reason", jnew_str(reason));
	jadd(d, "reopened", jnew_bool(u->route == 'C' && u->ndevs));
	jadd(d, "brought_back", jnew_bool(true));
	jadd(d, "pid", jnew_int(u->old_pid));
	events_emit(VLU_EV_UPDATE_ROLLED_BACK, u->inst->name, d);
	upd_finish(u, "rolled-back", VLU_EV_UPDATE_COMPLETED, &v);
	r->ret = v;
	return 0;
}
