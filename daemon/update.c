/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update.c - the live-update engine (see update.h and docs/UPDATE.md).
 *
 * One update per instance at a time, driven by the daemon (D):
 *
 *   start:   preflight (nothing touched when it refuses) -> SUSPEND every device (D's fds) ->
 *            event update.save to O
 *   saved:   O's vring bases + its state memfd (kept by D until commit) -> path B: SET_STATUS 0 ->
 *            exec mode: event update.exec to O (token, binary, argv); transfer mode: spawn N or wait
 *            for the named pid
 *   claim:   N proves token + pid (SO_PEERCRED, pidfd) + uid; path C: D hands its device copies (the
 *            last ones: the device is released, unpinned) to the closer's worker thread, the claim
 *            waits (reply deferred, the loop free) and continues in claim_released(), which reopens
 *            the nodes; N gets every held fd,
 *            the state memfd, the mapping table and the path; the instance moves to N's connection
 *   ready:   path A: RESUME; every path: status DRIVER_OK, VmPin verification -> verdict
 *
 * Every phase has a deadline (timeouts.update.*); a missed deadline, O or N dying, or update.abort
 * runs rollback(), whose end state depends on how far the update got (table in docs/UPDATE.md).
 * Fd ownership: D's device fds stay in the instance's held table throughout (path C: replaced by the
 * reopened ones at claim, and again when a transfer-mode rollback brings the device back to O; between
 * the two the old ones belong to the closer); the state memfd is owned by struct update; pidfds are
 * owned by struct update (a deferred claim's too).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "closer.h"
#include "commands.h"
#include "config.h"
#include "conn.h"
#include "device.h"
#include "events.h"
#include "fdtype.h"
#include "held.h"
#include "instance.h"
#include "persist.h"
#include "spawn.h"
#include "state.h"
#include "update.h"
#include "vlud-vhost.h"
#include "vlud.h"
#include "vmpin.h"

#define MAX_MAPS 64
/* vmm.mappings: iova, size, offset and their ends are bounded (no arithmetic on them can overflow) */
#define MAP_LIMIT (1ULL << 48)
#define MAX_DEVS 16
#define DEFAULT_MAX_STATE_BYTES (1024 * 1024)
#define STATE_FD_NAME "update:state"

#ifndef VIRTIO_CONFIG_S_DRIVER_OK
#define VIRTIO_CONFIG_S_DRIVER_OK 4
#endif

enum phase {
	PH_PREFLIGHT,
	PH_SUSPEND,
	PH_SAVE,
	PH_RESET,
	PH_EXEC,
	PH_SPAWN,
	PH_CLAIM,
	PH_RESTORE,
	PH_RESUME,
	PH_VERIFY,
	PH_COMMIT,
	PH_ROLLBACK, /* transfer mode, path C: O takes the reopened device back (retake_start) */
	PH_DONE,
};

static const char *const phase_names[] = {
	[PH_PREFLIGHT] = "preflight", [PH_SUSPEND] = "suspend", [PH_SAVE] = "save",	  [PH_RESET] = "reset",
	[PH_EXEC] = "exec",	      [PH_SPAWN] = "spawn",	[PH_CLAIM] = "claim",	  [PH_RESTORE] = "restore",
	[PH_RESUME] = "resume",	      [PH_VERIFY] = "verify",	[PH_COMMIT] = "commit",	  [PH_DONE] = "done",
	[PH_ROLLBACK] = "rollback",
};

enum mode { MODE_EXEC, MODE_TRANSFER };

struct upd_dev {
	char name[VLU_NAME_MAX + 1]; /* held fd name ("vdpa:vdpa0") */
	char *device, *path;	     /* as opened (path C reopens path) */
	uint64_t backend;	     /* offered backend features */
	bool pa;		     /* pinning mode declared by O (default pa) */
	bool suspended;
	bool lost;		     /* path C: closed, and the reopen failed: D holds no fd of it any more */
};

struct update {
	struct instance *inst;
	uint64_t id;
	enum phase phase;
	enum mode mode;
	char path; /* 'A', 'B', 'C' */
	char path_reason[160];
	char token[33];
	bool token_valid;

	pid_t old_pid, new_pid;
	int old_pidfd; /* owned: O */
	int new_pidfd; /* owned: N (transfer mode); exec mode: -EBADF (same process) */
	ev_io old_io, new_io;
	uid_t uid;
	gid_t *groups;	  /* owned: O's supplementary groups (SO_PEERGROUPS of its connection), for spawns */
	size_t n_groups;
	char *binary;
	json_object *argv; /* owned */
	bool spawned;
	char *prev_binary;     /* exec mode: the image O ran (/proc/PID/exe at start), restarted on failure */
	json_object *prev_argv; /* owned */
	bool restarted;	       /* exec mode: the previous binary was spawned to take the device back */
	bool retake;	       /* transfer mode, path C: the device is being brought back to O (retake_start) */
	enum phase retake_from; /* the phase the update failed in before that */
	char first_error[512]; /* why the update failed before the restart */
	pid_t killed_pid;      /* the process D killed last (kill_failed()), 0 = none */
	bool kill_pending;     /* it was killed; its exit is awaited */
	char kill_reason[300]; /* why: the rollback's reason when its exit is seen */

	uint64_t starter_conn; /* connection waiting for the verdict (0 = none) */
	json_object *starter_id;
	uint64_t old_conn;     /* O's connection (events to O; transfer mode keeps it after claim) */

	struct upd_dev devs[MAX_DEVS];
	unsigned ndevs;

	int state_fd; /* owned: O's saved state (memfd) */
	uint64_t state_size;
	json_object *vrings; /* owned */

	ev_timer timer;
	int64_t t_start_us, t_phase_us, t_suspend_us;
	int64_t daemon_us; /* time spent in D's own steps (on the loop) */
	int64_t release_us; /* path C: time the closer's worker spent closing D's old device fds (-1: none) */

	/* path C claim waiting for the closer (claim_job != NULL) */
	struct closer_job *claim_job;
	uint64_t claim_conn;	/* N's connection, which gets the deferred reply */
	json_object *claim_id;	/* owned: the claim request's id */
	int claim_pidfd;	/* owned: N's pidfd, goes to the instance */
	int claim_same_pidfd;	/* owned: exec mode, O's pidfd watched as N, goes to u->new_pidfd */
	json_object *phases; /* owned: [{phase, ms}] */

	int64_t expected_kb, old_before_kb, old_after_kb, new_before_kb, new_after_kb;
	char error[512];
};

struct upd_inst {
	json_object *mappings; /* owned: the table as declared */
	json_object *devices;  /* owned: [{name, pinning}] */
	struct update *cur;
	json_object *last;     /* owned: verdict of the last update */
};

static uint64_t next_update_id = 1;

/* ---------------------------------------------------------------- helpers */

static struct upd_inst *ui_get(struct instance *inst, bool create)
{
	if (!inst->update && create)
		inst->update = calloc(1, sizeof(struct upd_inst));
	return inst->update;
}


static int64_t jint(json_object *o, const char *k, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* the fds one claim reply may carry: every held fd and the state memfd (docs/CONFIG.md) */
static unsigned claim_max_fds(void)
{
	unsigned m = vl.cfg->limits.max_fds_per_message;

	return m < VLU_MAX_FDS_PER_MSG ? m : VLU_MAX_FDS_PER_MSG;
}

static struct conn *conn_by_id(uint64_t id)
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

static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return pidfd >= 0 && poll(&p, 1, 0) == 0;
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

static const char *mode_name(enum mode m)
{
	return m == MODE_EXEC ? "exec" : "transfer";
}

static char path_str_buf[2];
static const char *path_str(char p)
{
	path_str_buf[0] = p ? p : '-';
	path_str_buf[1] = '\0';
	return path_str_buf;
}

static json_object *event_base(struct update *u)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "instance", json_object_new_string(u->inst->name));
	json_object_object_add(d, "id", json_object_new_uint64(u->id));
	json_object_object_add(d, "mode", json_object_new_string(mode_name(u->mode)));
	json_object_object_add(d, "path", json_object_new_string(path_str(u->path)));
	return d;
}

/* An event to the instance's subscribers and, if it is not subscribed, directly to O's connection. */
static void tell(struct update *u, uint64_t conn_id, const char *name, json_object *data)
{
	struct conn *c = conn_by_id(conn_id);

	if (c && !c->subscribed) {
		_cleanup_json_ json_object *ev = vlu_event_new(name, json_object_get(data));

		if (ev)
			(void)conn_send(c, ev, NULL, 0);
	}
	events_emit(name, u->inst->name, data);
}

static void set_phase(struct update *u, enum phase ph, unsigned timeout_ms)
{
	int64_t now = now_monotonic_us();
	json_object *e = json_object_new_object(), *d;

	json_object_object_add(e, "phase", json_object_new_string(phase_names[u->phase]));
	json_object_object_add(e, "ms", json_object_new_double((double)(now - u->t_phase_us) / 1000.0));
	json_object_array_add(u->phases, e);
	u->phase = ph;
	u->t_phase_us = now;
	ev_timer_stop(vl.loop, &u->timer);
	if (timeout_ms) {
		ev_timer_set(&u->timer, timeout_ms / 1000.0, 0.);
		ev_timer_start(vl.loop, &u->timer);
	}
	d = event_base(u);
	json_object_object_add(d, "phase", json_object_new_string(phase_names[ph]));
	json_object_object_add(d, "t_ms", json_object_new_double((double)(now - u->t_start_us) / 1000.0));
	events_emit("update.phase", u->inst->name, d);
	log_debug("update %" PRIu64 " (%s): phase %s", u->id, u->inst->name, phase_names[ph]);
	persist_update_changed(); /* the running update is in the state (survives a restart of vlud) */
}

static int dev_ioctl(struct update *u, unsigned i, unsigned long req, void *arg)
{
	struct held *h = held_find(u->inst, u->devs[i].name);

	if (!h)
		return -EBADF;
	return ioctl(h->fd, req, arg) < 0 ? -errno : 0;
}

static int dev_status(struct update *u, unsigned i, uint8_t *st)
{
	return dev_ioctl(u, i, VHOST_VDPA_GET_STATUS, st);
}

static void resume_all(struct update *u)
{
	for (unsigned i = 0; i < u->ndevs; i++) {
		int k;

		if (!u->devs[i].suspended)
			continue;
		k = dev_ioctl(u, i, VHOST_VDPA_RESUME, NULL);
		if (k < 0)
			log_warning("update %" PRIu64 ": RESUME %s: %s", u->id, u->devs[i].name, strerror(-k));
		u->devs[i].suspended = false;
	}
}

static void watch_pid(struct update *u, ev_io *w, int pidfd)
{
	ev_io_stop(vl.loop, w);
	if (pidfd < 0)
		return;
	ev_io_set(w, pidfd, EV_READ);
	ev_io_start(vl.loop, w);
}

static void update_free(struct update *u)
{
	if (!u)
		return;
	ev_timer_stop(vl.loop, &u->timer);
	ev_io_stop(vl.loop, &u->old_io);
	ev_io_stop(vl.loop, &u->new_io);
	u->old_pidfd = safe_close(u->old_pidfd);
	u->new_pidfd = safe_close(u->new_pidfd);
	u->state_fd = safe_close(u->state_fd);
	closer_cancel(u->claim_job); /* the old fds still close; nobody waits for them any more */
	u->claim_pidfd = safe_close(u->claim_pidfd);
	u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
	json_object_put(u->claim_id);
	for (unsigned i = 0; i < u->ndevs; i++) {
		free(u->devs[i].device);
		free(u->devs[i].path);
	}
	free(u->groups);
	free(u->binary);
	json_object_put(u->argv);
	free(u->prev_binary);
	json_object_put(u->prev_argv);
	json_object_put(u->vrings);
	json_object_put(u->phases);
	json_object_put(u->starter_id);
	explicit_bzero(u->token, sizeof(u->token));
	free(u);
}

/* ---------------------------------------------------------------- the verdict and the end */

/* a device lacks SUSPEND: the update runs without suspending it (allowed by allow_disruptive, path C) */
static bool update_disruptive(const struct update *u)
{
	for (unsigned i = 0; i < u->ndevs; i++)
		if (!(u->devs[i].backend & (1ULL << VHOST_BACKEND_F_SUSPEND)))
			return true;
	return false;
}

static json_object *verdict(struct update *u, const char *result)
{
	json_object *d = event_base(u), *vp = json_object_new_object(), *st = json_object_new_array();
	bool moved_ok;

	json_object_object_add(d, "result", json_object_new_string(result));
	json_object_object_add(d, "path_reason", json_object_new_string(u->path_reason));
	json_object_object_add(d, "disruptive", json_object_new_boolean(update_disruptive(u)));
	json_object_object_add(d, "old_pid", json_object_new_int(u->old_pid));
	json_object_object_add(d, "new_pid", u->new_pid ? json_object_new_int(u->new_pid) : NULL);
	json_object_object_add(d, "restarted_previous", json_object_new_boolean(u->restarted));
	if (u->killed_pid)
		json_object_object_add(d, "killed_pid", json_object_new_int(u->killed_pid));
	json_object_object_add(vp, "expected_kb", json_object_new_int64(u->expected_kb));
	json_object_object_add(vp, "old_before_kb", json_object_new_int64(u->old_before_kb));
	json_object_object_add(vp, "old_after_kb", json_object_new_int64(u->old_after_kb));
	json_object_object_add(vp, "new_before_kb", json_object_new_int64(u->new_before_kb));
	json_object_object_add(vp, "new_after_kb", json_object_new_int64(u->new_after_kb));
	if (u->mode == MODE_EXEC)
		moved_ok = u->old_before_kb == u->expected_kb && u->new_after_kb == u->expected_kb;
	else
		moved_ok = u->old_before_kb - u->old_after_kb == u->expected_kb &&
			   u->new_after_kb - u->new_before_kb == u->expected_kb;
	json_object_object_add(vp, "moved_ok", json_object_new_boolean(moved_ok));
	json_object_object_add(d, "vmpin", vp);
	for (unsigned i = 0; i < u->ndevs; i++) {
		json_object *e = json_object_new_object();
		uint8_t s;

		json_object_object_add(e, "device", json_object_new_string(u->devs[i].name));
		json_object_object_add(e, "status", dev_status(u, i, &s) == 0 ? json_object_new_int(s) : NULL);
		json_object_array_add(st, e);
	}
	json_object_object_add(d, "status_after", st);
	{
		json_object *lost = NULL;

		for (unsigned i = 0; i < u->ndevs; i++)
			if (u->devs[i].lost) {
				if (!lost)
					lost = json_object_new_array();
				json_object_array_add(lost, json_object_new_string(u->devs[i].name));
			}
		/* path C: closed and not reopened: vlud holds no fd of these devices any more */
		if (lost)
			json_object_object_add(d, "device_lost", lost);
	}
	json_object_object_add(d, "pause_ms",
			       u->t_suspend_us ? json_object_new_double((double)(now_monotonic_us() - u->t_suspend_us) /
									1000.0)
					       : NULL);
	json_object_object_add(d, "daemon_ms", json_object_new_double((double)u->daemon_us / 1000.0));
	json_object_object_add(d, "release_ms", u->release_us >= 0 ? json_object_new_double((double)u->release_us / 1000.0)
								  : NULL);
	json_object_object_add(d, "total_ms",
			       json_object_new_double((double)(now_monotonic_us() - u->t_start_us) / 1000.0));
	json_object_object_add(d, "phases", json_object_get(u->phases));
	if (u->error[0])
		json_object_object_add(d, "error", json_object_new_string(u->error));
	return d;
}

/* A path-C claim still waiting for the closer when the update ends (deadline, N or O gone, abort,
 * release, daemon exit): the claimant gets an error reply; an instance the claim had already taken
 * off O's connection (exec mode) is orphaned, not left attached to nothing.  The old fds still close
 * (the closer owns them): the devices are lost (device_lost in the verdict). */
static void claim_pending_end(struct update *u, const char *result)
{
	struct conn *c;

	if (!u->claim_job)
		return;
	closer_cancel(u->claim_job);
	u->claim_job = NULL;
	c = conn_by_id(u->claim_conn);
	if (c) {
		char desc[600];
		_cleanup_json_ json_object *err = NULL;

		snprintf(desc, sizeof(desc), "update %" PRIu64 " %s while the old device was released: %.500s", u->id,
			 result, u->error[0] ? u->error : "?");
		err = vlu_reply_error(VLU_ERR_DEVICE_ERROR, desc, u->claim_id);
		if (err)
			(void)conn_send(c, err, NULL, 0);
	}
	u->claim_pidfd = safe_close(u->claim_pidfd);
	u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
	json_object_put(TAKE_PTR(u->claim_id));
	if (u->inst->state == INSTANCE_ATTACHED && !u->inst->conn)
		instance_orphan(u->inst, "live update failed at the claim");
}

/* End the update: verdict to the starter, the event, O told in transfer mode; u is freed.
 * ret_verdict (optional) gets a reference for a synchronous reply. */
static void finish(struct update *u, const char *result, const char *event, json_object **ret_verdict)
{
	struct upd_inst *ui = ui_get(u->inst, false);
	json_object *v;
	struct conn *c;

	claim_pending_end(u, result);
	set_phase(u, PH_DONE, 0);
	v = verdict(u, result);
	if (ret_verdict)
		*ret_verdict = json_object_get(v);
	c = conn_by_id(u->starter_conn);
	if (c) {
		_cleanup_json_ json_object *rep = vlu_reply_return(json_object_get(v), u->starter_id);
		_cleanup_json_ json_object *err = NULL;

		if (strcmp(result, "ok") != 0) {
			char desc[600];

			snprintf(desc, sizeof(desc), "update %" PRIu64 " %s: %.500s", u->id, result,
				 u->error[0] ? u->error : "?");
			err = vlu_reply_error(VLU_ERR_GENERIC, desc, u->starter_id);
			/* the error reply carries the verdict too, so the caller sees what happened */
			if (err) {
				json_object *eo;

				if (json_object_object_get_ex(err, "error", &eo))
					json_object_object_add(eo, "verdict", json_object_get(v));
				(void)conn_send(c, err, NULL, 0);
			}
		} else if (rep)
			(void)conn_send(c, rep, NULL, 0);
	}
	if (u->mode == MODE_TRANSFER && u->old_conn && u->inst->conn != conn_by_id(u->old_conn))
		tell(u, u->old_conn, event, json_object_get(v));
	else
		events_emit(event, u->inst->name, json_object_get(v));
	vlud_log(u->error[0] ? LOG_WARNING : LOG_INFO, "update %" PRIu64 " of %s: %s (path %s, %s mode)%s%s", u->id,
		 u->inst->name, result, path_str(u->path), mode_name(u->mode), u->error[0] ? ": " : "", u->error);
	if (ui) {
		json_object_put(ui->last);
		ui->last = v;
		ui->cur = NULL;
	} else
		json_object_put(v);
	update_free(u);
	persist_update_changed(); /* the record goes, the verdict stays */
}

/* Exec mode, the old image is gone and its successor failed: start the previous binary (with the
 * instance's uid and gid, a new token) to claim the device back from the saved state.  0 when started. */
static int restart_previous(struct update *u)
{
	json_object *d;
	uint8_t rnd[16];
	pid_t pid;
	int pfd = -EBADF, k;

	if (u->mode != MODE_EXEC || u->restarted || !u->prev_binary || u->state_fd < 0)
		return -EINVAL;
	if (u->phase >= PH_RESTORE && pidfd_alive(u->new_pidfd))
		return -EBUSY; /* the successor still runs with the fds: not while it holds them */
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -errno;
	for (unsigned i = 0; i < sizeof(rnd); i++)
		snprintf(u->token + 2 * i, 3, "%02x", rnd[i]);
	ev_io_stop(vl.loop, &u->old_io);
	ev_io_stop(vl.loop, &u->new_io);
	u->new_pidfd = safe_close(u->new_pidfd);
	snprintf(u->first_error, sizeof(u->first_error), "%s", u->error);
	if (u->path == 'B' && u->phase >= PH_RESTORE)
		/* path B after the claim: the dead image may have re-created features and vrings (DRIVER_OK);
		 * the restarted binary, like any path-B successor, takes a reset device (SET_STATUS 0 needs no
		 * ownership; IOTLB_PERSIST keeps the mappings) */
		for (unsigned i = 0; i < u->ndevs; i++) {
			uint8_t zero = 0;

			k = dev_ioctl(u, i, VHOST_VDPA_SET_STATUS, &zero);
			if (k < 0)
				log_warning("update %" PRIu64 ": SET_STATUS 0 on %s for the restarted binary: %s", u->id,
					    u->devs[i].name, strerror(-k));
		}
	set_phase(u, PH_SPAWN, vl.cfg->update.exec_ms);
	k = spawn_successor(u->prev_binary, u->prev_argv, u->inst->uid, u->inst->gid, u->groups, u->n_groups, u->token,
			    u->inst->name,
			    vl.cfg->update_policy.allow_memlock_raise ? (uint64_t)u->expected_kb * 1024 : 0, &pid, &pfd);
	if (k < 0) {
		explicit_bzero(u->token, sizeof(u->token));
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; restarting %s failed: %s", u->prev_binary, strerror(-k));
		return k;
	}
	u->restarted = true;
	u->kill_pending = false; /* the restarted binary gets its own deadline (and kill) */
	u->token_valid = true;
	u->new_pid = pid;
	u->new_pidfd = pfd;
	watch_pid(u, &u->new_io, u->new_pidfd);
	set_phase(u, PH_CLAIM, vl.cfg->update.claim_ms);
	log_warning("update %" PRIu64 " of %s: %s; restarted the previous binary %s as pid %d to take the device back",
		    u->id, u->inst->name, u->error, u->prev_binary, (int)pid);
	d = event_base(u);
	json_object_object_add(d, "reason", json_object_new_string(u->error));
	json_object_object_add(d, "binary", json_object_new_string(u->prev_binary));
	json_object_object_add(d, "pid", json_object_new_int(pid));
	events_emit("update.restarting-previous", u->inst->name, d);
	return 0;
}

static int retake_start(struct update *u, char *why, size_t len);
static void retake_tell(struct update *u);

/* Roll back from wherever the update is; the end state per phase is in docs/UPDATE.md. */
static void rollback(struct update *u, const char *fmt, ...) _printf_(2, 3);
static void rollback(struct update *u, const char *fmt, ...)
{
	bool o_alive = pidfd_alive(u->old_pidfd);
	struct conn *oc = conn_by_id(u->old_conn);
	const char *result = "rolled-back";
	bool lost = false;
	json_object *d;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->error, sizeof(u->error), fmt, ap);
	va_end(ap);
	log_warning("update %" PRIu64 " of %s: rolling back in phase %s: %s", u->id, u->inst->name,
		    phase_names[u->phase], u->error);
	u->token_valid = false;
	for (unsigned i = 0; i < u->ndevs; i++)
		lost |= u->devs[i].lost;
	if (u->retake) {
		/* bringing the device back to O failed (deadline, O gone, O's error): every fd kept */
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; while the reopened device was being brought back to the old VMM: every fd kept");
		if (u->inst->state == INSTANCE_ATTACHED && !u->inst->conn)
			instance_orphan(u->inst, "live update failed while rolling back");
		finish(u, "failed", "update.completed", NULL);
		return;
	}
	/* exec mode, the old image is gone (exec'ed into something that failed): the previous binary
	 * (not when a path-C reopen lost a device: there is nothing to hand it) */
	if (!lost && u->mode == MODE_EXEC && !u->restarted && u->phase >= PH_EXEC && (oc == NULL || !o_alive) &&
	    vl.cfg->update_policy.restart_previous && restart_previous(u) == 0)
		return;
	if (u->restarted && u->first_error[0]) {
		char e[sizeof(u->error)];

		snprintf(e, sizeof(e), "%s", u->error);
		snprintf(u->error, sizeof(u->error), "%.200s; then the restarted previous binary: %.200s", u->first_error, e);
	}

	switch (u->phase) {
	case PH_PREFLIGHT:
	case PH_SUSPEND:
	case PH_SAVE:
	case PH_RESET:
	case PH_EXEC:
	case PH_SPAWN:
	case PH_CLAIM:
		/* nobody claimed: D's device fds are unchanged and O (if it still runs the old image) is
		 * still the owner.  A: RESUME; B: O re-creates the vrings after the reset (told below), then
		 * D's RESUME is harmless; C: D kept its fds until claim: RESUME. */
		if (u->mode == MODE_EXEC && oc == NULL && u->phase >= PH_EXEC) {
			/* O's connection is gone: it exec'ed into something that never claimed (or died) */
			result = "failed";
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 "; the old image is gone (%s): devices stay suspended, every fd is kept",
				 o_alive ? "exec'ed, never claimed" : "process exited");
			break;
		}
		if (!o_alive) {
			resume_all(u);
			result = "failed";
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 "; the VMM process exited: devices resumed, every fd kept (instance orphaned)");
			break;
		}
		if (u->mode == MODE_TRANSFER && u->path == 'C' && u->release_us >= 0 && !lost && oc &&
		    u->inst->conn == oc) {
			/* path C: the claim released and reopened the device, but the claimant's connection was
			 * gone before the hand-over: O (still attached) takes the fresh fd like a successor */
			u->retake = true;
			u->retake_from = u->phase;
			set_phase(u, PH_ROLLBACK, vl.cfg->update.commit_ms);
			retake_tell(u);
			return;
		}
		resume_all(u);
		break;
	case PH_RESTORE:
	case PH_RESUME:
	case PH_VERIFY:
	case PH_COMMIT:
	case PH_ROLLBACK:
	case PH_DONE:
		/* N has the fds; exec mode: the old image no longer exists */
		if (u->mode == MODE_EXEC) {
			result = "failed";
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 "; exec mode after claim: no old image to return to, every fd kept");
		} else if (o_alive && oc && u->path != 'C') {
			/* transfer mode, A/B: O takes back: the instance returns to O's connection; O re-owns with
			 * VHOST_NEW_OWNER (remaps in VA mode) and resumes (B: re-creates the vrings) itself, so D
			 * does not RESUME a device whose owner may still be the dead successor */
			int pfd = fcntl(u->old_pidfd, F_DUPFD_CLOEXEC, 3);

			if (pfd >= 0 && !oc->inst) {
				if (u->inst->state == INSTANCE_ATTACHED)
					instance_orphan(u->inst, "taken back by the old VMM (update rolled back)");
				instance_attach(u->inst, oc, u->old_pid, pfd);
			} else
				safe_close(pfd);
		} else if (u->path == 'C' && o_alive && oc && !oc->inst && !lost && !pidfd_alive(u->new_pidfd)) {
			/* transfer mode, path C, N died after its claim: D closes its copy of N's device (the
			 * last one: reset, unpin), reopens the node and O takes the fresh fd (retake_start) */
			char why[256];

			if (retake_start(u, why, sizeof(why)) == 0)
				return;
			result = "failed";
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 "; bringing the device back to the old VMM failed: %s", why);
			lost = false;
			for (unsigned i = 0; i < u->ndevs; i++)
				lost |= u->devs[i].lost;
		} else {
			result = "failed";
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 u->path == 'C' ? "; path C after the claim: the device was reopened for the successor, "
						  "and the successor still runs or the old VMM is gone; every fd kept"
						: "; the old VMM is gone too; every fd kept");
		}
		break;
	}
	if (lost)
		result = "failed"; /* device_lost in the verdict */
	d = event_base(u);
	json_object_object_add(d, "reason", json_object_new_string(u->error));
	json_object_object_add(d, "phase", json_object_new_string(phase_names[u->phase]));
	json_object_object_add(d, "reinit", json_object_new_boolean(u->path == 'B' && u->phase >= PH_EXEC));
	json_object_object_add(d, "reclaim", json_object_new_boolean(u->phase >= PH_RESTORE));
	if (oc && o_alive && strcmp(result, "rolled-back") == 0)
		tell(u, u->old_conn, "update.rolled-back", d);
	else
		events_emit("update.rolled-back", u->inst->name, d);
	finish(u, result, "update.completed", NULL);
}

