/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* events.c - deliver events to subscribed connections (see events.h) */
#include <string.h>

#include "conn.h"
#include "events.h"
#include "instance.h"
#include "json-oom.h"
#include "policy.h"
#include "vlu-proto.h"
#include "vlud.h"

void events_emit(const char *name, const char *instance, json_object *data)
{
	const struct instance *inst = instance ? instance_find(instance) : NULL;

	events_emit_owned(name, instance, inst ? inst->uid : EVENTS_NO_OWNER, data);
}

void events_emit_owned(const char *name, const char *instance, uid_t owner, json_object *data)
{
	_cleanup_json_ json_object *ev = NULL;
	struct list *p, *t;

	ev = vlu_event_new(name, data); /* consumes data */
	if (!ev)
		json_oom("event");
	log_debug("event %s%s%s", name, instance ? " instance=" : "", instance ? instance : "");
	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (c->dead || !c->subscribed)
			continue;
		if (c->sub_instance[0] && (!instance || strcmp(c->sub_instance, instance) != 0))
			continue;
		/* a VMM follows its own uid's instance, never a name another uid registered since */
		if (!(c->roles & ROLE_OPERATOR) && owner != c->cred.uid)
			continue;
		/* a subscriber that cannot keep up is disconnected by conn_send (output limit) */
		(void)conn_send(c, ev, NULL, 0);
	}
}

void events_tell(struct conn *c, const char *name, const char *instance, json_object *data)
{
	if (c && !c->dead && !c->subscribed) {
		_cleanup_json_ json_object *ev = vlu_event_new(name, json_object_get(data));

		if (ev)
			(void)conn_send(c, ev, NULL, 0);
	}
	events_emit(name, instance, data);
}
