/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * commands.c - dispatch and the handler table.
 *
 * Pipeline for one message: vlu_json_parse (depth limit) -> vlu_request_parse
 * -> negotiation gate -> vlu_command_find (unknown: CommandNotFound) ->
 * permission (roles from the policy, instance requirement) ->
 * vlu_command_check (arguments, fd count) -> handler.  Nothing changes
 * before the handler runs, and handlers check everything before their first
 * side effect.  Received fds belong to the request: whatever the handler
 * did not take (set to -EBADF) is closed here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include "closer.h"
#include "commands.h"
#include "config.h"
#include "conn.h"
#include "device.h"
#include "events.h"
#include "fdtype.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "persist.h"
#include "policy.h"
#include "update.h"
#include "vlud.h"
#include "vlud-vhost.h"

#define DEVICE_FD_PREFIX "vdpa:"
#define IOMMUFD_FD_PREFIX "iommufd:"
#define VFIO_FD_PREFIX "vfio:"

int request_verror(struct request *r, enum vlu_error_class cls, const char *fmt, va_list ap)
{
	r->failed = true;
	r->err_class = cls;
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	return -1;
}

int request_error(struct request *r, enum vlu_error_class cls, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)request_verror(r, cls, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_operator(const struct conn *c)
{
	return c->roles & ROLE_OPERATOR;
}

const char *request_arg_str(const struct request *r, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(r->args, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool request_arg_bool(const struct request *r, const char *k, bool dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(r->args, k, &v) || !json_object_is_type(v, json_type_boolean))
		return dflt;
	return json_object_get_boolean(v);
}

static const char *arg_str(struct request *r, const char *k)
{
	return request_arg_str(r, k);
}

static bool arg_bool(struct request *r, const char *k)
{
	return request_arg_bool(r, k, false);
}

static json_object *arg_array(struct request *r, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(r->args, k, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* The daemon's counts; for a VMM (all: false) those of its own uid only: nothing about other tenants. */
static json_object *counts_json(bool all, uid_t uid)
{
	json_object *o = jnew_obj();
	struct list *p, *t;
	unsigned orphaned = 0, instances = 0, fds = 0;

	list_for_each_safe(p, t, &vl.instances) {
		const struct instance *i = list_entry(p, struct instance, link);

		if (!all && i->uid != uid)
			continue;
		instances++;
		fds += i->n_held;
		if (i->state == INSTANCE_ORPHANED)
			orphaned++;
	}
	jadd(o, "connections", jnew_int(all ? vl.n_conns : conn_count_uid(uid)));
	jadd(o, "instances", jnew_int(instances));
	jadd(o, "orphaned", jnew_int(orphaned));
	jadd(o, "fds", jnew_int(fds));
	return o;
}

/* ---- handlers ---- */

static int cmd_capabilities(struct request *r)
{
	json_object *en = arg_array(r, "enable");

	if (r->c->negotiated)
		return request_error(r, VLU_ERR_GENERIC, "capabilities already negotiated");
	/* the greeting offers no capabilities yet: any name is unknown */
	if (en && json_object_array_length(en) > 0)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "unknown capability '%s' (this daemon offers none)",
				     json_object_get_string(json_object_array_get_idx(en, 0)));
	r->c->negotiated = true;
	ev_timer_stop(vl.loop, &r->c->handshake);
	return 0;
}

static int cmd_status(struct request *r)
{
	json_object *o = jnew_obj(), *v = jnew_obj(), *k = jnew_obj(), *fs = jnew_obj(), *st = jnew_obj(),
		    *you = jnew_obj(), *cfg, *lim = NULL;

	jadd(v, "major", jnew_int(VLU_PROTO_MAJOR));
	jadd(v, "minor", jnew_int(VLU_PROTO_MINOR));
	jadd(v, "micro", jnew_int(VLU_PROTO_MICRO));
	jadd(v, "package", jnew_str(VLUD_PACKAGE));
	jadd(o, "version", v);
	jadd(o, "pid", jnew_int(getpid()));
	jadd(o, "uptime_ms", jnew_int((now_monotonic_us() - vl.start_monotonic_us) / 1000));
	/* a VMM sees its own uid's counts; the daemon-wide ones (fd store, start-up, devices seen) are the
	 * operators' */
	jadd(o, "counts", counts_json(is_operator(r->c), r->c->cred.uid));
	cfg = config_to_json(vl.cfg);
	if (json_object_object_get_ex(cfg, "limits", &lim))
		jadd(o, "limits", json_object_get(lim));
	/* the update phase deadlines: vluctl update start derives its wait for the verdict from them */
	if (json_object_object_get_ex(cfg, "timeouts", &lim))
		jadd(o, "timeouts", json_object_get(lim));
	jadd(o, "orphan_expiry_s", jnew_int(vl.cfg->orphan_expiry_s));
	json_object_put(cfg);
	jadd(fs, "enabled", jnew_bool(vl.fdstore));
	if (is_operator(r->c)) {
		jadd(fs, "in_use", jnew_int(vl.fdstore ? vl.n_held + 1 : 0));
		jadd(st, "restored_instances", jnew_int(vl.restored_instances));
		jadd(st, "adopted_fds", jnew_int(vl.adopted_fds));
		jadd(st, "dropped_fds", jnew_int(vl.dropped_fds));
		jadd(st, "lost_fds", jnew_int(vl.lost_fds));
		jadd(k, "backend_features_seen", jnew_uint(vl.backend_features_seen));
		jadd(k, "backend_feature_names_seen", device_backend_feature_names(vl.backend_features_seen));
	}
	jadd(o, "fdstore", fs);
	jadd(o, "startup", st);
	jadd(k, "vhost_vdpa_major", vl.vdpa_major >= 0 ? jnew_int(vl.vdpa_major) : NULL);
	jadd(o, "kernel", k);
	jadd(you, "pid", jnew_int(r->c->cred.pid));
	jadd(you, "uid", jnew_int(r->c->cred.uid));
	jadd(you, "operator", jnew_bool(is_operator(r->c)));
	jadd(you, "vmm", jnew_bool(r->c->roles & ROLE_VMM));
	jadd(you, "instance", r->c->inst ? jnew_str(r->c->inst->name) : NULL);
	jadd(o, "you", you);
	r->ret = o;
	return 0;
}

static json_object *instance_event_data(struct instance *inst)
{
	json_object *d = jnew_obj();

	jadd(d, "name", jnew_str(inst->name));
	jadd(d, "pid", jnew_int(inst->pid));
	jadd(d, "uid", jnew_int(inst->uid));
	return d;
}

/* instances, and fds held for them, of one uid (the per-uid quotas) */
static unsigned uid_instances(uid_t uid)
{
	struct list *p, *t;
	unsigned n = 0;

	list_for_each_safe(p, t, &vl.instances)
		if (list_entry(p, struct instance, link)->uid == uid)
			n++;
	return n;
}

static unsigned uid_held(uid_t uid)
{
	struct list *p, *t;
	unsigned n = 0;

	list_for_each_safe(p, t, &vl.instances) {
		const struct instance *i = list_entry(p, struct instance, link);

		if (i->uid == uid)
			n += i->n_held;
	}
	return n;
}

/* Would n more fds exceed the per-uid quota (peers that are not operators)?  Fills the error. */
static bool over_uid_fds(struct request *r, unsigned n)
{
	unsigned have;

	if (is_operator(r->c))
		return false;
	have = uid_held(r->c->cred.uid);
	if (have + n <= vl.cfg->limits.max_fds_per_uid)
		return false;
	request_error(r, VLU_ERR_LIMIT_EXCEEDED, "uid %u holds %u fds; %u more exceed max_fds_per_uid %u",
		      (unsigned)r->c->cred.uid, have, n, vl.cfg->limits.max_fds_per_uid);
	return true;
}

static int cmd_instance_register(struct request *r)
{
	struct conn *c = r->c;
	const char *name = arg_str(r, "name");
	bool reattach = arg_bool(r, "reattach");
	struct instance *inst;
	bool reattached;
	json_object *o;
	int pidfd;

	if (c->inst)
		return request_error(r, VLU_ERR_BUSY, "this connection already registered instance '%s'",
				     c->inst->name);
	if (c->pidfd < 0)
		return request_error(r, VLU_ERR_UNSUPPORTED,
				     "cannot track the peer process (no pidfd: other pid namespace?)");
	if (!is_operator(c) && !policy_name_allowed(vl.cfg, &c->cred, name))
		return request_error(r, VLU_ERR_PERMISSION_DENIED,
				     "instance name '%s' is not allowed for uid %u by the policy (names)", name,
				     (unsigned)c->cred.uid);
	inst = instance_find(name);
	if (inst && inst->uid != c->cred.uid && !is_operator(c))
		/* another uid's instance: nothing about it (pid, uid, state) is told */
		return request_error(r, VLU_ERR_BUSY, "instance name '%s' is taken", name);
	if (inst) {
		if (inst->state == INSTANCE_ATTACHED)
			return request_error(r, VLU_ERR_BUSY, "instance '%s' is attached to pid %d", name,
					     (int)inst->pid);
		if (!reattach)
			return request_error(r, VLU_ERR_BUSY,
					     "instance '%s' exists (orphaned); register with reattach:true to adopt it",
					     name);
		if (inst->uid != c->cred.uid)
			return request_error(r, VLU_ERR_PERMISSION_DENIED, "instance '%s' belongs to uid %u", name,
					     (unsigned)inst->uid);
		/* exec mode orphans the instance until the successor claims it with its token: nobody
		 * adopts it (and retrieves its fds) meanwhile */
		if (update_running(inst))
			return request_error(r, VLU_ERR_BUSY,
					     "instance '%s' is being live-updated: only its successor (update.claim) "
					     "takes it over",
					     name);
		{
			char why[256];

			if (update_reattach_refused(inst, c->cred.pid, why, sizeof(why)) < 0)
				return request_error(r, VLU_ERR_BUSY, "%s", why);
		}
	} else if (vl.n_instances >= vl.cfg->limits.max_instances)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "%u instances registered (max_instances)",
				     vl.n_instances);
	else if (!is_operator(c) && uid_instances(c->cred.uid) >= vl.cfg->limits.max_instances_per_uid)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "uid %u has %u instances (max_instances_per_uid)",
				     (unsigned)c->cred.uid, uid_instances(c->cred.uid));

	pidfd = fcntl(c->pidfd, F_DUPFD_CLOEXEC, 3);
	if (pidfd < 0)
		return request_error(r, VLU_ERR_INTERNAL, "dup: %s", strerror(errno));
	reattached = inst != NULL;
	if (inst) {
		instance_attach(inst, c, c->cred.pid, pidfd);
		update_reattached(inst, c->cred.pid);
		log_info("instance %s reattached by pid %d uid %u (%u fds)", name, (int)c->cred.pid,
			 (unsigned)c->cred.uid, inst->n_held);
		events_emit(VLU_EV_INSTANCE_REATTACHED, inst->name, instance_event_data(inst));
	} else {
		int k = instance_create(name, c, c->cred.pid, pidfd, c->cred.uid, c->cred.gid, &inst);

		if (k < 0)
			return request_error(r, VLU_ERR_INTERNAL, "%s", strerror(-k));
		log_info("instance %s registered by pid %d uid %u", name, (int)c->cred.pid, (unsigned)c->cred.uid);
		events_emit(VLU_EV_INSTANCE_REGISTERED, inst->name, instance_event_data(inst));
	}
	o = jnew_obj();
	jadd(o, "name", jnew_str(inst->name));
	jadd(o, "pid", jnew_int(inst->pid));
	jadd(o, "uid", jnew_int(inst->uid));
	jadd(o, "state", jnew_str(instance_state_name(inst->state)));
	jadd(o, "reattached", jnew_bool(reattached));
	jadd(o, "fds", jnew_int(inst->n_held));
	r->ret = o;
	return 0;
}

static int cmd_instance_list(struct request *r)
{
	json_object *o = jnew_obj(), *a = jnew_arr();
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.instances) {
		struct instance *inst = list_entry(p, struct instance, link);

		/* VMMs see the instances of their own uid (the ones they could reattach) */
		if (!is_operator(r->c) && inst->uid != r->c->cred.uid)
			continue;
		jappend(a, instance_to_json(inst));
	}
	jadd(o, "instances", a);
	r->ret = o;
	return 0;
}

