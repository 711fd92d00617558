/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mv-vlud.h - minivmm's daemon-driven live update (vlud.c; owner: update engine) */
#ifndef MV_VLUD_H
#define MV_VLUD_H

#include <json-c/json.h>

struct mv_vmm;

/* an event from vlud (link.c's callback passes every event here); acts on update.* of our instance */
void mv_vlud_event(struct mv_vmm *v, const char *name, json_object *event);
/* events.subscribe for our instance, filtered to the events only a subscription brings (vlud.c) */
int mv_vlud_subscribe(struct mv_vmm *v);
/* main loop: reattach to a restarted vlud when the connection is gone (vlud.c) */
void mv_vlud_tick(struct mv_vmm *v);
/* new image ($VLU_UPDATE_TOKEN set, --vlud): claim, take over, update.ready; 0 when the verdict is ok */
int mv_vlud_takeover(struct mv_vmm *v, const char *token);

#endif
