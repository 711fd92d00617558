/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-phases.c - the forward phases after save: update.saved from O (path B's reset, update.exec
 * to O or the successor spawned), update.claim from the successor (token, pid, uid; path C: the old
 * device released off the loop and reopened, the reply deferred), the hand-over of every fd, and
 * update.ready from the successor (path A's RESUME, DRIVER_OK, VmPin) up to the verdict.  A failure
 * anywhere goes to upd_rollback() (update-rollback.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "closer.h"
#include "config.h"
#include "conn.h"
#include "device.h"
#include "devstate.h"
#include "events.h"
#include "fdtype.h"
#include "held.h"
#include "instance.h"
#include "iommufd-decide.h"
#include "json-oom.h"
#include "persist.h"
#include "spawn.h"
#include "update-int.h"
#include "update.h"
#include "vlud-vhost.h"
#include "vlud.h"
#include "vmpin.h"

/* ---------------------------------------------------------------- update.saved (from O) */

static void send_exec(struct update *u)
{
	json_object *d = upd_event_base(u);

	jadd(d, "token", jnew_str(u->token));
	jadd(d, "binary", jnew_str(u->binary));
	jadd(d, "argv", json_object_get(u->argv));
	/* only O gets the token: straight to its connection, never to subscribers */
	{
		struct conn *c = upd_conn_by_id(u->old_conn);
		_cleanup_json_ json_object *ev = vlu_event_new(vlu_event_names[VLU_EV_UPDATE_EXEC], d);

		if (c && ev)
			(void)conn_send(c, ev, NULL, 0);
	}
	{
		json_object *pub = upd_event_base(u);

		jadd(pub, "binary", jnew_str(u->binary));
		events_emit(VLU_EV_UPDATE_EXEC_SENT, u->inst->name, pub);
	}
}

/* Transfer mode, paths A and B: the kernel lets the successor take the devices over (VHOST_NEW_OWNER)
 * only with the owner's consent, so O arms every device it owns for the successor's pid (pidfd_open +
 * VHOST_NEW_OWNER_F_ARM) and answers update.armed; until then the successor's claim gets Busy.  Sent to
 * O only (like the token), once the successor's pid is known: after its spawn, or at once for a named one. */
static void send_arm(struct update *u)
{
	struct conn *c = upd_conn_by_id(u->old_conn);
	json_object *d = upd_event_base(u);
	_cleanup_json_ json_object *ev = NULL;

	jadd(d, "successor_pid", jnew_int(u->new_pid));
	ev = vlu_event_new(vlu_event_names[VLU_EV_UPDATE_ARM], d);
	u->arm_pending = true;
	if (c && ev)
		(void)conn_send(c, ev, NULL, 0);
	/* not sent (O's connection gone, out of memory): the claim deadline ends the wait, or O's exit
	 * (dead-mm consent: the successor needs no arming) lets the claim through */
	log_info("update %" PRIu64 " of %s: update.arm sent to the old VMM %d (successor pid %d)", u->id, u->inst->name,
		 (int)u->old_pid, (int)u->new_pid);
}

int update_cmd_armed(struct request *r)
{
	struct instance *inst = r->c->inst;
	struct upd_inst *ui = inst ? upd_ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	const char *err = request_arg_str(r, "error");

	if (!u)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of this instance is running");
	if (!update_phase_permits(u->phase, EXPECT_ARMED, PARTY_OLD) || r->c->id != u->old_conn || !u->arm_pending)
		return request_error(r, VLU_ERR_PERMISSION_DENIED,
				     "update.armed is for the old VMM after update.arm, in phase claim (now: %s%s)",
				     update_phase_name(u->phase), u->arm_pending ? "" : ", nothing to arm");
	u->arm_pending = false;
	if (err) {
		upd_rollback(u, RBT_FAILED, CAUSE_ARM, "the VMM could not arm its devices for the successor %d: %s",
			     (int)u->new_pid, err);
		r->ret = jnew_obj();
		return 0;
	}
	log_info("update %" PRIu64 " of %s: the old VMM armed its devices for the successor %d", u->id, inst->name,
		 (int)u->new_pid);
	r->ret = upd_event_base(u);
	return 0;
}

int update_cmd_saved(struct request *r)
{
	struct instance *inst = r->c->inst;
	struct upd_inst *ui = inst ? upd_ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	const char *err = request_arg_str(r, "error");
	int64_t t0 = now_monotonic_us(), size;
	uint64_t max = vl.cfg->update_policy.max_state_bytes;
	struct stat st;
	json_object *vr;
	int type, k, seals;

	if (!u)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of this instance is running");
	if (!update_phase_permits(u->phase, EXPECT_SAVED, PARTY_OLD) || r->c->id != u->old_conn)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "update.saved is for the old VMM in phase save (now: %s)",
				     update_phase_name(u->phase));
	upd_own_begin(u, t0);
	if (err) {
		upd_rollback(u, RBT_FAILED, CAUSE_SAVE, "the VMM could not save: %s", err);
		r->ret = jnew_obj();
		return 0;
	}
	size = upd_jint(r->args, "state_size", -1);
	type = fdtype_detect_sealed(r->fds[0], vl.vdpa_major, &st);
	if (type != VLUD_FD_MEMFD)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "the state fd is not a memfd");
	seals = fcntl(r->fds[0], F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW))
		/* the successor must get exactly what O saved: nobody may change it afterwards */
		return request_error(r, VLU_ERR_INVALID_ARGUMENT,
				     "the state memfd must be sealed (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW)");
	/* the size once sealed: fdtype_detect_sealed() read it after the seals, but fdtype_detect() (a memfd O
	 * sealed only after that) before them */
	if (fstat(r->fds[0], &st) < 0)
		return request_error(r, VLU_ERR_INTERNAL, "fstat of the state memfd: %s", strerror(errno));
	if ((uint64_t)size > max || (uint64_t)st.st_size > max)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "state of %" PRId64 " bytes exceeds %" PRIu64 " (max_state_bytes)",
				     size, max);
	if (st.st_size < size)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "state_size %" PRId64 " but the memfd has %lld bytes",
				     size, (long long)st.st_size);
	u->state_fd = TAKE_FD(r->fds[0]);
	u->state_size = (uint64_t)size;
	if (json_object_object_get_ex(r->args, "vrings", &vr))
		u->vrings = json_object_get(vr);
	else
		u->vrings = jnew_arr();

	if (u->route == 'B') {
		upd_set_phase(u, PH_RESET);
		for (unsigned i = 0; i < u->ndevs; i++) {
			uint8_t zero = 0;

			k = upd_dev_ioctl(u, i, VHOST_VDPA_SET_STATUS, &zero);
			if (k < 0) {
				upd_rollback(u, RBT_FAILED, CAUSE_RESET, "SET_STATUS 0 on %s: %s", u->devs[i].name, strerror(-k));
				r->ret = jnew_obj();
				return 0;
			}
		}
	}
	if (u->mode == MODE_EXEC) {
		upd_set_phase(u, PH_EXEC);
		send_exec(u);
	} else if (u->new_pid > 0) {
		upd_set_phase(u, PH_CLAIM);
		if (u->route != 'C' && u->ndevs)
			send_arm(u); /* (iommufd/VFIO devices need no consent: CHANGE_PROCESS is the caller's) */
	} else {
		pid_t pid;
		int pfd = -EBADF;

		upd_set_phase(u, PH_SPAWN);
		k = spawn_successor(u->binary, u->argv, u->inst->uid, u->inst->gid, u->groups, u->n_groups, u->token,
				    u->inst->name,
				    vl.cfg->update_policy.allow_memlock_raise ? upd_memlock_need(u) : 0, &pid,
				    &pfd);
		if (k < 0) {
			upd_rollback(u, RBT_FAILED, CAUSE_SPAWN, "spawning %s: %s", u->binary, strerror(-k));
			r->ret = jnew_obj();
			return 0;
		}
		u->spawned = true;
		u->new_pid = pid;
		u->new_pidfd = pfd;
		upd_watch_pid(u, &u->new_io, u->new_pidfd);
		upd_set_phase(u, PH_CLAIM);
		if (u->route != 'C' && u->ndevs)
			send_arm(u); /* (iommufd/VFIO devices need no consent: CHANGE_PROCESS is the caller's) */
	}
	r->ret = upd_event_base(u);
	upd_own_end(u); /* (update.exec sent: the phase exec's, as the spawn is the phase spawn's) */
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
 * upd_reopen_devices() has them again.  0: claim_released() runs when every fd is closed. */