static int cmd_instance_release(struct request *r)
{
	const char *name = arg_str(r, "name");
	struct instance *inst = instance_find(name);
	json_object *o;
	unsigned n;

	if (!inst) {
		if (!is_operator(r->c))
			return request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance",
					     name);
		return request_error(r, VLU_ERR_NOT_FOUND, "no instance '%s'", name);
	}
	if (!is_operator(r->c) && r->c->inst != inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
	/* the VMM waits for its update to end (an operator may release: the update ends failed, devices
	 * resumed, before the fds close) */
	if (r->c->inst == inst && update_running(inst))
		return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running: update.abort it first", name);
	n = instance_release(inst, r->c->inst == inst ? "released by its VMM" : "released by an operator");
	o = jnew_obj();
	jadd(o, "name", jnew_str(name));
	jadd(o, "closed_fds", jnew_int(n));
	r->ret = o;
	return 0;
}

/* A held fd as the caller may see it: another uid's instance is not named (a VMM sees only its own
 * world); operators see everything. */
static bool may_see(const struct request *r, const struct instance *inst)
{
	return (r->c->roles & ROLE_OPERATOR) || inst->uid == r->c->cred.uid;
}

struct devlist_ctx {
	json_object *arr;
	const struct request *r;
};

/* h: the held fd of the device, NULL if none, or one the caller may not see (another uid's: only
 * "held" is told) */
