/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * events.h - QMP-style events to subscribed connections.
 * Operators subscribed without a filter get every event; a filtered
 * subscription (and every VMM subscription) gets the events of one
 * instance only.  Events without an instance (daemon.*) go to unfiltered
 * subscribers.  A VMM's subscription is bound to its uid as well as the
 * name: it gets an event only while the instance of that name belongs to
 * its uid, so a name released and registered again by another uid is not
 * followed (the events carry the instance's owner).
 */
#ifndef VLUD_EVENTS_H
#define VLUD_EVENTS_H

#include <json-c/json.h>

#include <sys/types.h>

#define EVENTS_NO_OWNER ((uid_t)-1)

/* data is consumed; instance may be NULL.  The owner is the uid of the registered instance of that
 * name (EVENTS_NO_OWNER if none: operators only). */
void events_emit(const char *name, const char *instance, json_object *data);
/* the same with the owner given: for an instance already unlinked (instance.released) */
void events_emit_owned(const char *name, const char *instance, uid_t owner, json_object *data);

struct conn;

/* events_emit(), and the event straight to connection c (may be NULL) when c is not a subscriber: a VMM
 * in a live update hears what concerns it (update.save, update.rolled-back) subscribed or not.  data is
 * consumed. */
void events_tell(struct conn *c, const char *name, const char *instance, json_object *data);

#endif
