/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-proto.c - unit tests of protocol/: the command table (a row per
 * entry), the argument checker (a row per entry and failure kind), framing
 * over a real socketpair(AF_UNIX, SOCK_SEQPACKET) with real memfds and
 * eventfds, truncation, oversize, depth limit, request parsing, builders.
 *
 * Output: TAP (cmocka, CMOCKA_MESSAGE_OUTPUT=TAP is forced if unset).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "basics.h"
#include "vlu-proto.h"

/* ------------------------------------------------------------------ helpers */

static size_t count_open_fds(void)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void assert_same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_true(sa.st_dev == sb.st_dev);
	assert_true(sa.st_ino == sb.st_ino);
	assert_true(sa.st_rdev == sb.st_rdev);
}

static void seqpacket_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static json_object *parse_or_die(const char *s)
{
	json_object *j = NULL;

	assert_int_equal(vlu_json_parse(s, strlen(s), VLU_DEFAULT_MAX_DEPTH, &j), 0);
	return j;
}

/* ------------------------------------------------------------ table rows */

static bool has_role_bit(unsigned perm)
{
	return perm & (VLU_PERM_ANY | VLU_PERM_VMM | VLU_PERM_OPERATOR);
}

/* one row per table entry: id, name, summary, permission, args schema */
static void test_table_entry(void **state)
{
	const struct vlu_command *c = *state;
	size_t idx = (size_t)(c - vlu_commands);

	assert_true(idx < _VLU_CMD_MAX);
	assert_int_equal(c->id, idx);
	assert_non_null(c->name);
	assert_true(strlen(c->name) > 0 && strlen(c->name) <= VLU_NAME_MAX);
	for (const char *p = c->name; *p; p++)
		assert_true((*p >= 'a' && *p <= 'z') || *p == '.' || *p == '_');
	assert_ptr_equal(vlu_command_find(c->name), c);
	for (size_t i = 0; i < _VLU_CMD_MAX; i++)
		if (i != idx)
			assert_string_not_equal(vlu_commands[i].name, c->name);
	assert_non_null(c->summary);
	assert_true(strlen(c->summary) > 10);
	assert_true(has_role_bit(c->perm));
	assert_true((c->perm & ~(unsigned)(VLU_PERM_PRENEG | VLU_PERM_ANY | VLU_PERM_VMM | VLU_PERM_OPERATOR |
					    VLU_PERM_INSTANCE)) == 0);
	/* only "capabilities" is allowed before negotiation */
	assert_int_equal(!!(c->perm & VLU_PERM_PRENEG), c->id == VLU_CMD_CAPABILITIES);
	/* an instance requirement only makes sense for VMM callers */
	if (c->perm & VLU_PERM_INSTANCE)
		assert_true(c->perm & VLU_PERM_VMM);

	assert_true((c->n_args == 0) == (c->args == NULL));
	for (size_t i = 0; i < c->n_args; i++) {
		const struct vlu_arg *a = &c->args[i];

		assert_non_null(a->name);
		assert_true(strlen(a->name) > 0);
		assert_non_null(a->help);
		assert_true(strlen(a->help) > 5);
		assert_true(a->type >= VLU_ARG_STRING && a->type <= VLU_ARG_EVENT_ARRAY);
		assert_string_not_equal(vlu_arg_type_name(a->type), "?"); /* help and errors name it */
		assert_true(a->min <= a->max);
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(c->args[k].name, a->name);
		switch (a->type) {
		case VLU_ARG_INT:
			/* json-c saturates huge numbers to INT64_MIN/MAX; the range must exclude those */
			assert_true(a->min > INT64_MIN && a->max < INT64_MAX);
			break;
		case VLU_ARG_BOOL:
		case VLU_ARG_OBJECT:
			break;
		case VLU_ARG_NAME:
			assert_true(a->min >= 1 && a->max <= VLU_NAME_MAX);
			break;
		case VLU_ARG_STRING:
			assert_true(a->min >= 0 && a->max <= VLU_MAX_MSG_BYTES);
			break;
		case VLU_ARG_EVENT_ARRAY:
			/* the checker and the daemon's filter (vlu_event_mask_from_json) share these bounds */
			assert_true(a->min == 1 && a->max == VLU_EVENTS_FILTER_MAX);
			break;
		default: /* arrays */
			assert_true(a->min >= 0 && a->max <= VLU_MAX_FDS_PER_MSG * 4);
			break;
		}
	}
	if (c->fds_in == VLU_FDS_PER_NAME) {
		const struct vlu_arg *names = NULL;

		for (size_t i = 0; i < c->n_args; i++)
			if (strcmp(c->args[i].name, "names") == 0)
				names = &c->args[i];
		assert_non_null(names);
		assert_int_equal(names->type, VLU_ARG_NAME_ARRAY);
		assert_true(names->required);
		assert_true(names->min >= 1 && names->max <= VLU_MAX_FDS_PER_MSG);
	} else
		assert_int_equal(c->fds_in, VLU_FDS_NONE);
}

static void test_table_find_unknown(void **state)
{
	assert_null(vlu_command_find("no.such.command"));
	assert_null(vlu_command_find(""));
	assert_null(vlu_command_find(NULL));
	assert_null(vlu_command_find("STATUS"));
	/* the design's foundation commands are all there */
	static const char *const want[] = { "capabilities",   "status",	     "instance.register", "instance.list",
					    "instance.release", "device.list", "device.open",	"fd.store",
					    "fd.retrieve",     "fd.list",     "fd.remove",	"events.subscribe",
					    "device.reopen" };
	for (size_t i = 0; i < ELEMENTSOF(want); i++)
		assert_non_null(vlu_command_find(want[i]));
}

/* ------------------------------------------------ argument checker rows */

/* A valid value for an argument (with `min` entries/characters, at least 1 where it matters). */
static json_object *valid_value(const struct vlu_arg *a)
{
	switch (a->type) {
	case VLU_ARG_STRING: {
		char buf[8192];
		size_t n = a->min > 0 ? (size_t)a->min : 1;
		assert_true(n < sizeof(buf) && (int64_t)n <= a->max);
		memset(buf, 'x', n);
		buf[n] = '\0';
		return json_object_new_string(buf);
	}
	case VLU_ARG_NAME:
		return json_object_new_string("vm-1.a_b:c");
	case VLU_ARG_INT:
		return json_object_new_int64(a->min);
	case VLU_ARG_BOOL:
		return json_object_new_boolean(1);
	case VLU_ARG_OBJECT:
		return json_object_new_object();
	case VLU_ARG_NAME_ARRAY:
	case VLU_ARG_STRING_ARRAY:
	case VLU_ARG_OBJECT_ARRAY: {
		json_object *arr = json_object_new_array();
		int64_t n = a->min > 0 ? a->min : 1;
		for (int64_t i = 0; i < n; i++) {
			char nm[32];
			snprintf(nm, sizeof(nm), "n%" PRId64, i);
			json_object_array_add(arr, a->type == VLU_ARG_OBJECT_ARRAY ? json_object_new_object()
										  : json_object_new_string(nm));
		}
		return arr;
	}
	case VLU_ARG_EVENT_ARRAY: {
		json_object *arr = json_object_new_array();
		int64_t n = a->min > 0 ? a->min : 1;
		for (int64_t i = 0; i < n; i++)
			json_object_array_add(arr, json_object_new_string(vlu_event_names[i % _VLU_EV_MAX]));
		return arr;
	}
	}
	fail();
	return NULL;
}

/* Arguments with every argument set to a valid value (all = optional ones too). */
static json_object *valid_args(const struct vlu_command *c, bool all)
{
	json_object *args = json_object_new_object();

	for (size_t i = 0; i < c->n_args; i++)
		if (all || c->args[i].required)
			json_object_object_add(args, c->args[i].name, valid_value(&c->args[i]));
	return args;
}

static size_t valid_nfds(const struct vlu_command *c, json_object *args)
{
	json_object *names;

	if (c->fds_in != VLU_FDS_PER_NAME)
		return 0;
	assert_true(json_object_object_get_ex(args, "names", &names));
	return json_object_array_length(names);
}

static void expect_reject(const struct vlu_command *c, json_object *args, size_t nfds, enum vlu_error_class want,
			  const char *what)
{
	enum vlu_error_class cls = _VLU_ERR_MAX;
	char err[256] = "";
	int r = vlu_command_check(c, args, nfds, &cls, err, sizeof(err));

	if (r >= 0)
		fail_msg("%s: %s accepted %s", c->name, what, json_object_to_json_string(args));
	assert_int_equal(cls, want);
	assert_true(strlen(err) > 0);
}

static void expect_accept(const struct vlu_command *c, json_object *args, size_t nfds)
{
	char err[256] = "";
	enum vlu_error_class cls = _VLU_ERR_MAX;
	int r = vlu_command_check(c, args, nfds, &cls, err, sizeof(err));

	if (r < 0)
		fail_msg("%s rejected %s: %s", c->name, json_object_to_json_string(args), err);
	assert_int_equal(cls, _VLU_ERR_MAX); /* not written on success */
}

static void test_check_valid(void **state)
{
	const struct vlu_command *c = *state;
	_cleanup_json_ json_object *req = valid_args(c, false);
	_cleanup_json_ json_object *all = valid_args(c, true);

	expect_accept(c, req, valid_nfds(c, req));
	expect_accept(c, all, valid_nfds(c, all));
	/* also through a serialize/parse round trip, as on the wire */
	_cleanup_json_ json_object *re = parse_or_die(json_object_to_json_string(all));
	expect_accept(c, re, valid_nfds(c, re));
	if (c->fds_in == VLU_FDS_NONE) {
		/* absent arguments = {} */
		bool any_required = false;
		for (size_t i = 0; i < c->n_args; i++)
			any_required |= c->args[i].required;
		if (!any_required)
			expect_accept(c, NULL, 0);
		else
			expect_reject(c, NULL, 0, VLU_ERR_INVALID_ARGUMENT, "absent arguments");
	}
}