/* The process that missed the deadline of u's phase and may hold (or is about to take) the instance's fds,
 * when it is one D may kill: exec mode, the exec'ed image (O's pid, its old connection gone) in phase exec
 * or after its claim; transfer mode, the successor after its claim, or one D spawned (N, or the restarted
 * previous binary) that never claimed.  Never O in transfer mode, never an operator-named successor
 * before its claim (it holds nothing), never during a path-C retake (O is the late one).  Its pidfd, or
 * -ESRCH. */
static int late_process(struct update *u, pid_t *ret_pid)
{
	bool o_gone = conn_by_id(u->old_conn) == NULL;

	if (u->retake)
		return -ESRCH;
	if (u->mode == MODE_EXEC && !u->restarted) {
		if ((u->phase == PH_EXEC || u->phase == PH_RESTORE) && o_gone && pidfd_alive(u->old_pidfd))
			return *ret_pid = u->old_pid, u->old_pidfd;
		return -ESRCH;
	}
	if (u->new_pidfd < 0 || !pidfd_alive(u->new_pidfd))
		return -ESRCH;
	if (u->phase == PH_RESTORE || (u->phase == PH_CLAIM && (u->spawned || u->restarted)))
		return *ret_pid = u->new_pid, u->new_pidfd;
	return -ESRCH;
}

