/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update.c - the live-update engine (see update.h, update-int.h and docs/UPDATE.md): struct update's
 * life, the one phase change, the failure cause and the verdict, update.status, update.abort,
 * vmm.mappings, and the end of an update when its instance goes or the daemon stops.
 *
 * One update per instance at a time, driven by the daemon (D):
 *
 *   start:   preflight (nothing touched when it refuses) -> SUSPEND every device (D's fds) ->
 *            event update.save to O                                          (update-preflight.c)
 *   saved:   O's vring bases + its state memfd (kept by D until commit) -> path B: SET_STATUS 0 ->
 *            exec mode: event update.exec to O (token, binary, argv); transfer mode: spawn N or wait
 *            for the named pid                                                (update-phases.c)
 *   claim:   N proves token + pid (SO_PEERCRED, pidfd) + uid; path C: D hands its device copies (the
 *            last ones: the device is released, unpinned) to the closer's worker thread, the claim
 *            waits (reply deferred, the loop free) and continues in claim_released(), which reopens
 *            the nodes; N gets every held fd, the state memfd, the mapping table and the path; the
 *            instance moves to N's connection (instance_hand_over())
 *   ready:   path A: RESUME; every path: status DRIVER_OK, VmPin verification -> verdict
 *
 * Every phase has a deadline (the phase table, update-decide.c); a missed deadline, O or N dying, or
 * update.abort runs upd_rollback() (update-rollback.c), which executes what update_decide() returns for the
 * facts (the table in docs/UPDATE.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <json-c/json.h>

#include "closer.h"
#include "commands.h"
#include "config.h"
#include "conn.h"
#include "device.h"
#include "devstate.h"
#include "events.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "persist.h"
#include "update-int.h"
#include "update.h"
#include "vlud-vhost.h"
#include "vlud.h"
#include "vmpin.h"

uint64_t update_next_id = 1;

/* ---------------------------------------------------------------- helpers */

struct upd_inst *upd_ui_get(struct instance *inst, bool create)
{
	if (!inst->update && create)
		inst->update = calloc(1, sizeof(struct upd_inst));
	return inst->update;
}

int64_t upd_jint(json_object *o, const char *k, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

const char *upd_jstr(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* the fds one claim reply may carry: every held fd and the state memfd (docs/CONFIG.md) */
unsigned upd_claim_max_fds(void)
{
	unsigned m = vl.cfg->limits.max_fds_per_message;

	return m < VLU_MAX_FDS_PER_MSG ? m : VLU_MAX_FDS_PER_MSG;
}

struct conn *upd_conn_by_id(uint64_t id)
{
	struct list *p, *t;

	if (!id)
		return NULL;
	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (c->id == id && !c->dead)
			return c;
	}
	return NULL;
}

/* Does process pid hold an fd of the character device rdev?  1 yes, 0 no, -errno unknown. */
int upd_pid_holds_rdev(pid_t pid, dev_t rdev)
{
	char dir[64];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && proc_fd_is_rdev(dirfd(d), e->d_name, rdev))
			found = 1;
	closedir(d);
	return found;
}

bool upd_old_execed(const struct update *u)
{
	unsigned checked = 0;
	struct list *p, *n;

	if (u->mode != MODE_EXEC || u->restarted || u->phase != PH_EXEC)
		return false;
	for (unsigned i = 0; i < u->ndevs; i++) {
		struct held *h = held_find(u->inst, u->devs[i].name);

		if (!h)
			continue;
		checked++;
		if (upd_pid_holds_rdev(u->old_pid, (dev_t)h->rdev) == 1)
			return false;
	}
	/* the VFIO cdevs too (an iommufd-only instance has no vhost-vdpa device to look for: without them the
	 * old image would count as exec'd for the whole phase, and a failed exec as a successor's failure);
	 * /dev/iommu only when nothing else is held: every iommufd has that rdev, a fresh image's own too */
	for (int pass = 0; pass < 2; pass++) {
		list_for_each_safe(p, n, &u->inst->held) {
			struct held *h = list_entry(p, struct held, link);

			if (h->type != (pass ? VLUD_FD_IOMMUFD : VLUD_FD_VFIO) || (pass && checked))
				continue;
			if (!pass)
				checked++;
			if (upd_pid_holds_rdev(u->old_pid, (dev_t)h->rdev) == 1)
				return false;
		}
	}
	return true;
}

bool upd_pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return pidfd >= 0 && poll(&p, 1, 0) == 0;
}

int upd_pid_starttime(pid_t pid, uint64_t *ret)
{
	return upd_pid_stat(pid, ret, NULL);
}

void upd_heir_drop(struct upd_inst *ui)
{
	if (!ui || !ui->heir_pid)
		return;
	ui->heir_pidfd = safe_close(ui->heir_pidfd);
	ui->heir_pid = 0;
	ui->heir_start = ui->heir_update = 0;
}

/* ---------------------------------------------------------------- D's own time (the verdict's daemon_ms*) */

int64_t upd_cost_us[UPD_COST_N];

void upd_cost_add(enum upd_cost k, int64_t t0)
{
	upd_cost_us[k] += now_monotonic_us() - t0;
}

int upd_vmpin_read(pid_t pid, int64_t *ret_pin_kb, int64_t *ret_lck_kb)
{
	int64_t t0 = now_monotonic_us();
	int k = vmpin_read(pid, ret_pin_kb, ret_lck_kb);

	upd_cost_add(UPD_COST_PROC, t0);
	return k;
}

static void cost_snap(int64_t *snap)
{
	memcpy(snap, upd_cost_us, sizeof(upd_cost_us));
	snap[UPD_COST_STATE] = persist_write_us;
}

/* A window of D's own work for u opens at t0 (a handler's start); upd_own_split() closes its current
 * segment (the phase changes, the pause starts or ends) and upd_own_end() the window.  A window left open
 * by a handler's early return is dropped by the next split: it never spans a loop iteration (a wait). */
void upd_own_begin(struct update *u, int64_t t0)
{
	u->own_t0 = t0;
	u->own_iter = ev_iteration(vl.loop);
	cost_snap(u->own_snap);
}

void upd_own_split(struct update *u)
{
	int64_t now, d, c[UPD_COST_N];

	if (!u->own_t0)
		return;
	if (u->own_iter != ev_iteration(vl.loop)) {
		u->own_t0 = 0;
		return;
	}
	now = now_monotonic_us();
	d = now - u->own_t0;
	u->daemon_us += d;
	u->own_us[u->phase] += d;
	if (u->t_suspend_us && !u->t_pause_end_us)
		u->own_pause_us += d;
	cost_snap(c);
	for (unsigned k = 0; k < UPD_COST_N; k++)
		u->own_cost_us[k] += c[k] - u->own_snap[k];
	memcpy(u->own_snap, c, sizeof(c));
	u->own_t0 = now;
}

void upd_own_end(struct update *u)
{
	upd_own_split(u);
	u->own_t0 = 0;
}

/* the pause ends now (pause_ms): A after D's RESUME, B and C after the DRIVER_OK check */
void upd_pause_end(struct update *u)
{
	upd_own_split(u);
	if (!u->t_pause_end_us)
		u->t_pause_end_us = now_monotonic_us();
}

/* the pid a pidfd refers to (fdinfo "Pid:"), -1 when it exited */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[1024];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "\nPid:");
	if (!p)
		return -1;
	return (pid_t)strtol(p + 5, NULL, 10);
}