static void test_check_unknown_key(void **state)
{
	const struct vlu_command *c = *state;
	_cleanup_json_ json_object *args = valid_args(c, true);

	json_object_object_add(args, "bogus", json_object_new_int(1));
	expect_reject(c, args, valid_nfds(c, args), VLU_ERR_INVALID_ARGUMENT, "unknown key");

	/* arguments that are not an object */
	_cleanup_json_ json_object *arr = json_object_new_array();
	expect_reject(c, arr, 0, VLU_ERR_INVALID_ARGUMENT, "array as arguments");
}

static void test_check_missing_required(void **state)
{
	const struct vlu_command *c = *state;
	int n = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		if (!c->args[i].required)
			continue;
		_cleanup_json_ json_object *args = valid_args(c, true);
		size_t nfds = valid_nfds(c, args);
		json_object_object_del(args, c->args[i].name);
		expect_reject(c, args, c->fds_in == VLU_FDS_PER_NAME && strcmp(c->args[i].name, "names") ? nfds : 0,
			      VLU_ERR_INVALID_ARGUMENT, c->args[i].name);
		n++;
	}
	assert_true(n > 0); /* rows are only generated for commands with required arguments */
}

/* Wrong JSON types for every argument: all types except the accepted one (and null). */
static void test_check_wrong_type(void **state)
{
	const struct vlu_command *c = *state;

	for (size_t i = 0; i < c->n_args; i++) {
		const struct vlu_arg *a = &c->args[i];
		json_object *wrong[] = {
			json_object_new_string("s"), json_object_new_int(1),	json_object_new_boolean(0),
			json_object_new_double(1.5), json_object_new_object(), json_object_new_array(),
			NULL /* JSON null */,
		};
		bool ok[ELEMENTSOF(wrong)] = { false };

		switch (a->type) {
		case VLU_ARG_STRING:
		case VLU_ARG_NAME:
			ok[0] = true;
			break;
		case VLU_ARG_INT:
			ok[1] = true;
			break;
		case VLU_ARG_BOOL:
			ok[2] = true;
			break;
		case VLU_ARG_OBJECT:
			ok[4] = true;
			break;
		default:
			ok[5] = true;
			break;
		}
		for (size_t k = 0; k < ELEMENTSOF(wrong); k++) {
			if (ok[k]) {
				json_object_put(wrong[k]);
				continue;
			}
			_cleanup_json_ json_object *args = valid_args(c, true);
			size_t nfds = valid_nfds(c, args);
			char what[128];
			snprintf(what, sizeof(what), "%s as %s", a->name,
				 wrong[k] ? json_type_to_name(json_object_get_type(wrong[k])) : "null");
			json_object_object_add(args, a->name, wrong[k]);
			if (strcmp(a->name, "names") == 0)
				nfds = 0;
			expect_reject(c, args, nfds, VLU_ERR_INVALID_ARGUMENT, what);
		}
	}
}

/* Out of range: too long / too short strings, too many / too few entries, integers outside. */
static void test_check_out_of_range(void **state)
{
	const struct vlu_command *c = *state;
	int n = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		const struct vlu_arg *a = &c->args[i];
		json_object *bad[2] = { NULL, NULL };

		switch (a->type) {
		case VLU_ARG_STRING:
		case VLU_ARG_NAME: {
			size_t len = (size_t)a->max + 1;
			char *s = malloc(len + 1);
			assert_non_null(s);
			memset(s, 'a', len);
			s[len] = '\0';
			bad[0] = json_object_new_string(s);
			free(s);
			if (a->min > 0)
				bad[1] = json_object_new_string("");
			break;
		}
		case VLU_ARG_INT:
			bad[0] = json_object_new_int64(a->max + 1);
			bad[1] = json_object_new_int64(a->min - 1);
			break;
		case VLU_ARG_NAME_ARRAY:
		case VLU_ARG_STRING_ARRAY:
		case VLU_ARG_OBJECT_ARRAY:
			bad[0] = json_object_new_array();
			for (int64_t k = 0; k <= a->max; k++) {
				char nm[32];
				snprintf(nm, sizeof(nm), "n%" PRId64, k);
				json_object_array_add(bad[0], a->type == VLU_ARG_OBJECT_ARRAY ? json_object_new_object()
											 : json_object_new_string(nm));
			}
			if (a->min > 0)
				bad[1] = json_object_new_array();
			break;
		case VLU_ARG_EVENT_ARRAY:
			/* max + 1 known names (repeated: duplicates alone are no error), and none */
			bad[0] = json_object_new_array();
			for (int64_t k = 0; k <= a->max; k++)
				json_object_array_add(bad[0], json_object_new_string(vlu_event_names[k % _VLU_EV_MAX]));
			bad[1] = json_object_new_array();
			break;
		case VLU_ARG_BOOL:
		case VLU_ARG_OBJECT:
			continue;
		}
		for (size_t k = 0; k < 2; k++) {
			if (!bad[k])
				continue;
			_cleanup_json_ json_object *args = valid_args(c, true);
			size_t nfds = valid_nfds(c, args);
			if (strcmp(a->name, "names") == 0 && json_object_is_type(bad[k], json_type_array))
				nfds = json_object_array_length(bad[k]) <= VLU_MAX_FDS_PER_MSG ?
					       json_object_array_length(bad[k]) : 0;
			json_object_object_add(args, a->name, bad[k]);
			expect_reject(c, args, nfds, VLU_ERR_INVALID_ARGUMENT, k ? "below range" : "above range");
			n++;
		}
	}
	assert_true(n > 0);
}

/* Bad names where the schema says name: invalid characters, empty, too long, and duplicates in arrays. */
static void test_check_bad_name(void **state)
{
	const struct vlu_command *c = *state;
	static const char *const bad_names[] = { "a/b", "a b", "", "ä", "a\tb", "a,b", "../x", "$x" };
	int n = 0;

	for (size_t i = 0; i < c->n_args; i++) {
		const struct vlu_arg *a = &c->args[i];

		if (a->type != VLU_ARG_NAME && a->type != VLU_ARG_NAME_ARRAY)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(bad_names); k++) {
			_cleanup_json_ json_object *args = valid_args(c, true);
			size_t nfds = valid_nfds(c, args);
			json_object *v = json_object_new_string(bad_names[k]);
			if (a->type == VLU_ARG_NAME_ARRAY) {
				json_object *arr = json_object_new_array();
				json_object_array_add(arr, json_object_new_string("good"));
				json_object_array_add(arr, v);
				v = arr;
				nfds = c->fds_in == VLU_FDS_PER_NAME ? 2 : 0;
			}
			json_object_object_add(args, a->name, v);
			expect_reject(c, args, nfds, VLU_ERR_INVALID_ARGUMENT, bad_names[k]);
			n++;
		}
		if (a->type == VLU_ARG_NAME_ARRAY) {
			_cleanup_json_ json_object *args = valid_args(c, true);
			json_object *arr = json_object_new_array();
			json_object_array_add(arr, json_object_new_string("dup"));
			json_object_array_add(arr, json_object_new_string("other"));
			json_object_array_add(arr, json_object_new_string("dup"));
			json_object_object_add(args, a->name, arr);
			expect_reject(c, args, c->fds_in == VLU_FDS_PER_NAME ? 3 : 0, VLU_ERR_INVALID_ARGUMENT,
				      "duplicate names");
			n++;
		}
	}
	assert_true(n > 0);
}

/* fd count: none expected but some sent, or a count different from len(names). */
static void test_check_fd_mismatch(void **state)
{
	const struct vlu_command *c = *state;
	_cleanup_json_ json_object *args = valid_args(c, true);
	size_t nfds = valid_nfds(c, args);

	expect_reject(c, args, nfds + 1, VLU_ERR_INVALID_ARGUMENT, "one fd too many");
	if (nfds > 0)
		expect_reject(c, args, nfds - 1, VLU_ERR_INVALID_ARGUMENT, "one fd too few");
	if (c->fds_in == VLU_FDS_PER_NAME)
		expect_reject(c, args, 0, VLU_ERR_INVALID_ARGUMENT, "no fds");
}

static void test_check_too_many_fds(void **state)
{
	const struct vlu_command *c = *state;
	_cleanup_json_ json_object *args = valid_args(c, true);

	expect_reject(c, args, VLU_MAX_FDS_PER_MSG + 1, VLU_ERR_LIMIT_EXCEEDED, "254 fds");
	expect_reject(c, args, 100000, VLU_ERR_LIMIT_EXCEEDED, "100000 fds");
}

static void test_check_names_and_fds_253(void **state)
{
	const struct vlu_command *c = vlu_command_find("fd.store");
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object *arr = json_object_new_array();

	for (int i = 0; i < VLU_MAX_FDS_PER_MSG; i++) {
		char nm[16];
		snprintf(nm, sizeof(nm), "fd%d", i);
		json_object_array_add(arr, json_object_new_string(nm));
	}
	json_object_object_add(args, "names", arr);
	expect_accept(c, args, VLU_MAX_FDS_PER_MSG);
	json_object_array_add(arr, json_object_new_string("one-more"));
	expect_reject(c, args, VLU_MAX_FDS_PER_MSG + 1, VLU_ERR_LIMIT_EXCEEDED, "254 names+fds");
	expect_reject(c, args, VLU_MAX_FDS_PER_MSG, VLU_ERR_INVALID_ARGUMENT, "254 names");
}

