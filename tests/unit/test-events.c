/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-events.c - daemon/events.c's delivery with events.subscribe filters, on stub connections (no
 * socket: conn_send() records what each connection was sent):
 *   - a filtered subscriber gets only its events, an unfiltered one all, one not subscribed none;
 *   - the instance scoping and the VMM's uid binding hold with a filter (another tenant's instance, a name
 *     re-registered by another uid: nothing, whatever the filter names);
 *   - events_tell(): the connection it addresses gets the event exactly once: through its subscription when
 *     that delivers it, else directly (not subscribed, or its filter leaves the event out: update.save,
 *     update.rolled-back and update.completed reach a VMM subscribed to other events); the other
 *     subscribers as events_emit().
 * The integration test tests/integration/test-lib-events.c runs the filter in the real daemon.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conn.h"
#include "events.h"
#include "instance.h"
#include "vlu-proto.h"
#include "vlud.h"

/* ---- stubs of what events.c calls ---- */

struct vlud vl;
int vlud_log_level = LOG_INFO;

void vlud_log(int prio, const char *fmt, ...)
{
	(void)prio;
	(void)fmt;
}

static struct instance insts[2];

struct instance *instance_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(insts); i++)
		if (insts[i].name[0] && strcmp(insts[i].name, name) == 0)
			return &insts[i];
	return NULL;
}

#define NCONN 5
static struct conn conns[NCONN];
static char sent[NCONN][512]; /* "name,name" per connection */

int conn_send(struct conn *c, json_object *msg, const int *fds, size_t nfds)
{
	json_object *n = NULL;
	size_t i = (size_t)(c - conns);
	char *s;

	assert_true(i < NCONN);
	assert_null(fds);
	assert_int_equal(nfds, 0);
	assert_true(json_object_object_get_ex(msg, "event", &n));
	s = sent[i];
	if (s[0])
		strcat(s, ",");
	strcat(s, json_object_get_string(n));
	return 0;
}

/* ---- the set-up: instance vm-a of uid 1000, vm-b of uid 2000 ---- */

enum { OP_ALL, OP_FILT, VMM_A, VMM_A_FILT, VMM_B };

static void conn_setup(size_t i, unsigned roles, uid_t uid, bool subscribed, const char *inst, vlu_event_mask m)
{
	struct conn *c = &conns[i];

	memset(c, 0, sizeof(*c));
	c->id = i + 1;
	c->roles = roles;
	c->cred.uid = uid;
	c->subscribed = subscribed;
	snprintf(c->sub_instance, sizeof(c->sub_instance), "%s", inst);
	c->sub_events = m;
	list_add_tail(&vl.conns, &c->link);
}

static int setup(void **state)
{
	(void)state;
	memset(&vl, 0, sizeof(vl));
	list_init(&vl.conns);
	memset(sent, 0, sizeof(sent));
	memset(insts, 0, sizeof(insts));
	snprintf(insts[0].name, sizeof(insts[0].name), "vm-a");
	insts[0].uid = 1000;
	snprintf(insts[1].name, sizeof(insts[1].name), "vm-b");
	insts[1].uid = 2000;
	conn_setup(OP_ALL, ROLE_OPERATOR, 0, true, "", VLU_EVENTS_ALL);
	conn_setup(OP_FILT, ROLE_OPERATOR, 0, true, "",
		   VLU_EVENT_BIT(VLU_EV_UPDATE_COMPLETED) | VLU_EVENT_BIT(VLU_EV_FD_STORED));
	/* minivmm's filter */
	conn_setup(VMM_A, ROLE_VMM, 1000, true, "vm-a", VLU_EVENTS_ALL);
	conn_setup(VMM_A_FILT, ROLE_VMM, 1000, true, "vm-a",
		   VLU_EVENT_BIT(VLU_EV_UPDATE_COMPLETED) | VLU_EVENT_BIT(VLU_EV_UPDATE_ROLLED_BACK));
	conn_setup(VMM_B, ROLE_VMM, 2000, true, "vm-b", VLU_EVENTS_ALL);
	return 0;
}

static void emit(enum vlu_event_id ev, const char *inst)
{
	events_emit(ev, inst, NULL);
}

static void test_emit_filtered(void **state)
{
	(void)state;
	emit(VLU_EV_UPDATE_STARTED, "vm-a");
	emit(VLU_EV_UPDATE_PHASE, "vm-a");
	emit(VLU_EV_FD_STORED, "vm-a");
	emit(VLU_EV_UPDATE_COMPLETED, "vm-a");
	emit(VLU_EV_UPDATE_ROLLED_BACK, "vm-b");
	emit(VLU_EV_DAEMON_STARTED, NULL);
	assert_string_equal(sent[OP_ALL],
			    "update.started,update.phase,fd.stored,update.completed,update.rolled-back,daemon.started");
	assert_string_equal(sent[OP_FILT], "fd.stored,update.completed");
	assert_string_equal(sent[VMM_A], "update.started,update.phase,fd.stored,update.completed");
	assert_string_equal(sent[VMM_A_FILT], "update.completed");
	/* vm-b's rolled-back is in VMM_A_FILT's filter, not in its instance */
	assert_string_equal(sent[VMM_B], "update.rolled-back");
}