static json_object *device_entry(const char *device, const char *path, struct held *h, bool held)
{
	json_object *o = jnew_obj();
	struct stat st;

	jadd(o, "name", jnew_str(device));
	jadd(o, "path", path ? jnew_str(path) : NULL);
	jadd(o, "present", jnew_bool(path && stat(path, &st) == 0));
	jadd(o, "configured", jnew_bool(true));
	jadd(o, "held", jnew_bool(held));
	jadd(o, "holder", h ? jnew_str(h->inst->name) : NULL);
	jadd(o, "fd_name", h ? jnew_str(h->name) : NULL);
	jadd(o, "kind", h ? jnew_str(fdtype_name(h->type)) : NULL);
	if (h && h->type == VLUD_FD_VHOST_VDPA) {
		uint8_t status;

		jadd(o, "status", ioctl(h->fd, VHOST_VDPA_GET_STATUS, &status) == 0 ? jnew_int(status) : NULL);
	} else
		jadd(o, "status", NULL);
	return o;
}

static void devlist_one(const char *device, void *ud)
{
	struct devlist_ctx *x = ud;
	_cleanup_free_ char *path = NULL;
	struct held *h = NULL;
	struct stat st;

	if (device_resolve(device, &path) < 0)
		path = NULL;
	if (path && stat(path, &st) == 0 && S_ISCHR(st.st_mode))
		h = held_find_rdev(st.st_rdev, NULL);
	jappend(x->arr, device_entry(device, path, h && may_see(x->r, h->inst) ? h : NULL, h != NULL));
}

static bool devlist_peer_one(const char *device, void *ud)
{
	devlist_one(device, ud);
	return false; /* all of them */
}

static int cmd_device_list(struct request *r)
{
	struct devlist_ctx x = { jnew_arr(), r };
	json_object *o = jnew_obj();
	struct list *ip, *it, *p, *t;

	/* operators: every device of every rule; a VMM: the devices of its own rules, another uid's holder
	 * not named */
	if (is_operator(r->c))
		policy_foreach_device(vl.cfg, devlist_one, &x);
	else
		(void)policy_foreach_peer_device(vl.cfg, &r->c->cred, devlist_peer_one, &x);
	/* held devices the configuration no longer lists (e.g. adopted after a restart) */
	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);

		if (!may_see(r, inst))
			continue;
		list_for_each_safe(p, t, &inst->held) {
			struct held *h = list_entry(p, struct held, link);
			bool listed = false;

			if (h->type != VLUD_FD_VHOST_VDPA && h->type != VLUD_FD_VFIO)
				continue; /* an iommufd is a context per open, not a device with one holder */
			for (size_t i = 0; i < json_object_array_length(x.arr); i++) {
				json_object *e = json_object_array_get_idx(x.arr, i), *hv;

				if (json_object_object_get_ex(e, "holder", &hv) && hv &&
				    strcmp(json_object_get_string(hv), inst->name) == 0 &&
				    json_object_object_get_ex(e, "fd_name", &hv) && hv &&
				    strcmp(json_object_get_string(hv), h->name) == 0)
					listed = true;
			}
			if (!listed) {
				json_object *e = device_entry(h->device ? h->device : h->name, h->path, h, true);

				jadd(e, "configured", jnew_bool(false));
				jappend(x.arr, e);
			}
		}
	}
	jadd(o, "devices", x.arr);
	r->ret = o;
	return 0;
}

struct path_match {
	const char *path;
	bool found;
};

static bool listed_name_resolves_to(const char *dev, void *ud)
{
	struct path_match *m = ud;
	_cleanup_free_ char *p = NULL;

	if (dev[0] == '/')
		return false;
	if (device_resolve(dev, &p) < 0)
		return false;
	return strcmp(p, m->path) == 0;
}

/* may the peer open device (a listed name or path, or a path a listed name resolves to)? */
static bool device_allowed(const struct request *r, const char *device)
{
	struct path_match m = { device, false };

	if (policy_device_listed(vl.cfg, &r->c->cred, device))
		return true;
	return device[0] == '/' && policy_foreach_peer_device(vl.cfg, &r->c->cred, listed_name_resolves_to, &m);
}

/* the held fd name of a device: "vdpa:" + the vdpa name or the node's basename; a vdpa name too long to
 * fit whole falls back to the node's basename (unique per device), never to a truncated name that two
 * devices could share */
static void device_fd_name(int kind, const char *device, const char *path, dev_t rdev, char *buf, size_t len)
{
	const char *pfx = kind == VLUD_FD_IOMMUFD ? IOMMUFD_FD_PREFIX : kind == VLUD_FD_VFIO ? VFIO_FD_PREFIX
											      : DEVICE_FD_PREFIX;
	const char *base = device[0] == '/' ? strrchr(path, '/') + 1 : device;
	int n = snprintf(buf, len, "%s%s", pfx, base);

	if (n < 0 || (size_t)n >= len || !vlu_name_valid(buf))
		snprintf(buf, len, "%s%s", pfx, strrchr(path, '/') + 1);
	/* a listed path whose basename is no valid name ("odd name@+"): the device number, always valid, so
	 * that fd.retrieve and fd.remove can name it */
	if (!vlu_name_valid(buf))
		snprintf(buf, len, "%sdev-%u-%u", pfx, major(rdev), minor(rdev));
}

/* the fd-name prefix reserved for device.open that name starts with, or NULL */
static const char *reserved_prefix(const char *name)
{
	static const char *const pfx[] = { DEVICE_FD_PREFIX, IOMMUFD_FD_PREFIX, VFIO_FD_PREFIX };

	for (size_t i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++)
		if (strncmp(name, pfx[i], strlen(pfx[i])) == 0)
			return pfx[i];
	return NULL;
}