pid_t upd_pidfd_pid(int pidfd)
{
	int64_t t0 = now_monotonic_us();
	pid_t p = pidfd_pid(pidfd);

	upd_cost_add(UPD_COST_PROC, t0);
	return p;
}

const char *upd_mode_name(enum mode m)
{
	return m == MODE_EXEC ? "exec" : "transfer";
}

const char *upd_route_str(char route)
{
	switch (route) {
	case 'A':
		return "A";
	case 'B':
		return "B";
	case 'C':
		return "C";
	default:
		return "-";
	}
}

bool upd_has_bf(uint64_t f, unsigned bit)
{
	return f & (1ULL << bit);
}

json_object *upd_event_base(struct update *u)
{
	json_object *d = jnew_obj();

	jadd(d, "instance", jnew_str(u->inst->name));
	jadd(d, "id", jnew_uint(u->id));
	jadd(d, "mode", jnew_str(upd_mode_name(u->mode)));
	jadd(d, "path", jnew_str(upd_route_str(u->route)));
	return d;
}

/* the deadline of phase ph (the phase table) in ms, 0 = none */
static unsigned phase_deadline_ms(const struct update *u, enum phase ph)
{
	const struct vlud_update_timeouts *t = &vl.cfg->update;

	switch (update_phases[ph].deadline) {
	case DL_SUSPEND:
		return t->suspend_ms;
	case DL_SAVE:
		return t->save_ms;
	case DL_EXEC_CLAIM:
		return t->exec_ms + t->claim_ms;
	case DL_EXEC:
		return t->exec_ms;
	case DL_CLAIM:
		/* once a claim is accepted (the token burnt) the hand-over gets commit_ms */
		return u->token_valid ? t->claim_ms : t->commit_ms;
	case DL_COMMIT:
		return t->commit_ms;
	case DL_NONE:
		break;
	}
	return 0;
}

void upd_set_phase(struct update *u, enum phase ph)
{
	int64_t now = now_monotonic_us();
	unsigned timeout_ms = phase_deadline_ms(u, ph);
	json_object *e = jnew_obj(), *d;

	upd_own_split(u); /* D's own time so far is the phase's it leaves */

	jadd(e, "phase", jnew_str(update_phase_name(u->phase)));
	jadd(e, "ms", jnew_double((double)(now - u->t_phase_us) / 1000.0));
	jappend(u->phases, e);
	if (ph == PH_DONE)
		u->ended_in = u->phase;
	u->phase = ph;
	u->t_phase_us = now;
	ev_timer_stop(vl.loop, &u->timer);
	if (timeout_ms) {
		ev_timer_set(&u->timer, timeout_ms / 1000.0, 0.);
		ev_timer_start(vl.loop, &u->timer);
	}
	d = upd_event_base(u);
	jadd(d, "phase", jnew_str(update_phase_name(ph)));
	jadd(d, "t_ms", jnew_double((double)(now - u->t_start_us) / 1000.0));
	events_emit(VLU_EV_UPDATE_PHASE, u->inst->name, d);
	log_debug("update %" PRIu64 " (%s): phase %s", u->id, u->inst->name, update_phase_name(ph));
	/* the running update is in the state (survives a restart of vlud); not "done", which upd_finish()
	 * follows with the recorded verdict: a vlud killed in between finds the record at the phase the
	 * update ended in (update_persist_record()), which tells who owns the device (commit: the successor;
	 * rollback: the old VMM) where "done" would not */
	if (ph != PH_DONE)
		persist_state_write();
}