/* Kill pid (pfd its pidfd) that failed the update while it holds (or is about to take) the instance's fds:
 * SIGKILL now, and the rollback (reason: fmt) runs when its exit is seen (old_exit_cb/new_exit_cb), exactly
 * as when it dies by itself: the kernel closes the fds it holds, so a device can go back to a running VMM
 * (transfer mode: O; exec mode: the previous binary restarted).  Without the kill, a rollback could only
 * keep every fd and report failed while that process still runs with copies of the device.  Policy
 * update.kill_failed_successor (default true).  false when not killed (policy, or the signal failed). */
static bool kill_failed(struct update *u, int pfd, pid_t pid, const char *fmt, ...) _printf_(4, 5);
static bool kill_failed(struct update *u, int pfd, pid_t pid, const char *fmt, ...)
{
	json_object *d;
	va_list ap;

	if (!vl.cfg->update_policy.kill_failed_successor || u->kill_pending || pfd < 0 ||
	    pidfd_send_signal(pfd, SIGKILL, NULL, 0) < 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(u->kill_reason, sizeof(u->kill_reason), fmt, ap);
	va_end(ap);
	u->killed_pid = pid;
	u->kill_pending = true;
	log_warning("update %" PRIu64 " of %s: killed pid %d (SIGKILL) in phase %s: %s; rolling back when it has exited",
		    u->id, u->inst->name, (int)pid, phase_names[u->phase], u->kill_reason);
	d = event_base(u);
	json_object_object_add(d, "pid", json_object_new_int(pid));
	json_object_object_add(d, "phase", json_object_new_string(phase_names[u->phase]));
	json_object_object_add(d, "reason", json_object_new_string(u->kill_reason));
	events_emit("update.killed", u->inst->name, d);
	/* its exit (pidfd readable) rolls back; this deadline only guards against never seeing it */
	ev_timer_stop(vl.loop, &u->timer);
	ev_timer_set(&u->timer, 5.0, 0.);
	ev_timer_start(vl.loop, &u->timer);
	return true;
}

/* A deadline passed: a late process that holds (or is about to take) the fds is killed first
 * (kill_failed()); otherwise, or when its exit was never seen, the rollback runs now. */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct update *u = container_of(w, struct update, timer);
	pid_t pid = 0;
	int pfd = u->kill_pending ? -ESRCH : late_process(u, &pid);

	(void)loop;
	(void)revents;
	if (pfd >= 0 && kill_failed(u, pfd, pid, "timeout in phase %s: %s %d missed its deadline and was killed",
				    phase_names[u->phase], pid == u->old_pid ? "pid" : "the successor", (int)pid))
		return;
	rollback(u, "timeout in phase %s", phase_names[u->phase]);
}

static void old_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct update *u = container_of(w, struct update, old_io);

	(void)loop;
	(void)revents;
	ev_io_stop(vl.loop, w);
	if (((u->mode == MODE_TRANSFER && u->phase >= PH_RESTORE) || u->restarted) && !u->retake)
		return; /* O may exit once N has everything: D verifies without it */
	if (u->mode == MODE_TRANSFER && u->phase == PH_CLAIM && u->state_fd >= 0 && !u->retake &&
	    u->killed_pid != u->old_pid) {
		/* transfer mode, O saved and N is started (or named): everything N needs is with D (the saved
		 * state, every fd), so the update goes on without O (a path-C release under way too).  N dying or
		 * missing the claim deadline then rolls back with O gone: failed, devices resumed, every fd kept */
		log_warning("update %" PRIu64 " of %s: the VMM process %d exited in phase claim; the successor %d may "
			    "still claim", u->id, u->inst->name, (int)u->old_pid, (int)u->new_pid);
		return;
	}
	if (u->kill_pending && u->killed_pid == u->old_pid)
		rollback(u, "%s", u->kill_reason);
	else
		rollback(u, "the VMM process %d exited in phase %s", (int)u->old_pid, phase_names[u->phase]);
}

static void new_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct update *u = container_of(w, struct update, new_io);

	(void)loop;
	(void)revents;
	ev_io_stop(vl.loop, w);
	if (u->retake)
		return; /* the device is being brought back to O: N no longer matters */
	if (u->kill_pending && u->killed_pid == u->new_pid)
		rollback(u, "%s", u->kill_reason);
	else
		rollback(u, "the successor %d exited in phase %s", (int)u->new_pid, phase_names[u->phase]);
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
	json_object *maps, *devs = NULL, *o;
	struct upd_inst *ui;

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	ui = ui_get(inst, true);
	if (!ui)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	if (ui->cur)
		return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running", inst->name);
	json_object_object_get_ex(r->args, "mappings", &maps);
	json_object_object_get_ex(r->args, "devices", &devs);
	if (json_object_array_length(maps) > MAX_MAPS)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "%zu mappings: at most %d", json_object_array_length(maps),
				     MAX_MAPS);
	if (devs && json_object_array_length(devs) > MAX_DEVS)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "%zu devices: at most %d", json_object_array_length(devs),
				     MAX_DEVS);
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		static const char *const keys[] = { "iova", "size", "memfd", "offset", "uaddr", "perm", NULL };
		json_object *m = json_object_array_get_idx(maps, i);
		const char *mf = jstr(m, "memfd"), *bad = unknown_key(m, keys);
		int64_t size = jint(m, "size", -1), iova = jint(m, "iova", -1), off = jint(m, "offset", -1),
			uaddr = jint(m, "uaddr", 0);
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
		const char *nm = jstr(d, "name"), *pin = jstr(d, "pinning"), *bad = unknown_key(d, keys);
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
	json_object_put(ui->mappings);
	ui->mappings = json_object_get(maps);
	json_object_put(ui->devices);
	ui->devices = devs ? json_object_get(devs) : json_object_new_array();
	persist_update_changed(); /* the table is in the state (a restarted vlud still knows it) */
	o = json_object_new_object();
	json_object_object_add(o, "mappings", json_object_new_int64((int64_t)json_object_array_length(maps)));
	r->ret = o;
	return 0;
}

/* ---------------------------------------------------------------- update.start: preflight */

static bool dev_is_pa(struct upd_inst *ui, const char *name)
{
	for (size_t i = 0; ui->devices && i < json_object_array_length(ui->devices); i++) {
		json_object *d = json_object_array_get_idx(ui->devices, i);

		if (strcmp(jstr(d, "name"), name) == 0)
			return strcmp(jstr(d, "pinning"), "va") != 0;
	}
	return true;
}

static int read_cmdline(pid_t pid, json_object **ret)
{
	char path[64], buf[8192];
	_cleanup_close_ int fd = -EBADF;
	json_object *a;
	ssize_t n;
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	if (len == 0)
		return -ENODATA;
	buf[len] = '\0';
	a = json_object_new_array();
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		json_object_array_add(a, json_object_new_string(buf + i));
	*ret = a;
	return 0;
}

static bool has_bf(uint64_t f, unsigned bit)
{
	return f & (1ULL << bit);
}

