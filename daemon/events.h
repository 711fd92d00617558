/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * events.h - QMP-style events to subscribed connections.
 * Operators subscribed without an instance get every instance's events;
 * a subscription to an instance (and every VMM subscription) gets the
 * events of that instance only.  Events without an instance (daemon.*) go
 * to subscribers without an instance.  A VMM's subscription is bound to
 * its uid as well as the name: it gets an event only while the instance of
 * that name belongs to its uid, so a name released and registered again by
 * another uid is not followed (the events carry the instance's owner).
 * A subscription may also name the events it wants (events.subscribe
 * "events"): one bit per enum vlu_event_id in the connection, checked in
 * O(1) per event and connection.
 */
#ifndef VLUD_EVENTS_H
#define VLUD_EVENTS_H

#include <json-c/json.h>

#include <sys/types.h>

#include "vlu-proto.h"

#define EVENTS_NO_OWNER ((uid_t)-1)

/* data is consumed; instance may be NULL.  The owner is the uid of the registered instance of that
 * name (EVENTS_NO_OWNER if none: operators only). */
void events_emit(enum vlu_event_id ev, const char *instance, json_object *data);
/* the same with the owner given: for an instance already unlinked (instance.released) */
void events_emit_owned(enum vlu_event_id ev, const char *instance, uid_t owner, json_object *data);

struct conn;

/* events_emit(), and the event straight to connection c (may be NULL) when its subscription does not
 * deliver it (not subscribed, or a filter without this event): a VMM in a live update hears what
 * concerns it (update.save, update.rolled-back, update.completed) whatever it subscribed to, exactly once.
 * The direct path does not apply the uid binding of subscriptions, deliberately: c is the update's own old
 * VMM (u->old_conn, while it is O's: upd_old_conn_told()), which the update addresses whoever owns the name
 * by now (the subscribers still get it through the binding).  data is consumed. */
void events_tell(struct conn *c, enum vlu_event_id ev, const char *instance, json_object *data);

#endif
