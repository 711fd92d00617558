/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-ping - the daemon's responsiveness during a live update (rig scenario update-exec-c-pa).
 *
 * Two libvlu connections to the daemon: one subscribed to the events of INSTANCE (update.phase tells
 * when the update is in phase claim: path C releases the old device there), one calling `status` in a
 * closed loop, each call timed (CLOCK_MONOTONIC, send to reply).  Runs until update.completed of the
 * instance or SECONDS, then prints one line:
 *   vlu-ping: calls=N max_ms=X claim_calls=N claim_max_ms=X
 * claim_*: the calls started while the update was in phase claim (between the update.phase events
 * "claim" and the next phase).  Exit 0 when it saw an update complete, 1 otherwise.
 *
 * Usage: vlu-ping SOCKET INSTANCE SECONDS   (prints "vlu-ping: subscribed" once the watch is on)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "vlu.h"

static bool in_claim, completed;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void on_event(struct vlu *v, const char *name, json_object *event, void *userdata)
{
	json_object *data, *ph;

	(void)v;
	(void)userdata;
	if (strcmp(name, "update.completed") == 0) {
		completed = true;
		in_claim = false;
		return;
	}
	if (strcmp(name, "update.phase") != 0 || !json_object_object_get_ex(event, "data", &data) ||
	    !json_object_object_get_ex(data, "phase", &ph))
		return;
	in_claim = strcmp(json_object_get_string(ph), "claim") == 0;
}

int main(int argc, char **argv)
{
	struct vlu *ev = NULL, *st = NULL;
	double end, max_ms = 0, claim_max_ms = 0;
	unsigned long calls = 0, claim_calls = 0;
	int k;

	if (argc != 4) {
		fprintf(stderr, "usage: vlu-ping SOCKET INSTANCE SECONDS\n");
		return 2;
	}
	k = vlu_connect(argv[1], 5000, &ev);
	if (k == 0)
		k = vlu_connect(argv[1], 5000, &st);
	if (k == 0) {
		vlu_set_event_callback(ev, on_event, NULL);
		k = vlu_subscribe(ev, argv[2]);
	}
	if (k < 0) {
		fprintf(stderr, "vlu-ping: connect/subscribe: %s\n", strerror(-k));
		return 2;
	}
	printf("vlu-ping: subscribed\n");
	fflush(stdout);
	end = now_ms() + atof(argv[3]) * 1e3;
	while (!completed && now_ms() < end) {
		bool claim;
		double t0, dt;

		k = vlu_process(ev);
		if (k < 0) {
			fprintf(stderr, "vlu-ping: events: %s\n", strerror(-k));
			break;
		}
		claim = in_claim;
		t0 = now_ms();
		k = vlu_status(st, NULL);
		dt = now_ms() - t0;
		if (k < 0) {
			fprintf(stderr, "vlu-ping: status: %s\n", strerror(-k));
			break;
		}
		calls++;
		if (dt > max_ms)
			max_ms = dt;
		if (claim) {
			claim_calls++;
			if (dt > claim_max_ms)
				claim_max_ms = dt;
		}
	}
	printf("vlu-ping: calls=%lu max_ms=%.3f claim_calls=%lu claim_max_ms=%.3f completed=%d\n", calls, max_ms,
	       claim_calls, claim_max_ms, completed);
	vlu_close(ev);
	vlu_close(st);
	return completed ? 0 : 1;
}