/* the path every device allows; 0 and why when the forced one (or every one) is impossible */
static char choose_path(struct update *u, const char *want, bool disruptive, char *why, size_t len)
{
	bool a = true, b = true, c = true, susp = true;

	for (unsigned i = 0; i < u->ndevs; i++) {
		uint64_t f = u->devs[i].backend;

		if (!has_bf(f, VHOST_BACKEND_F_SUSPEND))
			susp = false;
		if (!has_bf(f, VHOST_BACKEND_F_NEW_OWNER) || !has_bf(f, VHOST_BACKEND_F_RESUME) ||
		    !has_bf(f, VHOST_BACKEND_F_SUSPEND))
			a = false;
		if (!has_bf(f, VHOST_BACKEND_F_NEW_OWNER) || !has_bf(f, VHOST_BACKEND_F_IOTLB_PERSIST) ||
		    !has_bf(f, VHOST_BACKEND_F_SUSPEND))
			b = false;
	}
	if (!susp && !disruptive)
		c = false;
	if (!want || strcmp(want, "auto") == 0) {
		if (a)
			snprintf(why, len, "auto: every device offers NEW_OWNER, SUSPEND and RESUME");
		else if (b)
			snprintf(why, len, "auto: NEW_OWNER and IOTLB_PERSIST but no RESUME on some device");
		else if (c)
			snprintf(why, len, "auto: no NEW_OWNER on some device (stock kernel): reopen and re-pin%s",
				 susp ? "" : " (disruptive: no SUSPEND)");
		else {
			snprintf(why, len, "a device lacks SUSPEND and a disruptive update is not allowed");
			return 0;
		}
		return a ? 'A' : b ? 'B' : 'C';
	}
	if (strcmp(want, "A") == 0 && a)
		return snprintf(why, len, "forced: A"), 'A';
	if (strcmp(want, "B") == 0 && b)
		return snprintf(why, len, "forced: B"), 'B';
	if (strcmp(want, "C") == 0 && c)
		return snprintf(why, len, "forced: C%s", susp ? "" : " (disruptive: no SUSPEND)"), 'C';
	if (strcmp(want, "A") && strcmp(want, "B") && strcmp(want, "C"))
		snprintf(why, len, "unknown path '%s' (auto, A, B or C)", want);
	else if (strcmp(want, "C") == 0)
		snprintf(why, len, "path C: a device lacks SUSPEND and a disruptive update is not allowed");
	else
		snprintf(why, len, "path %s: a device lacks %s", want,
			 strcmp(want, "A") == 0 ? "NEW_OWNER, SUSPEND or RESUME" : "NEW_OWNER, SUSPEND or IOTLB_PERSIST");
	return 0;
}

static int refuse(struct request *r, struct instance *inst, enum vlu_error_class cls, const char *fmt, ...)
	_printf_(4, 5);
static int refuse(struct request *r, struct instance *inst, enum vlu_error_class cls, const char *fmt, ...)
{
	json_object *d = json_object_new_object();
	va_list ap;

	r->failed = true;
	r->err_class = cls;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	log_info("update of %s refused: %s", inst ? inst->name : "?", r->err);
	json_object_object_add(d, "instance", inst ? json_object_new_string(inst->name) : NULL);
	json_object_object_add(d, "reason", json_object_new_string(r->err));
	json_object_object_add(d, "class", json_object_new_string(vlu_error_class_name(cls)));
	events_emit("update.refused", inst ? inst->name : NULL, d);
	return -1;
}

static int check_binary(const char *b, char *why, size_t len)
{
	struct stat st;

	int e;

	if (b[0] != '/')
		return snprintf(why, len, "successor binary '%.200s' is not an absolute path", b), -EINVAL;
	if (stat(b, &st) < 0) {
		e = errno;
		snprintf(why, len, "successor binary %.200s: %s", b, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return snprintf(why, len, "successor binary %.200s is not an executable file", b), -EACCES;
	return 0;
}

int update_cmd_start(struct request *r)
{
	const char *name = request_arg_str(r, "instance"), *mode = request_arg_str(r, "mode"), *want = request_arg_str(r, "path"),
		   *binary = request_arg_str(r, "binary");
	bool wait = request_arg_bool(r, "wait", true), disruptive = request_arg_bool(r, "allow_disruptive", false);
	struct instance *inst = instance_find(name);
	struct upd_inst *ui;
	struct update *u = NULL;
	struct held *other;
	json_object *argv = NULL, *v;
	int64_t succ = -1, map_bytes = 0, pin = 0, mul = 0;
	uint64_t soft = 0;
	unsigned npa = 0;
	char why[256], exe[PATH_MAX];
	struct list *p, *t;
	uint8_t rnd[16];
	int64_t t0 = now_monotonic_us();
	int k;

	if (!inst) {
		if (!(r->c->roles & ROLE_OPERATOR))
			return refuse(r, NULL, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
		return refuse(r, NULL, VLU_ERR_NOT_FOUND, "no instance '%s'", name);
	}
	if (!(r->c->roles & ROLE_OPERATOR) && r->c->inst != inst)
		return refuse(r, inst, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
	if (json_object_object_get_ex(r->args, "successor_pid", &v))
		succ = json_object_get_int64(v);
	ui = ui_get(inst, true);
	if (!ui)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	if (ui->cur)
		return refuse(r, inst, VLU_ERR_BUSY, "update %" PRIu64 " of '%s' is running (phase %s)", ui->cur->id,
			      name, phase_names[ui->cur->phase]);
	if (strcmp(mode, "exec") != 0 && strcmp(mode, "transfer") != 0)
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "mode must be \"exec\" or \"transfer\"");
	if (inst->state != INSTANCE_ATTACHED || !inst->conn || inst->pidfd < 0)
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "instance '%s' is orphaned: no running VMM to update",
			      name);
	if (strcmp(mode, "exec") == 0 && succ > 0)
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "successor_pid is for transfer mode");
	if (strcmp(mode, "transfer") == 0 && succ > 0 && wait)
		/* the named successor needs the token, which only the wait:false reply carries */
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT,
			      "successor_pid needs wait:false: the token the successor claims with is in that reply");
	if (disruptive && !vl.cfg->update_policy.allow_disruptive)
		return refuse(r, inst, VLU_ERR_PERMISSION_DENIED,
			      "allow_disruptive asked for, but the policy (update.allow_disruptive) forbids it");
	if (inst->n_held + 1 > claim_max_fds())
		/* never a claim that hands over fewer fds than the instance holds */
		return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED,
			      "instance '%s' holds %u fds: update.claim hands every one plus the state memfd over in "
			      "one message of at most %u fds (limits.max_fds_per_message)",
			      name, inst->n_held, claim_max_fds());

	u = calloc(1, sizeof(*u));
	if (!u)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	u->inst = inst;
	u->old_pidfd = u->new_pidfd = u->state_fd = -EBADF;
	u->claim_pidfd = u->claim_same_pidfd = -EBADF;
	u->release_us = -1;
	u->mode = strcmp(mode, "exec") == 0 ? MODE_EXEC : MODE_TRANSFER;
	u->old_pid = inst->pid;
	u->uid = inst->uid;
	/* a spawned VMM (successor, restarted previous binary) gets the instance's own groups */
	if (inst->conn->cred.n_groups > 0) {
		u->groups = calloc(inst->conn->cred.n_groups, sizeof(gid_t));
		if (u->groups)
			memcpy(u->groups, inst->conn->cred.groups, inst->conn->cred.n_groups * sizeof(gid_t));
		else {
			update_free(u);
			return request_error(r, VLU_ERR_INTERNAL, "out of memory");
		}
		u->n_groups = inst->conn->cred.n_groups;
	}
	u->phases = json_object_new_array();
	u->t_start_us = u->t_phase_us = t0;
	ev_timer_init(&u->timer, timer_cb, 0., 0.);
	ev_io_init(&u->old_io, old_exit_cb, -1, EV_READ);
	ev_io_init(&u->new_io, new_exit_cb, -1, EV_READ);

	/* devices */
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);
		struct upd_dev *d;

		if (h->type != VLUD_FD_VHOST_VDPA)
			continue;
		other = held_find_rdev(h->rdev, h);
		if (other) {
			/* the update changes the device's owner (A/B) or releases it (C: impossible while another
			 * copy is held, and the reopen would find the node busy) under the other holder */
			bool self = other->inst == inst;

			update_free(u);
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s (fd '%s') is also held %s%s%s (fd '%s'): one holder per device",
				      h->device ? h->device : h->path ? h->path : "the device", h->name,
				      self ? "by this instance" : "by instance '", self ? "" : other->inst->name, self ? "" : "'",
				      other->name);
		}
		if (u->ndevs >= MAX_DEVS) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "more than %d devices", MAX_DEVS);
		}
		d = &u->devs[u->ndevs++];
		snprintf(d->name, sizeof(d->name), "%s", h->name);
		d->device = h->device ? strdup(h->device) : NULL;
		d->path = h->path ? strdup(h->path) : NULL;
		if (ioctl(h->fd, VHOST_GET_BACKEND_FEATURES, &d->backend) < 0)
			d->backend = 0;
		d->pa = dev_is_pa(ui, h->name);
		npa += d->pa;
	}
	/* guest memory: every mapping in a stored memfd */
	if (!ui->mappings || json_object_array_length(ui->mappings) == 0) {
		update_free(u);
		return refuse(r, inst, VLU_ERR_UNSUPPORTED,
			      "no mapping table (vmm.mappings): guest memory is not known to be in a stored memfd");
	}
	for (size_t i = 0; i < json_object_array_length(ui->mappings); i++) {
		json_object *m = json_object_array_get_idx(ui->mappings, i);
		struct held *h = held_find(inst, jstr(m, "memfd"));

		if (!h || h->type != VLUD_FD_MEMFD) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "mapping %zu: memfd '%s' is no longer stored", i,
				      jstr(m, "memfd"));
		}
		if (__builtin_add_overflow(map_bytes, jint(m, "size", 0), &map_bytes) ||
		    __builtin_mul_overflow(map_bytes, (int64_t)MAX_DEVS, &mul)) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "the mappings' sizes overflow");
		}
	}
	if (__builtin_mul_overflow((int64_t)npa, map_bytes, &mul)) {
		update_free(u);
		return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "the mappings' sizes overflow");
	}
	u->expected_kb = mul / 1024;
	/* the previous binary, for a restart after a failed exec-mode update */
	if (u->mode == MODE_EXEC) {
		char lp[64], pb[PATH_MAX];
		ssize_t n;

		snprintf(lp, sizeof(lp), "/proc/%d/exe", (int)inst->pid);
		n = readlink(lp, pb, sizeof(pb) - 1);
		if (n > 0) {
			pb[n] = '\0';
			u->prev_binary = strdup(pb);
			(void)read_cmdline(inst->pid, &u->prev_argv);
		}
	}
	/* successor binary and argv */
	if (u->mode == MODE_EXEC || succ <= 0) {
		if (!binary && u->prev_binary)
			binary = u->prev_binary; /* exec mode: read above */
		else if (!binary) {
			char lp[64];
			ssize_t n;

			snprintf(lp, sizeof(lp), "/proc/%d/exe", (int)inst->pid);
			n = readlink(lp, exe, sizeof(exe) - 1);
			if (n <= 0) {
				update_free(u);
				return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read the VMM's binary (%s): %s", lp,
					      strerror(errno));
			}
			exe[n] = '\0';
			binary = exe;
		}
		if (check_binary(binary, why, sizeof(why)) < 0) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s", why);
		}
		u->binary = strdup(binary);
		if (json_object_object_get_ex(r->args, "argv", &argv))
			u->argv = json_object_get(argv);
		else if (read_cmdline(inst->pid, &u->argv) < 0) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read the VMM's command line");
		}
	} else {
		_cleanup_close_ int pfd = pidfd_open((pid_t)succ, 0);
		char sp[64];
		struct stat st;

		snprintf(sp, sizeof(sp), "/proc/%d", (int)succ);
		if (pfd < 0 || stat(sp, &st) < 0) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_NOT_FOUND, "successor pid %" PRId64 " does not exist", succ);
		}
		if (st.st_uid != inst->uid) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_PERMISSION_DENIED,
				      "successor pid %" PRId64 " runs as uid %u, the instance as uid %u", succ,
				      (unsigned)st.st_uid, (unsigned)inst->uid);
		}
		if (succ == inst->pid) {
			update_free(u);
			return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "the successor is the VMM itself: use exec mode");
		}
		u->new_pid = (pid_t)succ;
		u->new_pidfd = TAKE_FD(pfd);
	}
	if (!u->ndevs) {
		update_free(u);
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "instance '%s' holds no vhost-vdpa device", name);
	}
	u->path = choose_path(u, want, disruptive, u->path_reason, sizeof(u->path_reason));
	if (!u->path) {
		snprintf(why, sizeof(why), "%s", u->path_reason);
		update_free(u);
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s", why);
	}
	/* pinned memory: O's VmPin must already match the declared PA mappings */
	k = vmpin_read(inst->pid, &pin, NULL);
	if (k < 0) {
		update_free(u);
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read VmPin of pid %d: %s", (int)inst->pid,
			      strerror(-k));
	}
	u->old_before_kb = pin;
	if (pin != u->expected_kb) {
		int64_t e = u->expected_kb;

		update_free(u);
		return refuse(r, inst, VLU_ERR_UNSUPPORTED,
			      "VmPin of pid %d is %" PRId64 " kB, the declared PA mappings pin %" PRId64
			      " kB: the accounting to verify is already wrong",
			      (int)inst->pid, pin, e);
	}
	/* RLIMIT_MEMLOCK of the process that will pin (exec: the same process; transfer: the named pid;
	 * a spawned successor gets it set at spawn) */
	if (u->expected_kb > 0 && (u->mode == MODE_EXEC || u->new_pid > 0)) {
		pid_t who = u->mode == MODE_EXEC ? inst->pid : u->new_pid;
		uint64_t need = (uint64_t)u->expected_kb * 1024;

		if (vmpin_memlock_get(who, &soft, NULL) == 0 && soft < need) {
			if (!vl.cfg->update_policy.allow_memlock_raise) {
				update_free(u);
				return refuse(r, inst, VLU_ERR_UNSUPPORTED,
					      "RLIMIT_MEMLOCK of pid %d is %" PRIu64 " bytes, the successor must pin %" PRIu64
					      " and the policy (update.allow_memlock_raise) forbids raising it",
					      (int)who, soft, need);
			}
			k = vmpin_memlock_raise(who, need);
			if (k < 0) {
				update_free(u);
				return refuse(r, inst, VLU_ERR_UNSUPPORTED, "prlimit(%d, RLIMIT_MEMLOCK, %" PRIu64 "): %s",
					      (int)who, need, strerror(-k));
			}
			log_info("update of %s: raised RLIMIT_MEMLOCK of pid %d to %" PRIu64 " bytes", name, (int)who,
				 need);
		}
	}

	/* --- preflight passed: from here on, every failure rolls back --- */
	u->old_pidfd = fcntl(inst->pidfd, F_DUPFD_CLOEXEC, 3);
	if (u->old_pidfd < 0) {
		update_free(u);
		return request_error(r, VLU_ERR_INTERNAL, "dup pidfd: %s", strerror(errno));
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		update_free(u);
		return request_error(r, VLU_ERR_INTERNAL, "getrandom: %s", strerror(errno));
	}
	for (unsigned i = 0; i < sizeof(rnd); i++)
		snprintf(u->token + 2 * i, 3, "%02x", rnd[i]);
	u->id = next_update_id++;
	u->token_valid = true;
	u->old_conn = inst->conn->id;
	ui->cur = u;
	watch_pid(u, &u->old_io, u->old_pidfd);
	watch_pid(u, &u->new_io, u->new_pidfd);
	{
		json_object *d = event_base(u);

		json_object_object_add(d, "path_reason", json_object_new_string(u->path_reason));
		json_object_object_add(d, "old_pid", json_object_new_int(u->old_pid));
		events_emit("update.started", inst->name, d);
	}
	log_info("update %" PRIu64 " of %s: %s mode, path %c (%s)", u->id, name, mode, u->path, u->path_reason);

	set_phase(u, PH_SUSPEND, vl.cfg->update.suspend_ms);
	for (unsigned i = 0; i < u->ndevs; i++) {
		if (!has_bf(u->devs[i].backend, VHOST_BACKEND_F_SUSPEND))
			continue; /* disruptive update: allowed above */
		k = dev_ioctl(u, i, VHOST_VDPA_SUSPEND, NULL);
		if (k < 0) {
			rollback(u, "SUSPEND %s: %s", u->devs[i].name, strerror(-k));
			return request_error(r, VLU_ERR_DEVICE_ERROR, "SUSPEND failed; rolled back");
		}
		u->devs[i].suspended = true;
	}
	u->t_suspend_us = now_monotonic_us();
	u->daemon_us += now_monotonic_us() - t0;

	set_phase(u, PH_SAVE, vl.cfg->update.save_ms);
	{
		json_object *d = event_base(u);

		json_object_object_add(d, "release", json_object_new_boolean(u->path == 'C' && u->mode == MODE_TRANSFER));
		/* false in a disruptive update: a device without SUSPEND runs on (the VMM's saved vring bases
		 * are a snapshot of a running device) */
		json_object_object_add(d, "suspended", json_object_new_boolean(!update_disruptive(u)));
		tell(u, u->old_conn, "update.save", d);
	}
	if (wait) {
		u->starter_conn = r->c->id;
		u->starter_id = r->id ? json_object_get(r->id) : NULL;
		r->deferred = true;
		return 0;
	}
	v = event_base(u);
	json_object_object_add(v, "path_reason", json_object_new_string(u->path_reason));
	if (u->mode == MODE_TRANSFER && u->new_pid > 0)
		/* the operator starts the successor itself: it needs the token */
		json_object_object_add(v, "token", json_object_new_string(u->token));
	r->ret = v;
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
	ui = ui_get(inst, false);
	o = json_object_new_object();
	json_object_object_add(o, "instance", json_object_new_string(inst->name));
	if (ui && ui->cur) {
		struct update *u = ui->cur;
		json_object *c = event_base(u);

		json_object_object_add(c, "phase", json_object_new_string(phase_names[u->phase]));
		json_object_object_add(c, "path_reason", json_object_new_string(u->path_reason));
		json_object_object_add(c, "t_ms", json_object_new_double((now_monotonic_us() - u->t_start_us) / 1000.0));
		json_object_object_add(c, "phases", json_object_get(u->phases));
		json_object_object_add(o, "running", c);
	} else
		json_object_object_add(o, "running", NULL);
	json_object_object_add(o, "last", ui && ui->last ? json_object_get(ui->last) : NULL);
	json_object_object_add(o, "mappings", ui && ui->mappings ? json_object_get(ui->mappings) : NULL);
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
	ui = ui_get(inst, false);
	if (!ui || !ui->cur)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of '%s' is running", inst->name);
	id = ui->cur->id;
	rollback(ui->cur, "aborted by %s (pid %d)",
		 r->c->inst == inst || r->c->cred.pid == ui->cur->old_pid ? "the VMM" : "an operator", (int)r->c->cred.pid);
	r->ret = json_object_new_object();
	json_object_object_add(r->ret, "id", json_object_new_uint64(id));
	json_object_object_add(r->ret, "last", ui->last ? json_object_get(ui->last) : NULL);
	return 0;
}

