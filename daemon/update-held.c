/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-held.c - a successor held stopped (docs/UPDATE.md R14) that outlives its update.  While vlud runs
 * the update, the successor N it stopped for the old VMM's take-back of the iommufd charge (mm accounting)
 * is killed at the update's end (update-rollback.c, upd_held_kill()).  Two ends leave it to this file:
 *
 *   - vlud stops (SIGTERM) during the take-back, with a state the operator says outlives the stop
 *     (update.held_successor_survives_stop, upd_held_survives_stop()): N stays stopped and recorded, and
 *     the next vlud decides (upd_held_leave()); without it N is killed at the stop;
 *   - vlud starts and the state names a held successor (its own stop, or a vlud killed during the
 *     take-back): N is kept stopped until the old VMM O has reattached (O takes the charge back before it
 *     reattaches: docs/UPDATE.md states the contract), or exited, or commit_ms passed since the start-up,
 *     then killed (upd_held_adopt()).  Killing it at once would leave the charge on an mm without users
 *     for a VMM slower than minivmm, whose uncharge is the second kernel bug (docs/IOMMUFD.md).
 *
 * The record (the instance's "held_successor", with O's pid and start time) stays in the state until the
 * kill: it is what a further restart knows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>

#include "config.h"
#include "instance.h"
#include "persist.h"
#include "update-int.h"
#include "vlud.h"

bool upd_held_survives_stop(void)
{
	/* vl.fdstore says only that NOTIFY_SOCKET is set: systemd ignores FDSTORE without FileDescriptorStoreMax,
	 * and a stop drops the store on systemd < 254 or without FileDescriptorStorePreserve=yes, which vlud
	 * cannot see from inside.  The operator says it (docs/CONFIG.md); left stopped with no state that
	 * survives, nothing would ever end the successor */
	return vl.fdstore && vl.state_fd >= 0 && vl.cfg->update_policy.held_successor_survives_stop;
}

static void held_stop_watch(struct upd_held *h)
{
	ev_timer_stop(vl.loop, &h->timer);
	ev_io_stop(vl.loop, &h->old_io);
}

static void held_retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* an end came while the record is unidentified (upd_held_unidentified()): one fresh attempt.  1: h->pidfd is
 * that process's now (the kill goes on); 0: it has exited or its pid is another process's (logged, the
 * record gone); -errno: still unidentified (logged, the record kept; killed once identified) */
static int held_identify(struct upd_inst *ui, const char *why)
{
	struct upd_held *h = &ui->held;
	struct state_reservation rs = { .pid = h->pid, .start = h->start, .update = h->update };
	const char *name = h->inst->name;
	uint64_t st = 0;
	int fd, k = upd_recorded_pidfd(&rs, &st, &fd);

	if (k == 0 && st == h->start) {
		/* the check the restart could not make: a process of the instance's uid only */
		k = upd_held_uid_check(h->inst, h->pid, fd);
		if (k > 0) {
			safe_close(fd);
			*h = (struct upd_held){ .pidfd = -EBADF, .old_pidfd = -EBADF };
			persist_state_write();
			return 0;
		}
		if (k == 0) {
			h->pidfd = fd;
			h->unidentified = false;
			return 1;
		}
		safe_close(fd);
	}
	if (k == 0 || k == -ENOENT || k == -ESRCH) {
		log_info("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " %s (%s)", name,
			 (int)h->pid, h->update, k == 0 ? "is gone (its pid is another process now)" : "has exited", why);
		*h = (struct upd_held){ .pidfd = -EBADF, .old_pidfd = -EBADF };
		persist_state_write();
		return 0;
	}
	if (h->final || persist_frozen()) {
		/* the instance goes, or vlud exits: nothing tries again (a state that survives still names it) */
		log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " is to be "
			  "killed (%s) but cannot be identified (/proc/%d: %s); it may stay stopped",
			  name, (int)h->pid, h->update, why, (int)h->pid, strerror(-k));
		return k;
	}
	log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " is to be killed "
		  "(%s) but cannot be identified (/proc/%d: %s): its record is kept, it is killed once identified",
		  name, (int)h->pid, h->update, why, (int)h->pid, strerror(-k));
	h->kill_found = true;
	snprintf(h->end_why, sizeof(h->end_why), "%s", why);
	ev_timer_init(&h->timer, held_retry_cb, 1., 0.);
	ev_timer_start(vl.loop, &h->timer);
	return k;
}