static int cmd_device_open(struct request *r)
{
	struct instance *inst = r->c->inst;
	const char *device = arg_str(r, "device");
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	json_object *o, *dj, *fds;
	struct held *h;
	struct stat st;
	uint64_t bf = 0;
	char name[VLU_NAME_MAX + 1];
	int k, t;

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	if (!device_allowed(r, device))
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "device '%s' is not allowed for uid %u by the policy",
				     device, (unsigned)r->c->cred.uid);
	k = device_resolve(device, &path);
	if (k == -ENOENT)
		return request_error(r, VLU_ERR_NOT_FOUND, "no vdpa device '%s' (/sys/bus/vdpa/devices/%s)", device,
				     device);
	if (k == -ENODEV)
		return request_error(r, VLU_ERR_DEVICE_ERROR, "vdpa device '%s' is not bound to vhost_vdpa", device);
	if (k < 0)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "device '%s': %s", device, strerror(-k));
	if (inst->n_held + 1 > policy_max_fds(vl.cfg, &r->c->cred))
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "instance '%s' holds %u fds (max_fds %u)", inst->name,
				     inst->n_held, policy_max_fds(vl.cfg, &r->c->cred));
	if (over_uid_fds(r, 1))
		return -1;

	/* no symlink at any component, and every check below on the fd opened, not on the path before */
	k = device_open_node(path, &fd);
	if (k == -EBUSY)
		return request_error(r, VLU_ERR_BUSY, "device '%s' (%s) is busy: held by another process", device,
				     path);
	if (k == -ENODEV)
		return request_error(r, VLU_ERR_DEVICE_ERROR,
				     "%s is not a vhost-vdpa, iommufd (/dev/iommu) or VFIO device (cdev) character device",
				     path);
	if (k == -ELOOP)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "%s: a symbolic link on the path: refused", path);
	if (k < 0)
		return request_error(r, k == -ENOENT ? VLU_ERR_NOT_FOUND : VLU_ERR_DEVICE_ERROR, "open %s: %s", path,
				     strerror(-k));
	t = fdtype_detect(fd, vl.vdpa_major, &st);
	if (t < 0)
		return request_error(r, VLU_ERR_DEVICE_ERROR, "fstat %s: %s", path, strerror(-t));
	if (t != VLUD_FD_VHOST_VDPA && t != VLUD_FD_IOMMUFD && t != VLUD_FD_VFIO) {
		/* device_open_node() checked the kind on the O_PATH fd; the driver went away in between */
		closer_close_fd(TAKE_FD(fd));
		return request_error(r, VLU_ERR_DEVICE_ERROR,
				     "%s is not a vhost-vdpa, iommufd (/dev/iommu) or VFIO device (cdev) character device",
				     path);
	}
	if (device[0] != '/') {
		dev_t want;

		if (t != VLUD_FD_VHOST_VDPA || device_sysfs_rdev(device, &want) < 0 || want != st.st_rdev) {
			closer_close_fd(TAKE_FD(fd));
			return request_error(r, VLU_ERR_DEVICE_ERROR, "%s is not the node of vdpa device '%s'", path,
					     device);
		}
	}
	/* one holder per vhost-vdpa or VFIO device; /dev/iommu is a new context at each open (one per
	 * instance: the fd name below) */
	h = t == VLUD_FD_IOMMUFD ? NULL : held_find_rdev(st.st_rdev, NULL);
	if (h) {
		bool own = may_see(r, h->inst);

		closer_close_fd(TAKE_FD(fd));
		if (own)
			return request_error(r, VLU_ERR_BUSY, "device '%s' is held by instance '%s' (fd '%s')", device,
					     h->inst->name, h->name);
		return request_error(r, VLU_ERR_BUSY, "device '%s' (%s) is busy: held by another process", device,
				     path);
	}
	device_fd_name(t, device, path, st.st_rdev, name, sizeof(name));
	if (held_find(inst, name)) {
		closer_close_fd(TAKE_FD(fd));
		return request_error(r, VLU_ERR_BUSY, "instance '%s' already holds an fd named '%s'", inst->name,
				     name);
	}
	/* before the VMM has its copy: the iommufd probe needs a context without IOAS */
	dj = device_query_kind(fd, t, &bf);

	k = held_add(inst, name, TAKE_FD(fd), t, &st, 0, 0, device, path, &h);
	if (k < 0) {
		json_object_put(dj);
		return request_error(r, VLU_ERR_INTERNAL, "%s", strerror(-k));
	}
	persist_fds_commit();
	vlud_notify_status();
	vl.backend_features_seen |= bf;
	log_info("instance %s opened device %s (%s) as '%s'", inst->name, device, path, name);

	jadd(dj, "name", jnew_str(device));
	jadd(dj, "path", jnew_str(path));
	o = jnew_obj();
	fds = jnew_arr();
	jappend(fds, held_to_json(h, false));
	jadd(o, "fds", fds);
	jadd(o, "device", dj);
	r->ret = o;
	r->out_fds[0] = h->fd;
	r->n_out_fds = 1;

	o = jnew_obj();
	jadd(o, "instance", jnew_str(inst->name));
	jadd(o, "device", jnew_str(device));
	jadd(o, "path", jnew_str(path));
	jadd(o, "name", jnew_str(name));
	events_emit(VLU_EV_DEVICE_OPENED, inst->name, o);
	return 0;
}

/* ---- device.reopen: close the instance's device and open the node afresh, reserved throughout ----
 *
 * The held entry leaves the instance's table and becomes a reservation (held_reserve(): held_find_rdev()
 * still answers "held by this instance", so every other device.open of the node is Busy, and the node
 * cannot be opened around vlud either: only root can); its fd goes to the closer's DEVICE lane (the
 * last reference: the kernel resets the device and unpins the dead VMM's pages, off the loop); when the
 * close is done, the node is opened again through held_open_device() (same name, same device number),
 * and the deferred reply carries the new fd.  An EBUSY there (a copy of the old fd that vlud could not
 * see before, e.g. one in flight in a socket) is retried every REOPEN_RETRY_MS for REOPEN_BUSY_WAIT_MS
 * with the reservation kept; after that the device is lost to the instance (DeviceError, device.lost). */
#define REOPEN_BUSY_WAIT_MS 2000
#define REOPEN_RETRY_MS 100

struct reopen {
	struct list link;	/* in reopens */
	struct held *h;		/* the reservation (owned): name, device, path, rdev of the old fd */
	struct instance *inst;
	struct closer_job *job; /* the old fd's close; NULL once done */
	ev_timer retry;
	int64_t t0_us, release_us, deadline_us;
	unsigned busy_retries;
	uint64_t conn;		/* the deferred reply: connection id (0: gone), request id (owned) */
	json_object *id;
};

static struct list reopens = LIST_INIT(reopens);

static struct conn *conn_by_id(uint64_t id)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (id && c->id == id && !c->dead)
			return c;
	}
	return NULL;
}

static struct reopen *reopen_find(const struct instance *inst, const char *name)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &reopens) {
		struct reopen *ro = list_entry(p, struct reopen, link);

		if (ro->inst == inst && (!name || strcmp(ro->h->name, name) == 0))
			return ro;
	}
	return NULL;
}

bool commands_reopen_pending(const struct instance *inst)
{
	return reopen_find(inst, NULL) != NULL;
}

static json_object *reopen_event(const struct reopen *ro)
{
	json_object *o = jnew_obj();

	jadd(o, "instance", jnew_str(ro->inst->name));
	jadd(o, "device", jnew_str(ro->h->device));
	jadd(o, "path", jnew_str(ro->h->path));
	jadd(o, "name", jnew_str(ro->h->name));
	return o;
}