static void test_check_int_ranges_huge_numbers(void **state)
{
	/* An INT schema of our own (no foundation command has one yet) against json-c's saturation. */
	static const struct vlu_arg args_schema[] = {
		{ "n", VLU_ARG_INT, true, -5, 1000, "a bounded integer" },
	};
	static const struct vlu_command cmd = {
		.name = "test.int", .args = args_schema, .n_args = 1, .perm = VLU_PERM_ANY, .summary = "test"
	};
	static const char *const bad[] = { "{\"n\":1001}", "{\"n\":-6}", "{\"n\":18446744073709551615}",
					   "{\"n\":-9223372036854775808}", "{\"n\":1.0}", "{\"n\":\"1\"}",
					   "{\"n\":true}", "{\"n\":null}" };
	/* beyond 64 bits: refused by the parser already (json-c would saturate them) */
	static const char *const unparsable[] = { "{\"n\":99999999999999999999999}",
						  "{\"n\":-99999999999999999999999}" };
	static const char *const good[] = { "{\"n\":1000}", "{\"n\":-5}", "{\"n\":0}" };

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_json_ json_object *j = parse_or_die(bad[i]);
		expect_reject(&cmd, j, 0, VLU_ERR_INVALID_ARGUMENT, bad[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(unparsable); i++) {
		json_object *j = NULL;
		assert_int_equal(vlu_json_parse(unparsable[i], strlen(unparsable[i]), 16, &j), -EINVAL);
		assert_null(j);
	}
	{
		/* a tree built in memory with a saturated value still fails the range check */
		_cleanup_json_ json_object *j = json_object_new_object();
		json_object_object_add(j, "n", json_object_new_int64(INT64_MAX));
		expect_reject(&cmd, j, 0, VLU_ERR_INVALID_ARGUMENT, "INT64_MAX");
	}
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		_cleanup_json_ json_object *j = parse_or_die(good[i]);
		expect_accept(&cmd, j, 0);
	}
}

static void test_check_nul_in_string(void **state)
{
	const struct vlu_command *c = vlu_command_find("device.open");
	_cleanup_json_ json_object *j = json_object_new_object();
	json_object *v = NULL;
	static const char txt[] = "{\"device\":\"vdpa0\\u0000/etc/passwd\"}";

	/* the parser refuses it; a tree built in memory is still caught by the checker */
	assert_int_equal(vlu_json_parse(txt, strlen(txt), 16, &v), -EINVAL);
	assert_null(v);
	json_object_object_add(j, "device", json_object_new_string_len("vdpa0\0/etc/passwd", 17));
	expect_reject(c, j, 0, VLU_ERR_INVALID_ARGUMENT, "embedded NUL");
}

/* ------------------------------------------------------------ the event filter */

/* events.subscribe {"events": <json>}: refused (InvalidArgument, a description naming want), or accepted */
static void subscribe_check(const char *json, bool ok, const char *want)
{
	const struct vlu_command *c = vlu_command_find("events.subscribe");
	_cleanup_json_ json_object *args = NULL;
	enum vlu_error_class cls = _VLU_ERR_MAX;
	char err[256] = "";
	int r;

	assert_int_equal(vlu_json_parse(json, strlen(json), 16, &args), 0);
	r = vlu_command_check(c, args, 0, &cls, err, sizeof(err));
	if (ok) {
		if (r < 0)
			fail_msg("refused %s: %s", json, err);
		return;
	}
	if (r >= 0)
		fail_msg("accepted %s", json);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(cls, VLU_ERR_INVALID_ARGUMENT);
	if (!strstr(err, want))
		fail_msg("%s: the description '%s' does not say '%s'", json, err, want);
}

static void test_events_filter_check(void **state)
{
	char buf[2048];

	subscribe_check("{\"events\":[\"update.completed\"]}", true, NULL);
	subscribe_check("{\"events\":[\"update.completed\",\"update.rolled-back\"],\"instance\":\"vm0\"}", true, NULL);
	subscribe_check("{\"events\":[\"fd.stored\",\"fd.stored\"]}", true, NULL); /* duplicates: harmless */
	subscribe_check("{\"events\":[]}", false, "1..16 entries");
	subscribe_check("{\"events\":\"update.completed\"}", false, "must be of type [event]");
	subscribe_check("{\"events\":{}}", false, "must be of type [event]");
	subscribe_check("{\"events\":null}", false, "must be of type [event]");
	subscribe_check("{\"events\":[\"update.completed\",7]}", false, "entry 1 is not a string");
	subscribe_check("{\"events\":[[\"update.completed\"]]}", false, "entry 0 is not a string");
	subscribe_check("{\"events\":[\"update.completed\",null]}", false, "entry 1 is not a string");
	/* a typo must not filter out everything silently */
	subscribe_check("{\"events\":[\"update.completed\",\"update.complete\"]}", false,
			"entry 1 ('update.complete') is not a known event");
	subscribe_check("{\"events\":[\"Update.Completed\"]}", false, "is not a known event");
	subscribe_check("{\"events\":[\"\"]}", false, "entry 0 ('') is not a known event");
	subscribe_check("{\"events\":[\"update.*\"]}", false, "is not a known event");
	/* 16 names: the limit; 17: refused, even when every one is known */
	for (int n = 16; n <= 17; n++) {
		size_t len = (size_t)snprintf(buf, sizeof(buf), "{\"events\":[");

		for (int i = 0; i < n; i++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\"%s\"", i ? "," : "",
						vlu_event_names[i % _VLU_EV_MAX]);
		snprintf(buf + len, sizeof(buf) - len, "]}");
		subscribe_check(buf, n == 16, "1..16 entries");
	}
}

static void test_events_mask(void **state)
{
	_cleanup_json_ json_object *a = json_object_new_array();
	vlu_event_mask m = 0xdead, keep = 0xdead;
	char err[256];

	/* one table: ids and names agree, names are unique and look like the wire's */
	for (int i = 0; i < _VLU_EV_MAX; i++) {
		assert_non_null(vlu_event_names[i]);
		assert_int_equal(vlu_event_find(vlu_event_names[i]), i);
		assert_non_null(strchr(vlu_event_names[i], '.'));
		for (int k = 0; k < i; k++)
			assert_string_not_equal(vlu_event_names[k], vlu_event_names[i]);
	}
	assert_int_equal(vlu_event_find("no.such-event"), -ENOENT);
	assert_int_equal(vlu_event_find(NULL), -ENOENT);
	assert_int_equal(vlu_event_find("update.completed "), -ENOENT);
	assert_true(_VLU_EV_MAX <= 64);
	assert_int_equal(__builtin_popcountll(VLU_EVENTS_ALL), _VLU_EV_MAX);

	/* the bits are exactly the names given, duplicates folded */
	json_object_array_add(a, json_object_new_string("update.completed"));
	json_object_array_add(a, json_object_new_string("update.rolled-back"));
	json_object_array_add(a, json_object_new_string("update.completed"));
	assert_int_equal(vlu_event_mask_from_json(a, &m, err, sizeof(err)), 0);
	assert_true(m == (VLU_EVENT_BIT(VLU_EV_UPDATE_COMPLETED) | VLU_EVENT_BIT(VLU_EV_UPDATE_ROLLED_BACK)));
	assert_false(m & VLU_EVENT_BIT(VLU_EV_UPDATE_PHASE));
	assert_false(m & VLU_EVENT_BIT(VLU_EV_UPDATE_STARTED));

	/* a refusal leaves the output alone */
	json_object_array_add(a, json_object_new_string("update.phases"));
	assert_int_equal(vlu_event_mask_from_json(a, &keep, err, sizeof(err)), -EINVAL);
	assert_true(keep == 0xdead);
	assert_non_null(strstr(err, "entry 3 ('update.phases')"));

	/* every event at its own bit: 16 first names, then the rest */
	for (int i = 0; i < _VLU_EV_MAX; i += VLU_EVENTS_FILTER_MAX) {
		_cleanup_json_ json_object *part = json_object_new_array();
		vlu_event_mask pm = 0, want = 0;

		for (int k = i; k < _VLU_EV_MAX && k < i + VLU_EVENTS_FILTER_MAX; k++) {
			json_object_array_add(part, json_object_new_string(vlu_event_names[k]));
			want |= VLU_EVENT_BIT(k);
		}
		assert_int_equal(vlu_event_mask_from_json(part, &pm, err, sizeof(err)), 0);
		assert_true(pm == want);
	}
}

/* ------------------------------------------------------------ names */

static void test_name_rules(void **state)
{
	char longname[VLU_NAME_MAX + 2];

	assert_true(vlu_name_valid("a"));
	assert_true(vlu_name_valid("vm0"));
	assert_true(vlu_name_valid("guest-ram.0"));
	assert_true(vlu_name_valid("net:rx_kick-1"));
	assert_true(vlu_name_valid("A-Z.a_z:09"));
	memset(longname, 'n', VLU_NAME_MAX);
	longname[VLU_NAME_MAX] = '\0';
	assert_true(vlu_name_valid(longname));
	longname[VLU_NAME_MAX] = 'n';
	longname[VLU_NAME_MAX + 1] = '\0';
	assert_false(vlu_name_valid(longname));
	assert_false(vlu_name_valid(""));
	assert_false(vlu_name_valid(NULL));
	assert_false(vlu_name_valid("a b"));
	assert_false(vlu_name_valid("a/b"));
	assert_false(vlu_name_valid("a\nb"));
	assert_false(vlu_name_valid("é"));
	assert_false(vlu_name_valid("a=b"));
}

/* ------------------------------------------------------------ error classes */

static void test_error_classes(void **state)
{
	static const char *const names[_VLU_ERR_MAX] = {
		"GenericError", "CommandNotFound", "InvalidArgument", "NotNegotiated", "PermissionDenied", "NotFound",
		"Busy",		"LimitExceeded",   "DeviceError",     "Unsupported",   "Timeout",	       "Internal",
	};

	for (int i = 0; i < _VLU_ERR_MAX; i++) {
		assert_string_equal(vlu_error_class_name(i), names[i]);
		assert_int_equal(vlu_error_class_from_name(names[i]), i);
	}
	assert_int_equal(vlu_error_class_from_name("NoSuchClass"), -EINVAL);
	assert_int_equal(vlu_error_class_from_name("genericerror"), -EINVAL);
	assert_int_equal(vlu_error_class_from_name(NULL), -EINVAL);
	assert_string_equal(vlu_error_class_name(_VLU_ERR_MAX), "GenericError");
}

