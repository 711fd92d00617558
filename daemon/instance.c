/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* instance.c - VMM instances (see instance.h) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "commands.h"
#include "config.h"
#include "conn.h"
#include "events.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "persist.h"
#include "update.h"
#include "vlu-proto.h"

static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct instance *inst = container_of(w, struct instance, expiry);

	log_info("instance %s: orphaned for %us (orphan_expiry_s), releasing its %u fds", inst->name,
		 vl.cfg->orphan_expiry_s, inst->n_held);
	instance_release(inst, "expired");
}

static void arm_expiry(struct instance *inst)
{
	double left;

	if (vl.cfg->orphan_expiry_s == 0)
		return;
	left = (double)vl.cfg->orphan_expiry_s - (double)(now_realtime_us() - inst->orphaned_us) / 1e6;
	if (left < 0)
		left = 0;
	ev_timer_stop(vl.loop, &inst->expiry);
	ev_timer_set(&inst->expiry, left, 0.);
	ev_timer_start(vl.loop, &inst->expiry);
}

static void pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct instance *inst = container_of(w, struct instance, pidfd_io);

	log_info("instance %s: VMM process %d exited", inst->name, (int)inst->pid);
	instance_orphan(inst, "process exited");
}

static void watch_pidfd(struct instance *inst)
{
	ev_io_stop(vl.loop, &inst->pidfd_io);
	if (inst->pidfd < 0)
		return;
	ev_io_set(&inst->pidfd_io, inst->pidfd, EV_READ);
	ev_io_start(vl.loop, &inst->pidfd_io);
}

struct instance *instance_find(const char *name)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.instances) {
		struct instance *inst = list_entry(p, struct instance, link);

		if (strcmp(inst->name, name) == 0)
			return inst;
	}
	return NULL;
}

static struct instance *instance_new(const char *name)
{
	struct instance *inst = calloc(1, sizeof(*inst));

	if (!inst)
		return NULL;
	snprintf(inst->name, sizeof(inst->name), "%s", name);
	inst->pidfd = -EBADF;
	list_init(&inst->held);
	ev_io_init(&inst->pidfd_io, pidfd_cb, -1, EV_READ);
	ev_timer_init(&inst->expiry, expiry_cb, 0., 0.);
	list_add_tail(&vl.instances, &inst->link);
	vl.n_instances++;
	return inst;
}

int instance_create(const char *name, struct conn *c, pid_t pid, int pidfd, uid_t uid, gid_t gid,
		    struct instance **ret)
{
	struct instance *inst = instance_new(name);

	if (!inst) {
		safe_close(pidfd);
		return -ENOMEM;
	}
	inst->pid = pid;
	inst->pidfd = pidfd;
	inst->uid = uid;
	inst->gid = gid;
	inst->registered_us = now_realtime_us();
	inst->state = INSTANCE_ATTACHED;
	inst->conn = c;
	c->inst = inst;
	watch_pidfd(inst);
	persist_state_write();
	vlud_notify_status();
	*ret = inst;
	return 0;
}

int instance_restore(const char *name, pid_t pid, uid_t uid, gid_t gid, int64_t registered_us, int64_t orphaned_us,
		     const char *reason, struct instance **ret)
{
	struct instance *inst = instance_new(name);

	if (!inst)
		return -ENOMEM;
	inst->pid = pid;
	inst->uid = uid;
	inst->gid = gid;
	inst->registered_us = registered_us;
	inst->state = INSTANCE_ORPHANED;
	inst->orphaned_us = orphaned_us ? orphaned_us : now_realtime_us();
	/* the reason may quote a client's text: never cut a character in half */
	snprintf(inst->orphan_reason, sizeof(inst->orphan_reason), "%.*s",
		 (int)vlu_utf8_prefix(reason, sizeof(inst->orphan_reason) - 1), reason);
	arm_expiry(inst);
	*ret = inst;
	return 0;
}

void instance_attach(struct instance *inst, struct conn *c, pid_t pid, int pidfd)
{
	ev_timer_stop(vl.loop, &inst->expiry);
	inst->pidfd = safe_close(inst->pidfd);
	inst->pidfd = pidfd;
	inst->pid = pid;
	inst->state = INSTANCE_ATTACHED;
	inst->orphaned_us = 0;
	inst->orphan_reason[0] = '\0';
	inst->conn = c;
	c->inst = inst;
	watch_pidfd(inst);
	persist_state_write();
	vlud_notify_status();
}

void instance_orphan(struct instance *inst, const char *reason)
{
	json_object *data;

	if (inst->state == INSTANCE_ORPHANED)
		return;
	ev_io_stop(vl.loop, &inst->pidfd_io);
	inst->pidfd = safe_close(inst->pidfd);
	if (inst->conn) {
		inst->conn->inst = NULL;
		conn_update_idle(inst->conn);
		inst->conn = NULL;
	}
	inst->state = INSTANCE_ORPHANED;
	inst->orphaned_us = now_realtime_us();
	/* the reason may quote a client's text: never cut a character in half */
	snprintf(inst->orphan_reason, sizeof(inst->orphan_reason), "%.*s",
		 (int)vlu_utf8_prefix(reason, sizeof(inst->orphan_reason) - 1), reason);
	log_info("instance %s orphaned (%s), keeping %u fds", inst->name, reason, inst->n_held);
	arm_expiry(inst);
	persist_state_write();
	vlud_notify_status();

	data = jnew_obj();
	jadd(data, "name", jnew_str(inst->name));
	jadd(data, "pid", jnew_int(inst->pid));
	jadd(data, "reason", jnew_str(reason));
	jadd(data, "fds", jnew_int(inst->n_held));
	events_emit(VLU_EV_INSTANCE_ORPHANED, inst->name, data);
}