/* ---------------------------------------------------------------- update.saved (from O) */

static void send_exec(struct update *u)
{
	json_object *d = event_base(u);

	json_object_object_add(d, "token", json_object_new_string(u->token));
	json_object_object_add(d, "binary", json_object_new_string(u->binary));
	json_object_object_add(d, "argv", json_object_get(u->argv));
	/* only O gets the token: straight to its connection, never to subscribers */
	{
		struct conn *c = conn_by_id(u->old_conn);
		_cleanup_json_ json_object *ev = vlu_event_new("update.exec", d);

		if (c && ev)
			(void)conn_send(c, ev, NULL, 0);
	}
	{
		json_object *pub = event_base(u);

		json_object_object_add(pub, "binary", json_object_new_string(u->binary));
		events_emit("update.exec-sent", u->inst->name, pub);
	}
}

int update_cmd_saved(struct request *r)
{
	struct instance *inst = r->c->inst;
	struct upd_inst *ui = inst ? ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	const char *err = request_arg_str(r, "error");
	int64_t t0 = now_monotonic_us(), size;
	uint64_t max = vl.cfg->update_policy.max_state_bytes;
	struct stat st;
	json_object *vr;
	int type, k, seals;

	if (!u)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of this instance is running");
	if (u->phase != PH_SAVE || r->c->id != u->old_conn)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "update.saved is for the old VMM in phase save (now: %s)",
				     phase_names[u->phase]);
	if (err) {
		rollback(u, "the VMM could not save: %s", err);
		r->ret = json_object_new_object();
		return 0;
	}
	size = jint(r->args, "state_size", -1);
	type = fdtype_detect(r->fds[0], vl.vdpa_major, &st);
	if (type != VLUD_FD_MEMFD)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "the state fd is not a memfd");
	if ((uint64_t)size > max || (uint64_t)st.st_size > max)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "state of %" PRId64 " bytes exceeds %" PRIu64 " (max_state_bytes)",
				     size, max);
	if (st.st_size < size)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "state_size %" PRId64 " but the memfd has %lld bytes",
				     size, (long long)st.st_size);
	seals = fcntl(r->fds[0], F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW))
		/* the successor must get exactly what O saved: nobody may change it afterwards */
		return request_error(r, VLU_ERR_INVALID_ARGUMENT,
				     "the state memfd must be sealed (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW)");
	u->state_fd = TAKE_FD(r->fds[0]);
	u->state_size = (uint64_t)size;
	if (json_object_object_get_ex(r->args, "vrings", &vr))
		u->vrings = json_object_get(vr);
	else
		u->vrings = json_object_new_array();

	if (u->path == 'B') {
		set_phase(u, PH_RESET, 0);
		for (unsigned i = 0; i < u->ndevs; i++) {
			uint8_t zero = 0;

			k = dev_ioctl(u, i, VHOST_VDPA_SET_STATUS, &zero);
			if (k < 0) {
				rollback(u, "SET_STATUS 0 on %s: %s", u->devs[i].name, strerror(-k));
				r->ret = json_object_new_object();
				return 0;
			}
		}
	}
	u->daemon_us += now_monotonic_us() - t0;
	if (u->mode == MODE_EXEC) {
		set_phase(u, PH_EXEC, vl.cfg->update.exec_ms + vl.cfg->update.claim_ms);
		send_exec(u);
	} else if (u->new_pid > 0) {
		set_phase(u, PH_CLAIM, vl.cfg->update.claim_ms);
	} else {
		pid_t pid;
		int pfd = -EBADF;

		set_phase(u, PH_SPAWN, vl.cfg->update.exec_ms);
		k = spawn_successor(u->binary, u->argv, u->inst->uid, u->inst->gid, u->groups, u->n_groups, u->token,
				    u->inst->name,
				    vl.cfg->update_policy.allow_memlock_raise ? (uint64_t)u->expected_kb * 1024 : 0, &pid,
				    &pfd);
		if (k < 0) {
			rollback(u, "spawning %s: %s", u->binary, strerror(-k));
			r->ret = json_object_new_object();
			return 0;
		}
		u->spawned = true;
		u->new_pid = pid;
		u->new_pidfd = pfd;
		watch_pid(u, &u->new_io, u->new_pidfd);
		set_phase(u, PH_CLAIM, vl.cfg->update.claim_ms);
	}
	r->ret = event_base(u);
	return 0;
}

/* ---------------------------------------------------------------- update.claim (from N) */

static bool token_eq(const char *a, const char *b)
{
	unsigned char x = 0;

	if (strlen(a) != strlen(b))
		return false;
	for (size_t i = 0; a[i]; i++)
		x |= (unsigned char)(a[i] ^ b[i]);
	return x == 0;
}

/* path C, first half: D's copies leave the held table (the state first, as for fd.remove) and go to
 * the closer in one job (the last references once O's are gone: the kernel resets the device and
 * unpins all guest RAM in close(), off the loop).  From the queueing on the devices count as lost until
 * reopen_devices() has them again.  0: claim_released() runs when every fd is closed. */