/* ------------------------------------------------------------ framing */

static void test_frame_roundtrip_memfd_eventfd(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF, mfd = -EBADF, efd = -EBADF;
	int sv[2], got[8] = { -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF };
	char buf[256];
	size_t nfds = 99;
	const char *msg = "{\"execute\":\"fd.store\",\"arguments\":{\"names\":[\"ram\",\"kick\"]},\"id\":1}";
	uint64_t v;

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	mfd = memfd_create("test-ram", MFD_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC);
	assert_true(mfd >= 0 && efd >= 0);
	assert_int_equal(ftruncate(mfd, 4096), 0);

	int fds[2] = { mfd, efd };
	assert_int_equal(vlu_msg_send(s0, msg, strlen(msg), fds, 2), 0);
	/* sending never closes ours */
	assert_true(fcntl(mfd, F_GETFD) >= 0 && fcntl(efd, F_GETFD) >= 0);

	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	assert_int_equal(nfds, 2);
	assert_same_file(got[0], mfd);
	assert_same_file(got[1], efd);
	assert_true(got[0] != mfd && got[1] != efd);
	/* MSG_CMSG_CLOEXEC */
	assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(got[1], F_GETFD) & FD_CLOEXEC);

	/* same open file: data through one is seen through the other */
	assert_int_equal(pwrite(got[0], "guest", 5, 100), 5);
	assert_int_equal(pread(mfd, buf, 5, 100), 5);
	assert_memory_equal(buf, "guest", 5);
	v = 7;
	assert_int_equal(write(efd, &v, sizeof(v)), sizeof(v));
	v = 0;
	assert_int_equal(read(got[1], &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 7);
	close_many(got, nfds);

	/* a message without fds */
	assert_int_equal(vlu_msg_send(s1, "{}", 2, NULL, 0), 0);
	nfds = 99;
	assert_int_equal(vlu_msg_recv(s0, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds), 2);
	assert_int_equal(nfds, 0);
}

static void test_frame_max_fds(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF, efd = -EBADF;
	int sv[2], fds[VLU_MAX_FDS_PER_MSG + 1], got[VLU_MAX_FDS_PER_MSG];
	size_t nfds = 0, before;
	char buf[64];

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	efd = eventfd(0, EFD_CLOEXEC);
	assert_true(efd >= 0);
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		fds[i] = efd; /* the same fd many times is fine for SCM_RIGHTS */

	before = count_open_fds();
	assert_int_equal(vlu_msg_send(s0, "{}", 2, fds, VLU_MAX_FDS_PER_MSG), 0);
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds), 2);
	assert_int_equal(nfds, VLU_MAX_FDS_PER_MSG);
	for (size_t i = 0; i < nfds; i++)
		assert_same_file(got[i], efd);
	close_many(got, nfds);
	assert_int_equal(count_open_fds(), before);

	/* 254 is refused before anything is sent */
	assert_int_equal(vlu_msg_send(s0, "{}", 2, fds, VLU_MAX_FDS_PER_MSG + 1), -EMSGSIZE);
	/* bad fds are refused by us, not by the kernel halfway */
	fds[3] = -1;
	assert_int_equal(vlu_msg_send(s0, "{}", 2, fds, 4), -EBADF);
	/* nothing was queued */
	assert_int_equal(fcntl(s1, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds), -EAGAIN);
}

static void test_frame_truncated_message(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF, mfd = -EBADF;
	int sv[2], got[4];
	size_t nfds = 77, before;
	char small[8];
	const char *msg = "{\"execute\":\"status\"}";

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	mfd = memfd_create("t", MFD_CLOEXEC);
	assert_true(mfd >= 0);

	before = count_open_fds();
	int fds[1] = { mfd };
	assert_int_equal(vlu_msg_send(s0, msg, strlen(msg), fds, 1), 0);
	assert_int_equal(vlu_msg_recv(s1, small, sizeof(small), got, ELEMENTSOF(got), &nfds), -EMSGSIZE);
	assert_int_equal(nfds, 77);			 /* not written on failure */
	assert_int_equal(count_open_fds(), before); /* the received fd was closed */

	/* the next message is intact: truncation affected only that one */
	assert_int_equal(vlu_msg_send(s0, "{}", 2, NULL, 0), 0);
	assert_int_equal(vlu_msg_recv(s1, small, sizeof(small), got, ELEMENTSOF(got), &nfds), 2);
}

static void test_frame_truncated_fds(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF, efd = -EBADF;
	int sv[2], fds[5], got[2];
	size_t nfds = 77, before;
	char buf[64];

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	efd = eventfd(0, EFD_CLOEXEC);
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		fds[i] = efd;

	before = count_open_fds();
	assert_int_equal(vlu_msg_send(s0, "{}", 2, fds, 5), 0);
	/* the receiver takes at most 2: MSG_CTRUNC, everything dropped */
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), got, 2, &nfds), -EMSGSIZE);
	assert_int_equal(nfds, 77);
	assert_int_equal(count_open_fds(), before);

	/* a receiver taking no fds at all */
	assert_int_equal(vlu_msg_send(s0, "{}", 2, fds, 1), 0);
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), NULL, 0, NULL), -EMSGSIZE);
	assert_int_equal(count_open_fds(), before);
}

static void test_frame_oversize(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF;
	_cleanup_free_ char *big = NULL, *rbuf = NULL;
	int sv[2];
	size_t nfds;

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	big = malloc(VLU_MAX_MSG_BYTES + 2);
	rbuf = malloc(VLU_DEFAULT_MAX_MSG_BYTES + 1);
	assert_non_null(big);
	assert_non_null(rbuf);
	memset(big, ' ', VLU_MAX_MSG_BYTES + 1);
	big[0] = '{';
	big[VLU_DEFAULT_MAX_MSG_BYTES - 1] = '}';

	/* above the hard ceiling: refused by the sender */
	assert_int_equal(vlu_msg_send(s0, big, VLU_MAX_MSG_BYTES + 1, NULL, 0), -EMSGSIZE);
	/* zero-length messages would read as EOF: refused */
	assert_int_equal(vlu_msg_send(s0, big, 0, NULL, 0), -EINVAL);

	/* exactly the default limit: fits a receive buffer of limit + 1 */
	assert_int_equal(vlu_msg_send(s0, big, VLU_DEFAULT_MAX_MSG_BYTES, NULL, 0), 0);
	assert_int_equal(vlu_msg_recv(s1, rbuf, VLU_DEFAULT_MAX_MSG_BYTES + 1, NULL, 0, &nfds),
			 VLU_DEFAULT_MAX_MSG_BYTES);
	_cleanup_json_ json_object *j = NULL;
	assert_int_equal(vlu_json_parse(rbuf, VLU_DEFAULT_MAX_MSG_BYTES, 0, &j), 0);

	/* one byte more than the receiver's limit: -EMSGSIZE, and the stream continues */
	big[VLU_DEFAULT_MAX_MSG_BYTES] = '}';
	big[VLU_DEFAULT_MAX_MSG_BYTES - 1] = ' ';
	assert_int_equal(vlu_msg_send(s0, big, VLU_DEFAULT_MAX_MSG_BYTES + 1, NULL, 0), 0);
	assert_int_equal(vlu_msg_recv(s1, rbuf, VLU_DEFAULT_MAX_MSG_BYTES + 1, NULL, 0, &nfds), -EMSGSIZE);
	assert_int_equal(vlu_msg_send(s0, "{}", 2, NULL, 0), 0);
	assert_int_equal(vlu_msg_recv(s1, rbuf, VLU_DEFAULT_MAX_MSG_BYTES + 1, NULL, 0, &nfds), 2);
}

static void test_frame_eof_and_eagain(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF;
	int sv[2];
	char buf[16];
	size_t nfds;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	s0 = sv[0], s1 = sv[1];
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), NULL, 0, &nfds), -EAGAIN);
	s0 = safe_close(s0);
	assert_int_equal(vlu_msg_recv(s1, buf, sizeof(buf), NULL, 0, &nfds), 0);
	/* sending to a closed peer: -EPIPE, and no SIGPIPE (we would be dead) */
	assert_int_equal(vlu_msg_send(s1, "{}", 2, NULL, 0), -EPIPE);
	assert_int_equal(vlu_msg_recv(-EBADF, buf, sizeof(buf), NULL, 0, &nfds), -EBADF);
	assert_int_equal(vlu_msg_recv(s1, buf, 1, NULL, 0, &nfds), -EINVAL);
}

static void test_frame_nonblocking_full(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF;
	int sv[2], r = 0;
	char msg[4096];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	s0 = sv[0], s1 = sv[1];
	memset(msg, ' ', sizeof(msg));
	msg[0] = '{';
	msg[sizeof(msg) - 1] = '}';
	for (int i = 0; i < 100000 && r == 0; i++)
		r = vlu_msg_send(s0, msg, sizeof(msg), NULL, 0);
	assert_int_equal(r, -EAGAIN);
}

/* ------------------------------------------------------------ JSON parsing */

static char *nested(int depth)
{
	/* {"a":{"a":...{}...}} with `depth` objects */
	size_t len = (size_t)depth * 6 + 1;
	char *s = malloc(len + 1), *p = s;

	assert_non_null(s);
	for (int i = 0; i < depth - 1; i++)
		p += sprintf(p, "{\"a\":");
	p += sprintf(p, "{}");
	for (int i = 0; i < depth - 1; i++)
		*p++ = '}';
	*p = '\0';
	return s;
}