void upd_held_end(struct upd_inst *ui, bool kill, const char *fmt, ...)
{
	struct upd_held *h = &ui->held;
	const char *name = h->inst ? h->inst->name : "?";
	char why[256];
	va_list ap;
	int k = 0;

	if (!h->pid)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	held_stop_watch(h);
	if (kill && h->pidfd < 0 && held_identify(ui, why) <= 0)
		return; /* gone (the record with it), or still unidentified (kept, killed once identified) */
	if (!kill)
		log_warning("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " stays "
			    "stopped (%s): the state names it, the next vlud decides",
			    name, (int)h->pid, h->update, why);
	else if (pidfd_send_signal(h->pidfd, SIGKILL, NULL, 0) < 0)
		k = -errno;
	if (kill && k == 0)
		log_warning("instance %s: killed the successor %d that vlud had stopped during update %" PRIu64
			    " until the old VMM took the iommufd charge back: %s",
			    name, (int)h->pid, h->update, why);
	else if (kill && k == -ESRCH)
		log_info("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " has exited (%s)",
			 name, (int)h->pid, h->update, why);
	else if (kill)
		log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64
			  " could not be killed: %s (%s); it may stay stopped",
			  name, (int)h->pid, h->update, strerror(-k), why);
	h->pidfd = safe_close(h->pidfd);
	h->old_pidfd = safe_close(h->old_pidfd);
	h->pid = h->old_pid = 0;
	h->start = h->old_start = h->update = 0;
	h->unidentified = h->kill_found = false;
	if (kill)
		persist_state_write(); /* the record goes with the process (left: it stays, the next vlud's) */
}

static void held_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upd_held *h = container_of(w, struct upd_held, timer);

	(void)loop;
	(void)revents;
	upd_held_end(h->inst->update, true, "commit_ms (%u ms) passed since vlud started, the old VMM %s",
		     vl.cfg->update.commit_ms, h->old_pid ? "did not reattach" : "unknown (an older record)");
}

static void held_old_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upd_held *h = container_of(w, struct upd_held, old_io);

	(void)loop;
	(void)revents;
	upd_held_end(h->inst->update, true, "the old VMM %d exited", (int)h->old_pid);
}

static void held_watch(struct upd_held *h)
{
	ev_now_update(vl.loop); /* at start-up the loop's time is its creation's: commit_ms from now */
	ev_timer_init(&h->timer, held_deadline_cb, vl.cfg->update.commit_ms / 1000.0, 0.);
	ev_timer_start(vl.loop, &h->timer);
	ev_io_init(&h->old_io, held_old_exit_cb, h->old_pidfd, EV_READ);
	if (h->old_pidfd >= 0)
		ev_io_start(vl.loop, &h->old_io);
}

/* the next attempt at a record kept unidentified: an end that came meanwhile kills it once identified,
 * else the restart's rule (upd_held_restore()) */
static void held_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upd_held *h = container_of(w, struct upd_held, timer);
	struct state_reservation rs = { .pid = h->pid, .start = h->start, .update = h->update,
					.old_pid = h->old_pid, .old_start = h->old_start };
	struct instance *inst = h->inst;
	char why[sizeof(h->end_why)];

	(void)loop;
	(void)revents;
	ev_timer_stop(vl.loop, &h->timer);
	if (h->kill_found) {
		snprintf(why, sizeof(why), "%s", h->end_why);
		upd_held_end(inst->update, true, "%s", why);
		return;
	}
	*h = (struct upd_held){ .pidfd = -EBADF, .old_pidfd = -EBADF };
	upd_held_restore(inst, &rs, true);
	/* identified or dropped: the state says so; still unidentified, it names the record as before (no write
	 * every second while /proc keeps failing) */
	if (!(h->unidentified && h->pid == rs.pid))
		persist_state_write();
}

