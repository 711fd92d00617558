/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * state.c - serialise and parse the persisted state (format in state.h).
 * Pure: no I/O, no globals, no logging.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "basics.h"
#include "state.h"
#include "vlu-proto.h"
#include "update-decide.h"

/* the state's names are the protocol's (instance and fd names, 1..64 of [A-Za-z0-9_.:-]) */
_Static_assert(VLUD_STATE_NAME_MAX == VLU_NAME_MAX, "state names are protocol names");

/* the phase names are the engine's (the one phase table, update-decide.c) */
bool state_phase_known(const char *phase)
{
	return update_phase_by_name(phase) >= 0;
}

/* a verdict or mapping table as stored: one JSON object of at most max bytes */
static json_object *object_parse(const char *text, size_t max)
{
	json_object *v;

	if (!text || strlen(text) > max)
		return NULL;
	v = json_tokener_parse(text);
	if (v && !json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static int add(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, k, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* one "fds" entry (also the "fd" of a log record "add") */
static json_object *fd_to_json(const struct state_fd *sf)
{
	json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= add(o, "id", json_object_new_uint64(sf->id));
	r |= add(o, "instance", json_object_new_string(sf->instance));
	r |= add(o, "name", json_object_new_string(sf->name));
	r |= add(o, "type", json_object_new_string(sf->type));
	r |= add(o, "dev", json_object_new_uint64(sf->dev));
	r |= add(o, "ino", json_object_new_uint64(sf->ino));
	r |= add(o, "rdev", json_object_new_uint64(sf->rdev));
	r |= add(o, "created_us", json_object_new_int64(sf->created_us));
	if (sf->device)
		r |= add(o, "device", json_object_new_string(sf->device));
	if (sf->path)
		r |= add(o, "path", json_object_new_string(sf->path));
	if (sf->alias_of)
		r |= add(o, "alias_of", json_object_new_uint64(sf->alias_of));
	if (sf->group)
		r |= add(o, "group", json_object_new_uint64(sf->group));
	if (r < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* "reserved_for" / "held_successor" of an instance: {pid, start, update}, and "held_successor"'s old VMM
 * {old_pid, old_start} when known; no key when pid is 0 */
static int add_process(json_object *o, const char *k, const struct state_reservation *rs)
{
	json_object *v;
	int r;

	if (!rs->pid)
		return 0;
	if (rs->pid < 0 || rs->update == 0)
		return -EINVAL;
	v = json_object_new_object();
	if ((r = add(o, k, v)) < 0)
		return r;
	r = add(v, "pid", json_object_new_int(rs->pid));
	r |= add(v, "start", json_object_new_uint64(rs->start));
	r |= add(v, "update", json_object_new_uint64(rs->update));
	if (rs->old_pid > 0 && strcmp(k, "held_successor") == 0) {
		r |= add(v, "old_pid", json_object_new_int(rs->old_pid));
		r |= add(v, "old_start", json_object_new_uint64(rs->old_start));
	}
	return r < 0 ? -ENOMEM : 0;
}

/* one update record (state.h): an "updates" entry, or embedded (an instance's "iommufd_update": no
 * "instance", no device) */
static int update_to_json(const struct state_update *su, bool embedded, json_object **ret)
{
	json_object *o, *devs;
	char p[2] = { su->path, '\0' };
	int r = 0;

	*ret = NULL;
	/* what the parser would refuse is not written: a record is devices or iommufd fds or both, within the
	 * limits, and only a record without devices is embedded */
	if ((!su->n_devs && !su->n_iof) || su->n_devs > VLUD_STATE_UPDATE_MAX_DEVS ||
	    su->n_iof > VLUD_STATE_UPDATE_MAX_IOF || embedded != !su->n_devs)
		return -EINVAL;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	if (!embedded)
		r |= add(o, "instance", json_object_new_string(su->instance));
	r |= add(o, "id", json_object_new_uint64(su->id));
	r |= add(o, "mode", json_object_new_string(su->mode));
	r |= add(o, "path", json_object_new_string(p));
	r |= add(o, "phase", json_object_new_string(su->phase));
	r |= add(o, "old_pid", json_object_new_int(su->old_pid));
	r |= add(o, "new_pid", json_object_new_int(su->new_pid));
	if (su->old_start)
		r |= add(o, "old_start", json_object_new_uint64(su->old_start));
	if (su->new_start)
		r |= add(o, "new_start", json_object_new_uint64(su->new_start));
	r |= add(o, "started_us", json_object_new_int64(su->started_us));
	devs = json_object_new_array();
	r |= add(o, "devices", devs);
	if (r < 0)
		goto oom;
	for (unsigned k = 0; k < su->n_devs; k++) {
		json_object *d = json_object_new_object();

		if (!d || json_object_array_add(devs, d) < 0) {
			json_object_put(d);
			goto oom;
		}
		r |= add(d, "name", json_object_new_string(su->devs[k].name));
		r |= add(d, "suspended", json_object_new_boolean(su->devs[k].suspended));
		r |= add(d, "reset", json_object_new_boolean(su->devs[k].reset));
		r |= add(d, "released", json_object_new_boolean(su->devs[k].released));
		if (su->devs[k].node[0]) {
			r |= add(d, "device", json_object_new_string(su->devs[k].device));
			r |= add(d, "node", json_object_new_string(su->devs[k].node));
		}
		if (r < 0)
			goto oom;
	}
	if (su->n_iof) {
		json_object *a = json_object_new_array();

		if (add(o, "iommufd", a) < 0)
			goto oom;
		for (unsigned k = 0; k < su->n_iof; k++) {
			json_object *n = json_object_new_string(su->iof[k]);

			if (!n || json_object_array_add(a, n) < 0) {
				json_object_put(n);
				goto oom;
			}
		}
	}
	*ret = o;
	return 0;
oom:
	json_object_put(o);
	return -ENOMEM;
}

/* the "instances" entry of the instance named name (serialised in doc's order), or NULL */
static json_object *insts_by_name(json_object *insts, const struct state_doc *doc, const char *name)
{
	for (size_t i = 0; i < doc->n_instances; i++)
		if (strcmp(doc->instances[i].name, name) == 0)
			return json_object_array_get_idx(insts, i);
	return NULL;
}

int state_serialize(const struct state_doc *doc, char **ret_buf, size_t *ret_len)
{
	_cleanup_json_ json_object *root = NULL;
	json_object *insts, *fds, *ups = NULL, *o_upd;
	const char *body;
	size_t blen, hlen;
	char header[32];
	char *buf;
	int r = 0;

	root = json_object_new_object();
	if (!root)
		return -ENOMEM;
	r |= add(root, "next_id", json_object_new_uint64(doc->next_id));
	r |= add(root, "written_us", json_object_new_int64(doc->written_us));
	insts = json_object_new_array();
	r |= add(root, "instances", insts);
	fds = json_object_new_array();
	r |= add(root, "fds", fds);
	if (r < 0)
		return -ENOMEM;

	for (size_t i = 0; i < doc->n_instances; i++) {
		const struct state_instance *si = &doc->instances[i];
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(insts, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		r |= add(o, "name", json_object_new_string(si->name));
		r |= add(o, "pid", json_object_new_int(si->pid));
		r |= add(o, "uid", json_object_new_int64(si->uid));
		r |= add(o, "gid", json_object_new_int64(si->gid));
		r |= add(o, "registered_us", json_object_new_int64(si->registered_us));
		r |= add(o, "orphaned", json_object_new_boolean(si->orphaned));
		r |= add(o, "orphaned_us", json_object_new_int64(si->orphaned_us));
		if (r < 0)
			return -ENOMEM;
		if (si->last_update) {
			json_object *v = object_parse(si->last_update, VLUD_STATE_VERDICT_MAX);

			if (!v)
				return -EINVAL;
			if (add(o, "last_update", v) < 0)
				return -ENOMEM;
		}
		if (si->mappings) {
			json_object *v = object_parse(si->mappings, VLUD_STATE_MAPPINGS_MAX);

			if (!v)
				return -EINVAL;
			if (add(o, "mappings", v) < 0)
				return -ENOMEM;
		}
		if ((r = add_process(o, "reserved_for", &si->reserved)) < 0 ||
		    (r = add_process(o, "held_successor", &si->held)) < 0)
			return r;
	}
	for (size_t i = 0; i < doc->n_fds; i++) {
		json_object *o = fd_to_json(&doc->fds[i]);

		if (!o || json_object_array_add(fds, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
	}

	for (size_t i = 0; i < doc->n_updates; i++) {
		const struct state_update *su = &doc->updates[i];
		json_object *o;

		if (su->n_devs)
			continue;
		/* an iommufd-only record: its instance's "iommufd_update" (state.h), which must be there, alone */
		o = insts_by_name(insts, doc, su->instance);
		if (!o || json_object_object_get_ex(o, "iommufd_update", NULL))
			return -EINVAL;
		if ((r = update_to_json(su, true, &o_upd)) < 0)
			return r;
		if (add(o, "iommufd_update", o_upd) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < doc->n_updates; i++) {
		const struct state_update *su = &doc->updates[i];

		if (!su->n_devs)
			continue;
		if (!ups) {
			ups = json_object_new_array();
			if (add(root, "updates", ups) < 0)
				return -ENOMEM;
		}
		if ((r = update_to_json(su, false, &o_upd)) < 0)
			return r;
		if (json_object_array_add(ups, o_upd) < 0) {
			json_object_put(o_upd);
			return -ENOMEM;
		}
	}

	body = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &blen);
	if (!body)
		return -ENOMEM;
	hlen = (size_t)snprintf(header, sizeof(header), "%s %d\n", VLUD_STATE_MAGIC, VLUD_STATE_VERSION);
	buf = malloc(hlen + blen + 2);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, header, hlen);
	memcpy(buf + hlen, body, blen);
	buf[hlen + blen] = '\n';
	buf[hlen + blen + 1] = '\0';
	*ret_buf = buf;
	*ret_len = hlen + blen + 1;
	return 0;
}

void state_doc_done(struct state_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n_fds; i++) {
		free(doc->fds[i].device);
		free(doc->fds[i].path);
	}
	free(doc->fds);
	for (size_t i = 0; i < doc->n_instances; i++) {
		free(doc->instances[i].last_update);
		free(doc->instances[i].mappings);
	}
	free(doc->instances);
	free(doc->updates);
	*doc = (struct state_doc){};
}

/* ---- parsing ---- */

static json_object *member(json_object *o, const char *k, json_type t)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

static int get_u64(json_object *o, const char *k, uint64_t *ret)
{
	json_object *v = member(o, k, json_type_int);

	if (!v)
		return -EINVAL;
	/* json-c: a negative value is stored as int64; reject it */
	if (json_object_get_int64(v) < 0 && json_object_get_uint64(v) == 0)
		return -EINVAL;
	*ret = json_object_get_uint64(v);
	return 0;
}

static int get_i64(json_object *o, const char *k, int64_t *ret)
{
	json_object *v = member(o, k, json_type_int);

	if (!v)
		return -EINVAL;
	errno = 0;
	*ret = json_object_get_int64(v);
	return errno ? -EINVAL : 0;
}

static int get_name(json_object *o, const char *k, char *dst)
{
	json_object *v = member(o, k, json_type_string);

	if (!v || !vlu_name_valid(json_object_get_string(v)))
		return -EINVAL;
	strcpy(dst, json_object_get_string(v)); /* length checked by vlu_name_valid */
	return 0;
}

static int get_opt_str(json_object *o, const char *k, char **ret)
{
	json_object *v;

	*ret = NULL;
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*ret = strdup(json_object_get_string(v));
	return *ret ? 0 : -ENOMEM;
}

/* optional member k: a string that fits in dst (size bytes with its NUL), or absent ("") */
static int get_opt_buf(json_object *o, const char *k, char *dst, size_t size)
{
	json_object *v;

	dst[0] = 0;
	if (!json_object_object_get_ex(o, k, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) || (size_t)json_object_get_string_len(v) >= size)
		return -EINVAL;
	memcpy(dst, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	return 0;
}

/* optional member k: an object of at most max bytes as plain JSON text (*ret malloc()ed), or absent */
static int get_opt_object(json_object *o, const char *k, size_t max, char **ret)
{
	json_object *b;
	const char *text;

	if (!json_object_object_get_ex(o, k, &b))
		return 0;
	if (!json_object_is_type(b, json_type_object))
		return -EINVAL;
	text = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
	if (!text || strlen(text) > max)
		return -EINVAL;
	*ret = strdup(text);
	return *ret ? 0 : -ENOMEM;
}

/* "reserved_for" or "held_successor" (held: its old VMM too) of an instance (state.h): NULL and *rs, or the
 * reason it is malformed */
static const char *parse_reservation(json_object *o, bool held, struct state_reservation *rs)
{
	int64_t pid, opid;

	*rs = (struct state_reservation){};
	if (!json_object_is_type(o, json_type_object))
		return "not an object";
	if (get_i64(o, "pid", &pid) < 0 || pid <= 0 || pid > INT32_MAX)
		return "\"pid\" missing or not in 1..2147483647";
	if (get_u64(o, "start", &rs->start) < 0)
		return "\"start\" missing or not an integer >= 0";
	if (get_u64(o, "update", &rs->update) < 0 || rs->update == 0) {
		rs->start = 0;
		return "\"update\" missing or not an integer > 0";
	}
	if (held && json_object_object_get_ex(o, "old_pid", NULL)) {
		if (get_i64(o, "old_pid", &opid) < 0 || opid <= 0 || opid > INT32_MAX) {
			*rs = (struct state_reservation){};
			return "\"old_pid\" not in 1..2147483647";
		}
		if (get_u64(o, "old_start", &rs->old_start) < 0) {
			*rs = (struct state_reservation){};
			return "\"old_pid\" without \"old_start\" (an integer >= 0)";
		}
		rs->old_pid = (int32_t)opid;
	}
	rs->pid = (int32_t)pid;
	return NULL;
}

static int parse_instance(json_object *o, struct state_instance *si)
{
	uint64_t u;
	int64_t i;
	json_object *b;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (get_name(o, "name", si->name) < 0)
		return -EINVAL;
	if (get_i64(o, "pid", &i) < 0 || i < 0 || i > INT32_MAX)
		return -EINVAL;
	si->pid = (int32_t)i;
	if (get_u64(o, "uid", &u) < 0 || u > UINT32_MAX)
		return -EINVAL;
	si->uid = (uint32_t)u;
	if (get_u64(o, "gid", &u) < 0 || u > UINT32_MAX)
		return -EINVAL;
	si->gid = (uint32_t)u;
	if (get_i64(o, "registered_us", &si->registered_us) < 0)
		return -EINVAL;
	b = member(o, "orphaned", json_type_boolean);
	if (!b)
		return -EINVAL;
	si->orphaned = json_object_get_boolean(b);
	if (get_i64(o, "orphaned_us", &si->orphaned_us) < 0)
		return -EINVAL;
	r = get_opt_object(o, "last_update", VLUD_STATE_VERDICT_MAX, &si->last_update);
	if (r < 0)
		return r;
	/* a malformed reservation costs the reservation only, not the document (state.h) */
	if (json_object_object_get_ex(o, "reserved_for", &b))
		si->reserved_bad = parse_reservation(b, false, &si->reserved);
	if (json_object_object_get_ex(o, "held_successor", &b))
		si->held_bad = parse_reservation(b, true, &si->held);
	return get_opt_object(o, "mappings", VLUD_STATE_MAPPINGS_MAX, &si->mappings);
}

static int get_bool(json_object *o, const char *k, bool *ret)
{
	json_object *v = member(o, k, json_type_boolean);

	if (!v)
		return -EINVAL;
	*ret = json_object_get_boolean(v);
	return 0;
}

/* "iommufd" of an update record: 1..VLUD_STATE_UPDATE_MAX_IOF names, unique, none a device name of the
 * record; NULL, or the reason it is malformed (su->n_iof 0) */
static const char *parse_iof_names(json_object *a, struct state_update *su)
{
	size_t n;

	su->n_iof = 0;
	if (!json_object_is_type(a, json_type_array))
		return "\"iommufd\" not an array";
	n = json_object_array_length(a);
	if (n < 1 || n > VLUD_STATE_UPDATE_MAX_IOF)
		return "\"iommufd\" not of 1..32 names";
	for (size_t k = 0; k < n; k++) {
		json_object *e = json_object_array_get_idx(a, k);
		const char *nm = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;

		if (!nm || !vlu_name_valid(nm))
			return "\"iommufd\": not a valid fd name";
		for (unsigned j = 0; j < su->n_devs; j++)
			if (strcmp(su->devs[j].name, nm) == 0)
				return "\"iommufd\": a device name of the record";
		for (size_t j = 0; j < k; j++)
			if (strcmp(su->iof[j], nm) == 0)
				return "\"iommufd\": a name twice";
		strcpy(su->iof[k], nm); /* length checked by vlu_name_valid */
	}
	su->n_iof = (unsigned)n;
	return NULL;
}

/* One update record: an "updates" entry (instance NULL: named by its "instance", 1..16 devices, "iommufd"
 * optional, a malformed one dropped with iof_bad) or an instance's "iommufd_update" (instance: that
 * instance's name; "devices" empty, "iommufd" required).  -EINVAL, *why the reason (static text). */
static int parse_update(json_object *o, struct state_update *su, const char *instance, const char **why)
{
	json_object *v, *devs, *a;
	size_t ndevs;
	int64_t i;

	*why = "a member missing or malformed";
	if (!json_object_is_type(o, json_type_object))
		return *why = "not an object", -EINVAL;
	if (instance)
		strcpy(su->instance, instance); /* a parsed instance name */
	else if (get_name(o, "instance", su->instance) < 0)
		return -EINVAL;
	if (get_u64(o, "id", &su->id) < 0 || su->id == 0)
		return -EINVAL;
	v = member(o, "mode", json_type_string);
	if (!v || (strcmp(json_object_get_string(v), "exec") && strcmp(json_object_get_string(v), "transfer")))
		return -EINVAL;
	strcpy(su->mode, json_object_get_string(v));
	v = member(o, "path", json_type_string);
	if (!v || json_object_get_string_len(v) != 1 || !strchr("ABC", json_object_get_string(v)[0]))
		return -EINVAL;
	su->path = json_object_get_string(v)[0];
	v = member(o, "phase", json_type_string);
	if (!v || !state_phase_known(json_object_get_string(v)))
		return -EINVAL;
	strcpy(su->phase, json_object_get_string(v)); /* known names fit */
	if (get_i64(o, "old_pid", &i) < 0 || i <= 0 || i > INT32_MAX)
		return -EINVAL;
	su->old_pid = (int32_t)i;
	if (get_i64(o, "new_pid", &i) < 0 || i < 0 || i > INT32_MAX)
		return -EINVAL;
	su->new_pid = (int32_t)i;
	/* optional (absent in states of older vlud, or unknown): 0; malformed: only the reservation of that
	 * pid is lost (old_start_bad, new_start_bad), not the document with every tenant's fds */
	if (json_object_object_get_ex(o, "old_start", NULL) && get_u64(o, "old_start", &su->old_start) < 0) {
		su->old_start = 0;
		su->old_start_bad = true;
	}
	if (json_object_object_get_ex(o, "new_start", NULL) && get_u64(o, "new_start", &su->new_start) < 0) {
		su->new_start = 0;
		su->new_start_bad = true;
	}
	if (get_i64(o, "started_us", &su->started_us) < 0)
		return -EINVAL;
	devs = member(o, "devices", json_type_array);
	ndevs = devs ? json_object_array_length(devs) : 0;
	if (!devs || ndevs > VLUD_STATE_UPDATE_MAX_DEVS || (instance ? ndevs != 0 : ndevs < 1)) {
		*why = instance ? "\"devices\" missing or not empty" : *why;
		return -EINVAL;
	}
	su->n_devs = (unsigned)ndevs;
	for (unsigned k = 0; k < su->n_devs; k++) {
		struct state_update_dev *d = &su->devs[k];
		json_object *e = json_object_array_get_idx(devs, k);

		if (!json_object_is_type(e, json_type_object) || get_name(e, "name", d->name) < 0 ||
		    get_bool(e, "suspended", &d->suspended) < 0 || get_bool(e, "reset", &d->reset) < 0 ||
		    get_bool(e, "released", &d->released) < 0)
			return -EINVAL;
		/* optional (absent in states of older vlud): where to reopen a released device */
		if (get_opt_buf(e, "device", d->device, sizeof(d->device)) < 0 ||
		    get_opt_buf(e, "node", d->node, sizeof(d->node)) < 0)
			return -EINVAL;
		for (unsigned j = 0; j < k; j++)
			if (strcmp(su->devs[j].name, d->name) == 0)
				return -EINVAL;
	}
	/* the iommufd and VFIO fds: what an iommufd-only record is about (required there); optional beside
	 * devices, where a malformed list costs the names only (older vlud do not read it at all) */
	if (!json_object_object_get_ex(o, "iommufd", &a)) {
		if (instance)
			return *why = "\"iommufd\" missing", -EINVAL;
		return 0;
	}
	*why = parse_iof_names(a, su);
	if (*why && instance)
		return -EINVAL;
	su->iof_bad = *why;
	*why = NULL;
	return 0;
}

static int parse_fd(json_object *o, struct state_fd *sf)
{
	json_object *t;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (get_u64(o, "id", &sf->id) < 0 || sf->id == 0)
		return -EINVAL;
	if (get_name(o, "instance", sf->instance) < 0 || get_name(o, "name", sf->name) < 0)
		return -EINVAL;
	t = member(o, "type", json_type_string);
	if (!t || json_object_get_string_len(t) < 1 || (size_t)json_object_get_string_len(t) >= sizeof(sf->type))
		return -EINVAL;
	strcpy(sf->type, json_object_get_string(t));
	if (get_u64(o, "dev", &sf->dev) < 0 || get_u64(o, "ino", &sf->ino) < 0 || get_u64(o, "rdev", &sf->rdev) < 0)
		return -EINVAL;
	if (get_i64(o, "created_us", &sf->created_us) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(o, "alias_of", &t) && (get_u64(o, "alias_of", &sf->alias_of) < 0 ||
							      sf->alias_of == 0 || sf->alias_of == sf->id))
		return -EINVAL;
	if (json_object_object_get_ex(o, "group", &t) && (get_u64(o, "group", &sf->group) < 0 || sf->group == 0 ||
							   sf->alias_of))
		return -EINVAL;
	r = get_opt_str(o, "device", &sf->device);
	if (r < 0)
		return r;
	return get_opt_str(o, "path", &sf->path);
}

/* "VLUDSTATE <version>\n": -> header length */
static int parse_header(const char *buf, size_t len, size_t *ret_hlen)
{
	const char *nl, *p;
	size_t hlen;
	char *e;
	long ver;

	nl = memchr(buf, '\n', len < 64 ? len : 64);
	if (!nl)
		return -EPROTO;
	hlen = (size_t)(nl - buf) + 1;
	if (hlen < sizeof(VLUD_STATE_MAGIC) + 1 || memcmp(buf, VLUD_STATE_MAGIC " ", sizeof(VLUD_STATE_MAGIC)) != 0)
		return -EPROTO;
	p = buf + sizeof(VLUD_STATE_MAGIC);
	if (*p < '0' || *p > '9')
		return -EPROTO;
	ver = strtol(p, &e, 10);
	if (e != nl)
		return -EPROTO;
	if (ver != VLUD_STATE_VERSION)
		return -EPROTONOSUPPORT;
	*ret_hlen = hlen;
	return 0;
}

/* exactly one JSON object in buf[0..len), then only whitespace */
static int parse_body(const char *buf, size_t len, int depth, json_object **ret)
{
	json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *root;
	size_t end;

	tok = json_tokener_new_ex(depth);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root || jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return -EINVAL;
	}
	for (size_t i = end; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\t' && buf[i] != '\r') {
			json_object_put(root);
			return -EINVAL;
		}
	*ret = root;
	return 0;
}

int state_index_serialize_log(uint64_t offset, uint64_t length, uint64_t log_offset, uint64_t log_length,
			      char buf[VLUD_STATE_INDEX_SIZE])
{
	int n;

	if (offset < VLUD_STATE_INDEX_SIZE || offset % VLUD_STATE_INDEX_SIZE || length == 0 ||
	    length > VLUD_STATE_MAX_BYTES || log_length > VLUD_STATE_MAX_BYTES ||
	    (log_length && (log_offset < VLUD_STATE_INDEX_SIZE || log_offset % VLUD_STATE_INDEX_SIZE)))
		return -EINVAL;
	memset(buf, ' ', VLUD_STATE_INDEX_SIZE);
	if (log_length)
		n = snprintf(buf, VLUD_STATE_INDEX_SIZE,
			     "%s %d\n{\"offset\":%llu,\"length\":%llu,\"log_offset\":%llu,\"log_length\":%llu}\n",
			     VLUD_STATE_MAGIC, VLUD_STATE_VERSION, (unsigned long long)offset, (unsigned long long)length,
			     (unsigned long long)log_offset, (unsigned long long)log_length);
	else
		n = snprintf(buf, VLUD_STATE_INDEX_SIZE, "%s %d\n{\"offset\":%llu,\"length\":%llu}\n",
			     VLUD_STATE_MAGIC, VLUD_STATE_VERSION, (unsigned long long)offset,
			     (unsigned long long)length);
	buf[n] = ' '; /* snprintf's NUL */
	buf[VLUD_STATE_INDEX_SIZE - 1] = '\n';
	return 0;
}

int state_index_serialize(uint64_t offset, uint64_t length, char buf[VLUD_STATE_INDEX_SIZE])
{
	return state_index_serialize_log(offset, length, 0, 0, buf);
}

int state_index_parse_log(const char *buf, size_t len, uint64_t *ret_offset, uint64_t *ret_length,
			  uint64_t *ret_log_offset, uint64_t *ret_log_length)
{
	_cleanup_json_ json_object *root = NULL;
	uint64_t off, l, loff = 0, ll = 0;
	bool has_log;
	size_t hlen;
	int r;

	if (!buf)
		return -EINVAL;
	if (len > VLUD_STATE_INDEX_SIZE)
		len = VLUD_STATE_INDEX_SIZE;
	r = parse_header(buf, len, &hlen);
	if (r < 0)
		return r;
	r = parse_body(buf + hlen, len - hlen, 4, &root);
	if (r < 0)
		return r;
	json_object_object_foreach(root, key, val) {
		(void)val;
		if (strcmp(key, "offset") && strcmp(key, "length") && strcmp(key, "log_offset") &&
		    strcmp(key, "log_length"))
			return -EINVAL;
	}
	if (get_u64(root, "offset", &off) < 0 || get_u64(root, "length", &l) < 0)
		return -EINVAL;
	if (off < VLUD_STATE_INDEX_SIZE || off % VLUD_STATE_INDEX_SIZE || l == 0 || l > VLUD_STATE_MAX_BYTES)
		return -EINVAL;
	has_log = json_object_object_get_ex(root, "log_offset", NULL);
	if (has_log != json_object_object_get_ex(root, "log_length", NULL))
		return -EINVAL;
	if (has_log && (get_u64(root, "log_offset", &loff) < 0 || get_u64(root, "log_length", &ll) < 0 ||
			loff < VLUD_STATE_INDEX_SIZE || loff % VLUD_STATE_INDEX_SIZE || ll > VLUD_STATE_MAX_BYTES))
		return -EINVAL;
	*ret_offset = off;
	*ret_length = l;
	if (ret_log_offset)
		*ret_log_offset = loff;
	if (ret_log_length)
		*ret_log_length = ll;
	return 0;
}

int state_index_parse(const char *buf, size_t len, uint64_t *ret_offset, uint64_t *ret_length)
{
	return state_index_parse_log(buf, len, ret_offset, ret_length, NULL, NULL);
}

/* ---- the log (state.h "Log records") ---- */

static int to_line(json_object *o, char **ret_buf, size_t *ret_len)
{
	const char *text;
	size_t n;
	char *buf;

	if (!o)
		return -ENOMEM;
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (!text) {
		json_object_put(o);
		return -ENOMEM;
	}
	n = strlen(text);
	buf = malloc(n + 2);
	if (!buf) {
		json_object_put(o);
		return -ENOMEM;
	}
	memcpy(buf, text, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	json_object_put(o);
	*ret_buf = buf;
	*ret_len = n + 1;
	return 0;
}

int state_log_add(const struct state_fd *sf, uint64_t next_id, char **ret_buf, size_t *ret_len)
{
	json_object *o = json_object_new_object();

	if (!o || add(o, "op", json_object_new_string("add")) < 0 || add(o, "fd", fd_to_json(sf)) < 0 ||
	    add(o, "next_id", json_object_new_uint64(next_id)) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	return to_line(o, ret_buf, ret_len);
}

int state_log_del(uint64_t id, char **ret_buf, size_t *ret_len)
{
	json_object *o = json_object_new_object();

	if (!o || add(o, "op", json_object_new_string("del")) < 0 || add(o, "id", json_object_new_uint64(id)) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	return to_line(o, ret_buf, ret_len);
}

int state_log_group(uint64_t group, const uint64_t *ids, size_t n, uint64_t next_id, char **ret_buf, size_t *ret_len)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	if (!o || !a || add(o, "op", json_object_new_string("group")) < 0) {
		json_object_put(o);
		json_object_put(a);
		return -ENOMEM;
	}
	if (add(o, "ids", a) < 0 || add(o, "group", json_object_new_uint64(group)) < 0 ||
	    add(o, "next_id", json_object_new_uint64(next_id)) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (json_object_array_add(a, json_object_new_uint64(ids[i])) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
	return to_line(o, ret_buf, ret_len);
}

/* ---- an index of a document's fds by id and by (instance, name): the duplicate checks of a document
 * and of its log in O(1) per entry instead of a walk over every fd (a state with 1000 held fds is read at
 * every restart of vlud) ---- */

struct fd_index {
	uint32_t *by_id, *by_name; /* open addressing: 1 + the entry's index in doc->fds, 0 empty */
	size_t mask;
	bool *dead; /* state_log_apply(): deleted by a "del" record (removed at the end, in order) */
};

static size_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id;
}

static size_t hash_name(const char *instance, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over "instance\0name" */

	for (const char *c = instance;; c++) {
		h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
		if (!*c)
			break;
	}
	for (const char *c = name; *c; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
	return (size_t)h;
}

/* room for max entries (inserted, dead ones included) */
static int fd_index_init(struct fd_index *x, size_t max)
{
	size_t n = 16;

	while (n < 2 * max + 1)
		n *= 2;
	*x = (struct fd_index){ .mask = n - 1 };
	x->by_id = calloc(n, sizeof(*x->by_id));
	x->by_name = calloc(n, sizeof(*x->by_name));
	x->dead = calloc(max ? max : 1, sizeof(*x->dead));
	if (!x->by_id || !x->by_name || !x->dead)
		return -ENOMEM;
	return 0;
}

static void fd_index_done(struct fd_index *x)
{
	free(x->by_id);
	free(x->by_name);
	free(x->dead);
	*x = (struct fd_index){};
}

static ssize_t fd_index_find_id(const struct fd_index *x, const struct state_doc *doc, uint64_t id)
{
	for (size_t i = hash_id(id) & x->mask; x->by_id[i]; i = (i + 1) & x->mask) {
		size_t k = x->by_id[i] - 1;

		if (!x->dead[k] && doc->fds[k].id == id)
			return (ssize_t)k;
	}
	return -1;
}

static ssize_t fd_index_find_name(const struct fd_index *x, const struct state_doc *doc, const char *instance,
				  const char *name)
{
	for (size_t i = hash_name(instance, name) & x->mask; x->by_name[i]; i = (i + 1) & x->mask) {
		size_t k = x->by_name[i] - 1;

		if (!x->dead[k] && strcmp(doc->fds[k].instance, instance) == 0 && strcmp(doc->fds[k].name, name) == 0)
			return (ssize_t)k;
	}
	return -1;
}

/* doc->fds[k] into the index (the caller checked it is not a duplicate) */
static void fd_index_add(struct fd_index *x, const struct state_doc *doc, size_t k)
{
	size_t i;

	for (i = hash_id(doc->fds[k].id) & x->mask; x->by_id[i]; i = (i + 1) & x->mask)
		;
	x->by_id[i] = (uint32_t)(k + 1);
	for (i = hash_name(doc->fds[k].instance, doc->fds[k].name) & x->mask; x->by_name[i]; i = (i + 1) & x->mask)
		;
	x->by_name[i] = (uint32_t)(k + 1);
}

static bool instance_known(const struct state_doc *doc, const char *name)
{
	for (size_t k = 0; k < doc->n_instances; k++)
		if (strcmp(doc->instances[k].name, name) == 0)
			return true;
	return false;
}

static int log_apply_add(struct state_doc *doc, struct fd_index *x, json_object *root)
{
	struct state_fd sf = {};
	json_object *fo = member(root, "fd", json_type_object);
	uint64_t next_id;
	int r;

	if (!fo || get_u64(root, "next_id", &next_id) < 0)
		return -EINVAL;
	r = parse_fd(fo, &sf);
	if (r >= 0 && (!instance_known(doc, sf.instance) || sf.id >= next_id || fd_index_find_id(x, doc, sf.id) >= 0 ||
		       (sf.alias_of && fd_index_find_id(x, doc, sf.alias_of) < 0) ||
		       fd_index_find_name(x, doc, sf.instance, sf.name) >= 0))
		r = -EINVAL;
	if (r < 0) {
		free(sf.device);
		free(sf.path);
		return r;
	}
	doc->fds[doc->n_fds++] = sf; /* room reserved by state_log_apply() */
	fd_index_add(x, doc, doc->n_fds - 1);
	if (next_id > doc->next_id)
		doc->next_id = next_id;
	return 0;
}

static int log_apply_del(struct state_doc *doc, struct fd_index *x, json_object *root)
{
	uint64_t id;
	ssize_t i;

	if (get_u64(root, "id", &id) < 0 || (i = fd_index_find_id(x, doc, id)) < 0)
		return -EINVAL;
	free(doc->fds[i].device);
	free(doc->fds[i].path);
	doc->fds[i].device = doc->fds[i].path = NULL;
	x->dead[i] = true;
	return 0;
}

static int log_apply_group(struct state_doc *doc, struct fd_index *x, json_object *root)
{
	json_object *a = member(root, "ids", json_type_array);
	uint64_t group, next_id;

	if (!a || get_u64(root, "group", &group) < 0 || group == 0 || get_u64(root, "next_id", &next_id) < 0 ||
	    group >= next_id)
		return -EINVAL;
	for (size_t k = 0; k < json_object_array_length(a); k++) {
		json_object *e = json_object_array_get_idx(a, k);
		ssize_t i;

		if (!json_object_is_type(e, json_type_int) || json_object_get_int64(e) <= 0 ||
		    (i = fd_index_find_id(x, doc, json_object_get_uint64(e))) < 0 || doc->fds[i].alias_of)
			return -EINVAL;
		doc->fds[i].group = group;
	}
	if (next_id > doc->next_id)
		doc->next_id = next_id;
	return 0;
}

static int log_apply_records(struct state_doc *doc, struct fd_index *x, const char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		_cleanup_json_ json_object *root = NULL;
		const char *nl = memchr(buf + pos, '\n', len - pos);
		json_object *op;
		int r;

		if (!nl)
			return -EINVAL; /* the index covers whole records only */
		r = parse_body(buf + pos, (size_t)(nl - (buf + pos)), 8, &root);
		if (r < 0)
			return r;
		op = member(root, "op", json_type_string);
		if (!op)
			return -EINVAL;
		if (strcmp(json_object_get_string(op), "add") == 0)
			r = log_apply_add(doc, x, root);
		else if (strcmp(json_object_get_string(op), "del") == 0)
			r = log_apply_del(doc, x, root);
		else if (strcmp(json_object_get_string(op), "group") == 0)
			r = log_apply_group(doc, x, root);
		else
			r = -EINVAL;
		if (r < 0)
			return r;
		pos = (size_t)(nl - buf) + 1;
	}
	return 0;
}

int state_log_apply(struct state_doc *doc, const char *buf, size_t len)
{
	struct fd_index x;
	size_t nrec = 0, j = 0;
	struct state_fd *nv;
	int r;

	if (!doc || (len && !buf) || len > VLUD_STATE_MAX_BYTES)
		return -EINVAL;
	if (len == 0)
		return 0;
	for (const char *c = buf; (c = memchr(c, '\n', len - (size_t)(c - buf))); c++)
		nrec++; /* at most this many "add" records */
	/* room for every add: the index keeps places in doc->fds, so it never moves under it */
	nv = realloc(doc->fds, (doc->n_fds + nrec + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	doc->fds = nv;
	r = fd_index_init(&x, doc->n_fds + nrec);
	for (size_t k = 0; r >= 0 && k < doc->n_fds; k++)
		fd_index_add(&x, doc, k);
	if (r >= 0)
		r = log_apply_records(doc, &x, buf, len);
	/* the deleted entries leave, the others keep their order */
	for (size_t k = 0; x.dead && k < doc->n_fds; k++)
		if (!x.dead[k])
			doc->fds[j++] = doc->fds[k];
	if (x.dead)
		doc->n_fds = j;
	fd_index_done(&x);
	return r;
}

int state_parse(const char *buf, size_t len, struct state_doc *ret)
{
	_cleanup_json_ json_object *root = NULL;
	struct state_doc doc = {};
	struct fd_index x = {};
	json_object *insts, *fds, *ups = NULL;
	size_t hlen, n_ups, n_emb = 0;
	int r;

	if (!buf || len > VLUD_STATE_MAX_BYTES)
		return -EINVAL;
	r = parse_header(buf, len, &hlen);
	if (r < 0)
		return r;
	r = parse_body(buf + hlen, len - hlen, 12, &root);
	if (r < 0)
		return r;

	/* unknown top-level keys: a newer writer of the same version would be a bug; refuse */
	json_object_object_foreach(root, key, val) {
		(void)val;
		if (strcmp(key, "next_id") && strcmp(key, "written_us") && strcmp(key, "instances") && strcmp(key, "fds") &&
		    strcmp(key, "updates"))
			return -EINVAL;
	}
	if (get_u64(root, "next_id", &doc.next_id) < 0 || doc.next_id == 0)
		return -EINVAL;
	if (get_i64(root, "written_us", &doc.written_us) < 0)
		return -EINVAL;
	insts = member(root, "instances", json_type_array);
	fds = member(root, "fds", json_type_array);
	if (!insts || !fds)
		return -EINVAL;
	if (json_object_object_get_ex(root, "updates", &ups) && !json_object_is_type(ups, json_type_array))
		return -EINVAL;

	doc.n_instances = json_object_array_length(insts);
	doc.instances = calloc(doc.n_instances ? doc.n_instances : 1, sizeof(*doc.instances));
	doc.fds = calloc(json_object_array_length(fds) ? json_object_array_length(fds) : 1, sizeof(*doc.fds));
	if (!doc.instances || !doc.fds) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < doc.n_instances; i++) {
		r = parse_instance(json_object_array_get_idx(insts, i), &doc.instances[i]);
		if (r < 0)
			goto fail;
		for (size_t k = 0; k < i; k++)
			if (strcmp(doc.instances[k].name, doc.instances[i].name) == 0) {
				r = -EINVAL;
				goto fail;
			}
	}
	r = fd_index_init(&x, json_object_array_length(fds));
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < json_object_array_length(fds); i++) {
		struct state_fd *sf = &doc.fds[i];

		doc.n_fds = i + 1;
		r = parse_fd(json_object_array_get_idx(fds, i), sf);
		if (r < 0)
			goto fail;
		/* ids and (instance, name) unique, the instance known */
		if (sf->id >= doc.next_id || !instance_known(&doc, sf->instance) ||
		    fd_index_find_id(&x, &doc, sf->id) >= 0 || fd_index_find_name(&x, &doc, sf->instance, sf->name) >= 0) {
			r = -EINVAL;
			goto fail;
		}
		fd_index_add(&x, &doc, i);
	}
	/* an alias names a non-alias entry */
	for (size_t i = 0; i < doc.n_fds; i++) {
		ssize_t k;

		if (!doc.fds[i].alias_of)
			continue;
		k = fd_index_find_id(&x, &doc, doc.fds[i].alias_of);
		if (k < 0 || doc.fds[k].alias_of) {
			r = -EINVAL;
			goto fail;
		}
	}
	fd_index_done(&x);
	/* updates: at most one per instance, of a known instance; then the instances' iommufd-only records */
	n_ups = ups ? json_object_array_length(ups) : 0;
	for (size_t i = 0; i < doc.n_instances; i++)
		n_emb += json_object_object_get_ex(json_object_array_get_idx(insts, i), "iommufd_update", NULL);
	if (n_ups + n_emb > 0) {
		doc.updates = calloc(n_ups + n_emb, sizeof(*doc.updates));
		if (!doc.updates) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < n_ups; i++) {
			struct state_update *su = &doc.updates[i];
			const char *why;
			bool known = false;

			doc.n_updates = i + 1;
			r = parse_update(json_object_array_get_idx(ups, i), su, NULL, &why);
			if (r < 0)
				goto fail;
			for (size_t k = 0; k < doc.n_instances; k++)
				if (strcmp(doc.instances[k].name, su->instance) == 0)
					known = true;
			for (size_t k = 0; k < i; k++)
				if (strcmp(doc.updates[k].instance, su->instance) == 0)
					known = false;
			if (!known) {
				r = -EINVAL;
				goto fail;
			}
		}
		/* a malformed one costs that record only (state.h): the fds of every tenant matter more */
		for (size_t i = 0; i < doc.n_instances; i++) {
			struct state_instance *si = &doc.instances[i];
			struct state_update *su = &doc.updates[doc.n_updates];
			json_object *e;

			if (!json_object_object_get_ex(json_object_array_get_idx(insts, i), "iommufd_update", &e))
				continue;
			if (parse_update(e, su, si->name, &si->iof_update_bad) < 0) {
				*su = (struct state_update){};
				continue;
			}
			for (size_t k = 0; k < doc.n_updates && !si->iof_update_bad; k++)
				if (strcmp(doc.updates[k].instance, si->name) == 0)
					si->iof_update_bad = "the instance has a record in \"updates\" too";
			if (si->iof_update_bad)
				*su = (struct state_update){};
			else
				doc.n_updates++;
		}
	}
	*ret = doc;
	return 0;
fail:
	fd_index_done(&x);
	state_doc_done(&doc);
	return r;
}