int upd_dev_ioctl(struct update *u, unsigned i, unsigned long req, void *arg)
{
	struct held *h = held_find(u->inst, u->devs[i].name);
	int64_t t0;
	int k;

	if (!h)
		return -EBADF;
	t0 = now_monotonic_us();
	k = ioctl(h->fd, req, arg) < 0 ? -errno : 0;
	upd_cost_add(UPD_COST_DEVICE, t0);
	return k;
}

int upd_dev_status(struct update *u, unsigned i, uint8_t *st)
{
	return upd_dev_ioctl(u, i, VHOST_VDPA_GET_STATUS, st);
}

json_object *upd_dev_state(struct update *u, unsigned i)
{
	struct held *h = held_find(u->inst, u->devs[i].name);
	json_object *o;

	if (h) {
		int64_t t0 = now_monotonic_us();

		o = devstate_read(h->fd);
		upd_cost_add(UPD_COST_DEVICE, t0);
		return o;
	}
	o = jnew_obj();
	jadd(o, "error", jnew_str("vlud holds no fd of this device"));
	return o;
}

bool upd_any_suspended(const struct update *u)
{
	for (unsigned i = 0; i < u->ndevs; i++)
		if (u->devs[i].suspended)
			return true;
	return false;
}

void upd_resume_all(struct update *u)
{
	for (unsigned i = 0; i < u->ndevs; i++) {
		int k;

		if (!u->devs[i].suspended)
			continue;
		k = upd_dev_ioctl(u, i, VHOST_VDPA_RESUME, NULL);
		if (k < 0)
			log_warning("update %" PRIu64 ": RESUME %s: %s", u->id, u->devs[i].name, strerror(-k));
		u->devs[i].suspended = false;
	}
}

void upd_watch_pid(struct update *u, ev_io *w, int pidfd)
{
	ev_io_stop(vl.loop, w);
	if (pidfd < 0)
		return;
	ev_io_set(w, pidfd, EV_READ);
	ev_io_start(vl.loop, w);
}

void update_free(struct update *u)
{
	if (!u)
		return;
	ev_timer_stop(vl.loop, &u->timer);
	ev_timer_stop(vl.loop, &u->hold_timer);
	ev_io_stop(vl.loop, &u->old_io);
	ev_io_stop(vl.loop, &u->new_io);
	u->old_pidfd = safe_close(u->old_pidfd);
	u->new_pidfd = safe_close(u->new_pidfd);
	u->state_fd = safe_close(u->state_fd);
	closer_cancel(u->claim_job); /* the old fds still close; nobody waits for them any more */
	u->claim_pidfd = safe_close(u->claim_pidfd);
	u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
	upd_deferred_drop(&u->claim);
	for (unsigned i = 0; i < u->ndevs; i++) {
		free(u->devs[i].device);
		free(u->devs[i].path);
		json_object_put(u->devs[i].state_before);
		json_object_put(u->devs[i].state_after);
	}
	free(u->groups);
	free(u->binary);
	json_object_put(u->argv);
	free(u->prev_binary);
	json_object_put(u->prev_argv);
	json_object_put(u->vrings);
	json_object_put(u->phases);
	json_object_put(u->declared);
	json_object_put(u->iof_moved);
	json_object_put(u->iof_ioas);
	upd_deferred_drop(&u->starter);
	explicit_bzero(u->token, sizeof(u->token));
	free(u);
}

/* ---------------------------------------------------------------- the verdict and the end */

/* a device lacks SUSPEND: the update runs without suspending it (allowed by allow_disruptive, path C) */
bool upd_disruptive(const struct update *u)
{
	for (unsigned i = 0; i < u->ndevs; i++)
		if (!(u->devs[i].backend & (1ULL << VHOST_BACKEND_F_SUSPEND)))
			return true;
	return false;
}

bool upd_vmpin_moved(const struct update *u)
{
	/* exec mode: the preflight checked old_before_kb == expected_kb */
	if (u->mode == MODE_EXEC)
		return u->old_before_kb == u->expected_kb && u->new_after_kb == u->expected_kb;
	return u->old_before_kb - u->old_after_kb == u->expected_kb &&
	       u->new_after_kb - u->new_before_kb == u->expected_kb;
}

/* ---------------------------------------------------------------- the failure cause */