void upd_held_unidentified(struct instance *inst, const struct state_reservation *rs)
{
	struct upd_inst *ui = upd_ui_get(inst, true);

	if (!ui) {
		log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64 ": its record "
			  "is lost (no memory); it may stay stopped",
			  inst->name, (int)rs->pid, rs->update);
		return;
	}
	ui->held = (struct upd_held){
		.inst = inst,
		.pid = rs->pid,
		.pidfd = -EBADF,
		.start = rs->start,
		.update = rs->update,
		.old_pid = rs->old_pid,
		.old_pidfd = -EBADF,
		.old_start = rs->old_start,
		.unidentified = true,
	};
	/* the record stays in every state written meanwhile (update_persist_held()): what a further restart
	 * knows */
	ev_io_init(&ui->held.old_io, held_old_exit_cb, -1, EV_READ);
	ev_timer_init(&ui->held.timer, held_retry_cb, 1., 0.);
	ev_timer_start(vl.loop, &ui->held.timer);
}

int upd_held_leave(struct update *u)
{
	struct upd_inst *ui = upd_ui_get(u->inst, true);
	int fd;

	if (!ui || ui->held.pid)
		return -EBUSY;
	fd = fcntl(u->new_pidfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	ui->held = (struct upd_held){
		.inst = u->inst,
		.pid = u->new_pid,
		.pidfd = fd,
		.start = u->held_start,
		.update = u->id,
		.old_pid = u->held_old_start ? u->old_pid : 0,
		.old_pidfd = -EBADF,
		.old_start = u->held_old_start,
	};
	/* no watcher: the loop ends with the connections; the state written at the update's end names it */
	ev_timer_init(&ui->held.timer, held_deadline_cb, 0., 0.);
	ev_io_init(&ui->held.old_io, held_old_exit_cb, -1, EV_READ);
	return 0;
}

void upd_held_adopt(struct instance *inst, const struct state_reservation *rs, int pidfd, int old_pidfd,
		    const char *old_gone)
{
	struct upd_inst *ui = upd_ui_get(inst, true);
	char who[64] = "";

	if (!ui) {
		log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64 ": no memory, "
			  "killed now",
			  inst->name, (int)rs->pid, rs->update);
		(void)pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		safe_close(pidfd);
		safe_close(old_pidfd);
		return;
	}
	ui->held = (struct upd_held){
		.inst = inst,
		.pid = rs->pid,
		.pidfd = pidfd,
		.start = rs->start,
		.update = rs->update,
		.old_pid = rs->old_pid,
		.old_pidfd = old_pidfd,
		.old_start = rs->old_start,
	};
	if (old_gone) {
		upd_held_end(ui, true, "%s", old_gone);
		return;
	}
	/* the previous vlud may have died between its record and its SIGSTOP: stopped now in any case */
	if (pidfd_send_signal(pidfd, SIGSTOP, NULL, 0) < 0 && errno == ESRCH) {
		upd_held_end(ui, true, "it exited before the restart");
		return;
	}
	held_watch(&ui->held);
	if (rs->old_pid)
		snprintf(who, sizeof(who), "the old VMM %d reattaches or exits, or ", (int)rs->old_pid);
	log_warning("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " stays stopped "
		    "until %scommit_ms (%u ms) passed: the old VMM may still take the iommufd charge back from its mm",
		    inst->name, (int)rs->pid, rs->update, who, vl.cfg->update.commit_ms);
}
