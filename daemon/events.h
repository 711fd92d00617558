/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * events.h - QMP-style events to subscribed connections.
 * Operators subscribed without a filter get every event; a filtered
 * subscription (and every VMM subscription) gets the events of one
 * instance only.  Events without an instance (daemon.*) go to unfiltered
 * subscribers.
 */
#ifndef VLUD_EVENTS_H
#define VLUD_EVENTS_H

#include <json-c/json.h>

/* data is consumed; instance may be NULL */
void events_emit(const char *name, const char *instance, json_object *data);

struct conn;

/* events_emit(), and the event straight to connection c (may be NULL) when c is not a subscriber: a VMM
 * in a live update hears what concerns it (update.save, update.rolled-back) subscribed or not.  data is
 * consumed. */
void events_tell(struct conn *c, const char *name, const char *instance, json_object *data);

#endif