static void claim_released(void *userdata, int64_t close_us);
int upd_release_devices(struct update *u, closer_done_fn done, char *why, size_t len)
{
	int fds[MAX_DEVS];
	size_t n = 0;

	for (unsigned i = 0; i < u->ndevs; i++)
		if (!held_find(u->inst, u->devs[i].name) || !u->devs[i].path)
			return snprintf(why, len, "device %s: not held or path unknown", u->devs[i].name), -ENOENT;
	for (unsigned i = 0; i < u->ndevs; i++) {
		struct held *h = held_find(u->inst, u->devs[i].name);

		/* lost (released) before the state is written: the state that no longer names the held fd
		 * says so in the update record, so that a restarted vlud reopens the device (the chaos soak
		 * found a record written in between saying "not released", and the device lost) */
		u->devs[i].suspended = false;
		u->devs[i].lost = true;
		held_unlink(h);
		persist_state_write();
		fds[n++] = held_destroy_take_fd(h); /* owned here, then by the closer */
	}
	/* the closer owns fds[] from here, also when queueing fails (closed synchronously then) */
	if (closer_close(fds, n, done, u, &u->claim_job) < 0)
		return snprintf(why, len, "device lost: could not release the old device fds off the loop"), -ENOMEM;
	return 0;
}

/* path C, second half (the old fds are closed): reopen the nodes, new held entries */
int upd_reopen_devices(struct update *u, char *why, size_t len)
{
	for (unsigned i = 0; i < u->ndevs; i++) {
		struct held *nh;
		int64_t t0 = now_monotonic_us();
		int k;

		/* a failure below loses the device: reported as device_lost, never ok */
		k = held_open_device(u->inst, u->devs[i].name, u->devs[i].device, u->devs[i].path, 0, &nh);
		upd_cost_add(UPD_COST_DEVICE, t0); /* the open and its probes (fdtype, features, the v3 query) */
		if (k < 0)
			return snprintf(why, len, "device lost: reopen %s: %s%s", u->devs[i].path, strerror(-k),
					k == -EBUSY ? " (another copy of the old fd is still open)" : ""),
			       k;
		u->devs[i].lost = false;
	}
	persist_state_write();
	return 0;
}