static void test_parse_depth_limit(void **state)
{
	_cleanup_free_ char *ok16 = nested(VLU_DEFAULT_MAX_DEPTH), *bad17 = nested(VLU_DEFAULT_MAX_DEPTH + 1);
	_cleanup_free_ char *deep = nested(10000);
	json_object *j = NULL;

	assert_int_equal(vlu_json_parse(ok16, strlen(ok16), VLU_DEFAULT_MAX_DEPTH, &j), 0);
	json_object_put(j);
	j = NULL;
	assert_int_equal(vlu_json_parse(bad17, strlen(bad17), VLU_DEFAULT_MAX_DEPTH, &j), -E2BIG);
	assert_null(j);
	assert_int_equal(vlu_json_parse(deep, strlen(deep), VLU_DEFAULT_MAX_DEPTH, &j), -E2BIG);
	/* 0 = default depth */
	assert_int_equal(vlu_json_parse(bad17, strlen(bad17), 0, &j), -E2BIG);
	/* depth = nesting level of values (json-c's definition): the top-level object is level 1, each value
	 * inside a container one level deeper, scalars included.  Here 1 sits at level 5. */
	const char *arr = "{\"a\":[[[1]]]}";
	assert_int_equal(vlu_json_parse(arr, strlen(arr), 4, &j), -E2BIG);
	assert_int_equal(vlu_json_parse(arr, strlen(arr), 5, &j), 0);
	json_object_put(j);
}

static void test_parse_failures(void **state)
{
	static const char *const bad[] = {
		"",
		" ",
		"{",
		"}",
		"{\"a\":1",
		"{} {}",
		"{}x",
		"{}\n{}",
		"[]",
		"[{}]",
		"1",
		"\"str\"",
		"null",
		"true",
		"{\"a\":1,}",
		"{\"a\"}",
		"{a:1}",
		"{\"a\":01}",
		"{\"a\":\"\xff\xfe\"}",
		"{\"a\":\"\xc3\"}",
		"{\"a\":tru}",
		"{\"a\":\"unterminated}",
	};
	json_object *j = NULL;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = vlu_json_parse(bad[i], strlen(bad[i]), VLU_DEFAULT_MAX_DEPTH, &j);
		if (r != -EINVAL)
			fail_msg("parse of '%s' gave %d, want -EINVAL", bad[i], r);
		assert_null(j);
	}
	/* an embedded NUL byte */
	assert_int_equal(vlu_json_parse("{}\0", 3, 16, &j), -EINVAL);
	assert_int_equal(vlu_json_parse("{\"a\":\"\0\"}", 9, 16, &j), -EINVAL);
	assert_int_equal(vlu_json_parse(NULL, 3, 16, &j), -EINVAL);
	assert_null(j);

	/* accepted: trailing/leading whitespace, unicode escapes */
	static const char *const good[] = { "{}", " {}\n", "\t{\"a\":[1,2,{\"b\":null}]}\r\n",
					    "{\"a\":\"\\u00e9\\n\"}", "{\"\xc3\xa9\":1}" };
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		int r = vlu_json_parse(good[i], strlen(good[i]), VLU_DEFAULT_MAX_DEPTH, &j);
		if (r != 0)
			fail_msg("parse of '%s' gave %d, want 0", good[i], r);
		assert_true(json_object_is_type(j, json_type_object));
		json_object_put(j);
		j = NULL;
	}
}

static void test_dump_roundtrip(void **state)
{
	_cleanup_json_ json_object *j = parse_or_die("{ \"a\" : [ 1, \"x/y\" ], \"b\" : { } }");
	size_t len = 0;
	const char *s = vlu_json_dump(j, &len);

	assert_string_equal(s, "{\"a\":[1,\"x/y\"],\"b\":{}}");
	assert_int_equal(len, strlen(s));
}

/* ------------------------------------------------------------ requests */

static void test_request_parse(void **state)
{
	const char *exec = NULL;
	json_object *args = NULL, *id = NULL;
	char err[256];

	{
		_cleanup_json_ json_object *m =
			parse_or_die("{\"execute\":\"fd.list\",\"arguments\":{\"instance\":\"vm0\"},\"id\":\"abc\"}");
		assert_int_equal(vlu_request_parse(m, &exec, &args, &id, err, sizeof(err)), 0);
		assert_string_equal(exec, "fd.list");
		assert_non_null(args);
		assert_string_equal(json_object_get_string(json_object_object_get(args, "instance")), "vm0");
		assert_string_equal(json_object_get_string(id), "abc");
		assert_ptr_equal(vlu_request_id(m), id);
	}
	{
		_cleanup_json_ json_object *m = parse_or_die("{\"execute\":\"status\"}");
		assert_int_equal(vlu_request_parse(m, &exec, &args, &id, err, sizeof(err)), 0);
		assert_string_equal(exec, "status");
		assert_null(args);
		assert_null(id);
		assert_null(vlu_request_id(m));
	}
	{
		/* a JSON null id is no id */
		_cleanup_json_ json_object *m = parse_or_die("{\"id\":null,\"execute\":\"status\"}");
		assert_int_equal(vlu_request_parse(m, &exec, &args, &id, err, sizeof(err)), 0);
		assert_null(id);
		assert_null(vlu_request_id(m));
	}

	static const char *const bad[] = {
		"{}",
		"{\"id\":1}",
		"{\"execute\":1,\"id\":2}",
		"{\"execute\":null}",
		"{\"execute\":[\"status\"]}",
		"{\"execute\":\"status\",\"arguments\":[]}",
		"{\"execute\":\"status\",\"arguments\":\"x\"}",
		"{\"execute\":\"status\",\"arguments\":null}",
		"{\"execute\":\"status\",\"extra\":1}",
		"{\"execute\":\"status\",\"Execute\":\"status\"}",
		/* ids: strings or integers within int64 only */
		"{\"execute\":\"status\",\"id\":{\"x\":[1]}}",
		"{\"execute\":\"status\",\"id\":[1]}",
		"{\"execute\":\"status\",\"id\":true}",
		"{\"execute\":\"status\",\"id\":1.5}",
		"{\"execute\":\"status\",\"id\":1e3}",
		"{\"execute\":\"status\",\"id\":9223372036854775808}",
		"{\"execute\":\"status\",\"id\":18446744073709551615}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_json_ json_object *m = parse_or_die(bad[i]);
		const char *e2 = "unchanged";
		err[0] = '\0';
		if (vlu_request_parse(m, &e2, &args, &id, err, sizeof(err)) != -EINVAL)
			fail_msg("request '%s' accepted", bad[i]);
		assert_string_equal(e2, "unchanged");
		assert_true(strlen(err) > 0);
		if (strstr(bad[i], "\"id\":") && !strstr(bad[i], "\"id\":1}") && !strstr(bad[i], "\"id\":2}")) {
			/* a refused id is not echoed */
			assert_null(vlu_request_id(m));
			assert_non_null(strstr(err, "'id' must be"));
		}
	}
	{
		/* NUL in "execute" in a tree built in memory (the parser refuses \u0000) */
		_cleanup_json_ json_object *m = json_object_new_object();
		json_object_object_add(m, "execute", json_object_new_string_len("sta\0tus", 7));
		assert_int_equal(vlu_request_parse(m, &exec, &args, &id, err, sizeof(err)), -EINVAL);
	}
	{
		/* the id is still available for the error reply */
		_cleanup_json_ json_object *m = parse_or_die("{\"execute\":7,\"id\":42}");
		assert_int_equal(vlu_request_parse(m, NULL, NULL, NULL, NULL, 0), -EINVAL);
		assert_int_equal(json_object_get_int(vlu_request_id(m)), 42);
	}
}

/* ------------------------------------------------------------ builders */

static void test_builders(void **state)
{
	_cleanup_json_ json_object *id = json_object_new_string("req-1");
	json_object *v;

	{
		json_object *ret = json_object_new_object();
		json_object_object_add(ret, "x", json_object_new_int(5));
		_cleanup_json_ json_object *r = vlu_reply_return(ret, id);
		assert_string_equal(vlu_json_dump(r, NULL), "{\"return\":{\"x\":5},\"id\":\"req-1\"}");
	}
	{
		_cleanup_json_ json_object *r = vlu_reply_return(NULL, NULL);
		assert_string_equal(vlu_json_dump(r, NULL), "{\"return\":{}}");
	}
	{
		_cleanup_json_ json_object *r = vlu_reply_error(VLU_ERR_NOT_FOUND, "no such fd 'x'", id);
		assert_string_equal(vlu_json_dump(r, NULL),
				    "{\"error\":{\"class\":\"NotFound\",\"desc\":\"no such fd 'x'\"},\"id\":\"req-1\"}");
	}
	{
		/* a description cut in the middle of a UTF-8 character (as "%.64s" does) is repaired: replies
		 * are always valid UTF-8, so a strict client can parse them */
		_cleanup_json_ json_object *r = vlu_reply_error(VLU_ERR_INVALID_ARGUMENT, "key 'ab\xc3' \xff\xed\xa0\x80 \xc3\xa9", NULL);
		_cleanup_json_ json_object *back = NULL;
		size_t len;
		const char *txt = vlu_json_dump(r, &len);
		assert_int_equal(vlu_json_parse(txt, len, 16, &back), 0);
		assert_string_equal(json_object_get_string(json_object_object_get(json_object_object_get(back, "error"), "desc")),
				    "key 'ab?' ???? \xc3\xa9");
	}
	/* id is borrowed: still ours */
	assert_string_equal(json_object_get_string(id), "req-1");
	{
		struct timespec before, after;
		clock_gettime(CLOCK_REALTIME, &before);
		json_object *data = json_object_new_object();
		json_object_object_add(data, "instance", json_object_new_string("vm0"));
		_cleanup_json_ json_object *ev = vlu_event_new("instance.registered", data);
		clock_gettime(CLOCK_REALTIME, &after);
		assert_non_null(ev);
		assert_true(json_object_object_get_ex(ev, "event", &v));
		assert_string_equal(json_object_get_string(v), "instance.registered");
		assert_true(json_object_object_get_ex(ev, "data", &v));
		assert_string_equal(json_object_get_string(json_object_object_get(v, "instance")), "vm0");
		assert_true(json_object_object_get_ex(ev, "timestamp", &v));
		int64_t s = json_object_get_int64(json_object_object_get(v, "seconds"));
		int64_t us = json_object_get_int64(json_object_object_get(v, "microseconds"));
		assert_true(us >= 0 && us < 1000000);
		int64_t t = s * 1000000 + us;
		assert_true(t >= (int64_t)before.tv_sec * 1000000 + before.tv_nsec / 1000);
		assert_true(t <= (int64_t)after.tv_sec * 1000000 + after.tv_nsec / 1000);
		assert_int_equal(json_object_object_length(ev), 3);
	}
	{
		_cleanup_json_ json_object *ev = vlu_event_new("daemon.started", NULL);
		assert_true(json_object_object_get_ex(ev, "data", &v));
		assert_true(json_object_is_type(v, json_type_object));
	}
	{
		static const char *const caps[] = { "fd-store", "live-update", NULL };
		_cleanup_json_ json_object *g = vlu_greeting_new("vlud 0.1.0", caps);
		assert_string_equal(vlu_json_dump(g, NULL),
				    "{\"VLU\":{\"version\":{\"major\":1,\"minor\":0,\"micro\":0,\"package\":\"vlud 0.1.0\"},"
				    "\"capabilities\":[\"fd-store\",\"live-update\"]}}");
		_cleanup_json_ json_object *g2 = vlu_greeting_new("x", NULL);
		assert_string_equal(vlu_json_dump(g2, NULL),
				    "{\"VLU\":{\"version\":{\"major\":1,\"minor\":0,\"micro\":0,\"package\":\"x\"},"
				    "\"capabilities\":[]}}");
	}
}