/* the end of a reopen: the reply (nh: the reopened device, or NULL and err), the event, free ro */
static void reopen_end(struct reopen *ro, struct held *nh, const char *err)
{
	struct conn *c = conn_by_id(ro->conn);
	_cleanup_json_ json_object *rep = NULL;
	json_object *ev = reopen_event(ro);
	double release_ms = (double)ro->release_us / 1000.0;

	ev_timer_stop(vl.loop, &ro->retry);
	list_del(&ro->link);
	held_unreserve(ro->h);
	if (nh) {
		json_object *o = jnew_obj(), *fds = jnew_arr(), *dj;
		uint64_t bf = 0;

		persist_fds_commit();
		vlud_notify_status();
		dj = device_query(nh->fd, &bf);
		vl.backend_features_seen |= bf;
		jadd(dj, "name", jnew_str(nh->device));
		jadd(dj, "path", jnew_str(nh->path));
		jappend(fds, held_to_json(nh, false));
		jadd(o, "fds", fds);
		jadd(o, "device", dj);
		jadd(o, "release_ms", jnew_double(release_ms));
		jadd(o, "total_ms", jnew_double((double)(now_monotonic_us() - ro->t0_us) / 1000.0));
		log_info("instance %s reopened device %s (%s) as '%s': released in %.1f ms, %u busy retries",
			 ro->inst->name, nh->device, nh->path, nh->name, release_ms, ro->busy_retries);
		if (c) {
			rep = vlu_reply_return(o, ro->id);
			if (!rep)
				json_oom("reply");
			(void)conn_send(c, rep, &nh->fd, 1);
		} else
			json_object_put(o);
		jadd(ev, "release_ms", jnew_double(release_ms));
		events_emit(VLU_EV_DEVICE_REOPENED, ro->inst->name, ev);
	} else {
		log_warning("instance %s: device %s (%s) lost at the reopen: %s", ro->inst->name, ro->h->device,
			    ro->h->path, err);
		if (c) {
			rep = vlu_reply_error(VLU_ERR_DEVICE_ERROR, err, ro->id);
			if (!rep)
				json_oom("error reply");
			(void)conn_send(c, rep, NULL, 0);
		}
		jadd(ev, "error", jnew_str(err));
		events_emit(VLU_EV_DEVICE_LOST, ro->inst->name, ev);
	}
	json_object_put(ro->id);
	held_free(ro->h);
	free(ro);
}

static void reopen_try(struct reopen *ro)
{
	struct held *nh = NULL;
	char err[400];
	int k;

	k = held_open_device(ro->inst, ro->h->name, ro->h->device, ro->h->path, ro->h->rdev, &nh);
	if (k == -EBUSY && now_monotonic_us() < ro->deadline_us) {
		ro->busy_retries++;
		ev_timer_set(&ro->retry, REOPEN_RETRY_MS / 1000., 0.);
		ev_timer_start(vl.loop, &ro->retry);
		return;
	}
	if (k < 0) {
		char why[160] = "";

		if (k == -EBUSY)
			snprintf(why, sizeof(why),
				 " for %d ms (another copy of the old fd, one vlud could not see, is still open)",
				 REOPEN_BUSY_WAIT_MS);
		else if (k == -ENODEV)
			snprintf(why, sizeof(why), " (the node is no longer that vhost-vdpa device)");
		snprintf(err, sizeof(err),
			 "device lost: %s (%s) was closed, and opening it again failed: %s%s; instance '%s' no "
			 "longer holds it",
			 ro->h->device, ro->h->path, strerror(-k), why, ro->inst->name);
		reopen_end(ro, NULL, err);
		return;
	}
	reopen_end(ro, nh, NULL);
}

static void reopen_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	reopen_try(container_of(w, struct reopen, retry));
}

/* the closer closed the old fd (close_us in its worker) */
static void reopen_released(void *userdata, int64_t close_us)
{
	struct reopen *ro = userdata;

	ro->job = NULL;
	ro->release_us = close_us;
	ro->deadline_us = now_monotonic_us() + REOPEN_BUSY_WAIT_MS * 1000;
	reopen_try(ro);
}

void commands_reopen_forget(struct instance *inst, const char *why)
{
	struct reopen *ro;

	while ((ro = reopen_find(inst, NULL))) {
		char err[300];

		/* the old fd still closes; nothing is reopened */
		closer_cancel(TAKE_PTR(ro->job));
		snprintf(err, sizeof(err), "instance '%s' %s during the reopen of %s: nothing reopened", inst->name,
			 why, ro->h->name);
		reopen_end(ro, NULL, err);
	}
}

/* device.reopen's scan of every process's fds (device_holders(): O(all fds of the host), on the loop) runs
 * at most once per HOLDER_SCAN_INTERVAL_US per uid: a tenant that keeps a copy of its device's fd and calls
 * device.reopen in a loop gets Busy without a scan instead of holding the loop in /proc.  The table keeps
 * the last scan of the HOLDER_SCAN_UIDS most recent uids (an evicted uid scans again at once: the number
 * of uids the policy admits bounds the rate, as it bounds their connections). */
#define HOLDER_SCAN_INTERVAL_US 1000000
#define HOLDER_SCAN_UIDS 64
static struct {
	uid_t uid;
	int64_t last_us; /* 0: free */
} holder_scans[HOLDER_SCAN_UIDS];

/* 0: scan now (recorded); > 0: microseconds until this uid may scan again */
static int64_t holder_scan_admit(uid_t uid, int64_t now)
{
	size_t i, oldest = 0;

	for (i = 0; i < HOLDER_SCAN_UIDS; i++) {
		if (holder_scans[i].last_us && holder_scans[i].uid == uid)
			break;
		if (holder_scans[i].last_us < holder_scans[oldest].last_us)
			oldest = i;
	}
	if (i < HOLDER_SCAN_UIDS && now - holder_scans[i].last_us < HOLDER_SCAN_INTERVAL_US)
		return HOLDER_SCAN_INTERVAL_US - (now - holder_scans[i].last_us);
	if (i == HOLDER_SCAN_UIDS)
		i = oldest;
	holder_scans[i].uid = uid;
	holder_scans[i].last_us = now;
	return 0;
}