static void claim_released(void *userdata, int64_t close_us);
static int release_devices(struct update *u, closer_done_fn done, char *why, size_t len)
{
	int fds[MAX_DEVS];
	size_t n = 0;

	for (unsigned i = 0; i < u->ndevs; i++)
		if (!held_find(u->inst, u->devs[i].name) || !u->devs[i].path)
			return snprintf(why, len, "device %s: not held or path unknown", u->devs[i].name), -ENOENT;
	for (unsigned i = 0; i < u->ndevs; i++) {
		struct held *h = held_find(u->inst, u->devs[i].name);

		held_unlink(h);
		persist_state_write();
		fds[n++] = held_destroy_take_fd(h); /* owned here, then by the closer */
		u->devs[i].suspended = false;
		u->devs[i].lost = true;
	}
	/* the closer owns fds[] from here, also when queueing fails (closed synchronously then) */
	if (closer_close(fds, n, done, u, &u->claim_job) < 0)
		return snprintf(why, len, "device lost: could not release the old device fds off the loop"), -ENOMEM;
	return 0;
}

/* path C, second half (the old fds are closed): reopen the nodes, new held entries */
static int reopen_devices(struct update *u, char *why, size_t len)
{
	for (unsigned i = 0; i < u->ndevs; i++) {
		_cleanup_close_ int fd = -EBADF;
		struct held *nh;
		struct stat st;
		int k, t;

		/* a failure below loses the device: reported as device_lost, never ok */
		k = device_open_node(u->devs[i].path, &fd);
		if (k < 0)
			return snprintf(why, len, "device lost: reopen %s: %s%s", u->devs[i].path, strerror(-k),
					k == -EBUSY ? " (another copy of the old fd is still open)" : ""),
			       k;
		t = fdtype_detect(fd, vl.vdpa_major, &st);
		if (t < 0)
			return snprintf(why, len, "device lost: fstat %s: %s", u->devs[i].path, strerror(-t)), t;
		k = held_add(u->inst, u->devs[i].name, TAKE_FD(fd), t, &st, 0, 0, u->devs[i].device, u->devs[i].path,
			     &nh);
		if (k < 0)
			return snprintf(why, len, "device lost: holding %s: %s", u->devs[i].path, strerror(-k)), k;
		u->devs[i].lost = false;
	}
	persist_state_write();
	return 0;
}

/* the instance leaves its connection without becoming orphaned: the caller attaches it (or orphans it) next */
static void detach_conn(struct instance *inst)
{
	struct conn *oldc = inst->conn;

	ev_io_stop(vl.loop, &inst->pidfd_io); /* its pidfd is replaced (instance_attach) or closed next */
	if (!oldc)
		return;
	oldc->inst = NULL;
	inst->conn = NULL;
	conn_update_idle(oldc);
}

/* Transfer mode, path C, rollback after N's claim (N is gone, O alive on its connection): the instance
 * returns to O's connection; D's copies of the device (the reopened ones N got: N may have owned and
 * mapped them) go to the closer, the last references (reset, unpin); retake_released() reopens the nodes
 * and tells O (update.rolled-back with reopened:true); O fd.retrieves the fresh fds, takes them like a
 * path-C successor and calls update.ready; D verifies there.  0: under way. */
static void retake_released(void *userdata, int64_t close_us);
static int retake_start(struct update *u, char *why, size_t len)
{
	struct conn *oc = conn_by_id(u->old_conn);
	int pfd;

	if (!oc || oc->inst)
		return snprintf(why, len, "the old VMM's connection is gone or busy"), -ENOTCONN;
	if (u->claim_job)
		return snprintf(why, len, "the old device is still being released"), -EBUSY;
	pfd = fcntl(u->old_pidfd, F_DUPFD_CLOEXEC, 3); /* owned: goes to the instance */
	if (pfd < 0)
		return snprintf(why, len, "dup: %s", strerror(errno)), -errno;
	if (release_devices(u, retake_released, why, len) < 0) {
		safe_close(pfd);
		return -EIO;
	}
	if (u->inst->state == INSTANCE_ATTACHED)
		detach_conn(u->inst); /* N's connection (a hand-over back, not an orphan) */
	instance_attach(u->inst, oc, u->old_pid, pfd);
	u->retake = true;
	u->retake_from = u->phase;
	ev_io_stop(vl.loop, &u->new_io);
	set_phase(u, PH_ROLLBACK, vl.cfg->update.commit_ms);
	log_warning("update %" PRIu64 " of %s: %s; releasing the device to bring it back to the old VMM %d", u->id,
		    u->inst->name, u->error, (int)u->old_pid);
	return 0;
}

static void retake_released(void *userdata, int64_t close_us)
{
	struct update *u = userdata;
	int64_t t0 = now_monotonic_us();
	char why[256];

	u->claim_job = NULL;
	u->release_us = (u->release_us > 0 ? u->release_us : 0) + close_us;
	if (reopen_devices(u, why, sizeof(why)) < 0) {
		u->daemon_us += now_monotonic_us() - t0;
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; bringing the device back to the old VMM: %s", why);
		u->retake = false;
		finish(u, "failed", "update.completed", NULL);
		return;
	}
	u->daemon_us += now_monotonic_us() - t0;
	if (!u->inst->conn || u->inst->conn != conn_by_id(u->old_conn)) {
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; the old VMM disconnected while the device was released: every fd kept");
		u->retake = false;
		finish(u, "failed", "update.completed", NULL);
		return;
	}
	retake_tell(u);
}

/* tell O to take the reopened devices (fd.retrieve them, then update.ready) */
static void retake_tell(struct update *u)
{
	json_object *d = event_base(u), *names = json_object_new_array();

	for (unsigned i = 0; i < u->ndevs; i++)
		json_object_array_add(names, json_object_new_string(u->devs[i].name));
	json_object_object_add(d, "reason", json_object_new_string(u->error));
	json_object_object_add(d, "phase", json_object_new_string(phase_names[u->retake_from]));
	json_object_object_add(d, "reinit", json_object_new_boolean(true));
	json_object_object_add(d, "reclaim", json_object_new_boolean(true));
	json_object_object_add(d, "reopened", json_object_new_boolean(true));
	json_object_object_add(d, "devices", names);
	tell(u, u->old_conn, "update.rolled-back", d);
	log_info("update %" PRIu64 " of %s: device reopened, the old VMM %d takes it back", u->id, u->inst->name,
		 (int)u->old_pid);
}

/* path C: the release or the reopen failed (devices lost) */
static void claim_failed(struct update *u, const char *why)
{
	if (u->inst->state == INSTANCE_ATTACHED && !u->inst->conn)
		instance_orphan(u->inst, "live update failed at the claim");
	set_phase(u, PH_RESTORE, 0);
	rollback(u, "%s", why);
}

/* The claim's hand-over: the instance moves to N's connection c (pidfd, same_pidfd consumed), the
 * reply object (*ret) with every held fd (borrowed into out_fds) and the state memfd.  Returns the
 * number of fds. */
static int claim_handover(struct update *u, struct conn *c, int pidfd, int same_pidfd, json_object **ret,
			  int *out_fds, size_t *ret_n)
{
	struct instance *inst = u->inst;
	struct upd_inst *ui = ui_get(inst, false);
	json_object *o, *fds, *devs;
	struct list *p, *t;
	size_t n = 0;

	/* the instance moves to N's connection, without being orphaned in between (no instance.orphaned
	 * event, no orphaned state written for a hand-over) */
	detach_conn(inst);
	instance_attach(inst, c, c->cred.pid, pidfd);
	if (same_pidfd >= 0) {
		ev_io_stop(vl.loop, &u->old_io);
		safe_close(u->new_pidfd);
		u->new_pidfd = same_pidfd;
		watch_pid(u, &u->new_io, u->new_pidfd);
	}

	o = event_base(u);
	fds = json_object_new_array();
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		json_object_array_add(fds, held_to_json(h, false));
		out_fds[n++] = h->fd;
	}
	{
		json_object *s = json_object_new_object();

		json_object_object_add(s, "name", json_object_new_string(STATE_FD_NAME));
		json_object_object_add(s, "type", json_object_new_string("memfd"));
		json_object_array_add(fds, s);
		out_fds[n++] = u->state_fd;
	}
	*ret_n = n;
	json_object_object_add(o, "fds", fds);
	json_object_object_add(o, "state_size", json_object_new_uint64(u->state_size));
	json_object_object_add(o, "vrings", json_object_get(u->vrings));
	json_object_object_add(o, "mappings", json_object_get(ui->mappings));
	devs = json_object_new_array();
	for (unsigned i = 0; i < u->ndevs; i++) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "name", json_object_new_string(u->devs[i].name));
		json_object_object_add(d, "device", u->devs[i].device ? json_object_new_string(u->devs[i].device) : NULL);
		json_object_object_add(d, "path", u->devs[i].path ? json_object_new_string(u->devs[i].path) : NULL);
		json_object_object_add(d, "pinning", json_object_new_string(u->devs[i].pa ? "pa" : "va"));
		json_object_object_add(d, "backend_features", json_object_new_uint64(u->devs[i].backend));
		json_object_array_add(devs, d);
	}
	json_object_object_add(o, "devices", devs);
	*ret = o;
	return (int)n;
}