/* path C: the release or the reopen failed (devices lost) */
static void claim_failed(struct update *u, const char *why)
{
	instance_hand_over_failed(u->inst, "live update failed at the claim");
	upd_set_phase(u, PH_RESTORE);
	upd_rollback(u, RBT_FAILED, CAUSE_DEVICE_LOST, "%s", why);
}

/* The claim's hand-over: the instance moves to N's connection c (pidfd, same_pidfd consumed), the
 * reply object (*ret) with every held fd (borrowed into out_fds) and the state memfd.  Returns the
 * number of fds. */
static int claim_handover(struct update *u, struct conn *c, int pidfd, int same_pidfd, json_object **ret,
			  int *out_fds, size_t *ret_n)
{
	struct instance *inst = u->inst;
	struct upd_inst *ui = upd_ui_get(inst, false);
	json_object *o, *fds, *devs;
	struct list *p, *t;
	size_t n = 0;

	/* the instance moves to N's connection, without being orphaned in between */
	instance_hand_over(inst, c, c->cred.pid, pidfd);
	if (same_pidfd >= 0) {
		ev_io_stop(vl.loop, &u->old_io);
		safe_close(u->new_pidfd);
		u->new_pidfd = same_pidfd;
		upd_watch_pid(u, &u->new_io, u->new_pidfd);
	}

	o = upd_event_base(u);
	fds = jnew_arr();
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		jappend(fds, held_to_json(h, false));
		out_fds[n++] = h->fd;
	}
	{
		json_object *s = jnew_obj();

		jadd(s, "name", jnew_str(STATE_FD_NAME));
		jadd(s, "type", jnew_str("memfd"));
		jappend(fds, s);
		out_fds[n++] = u->state_fd;
	}
	*ret_n = n;
	jadd(o, "fds", fds);
	jadd(o, "state_size", jnew_uint(u->state_size));
	jadd(o, "vrings", json_object_get(u->vrings));
	jadd(o, "mappings", json_object_get(ui->mappings));
	devs = jnew_arr();
	for (unsigned i = 0; i < u->ndevs; i++) {
		json_object *d = jnew_obj();

		jadd(d, "name", jnew_str(u->devs[i].name));
		jadd(d, "device", u->devs[i].device ? jnew_str(u->devs[i].device) : NULL);
		jadd(d, "path", u->devs[i].path ? jnew_str(u->devs[i].path) : NULL);
		jadd(d, "pinning", jnew_str(u->devs[i].pa ? "pa" : "va"));
		jadd(d, "backend_features", jnew_uint(u->devs[i].backend));
		jappend(devs, d);
	}
	jadd(o, "devices", devs);
	/* iommufd/VFIO: the claimant calls IOMMU_IOAS_CHANGE_PROCESS on these (docs/IOMMUFD.md) */
	if (u->iof)
		jadd(o, "iommufd", upd_iof_claim_info(u));
	*ret = o;
	return (int)n;
}