static int cmd_device_reopen(struct request *r)
{
	struct instance *inst = r->c->inst;
	const char *name = arg_str(r, "name");
	struct held *h, *other;
	struct reopen *ro;
	char who[128];
	int64_t wait_us;
	dev_t rdev;
	int fd, k;

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	if (update_running(inst))
		return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running: its devices stay until it ends",
				     inst->name);
	if (reopen_find(inst, name))
		return request_error(r, VLU_ERR_BUSY, "'%s' of instance '%s' is being reopened", name, inst->name);
	h = held_find(inst, name);
	if (!h)
		return request_error(r, VLU_ERR_NOT_FOUND, "instance '%s' holds no fd named '%s'", inst->name, name);
	if (h->type != VLUD_FD_VHOST_VDPA || !h->device || !h->path)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT,
				     "'%s' is a %s%s: only a device vlud opened for the instance (device.open) can be "
				     "reopened",
				     name, fdtype_name(h->type), h->type == VLUD_FD_VHOST_VDPA ? " the VMM stored" : "");
	/* the policy as for device.open (it may have changed since: a restarted vlud, another rule) */
	if (!device_allowed(r, h->device))
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "device '%s' is not allowed for uid %u by the policy",
				     h->device, (unsigned)r->c->cred.uid);
	/* the limits as for device.open: the reopen replaces one fd by one, so the counts stay; an instance
	 * above them (a configuration lowered across a restart) is refused */
	if (inst->n_held > policy_max_fds(vl.cfg, &r->c->cred))
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "instance '%s' holds %u fds (max_fds %u)", inst->name,
				     inst->n_held, policy_max_fds(vl.cfg, &r->c->cred));
	if (over_uid_fds(r, 0))
		return -1;
	/* the node is still that device (a vdpa name: still bound there, same device number) */
	if (h->device[0] != '/') {
		_cleanup_free_ char *path = NULL;

		k = device_resolve(h->device, &path);
		if (k >= 0 && strcmp(path, h->path) != 0)
			k = -ENODEV;
		if (k >= 0)
			k = device_sysfs_rdev(h->device, &rdev);
	} else
		k = device_node_rdev(h->path, &rdev);
	if (k >= 0 && rdev != h->rdev)
		k = -ENODEV;
	if (k < 0)
		return request_error(r, k == -ENOENT ? VLU_ERR_NOT_FOUND : VLU_ERR_DEVICE_ERROR,
				     "%s (%s) is no longer the device held as '%s' (%s): nothing reopened; release it and "
				     "device.open it again",
				     h->device, h->path, name, strerror(-k));
	/* the kernel releases the device only when every copy of the open file is closed: vlud's own must be
	 * the last one, or the reopen would find the node busy after the close */
	other = held_find_rdev(h->rdev, h);
	if (other) {
		if (may_see(r, other->inst))
			return request_error(r, VLU_ERR_BUSY,
					     "%s is also held by instance '%s' (fd '%s'): the reopen needs vlud's only "
					     "copy; nothing changed",
					     h->device, other->inst->name, other->name);
		return request_error(r, VLU_ERR_BUSY, "%s is also held by another instance: nothing changed", h->device);
	}
	wait_us = holder_scan_admit(r->c->cred.uid, now_monotonic_us());
	if (wait_us > 0)
		return request_error(r, VLU_ERR_BUSY,
				     "device.reopen checks every process's fds for copies of the device at most once a "
				     "second per uid: retry in %lld ms (nothing changed)",
				     (long long)(wait_us + 999) / 1000);
	if (device_holders(h->rdev, vl.fdstore, r->c->cred.uid, who, sizeof(who)) > 0)
		return request_error(r, VLU_ERR_BUSY,
				     "a copy of the fd of %s is still open in %s: the kernel releases the device only "
				     "when every copy is closed; close it first (nothing changed)",
				     h->device, who);
	ro = calloc(1, sizeof(*ro));
	if (!ro)
		return request_error(r, VLU_ERR_INTERNAL, "%s", strerror(ENOMEM));

	/* no refusal below.  The state forgets the fd before the fd store does (as fd.remove); the entry
	 * stays a reservation of the device until the reopen */
	held_unlink(h);
	persist_fds_commit();
	fd = held_take_fd(h);
	persist_fds_commit();
	vlud_notify_status();
	held_reserve(h);
	ro->h = h;
	ro->inst = inst;
	ro->t0_us = now_monotonic_us();
	ro->conn = r->c->id;
	ro->id = r->id ? json_object_get(r->id) : NULL;
	ev_timer_init(&ro->retry, reopen_retry_cb, 0., 0.);
	list_add_tail(&reopens, &ro->link);
	r->deferred = true;
	log_info("instance %s: reopening device %s (%s): the old fd '%s' goes to the closer", inst->name, h->device,
		 h->path, name);
	if (closer_close(&fd, 1, reopen_released, ro, &ro->job) < 0)
		reopen_released(ro, 0); /* closed synchronously */
	return 0;
}

static json_object *names_event(struct instance *inst, json_object *names)
{
	json_object *o = jnew_obj();

	jadd(o, "instance", jnew_str(inst->name));
	jadd(o, "names", json_object_get(names));
	return o;
}

/* vlu_command_check() has checked the names (valid, distinct) and that there is one fd per name, so
 * n == r->nfds <= VLU_MAX_FDS_PER_MSG (tests/unit/test-proto.c: test_check_bad_name,
 * test_check_fd_mismatch, test_check_too_many_fds) */
static int cmd_fd_store(struct request *r)
{
	struct instance *inst = r->c->inst;
	json_object *names = arg_array(r, "names"), *o, *fds;
	bool replace = arg_bool(r, "replace");
	size_t n = json_object_array_length(names);
	unsigned allowed = policy_fd_types(vl.cfg, &r->c->cred), replaced = 0, maxfds;
	struct stat st[VLU_MAX_FDS_PER_MSG];
	struct held *olds[VLU_MAX_FDS_PER_MSG] = { 0 };
	int types[VLU_MAX_FDS_PER_MSG];

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	for (size_t i = 0; i < n; i++) {
		const char *nm = json_object_get_string(json_object_array_get_idx(names, i));
		struct held *h;

		if (reserved_prefix(nm))
			return request_error(r, VLU_ERR_INVALID_ARGUMENT,
					     "'%s': names starting with '%s' are reserved for device.open", nm,
					     reserved_prefix(nm));
		types[i] = fdtype_detect(r->fds[i], vl.vdpa_major, &st[i]);
		if (types[i] == -EBADFD)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT,
					     "fd %zu ('%s') is an O_PATH fd: refused (it proves no access to what it names)",
					     i, nm);
		if (types[i] < 0)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT, "fd %zu ('%s'): %s", i, nm,
					     strerror(-types[i]));
		if (!(allowed & (1u << types[i])))
			return request_error(r, VLU_ERR_PERMISSION_DENIED,
					     "fd %zu ('%s') is a %s, which the policy does not allow for uid %u", i, nm,
					     fdtype_name(types[i]), (unsigned)r->c->cred.uid);
		h = held_find(inst, nm);
		if (h && !replace)
			return request_error(r, VLU_ERR_BUSY, "instance '%s' already holds an fd named '%s'", inst->name,
					     nm);
		if (h && update_running(inst))
			return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running: '%s' cannot be replaced now",
					     inst->name, nm);
		if (h)
			replaced++;
	}
	maxfds = policy_max_fds(vl.cfg, &r->c->cred);
	if (inst->n_held + n - replaced > maxfds)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "instance '%s' holds %u fds; %zu more exceed max_fds %u",
				     inst->name, inst->n_held, n - replaced, maxfds);
	if (over_uid_fds(r, (unsigned)(n - replaced)))
		return -1;

	/* no error below this point except out of memory.  Replaced fds: unlinked first, the new ones
	 * added, the state written, and only then the old ones leave the fd store and close (persist.c's
	 * ordering: the state never names an fd the store no longer has) */
	fds = jnew_arr();
	for (size_t i = 0; i < n; i++) {
		const char *nm = json_object_get_string(json_object_array_get_idx(names, i));
		struct held *h;
		int k;

		olds[i] = held_find(inst, nm);
		if (olds[i])
			held_unlink(olds[i]);
		k = held_add(inst, nm, TAKE_FD(r->fds[i]), types[i], &st[i], 0, 0, NULL, NULL, &h);
		if (k < 0) {
			/* the fds before i are stored and replaced theirs; the one fd i would have replaced
			 * stays */
			if (olds[i])
				held_relink(olds[i]);
			json_object_put(fds);
			persist_fds_commit();
			for (size_t j = 0; j < i; j++)
				if (olds[j])
					held_destroy(olds[j]);
			persist_fds_commit();
			vlud_notify_status();
			return request_error(r, VLU_ERR_INTERNAL, "storing '%s': %s", nm, strerror(-k));
		}
		jappend(fds, held_to_json(h, false));
	}
	persist_fds_commit(); /* O(1) per fd: log records, one fd-store datagram for the memfds */
	for (size_t i = 0; i < n; i++)
		if (olds[i])
			held_destroy(olds[i]);
	persist_fds_commit(); /* groups of replaced memfds that only partly went */
	vlud_notify_status();
	log_debug("instance %s stored %zu fds", inst->name, n);
	o = jnew_obj();
	jadd(o, "fds", fds);
	r->ret = o;
	events_emit(VLU_EV_FD_STORED, inst->name, names_event(inst, names));
	return 0;
}