int update_cmd_claim(struct request *r)
{
	const char *name = request_arg_str(r, "instance"), *token = request_arg_str(r, "token");
	struct instance *inst = instance_find(name);
	struct upd_inst *ui = inst ? ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	struct conn *c = r->c;
	pid_t want_pid, pfd_pid;
	int expect_pidfd;
	int64_t t0 = now_monotonic_us();
	char why[256];
	int pidfd = -EBADF, same_pidfd = -EBADF, k;

	if (!u && ui && ui->last && jint(ui->last, "id", 0) > 0) {
		json_object *ir;

		if (json_object_object_get_ex(ui->last, "interrupted_by_restart", &ir) && json_object_get_boolean(ir)) {
			/* the update this claimant belongs to died with the previous vlud (update_restore) */
			log_warning("update.claim of '%s' by pid %d refused: update %" PRId64 " ended when vlud restarted",
				    name, (int)c->cred.pid, jint(ui->last, "id", 0));
			return request_error(r, VLU_ERR_PERMISSION_DENIED,
					     "update %" PRId64 " of '%s' ended when vlud restarted (phase %s): result failed, "
					     "nothing to claim; the instance is orphaned (instance.register reattach:true), "
					     "update.status tells what became of the device",
					     jint(ui->last, "id", 0), name, jstr(ui->last, "phase") ? jstr(ui->last, "phase") : "?");
		}
	}
	if (u && u->token_valid && u->phase < PH_EXEC && token_eq(token, u->token) &&
	    c->cred.pid == (u->mode == MODE_EXEC ? u->old_pid : u->new_pid)) {
		/* the right successor, early (an operator-named one that got the token from update.start's reply
		 * before O has saved): nothing to hand over yet; libvlu's vlu_update_claim() asks again */
		log_info("update %" PRIu64 " of %s: claim by pid %d before phase claim (phase %s): Busy", u->id, name,
			 (int)c->cred.pid, phase_names[u->phase]);
		return request_error(r, VLU_ERR_BUSY, "update %" PRIu64 " of '%s' is in phase %s: claim again in phase claim",
				     u->id, name, phase_names[u->phase]);
	}
	if (!u || !u->token_valid || (u->phase != PH_EXEC && u->phase != PH_CLAIM)) {
		log_warning("update.claim of '%s' by pid %d uid %u refused: no update waiting for a claim", name,
			    (int)c->cred.pid, (unsigned)c->cred.uid);
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "no update of '%s' is waiting for a claim", name);
	}
	want_pid = u->mode == MODE_EXEC && !u->restarted ? u->old_pid : u->new_pid;
	expect_pidfd = u->mode == MODE_EXEC && !u->restarted ? u->old_pidfd : u->new_pidfd;
	pfd_pid = pidfd_pid(expect_pidfd);
	if (!token_eq(token, u->token) || c->cred.pid != want_pid || c->cred.uid != u->uid || pfd_pid != c->cred.pid ||
	    !pidfd_alive(expect_pidfd) || c->pidfd < 0 || c->inst) {
		log_warning("update %" PRIu64 " of %s: claim by pid %d uid %u refused (%s; expected pid %d uid %u)", u->id,
			    name, (int)c->cred.pid, (unsigned)c->cred.uid,
			    !token_eq(token, u->token) ? "wrong token"
			    : c->cred.pid != want_pid   ? "wrong pid"
			    : c->cred.uid != u->uid     ? "wrong uid"
			    : c->inst		       ? "connection already has an instance"
						       : "process identity (pidfd) mismatch",
			    (int)want_pid, (unsigned)u->uid);
		{
			json_object *d = event_base(u);

			json_object_object_add(d, "pid", json_object_new_int(c->cred.pid));
			json_object_object_add(d, "uid", json_object_new_int64(c->cred.uid));
			events_emit("update.claim-refused", inst->name, d);
		}
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "claim refused: token, pid or uid do not match");
	}
	/* every fallible step comes before the point of no return (token burnt, O's connection closed):
	 * a failure here changes nothing and the update keeps its claim deadline */
	if (inst->n_held + 1 > claim_max_fds())
		/* checked at update.start; fds stored since then: never hand over fewer than held */
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "instance '%s' holds %u fds, a claim carries at most %u",
				     name, inst->n_held, claim_max_fds() - 1);
	pidfd = fcntl(c->pidfd, F_DUPFD_CLOEXEC, 3); /* owned: goes to the instance */
	if (pidfd < 0)
		return request_error(r, VLU_ERR_INTERNAL, "dup: %s", strerror(errno));
	if (u->mode == MODE_EXEC && !u->restarted) {
		/* the same process: watched as N from now on (owned: goes to u->new_pidfd) */
		same_pidfd = fcntl(u->old_pidfd, F_DUPFD_CLOEXEC, 3);
		if (same_pidfd < 0) {
			k = -errno;
			safe_close(pidfd);
			return request_error(r, VLU_ERR_INTERNAL, "dup: %s", strerror(-k));
		}
	}

	/* accepted: burn the token */
	if (u->mode == MODE_EXEC && !u->restarted && conn_by_id(u->old_conn) && conn_by_id(u->old_conn) != c) {
		/* same pid, right token: the old image's socket closed at exec (CLOEXEC) and its EOF is not
		 * processed yet, or the VMM claims for itself; either way that connection is done (the
		 * instance leaves it first: a hand-over, not an orphan) */
		detach_conn(inst);
		conn_kill(conn_by_id(u->old_conn), "replaced by the claiming image (live update)");
	}
	u->token_valid = false;
	explicit_bzero(u->token, sizeof(u->token));
	u->new_pid = c->cred.pid;
	u->new_before_kb = 0;
	(void)vmpin_read(u->new_pid, &u->new_before_kb, NULL);
	set_phase(u, PH_CLAIM, vl.cfg->update.commit_ms); /* never without a deadline */
	if (u->path == 'C') {
		/* transfer mode: O closed its device fds before update.saved */
		if (release_devices(u, claim_released, why, sizeof(why)) < 0) {
			safe_close(pidfd);
			safe_close(same_pidfd);
			claim_failed(u, why);
			return request_error(r, VLU_ERR_DEVICE_ERROR, "%s", why);
		}
		/* the claim continues in claim_released() (the phase deadline still runs); the reply is
		 * deferred, the pidfds wait in u (owned) */
		u->claim_conn = c->id;
		u->claim_id = r->id ? json_object_get(r->id) : NULL;
		u->claim_pidfd = TAKE_FD(pidfd);
		u->claim_same_pidfd = TAKE_FD(same_pidfd);
		u->daemon_us += now_monotonic_us() - t0;
		r->deferred = true;
		log_info("update %" PRIu64 " of %s: claim by pid %d accepted, releasing the old device fds", u->id, name,
			 (int)c->cred.pid);
		return 0;
	}
	k = claim_handover(u, c, TAKE_FD(pidfd), TAKE_FD(same_pidfd), &r->ret, r->out_fds, &r->n_out_fds);
	u->daemon_us += now_monotonic_us() - t0;
	set_phase(u, PH_RESTORE, vl.cfg->update.commit_ms);
	log_info("update %" PRIu64 " of %s: claimed by pid %d (%d fds handed over)", u->id, name, (int)c->cred.pid, k);
	return 0;
}

/* path C: the closer has closed D's old device fds (close_us in its worker, not on the loop) */
static void claim_released(void *userdata, int64_t close_us)
{
	struct update *u = userdata;
	int64_t t0 = now_monotonic_us();
	struct conn *c;
	json_object *o = NULL;
	_cleanup_json_ json_object *rep = NULL;
	int out_fds[VLU_MAX_FDS_PER_MSG];
	size_t n = 0;
	char why[256];
	int k;

	u->claim_job = NULL;
	u->release_us = close_us;
	log_info("update %" PRIu64 " of %s: old device fds released in %.1f ms (off the loop)", u->id, u->inst->name,
		 (double)close_us / 1000.0);
	if (reopen_devices(u, why, sizeof(why)) < 0) {
		c = conn_by_id(u->claim_conn);
		if (c) {
			_cleanup_json_ json_object *err = vlu_reply_error(VLU_ERR_DEVICE_ERROR, why, u->claim_id);

			if (err)
				(void)conn_send(c, err, NULL, 0);
		}
		u->claim_conn = 0;
		u->daemon_us += now_monotonic_us() - t0;
		claim_failed(u, why);
		return;
	}
	c = conn_by_id(u->claim_conn);
	if (!c || c->dead || c->inst) {
		/* the claimant's connection closed while the device was released: D holds the reopened
		 * device; the rollback decides (exec mode: may restart the previous binary) */
		u->daemon_us += now_monotonic_us() - t0;
		u->claim_pidfd = safe_close(u->claim_pidfd);
		u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
		json_object_put(TAKE_PTR(u->claim_id));
		u->claim_conn = 0;
		if (u->inst->state == INSTANCE_ATTACHED && !u->inst->conn)
			instance_orphan(u->inst, "the claimant disconnected during the claim");
		rollback(u, "the claimant's connection closed while the old device was released");
		return;
	}
	k = claim_handover(u, c, TAKE_FD(u->claim_pidfd), TAKE_FD(u->claim_same_pidfd), &o, out_fds, &n);
	rep = vlu_reply_return(o, u->claim_id);
	if (rep)
		(void)conn_send(c, rep, out_fds, n);
	json_object_put(TAKE_PTR(u->claim_id));
	u->claim_conn = 0;
	u->daemon_us += now_monotonic_us() - t0;
	set_phase(u, PH_RESTORE, vl.cfg->update.commit_ms);
	log_info("update %" PRIu64 " of %s: claimed by pid %d (%d fds handed over)", u->id, u->inst->name,
		 (int)u->new_pid, k);
}

/* ---------------------------------------------------------------- update.ready (from N) */

/* O's update.ready after it took the reopened device back (retake_released): DRIVER_OK and O's VmPin =
 * expected (the re-pin) -> rolled-back, and the event says the device was brought back to O */
static int retake_ready(struct request *r, struct update *u, const char *err)
{
	int64_t t0 = now_monotonic_us();
	json_object *v = NULL, *d;
	bool ok = true;

	if (u->phase != PH_ROLLBACK || u->claim_job || r->c->cred.pid != u->old_pid)
		return request_error(r, VLU_ERR_PERMISSION_DENIED,
				     "update.ready is for the old VMM once the device was reopened (now: %s)",
				     phase_names[u->phase]);
	u->retake = false; /* any failure from here ends the update, no second rollback */
	if (err) {
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; the old VMM could not take the reopened device back: %s; every fd kept", err);
		finish(u, "failed", "update.completed", &v);
		r->ret = v;
		return 0;
	}
	set_phase(u, PH_VERIFY, 0);
	for (unsigned i = 0; i < u->ndevs && ok; i++) {
		uint8_t st = 0;
		int k = dev_status(u, i, &st);

		if (k < 0 || !(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
			snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
				 "; brought back to the old VMM, but device %s: status %s0x%x, not DRIVER_OK", u->devs[i].name,
				 k < 0 ? "unreadable " : "", st);
			ok = false;
		}
	}
	(void)vmpin_read(u->old_pid, &u->old_after_kb, NULL);
	if (ok && u->old_after_kb != u->expected_kb) {
		snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
			 "; brought back to the old VMM, but its VmPin is %" PRId64 " kB, expected %" PRId64 " kB",
			 u->old_after_kb, u->expected_kb);
		ok = false;
	}
	u->daemon_us += now_monotonic_us() - t0;
	if (!ok) {
		finish(u, "failed", "update.completed", &v);
		r->ret = v;
		return 0;
	}
	snprintf(u->error + strlen(u->error), sizeof(u->error) - strlen(u->error),
		 "; the device was reopened and brought back to the old VMM (pid %d)", (int)u->old_pid);
	d = event_base(u);
	json_object_object_add(d, "reason", json_object_new_string(u->error));
	json_object_object_add(d, "reopened", json_object_new_boolean(true));
	json_object_object_add(d, "brought_back", json_object_new_boolean(true));
	json_object_object_add(d, "pid", json_object_new_int(u->old_pid));
	events_emit("update.rolled-back", u->inst->name, d);
	finish(u, "rolled-back", "update.completed", &v);
	r->ret = v;
	return 0;
}

int update_cmd_ready(struct request *r)
{
	struct instance *inst = r->c->inst;
	struct upd_inst *ui = inst ? ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	const char *err = request_arg_str(r, "error");
	int64_t t0 = now_monotonic_us();
	json_object *v = NULL;
	bool ok = true;
	int k;

	if (!u)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of this instance is running");
	if (u->retake)
		return retake_ready(r, u, err);
	if (u->phase != PH_RESTORE || r->c->cred.pid != u->new_pid)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "update.ready is for the successor in phase restore (now: %s)",
				     phase_names[u->phase]);
	if (err) {
		rollback(u, "the successor could not restore: %s", err);
		r->ret = ui->last ? json_object_get(ui->last) : json_object_new_object();
		return 0;
	}
	if (u->path == 'A') {
		set_phase(u, PH_RESUME, 0);
		for (unsigned i = 0; i < u->ndevs; i++) {
			k = dev_ioctl(u, i, VHOST_VDPA_RESUME, NULL);
			if (k < 0) {
				snprintf(u->error, sizeof(u->error), "RESUME %s: %s", u->devs[i].name, strerror(-k));
				ok = false;
			}
			u->devs[i].suspended = false;
		}
	}
	set_phase(u, PH_VERIFY, 0);
	for (unsigned i = 0; i < u->ndevs && ok; i++) {
		uint8_t st = 0;

		k = dev_status(u, i, &st);
		if (k < 0 || !(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
			snprintf(u->error, sizeof(u->error), "device %s: status %s0x%x, not DRIVER_OK", u->devs[i].name,
				 k < 0 ? "unreadable " : "", st);
			ok = false;
		}
	}
	/* N's VmPin unread would pass as 0 = the expected size in VA mode: not verified is not ok.  (O may
	 * have exited in transfer mode: an unreadable old_after_kb stays 0, which is what a gone mm pins.) */
	k = vmpin_read(u->new_pid, &u->new_after_kb, NULL);
	if (k < 0 && ok) {
		snprintf(u->error, sizeof(u->error), "cannot read VmPin of the successor (pid %d): %s", (int)u->new_pid,
			 strerror(-k));
		ok = false;
	}
	if (u->mode == MODE_TRANSFER)
		(void)vmpin_read(u->old_pid, &u->old_after_kb, NULL);
	else
		u->old_after_kb = u->new_after_kb;
	if (ok) {
		bool moved = u->mode == MODE_EXEC ? u->new_after_kb == u->expected_kb
						  : (u->old_before_kb - u->old_after_kb == u->expected_kb &&
						     u->new_after_kb - u->new_before_kb == u->expected_kb);
		if (!moved) {
			snprintf(u->error, sizeof(u->error),
				 "VmPin mismatch: expected %" PRId64 " kB moved; old %" PRId64 " -> %" PRId64
				 " kB, new %" PRId64 " -> %" PRId64 " kB",
				 u->expected_kb, u->old_before_kb, u->old_after_kb, u->new_before_kb, u->new_after_kb);
			ok = false;
		}
	}
	u->daemon_us += now_monotonic_us() - t0;
	if (!ok) {
		if (u->mode == MODE_TRANSFER && pidfd_alive(u->old_pidfd)) {
			char e[sizeof(u->error)];

			snprintf(e, sizeof(e), "%s", u->error);
			/* N still holds the device: O can take it back only without N (A/B: N would reset it when
			 * it exits; C: N's copy keeps the reopened device from being released) */
			if (kill_failed(u, u->new_pidfd, u->new_pid, "verification failed: %.200s; the successor %d was killed",
					e, (int)u->new_pid)) {
				r->ret = json_object_new_object();
				return 0;
			}
			rollback(u, "verification failed: %s", e);
		} else
			finish(u, "failed", "update.completed", NULL);
		r->ret = ui->last ? json_object_get(ui->last) : json_object_new_object();
		return 0;
	}
	set_phase(u, PH_COMMIT, 0);
	if (u->restarted) {
		/* the device runs again, under the previous binary: the update itself failed */
		json_object *d = event_base(u);

		snprintf(u->error, sizeof(u->error), "%.200s; the previous binary (pid %d) took the device back",
			 u->first_error, (int)u->new_pid);
		json_object_object_add(d, "reason", json_object_new_string(u->error));
		json_object_object_add(d, "restarted_previous", json_object_new_boolean(true));
		events_emit("update.rolled-back", u->inst->name, d);
		finish(u, "rolled-back", "update.completed", &v);
		r->ret = v;
		return 0;
	}
	finish(u, "ok", "update.completed", &v);
	r->ret = v;
	return 0;
}