int update_cmd_claim(struct request *r)
{
	const char *name = request_arg_str(r, "instance"), *token = request_arg_str(r, "token");
	struct instance *inst = instance_find(name);
	struct upd_inst *ui = inst ? upd_ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	struct conn *c = r->c;
	pid_t want_pid, pfd_pid;
	int expect_pidfd;
	int64_t t0 = now_monotonic_us();
	char why[256];
	int pidfd = -EBADF, same_pidfd = -EBADF, k;
	bool kept;

	if (!u && ui && ui->last && upd_jint(ui->last, "id", 0) > 0) {
		json_object *ir;

		if (json_object_object_get_ex(ui->last, "interrupted_by_restart", &ir) && json_object_get_boolean(ir)) {
			/* the update this claimant belongs to died with the previous vlud (update_restore) */
			log_warning("update.claim of '%s' by pid %d refused: update %" PRId64 " ended when vlud restarted",
				    name, (int)c->cred.pid, upd_jint(ui->last, "id", 0));
			return request_error(r, VLU_ERR_PERMISSION_DENIED,
					     "update %" PRId64 " of '%s' ended when vlud restarted (phase %s): result failed, "
					     "nothing to claim; the instance is orphaned (instance.register reattach:true), "
					     "update.status tells what became of the device",
					     upd_jint(ui->last, "id", 0), name, upd_jstr(ui->last, "phase") ? upd_jstr(ui->last, "phase") : "?");
		}
	}
	if (u && u->token_valid && u->phase < PH_EXEC && token_eq(token, u->token) &&
	    c->cred.pid == (u->mode == MODE_EXEC ? u->old_pid : u->new_pid)) {
		/* the right successor, early (an operator-named one that got the token from update.start's reply
		 * before O has saved): nothing to hand over yet; libvlu's vlu_update_claim() asks again */
		log_info("update %" PRIu64 " of %s: claim by pid %d before phase claim (phase %s): Busy", u->id, name,
			 (int)c->cred.pid, update_phase_name(u->phase));
		return request_error(r, VLU_ERR_BUSY, "update %" PRIu64 " of '%s' is in phase %s: claim again in phase claim",
				     u->id, name, update_phase_name(u->phase));
	}
	if (u && u->token_valid && u->phase == PH_CLAIM && u->arm_pending && upd_pidfd_alive(u->old_pidfd) &&
	    token_eq(token, u->token) && c->cred.pid == u->new_pid) {
		/* transfer mode A/B: the kernel would refuse the successor's VHOST_NEW_OWNER (EPERM) until O
		 * armed the devices for it (or exited); libvlu's vlu_update_claim() asks again */
		log_info("update %" PRIu64 " of %s: claim by pid %d before the old VMM armed its devices: Busy", u->id,
			 name, (int)c->cred.pid);
		return request_error(r, VLU_ERR_BUSY,
				     "update %" PRIu64 " of '%s': the old VMM has not armed its devices for pid %d yet: "
				     "claim again",
				     u->id, name, (int)c->cred.pid);
	}
	if (!u || !u->token_valid || !update_phase_permits(u->phase, EXPECT_CLAIM, PARTY_NEW)) {
		log_warning("update.claim of '%s' by pid %d uid %u refused: no update waiting for a claim", name,
			    (int)c->cred.pid, (unsigned)c->cred.uid);
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "no update of '%s' is waiting for a claim", name);
	}
	want_pid = u->mode == MODE_EXEC && !u->restarted ? u->old_pid : u->new_pid;
	expect_pidfd = u->mode == MODE_EXEC && !u->restarted ? u->old_pidfd : u->new_pidfd;
	/* the pid behind the pidfd vlud watches: O's was read at update.start (the fdinfo read costs 0.5-1 ms
	 * under TCG, inside the pause here: docs/BENCH.md); a pidfd's pid does not change, and its process
	 * being alive is checked below either way */
	pfd_pid = expect_pidfd == u->old_pidfd ? u->old_pidfd_pid : upd_pidfd_pid(expect_pidfd);
	/* exec mode: the new image may claim on the old image's connection, kept across the exec
	 * (vlu_update_exec_keep, docs/PROTOCOL.md): the instance is registered on it */
	kept = u->mode == MODE_EXEC && !u->restarted && c->id == u->old_conn && c->inst == inst;
	if (!token_eq(token, u->token) || c->cred.pid != want_pid || c->cred.uid != u->uid || pfd_pid != c->cred.pid ||
	    !upd_pidfd_alive(expect_pidfd) || c->pidfd < 0 || (c->inst && !kept)) {
		log_warning("update %" PRIu64 " of %s: claim by pid %d uid %u refused (%s; expected pid %d uid %u)", u->id,
			    name, (int)c->cred.pid, (unsigned)c->cred.uid,
			    !token_eq(token, u->token) ? "wrong token"
			    : c->cred.pid != want_pid   ? "wrong pid"
			    : c->cred.uid != u->uid     ? "wrong uid"
			    : c->inst		       ? "connection already has an instance"
						       : "process identity (pidfd) mismatch",
			    (int)want_pid, (unsigned)u->uid);
		{
			json_object *d = upd_event_base(u);

			jadd(d, "pid", jnew_int(c->cred.pid));
			jadd(d, "uid", jnew_int(c->cred.uid));
			events_emit(VLU_EV_UPDATE_CLAIM_REFUSED, inst->name, d);
		}
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "claim refused: token, pid or uid do not match");
	}
	upd_own_begin(u, t0);
	/* every fallible step comes before the point of no return (token burnt, O's connection closed):
	 * a failure here changes nothing and the update keeps its claim deadline */
	if (inst->n_held + 1 > upd_claim_max_fds())
		/* checked at update.start; fds stored since then: never hand over fewer than held */
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "instance '%s' holds %u fds, a claim carries at most %u",
				     name, inst->n_held, upd_claim_max_fds() - 1);
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
	if (kept) {
		/* the old image's connection is the new image's now: the instance leaves it (a hand-over, not
		 * an orphan) and comes back with the hand-over below, as on any claimant's connection; O's
		 * connection, for the rollback's facts and the events to O, is gone (as after an exec that
		 * closed it) */
		instance_hand_over(inst, NULL, 0, -EBADF);
		u->old_conn = 0;
		/* O's event subscription ends here: the update's own events (its phases, the verdict) would
		 * otherwise reach the new image inside the pause, a message and a wake-up each before the
		 * claim's reply; the new image subscribes again when it wants them, as on a new connection */
		c->subscribed = false;
		c->sub_instance[0] = '\0';
		c->sub_events = VLU_EVENTS_ALL;
		log_info("update %" PRIu64 " of %s: claim on the connection kept across the exec", u->id, name);
	} else if (u->mode == MODE_EXEC && !u->restarted && upd_conn_by_id(u->old_conn) && upd_conn_by_id(u->old_conn) != c) {
		/* same pid, right token: the old image's socket closed at exec (CLOEXEC) and its EOF is not
		 * processed yet, or the VMM claims for itself; either way that connection is done (the
		 * instance leaves it first: a hand-over, not an orphan) */
		instance_hand_over(inst, NULL, 0, -EBADF);
		conn_kill(upd_conn_by_id(u->old_conn), "replaced by the claiming image (live update)");
	}
	u->token_valid = false;
	explicit_bzero(u->token, sizeof(u->token));
	u->new_pid = c->cred.pid;
	u->new_before_kb = u->iof_lck_new_before_kb = 0;
	(void)upd_vmpin_read(u->new_pid, &u->new_before_kb, u->iof ? &u->iof_lck_new_before_kb : NULL);
	upd_set_phase(u, PH_CLAIM); /* never without a deadline */
	if (u->route == 'C') {
		/* transfer mode: O closed its device fds before update.saved */
		if (upd_release_devices(u, claim_released, why, sizeof(why)) < 0) {
			safe_close(pidfd);
			safe_close(same_pidfd);
			claim_failed(u, why);
			return request_error(r, VLU_ERR_DEVICE_ERROR, "%s", why);
		}
		/* the claim continues in claim_released() (the phase deadline still runs); the reply is
		 * deferred, the pidfds wait in u (owned) */
		upd_deferred_take(&u->claim, r);
		u->claim_pidfd = TAKE_FD(pidfd);
		u->claim_same_pidfd = TAKE_FD(same_pidfd);
		log_info("update %" PRIu64 " of %s: claim by pid %d accepted, releasing the old device fds", u->id, name,
			 (int)c->cred.pid);
		upd_own_end(u);
		return 0;
	}
	k = claim_handover(u, c, TAKE_FD(pidfd), TAKE_FD(same_pidfd), &r->ret, r->out_fds, &r->n_out_fds);
	upd_set_phase(u, PH_RESTORE);
	log_info("update %" PRIu64 " of %s: claimed by pid %d (%d fds handed over)", u->id, name, (int)c->cred.pid, k);
	upd_own_end(u); /* (the reply, sent after this: serialised and sent by the connection's code) */
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

	upd_own_begin(u, t0);
	u->claim_job = NULL;
	u->release_us = close_us;
	log_info("update %" PRIu64 " of %s: old device fds released in %.1f ms (off the loop)", u->id, u->inst->name,
		 (double)close_us / 1000.0);
	if (upd_reopen_devices(u, why, sizeof(why)) < 0) {
		upd_deferred_error(&u->claim, VLU_ERR_DEVICE_ERROR, why, NULL);
		upd_own_end(u);
		claim_failed(u, why);
		return;
	}
	c = upd_conn_by_id(u->claim.conn);
	if (!c || c->dead || c->inst || !upd_pidfd_alive(u->claim_pidfd)) {
		/* the claimant's connection closed, or its process exited (its exit was left to this point,
		 * update_decide()), while the device was released: D holds the reopened device; the rollback
		 * decides (exec mode: may restart the previous binary; transfer mode: O may take it back) */
		bool exited = !upd_pidfd_alive(u->claim_pidfd);

		upd_own_end(u);
		u->claim_pidfd = safe_close(u->claim_pidfd);
		u->claim_same_pidfd = safe_close(u->claim_same_pidfd);
		upd_deferred_drop(&u->claim);
		instance_hand_over_failed(u->inst, "the claimant disconnected during the claim");
		upd_rollback(u, RBT_FAILED, CAUSE_CLAIMANT_GONE, "the claimant (pid %d) %s while the old device was released",
			     (int)u->new_pid, exited ? "exited" : "closed its connection");
		return;
	}
	k = claim_handover(u, c, TAKE_FD(u->claim_pidfd), TAKE_FD(u->claim_same_pidfd), &o, out_fds, &n);
	upd_deferred_return(&u->claim, o, out_fds, n);
	upd_set_phase(u, PH_RESTORE);
	log_info("update %" PRIu64 " of %s: claimed by pid %d (%d fds handed over)", u->id, u->inst->name,
		 (int)u->new_pid, k);
	upd_own_end(u);
}