void upd_set_failure(struct update *u, enum cause c, const char *fmt, ...)
{
	struct upd_failure *f = &u->fail[u->restarted || u->retake];
	va_list ap;

	if (f->cause != CAUSE_NONE)
		return; /* the first failure wins */
	f->cause = c;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
	va_end(ap);
}

void upd_add_note(struct update *u, const char *fmt, ...)
{
	size_t n = strlen(u->notes);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->notes + n, sizeof(u->notes) - n, fmt, ap);
	va_end(ap);
}

/* one failure in words: its detail, and what D did about it (a kill) */
static void failure_text(const struct update *u, const struct upd_failure *f, bool bare, char *buf, size_t len)
{
	switch (f->cause) {
	case CAUSE_NONE:
		buf[0] = '\0';
		return;
	case CAUSE_TIMEOUT:
		if (f->killed)
			snprintf(buf, len, "%s: %s %d missed its deadline and was killed", f->detail,
				 f->killed == u->old_pid ? "pid" : "the successor", (int)f->killed);
		else
			snprintf(buf, len, "%s", f->detail);
		return;
	case CAUSE_VERIFY:
	case CAUSE_DEVICE_STATE:
		/* bare: the update ends as it is, nobody to return to (the detail says it all) */
		if (bare)
			snprintf(buf, len, "%s", f->detail);
		else if (f->killed)
			snprintf(buf, len, "verification failed: %.200s; the successor %d was killed", f->detail,
				 (int)f->killed);
		else
			snprintf(buf, len, "verification failed: %s", f->detail);
		return;
	default:
		snprintf(buf, len, "%s", f->detail);
		return;
	}
}

void upd_error_text(const struct update *u, char *buf, size_t len)
{
	char f0[512], f1[512];
	size_t n;

	failure_text(u, &u->fail[0], u->acted == RB_FAIL && !u->restarted, f0, sizeof(f0));
	failure_text(u, &u->fail[1], u->acted == RB_FAIL, f1, sizeof(f1));
	if (u->acted == RB_STOP && (u->fail[0].cause == CAUSE_STOPPED || u->fail[1].cause == CAUSE_STOPPED))
		/* the instance went, or the daemon stops: that says it */
		snprintf(buf, len, "%s", u->fail[u->fail[1].cause == CAUSE_STOPPED].detail);
	else if (u->acted == RB_FAIL || u->acted == RB_KEEP_RETAKE)
		/* the stage that failed last speaks for itself */
		snprintf(buf, len, "%s", f1[0] ? f1 : f0);
	else if (u->restarted && f1[0])
		snprintf(buf, len, "%.200s; then the restarted previous binary: %.200s", f0, f1);
	else if (u->restarted)
		snprintf(buf, len, "%.200s", f0);
	else
		snprintf(buf, len, "%s", f0);
	n = strlen(buf);
	snprintf(buf + n, len - n, "%s", u->notes);
}

/* ---------------------------------------------------------------- deferred replies */

void upd_deferred_take(struct deferred *d, struct request *r)
{
	d->conn = r->c->id;
	d->id = r->id ? json_object_get(r->id) : NULL;
	r->deferred = true;
}

void upd_deferred_return(struct deferred *d, json_object *ret, const int *fds, size_t n)
{
	struct conn *c = upd_conn_by_id(d->conn);
	_cleanup_json_ json_object *rep = NULL;

	if (c) {
		rep = vlu_reply_return(ret, d->id); /* consumes ret */
		if (rep)
			(void)conn_send(c, rep, fds, n);
	} else
		json_object_put(ret);
	upd_deferred_drop(d);
}

void upd_deferred_error(struct deferred *d, enum vlu_error_class cls, const char *desc, json_object *verdict)
{
	struct conn *c = upd_conn_by_id(d->conn);
	_cleanup_json_ json_object *err = NULL;
	json_object *eo;

	if (c) {
		err = vlu_reply_error(cls, desc, d->id);
		/* the error reply carries the verdict too, so the caller sees what happened */
		if (err && verdict && json_object_object_get_ex(err, "error", &eo))
			jadd(eo, "verdict", json_object_get(verdict));
		if (err)
			(void)conn_send(c, err, NULL, 0);
	}
	upd_deferred_drop(d);
}

void upd_deferred_drop(struct deferred *d)
{
	json_object_put(TAKE_PTR(d->id));
	d->conn = 0;
}

/* ---------------------------------------------------------------- the verdict and the end */