/* A whole request through the socket and the checker, as the daemon does it. */
static void test_request_over_socket(void **state)
{
	_cleanup_close_ int s0 = -EBADF, s1 = -EBADF, e1 = -EBADF, e2 = -EBADF;
	int sv[2], got[VLU_MAX_FDS_PER_MSG];
	char buf[VLU_DEFAULT_MAX_MSG_BYTES + 1], err[256];
	size_t nfds = 0;
	const char *exec;
	json_object *args, *id;
	enum vlu_error_class cls;
	ssize_t n;

	seqpacket_pair(sv);
	s0 = sv[0], s1 = sv[1];
	e1 = eventfd(0, EFD_CLOEXEC);
	e2 = eventfd(0, EFD_CLOEXEC);
	const char *req = "{\"execute\":\"fd.store\",\"arguments\":{\"names\":[\"kick0\",\"call0\"]},\"id\":9}";
	int fds[2] = { e1, e2 };
	assert_int_equal(vlu_msg_send(s0, req, strlen(req), fds, 2), 0);
	n = vlu_msg_recv(s1, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds);
	assert_int_equal(n, (ssize_t)strlen(req));
	_cleanup_json_ json_object *m = NULL;
	assert_int_equal(vlu_json_parse(buf, (size_t)n, VLU_DEFAULT_MAX_DEPTH, &m), 0);
	assert_int_equal(vlu_request_parse(m, &exec, &args, &id, err, sizeof(err)), 0);
	const struct vlu_command *c = vlu_command_find(exec);
	assert_non_null(c);
	assert_int_equal(c->id, VLU_CMD_FD_STORE);
	assert_int_equal(vlu_command_check(c, args, nfds, &cls, err, sizeof(err)), 0);
	assert_same_file(got[0], e1);
	assert_same_file(got[1], e2);
	close_many(got, nfds);

	/* same request with one fd only: rejected before any side effect */
	assert_int_equal(vlu_msg_send(s0, req, strlen(req), fds, 1), 0);
	n = vlu_msg_recv(s1, buf, sizeof(buf), got, ELEMENTSOF(got), &nfds);
	assert_true(n > 0);
	assert_int_equal(nfds, 1);
	assert_int_equal(vlu_command_check(c, args, nfds, &cls, err, sizeof(err)), -EINVAL);
	assert_int_equal(cls, VLU_ERR_INVALID_ARGUMENT);
	close_many(got, nfds);

	/* reply travels back with the id echoed */
	_cleanup_json_ json_object *reply = vlu_reply_error(cls, err, id);
	size_t rlen;
	const char *rs = vlu_json_dump(reply, &rlen);
	assert_int_equal(vlu_msg_send(s1, rs, rlen, NULL, 0), 0);
	n = vlu_msg_recv(s0, buf, sizeof(buf), NULL, 0, &nfds);
	assert_int_equal(n, (ssize_t)rlen);
	_cleanup_json_ json_object *back = NULL;
	assert_int_equal(vlu_json_parse(buf, (size_t)n, 16, &back), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(back, "id")), 9);
}

/* ------------------------------------------------------------ strict input */

struct strict_row {
	const char *name;
	const char *text; /* a whole request */
	size_t len;	  /* 0: strlen(text) */
	const char *why;  /* expected in the description */
};

#define REQ(x) "{\"execute\":\"status\",\"id\":" x "}"
#define ARG(x) "{\"execute\":\"fd.list\",\"arguments\":{\"instance\":" x "},\"id\":1}"

/* each probe of the hostile-tenant report, and its neighbours */
static const struct strict_row strict_bad[] = {
	{ "overlong-2", REQ("\"\xc0\x80\""), 0, "invalid UTF-8" },
	{ "overlong-2-slash", REQ("\"\xc0\xaf\""), 0, "invalid UTF-8" },
	{ "overlong-3", REQ("\"\xe0\x80\xaf\""), 0, "invalid UTF-8" },
	{ "overlong-4", REQ("\"\xf0\x80\x80\xaf\""), 0, "invalid UTF-8" },
	{ "surrogate-utf8-high", REQ("\"\xed\xa0\x80\""), 0, "invalid UTF-8" },
	{ "surrogate-utf8-low", ARG("\"\xed\xbf\xbf\""), 0, "invalid UTF-8" },
	{ "above-10ffff", REQ("\"\xf4\x90\x80\x80\""), 0, "invalid UTF-8" },
	{ "lead-f5", REQ("\"\xf5\x80\x80\x80\""), 0, "invalid UTF-8" },
	{ "lead-ff", ARG("\"\xff\""), 0, "invalid UTF-8" },
	{ "lone-continuation", ARG("\"a\x80\""), 0, "invalid UTF-8" },
	{ "cut-character", ARG("\"\xe2\x82\""), 0, "invalid UTF-8" },
	{ "invalid-utf8-in-key", "{\"execute\":\"status\",\"\xc3\":1}", 0, "invalid UTF-8" },
	{ "nul-in-member-name", "{\"execute\\u0000junk\":\"status\"}", 0, "NUL" },
	{ "nul-in-argument-name", "{\"execute\":\"fd.list\",\"arguments\":{\"instance\\u0000x\":\"vm0\"}}", 0, "NUL" },
	{ "nul-in-string", ARG("\"vm0\\u0000x\""), 0, "NUL" },
	{ "nul-in-id", REQ("\"a\\u0000\""), 0, "NUL" },
	{ "nul-raw-byte", "{\"execute\":\"status\",\"id\":\"a\0\"}", 28, "control character" },
	{ "exp-overflow", REQ("1e999"), 0, "not finite" },
	{ "exp-overflow-neg", ARG("-1e999"), 0, "not finite" },
	{ "mantissa-overflow", ARG("1797693134862315807937289714053034150799341327710524" /* ~1.8e308 */
				   "2867340002326617599213818768226218373913744823296688658513710891296357"
				   "6405024302124818431427893806009611212036019542727049254611012958009683"
				   "6452087342399233001254806389226848327869096839542788474036946097489802"
				   "4813856787099624706281082233120399584707015208466283072219244779315002"
				   "60.0"), 0, "not finite" },
	{ "infinity", REQ("Infinity"), 0, "value expected" },
	{ "minus-infinity", ARG("-Infinity"), 0, "invalid number" },
	{ "nan", ARG("NaN"), 0, "value expected" },
	{ "raw-tab", REQ("\"a\tb\""), 0, "control character U+0009" },
	{ "raw-newline", ARG("\"a\nb\""), 0, "control character U+000A" },
	{ "raw-1f-in-key", "{\"execute\":\"status\",\"a\x1f\":1}", 0, "control character" },
	{ "lone-high-surrogate", REQ("\"\\ud800\""), 0, "surrogate" },
	{ "lone-low-surrogate", REQ("\"\\udc00\""), 0, "surrogate" },
	{ "reversed-surrogates", ARG("\"\\udc00\\ud800\""), 0, "surrogate" },
	{ "high-then-bmp", ARG("\"\\ud800\\u0041\""), 0, "surrogate" },
	{ "high-at-end", ARG("\"x\\ud83d\""), 0, "surrogate" },
	{ "id-beyond-uint64", REQ("18446744073709551616"), 0, "64-bit range" },
	{ "id-below-int64", REQ("-9223372036854775809"), 0, "64-bit range" },
	{ "id-huge", REQ("99999999999999999999"), 0, "64-bit range" },
	{ "single-quotes", "{'execute':'status'}", 0, "member name" },
	{ "bad-escape", ARG("\"\\x41\""), 0, "invalid escape" },
	{ "short-u-escape", ARG("\"\\u12\""), 0, "\\u escape" },
	{ "leading-plus", REQ("+1"), 0, "value expected" },
	{ "trailing-comma", "{\"execute\":\"status\",}", 0, "member name" },
	{ "not-an-object", "[\"execute\"]", 0, "one JSON object" },
	{ "trailing-data", "{\"execute\":\"status\"} x", 0, "trailing data" },
};