static void test_unsubscribed_and_dead(void **state)
{
	(void)state;
	conns[OP_FILT].subscribed = false;
	conns[VMM_A].dead = true;
	emit(VLU_EV_FD_STORED, "vm-a");
	assert_string_equal(sent[OP_ALL], "fd.stored");
	assert_string_equal(sent[OP_FILT], "");
	assert_string_equal(sent[VMM_A], "");
}

static void test_uid_binding(void **state)
{
	(void)state;
	/* vm-a released and registered again by uid 2000: its old VMM follows nothing, filter or not */
	insts[0].uid = 2000;
	emit(VLU_EV_UPDATE_COMPLETED, "vm-a");
	assert_string_equal(sent[VMM_A], "");
	assert_string_equal(sent[VMM_A_FILT], "");
	assert_string_equal(sent[VMM_B], ""); /* not its instance name */
	assert_string_equal(sent[OP_FILT], "update.completed");
	/* released: no owner, operators only */
	events_emit_owned(VLU_EV_INSTANCE_RELEASED, "vm-a", EVENTS_NO_OWNER, NULL);
	assert_string_equal(sent[VMM_A], "");
	assert_string_equal(sent[OP_ALL], "update.completed,instance.released");
}

/* events_tell(): the addressed connection gets the event exactly once */
static void test_tell_exactly_once(void **state)
{
	(void)state;
	/* filtered out of O's subscription: sent directly */
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_SAVE, "vm-a", NULL);
	assert_string_equal(sent[VMM_A_FILT], "update.save");
	/* in O's filter: through the subscription, not twice */
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_ROLLED_BACK, "vm-a", NULL);
	assert_string_equal(sent[VMM_A_FILT], "update.save,update.rolled-back");
	/* unfiltered O: through the subscription */
	events_tell(&conns[VMM_A], VLU_EV_UPDATE_SAVE, "vm-a", NULL);
	assert_string_equal(sent[VMM_A], "update.save,update.rolled-back,update.save");
	/* the subscribers as with events_emit() */
	assert_string_equal(sent[OP_ALL], "update.save,update.rolled-back,update.save");
	assert_string_equal(sent[OP_FILT], "");
	assert_string_equal(sent[VMM_B], "");
	/* not subscribed at all: directly */
	conns[VMM_A].subscribed = false;
	events_tell(&conns[VMM_A], VLU_EV_UPDATE_COMPLETED, "vm-a", NULL);
	assert_string_equal(sent[VMM_A], "update.save,update.rolled-back,update.save,update.completed");
	assert_string_equal(sent[VMM_A_FILT], "update.save,update.rolled-back,update.completed");
	/* a dead connection: nothing; NULL: the subscribers only */
	conns[VMM_A].dead = true;
	events_tell(&conns[VMM_A], VLU_EV_UPDATE_COMPLETED, "vm-a", NULL);
	events_tell(NULL, VLU_EV_UPDATE_COMPLETED, "vm-a", NULL);
	assert_string_equal(sent[VMM_A], "update.save,update.rolled-back,update.save,update.completed");
	assert_string_equal(sent[VMM_A_FILT],
			    "update.save,update.rolled-back,update.completed,update.completed,update.completed");
}

/* the update's end told to O (daemon/update-rollback.c, update.c: update_tells_old()) with a "failed"
 * verdict: O hears update.rolled-back and update.completed once, subscribed to other events or to none */
static void test_tell_failed_verdict(void **state)
{
	json_object *v = json_object_new_object();

	(void)state;
	json_object_object_add(v, "result", json_object_new_string("failed"));
	conns[VMM_A_FILT].sub_events = VLU_EVENT_BIT(VLU_EV_FD_STORED);
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_ROLLED_BACK, "vm-a", json_object_get(v));
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_COMPLETED, "vm-a", json_object_get(v));
	assert_string_equal(sent[VMM_A_FILT], "update.rolled-back,update.completed");
	conns[VMM_A_FILT].subscribed = false;
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_ROLLED_BACK, "vm-a", json_object_get(v));
	events_tell(&conns[VMM_A_FILT], VLU_EV_UPDATE_COMPLETED, "vm-a", v);
	assert_string_equal(sent[VMM_A_FILT], "update.rolled-back,update.completed,update.rolled-back,update.completed");
	/* the unfiltered VMM subscription of the same instance through its subscription, once each */
	assert_string_equal(sent[VMM_A], "update.rolled-back,update.completed,update.rolled-back,update.completed");
}

/* a subscription to another instance (an operator's): the addressed connection still gets it, once */
static void test_tell_other_scope(void **state)
{
	(void)state;
	snprintf(conns[OP_FILT].sub_instance, sizeof(conns[OP_FILT].sub_instance), "vm-b");
	events_tell(&conns[OP_FILT], VLU_EV_UPDATE_COMPLETED, "vm-a", NULL);
	assert_string_equal(sent[OP_FILT], "update.completed");
	events_tell(&conns[OP_FILT], VLU_EV_UPDATE_COMPLETED, "vm-b", NULL);
	assert_string_equal(sent[OP_FILT], "update.completed,update.completed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_emit_filtered, setup),
		cmocka_unit_test_setup(test_unsubscribed_and_dead, setup),
		cmocka_unit_test_setup(test_uid_binding, setup),
		cmocka_unit_test_setup(test_tell_exactly_once, setup),
		cmocka_unit_test_setup(test_tell_other_scope, setup),
		cmocka_unit_test_setup(test_tell_failed_verdict, setup),
	};

	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
