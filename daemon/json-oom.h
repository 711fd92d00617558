/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * json-oom.h - the daemon's one out-of-memory policy for json-c (docs/DESIGN.md
 * "Out of memory"): an allocation failure is logged and abort()s the daemon,
 * so a half-built reply, event or verdict is never sent.  systemd restarts
 * vlud and the fd store keeps every fd.  These never return NULL or fail.
 */
#ifndef VLUD_JSON_OOM_H
#define VLUD_JSON_OOM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <json-c/json.h>

#include "vlud.h"

__attribute__((noreturn)) static inline void json_oom(const char *what)
{
	log_error("out of memory (json-c %s): aborting; the service manager restarts vlud", what);
	abort();
}

static inline json_object *jnew_obj(void)
{
	json_object *o = json_object_new_object();

	if (!o)
		json_oom("object");
	return o;
}

static inline json_object *jnew_arr(void)
{
	json_object *o = json_object_new_array();

	if (!o)
		json_oom("array");
	return o;
}

/* s must not be NULL (a JSON null is a NULL json_object *, not a string) */
static inline json_object *jnew_str(const char *s)
{
	json_object *o = json_object_new_string(s);

	if (!o)
		json_oom("string");
	return o;
}

static inline json_object *jnew_int(int64_t v)
{
	json_object *o = json_object_new_int64(v);

	if (!o)
		json_oom("int");
	return o;
}

/* values at or above 2^63 (ids, dev/ino, feature bits) stay unsigned on the wire (docs/PROTOCOL.md) */
static inline json_object *jnew_uint(uint64_t v)
{
	json_object *o = json_object_new_uint64(v);

	if (!o)
		json_oom("uint64");
	return o;
}

static inline json_object *jnew_double(double v)
{
	json_object *o = json_object_new_double(v);

	if (!o)
		json_oom("double");
	return o;
}

static inline json_object *jnew_bool(bool v)
{
	json_object *o = json_object_new_boolean(v);

	if (!o)
		json_oom("boolean");
	return o;
}

/* obj[key] = val (consumed; NULL stands for a JSON null) */
static inline void jadd(json_object *obj, const char *key, json_object *val)
{
	if (json_object_object_add(obj, key, val) < 0)
		json_oom("object add");
}

/* append val (consumed; NULL stands for a JSON null) to arr */
static inline void jappend(json_object *arr, json_object *val)
{
	if (json_object_array_add(arr, val) < 0)
		json_oom("array add");
}

#endif
