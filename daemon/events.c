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

static uid_t owner_of(const char *instance)
{
	const struct instance *inst = instance ? instance_find(instance) : NULL;

	return inst ? inst->uid : EVENTS_NO_OWNER;
}

/* Does c's subscription deliver this event?  The one rule for events_emit_owned() and events_tell(). */
static bool subscribed_to(const struct conn *c, enum vlu_event_id ev, const char *instance, uid_t owner)
{
	if (c->dead || !c->subscribed)
		return false;
	if (!(c->sub_events & VLU_EVENT_BIT(ev)))
		return false;
	if (c->sub_instance[0] && (!instance || strcmp(c->sub_instance, instance) != 0))
		return false;
	/* a VMM follows its own uid's instance, never a name another uid registered since */
	if (!(c->roles & ROLE_OPERATOR) && owner != c->cred.uid)
		return false;
	return true;
}

void events_emit(enum vlu_event_id ev, const char *instance, json_object *data)
{
	events_emit_owned(ev, instance, owner_of(instance), data);
}

void events_emit_owned(enum vlu_event_id ev, const char *instance, uid_t owner, json_object *data)
{
	_cleanup_json_ json_object *msg = NULL;
	struct list *p, *t;

	msg = vlu_event_new(vlu_event_names[ev], data); /* consumes data */
	if (!msg)
		json_oom("event");
	log_debug("event %s%s%s", vlu_event_names[ev], instance ? " instance=" : "", instance ? instance : "");
	list_for_each_safe(p, t, &vl.conns) {
		struct conn *c = list_entry(p, struct conn, link);

		if (!subscribed_to(c, ev, instance, owner))
			continue;
		/* a subscriber that cannot keep up is disconnected by conn_send (output limit) */
		(void)conn_send(c, msg, NULL, 0);
	}
}

void events_tell(struct conn *c, enum vlu_event_id ev, const char *instance, json_object *data)
{
	uid_t owner = owner_of(instance);

	/* not through the subscription (none, another filter): straight to c, so that it gets one copy */
	if (c && !c->dead && !subscribed_to(c, ev, instance, owner)) {
		_cleanup_json_ json_object *msg = vlu_event_new(vlu_event_names[ev], json_object_get(data));

		if (msg)
			(void)conn_send(c, msg, NULL, 0);
	}
	events_emit_owned(ev, instance, owner, data);
}
