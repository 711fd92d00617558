/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * link.c - minivmm's side of vlud, through libvlu (--vlud SOCKET --instance NAME --vdpa NAME).
 *
 * First image: connect, instance.register NAME, device.open VDPA (the daemon opens the node and keeps a
 * copy: the device fd minivmm drives), and after bring-up fd.store of the guest-RAM memfd and the four
 * eventfds, then vmm.mappings with the mapping table and the device's pinning mode.
 * New image after a self-driven exec update (paths A and B): connect again and instance.register with
 * reattach (the old connection closed with exec and left the instance orphaned; the daemon kept its fds).
 *
 * The connection's fd is polled by main.c's loop; events are logged (verbose).  The daemon-driven update
 * (update.save / update.exec / update.claim / update.ready, docs/UPDATE.md) is the update engine's to wire:
 * the steps it needs are mv_update_quiesce() / mv_update_exec() / mv_update_takeover() in update.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minivmm.h"
#include "mv-vlud.h"
#include "vlu.h"

/* fd names in the daemon (docs/MINIVMM.md) */
static const char *const store_names[] = { "ram0", "q0-kick", "q0-call", "q1-kick", "q1-call" };

static void on_event(struct vlu *l, const char *name, json_object *event, void *userdata)
{
	mv_debug("vlud event %s: %s", name,
		 json_object_to_json_string_ext(json_object_object_get(event, "data"), JSON_C_TO_STRING_PLAIN));
	mv_vlud_event(userdata, name, event); /* daemon-driven update (vlud.c) */
}

static void log_daemon_error(struct mv_vmm *v, const char *what, int r)
{
	const char *cls = NULL, *desc = NULL;
	if (vlu_last_error(v->link, &cls, &desc) == 0)
		mv_log("vlud %s: %s (%s: %s)", what, strerror(-r), cls, desc);
	else
		mv_log("vlud %s: %s", what, strerror(-r));
}

static int link_connect(struct mv_vmm *v, bool reattach)
{
	int r = vlu_connect(v->o.vlud, 5000, &v->link);
	if (r < 0) {
		mv_log("connect to vlud at %s: %s", v->o.vlud, strerror(-r));
		return r;
	}
	vlu_set_event_callback(v->link, on_event, v);
	r = vlu_register(v->link, v->o.instance, reattach);
	if (r < 0) {
		log_daemon_error(v, reattach ? "instance.register (reattach)" : "instance.register", r);
		return r;
	}
	(void)mv_vlud_subscribe(v); /* the two events only a subscription brings (vlud.c) */
	mv_log("vlud %s: instance %s %s", vlu_server_package(v->link), v->o.instance,
	       reattach ? "reattached" : "registered");
	return 0;
}

int mv_link_open_device(struct mv_vmm *v)
{
	_cleanup_json_ json_object *info = NULL;
	json_object *p = NULL;
	int fd = -EBADF, r;

	r = link_connect(v, false);
	if (r < 0)
		return r;
	r = vlu_device_open(v->link, v->o.vdpa, &fd, &info);
	if (r < 0) {
		log_daemon_error(v, "device.open", r);
		return r;
	}
	const char *path = json_object_object_get_ex(info, "path", &p) ? json_object_get_string(p) : v->o.vdpa;
	snprintf(v->dev_fd_name, sizeof(v->dev_fd_name), "vdpa:%s", v->o.vdpa);
	return mv_vdev_adopt(&v->dev, fd, path);	/* takes fd */
}

/* Test knob for the rig (tests/vm/scenarios/update-verify.sh, docs/MINIVMM.md): MINIVMM_TEST_DECLARE makes
 * vmm.mappings declare something false, so that vlud's preflight sees a VmPin that does not match the
 * declaration:  "va"  declare the device's pinning "va" whatever it is;  "extra-mib=N"  declare one more
 * mapping of N MiB (memfd ram0, offset 0, at the IOVA after the last range) that is never mapped.
 * Anything else: logged and ignored.  Sets *pinning; adds to maps. */
static void test_declare(struct mv_vmm *v, json_object *maps, const char **pinning)
{
	const char *e = getenv("MINIVMM_TEST_DECLARE");
	unsigned long mib;
	char *end;

	if (!e)
		return;
	if (strcmp(e, "va") == 0) {
		mv_log("test: declaring pinning \"va\" (MINIVMM_TEST_DECLARE=va; really %s)", *pinning);
		*pinning = "va";
		return;
	}
	if (strncmp(e, "extra-mib=", 10) == 0 && (mib = strtoul(e + 10, &end, 10)) > 0 && !*end && mib <= (1UL << 20) &&
	    v->mem.nmaps > 0) {
		const struct mv_map *last = &v->mem.maps[v->mem.nmaps - 1];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "iova", json_object_new_int64((int64_t)(last->iova + last->size)));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)mib << 20));
		json_object_object_add(o, "memfd", json_object_new_string("ram0"));
		json_object_object_add(o, "offset", json_object_new_int64(0));
		json_object_object_add(o, "uaddr", json_object_new_int64((int64_t)(uintptr_t)v->mem.base));
		json_object_object_add(o, "perm", json_object_new_string("rw"));
		json_object_array_add(maps, o);
		mv_log("test: declaring %lu MiB more than mapped (MINIVMM_TEST_DECLARE=%s)", mib, e);
		return;
	}
	mv_log("test: MINIVMM_TEST_DECLARE=%s not understood (va, extra-mib=N): ignored", e);
}