static json_object *verdict(struct update *u, const char *result, const char *error)
{
	json_object *d = upd_event_base(u), *vp = jnew_obj(), *st = jnew_arr();

	jadd(d, "result", jnew_str(result));
	jadd(d, "path_reason", jnew_str(u->route_reason));
	jadd(d, "disruptive", jnew_bool(upd_disruptive(u)));
	jadd(d, "old_pid", jnew_int(u->old_pid));
	jadd(d, "new_pid", u->new_pid ? jnew_int(u->new_pid) : NULL);
	jadd(d, "restarted_previous", jnew_bool(u->restarted));
	if (u->fail[1].killed || u->fail[0].killed)
		jadd(d, "killed_pid", jnew_int(u->fail[1].killed ? u->fail[1].killed : u->fail[0].killed));
	jadd(vp, "expected_kb", jnew_int(u->expected_kb));
	jadd(vp, "old_before_kb", jnew_int(u->old_before_kb));
	jadd(vp, "old_after_kb", jnew_int(u->old_after_kb));
	jadd(vp, "new_before_kb", jnew_int(u->new_before_kb));
	jadd(vp, "new_after_kb", jnew_int(u->new_after_kb));
	jadd(vp, "moved_ok", jnew_bool(upd_vmpin_moved(u)));
	jadd(d, "vmpin", vp);
	for (unsigned i = 0; i < u->ndevs; i++) {
		json_object *e = jnew_obj();
		uint8_t s;

		jadd(e, "device", jnew_str(u->devs[i].name));
		jadd(e, "status", upd_dev_status(u, i, &s) == 0 ? jnew_int(s) : NULL);
		jappend(st, e);
	}
	jadd(d, "status_after", st);
	{
		/* device_state: what the devices showed before the suspend and after the successor's ready
		 * (config space: MAC, link status, max_virtqueue_pairs, MTU; status; features): equal when the
		 * update kept, or the successor restored, the device's state (a control state lost at reset
		 * and not replayed shows as config.mac).  A difference the successor did not declare
		 * (declared: its device_state_changes) fails the verification (update_cmd_ready). */
		json_object *ds = jnew_obj(), *bef = jnew_arr(), *aft = jnew_arr(), *differ = jnew_arr();
		json_object *undecl = jnew_arr();
		bool eq = u->ndevs > 0;

		for (unsigned i = 0; i < u->ndevs; i++) {
			struct upd_dev *dv = &u->devs[i];
			json_object *e;

			if (dv->state_before) {
				e = json_object_get(dv->state_before);
				jadd(e, "device", jnew_str(dv->name));
				jappend(bef, e);
			}
			if (dv->state_after) {
				e = json_object_get(dv->state_after);
				jadd(e, "device", jnew_str(dv->name));
				jappend(aft, e);
			}
			(void)devstate_compare(dv->name, dv->state_before, dv->state_after, u->declared, differ, undecl);
		}
		eq = eq && json_object_array_length(differ) == 0;
		jadd(ds, "before", bef);
		jadd(ds, "after", aft);
		jadd(ds, "equal", jnew_bool(eq));
		jadd(ds, "differ", differ);
		jadd(ds, "declared", u->declared ? json_object_get(u->declared) : jnew_arr());
		jadd(ds, "undeclared", undecl);
		jadd(d, "device_state", ds);
	}
	{
		json_object *lost = NULL;

		for (unsigned i = 0; i < u->ndevs; i++)
			if (u->devs[i].lost) {
				if (!lost)
					lost = jnew_arr();
				jappend(lost, jnew_str(u->devs[i].name));
			}
		/* path C: closed and not reopened: vlud holds no fd of these devices any more */
		if (lost)
			jadd(d, "device_lost", lost);
	}
	jadd(d, "pause_ms",
			       u->t_suspend_us ? jnew_double((double)((u->t_pause_end_us ? u->t_pause_end_us
											 : now_monotonic_us()) -
									u->t_suspend_us) /
									1000.0)
					       : NULL);
	jadd(d, "daemon_ms", jnew_double((double)u->daemon_us / 1000.0));
	{
		/* daemon_ms split: by phase, by kind of step, and the part inside pause_ms */
		static const char *const cost_name[UPD_COST_N] = { "proc", "device", "state" };
		json_object *bp = jnew_obj(), *bs = jnew_obj();
		int64_t rest = u->daemon_us;

		for (unsigned p = 0; p < PH_COUNT; p++)
			if (u->own_us[p])
				jadd(bp, update_phase_name((enum phase)p), jnew_double((double)u->own_us[p] / 1000.0));
		for (unsigned k = 0; k < UPD_COST_N; k++) {
			jadd(bs, cost_name[k], jnew_double((double)u->own_cost_us[k] / 1000.0));
			rest -= u->own_cost_us[k];
		}
		jadd(bs, "other", jnew_double((double)(rest > 0 ? rest : 0) / 1000.0));
		jadd(d, "daemon_ms_by_phase", bp);
		jadd(d, "daemon_ms_by_step", bs);
		jadd(d, "daemon_pause_ms", jnew_double((double)u->own_pause_us / 1000.0));
	}
	jadd(d, "release_ms", u->release_us >= 0 ? jnew_double((double)u->release_us / 1000.0)
								  : NULL);
	jadd(d, "total_ms",
			       jnew_double((double)(now_monotonic_us() - u->t_start_us) / 1000.0));
	/* CLOCK_MONOTONIC is the machine's, not vlud's: lines the phases up with other processes' clocks */
	jadd(d, "started_monotonic_us", jnew_int(u->t_start_us));
	jadd(d, "phases", json_object_get(u->phases));
	if (u->cvq_commands > 0) {
		/* the successor's CVQ replay (paths B and C: enabling the CVQ -> every command used) */
		jadd(d, "cvq_replay_ms", jnew_double((double)u->cvq_replay_us / 1000.0));
		jadd(d, "cvq_commands", jnew_int(u->cvq_commands));
	}
	/* iommufd/VFIO devices: the accounting mode and the counters of the charge CHANGE_PROCESS moved */
	if (u->iof)
		jadd(d, "iommufd", upd_iof_verdict(u));
	if (error[0])
		jadd(d, "error", jnew_str(error));
	return d;
}

