/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-restore.c - the live-update engine across a restart of vlud: the running update's record,
 * the last verdict and the mapping table as the state document keeps them (persist.c asks), and
 * update_restore() at start-up, which ends an update that was running when the previous vlud died.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "device.h"
#include "events.h"
#include "fdtype.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "state.h"
#include "update-int.h"
#include "update.h"
#include "vlud-vhost.h"
#include "vlud.h"

/* ---------------------------------------------------------------- persistence across a restart of vlud
 *
 * The running update is part of the state document (daemon/state.h "updates", written by persist.c from
 * update_persist_record() at every phase change and at the end), and so is each instance's last
 * verdict ("last_update").  A vlud started after a SIGKILL or a crash finds the record: update_restore()
 * brings back what it can for the phase the update was in (docs/UPDATE.md "vlud restarted during an
 * update") and ends the update with a failed verdict. */

/* pid's start time into *start, cached (*of = pid) only when read while pidfd says it lives (the pid was
 * that process at the read); 0 and not cached otherwise: a failed read (EMFILE, ENOMEM) is tried again at
 * the next write.  pid 0 (none yet): 0, cached. */
static void start_of(pid_t pid, int pidfd, uint64_t *start, pid_t *of)
{
	*start = 0;
	if (!pid) {
		*of = 0;
		return;
	}
	if (upd_pid_starttime(pid, start) == 0 && upd_pidfd_alive(pidfd))
		*of = pid;
	else
		*start = 0;
}

/* the record of inst's running update; false when none runs */
bool update_persist_record(struct instance *inst, struct state_update *ret)
{
	struct upd_inst *ui = inst->update;
	struct update *u = ui ? ui->cur : NULL;
	enum phase ph;

	if (!u || !u->id)
		return false;
	/* an update ending (upd_finish()) is recorded at the phase it ended in, until its verdict is */
	ph = u->phase == PH_DONE ? u->ended_in : u->phase;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->instance, sizeof(ret->instance), "%s", inst->name);
	ret->id = u->id;
	snprintf(ret->mode, sizeof(ret->mode), "%s", upd_mode_name(u->mode));
	ret->path = u->route;
	snprintf(ret->phase, sizeof(ret->phase), "%s", update_phase_name(ph));
	ret->old_pid = u->old_pid;
	ret->new_pid = u->new_pid > 0 ? u->new_pid : 0;
	/* who they are: a restarted vlud reserves the instance to one of them only if its pid is still that
	 * process (read while the update runs with them: once per pid, not at every phase) */
	if (u->old_start_of != u->old_pid)
		start_of(u->old_pid, u->old_pidfd, &u->old_start, &u->old_start_of);
	if (u->new_start_of != ret->new_pid)
		start_of(ret->new_pid,
			 ret->new_pid == u->old_pid ? u->old_pidfd : u->new_pidfd >= 0 ? u->new_pidfd : u->claim_pidfd,
			 &u->new_start, &u->new_start_of);
	ret->old_start = u->old_start;
	ret->new_start = ret->new_pid ? u->new_start : 0;
	ret->started_us = now_realtime_us() - (now_monotonic_us() - u->t_start_us);
	for (unsigned i = 0; i < u->ndevs && i < VLUD_STATE_UPDATE_MAX_DEVS; i++) {
		struct state_update_dev *d = &ret->devs[ret->n_devs++];

		snprintf(d->name, sizeof(d->name), "%s", u->devs[i].name);
		/* in phase suspend the SUSPENDs run after this record is written: count them as done (a
		 * RESUME of a device that is not suspended does nothing, kernel-facts.md 5) */
		d->suspended = u->devs[i].suspended ||
			       (ph == PH_SUSPEND && upd_has_bf(u->devs[i].backend, VHOST_BACKEND_F_SUSPEND));
		/* likewise SET_STATUS 0 runs in phase reset, after the record */
		d->reset = u->route == 'B' && ph >= PH_RESET && ph != PH_ROLLBACK;
		d->released = u->devs[i].lost || u->release_us >= 0 || u->claim_job;
		if (u->devs[i].path && strlen(u->devs[i].path) <= VLUD_STATE_DEV_MAX &&
		    strlen(u->devs[i].device ? u->devs[i].device : "") <= VLUD_STATE_DEV_MAX) {
			snprintf(d->node, sizeof(d->node), "%s", u->devs[i].path);
			snprintf(d->device, sizeof(d->device), "%s", u->devs[i].device ? u->devs[i].device : "");
		}
	}
	/* the iommufd and VFIO fds (docs/UPDATE.md "An update of iommufd/VFIO devices"): an iommufd-only
	 * update is recorded by them alone (state.h "iommufd_update"), a mixed one beside its devices */
	if (u->iof) {
		struct list *p, *n;

		list_for_each_safe(p, n, &inst->held) {
			struct held *h = list_entry(p, struct held, link);

			if (h->type != VLUD_FD_IOMMUFD && h->type != VLUD_FD_VFIO)
				continue;
			if (ret->n_iof >= VLUD_STATE_UPDATE_MAX_IOF)
				break;
			snprintf(ret->iof[ret->n_iof++], sizeof(ret->iof[0]), "%s", h->name);
		}
	}
	return ret->n_devs > 0 || ret->n_iof > 0;
}