static void test_strict_bad(void **state)
{
	const struct strict_row *row = *state;
	size_t len = row->len ? row->len : strlen(row->text);
	char err[256] = "";
	json_object *j = NULL;

	assert_int_equal(vlu_json_check(row->text, len, 16, err, sizeof(err)), -EINVAL);
	if (!strstr(err, row->why))
		fail_msg("%s: description '%s' does not say '%s'", row->name, err, row->why);
	assert_non_null(strstr(err, "at byte "));
	assert_true(vlu_utf8_valid(err, strlen(err)));
	err[0] = '\0';
	assert_int_equal(vlu_json_parse_ex(row->text, len, 16, &j, err, sizeof(err)), -EINVAL);
	assert_null(j);
	assert_non_null(strstr(err, row->why));
	assert_int_equal(vlu_json_parse(row->text, len, 16, &j), -EINVAL);
	assert_null(j);
}

/* valid edge cases: accepted, and the value is what was sent */
static const struct strict_row strict_good[] = {
	{ "utf8-2", ARG("\"\xc3\xa9\""), 0, "\xc3\xa9" },
	{ "utf8-3-max-before-surrogates", ARG("\"\xed\x9f\xbf\""), 0, "\xed\x9f\xbf" },
	{ "utf8-3-after-surrogates", ARG("\"\xee\x80\x80\""), 0, "\xee\x80\x80" },
	{ "utf8-3-fffd", ARG("\"\xef\xbf\xbd\""), 0, "\xef\xbf\xbd" },
	{ "utf8-4", ARG("\"\xf0\x9f\x98\x80\""), 0, "\xf0\x9f\x98\x80" },
	{ "utf8-4-first", ARG("\"\xf0\x90\x80\x80\""), 0, "\xf0\x90\x80\x80" },
	{ "utf8-4-10ffff", ARG("\"\xf4\x8f\xbf\xbf\""), 0, "\xf4\x8f\xbf\xbf" },
	{ "escaped-pair", ARG("\"\\ud83d\\ude00\""), 0, "\xf0\x9f\x98\x80" },
	{ "escaped-pair-10ffff", ARG("\"\\uDBFF\\uDFFF\""), 0, "\xf4\x8f\xbf\xbf" },
	{ "escaped-bmp", ARG("\"\\u00e9\\u20ac\""), 0, "\xc3\xa9\xe2\x82\xac" },
	{ "escaped-controls", ARG("\"\\t\\n\\u0001\\u001f\""), 0, "\t\n\x01\x1f" },
	{ "escaped-quote-backslash-slash", ARG("\"\\\"\\\\\\/\""), 0, "\"\\/" },
	{ "del", ARG("\"\x7f\""), 0, "\x7f" },
};

static void test_strict_good(void **state)
{
	const struct strict_row *row = *state;
	char err[256] = "";
	_cleanup_json_ json_object *j = NULL;
	json_object *args, *v;

	if (vlu_json_parse_ex(row->text, strlen(row->text), 16, &j, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", row->name, err);
	assert_true(json_object_object_get_ex(j, "arguments", &args));
	assert_true(json_object_object_get_ex(args, "instance", &v));
	assert_int_equal(json_object_get_string_len(v), strlen(row->why));
	assert_memory_equal(json_object_get_string(v), row->why, strlen(row->why));
}

static void test_strict_numbers_good(void **state)
{
	static const char *const good[] = {
		"{\"a\":-9223372036854775808}", "{\"a\":9223372036854775807}", "{\"a\":18446744073709551615}",
		"{\"a\":-0}", "{\"a\":0}", "{\"a\":1e308}", "{\"a\":-1.7976931348623157e308}", "{\"a\":1e-999}",
		"{\"a\":0.5E+2}", "{\"a\":[true,false,null]}",
	};

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		json_object *j = NULL;
		char err[256] = "";

		if (vlu_json_parse_ex(good[i], strlen(good[i]), 16, &j, err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
		json_object_put(j);
	}
	{
		/* uint64 values (the daemon emits dev/ino/features so) are held exactly, not saturated */
		_cleanup_json_ json_object *j = parse_or_die("{\"a\":18446744073709551615,\"b\":-9223372036854775808}");
		assert_true(json_object_get_uint64(json_object_object_get(j, "a")) == UINT64_MAX);
		assert_true(json_object_get_int64(json_object_object_get(j, "b")) == INT64_MIN);
	}
}

/* ids come back exactly as sent: int64 min and max, strings with 4-byte characters and escapes */
static void test_strict_id_echo(void **state)
{
	static const struct {
		const char *id, *echoed;
	} rows[] = {
		{ "-9223372036854775808", "-9223372036854775808" },
		{ "9223372036854775807", "9223372036854775807" },
		{ "0", "0" },
		{ "\"req-\xf0\x9f\x98\x80-\xc3\xa9\"", "\"req-\xf0\x9f\x98\x80-\xc3\xa9\"" },
		{ "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"" }, /* the same characters, escapes written raw */
		{ "\"a/b\"", "\"a/b\"" },
		{ "\"\"", "\"\"" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		char req[256], want_err[256], want_ret[256], err[256];
		_cleanup_json_ json_object *m = NULL, *e = NULL, *r = NULL;
		json_object *id = NULL;

		snprintf(req, sizeof(req), "{\"execute\":\"status\",\"id\":%s}", rows[i].id);
		m = parse_or_die(req);
		assert_int_equal(vlu_request_parse(m, NULL, NULL, &id, err, sizeof(err)), 0);
		assert_ptr_equal(vlu_request_id(m), id);
		e = vlu_reply_error(VLU_ERR_BUSY, "x", id);
		r = vlu_reply_return(NULL, id);
		snprintf(want_err, sizeof(want_err), "{\"error\":{\"class\":\"Busy\",\"desc\":\"x\"},\"id\":%s}",
			 rows[i].echoed);
		snprintf(want_ret, sizeof(want_ret), "{\"return\":{},\"id\":%s}", rows[i].echoed);
		assert_string_equal(vlu_json_dump(e, NULL), want_err);
		assert_string_equal(vlu_json_dump(r, NULL), want_ret);
	}
}

static void test_strict_utf8_helpers(void **state)
{
	char buf[16];

	assert_true(vlu_utf8_valid("", 0));
	assert_true(vlu_utf8_valid("a\xc3\xa9\xf0\x9f\x98\x80", 7));
	assert_false(vlu_utf8_valid("a\0b", 3));
	assert_false(vlu_utf8_valid("\xc3", 1));
	assert_false(vlu_utf8_valid("\xed\xa0\x80", 3));
	/* prefix: never inside a character */
	assert_int_equal(vlu_utf8_prefix("a\xc3\xa9", 2), 1);
	assert_int_equal(vlu_utf8_prefix("a\xc3\xa9", 3), 3);
	assert_int_equal(vlu_utf8_prefix("\xf0\x9f\x98\x80z", 3), 0);
	assert_int_equal(vlu_utf8_prefix("\xf0\x9f\x98\x80z", 4), 4);
	assert_int_equal(vlu_utf8_prefix("abc", 64), 3);
	assert_int_equal(vlu_utf8_prefix("\xff\xfe" "a", 2), 2); /* no characters to cut: repaired at send */
	/* a truncating snprintf cut the euro sign: truncate drops its first two bytes */
	memcpy(buf, "abc\xe2\x82", 6); /* what snprintf(buf, 6, "abc%s", "\xe2\x82\xac") leaves */
	assert_int_equal(strlen(buf), 5);
	assert_int_equal(vlu_utf8_truncate(buf, strlen(buf)), 3);
	assert_string_equal(buf, "abc");
	/* the "%.Ns" replacement */
	snprintf(buf, sizeof(buf), "'%.*s'", (int)vlu_utf8_prefix("ab\xc3\xa9", 3), "ab\xc3\xa9");
	assert_string_equal(buf, "'ab'");
}

/* everything emitted is valid UTF-8, whatever the emitter put in */
static void test_strict_emit_repair(void **state)
{
	_cleanup_json_ json_object *j = json_object_new_object(), *arr = json_object_new_array();
	_cleanup_json_ json_object *e = NULL, *back = NULL;
	char cut[64], err[128];
	const char *s;
	size_t len;

	/* a desc cut with %.Ns in the middle of a character (the operator-event probe) */
	snprintf(cut, sizeof(cut), "desc: %.2s", "\xe2\x82\xac");
	e = vlu_reply_error(VLU_ERR_GENERIC, cut, NULL);
	s = vlu_json_dump(e, &len);
	assert_true(vlu_utf8_valid(s, len));
	assert_int_equal(vlu_json_check(s, len, 16, err, sizeof(err)), 0);

	json_object_object_add(j, "overlong", json_object_new_string("\xc0\x80"));
	json_object_object_add(j, "nul", json_object_new_string_len("a\0b", 3));
	json_object_object_add(j, "bad\xff" "key", json_object_new_int(1));
	json_object_object_add(j, "inf", json_object_new_double(1.0 / 0.0));
	json_object_array_add(arr, json_object_new_string("\xed\xa0\x80"));
	json_object_array_add(arr, json_object_new_double(0.0 / 0.0));
	json_object_array_add(arr, json_object_new_string("ok \xf0\x9f\x98\x80"));
	json_object_object_add(j, "arr", json_object_get(arr));
	assert_int_equal(vlu_json_check_tree(j, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	s = vlu_json_dump(j, &len);
	assert_true(vlu_utf8_valid(s, len));
	assert_int_equal(vlu_json_check(s, len, 16, err, sizeof(err)), 0);
	assert_int_equal(vlu_json_check_tree(j, err, sizeof(err)), 0);
	back = parse_or_die(s);
	assert_string_equal(json_object_get_string(json_object_object_get(back, "overlong")), "??");
	assert_string_equal(json_object_get_string(json_object_object_get(back, "nul")), "a?b");
	assert_true(json_object_object_get_ex(back, "bad?key", NULL));
	assert_true(json_object_object_get_ex(back, "inf", NULL));
	assert_null(json_object_object_get(back, "inf"));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 0)), "???");
	assert_null(json_object_array_get_idx(arr, 1));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 2)), "ok \xf0\x9f\x98\x80");
}

/* more invalid member names in one object than one repair pass renames */
static void test_strict_emit_many_bad_keys(void **state)
{
	_cleanup_json_ json_object *j = json_object_new_object();
	const char *s;
	size_t len;

	for (int i = 0; i < 40; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%02d\xff", i);
		json_object_object_add(j, key, json_object_new_int(i));
	}
	s = vlu_json_dump(j, &len);
	assert_true(vlu_utf8_valid(s, len));
	assert_int_equal(json_object_object_length(j), 40);
	assert_true(json_object_object_get_ex(j, "k39?", NULL));
}

/* every description the checker writes is valid UTF-8, even when it quotes a client's key cut at 64 */
static void test_strict_desc_cut(void **state)
{
	const struct vlu_command *c = vlu_command_find("status");
	_cleanup_json_ json_object *args = json_object_new_object();
	char key[128], err[512];
	enum vlu_error_class cls;

	memset(key, 'k', 63);
	strcpy(key + 63, "\xe2\x82\xac-tail"); /* the euro sign straddles byte 64 */
	json_object_object_add(args, key, json_object_new_int(1));
	assert_int_equal(vlu_command_check(c, args, 0, &cls, err, sizeof(err)), -EINVAL);
	assert_true(vlu_utf8_valid(err, strlen(err)));
	/* a small error buffer cuts at a character boundary too */
	assert_int_equal(vlu_command_check(c, args, 0, &cls, err, 40), -EINVAL);
	assert_true(vlu_utf8_valid(err, strlen(err)));
}

/* ------------------------------------------------------------ docs/PROTOCOL.md agrees with the table */

static char *protocol_md; /* the whole file, or NULL when it cannot be found */

static void load_protocol_md(void)
{
	const char *top = getenv("VLU_TOP");
	char path[4096];
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/docs/PROTOCOL.md", top && *top ? top : ".");
	f = fopen(path, "re");
	if (!f)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		protocol_md = calloc(1, (size_t)n + 1);
		if (protocol_md && fread(protocol_md, 1, (size_t)n, f) != (size_t)n) {
			free(protocol_md);
			protocol_md = NULL;
		}
	}
	fclose(f);
}