/* A path-C claim still waiting for the closer when the update ends (deadline, N or O gone, abort,
 * release, daemon exit): the claimant gets an error reply; an instance the claim had already taken
 * off O's connection (exec mode) is orphaned, not left attached to nothing.  The old fds still close
 * (the closer owns them): the devices are lost (device_lost in the verdict). */
static void claim_pending_end(struct update *u, const char *result, const char *error)
{
	char desc[600];

	if (!u->claim_job)
		return;
	closer_cancel(u->claim_job);
	u->claim_job = NULL;
	snprintf(desc, sizeof(desc), "update %" PRIu64 " %s while the old device was released: %.500s", u->id, result,
		 error[0] ? error : "?");
	upd_deferred_error(&u->claim, VLU_ERR_DEVICE_ERROR, desc, NULL);
	u->claim_pidfd = safe_close(u->claim_pidfd);
	u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
	instance_hand_over_failed(u->inst, "live update failed at the claim");
}

void upd_finish(struct update *u, const char *result, enum vlu_event_id event, json_object **ret_verdict)
{
	struct upd_inst *ui = upd_ui_get(u->inst, false);
	char error[1024];
	json_object *v;

	/* O's connection while it is O's, decided in the phase the update ends in (PH_DONE would count a
	 * connection the new image kept across its exec as O's again) */
	struct conn *oc = upd_old_conn_told(u);
	uint64_t told = oc ? oc->id : 0;

	upd_held_kill(u); /* R14: a successor D kept stopped for the take-back dies with the update's end */
	upd_error_text(u, error, sizeof(error)); /* the verdict's error, built once */
	claim_pending_end(u, result, error);
	upd_set_phase(u, PH_DONE);
	upd_own_end(u); /* D's own time up to the verdict (what follows: recording and telling it) */
	v = verdict(u, result, error);
	/* The verdict is recorded (the state, which survives a restart of vlud) before anybody is told: a vlud
	 * killed after a reply went out must not come back saying something else ("the update was ending, its
	 * verdict not recorded" after the VMM read "ok"; found by the chaos soak, docs/SOAK.md). */
	if (ui) {
		json_object_put(ui->last);
		ui->last = json_object_get(v);
		ui->cur = NULL;
	}
	persist_state_write(); /* the record goes, the verdict stays */
	if (ret_verdict)
		*ret_verdict = json_object_get(v);
	if (strcmp(result, "ok") != 0) {
		char desc[600];

		snprintf(desc, sizeof(desc), "update %" PRIu64 " %s: %.500s", u->id, result, error[0] ? error : "?");
		upd_deferred_error(&u->starter, VLU_ERR_GENERIC, desc, v);
	} else
		upd_deferred_return(&u->starter, json_object_get(v), NULL, 0);
	/* O's connection while it is O's (exec mode: not once the new image has it, nor after the claim),
	 * whatever the result: O waits for this verdict (transfer mode: to exit; else to run on) */
	events_tell(upd_conn_by_id(told), event, u->inst->name, json_object_get(v));
	vlud_log(error[0] ? LOG_WARNING : LOG_INFO, "update %" PRIu64 " of %s: %s (path %s, %s mode)%s%s", u->id,
		 u->inst->name, result, upd_route_str(u->route), upd_mode_name(u->mode), error[0] ? ": " : "", error);
	json_object_put(v);
	update_free(u);
}

/* ---------------------------------------------------------------- vmm.mappings */

/* the first key of o not in keys (NULL-terminated), NULL when none (STYLE: unknown keys are rejected) */
static const char *unknown_key(json_object *o, const char *const *keys)
{
	if (!json_object_is_type(o, json_type_object))
		return NULL;
	json_object_object_foreach(o, k, v) {
		size_t i;

		(void)v;
		for (i = 0; keys[i] && strcmp(keys[i], k) != 0; i++)
			;
		if (!keys[i])
			return k;
	}
	return NULL;
}

/* perm: VHOST_ACCESS_* as a number 1..3 or "ro"/"wo"/"rw"; absent = rw.  -1 when invalid. */
static int map_perm(json_object *m)
{
	json_object *v;

	if (!json_object_object_get_ex(m, "perm", &v))
		return 3;
	if (json_object_is_type(v, json_type_int)) {
		int64_t p = json_object_get_int64(v);

		return p >= 1 && p <= 3 ? (int)p : -1;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		return strcmp(s, "ro") == 0 ? 1 : strcmp(s, "wo") == 0 ? 2 : strcmp(s, "rw") == 0 ? 3 : -1;
	}
	return -1;
}

