/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* held.c - the held fd table (see held.h) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "closer.h"
#include "device.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "persist.h"

/* The lane an fd's close runs in (closer.h): a device vlud opened itself (device.open: its close is
 * the kernel's release, bounded) in the DEVICE lane; anything a client supplied in its uid's lane. */
void held_close_fd(const struct instance *inst, bool opened_by_vlud, int fd)
{
	if (fd < 0)
		return;
	if (opened_by_vlud)
		closer_close_fd(fd);
	else
		closer_close_client_fd(inst->uid, inst->name, fd);
}

int held_add(struct instance *inst, const char *name, int fd, enum vlud_fd_type type, const struct stat *st,
	     uint64_t id, int64_t created_us, const char *device, const char *path, struct held **ret)
{
	struct held *h;

	h = calloc(1, sizeof(*h));
	if (!h) {
		held_close_fd(inst, device != NULL, fd);
		return -ENOMEM;
	}
	if (device && !(h->device = strdup(device)))
		goto oom;
	if (path && !(h->path = strdup(path)))
		goto oom;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->inst = inst;
	h->fd = fd; /* the table owns it from here */
	h->type = type;
	h->dev = st->st_dev;
	h->ino = st->st_ino;
	h->rdev = st->st_rdev;
	h->created_us = created_us ? created_us : now_realtime_us();
	if (id == 0) {
		h->id = vl.next_held_id++;
		persist_fd_add(h);
	} else {
		h->id = id;
		if (id >= vl.next_held_id)
			vl.next_held_id = id + 1;
	}
	list_add_tail(&inst->held, &h->link);
	inst->n_held++;
	vl.n_held++;
	if (ret)
		*ret = h;
	return 0;
oom:
	free(h->device);
	free(h);
	held_close_fd(inst, device != NULL, fd);
	return -ENOMEM;
}

void held_unlink(struct held *h)
{
	persist_fd_unlink(h);
	list_del(&h->link);
	h->inst->n_held--;
	vl.n_held--;
}

void held_relink(struct held *h)
{
	persist_fd_relink(h);
	list_add_tail(&h->inst->held, &h->link);
	h->inst->n_held++;
	vl.n_held++;
}

int held_take_fd(struct held *h)
{
	persist_fd_remove(h); /* still needs h->fd (kcmp order of the fd store's primaries) */
	return TAKE_FD(h->fd); /* owned: goes to the caller */
}

void held_free(struct held *h)
{
	if (!h)
		return;
	free(h->device);
	free(h->path);
	free(h);
}

int held_destroy_take_fd(struct held *h)
{
	int fd = held_take_fd(h);

	held_free(h);
	return fd;
}

/* ---- reservations: devices between the close of their old fd and the reopen (device.reopen) */

static struct list reserved = LIST_INIT(reserved);

void held_reserve(struct held *h)
{
	h->reserved = true;
	list_add_tail(&reserved, &h->link);
}

void held_unreserve(struct held *h)
{
	if (!h->reserved)
		return;
	list_del(&h->link);
	h->reserved = false;
}

int held_open_device(struct instance *inst, const char *name, const char *device, const char *path,
		     uint64_t want_rdev, struct held **ret)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int k, t;

	k = device_open_node(path, &fd);
	if (k < 0)
		return k;
	t = fdtype_detect(fd, vl.vdpa_major, &st);
	if (t < 0)
		return t;
	if (t != VLUD_FD_VHOST_VDPA || (want_rdev && st.st_rdev != want_rdev)) {
		closer_close_fd(TAKE_FD(fd));
		return -ENODEV;
	}
	return held_add(inst, name, TAKE_FD(fd), t, &st, 0, 0, device, path, ret);
}

void held_destroy(struct held *h)
{
	const struct instance *inst = h->inst;
	bool opened_by_vlud = h->device != NULL;

	/* the closer owns the fd from here: the last reference of a device fd unpins all guest RAM in
	 * close(), and a client's fd can block in close() as long as its sender wants: neither may run on
	 * the loop */
	held_close_fd(inst, opened_by_vlud, held_destroy_take_fd(h));
}

struct held *held_find(struct instance *inst, const char *name)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		if (strcmp(h->name, name) == 0)
			return h;
	}
	return NULL;
}

struct held *held_find_id(uint64_t id)
{
	struct list *ip, *it, *p, *t;

	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);

		list_for_each_safe(p, t, &inst->held) {
			struct held *h = list_entry(p, struct held, link);

			if (h->id == id)
				return h;
		}
	}
	return NULL;
}

struct held *held_find_rdev(uint64_t rdev, const struct held *except)
{
	struct list *ip, *it, *p, *t;

	list_for_each_safe(ip, it, &vl.instances) {
		struct instance *inst = list_entry(ip, struct instance, link);

		list_for_each_safe(p, t, &inst->held) {
			struct held *h = list_entry(p, struct held, link);

			if ((h->type == VLUD_FD_VHOST_VDPA || h->type == VLUD_FD_VFIO) && h->rdev == rdev && h != except)
				return h;
		}
	}
	/* a device being reopened is still its instance's (device.reopen) */
	list_for_each_safe(p, t, &reserved) {
		struct held *h = list_entry(p, struct held, link);

		if (h->rdev == rdev && h != except)
			return h;
	}
	return NULL;
}

json_object *held_to_json(const struct held *h, bool with_instance)
{
	json_object *o = jnew_obj();

	if (with_instance)
		jadd(o, "instance", jnew_str(h->inst->name));
	jadd(o, "name", jnew_str(h->name));
	jadd(o, "type", jnew_str(fdtype_name(h->type)));
	jadd(o, "dev", jnew_uint(h->dev));
	jadd(o, "ino", jnew_uint(h->ino));
	jadd(o, "rdev", jnew_uint(h->rdev));
	if (with_instance) {
		int64_t age = (now_realtime_us() - h->created_us) / 1000;

		jadd(o, "id", jnew_uint(h->id));
		jadd(o, "age_ms", jnew_int(age > 0 ? age : 0));
		if (h->device)
			jadd(o, "device", jnew_str(h->device));
	}
	return o;
}