/* The section of a command: from its "### `name`" heading to the next heading. */
static char *doc_section(const char *name)
{
	char head[128];
	const char *start, *end;

	snprintf(head, sizeof(head), "\n### `%s`\n", name);
	start = strstr(protocol_md, head);
	if (!start)
		return NULL;
	start += strlen(head);
	end = strstr(start, "\n#");
	return strndup(start, end ? (size_t)(end - start) : strlen(start));
}

static void test_doc_command(void **state)
{
	const struct vlu_command *c = *state;
	_cleanup_free_ char *sec = NULL;
	size_t rows = 0;

	sec = doc_section(c->name);
	if (!sec)
		fail_msg("docs/PROTOCOL.md has no section '### `%s`'", c->name);
	for (size_t i = 0; i < c->n_args; i++) {
		char row[128];
		snprintf(row, sizeof(row), "\n| `%s` |", c->args[i].name);
		if (!strstr(sec, row))
			fail_msg("docs/PROTOCOL.md, command %s: argument '%s' is not documented", c->name,
				 c->args[i].name);
	}
	for (const char *p = sec; (p = strstr(p, "\n| `")); p++)
		rows++;
	if (rows != c->n_args)
		fail_msg("docs/PROTOCOL.md, command %s: %zu argument rows, the table has %zu arguments", c->name, rows,
			 c->n_args);
}

static void test_doc_no_stale_commands(void **state)
{
	for (const char *p = protocol_md; (p = strstr(p, "\n### `")); p++) {
		char name[128];
		const char *s = p + 6, *e = strchr(s, '`');
		assert_non_null(e);
		snprintf(name, sizeof(name), "%.*s", (int)(e - s), s);
		if (!vlu_command_find(name))
			fail_msg("docs/PROTOCOL.md documents '%s', which is not in the command table", name);
	}
}

/* ------------------------------------------------------------ main */

#define MAX_TESTS 512
static struct CMUnitTest tests[MAX_TESTS];
static char *test_names[MAX_TESTS];
static size_t n_tests;

_printf_(3, 4) static void add(CMUnitTestFunction f, void *st, const char *fmt, ...)
{
	va_list ap;
	char *name = NULL;

	if (n_tests >= MAX_TESTS)
		abort();
	va_start(ap, fmt);
	if (vasprintf(&name, fmt, ap) < 0)
		abort();
	va_end(ap);
	test_names[n_tests] = name;
	tests[n_tests++] = (struct CMUnitTest){ .name = name, .test_func = f, .initial_state = st };
}

int main(void)
{
	int r;

	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		cmocka_set_message_output(CM_OUTPUT_TAP);
	load_protocol_md(); /* $VLU_TOP/docs/PROTOCOL.md, else ./docs/PROTOCOL.md; the doc rows skip without it */

	for (size_t i = 0; i < _VLU_CMD_MAX; i++) {
		const struct vlu_command *c = &vlu_commands[i];
		void *st = (void *)c;
		bool has_required = false, has_range = false, has_name = false;

		for (size_t k = 0; k < c->n_args; k++) {
			has_required |= c->args[k].required;
			has_range |= c->args[k].type != VLU_ARG_BOOL && c->args[k].type != VLU_ARG_OBJECT;
			has_name |= c->args[k].type == VLU_ARG_NAME || c->args[k].type == VLU_ARG_NAME_ARRAY;
		}
		add(test_table_entry, st, "proto/table/%s", c->name);
		add(test_check_valid, st, "proto/check/%s/valid", c->name);
		add(test_check_unknown_key, st, "proto/check/%s/unknown-key", c->name);
		if (has_required)
			add(test_check_missing_required, st, "proto/check/%s/missing-required", c->name);
		if (c->n_args > 0)
			add(test_check_wrong_type, st, "proto/check/%s/wrong-type", c->name);
		if (has_range)
			add(test_check_out_of_range, st, "proto/check/%s/out-of-range", c->name);
		if (has_name)
			add(test_check_bad_name, st, "proto/check/%s/bad-name", c->name);
		add(test_check_fd_mismatch, st, "proto/check/%s/fd-count-mismatch", c->name);
		add(test_check_too_many_fds, st, "proto/check/%s/too-many-fds", c->name);
		if (protocol_md)
			add(test_doc_command, st, "proto/doc/%s", c->name);
	}
	if (protocol_md)
		add(test_doc_no_stale_commands, NULL, "proto/doc/no-stale-commands");
	else /* cmocka prints skips as "not ok ... # SKIP": say it ourselves */
		printf("ok - proto/doc # SKIP docs/PROTOCOL.md not found (run from the source tree or set VLU_TOP)\n");
	add(test_table_find_unknown, NULL, "proto/table/find-unknown");
	add(test_check_names_and_fds_253, NULL, "proto/check/253-names-and-fds");
	add(test_check_int_ranges_huge_numbers, NULL, "proto/check/int-range-huge-numbers");
	add(test_check_nul_in_string, NULL, "proto/check/nul-in-string");
	add(test_events_filter_check, NULL, "proto/events/filter-check");
	add(test_events_mask, NULL, "proto/events/mask");
	add(test_name_rules, NULL, "proto/names");
	add(test_error_classes, NULL, "proto/error-classes");
	add(test_frame_roundtrip_memfd_eventfd, NULL, "proto/frame/roundtrip-memfd-eventfd");
	add(test_frame_max_fds, NULL, "proto/frame/253-fds");
	add(test_frame_truncated_message, NULL, "proto/frame/truncated-message");
	add(test_frame_truncated_fds, NULL, "proto/frame/truncated-fds");
	add(test_frame_oversize, NULL, "proto/frame/oversize");
	add(test_frame_eof_and_eagain, NULL, "proto/frame/eof-eagain-epipe");
	add(test_frame_nonblocking_full, NULL, "proto/frame/nonblocking-full");
	add(test_parse_depth_limit, NULL, "proto/parse/depth-limit");
	add(test_parse_failures, NULL, "proto/parse/failures");
	add(test_dump_roundtrip, NULL, "proto/parse/dump");
	add(test_request_parse, NULL, "proto/request/parse");
	add(test_builders, NULL, "proto/builders");
	add(test_request_over_socket, NULL, "proto/request/over-socket");
	for (size_t i = 0; i < ELEMENTSOF(strict_bad); i++)
		add(test_strict_bad, (void *)&strict_bad[i], "proto/strict/refused/%s", strict_bad[i].name);
	for (size_t i = 0; i < ELEMENTSOF(strict_good); i++)
		add(test_strict_good, (void *)&strict_good[i], "proto/strict/accepted/%s", strict_good[i].name);
	add(test_strict_numbers_good, NULL, "proto/strict/accepted/numbers");
	add(test_strict_id_echo, NULL, "proto/strict/id-echo-exact");
	add(test_strict_utf8_helpers, NULL, "proto/strict/utf8-helpers");
	add(test_strict_emit_repair, NULL, "proto/strict/emit-repair");
	add(test_strict_emit_many_bad_keys, NULL, "proto/strict/emit-repair-many-keys");
	add(test_strict_desc_cut, NULL, "proto/strict/desc-cut-at-boundary");

	r = _cmocka_run_group_tests("proto", tests, n_tests, NULL, NULL);
	for (size_t i = 0; i < n_tests; i++)
		free(test_names[i]);
	free(protocol_md);
	return r == 0 ? 0 : 1;
}
