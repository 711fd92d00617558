/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-ping - the daemon's responsiveness during a live update (rig scenario update-exec-c-pa).
 *
 * Two libvlu connections to the daemon: one subscribed to the events of INSTANCE (update.phase tells
 * when the update is in phase claim: path C releases the old device there), one calling `status` in a
 * closed loop, each call timed (CLOCK_MONOTONIC, send to reply).  Runs until update.completed of the
 * instance or SECONDS, then prints one line:
 *   vlu-ping: calls=N max_ms=X claim_calls=N claim_max_ms=X claim_window_ms=X
 * claim_*: the calls whose [send, reply] interval overlaps the phase claim, taken from the daemon's own
 * timestamps (CLOCK_REALTIME) of the update.phase events "claim" and the next phase, so that a call the
 * daemon could not answer during the claim counts even though the events reach us only afterwards.
 * Exit 0 when it saw an update complete, 1 otherwise.
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

#define MAX_CALLS 1000000

static bool in_claim, completed;
static double claim_start = -1, claim_end = -1; /* the daemon's timestamps, ms (CLOCK_REALTIME) */
static double (*calls_at)[2];			/* [start, end] of each call, ms (CLOCK_REALTIME) */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double event_ms(json_object *event)
{
	json_object *ts, *s, *us;

	if (!json_object_object_get_ex(event, "timestamp", &ts) || !json_object_object_get_ex(ts, "seconds", &s) ||
	    !json_object_object_get_ex(ts, "microseconds", &us))
		return -1;
	return (double)json_object_get_int64(s) * 1e3 + (double)json_object_get_int64(us) / 1e3;
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
	if (strcmp(json_object_get_string(ph), "claim") == 0) {
		in_claim = true;
		claim_start = event_ms(event);
	} else if (in_claim) {
		in_claim = false;
		claim_end = event_ms(event);
	}
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
	calls_at = calloc(MAX_CALLS, sizeof(*calls_at));
	if (!calls_at)
		return 2;
	printf("vlu-ping: subscribed\n");
	fflush(stdout);
	end = now_ms() + atof(argv[3]) * 1e3;
	while (!completed && now_ms() < end && calls < MAX_CALLS) {
		double t0, dt;
		json_object *o = NULL;

		k = vlu_process(ev);
		if (k < 0) {
			fprintf(stderr, "vlu-ping: events: %s\n", strerror(-k));
			break;
		}
		t0 = now_ms();
		k = vlu_status(st, &o);
		dt = now_ms() - t0;
		json_object_put(o);
		if (k < 0) {
			fprintf(stderr, "vlu-ping: status: %s\n", strerror(-k));
			break;
		}
		calls_at[calls][0] = t0;
		calls_at[calls][1] = t0 + dt;
		calls++;
		if (dt > max_ms)
			max_ms = dt;
	}
	/* the calls overlapping the claim phase */
	for (unsigned long i = 0; claim_start >= 0 && claim_end >= claim_start && i < calls; i++) {
		double dt = calls_at[i][1] - calls_at[i][0];

		if (calls_at[i][0] > claim_end || calls_at[i][1] < claim_start)
			continue;
		claim_calls++;
		if (dt > claim_max_ms)
			claim_max_ms = dt;
	}
	printf("vlu-ping: calls=%lu max_ms=%.3f claim_calls=%lu claim_max_ms=%.3f claim_window_ms=%.3f completed=%d\n",
	       calls, max_ms, claim_calls, claim_max_ms, claim_start >= 0 && claim_end >= 0 ? claim_end - claim_start : -1.0,
	       completed);
	free(calls_at);
	vlu_close(ev);
	vlu_close(st);
	return completed ? 0 : 1;
}