/* inst's last verdict as JSON text for the state (malloc()ed, at most VLUD_STATE_VERDICT_MAX bytes: a
 * bigger one keeps only its main members, with "truncated":true), NULL when there is none */
char *update_persist_last(struct instance *inst)
{
	static const char *const keep[] = { "instance", "id", "result", "mode", "path", "old_pid", "new_pid",
					    "restarted_previous", "phase", "interrupted_by_restart", "device_lost" };
	struct upd_inst *ui = inst->update;
	_cleanup_json_ json_object *small = NULL;
	const char *t;

	if (!ui || !ui->last)
		return NULL;
	t = json_object_to_json_string_ext(ui->last, JSON_C_TO_STRING_PLAIN);
	if (t && strlen(t) <= VLUD_STATE_VERDICT_MAX)
		return strdup(t);
	small = jnew_obj();
	if (!small)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
		json_object *v;

		if (json_object_object_get_ex(ui->last, keep[i], &v))
			jadd(small, keep[i], json_object_get(v));
	}
	{
		const char *e = upd_jstr(ui->last, "error");
		char eb[1024];

		if (e) {
			snprintf(eb, sizeof(eb), "%s", e);
			jadd(small, "error", jnew_str(eb));
		}
	}
	jadd(small, "truncated", jnew_bool(true));
	t = json_object_to_json_string_ext(small, JSON_C_TO_STRING_PLAIN);
	return t && strlen(t) <= VLUD_STATE_VERDICT_MAX ? strdup(t) : NULL;
}

/* inst's mapping table {"mappings":[...],"devices":[...],"ioas"?:[...]} as JSON text for the state (malloc()ed), NULL
 * when none was declared (or it exceeds VLUD_STATE_MAPPINGS_MAX: then a restarted vlud has none) */
char *update_persist_mappings(struct instance *inst)
{
	struct upd_inst *ui = inst->update;
	_cleanup_json_ json_object *o = NULL;
	const char *t;

	if (!ui || !ui->mappings)
		return NULL;
	o = jnew_obj();
	if (!o)
		return NULL;
	jadd(o, "mappings", json_object_get(ui->mappings));
	jadd(o, "devices", ui->devices ? json_object_get(ui->devices) : jnew_arr());
	if (ui->ioas)
		jadd(o, "ioas", json_object_get(ui->ioas));
	t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	return t && strlen(t) <= VLUD_STATE_MAPPINGS_MAX ? strdup(t) : NULL;
}

struct state_reservation update_persist_held(struct instance *inst)
{
	struct upd_inst *ui = inst->update;
	struct update *u = ui ? ui->cur : NULL;

	/* one that outlived its update (update-held.c), else the running update's */
	if (ui && ui->held.pid)
		return (struct state_reservation){ .pid = ui->held.pid,
						   .start = ui->held.start,
						   .update = ui->held.update,
						   .old_pid = ui->held.old_pid,
						   .old_start = ui->held.old_start };
	if (!u || !u->new_held || u->new_pid <= 0)
		return (struct state_reservation){};
	return (struct state_reservation){ .pid = u->new_pid,
					   .start = u->held_start,
					   .update = u->id,
					   .old_pid = u->held_old_start ? u->old_pid : 0,
					   .old_start = u->held_old_start };
}

struct state_reservation update_persist_reserved(struct instance *inst)
{
	struct upd_inst *ui = inst->update;

	if (!ui || !ui->heir_pid)
		return (struct state_reservation){};
	return (struct state_reservation){ .pid = ui->heir_pid, .start = ui->heir_start, .update = ui->heir_update };
}