/* what the successor's update.ready declares (arguments type- and range-checked by the command table):
 * the device state members it changed on purpose, its CVQ replay (the verdict's cvq_replay_ms) */
static void ready_params(struct update *u, json_object *args)
{
	json_object *v;

	json_object_put(TAKE_PTR(u->declared));
	if (json_object_object_get_ex(args, "device_state_changes", &v))
		u->declared = json_object_get(v);
	u->cvq_commands = upd_jint(args, "cvq_commands", 0);
	u->cvq_replay_us = upd_jint(args, "cvq_replay_us", 0);
}

/* every device's state after the successor's ready against before the suspend: a difference the
 * successor did not declare (a MAC a reset lost and nobody restored) fails the verification */
static bool device_state_verified(struct update *u)
{
	_cleanup_json_ json_object *differ = jnew_arr(), *undecl = jnew_arr();
	char list[256] = "";
	size_t n = 0;

	for (unsigned i = 0; i < u->ndevs; i++)
		n += devstate_compare(u->devs[i].name, u->devs[i].state_before, u->devs[i].state_after, u->declared,
				      differ, undecl);
	if (!n)
		return true;
	for (size_t k = 0; k < json_object_array_length(undecl); k++) {
		size_t l = strlen(list);

		snprintf(list + l, sizeof(list) - l, "%s%s", k ? ", " : "",
			 json_object_get_string(json_object_array_get_idx(undecl, k)));
	}
	upd_set_failure(u, CAUSE_DEVICE_STATE, "device state differs from before the update: %s (not declared by the "
			"successor in device_state_changes)", list);
	return false;
}