static int cmd_fd_retrieve(struct request *r)
{
	struct instance *inst = r->c->inst;
	json_object *names = arg_array(r, "names"), *o, *fds;
	size_t n = json_object_array_length(names);

	if (!inst)
		return request_error(r, VLU_ERR_PERMISSION_DENIED, "register an instance first");
	if (n > VLU_MAX_FDS_PER_MSG || n > vl.cfg->limits.max_fds_per_message)
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "at most %u fds per message",
				     vl.cfg->limits.max_fds_per_message);
	for (size_t i = 0; i < n; i++) {
		const char *nm = json_object_get_string(json_object_array_get_idx(names, i));
		struct held *h = held_find(inst, nm);

		if (!h)
			return request_error(r, VLU_ERR_NOT_FOUND, "instance '%s' holds no fd named '%s'", inst->name,
					     nm);
		r->out_fds[i] = h->fd;
	}
	fds = jnew_arr();
	for (size_t i = 0; i < n; i++)
		jappend(fds, held_to_json(held_find(inst, json_object_get_string(json_object_array_get_idx(names, i))),
					  false));
	r->n_out_fds = n;
	o = jnew_obj();
	jadd(o, "fds", fds);
	r->ret = o;
	return 0;
}

static int cmd_fd_list(struct request *r)
{
	const char *want = arg_str(r, "instance");
	json_object *o = jnew_obj(), *a = jnew_arr();
	struct list *ip, *it, *p, *t;

	if (!is_operator(r->c)) {
		if (want && (!r->c->inst || strcmp(want, r->c->inst->name) != 0)) {
			json_object_put(o);
			json_object_put(a);
			return request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance",
					     want);
		}
		if (!r->c->inst)
			goto done;
		want = r->c->inst->name;
	} else if (want && !instance_find(want)) {
		json_object_put(o);
		json_object_put(a);
		return request_error(r, VLU_ERR_NOT_FOUND, "no instance '%s'", want);
	}
	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);

		if (want && strcmp(want, inst->name) != 0)
			continue;
		list_for_each_safe(p, t, &inst->held)
			jappend(a, held_to_json(list_entry(p, struct held, link), true));
	}
done:
	jadd(o, "fds", a);
	r->ret = o;
	return 0;
}

static int cmd_fd_remove(struct request *r)
{
	const char *want = arg_str(r, "instance");
	json_object *names = arg_array(r, "names"), *o;
	size_t n = json_object_array_length(names);
	struct held *hs[VLU_MAX_FDS_PER_MSG];
	struct instance *inst;

	if (want) {
		inst = instance_find(want);
		if (r->c->inst && inst == r->c->inst)
			;
		else if (!is_operator(r->c))
			return request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance",
					     want);
		else if (!inst)
			return request_error(r, VLU_ERR_NOT_FOUND, "no instance '%s'", want);
	} else {
		inst = r->c->inst;
		if (!inst)
			return request_error(r, VLU_ERR_INVALID_ARGUMENT,
					     "no instance registered on this connection: name one with 'instance'");
	}
	if (n > VLU_MAX_FDS_PER_MSG) /* the bound of hs[] (the table's "names" max is VLU_MAX_FDS_PER_MSG) */
		return request_error(r, VLU_ERR_LIMIT_EXCEEDED, "too many names");
	if (update_running(inst))
		return request_error(r, VLU_ERR_BUSY, "an update of '%s' is running: its fds stay until it ends",
				     inst->name);
	for (size_t i = 0; i < n; i++) {
		const char *nm = json_object_get_string(json_object_array_get_idx(names, i));

		hs[i] = held_find(inst, nm);
		if (!hs[i])
			return request_error(r, VLU_ERR_NOT_FOUND, "instance '%s' holds no fd named '%s'", inst->name,
					     nm);
	}
	/* the state forgets them before the fd store does (persist.c); the names are distinct
	 * (vlu_command_check()), so no held fd is in hs[] twice */
	for (size_t i = 0; i < n; i++)
		held_unlink(hs[i]);
	persist_fds_commit();
	for (size_t i = 0; i < n; i++)
		held_destroy(hs[i]);
	persist_fds_commit(); /* groups that only partly went */
	vlud_notify_status();
	log_debug("instance %s: %zu fds removed", inst->name, n);
	o = jnew_obj();
	jadd(o, "removed", jnew_int((int64_t)n));
	r->ret = o;
	events_emit(VLU_EV_FD_REMOVED, inst->name, names_event(inst, names));
	return 0;
}

static int cmd_events_subscribe(struct request *r)
{
	struct conn *c = r->c;
	const char *want = arg_str(r, "instance");
	vlu_event_mask events = VLU_EVENTS_ALL;
	json_object *filter;
	char err[160];

	/* checked by vlu_command_check() already (the same parse): a failure here is a bug, and refused
	 * before anything changes, as every refusal of this handler (the previous subscription stays) */
	if (json_object_object_get_ex(r->args, "events", &filter) &&
	    vlu_event_mask_from_json(filter, &events, err, sizeof(err)) < 0)
		return request_error(r, VLU_ERR_INVALID_ARGUMENT, "%s", err);
	if (is_operator(c)) {
		snprintf(c->sub_instance, sizeof(c->sub_instance), "%s", want ? want : "");
	} else {
		if (!c->inst)
			return request_error(r, VLU_ERR_PERMISSION_DENIED,
					     "register an instance first (VMMs receive their own instance's events)");
		if (want && strcmp(want, c->inst->name) != 0)
			return request_error(r, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance",
					     want);
		snprintf(c->sub_instance, sizeof(c->sub_instance), "%s", c->inst->name);
	}
	/* a second subscribe replaces the first: its instance and its filter (none: every event again) */
	c->sub_events = events;
	c->subscribed = true;
	conn_update_idle(c);
	return 0;
}

