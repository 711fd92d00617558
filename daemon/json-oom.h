/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * json-oom.h - the daemon's json-c out-of-memory policy (docs/DESIGN.md): a json-c allocation that fails
 * aborts the daemon, with a log line, through these wrappers; a half-built reply, event or verdict is
 * never sent.  (A daemon that cannot allocate a few bytes cannot keep its promises either; systemd
 * restarts it and the fd store and the state document bring every fd and record back.)
 *
 * jadd() accepts a NULL value (JSON null), like json_object_object_add(); it consumes val.
 */
#ifndef VLUD_JSON_OOM_H
#define VLUD_JSON_OOM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <json-c/json.h>

/* the one place the policy acts: never returns */
__attribute__((noreturn, cold)) static inline void json_oom(const char *what)
{
	/* no allocation here: stderr is unbuffered, the journal gets the line */
	fprintf(stderr, "<2>vlud: out of memory in json-c (%s): aborting\n", what);
	abort();
}

static inline json_object *json_or_die(json_object *o, const char *what)
{
	if (!o)
		json_oom(what);
	return o;
}

static inline json_object *jnew_obj(void) { return json_or_die(json_object_new_object(), "object"); }
static inline json_object *jnew_arr(void) { return json_or_die(json_object_new_array(), "array"); }
static inline json_object *jnew_str(const char *s) { return json_or_die(json_object_new_string(s), "string"); }
static inline json_object *jnew_int(int32_t i) { return json_or_die(json_object_new_int(i), "int"); }
static inline json_object *jnew_int64(int64_t i) { return json_or_die(json_object_new_int64(i), "int64"); }
static inline json_object *jnew_uint64(uint64_t i) { return json_or_die(json_object_new_uint64(i), "uint64"); }
static inline json_object *jnew_double(double d) { return json_or_die(json_object_new_double(d), "double"); }
static inline json_object *jnew_bool(int b) { return json_or_die(json_object_new_boolean(b), "boolean"); }

/* obj[key] = val (consumed; NULL: JSON null) */
static inline void jadd(json_object *obj, const char *key, json_object *val)
{
	if (json_object_object_add(obj, key, val) < 0)
		json_oom("object member");
}

/* arr += val (consumed) */
static inline void jpush(json_object *arr, json_object *val)
{
	if (json_object_array_add(arr, val) < 0)
		json_oom("array element");
}

#endif