void instance_hand_over(struct instance *inst, struct conn *c, pid_t pid, int pidfd)
{
	struct conn *oldc = inst->conn;

	ev_io_stop(vl.loop, &inst->pidfd_io); /* its pidfd is replaced (instance_attach) or closed next */
	if (oldc) {
		oldc->inst = NULL;
		inst->conn = NULL;
		conn_update_idle(oldc);
	}
	if (c)
		instance_attach(inst, c, pid, pidfd);
	else
		safe_close(pidfd);
}

void instance_hand_over_failed(struct instance *inst, const char *reason)
{
	if (inst->state == INSTANCE_ATTACHED && !inst->conn)
		instance_orphan(inst, reason);
}

/* daemon exit: close our copies, leave the fd store and the state alone */
static void instance_free(struct instance *inst)
{
	struct list *p, *t;

	update_instance_gone(inst);
	commands_reopen_forget(inst, "went with vlud's exit");
	ev_io_stop(vl.loop, &inst->pidfd_io);
	ev_timer_stop(vl.loop, &inst->expiry);
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		list_del(&h->link);
		held_close_fd(inst, h->device != NULL, TAKE_FD(h->fd));
		free(h->device);
		free(h->path);
		free(h);
	}
	if (inst->conn)
		inst->conn->inst = NULL;
	inst->pidfd = safe_close(inst->pidfd);
	list_del(&inst->link);
	vl.n_instances--;
	free(inst);
}

unsigned instance_release(struct instance *inst, const char *reason)
{
	unsigned n = inst->n_held;
	struct conn *c = inst->conn;
	uid_t uid = inst->uid;
	char name[sizeof(inst->name)];
	struct list *p, *t;
	json_object *data;

	snprintf(name, sizeof(name), "%s", inst->name);
	update_instance_gone(inst); /* end a running update first */
	commands_reopen_forget(inst, "was released");
	/* the state forgets the instance before the fd store forgets its fds (see persist.c); an fd of another
	 * instance sharing a file with one of these takes over its place in the store first */
	list_for_each_safe(p, t, &inst->held)
		persist_fd_unlink(list_entry(p, struct held, link));
	list_del(&inst->link);
	vl.n_instances--;
	vl.n_held -= inst->n_held;
	persist_state_write();
	ev_io_stop(vl.loop, &inst->pidfd_io);
	ev_timer_stop(vl.loop, &inst->expiry);
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		list_del(&h->link);
		held_destroy(h);
	}
	if (c)
		c->inst = NULL;
	inst->pidfd = safe_close(inst->pidfd);
	free(inst);
	if (c)
		conn_update_idle(c);
	vlud_notify_status();
	log_info("instance %s released (%s), %u fds closed", name, reason, n);

	data = jnew_obj();
	jadd(data, "name", jnew_str(name));
	jadd(data, "closed_fds", jnew_int(n));
	jadd(data, "reason", jnew_str(reason));
	events_emit_owned(VLU_EV_INSTANCE_RELEASED, name, uid, data);
	return n;
}

void instance_free_all(void)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.instances)
		instance_free(list_entry(p, struct instance, link));
	vl.n_held = 0;
}

const char *instance_state_name(enum instance_state s)
{
	return s == INSTANCE_ATTACHED ? "attached" : "orphaned";
}

json_object *instance_to_json(const struct instance *inst)
{
	json_object *o = jnew_obj(), *devs = jnew_arr();
	struct list *p, *t;

	jadd(o, "name", jnew_str(inst->name));
	jadd(o, "state", jnew_str(instance_state_name(inst->state)));
	jadd(o, "pid", jnew_int(inst->pid));
	jadd(o, "uid", jnew_int(inst->uid));
	jadd(o, "gid", jnew_int(inst->gid));
	jadd(o, "registered_us", jnew_int(inst->registered_us));
	jadd(o, "fds", jnew_int(inst->n_held));
	if (inst->state == INSTANCE_ORPHANED) {
		jadd(o, "orphaned_us", jnew_int(inst->orphaned_us));
		jadd(o, "orphan_reason", jnew_str(inst->orphan_reason));
		if (vl.cfg->orphan_expiry_s)
			jadd(o, "expires_us",
					       jnew_int(inst->orphaned_us +
								     (int64_t)vl.cfg->orphan_expiry_s * 1000000));
	}
	list_for_each_safe(p, t, (struct list *)&inst->held) {
		struct held *h = list_entry(p, struct held, link);

		if (h->device)
			jappend(devs, jnew_str(h->device));
	}
	jadd(o, "devices", devs);
	return o;
}