/* ---------------------------------------------------------------- instance gone */

bool update_running(const struct instance *inst)
{
	const struct upd_inst *ui = inst->update;

	return ui && ui->cur;
}

/* End u now, without a restart or a hand-back: RESUME what D suspended (its fds are still open), so no
 * device is left suspended, then the verdict (failed). */
static void stop_update(struct update *u, const char *why)
{
	snprintf(u->error, sizeof(u->error), "%s during phase %s; devices resumed", why, phase_names[u->phase]);
	u->token_valid = false;
	resume_all(u);
	finish(u, "failed", "update.completed", NULL);
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
		stop_update(ui->cur, "the instance was released");
		ui->cur = NULL;
	}
	json_object_put(ui->mappings);
	json_object_put(ui->devices);
	json_object_put(ui->last);
	free(ui);
	inst->update = NULL;
}

/* ---------------------------------------------------------------- persistence across a restart of vlud
 *
 * The running update is part of the state document (daemon/state.h "updates", written by persist.c from
 * update_persist_record() at every phase change and at the end), and so is each instance's last
 * verdict ("last_update").  A vlud started after a SIGKILL or a crash finds the record: update_restore()
 * brings back what it can for the phase the update was in (docs/UPDATE.md "vlud restarted during an
 * update") and ends the update with a failed verdict. */

/* the record of inst's running update; false when none runs */
bool update_persist_record(struct instance *inst, struct state_update *ret)
{
	struct upd_inst *ui = inst->update;
	struct update *u = ui ? ui->cur : NULL;

	if (!u || !u->id)
		return false;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->instance, sizeof(ret->instance), "%s", inst->name);
	ret->id = u->id;
	snprintf(ret->mode, sizeof(ret->mode), "%s", mode_name(u->mode));
	ret->path = u->path;
	snprintf(ret->phase, sizeof(ret->phase), "%s", phase_names[u->phase]);
	ret->old_pid = u->old_pid;
	ret->new_pid = u->new_pid > 0 ? u->new_pid : 0;
	ret->started_us = now_realtime_us() - (now_monotonic_us() - u->t_start_us);
	for (unsigned i = 0; i < u->ndevs && i < VLUD_STATE_UPDATE_MAX_DEVS; i++) {
		struct state_update_dev *d = &ret->devs[ret->n_devs++];

		snprintf(d->name, sizeof(d->name), "%s", u->devs[i].name);
		/* in phase suspend the SUSPENDs run after this record is written: count them as done (a
		 * RESUME of a device that is not suspended does nothing, kernel-facts.md 5) */
		d->suspended = u->devs[i].suspended ||
			       (u->phase == PH_SUSPEND && has_bf(u->devs[i].backend, VHOST_BACKEND_F_SUSPEND));
		/* likewise SET_STATUS 0 runs in phase reset, after the record */
		d->reset = u->path == 'B' && u->phase >= PH_RESET && u->phase != PH_ROLLBACK;
		d->released = u->devs[i].lost || u->release_us >= 0 || u->claim_job;
	}
	return ret->n_devs > 0;
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
	small = json_object_new_object();
	if (!small)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
		json_object *v;

		if (json_object_object_get_ex(ui->last, keep[i], &v))
			json_object_object_add(small, keep[i], json_object_get(v));
	}
	{
		const char *e = jstr(ui->last, "error");
		char eb[1024];

		if (e) {
			snprintf(eb, sizeof(eb), "%s", e);
			json_object_object_add(small, "error", json_object_new_string(eb));
		}
	}
	json_object_object_add(small, "truncated", json_object_new_boolean(true));
	t = json_object_to_json_string_ext(small, JSON_C_TO_STRING_PLAIN);
	return t && strlen(t) <= VLUD_STATE_VERDICT_MAX ? strdup(t) : NULL;
}

/* inst's mapping table {"mappings":[...],"devices":[...]} as JSON text for the state (malloc()ed), NULL
 * when none was declared (or it exceeds VLUD_STATE_MAPPINGS_MAX: then a restarted vlud has none) */
char *update_persist_mappings(struct instance *inst)
{
	struct upd_inst *ui = inst->update;
	_cleanup_json_ json_object *o = NULL;
	const char *t;

	if (!ui || !ui->mappings)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "mappings", json_object_get(ui->mappings));
	json_object_object_add(o, "devices", ui->devices ? json_object_get(ui->devices) : json_object_new_array());
	t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	return t && strlen(t) <= VLUD_STATE_MAPPINGS_MAX ? strdup(t) : NULL;
}

/* Does process pid hold an fd of the character device rdev?  1 yes, 0 no, -errno unknown. */
static int pid_holds_rdev(pid_t pid, dev_t rdev)
{
	char dir[64];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == rdev)
			found = 1;
	}
	closedir(d);
	return found;
}

static enum phase phase_by_name(const char *n)
{
	for (unsigned i = 0; i < ELEMENTSOF(phase_names); i++)
		if (phase_names[i] && strcmp(phase_names[i], n) == 0)
			return (enum phase)i;
	return PH_DONE;
}

static bool pid_exists(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

#define APPENDF(buf, ...) snprintf((buf) + strlen(buf), sizeof(buf) - strlen(buf), __VA_ARGS__)

/* One update that was running when the previous vlud died (record su of the adopted state). */
static void restore_one(struct instance *inst, const struct state_update *su)
{
	struct upd_inst *ui = ui_get(inst, true);
	enum phase ph = phase_by_name(su->phase);
	bool released = false, reset = false, old_owns, resume;
	json_object *v, *st, *resumed, *lost = NULL;
	const char *why_owner;
	char err[1536] = "";
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
			int k = h ? pid_holds_rdev(su->old_pid, (dev_t)h->rdev) : -ENOENT;

			if (k <= 0) {
				old_owns = false;
				why_owner = k == 0 ? "the old image exec'ed (pid holds no copy of the device)"
						   : "cannot tell whether the old image exec'ed";
			}
		}
	}
	resume = old_owns;
	APPENDF(err, "vlud restarted during the update (phase %s): ", su->phase);
	if (resume)
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

	st = json_object_new_array();
	resumed = json_object_new_array();
	APPENDF(err, ";");
	for (unsigned i = 0; i < su->n_devs; i++) {
		const struct state_update_dev *d = &su->devs[i];
		struct held *h = held_find(inst, d->name);
		json_object *e = json_object_new_object();
		uint8_t s = 0;
		int k = 0;

		json_object_object_add(e, "device", json_object_new_string(d->name));
		if (!h) {
			if (!lost)
				lost = json_object_new_array();
			json_object_array_add(lost, json_object_new_string(d->name));
			json_object_object_add(e, "status", NULL);
			json_object_array_add(st, e);
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
				json_object_array_add(resumed, json_object_new_string(d->name));
		}
		if (ioctl(h->fd, VHOST_VDPA_GET_STATUS, &s) < 0) {
			json_object_object_add(e, "status", NULL);
			APPENDF(err, " %s: status unreadable (%s)", d->name, strerror(errno));
		} else {
			json_object_object_add(e, "status", json_object_new_int(s));
			APPENDF(err, " %s: %s, status 0x%x%s", d->name,
				resume && d->suspended ? (k < 0 ? "RESUME failed" : "resumed")
				: d->released	       ? "released, then reopened by vlud (a fresh open)"
				: d->reset	       ? "reset by vlud"
				: d->suspended	       ? "suspended by vlud, not resumed"
						       : "not suspended",
				s, (s & VIRTIO_CONFIG_S_DRIVER_OK) ? " (DRIVER_OK)" : "");
		}
		json_object_array_add(st, e);
	}

	v = json_object_new_object();
	json_object_object_add(v, "instance", json_object_new_string(inst->name));
	json_object_object_add(v, "id", json_object_new_uint64(su->id));
	json_object_object_add(v, "mode", json_object_new_string(su->mode));
	json_object_object_add(v, "path", json_object_new_string(path_str(su->path)));
	json_object_object_add(v, "result", json_object_new_string("failed"));
	json_object_object_add(v, "old_pid", json_object_new_int(su->old_pid));
	json_object_object_add(v, "new_pid", su->new_pid ? json_object_new_int(su->new_pid) : NULL);
	json_object_object_add(v, "restarted_previous", json_object_new_boolean(false));
	json_object_object_add(v, "interrupted_by_restart", json_object_new_boolean(true));
	json_object_object_add(v, "phase", json_object_new_string(su->phase));
	json_object_object_add(v, "resumed", resumed);
	json_object_object_add(v, "status_after", st);
	if (lost)
		json_object_object_add(v, "device_lost", lost);
	json_object_object_add(v, "total_ms",
			       json_object_new_double((double)(now_realtime_us() - su->started_us) / 1000.0));
	json_object_object_add(v, "error", json_object_new_string(err));
	log_warning("update %" PRIu64 " of %s: failed: %s", su->id, inst->name, err);
	events_emit("update.completed", inst->name, json_object_get(v));
	json_object_put(ui->last);
	ui->last = v;
}

void update_restore(const struct state_doc *doc)
{
	for (size_t i = 0; i < doc->n_instances; i++) {
		struct instance *inst = instance_find(doc->instances[i].name);
		struct upd_inst *ui;
		json_object *v, *m, *d;

		if (inst && doc->instances[i].mappings && (v = json_tokener_parse(doc->instances[i].mappings))) {
			/* the table as the VMM declared it (checked then); the preflight checks it again */
			ui = ui_get(inst, true);
			if (ui && json_object_object_get_ex(v, "mappings", &m) && json_object_is_type(m, json_type_array) &&
			    json_object_object_get_ex(v, "devices", &d) && json_object_is_type(d, json_type_array)) {
				json_object_put(ui->mappings);
				ui->mappings = json_object_get(m);
				json_object_put(ui->devices);
				ui->devices = json_object_get(d);
			}
			json_object_put(v);
		}
		if (!inst || !doc->instances[i].last_update)
			continue;
		v = json_tokener_parse(doc->instances[i].last_update);
		ui = v ? ui_get(inst, true) : NULL;
		if (!ui) {
			json_object_put(v);
			continue;
		}
		json_object_put(ui->last);
		ui->last = v;
		if (jint(v, "id", 0) >= (int64_t)next_update_id)
			next_update_id = (uint64_t)jint(v, "id", 0) + 1;
	}
	for (size_t i = 0; i < doc->n_updates; i++) {
		const struct state_update *su = &doc->updates[i];
		struct instance *inst = instance_find(su->instance);

		if (su->id >= next_update_id)
			next_update_id = su->id + 1;
		if (!inst) {
			log_warning("update %" PRIu64 " of %s was running when vlud died, but the instance is gone", su->id,
				    su->instance);
			continue;
		}
		restore_one(inst, su);
	}
}