static bool pid_exists(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

#define APPENDF(buf, ...) snprintf((buf) + strlen(buf), sizeof(buf) - strlen(buf), __VA_ARGS__)

/* A released device of su's record that no held fd has: open its node again under the same name. */
static void reopen_released(struct instance *inst, const struct state_update_dev *d)
{
	struct held *nh;
	int k = held_open_device(inst, d->name, d->device[0] ? d->device : NULL, d->node, 0, &nh);

	if (k < 0)
		log_warning("%s: reopen of the released device %s (%s) after the restart: %s", inst->name, d->name,
			    d->node, strerror(-k));
	else
		log_info("%s: released device %s reopened after the restart (%s)", inst->name, d->name, d->node);
}

/* One update that was running when the previous vlud died (record su of the adopted state); held: whether
 * the state names its successor held stopped (R14). */
static void restore_one(struct instance *inst, const struct state_update *su, enum restart_held held)
{
	struct upd_inst *ui = upd_ui_get(inst, true);
	int k_ph = update_phase_by_name(su->phase);
	enum phase ph = k_ph < 0 ? PH_DONE : (enum phase)k_ph;
	bool released = false, reset = false, old_owns, resume;
	json_object *v, *st, *resumed, *lost = NULL, *iof = NULL;
	const char *why_owner;
	char err[4096] = ""; /* 16 devices and 32 iommufd/VFIO fds, each with its state */
	pid_t heir;
	int heir_fd = -EBADF;
	uint64_t heir_start = 0, want_start;
	uid_t heir_uid = (uid_t)-1;
	char mode_c = su->path;

	if (!ui)
		return;
	for (unsigned i = 0; i < su->n_devs; i++) {
		released |= su->devs[i].released;
		reset |= su->devs[i].reset;
	}
	/* does the old image still own the devices (nothing reset, released or claimed, and in exec mode
	 * the process has not exec'ed yet: it still holds its own copy of every device)? */
	old_owns = ph <= PH_CLAIM && !released && !reset;
	why_owner = "";
	if (old_owns && strcmp(su->mode, "exec") == 0 && ph >= PH_EXEC) {
		/* update.exec was sent: the old image may have exec'ed (its device fds closed with CLOEXEC) */
		for (unsigned i = 0; i < su->n_devs && old_owns; i++) {
			struct held *h = held_find(inst, su->devs[i].name);
			int k = h ? upd_pid_holds_rdev(su->old_pid, (dev_t)h->rdev) : -ENOENT;

			if (k <= 0) {
				old_owns = false;
				why_owner = k == 0 ? "the old image exec'ed (pid holds no copy of the device)"
						   : "cannot tell whether the old image exec'ed";
			}
		}
	}
	/* an iommufd-only update: nothing was suspended (the devices never stop), nothing to resume */
	resume = old_owns && su->n_devs > 0;
	APPENDF(err, "vlud restarted during the update (phase %s): ", su->phase);
	if (!su->n_devs && ph == PH_DONE)
		APPENDF(err, "the update was ending (its own verdict was not recorded); every fd kept");
	else if (!su->n_devs && held == RESTART_HELD_YES)
		APPENDF(err, "the successor (pid %d) had failed and was held stopped for the old VMM's take-back of "
			     "the iommufd charge: the old VMM (pid %d, %s) takes it back (IOMMU_IOAS_CHANGE_PROCESS), "
			     "every fd kept",
			(int)su->new_pid, (int)su->old_pid, pid_exists(su->old_pid) ? "alive" : "exited");
	else if (!su->n_devs && ph == PH_ROLLBACK)
		APPENDF(err, "the old VMM (pid %d, %s) was taking the iommufd charge back (IOMMU_IOAS_CHANGE_PROCESS); "
			     "every fd kept",
			(int)su->old_pid, pid_exists(su->old_pid) ? "alive" : "exited");
	else if (!su->n_devs && ph >= PH_RESTORE)
		APPENDF(err, "the successor (pid %d, %s) had claimed every fd; the iommufd charge is its own once its "
			     "IOMMU_IOAS_CHANGE_PROCESS ran (vlud cannot tell whether it did); every fd kept",
			(int)su->new_pid, pid_exists(su->new_pid) ? "alive" : "exited");
	else if (!su->n_devs && strcmp(su->mode, "exec") == 0 && ph >= PH_EXEC)
		APPENDF(err, "before the claim, the iommufd charge is the old image's (pid %d, %s; it may have "
			     "exec'ed: the new image in that pid takes the charge with its IOMMU_IOAS_CHANGE_PROCESS); "
			     "nothing was suspended (iommufd/VFIO devices never stop), every fd kept (instance "
			     "orphaned: reattach with instance.register reattach:true)",
			(int)su->old_pid, pid_exists(su->old_pid) ? "alive" : "exited");
	else if (!su->n_devs)
		APPENDF(err, "before the hand-over, the old VMM (pid %d, %s) holds the iommufd charge; nothing was "
			     "suspended (iommufd/VFIO devices never stop), every fd kept (instance orphaned: reattach "
			     "with instance.register reattach:true)",
			(int)su->old_pid, pid_exists(su->old_pid) ? "alive" : "exited");
	else if (resume)
		APPENDF(err, "before the hand-over, the old VMM (pid %d, %s) still owns the device: devices resumed, "
			     "every fd kept (instance orphaned: reattach with instance.register reattach:true)",
			(int)su->old_pid, pid_exists(su->old_pid) ? "alive" : "exited");
	else if (ph == PH_DONE)
		APPENDF(err, "the update was ending (its own verdict was not recorded); every fd kept");
	else if (ph >= PH_RESTORE && ph != PH_ROLLBACK)
		APPENDF(err, "the successor (pid %d, %s) had claimed every fd%s; vlud keeps every fd, the device is "
			     "as the successor left it",
			(int)su->new_pid, pid_exists(su->new_pid) ? "alive" : "exited",
			mode_c == 'C' ? " (path C: a fresh open of the device)" : "");
	else if (released)
		APPENDF(err, "path C: vlud had released the old device (reset, unpinned) for the claim; every fd kept, "
			     "the device is not brought back");
	else if (reset)
		APPENDF(err, "path B: vlud had reset the device (status 0) for the successor; every fd kept, the old "
			     "VMM must re-create its vrings (it was not told)");
	else
		APPENDF(err, "%s: devices stay suspended, every fd kept", why_owner);

	st = jnew_arr();
	resumed = jnew_arr();
	APPENDF(err, ";");
	/* path C: vlud died between the release of a device and its reopen (the fd store had let go of it
	 * with the release): open the node again, as the claim would have, so that the instance holds its
	 * device again (a fresh open: reset, nothing mapped); found by the chaos soak (docs/SOAK.md) */
	for (unsigned i = 0; i < su->n_devs; i++) {
		const struct state_update_dev *d = &su->devs[i];

		if (d->released && d->node[0] && !held_find(inst, d->name))
			reopen_released(inst, d);
	}
	for (unsigned i = 0; i < su->n_devs; i++) {
		const struct state_update_dev *d = &su->devs[i];
		struct held *h = held_find(inst, d->name);
		json_object *e = jnew_obj();
		uint8_t s = 0;
		int k = 0;

		jadd(e, "device", jnew_str(d->name));
		if (!h) {
			if (!lost)
				lost = jnew_arr();
			jappend(lost, jnew_str(d->name));
			jadd(e, "status", NULL);
			jappend(st, e);
			APPENDF(err, " %s: no fd held (%s)", d->name, d->released ? "released and not reopened: device lost"
										  : "missing from the fd store");
			continue;
		}
		if (resume && d->suspended) {
			k = ioctl(h->fd, VHOST_VDPA_RESUME) < 0 ? -errno : 0;
			if (k < 0)
				log_warning("update %" PRIu64 " of %s: RESUME %s after the restart: %s", su->id, inst->name,
					    d->name, strerror(-k));
			else
				jappend(resumed, jnew_str(d->name));
		}
		if (ioctl(h->fd, VHOST_VDPA_GET_STATUS, &s) < 0) {
			jadd(e, "status", NULL);
			APPENDF(err, " %s: status unreadable (%s)", d->name, strerror(errno));
		} else {
			jadd(e, "status", jnew_int(s));
			APPENDF(err, " %s: %s, status 0x%x%s", d->name,
				resume && d->suspended ? (k < 0 ? "RESUME failed" : "resumed")
				: d->released	       ? "released, then reopened by vlud (a fresh open)"
				: d->reset	       ? "reset by vlud"
				: d->suspended	       ? "suspended by vlud, not resumed"
						       : "not suspended",
				s, (s & VIRTIO_CONFIG_S_DRIVER_OK) ? " (DRIVER_OK)" : "");
		}
		jappend(st, e);
	}
	/* the iommufd and VFIO fds: held, or lost like a device with no fd held */
	if (su->n_iof) {
		iof = jnew_arr();
		APPENDF(err, "%s iommufd/VFIO fds:", su->n_devs ? ";" : "");
	}
	for (unsigned i = 0; i < su->n_iof; i++) {
		bool have = held_find(inst, su->iof[i]) != NULL;

		jappend(iof, jnew_str(su->iof[i]));
		if (!have) {
			if (!lost)
				lost = jnew_arr();
			jappend(lost, jnew_str(su->iof[i]));
		}
		APPENDF(err, "%s %s: %s", i ? "," : "", su->iof[i],
			have ? "held" : "no fd held (missing from the fd store)");
	}

	/* who owns the device now: the old VMM before the hand-over (and while a rollback brings it back),
	 * the successor once it claimed (transfer mode; in exec mode both are the one process).  While that
	 * process lives only it may reattach the instance: the other one, told nothing by the dead vlud,
	 * would take over an instance whose device it does not own (chaos soak seed 6, docs/SOAK.md) */
	switch (update_restart_heir(ph, resume, released, held)) {
	case HEIR_OLD:
		heir = su->old_pid;
		break;
	case HEIR_NEW:
		heir = su->new_pid;
		break;
	default:
		heir = 0;
		break;
	}
	if (!heir && held == RESTART_HELD_UNREADABLE && ph >= PH_RESTORE && ph <= PH_COMMIT)
		APPENDF(err, "; reserved to nobody: the state's record of a held successor is malformed (the "
			     "successor %d may be held stopped)",
			(int)su->new_pid);
	/* this update is newer than any reservation the state kept: it decides alone */
	upd_heir_drop(ui);
	/* the start time the record has for that pid (0: none, an older vlud's record) must still be the pid's:
	 * else the process exited and the pid names another one now */
	want_start = heir == su->old_pid ? su->old_start : su->new_start;
	if (heir > 0 && (heir == su->old_pid ? su->old_start_bad : su->new_start_bad)) {
		log_warning("update %" PRIu64 " of %s: the record's start time of pid %d is malformed: it cannot be "
			    "identified, no reservation",
			    su->id, inst->name, (int)heir);
		heir = 0;
	}
	if (heir > 0 && want_start && upd_pid_starttime(heir, &heir_start) == 0 && heir_start != want_start) {
		log_warning("update %" PRIu64 " of %s: pid %d owned the device, but it is another process now (start "
			    "time %" PRIu64 ", recorded %" PRIu64 "): no reservation",
			    su->id, inst->name, (int)heir, heir_start, want_start);
		heir = 0;
	}
	/* the start time, read once the pidfd is open, names the process in the state: a further restart
	 * keeps the reservation only for that process, not for a later one given the same pid */
	/* and the process is the instance's tenant's (a record without a start time, or a pid given to another
	 * tenant's process between two reads, must not lock the instance for someone else) */
	if (heir > 0 && (heir_fd = pidfd_open(heir, 0)) >= 0 && upd_pid_starttime(heir, &heir_start) == 0 &&
	    upd_pid_euid(heir, &heir_uid) == 0 && heir_uid != inst->uid) {
		log_warning("update %" PRIu64 " of %s: pid %d is a process of uid %u now, not the instance's %u: no "
			    "reservation",
			    su->id, inst->name, (int)heir, (unsigned)heir_uid, (unsigned)inst->uid);
		heir_uid = (uid_t)-1;
	}
	if (heir > 0 && heir_fd >= 0 && heir_uid == inst->uid && (!want_start || heir_start == want_start) &&
	    upd_pidfd_alive(heir_fd)) {
		ui->heir_pid = heir;
		ui->heir_pidfd = heir_fd;
		ui->heir_start = heir_start;
		ui->heir_update = su->id;
		APPENDF(err, "; the instance is reserved to pid %d (it %s): only it reattaches while it lives",
			(int)heir, su->n_devs ? "owned the device" : "holds the iommufd charge");
	} else {
		safe_close(heir_fd);
		heir = 0;
	}

	v = jnew_obj();
	jadd(v, "instance", jnew_str(inst->name));
	jadd(v, "id", jnew_uint(su->id));
	jadd(v, "mode", jnew_str(su->mode));
	jadd(v, "path", jnew_str(upd_route_str(su->path)));
	jadd(v, "result", jnew_str("failed"));
	jadd(v, "old_pid", jnew_int(su->old_pid));
	jadd(v, "new_pid", su->new_pid ? jnew_int(su->new_pid) : NULL);
	jadd(v, "restarted_previous", jnew_bool(false));
	jadd(v, "interrupted_by_restart", jnew_bool(true));
	jadd(v, "phase", jnew_str(su->phase));
	jadd(v, "resumed", resumed);
	jadd(v, "status_after", st);
	jadd(v, "reattach_reserved_for", heir ? jnew_int(heir) : NULL);
	if (iof)
		jadd(v, "iommufd_fds", iof);
	if (lost)
		jadd(v, "device_lost", lost);
	jadd(v, "total_ms",
			       jnew_double((double)(now_realtime_us() - su->started_us) / 1000.0));
	jadd(v, "error", jnew_str(err));
	log_warning("update %" PRIu64 " of %s: failed: %s", su->id, inst->name, err);
	events_emit(VLU_EV_UPDATE_COMPLETED, inst->name, json_object_get(v));
	json_object_put(ui->last);
	ui->last = v;
}

/* The process a record names (pid and start time): 0 and *st, pid's start time now; when that is
 * rs->start, *fd is a pidfd of that very process, alive, else pid names another process now and nothing is
 * opened.  -errno (-ENOENT, -ESRCH: it exited; other: /proc unreadable) with *fd -EBADF.  The start time is
 * read before pidfd_open() (a pid that names another process now is not opened at all) and again after it
 * (the pidfd is then that process's, not a later one's). */
int upd_recorded_pidfd(const struct state_reservation *rs, uint64_t *st, int *fd)
{
	int k;

	*fd = -EBADF;
	*st = 0;
	k = upd_pid_starttime(rs->pid, st);
	if (k == 0 && *st == rs->start) {
		*fd = pidfd_open(rs->pid, 0);
		k = *fd < 0 ? -errno : upd_pid_starttime(rs->pid, st);
		if (k == 0 && (*st != rs->start || !upd_pidfd_alive(*fd)))
			k = -ESRCH; /* it exited in between (the pid may even be another process's by now) */
		if (k < 0)
			*fd = safe_close(*fd);
	}
	return k;
}

/* Is the held successor pid, identified by its pidfd fd, a process of the instance's uid?  Read by pid: still
 * that process after the read while its pidfd is alive.  0 yes; 1 another uid's (logged: the record is
 * dropped, nothing signalled); -errno when it could not be read or has exited. */
int upd_held_uid_check(const struct instance *inst, pid_t pid, int fd)
{
	uid_t uid = 0;
	int k = upd_pid_euid(pid, &uid);

	if (k == 0 && !upd_pidfd_alive(fd))
		k = -ESRCH;
	if (k == 0 && uid != inst->uid) {
		log_error("state: instance %s: its held successor record names pid %d, a process of uid %u, not the "
			  "instance's %u: dropped, nothing signalled",
			  inst->name, (int)pid, (unsigned)uid, (unsigned)inst->uid);
		return 1;
	}
	return k;
}

/* R14: a successor the previous vlud had stopped (SIGSTOP) while the old VMM took the iommufd charge back
 * from its mm (and would have killed at the update's end, or left stopped when it stopped): kept stopped
 * until the old VMM reattached or exited, or commit_ms passed (update-held.c), then killed; killed now when
 * the old VMM is gone already.  Left stopped for good, it would keep copies of the instance's fds; killed
 * at once, a VMM slower than minivmm would take the charge from a dead mm (mm accounting: the second kernel
 * bug on a kernel without the fix, docs/IOMMUFD.md).  The record stays in the state until the kill. */
void upd_held_restore(struct instance *inst, const struct state_reservation *rs, bool retry)
{
	struct state_reservation o;
	char gone[160] = "";
	uint64_t st = 0, ost = 0;
	int fd, ofd = -EBADF, k, ko;

	/* a record is no proof: vlud signals nothing that cannot be a successor of this instance (pid 1 or
	 * below, vlud itself, a process of another uid than the instance's) */
	if (rs->pid <= 1 || rs->pid == getpid()) {
		log_error("state: instance %s: its held successor record names pid %d, which cannot be a successor: "
			  "dropped, nothing signalled",
			  inst->name, (int)rs->pid);
		return;
	}
	k = upd_recorded_pidfd(rs, &st, &fd);
	if (k == 0 && st != rs->start) {
		log_info("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " is gone (pid %d "
			 "is another process now)",
			 inst->name, (int)rs->pid, rs->update, (int)rs->pid);
		return;
	}
	if (k == 0) {
		k = upd_held_uid_check(inst, rs->pid, fd);
		if (k > 0) {
			safe_close(fd);
			return;
		}
		if (k < 0)
			fd = safe_close(fd);
	}
	if (k == -ESRCH || k == -ENOENT) {
		log_info("instance %s: the successor %d that vlud had stopped during update %" PRIu64 " has exited",
			 inst->name, (int)rs->pid, rs->update);
		return;
	}
	if (k < 0) {
		/* a transient failure (EMFILE, ENOMEM): dropping the record would leave a stopped successor that
		 * no vlud knows of any more; kept, and identified again every second */
		if (!retry)
			log_error("instance %s: the successor %d that vlud had stopped during update %" PRIu64
				  " cannot be identified (/proc/%d: %s): its record is kept, tried again every second",
				  inst->name, (int)rs->pid, rs->update, (int)rs->pid, strerror(-k));
		upd_held_unidentified(inst, rs);
		return;
	}
	/* the old VMM, told by its start time like the successor: gone means its take-back is over (done, or
	 * never to be done) */
	if (rs->old_pid) {
		o = (struct state_reservation){ .pid = rs->old_pid, .start = rs->old_start, .update = rs->update };
		ko = upd_recorded_pidfd(&o, &ost, &ofd);
		if (ko == 0 && ost != rs->old_start)
			snprintf(gone, sizeof(gone), "the old VMM %d is gone (pid %d is another process now)",
				 (int)rs->old_pid, (int)rs->old_pid);
		else if (ko == -ESRCH || ko == -ENOENT)
			snprintf(gone, sizeof(gone), "the old VMM %d has exited", (int)rs->old_pid);
		else if (ko < 0)
			/* cannot tell: not watched, its reattach or the deadline decides */
			log_warning("instance %s: the old VMM %d of update %" PRIu64 " cannot be identified (%s): its "
				    "held successor %d is killed at its reattach or after commit_ms",
				    inst->name, (int)rs->old_pid, rs->update, strerror(-ko), (int)rs->pid);
	}
	upd_held_adopt(inst, rs, fd, ofd, gone[0] ? gone : NULL);
}

static void restore_held(struct instance *inst, const struct state_instance *si)
{
	if (si->held_bad) {
		log_error("state: instance %s: its held successor record is malformed (%s): dropped, the rest of the "
			  "state is kept; a successor the previous vlud stopped may stay stopped",
			  si->name, si->held_bad);
		return;
	}
	if (si->held.pid)
		upd_held_restore(inst, &si->held, false);
}

/* A reservation the state kept (a restart before the owner reattached): back while its process lives, told
 * by its start time (upd_recorded_pidfd()). */
static void restore_reservation(struct instance *inst, const struct state_instance *si)
{
	const struct state_reservation *rs = &si->reserved;
	struct upd_inst *ui;
	uint64_t st = 0;
	int fd = -EBADF, k;

	if (si->reserved_bad) {
		log_error("state: instance %s: its reattach reservation is malformed (%s): dropped, the rest of the "
			  "state is kept; any process of uid %u may reattach",
			  si->name, si->reserved_bad, (unsigned)si->uid);
		return;
	}
	if (!rs->pid)
		return;
	k = upd_recorded_pidfd(rs, &st, &fd);
	ui = k == 0 && st == rs->start ? upd_ui_get(inst, true) : NULL;
	if (!ui) {
		safe_close(fd);
		if (k == 0 && st == rs->start)
			log_error("instance %s: the reattach reservation to pid %d (update %" PRIu64 ") is dropped: "
				  "no memory",
				  inst->name, (int)rs->pid, rs->update);
		else if (k == 0)
			log_warning("instance %s: the reattach reservation to pid %d (update %" PRIu64 ") is dropped: pid %d "
				    "is another process now (start time %" PRIu64 ", recorded %" PRIu64 "); any process "
				    "of uid %u may reattach",
				    inst->name, (int)rs->pid, rs->update, (int)rs->pid, st, rs->start, (unsigned)inst->uid);
		else if (k == -ENOENT || k == -ESRCH)
			log_info("instance %s: the reattach reservation to pid %d (update %" PRIu64 ") is dropped: the "
				 "process exited; any process of uid %u may reattach",
				 inst->name, (int)rs->pid, rs->update, (unsigned)inst->uid);
		else
			log_warning("instance %s: the reattach reservation to pid %d (update %" PRIu64 ") is dropped: "
				    "/proc/%d/stat unreadable (%s); any process of uid %u may reattach",
				    inst->name, (int)rs->pid, rs->update, (int)rs->pid, strerror(-k), (unsigned)inst->uid);
		return;
	}
	upd_heir_drop(ui);
	ui->heir_pid = rs->pid;
	ui->heir_pidfd = fd;
	ui->heir_start = rs->start;
	ui->heir_update = rs->update;
	log_info("instance %s: still reserved to pid %d (update %" PRIu64 ", start time %" PRIu64 "): only it "
		 "reattaches while it lives",
		 inst->name, (int)rs->pid, rs->update, rs->start);
}

void update_restore(const struct state_doc *doc)
{
	for (size_t i = 0; i < doc->n_instances; i++) {
		struct instance *inst = instance_find(doc->instances[i].name);
		struct upd_inst *ui;
		json_object *v, *m, *d;

		if (inst && doc->instances[i].mappings && (v = json_tokener_parse(doc->instances[i].mappings))) {
			/* the table as the VMM declared it (checked then); the preflight checks it again */
			ui = upd_ui_get(inst, true);
			if (ui && json_object_object_get_ex(v, "mappings", &m) && json_object_is_type(m, json_type_array) &&
			    json_object_object_get_ex(v, "devices", &d) && json_object_is_type(d, json_type_array)) {
				json_object_put(ui->mappings);
				ui->mappings = json_object_get(m);
				json_object_put(ui->devices);
				ui->devices = json_object_get(d);
				json_object_put(ui->ioas);
				ui->ioas = json_object_object_get_ex(v, "ioas", &m) && json_object_is_type(m, json_type_array)
						   ? json_object_get(m)
						   : NULL;
			}
			json_object_put(v);
		}
		if (inst) {
			restore_reservation(inst, &doc->instances[i]);
			restore_held(inst, &doc->instances[i]);
		}
		if (doc->instances[i].iof_update_bad)
			log_error("state: instance %s: its iommufd-only update record is malformed (%s): dropped, "
				  "the rest of the state is kept; that update ends with no verdict and reserves the "
				  "instance to nobody",
				  doc->instances[i].name, doc->instances[i].iof_update_bad);
		if (!inst || !doc->instances[i].last_update)
			continue;
		v = json_tokener_parse(doc->instances[i].last_update);
		ui = v ? upd_ui_get(inst, true) : NULL;
		if (!ui) {
			json_object_put(v);
			continue;
		}
		json_object_put(ui->last);
		ui->last = v;
		if (upd_jint(v, "id", 0) >= (int64_t)update_next_id)
			update_next_id = (uint64_t)upd_jint(v, "id", 0) + 1;
	}
	for (size_t i = 0; i < doc->n_updates; i++) {
		const struct state_update *su = &doc->updates[i];
		struct instance *inst = instance_find(su->instance);
		enum restart_held held;

		if (su->id >= update_next_id)
			update_next_id = su->id + 1;
		if (su->iof_bad)
			log_warning("update %" PRIu64 " of %s: the record's iommufd/VFIO fd names are malformed (%s): "
				    "ended without them",
				    su->id, su->instance, su->iof_bad);
		if (!inst) {
			log_warning("update %" PRIu64 " of %s was running when vlud died, but the instance is gone", su->id,
				    su->instance);
			continue;
		}
		held = RESTART_HELD_NO;
		for (size_t k = 0; k < doc->n_instances; k++) {
			const struct state_instance *si = &doc->instances[k];

			if (strcmp(si->name, su->instance) != 0)
				continue;
			if (si->held.pid && si->held.pid == su->new_pid && si->held.update == su->id)
				held = RESTART_HELD_YES;
			else if (si->held_bad && !su->n_devs) /* (R14 holds the successors of iommufd-only updates) */
				held = RESTART_HELD_UNREADABLE;
		}
		restore_one(inst, su, held);
	}
}