/* The charge verified at the successor's update.ready (ok: nothing failed so far; the VmPin counters are
 * read whatever, for the verdict): iommufd, the successor says it called CHANGE_PROCESS on every held
 * iommufd (and, optionally, where it mapped the memfds now); VmPin says whether the charge really moved
 * (both shares of a mixed instance), VmLck the iommufd's in mm accounting mode.  The new ok. */
static bool charge_verified(struct update *u, json_object *args, bool ok)
{
	int k;

	/* iommufd: the successor says it called CHANGE_PROCESS on every held iommufd (and, optionally, where
	 * it mapped the memfds now); VmPin below says whether the charge really moved */
	if (u->iof && ok) {
		char why[512];

		if (upd_iof_ready(u, args, why, sizeof(why)) < 0) {
			upd_set_failure(u, CAUSE_VERIFY, "%s", why);
			ok = false;
		}
	}
	/* N's VmPin unread would pass as 0 = the expected size in VA mode: not verified is not ok.  (O may
	 * have exited in transfer mode: an unreadable old_after_kb stays 0, which is what a gone mm pins.) */
	k = upd_vmpin_read(u->new_pid, &u->new_after_kb, u->iof ? &u->iof_lck_after_kb : NULL);
	if (k < 0 && ok) {
		upd_set_failure(u, CAUSE_VERIFY, "cannot read VmPin of the successor (pid %d): %s", (int)u->new_pid,
			    strerror(-k));
		ok = false;
	}
	if (u->mode == MODE_TRANSFER)
		(void)upd_vmpin_read(u->old_pid, &u->old_after_kb, u->iof ? &u->iof_lck_old_after_kb : NULL);
	else
		u->old_after_kb = u->new_after_kb;
	if (ok && !upd_vmpin_moved(u)) {
		upd_set_failure(u, CAUSE_VERIFY,
			    "VmPin mismatch: expected %" PRId64 " kB moved; old %" PRId64 " -> %" PRId64 " kB, new %" PRId64
			    " -> %" PRId64 " kB",
			    u->expected_kb, u->old_before_kb, u->old_after_kb, u->new_before_kb, u->new_after_kb);
		ok = false;
	}
	/* iommufd in mm accounting mode (transfer mode only): VmLck moves with VmPin, O down and N up by the
	 * iommufd's pinned size (measured to the kB; docs/IOMMUFD.md), not by the vhost-vdpa devices' share of
	 * expected_kb (vhost-vdpa never charges locked_vm) */
	if (ok && u->iof &&
	    !iof_vmlck_moved(&u->iof_plan, u->mode == MODE_TRANSFER, u->iof_lck_before_kb, u->iof_lck_old_after_kb,
			     u->iof_lck_new_before_kb, u->iof_lck_after_kb)) {
		upd_set_failure(u, CAUSE_VERIFY,
			    "VmLck mismatch (mm accounting): expected %" PRId64 " kB moved; old %" PRId64 " -> %" PRId64
			    " kB, new %" PRId64 " -> %" PRId64 " kB",
			    u->iof_plan.vmlck_kb, u->iof_lck_before_kb, u->iof_lck_old_after_kb, u->iof_lck_new_before_kb,
			    u->iof_lck_after_kb);
		ok = false;
	}
	return ok;
}