int mv_link_store(struct mv_vmm *v)
{
	_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;
	json_object *maps = json_object_new_array(), *devs = json_object_new_array(), *d = json_object_new_object();
	int fds[] = { v->mem.fd, v->vq[0].kick, v->vq[0].call, v->vq[1].kick, v->vq[1].call };
	int r;

	r = vlu_fd_store(v->link, store_names, fds, ELEMENTSOF(fds), true);
	if (r < 0) {
		log_daemon_error(v, "fd.store", r);
		json_object_put(maps);
		json_object_put(devs);
		json_object_put(d);
		return r;
	}
	v->link_stored = ELEMENTSOF(fds);
	for (unsigned i = 0; i < v->mem.nmaps; i++) {
		const struct mv_map *m = &v->mem.maps[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "iova", json_object_new_int64((int64_t)m->iova));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)m->size));
		json_object_object_add(o, "memfd", json_object_new_string("ram0"));
		json_object_object_add(o, "offset", json_object_new_int64((int64_t)m->offset));
		json_object_object_add(o, "uaddr", json_object_new_int64((int64_t)(uintptr_t)(v->mem.base + m->offset)));
		json_object_object_add(o, "perm", json_object_new_string(m->perm == VHOST_ACCESS_RW ? "rw" :
									 m->perm == VHOST_ACCESS_RO ? "ro" : "wo"));
		json_object_array_add(maps, o);
	}
	{
		const char *pinning = v->va_mode ? "va" : "pa";

		test_declare(v, maps, &pinning);
		json_object_object_add(d, "name", json_object_new_string(v->dev_fd_name));
		json_object_object_add(d, "pinning", json_object_new_string(pinning));
	}
	json_object_array_add(devs, d);
	json_object_object_add(args, "mappings", maps);
	json_object_object_add(args, "devices", devs);
	if (v->o.edu)
		/* the edu's window: its IOAS, its device and the MAP_FILE mapping (docs/IOMMUFD.md) */
		json_object_object_add(args, "ioas", mv_edu_ioas_json(v));
	r = vlu_call(v->link, "vmm.mappings", args, NULL, 0, 0, &ret, NULL, NULL);
	if (r < 0) {
		/* the update engine may not be there yet: the VMM still runs, the verdict says so */
		log_daemon_error(v, "vmm.mappings", r);
		v->link_mappings_error = r;
		return 0;
	}
	v->link_mappings_error = 0;
	v->link_mappings_ok = true;
	return 0;
}

int mv_link_reattach(struct mv_vmm *v)
{
	snprintf(v->dev_fd_name, sizeof(v->dev_fd_name), "vdpa:%s", v->o.vdpa);
	return link_connect(v, true);
}

int mv_link_owner(struct mv_vmm *v)
{
	_cleanup_json_ json_object *ret = NULL;
	json_object *a, *e, *x;
	int r;

	if (!v->link)
		return -ENOTCONN;
	r = vlu_call(v->link, "instance.list", NULL, NULL, 0, -1, &ret, NULL, NULL);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(ret, "instances", &a) || !json_object_is_type(a, json_type_array))
		return -EPROTO;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_object_get_ex(e, "name", &x) || strcmp(json_object_get_string(x), v->o.instance) != 0)
			continue;
		if (!json_object_object_get_ex(e, "state", &x) || strcmp(json_object_get_string(x), "attached") != 0)
			return 0;
		return json_object_object_get_ex(e, "pid", &x) ? json_object_get_int(x) : -EPROTO;
	}
	return -ENOENT;
}

int mv_link_fd(struct mv_vmm *v)
{
	return v->link ? vlu_get_fd(v->link) : -EBADF;
}

int mv_link_process(struct mv_vmm *v)
{
	int r = vlu_process(v->link);
	if (r == -ECONNRESET) {
		mv_log("vlud closed the connection");
		vlu_close(v->link);
		v->link = NULL;
	}
	return r;
}

void mv_link_close(struct mv_vmm *v)
{
	vlu_close(v->link);
	v->link = NULL;
}
