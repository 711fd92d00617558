/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-devstate.c - unit tests of daemon/devstate.c: comparison of device states (equal, a changed MAC,
 * a changed status, a member only on one side, errors), and devstate_read() on an fd that is no
 * vhost-vdpa device (an "error" object naming the first ioctl, never NULL).  The read of a real device
 * is the rig's (update-cvq-*).  Output: TAP (cmocka).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "devstate.h"

/* json-oom.h's abort path logs through the daemon's logger */
void vlud_log(int prio, const char *fmt, ...);
void vlud_log(int prio, const char *fmt, ...)
{
	va_list ap;

	(void)prio;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static json_object *state(const char *mac, int status)
{
	char b[256];

	snprintf(b, sizeof(b), "{\"status\":%d,\"features\":12952731688,\"backend_features\":382,"
		 "\"config\":{\"mac\":\"%s\",\"status\":1,\"max_virtqueue_pairs\":0,\"mtu\":1500}}", status, mac);
	json_object *o = json_tokener_parse(b);
	assert_non_null(o);
	return o;
}

static void test_equal(void **st)
{
	json_object *a = state("02:6d:76:6d:6d:01", 15), *b = state("02:6d:76:6d:6d:01", 15), *d = NULL;

	assert_true(devstate_equal(a, b, &d));
	assert_int_equal(json_object_array_length(d), 0);
	json_object_put(d);
	assert_true(devstate_equal(a, b, NULL));
	json_object_put(a);
	json_object_put(b);
}

static void test_mac_lost(void **st)
{
	json_object *a = state("02:6d:76:6d:6d:01", 15), *b = state("00:00:00:00:00:00", 15), *d = NULL;

	assert_false(devstate_equal(a, b, &d));
	assert_int_equal(json_object_array_length(d), 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(d, 0)), "config.mac");
	json_object_put(d);
	json_object_put(a);
	json_object_put(b);
}

static void test_status_and_members(void **st)
{
	json_object *a = state("02:6d:76:6d:6d:01", 15), *b = state("02:6d:76:6d:6d:01", 0), *d = NULL;

	assert_false(devstate_equal(a, b, &d));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(d, 0)), "status");
	json_object_put(d);
	/* a member only in one of them */
	json_object *c;
	assert_true(json_object_object_get_ex(b, "config", &c));
	json_object_object_del(c, "mtu");
	json_object_object_add(b, "status", json_object_new_int(15));
	assert_false(devstate_equal(a, b, &d));
	assert_int_equal(json_object_array_length(d), 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(d, 0)), "config.mtu");
	json_object_put(d);
	assert_false(devstate_equal(b, a, &d));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(d, 0)), "config.mtu");
	json_object_put(d);
	json_object_put(a);
	json_object_put(b);
}

static void test_errors(void **st)
{
	json_object *a = state("02:6d:76:6d:6d:01", 15), *e = json_tokener_parse("{\"error\":\"x\"}"), *d = NULL;

	assert_false(devstate_equal(a, e, &d));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(d, 0)), "error");
	json_object_put(d);
	assert_false(devstate_equal(e, e, NULL));	/* two failed reads are not "equal" */
	assert_false(devstate_equal(NULL, a, NULL));
	json_object_put(a);
	json_object_put(e);
}

static void test_read_not_a_device(void **st)
{
	int fd = memfd_create("not-vdpa", MFD_CLOEXEC);
	json_object *o, *err;

	assert_true(fd >= 0);
	o = devstate_read(fd);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "error", &err));
	assert_non_null(strstr(json_object_get_string(err), "VHOST_VDPA_GET_STATUS: "));
	assert_false(json_object_object_get_ex(o, "config", NULL));
	json_object_put(o);
	o = devstate_read(-1);
	assert_true(json_object_object_get_ex(o, "error", NULL));
	json_object_put(o);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_mac_lost),
		cmocka_unit_test(test_status_and_members),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_read_not_a_device),
	};
	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 1);
	return cmocka_run_group_tests_name("devstate", tests, NULL, NULL);
}