int update_cmd_vmm_mappings(struct request *r)
{
	struct instance *inst = r->c->inst;
	json_object *maps, *devs = NULL, *ioas = NULL, *o;
	struct upd_inst *ui;

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	ui = upd_ui_get(inst, true);
	if (!ui)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	if (ui->cur)
		return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running", inst->name);
	json_object_object_get_ex(r->args, "mappings", &maps);
	json_object_object_get_ex(r->args, "devices", &devs);
	json_object_object_get_ex(r->args, "ioas", &ioas);
	if (json_object_array_length(maps) > MAX_MAPS)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "%zu mappings: at most %d", json_object_array_length(maps),
				     MAX_MAPS);
	if (devs && json_object_array_length(devs) > MAX_DEVS)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "%zu devices: at most %d", json_object_array_length(devs),
				     MAX_DEVS);
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		static const char *const keys[] = { "iova", "size", "memfd", "offset", "uaddr", "perm", NULL };
		json_object *m = json_object_array_get_idx(maps, i);
		const char *mf = upd_jstr(m, "memfd"), *bad = unknown_key(m, keys);
		int64_t size = upd_jint(m, "size", -1), iova = upd_jint(m, "iova", -1), off = upd_jint(m, "offset", -1),
			uaddr = upd_jint(m, "uaddr", 0);
		struct held *h;

		if (!json_object_is_type(m, json_type_object) || bad)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT, "mappings[%zu]: unknown key '%s'", i,
					     bad ? bad : "(not an object)");
		if (!mf || size <= 0 || iova < 0 || off < 0 || uaddr < 0 || map_perm(m) < 0)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT,
					     "mappings[%zu]: needs iova>=0, size>0, memfd (name), offset>=0, uaddr>=0, perm 1..3",
					     i);
		/* every value and every end below 2^48: the sums in update.start cannot overflow */
		if ((uint64_t)size > MAP_LIMIT || (uint64_t)iova > MAP_LIMIT || (uint64_t)off > MAP_LIMIT ||
		    (uint64_t)iova + (uint64_t)size > MAP_LIMIT || (uint64_t)off + (uint64_t)size > MAP_LIMIT)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT,
					     "mappings[%zu]: iova, size, offset, iova+size and offset+size must be <= 2^48", i);
		h = held_find(inst, mf);
		if (!h || h->type != VLUD_FD_MEMFD)
			return request_error(r, VLU_ERR_NOT_FOUND,
					     "mappings[%zu]: '%s' is not a memfd stored by instance '%s'", i, mf, inst->name);
	}
	for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
		json_object *d = json_object_array_get_idx(devs, i);
		static const char *const keys[] = { "name", "pinning", NULL };
		const char *nm = upd_jstr(d, "name"), *pin = upd_jstr(d, "pinning"), *bad = unknown_key(d, keys);
		struct held *h = nm ? held_find(inst, nm) : NULL;

		if (!json_object_is_type(d, json_type_object) || bad)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT, "devices[%zu]: unknown key '%s'", i,
					     bad ? bad : "(not an object)");
		if (!h || h->type != VLUD_FD_VHOST_VDPA)
			return request_error(r, VLU_ERR_NOT_FOUND, "devices[%zu]: no device fd '%s' in instance '%s'", i,
					     nm ? nm : "(null)", inst->name);
		if (!pin || (strcmp(pin, "pa") != 0 && strcmp(pin, "va") != 0))
			return request_error(r, VLU_ERR_INVALID_ARGUMENT, "devices[%zu]: pinning must be \"pa\" or \"va\"",
					     i);
	}
	if (upd_iof_declare(r, inst, ioas) < 0)
		return -1;
	json_object_put(ui->mappings);
	ui->mappings = json_object_get(maps);
	json_object_put(ui->devices);
	ui->devices = devs ? json_object_get(devs) : jnew_arr();
	json_object_put(ui->ioas);
	ui->ioas = ioas ? json_object_get(ioas) : NULL;
	persist_state_write(); /* the table is in the state (a restarted vlud still knows it) */
	o = jnew_obj();
	jadd(o, "mappings", jnew_int((int64_t)json_object_array_length(maps)));
	r->ret = o;
	return 0;
}

/* ---------------------------------------------------------------- status / abort */

static struct instance *own_or_operator(struct request *r)
{
	const char *name = request_arg_str(r, "instance");
	struct instance *inst = instance_find(name);

	if (!(r->c->roles & ROLE_OPERATOR) && (!inst || r->c->inst != inst)) {
		request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
		return NULL;
	}
	if (!inst)
		request_error(r, VLU_ERR_NOT_FOUND, "no instance '%s'", name);
	return inst;
}

