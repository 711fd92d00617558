/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devstate.c - read and compare a vhost-vdpa net device's visible state (devstate.h).
 *
 * Only ioctls any holder of the fd may issue (not the owner's: vlud is not the owner during an update):
 * VHOST_VDPA_GET_STATUS, VHOST_GET_FEATURES (the device's offered features: vhost-vdpa has no read of the
 * driver's), VHOST_GET_BACKEND_FEATURES, VHOST_VDPA_GET_CONFIG_SIZE and VHOST_VDPA_GET_CONFIG.  The config
 * space is virtio_net_config: mac[6] at 0, status u16 at 6, max_virtqueue_pairs u16 at 8, mtu u16 at 10
 * (little endian: VERSION_1 is required by every vDPA parent we drive).  A device that lost its
 * control state at reset shows it here: the MAC set through the CVQ is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "devstate.h"
#include "json-oom.h"
#include "vlud-vhost.h"

static json_object *failed(json_object *o, const char *what)
{
	char b[96];

	snprintf(b, sizeof(b), "%s: %s", what, strerror(errno));
	json_object_put(o);
	o = jnew_obj();
	jadd(o, "error", jnew_str(b));
	return o;
}

json_object *devstate_read(int fd)
{
	json_object *o = jnew_obj(), *c;
	uint64_t features = 0, backend = 0;
	uint32_t csize = 0;
	uint8_t status = 0;
	struct {
		struct vhost_vdpa_config h;
		uint8_t b[12];
	} cfg = { .h = { .off = 0 } };

	if (ioctl(fd, VHOST_VDPA_GET_STATUS, &status) < 0)
		return failed(o, "VHOST_VDPA_GET_STATUS");
	if (ioctl(fd, VHOST_GET_FEATURES, &features) < 0)
		return failed(o, "VHOST_GET_FEATURES");
	if (ioctl(fd, VHOST_GET_BACKEND_FEATURES, &backend) < 0)
		return failed(o, "VHOST_GET_BACKEND_FEATURES");
	if (ioctl(fd, VHOST_VDPA_GET_CONFIG_SIZE, &csize) < 0)
		return failed(o, "VHOST_VDPA_GET_CONFIG_SIZE");
	cfg.h.len = csize < sizeof(cfg.b) ? csize : sizeof(cfg.b);
	if (cfg.h.len && ioctl(fd, VHOST_VDPA_GET_CONFIG, &cfg) < 0)
		return failed(o, "VHOST_VDPA_GET_CONFIG");
	jadd(o, "status", jnew_uint(status));
	jadd(o, "features", jnew_uint(features));
	jadd(o, "backend_features", jnew_uint(backend));
	c = jnew_obj();
	const uint8_t *p = cfg.h.buf;
	if (cfg.h.len >= 6) {
		char mac[18];
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3], p[4], p[5]);
		jadd(c, "mac", jnew_str(mac));
	}
	if (cfg.h.len >= 8)
		jadd(c, "status", jnew_uint(p[6] | (unsigned)p[7] << 8));
	if (cfg.h.len >= 10)
		jadd(c, "max_virtqueue_pairs", jnew_uint(p[8] | (unsigned)p[9] << 8));
	if (cfg.h.len >= 12)
		jadd(c, "mtu", jnew_uint(p[10] | (unsigned)p[11] << 8));
	jadd(o, "config", c);
	return o;
}

/* members of a and b (objects, one level of nesting as in devstate_read) that differ, as "a.b" names */
static void diff_members(json_object *a, json_object *b, const char *prefix, json_object *diff)
{
	json_object_object_foreach(a, k, va) {
		json_object *vb = NULL;
		char name[128];

		snprintf(name, sizeof(name), "%s%s", prefix, k);
		if (!json_object_object_get_ex(b, k, &vb)) {
			jappend(diff, jnew_str(name));
			continue;
		}
		if (json_object_is_type(va, json_type_object) && json_object_is_type(vb, json_type_object)) {
			char sub[160];
			snprintf(sub, sizeof(sub), "%s.", name);
			diff_members(va, vb, sub, diff);
		} else if (!json_object_equal(va, vb))
			jappend(diff, jnew_str(name));
	}
	json_object_object_foreach(b, kb, vb2) {
		char name[128];

		(void)vb2;
		if (!json_object_object_get_ex(a, kb, NULL)) {
			snprintf(name, sizeof(name), "%s%s", prefix, kb);
			jappend(diff, jnew_str(name));
		}
	}
}

bool devstate_equal(json_object *before, json_object *after, json_object **ret_diff)
{
	json_object *diff = jnew_arr();
	bool eq;

	if (!before || !after || json_object_object_get_ex(before, "error", NULL) ||
	    json_object_object_get_ex(after, "error", NULL))
		jappend(diff, jnew_str("error"));
	else
		diff_members(before, after, "", diff);
	eq = json_object_array_length(diff) == 0;
	if (ret_diff)
		*ret_diff = diff;
	else
		json_object_put(diff);
	return eq;
}

/* decl (a device_state_changes entry) covers member name of device dev: "member" for every device or
 * "DEV: member" for one, and a member covers the ones under it ("config" covers "config.mac") */
static bool covers(const char *decl, const char *dev, const char *name)
{
	size_t n = strlen(dev), k;

	if (strncmp(decl, dev, n) == 0 && decl[n] == ':' && decl[n + 1] == ' ')
		decl += n + 2;
	k = strlen(decl);
	return k && strncmp(name, decl, k) == 0 && (name[k] == '\0' || name[k] == '.');
}

static bool declared_covers(json_object *declared, const char *dev, const char *name)
{
	size_t n = json_object_is_type(declared, json_type_array) ? json_object_array_length(declared) : 0;

	for (size_t i = 0; i < n; i++) {
		const char *d = json_object_get_string(json_object_array_get_idx(declared, i));

		if (d && covers(d, dev, name))
			return true;
	}
	return false;
}

size_t devstate_compare(const char *dev, json_object *before, json_object *after, json_object *declared,
			json_object *differ, json_object *undeclared)
{
	json_object *diff = NULL;
	size_t nundecl = 0;
	char name[320];

	if (!before || !after) {
		diff = jnew_arr();
		jappend(diff, jnew_str("not read"));
	} else
		(void)devstate_equal(before, after, &diff);
	for (size_t k = 0; k < json_object_array_length(diff); k++) {
		const char *m = json_object_get_string(json_object_array_get_idx(diff, k));

		if (strcmp(m, "device") == 0)
			continue; /* the verdict's own label of the entry */
		snprintf(name, sizeof(name), "%s: %s", dev, m);
		jappend(differ, jnew_str(name));
		if (!declared_covers(declared, dev, m)) {
			nundecl++;
			if (undeclared)
				jappend(undeclared, jnew_str(name));
		}
	}
	json_object_put(diff);
	return nundecl;
}