int update_cmd_ready(struct request *r)
{
	struct instance *inst = r->c->inst;
	struct upd_inst *ui = inst ? upd_ui_get(inst, false) : NULL;
	struct update *u = ui ? ui->cur : NULL;
	const char *err = request_arg_str(r, "error");
	int64_t t0 = now_monotonic_us();
	json_object *v = NULL;
	bool ok = true, early;
	int k;

	if (!u)
		return request_error(r, VLU_ERR_NOT_FOUND, "no update of this instance is running");
	if (u->retake)
		return upd_retake_ready(r, u, err);
	if (!update_phase_permits(u->phase, EXPECT_READY, PARTY_NEW) || r->c->cred.pid != u->new_pid)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "update.ready is for the successor in phase restore (now: %s)",
				     update_phase_name(u->phase));
	upd_own_begin(u, t0);
	if (err) {
		upd_rollback(u, RBT_FAILED, CAUSE_RESTORE, "the successor could not restore: %s", err);
		r->ret = ui->last ? json_object_get(ui->last) : jnew_obj();
		return 0;
	}
	ready_params(u, r->args);
	/* a mixed instance on path A: the charge first, before D's RESUME: a successor that did not move it is
	 * killed (exec mode: the previous binary restarted, R13) while its vhost-vdpa devices are still
	 * suspended as the saved state describes them (phase restore; docs/IOMMUFD.md "Mixed instances") */
	early = u->iof && u->ndevs && u->route == 'A';
	if (early && !charge_verified(u, r->args, true)) {
		ok = false;
		goto verified;
	}
	if (u->route == 'A') {
		upd_set_phase(u, PH_RESUME);
		for (unsigned i = 0; i < u->ndevs; i++) {
			k = upd_dev_ioctl(u, i, VHOST_VDPA_RESUME, NULL);
			if (k < 0) {
				upd_set_failure(u, CAUSE_VERIFY, "RESUME %s: %s", u->devs[i].name, strerror(-k));
				ok = false;
			}
			u->devs[i].suspended = false;
		}
		if (ok)
			upd_pause_end(u); /* the device runs again (pause_ms) */
	}
	upd_set_phase(u, PH_VERIFY);
	for (unsigned i = 0; i < u->ndevs && ok; i++) {
		uint8_t st = 0;

		k = upd_dev_status(u, i, &st);
		if (k < 0 || !(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
			upd_set_failure(u, CAUSE_VERIFY, "device %s: status %s0x%x, not DRIVER_OK", u->devs[i].name,
				    k < 0 ? "unreadable " : "", st);
			ok = false;
		}
	}
	if (ok)
		upd_pause_end(u); /* B, C: the verified DRIVER_OK ends the pause (A: its RESUME did) */
	/* the devices' visible state now that the new image is ready (device_state: before vs after) */
	for (unsigned i = 0; i < u->ndevs; i++) {
		json_object_put(u->devs[i].state_after);
		u->devs[i].state_after = upd_dev_state(u, i);
	}
	if (!early)
		ok = charge_verified(u, r->args, ok);
	/* last: the device's state (a failure above is the first cause and says more) */
	if (ok && !device_state_verified(u))
		ok = false;
verified:
	if (!ok) {
		uint64_t id = u->id;

		upd_own_end(u); /* (the rollback's own work is not counted) */
		/* transfer mode with O alive: N is killed (it still holds the device), O takes back at its exit;
		 * otherwise the verdict is failed as it stands (update_decide(), RBT_VERIFY) */
		upd_rollback_act(u, RBT_VERIFY);
		if (ui->cur && ui->cur->id == id && (ui->cur->kill_pending || ui->cur->new_held))
			/* the verdict comes when the killed successor's exit is seen, or (R14: stopped now)
			 * when the old VMM took the charge back */
			r->ret = jnew_obj();
		else
			r->ret = ui->last ? json_object_get(ui->last) : jnew_obj();
		return 0;
	}
	upd_set_phase(u, PH_COMMIT);
	upd_iof_commit(u, ui);
	if (u->restarted) {
		/* the device runs again, under the previous binary: the update itself failed */
		json_object *d = upd_event_base(u);
		char reason[1024];

		upd_add_note(u, "; the previous binary (pid %d) took the device back", (int)u->new_pid);
		upd_error_text(u, reason, sizeof(reason));
		jadd(d, "reason", jnew_str(reason));
		jadd(d, "restarted_previous", jnew_bool(true));
		events_emit(VLU_EV_UPDATE_ROLLED_BACK, u->inst->name, d);
		upd_finish(u, "rolled-back", VLU_EV_UPDATE_COMPLETED, &v);
		r->ret = v;
		return 0;
	}
	upd_finish(u, "ok", VLU_EV_UPDATE_COMPLETED, &v);
	r->ret = v;
	return 0;
}