int update_cmd_status(struct request *r)
{
	struct instance *inst = own_or_operator(r);
	struct upd_inst *ui;
	json_object *o;

	if (!inst)
		return -1;
	ui = upd_ui_get(inst, false);
	o = jnew_obj();
	jadd(o, "instance", jnew_str(inst->name));
	if (ui && ui->cur) {
		struct update *u = ui->cur;
		json_object *c = upd_event_base(u);

		jadd(c, "phase", jnew_str(update_phase_name(u->phase)));
		jadd(c, "path_reason", jnew_str(u->route_reason));
		jadd(c, "t_ms", jnew_double((now_monotonic_us() - u->t_start_us) / 1000.0));
		jadd(c, "phases", json_object_get(u->phases));
		jadd(o, "running", c);
	} else
		jadd(o, "running", NULL);
	jadd(o, "last", ui && ui->last ? json_object_get(ui->last) : NULL);
	jadd(o, "mappings", ui && ui->mappings ? json_object_get(ui->mappings) : NULL);
	jadd(o, "ioas", ui && ui->ioas ? json_object_get(ui->ioas) : NULL);
	r->ret = o;
	return 0;
}

int update_cmd_abort(struct request *r)
{
	struct instance *inst = own_or_operator(r);
	struct upd_inst *ui;
	uint64_t id;

	if (!inst)
		return -1;
	ui = upd_ui_get(inst, false);
	if (!ui || !ui->cur)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of '%s' is running", inst->name);
	id = ui->cur->id;
	upd_rollback(ui->cur, RBT_FAILED, CAUSE_ABORT, "aborted by %s (pid %d)",
		 r->c->inst == inst || r->c->cred.pid == ui->cur->old_pid ? "the VMM" : "an operator", (int)r->c->cred.pid);
	r->ret = jnew_obj();
	jadd(r->ret, "id", jnew_uint(id));
	jadd(r->ret, "last", ui->last ? json_object_get(ui->last) : NULL);
	return 0;
}

/* ---------------------------------------------------------------- instance gone */

bool update_running(const struct instance *inst)
{
	const struct upd_inst *ui = inst->update;

	return ui && ui->cur;
}

/* End u now, without a restart or a hand-back (RB_STOP): RESUME what D suspended (its fds are still
 * open), so no device is left suspended, then the verdict (failed). */
static void stop_update(struct update *u, const char *why)
{
	upd_rollback(u, RBT_STOP, CAUSE_STOPPED, "%s during phase %s", why, update_phase_name(u->phase));
}

void update_stop_all(const char *why)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.instances) {
		struct instance *inst = list_entry(p, struct instance, link);
		struct upd_inst *ui = inst->update;

		if (ui && ui->cur)
			stop_update(ui->cur, why);
	}
}

void update_instance_gone(struct instance *inst)
{
	struct upd_inst *ui = inst->update;

	if (!ui)
		return;
	if (ui->cur) {
		/* called before the instance's fds are closed: they still resume */
		ui->cur->inst_gone = true;
		stop_update(ui->cur, "the instance was released");
		ui->cur = NULL;
	}
	/* R14: a successor still held stopped: the instance is released, nobody takes the charge back through
	 * vlud any more; at the daemon's exit with a state that outlives the stop, it stays for the next vlud */
	ui->held.final = true; /* (an unidentified record is not tried again: ui goes) */
	if (persist_frozen() && upd_held_survives_stop())
		upd_held_end(ui, false, "vlud is exiting");
	else
		upd_held_end(ui, true, "%s", persist_frozen() ? "vlud is exiting without a state known to outlive the stop"
							      : "the instance was released");
	json_object_put(ui->mappings);
	json_object_put(ui->devices);
	json_object_put(ui->ioas);
	json_object_put(ui->last);
	upd_heir_drop(ui);
	free(ui);
	inst->update = NULL;
}

void update_reattached(struct instance *inst, pid_t pid)
{
	struct upd_inst *ui = inst->update;

	/* R14: the old VMM is back, so it has taken the iommufd charge back from the successor held stopped
	 * (a VMM does that before it reattaches, docs/UPDATE.md): that successor can go now */
	if (ui && ui->held.pid && ui->held.old_pid == pid)
		upd_held_end(ui, true, "the old VMM %d reattached", (int)pid);
	if (!ui || !ui->heir_pid || pid != ui->heir_pid)
		return;
	/* the owner is back (it lives: its pid is no other process's) and attached: the reservation has done
	 * its job; dropped only now, so that a reattach failing after the check leaves it in place */
	upd_heir_drop(ui);
	persist_state_write();
}

int update_reattach_refused(struct instance *inst, pid_t pid, char *why, size_t len)
{
	struct upd_inst *ui = inst->update;

	if (!ui || !ui->heir_pid)
		return 0;
	if (!upd_pidfd_alive(ui->heir_pidfd)) {
		log_info("instance %s: pid %d, which owned the device when vlud restarted during update %" PRIu64
			 ", exited: its reservation ends, anyone of uid %u may reattach",
			 inst->name, (int)ui->heir_pid, ui->heir_update, (unsigned)inst->uid);
		upd_heir_drop(ui);
		persist_state_write();
		return 0;
	}
	if (pid == ui->heir_pid)
		return 0; /* the owner is back: the reservation ends once its reattach is done (update_reattached) */
	snprintf(why, len,
		 "instance '%s' is reserved to pid %d, which owned its device when vlud restarted during update "
		 "%" PRIu64 ": only that process reattaches while it lives",
		 inst->name, (int)ui->heir_pid, ui->heir_update);
	return -EBUSY;
}

