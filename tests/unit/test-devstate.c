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

static json_object *strs(const char *json)
{
	json_object *o = json_tokener_parse(json);

	assert_non_null(o);
	return o;
}

/* the names of arr, joined by "|" */
static const char *joined(json_object *arr)
{
	static char b[512];

	b[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		size_t n = strlen(b);
		snprintf(b + n, sizeof(b) - n, "%s%s", i ? "|" : "", json_object_get_string(json_object_array_get_idx(arr, i)));
	}
	return b;
}

/* devstate_compare(a, b) with declared (JSON text, NULL: none declared): the differences and the
 * undeclared ones, "|"-joined; the return value is the undeclared count */
static void expect_compare(json_object *a, json_object *b, const char *declared, const char *want_differ,
			   const char *want_undecl)
{
	json_object *decl = declared ? strs(declared) : NULL;
	json_object *differ = json_object_new_array(), *undecl = json_object_new_array();
	size_t n = devstate_compare("vdpa:vdpa0", a, b, decl, differ, undecl);

	assert_string_equal(joined(differ), want_differ);
	assert_string_equal(joined(undecl), want_undecl);
	assert_int_equal(n, json_object_array_length(undecl));
	json_object_put(differ);
	json_object_put(undecl);
	json_object_put(decl);
}

/* devstate_compare(): the verdict's names, and what the successor's device_state_changes declares */
static void test_compare_declared(void **st)
{
	json_object *a = state("02:6d:76:6d:6d:01", 15), *b = state("00:00:00:00:00:00", 15);
	json_object *c = state("02:6d:76:6d:6d:01", 0), *e = strs("{\"error\":\"x\"}"), *differ;
	const char *mac = "vdpa:vdpa0: config.mac";

	/* nothing declared: the MAC is an undeclared difference */
	expect_compare(a, b, NULL, mac, mac);
	/* declared for every device, for this device, or as the whole config: still reported, not undeclared */
	static const char *const covering[] = {
		"[\"config.mac\"]", "[\"vdpa:vdpa0: config.mac\"]", "[\"config\"]", "[\"status\", \"config.mac\"]",
		"[\"vdpa:vdpa0: config\"]",
	};
	for (size_t i = 0; i < sizeof(covering) / sizeof(covering[0]); i++)
		expect_compare(a, b, covering[i], mac, "");
	/* not covering: another member, another device, a prefix that is not a member boundary, empty */
	static const char *const other[] = {
		"[\"config.mtu\"]", "[\"vdpa:vdpa1: config.mac\"]", "[\"config.ma\"]", "[\"conf\"]", "[\"\"]", "[]",
		"[\"vdpa:vdpa0:config.mac\"]",
	};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		expect_compare(a, b, other[i], mac, mac);
	/* equal: nothing to report; the verdict's "device" label is ignored; undeclared may be NULL */
	json_object_object_add(a, "device", json_object_new_string("vdpa:vdpa0"));
	expect_compare(a, a, NULL, "", "");
	differ = json_object_new_array();
	assert_int_equal(devstate_compare("vdpa:vdpa0", a, b, NULL, differ, NULL), 1);
	json_object_put(differ);
	/* two members, one declared */
	json_object_object_add(c, "config", strs("{\"mac\":\"02:6d:76:6d:6d:02\",\"status\":1,\"max_virtqueue_pairs\":0,\"mtu\":1500}"));
	expect_compare(a, c, "[\"config.mac\"]", "vdpa:vdpa0: status|vdpa:vdpa0: config.mac", "vdpa:vdpa0: status");
	/* not read (NULL) or a failed read: a difference unless declared as such */
	expect_compare(a, NULL, "[\"config.mac\"]", "vdpa:vdpa0: not read", "vdpa:vdpa0: not read");
	expect_compare(NULL, a, NULL, "vdpa:vdpa0: not read", "vdpa:vdpa0: not read");
	expect_compare(a, e, "[\"config.mac\"]", "vdpa:vdpa0: error", "vdpa:vdpa0: error");
	json_object_put(e);
	json_object_put(c);
	json_object_put(a);
	json_object_put(b);
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
		cmocka_unit_test(test_compare_declared),
		cmocka_unit_test(test_read_not_a_device),
	};
	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 1);
	return cmocka_run_group_tests_name("devstate", tests, NULL, NULL);
}