/* ---- the table: one handler per enum vlu_cmd_id ---- */
static const command_handler handlers[_VLU_CMD_MAX] = {
	[VLU_CMD_CAPABILITIES] = cmd_capabilities,
	[VLU_CMD_STATUS] = cmd_status,
	[VLU_CMD_INSTANCE_REGISTER] = cmd_instance_register,
	[VLU_CMD_INSTANCE_LIST] = cmd_instance_list,
	[VLU_CMD_INSTANCE_RELEASE] = cmd_instance_release,
	[VLU_CMD_DEVICE_LIST] = cmd_device_list,
	[VLU_CMD_DEVICE_OPEN] = cmd_device_open,
	[VLU_CMD_FD_STORE] = cmd_fd_store,
	[VLU_CMD_FD_RETRIEVE] = cmd_fd_retrieve,
	[VLU_CMD_FD_LIST] = cmd_fd_list,
	[VLU_CMD_FD_REMOVE] = cmd_fd_remove,
	[VLU_CMD_EVENTS_SUBSCRIBE] = cmd_events_subscribe,
	/* the update engine (update.c) */
	[VLU_CMD_VMM_MAPPINGS] = update_cmd_vmm_mappings,
	[VLU_CMD_UPDATE_START] = update_cmd_start,
	[VLU_CMD_UPDATE_STATUS] = update_cmd_status,
	[VLU_CMD_UPDATE_ABORT] = update_cmd_abort,
	[VLU_CMD_UPDATE_SAVED] = update_cmd_saved,
	[VLU_CMD_UPDATE_ARMED] = update_cmd_armed,
	[VLU_CMD_UPDATE_CLAIM] = update_cmd_claim,
	[VLU_CMD_UPDATE_READY] = update_cmd_ready,
	[VLU_CMD_DEVICE_REOPEN] = cmd_device_reopen,
};

int commands_check_table(void)
{
	int r = 0;

	for (unsigned i = 0; i < _VLU_CMD_MAX; i++) {
		if (vlu_commands[i].id != (enum vlu_cmd_id)i || !vlu_commands[i].name) {
			log_error("command table entry %u is malformed", i);
			r = -EINVAL;
		} else if (!handlers[i]) {
			log_error("command '%s' has no handler in the daemon", vlu_commands[i].name);
			r = -EINVAL;
		}
	}
	return r;
}

/* ---- dispatch ---- */

static void reply_error(struct conn *c, enum vlu_error_class cls, const char *desc, json_object *id)
{
	_cleanup_json_ json_object *e = vlu_reply_error(cls, desc, id);

	if (!e)
		json_oom("error reply");
	(void)conn_send(c, e, NULL, 0);
}

static bool permitted(struct conn *c, const struct vlu_command *cmd, char *why, size_t len)
{
	unsigned p = cmd->perm;
	bool op = (p & VLU_PERM_OPERATOR) && (c->roles & ROLE_OPERATOR);
	bool vmm = (p & VLU_PERM_VMM) && (c->roles & ROLE_VMM);
	bool any = (p & VLU_PERM_ANY) && c->roles;

	if (!op && !vmm && !any) {
		snprintf(why, len, "'%s' is for %s%s%s", cmd->name, p & VLU_PERM_OPERATOR ? "operators" : "",
			 (p & VLU_PERM_OPERATOR) && (p & VLU_PERM_VMM) ? " or " : "", p & VLU_PERM_VMM ? "VMMs" : "");
		return false;
	}
	if ((p & VLU_PERM_INSTANCE) && !op && !c->inst) {
		snprintf(why, len, "'%s' needs an instance: register one first (instance.register)", cmd->name);
		return false;
	}
	return true;
}

void commands_dispatch(struct conn *c, char *buf, size_t len, int *fds, size_t nfds)
{
	_cleanup_json_ json_object *msg = NULL, *empty = NULL, *reply = NULL;
	struct request r = { .c = c, .fds = fds, .nfds = nfds };
	const char *execute = NULL;
	json_object *args = NULL, *id = NULL;
	char err[512];
	int k;

	k = vlu_json_parse(buf, len, (int)vl.cfg->limits.max_json_depth, &msg);
	if (k == -E2BIG) {
		snprintf(err, sizeof(err), "JSON nested deeper than %u levels", vl.cfg->limits.max_json_depth);
		reply_error(c, VLU_ERR_LIMIT_EXCEEDED, err, NULL);
		goto out;
	}
	if (k < 0) {
		reply_error(c, VLU_ERR_INVALID_ARGUMENT, "malformed message: not exactly one JSON object", NULL);
		goto out;
	}
	if (vlu_request_parse(msg, &execute, &args, &id, err, sizeof(err)) < 0) {
		reply_error(c, VLU_ERR_INVALID_ARGUMENT, err, vlu_request_id(msg));
		goto out;
	}
	r.id = id;
	r.cmd = vlu_command_find(execute);
	if (!c->negotiated && !(r.cmd && (r.cmd->perm & VLU_PERM_PRENEG))) {
		reply_error(c, VLU_ERR_NOT_NEGOTIATED,
			    "negotiate first: {\"execute\":\"capabilities\",\"arguments\":{\"enable\":[]}}", id);
		goto out;
	}
	if (!r.cmd) {
		snprintf(err, sizeof(err), "unknown command '%.64s'", execute);
		reply_error(c, VLU_ERR_COMMAND_NOT_FOUND, err, id);
		goto out;
	}
	if (!permitted(c, r.cmd, err, sizeof(err))) {
		reply_error(c, VLU_ERR_PERMISSION_DENIED, err, id);
		goto out;
	}
	if (!args) {
		empty = jnew_obj();
		args = empty;
	}
	r.args = args;
	{
		enum vlu_error_class cls = VLU_ERR_INVALID_ARGUMENT;

		if (vlu_command_check(r.cmd, args, nfds, &cls, err, sizeof(err)) < 0) {
			reply_error(c, cls, err, id);
			goto out;
		}
	}
	(void)handlers[r.cmd->id](&r);
	if (c->dead || (r.deferred && !r.failed))
		goto out;
	if (r.failed) {
		json_object_put(r.ret);
		r.ret = NULL;
		reply_error(c, r.err_class, r.err, id);
		goto out;
	}
	reply = vlu_reply_return(TAKE_PTR(r.ret), id);
	if (!reply)
		json_oom("reply");
	(void)conn_send(c, reply, r.out_fds, r.n_out_fds);
out:
	json_object_put(r.ret);
	/* whatever the handler did not take: off the loop, in the sender's lane (closer.h) */
	if (nfds > 0) {
		char own[64];

		snprintf(own, sizeof(own), "a request of connection %llu", (unsigned long long)c->id);
		closer_close_client(c->cred.uid, own, fds, nfds);
	}
}
