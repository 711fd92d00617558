/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-proto.c - libFuzzer target for the message parser, request splitter
 * and argument checker of protocol/ (what the daemon runs on every message
 * before any side effect), plus the reply builders on the parsed id.  Invariants include the
 * strict rules: everything emitted is valid UTF-8 and passes vlu_json_check(), ids come back
 * unchanged, raw input bytes put into strings, names and descriptions are repaired at send.
 *
 * Built two ways (tests/fuzz/fuzz.mk): with clang -fsanitize=fuzzer,address,undefined
 * ($(O)/tests/fuzz-proto), and with replay-main.c as a plain program that runs every corpus
 * file once ($(O)/tests/fuzz-proto-replay), so the corpus is replayed where clang is missing.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basics.h"
#include "vlu-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broken: crash loudly so that both libFuzzer and the replay notice. */
#define CHECK(x)                                                                             \
	do {                                                                                 \
		if (!(x)) {                                                                  \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* Everything emitted is strict: valid UTF-8 as a whole, and it passes the same checks as input. */
static void check_emitted(json_object *j, json_object **ret_back)
{
	_cleanup_json_ json_object *back = NULL;
	char err[256];
	size_t len = 0;
	const char *s;

	CHECK(j);
	s = vlu_json_dump(j, &len);
	CHECK(s && len == strlen(s));
	CHECK(vlu_utf8_valid(s, len));
	/* whatever id a client sent, our reply is one parseable object (ids are limited by the request's
	 * depth, the reply adds one level) */
	CHECK(vlu_json_check(s, len, VLU_DEFAULT_MAX_DEPTH + 1, err, sizeof(err)) == 0);
	CHECK(vlu_json_parse(s, len, VLU_DEFAULT_MAX_DEPTH + 1, &back) == 0);
	CHECK(vlu_json_check_tree(back, err, sizeof(err)) == 0);
	if (ret_back)
		*ret_back = TAKE_PTR(back);
}

static void check_reply_roundtrip(json_object *reply)
{
	json_object *sent_id = NULL, *back_id = NULL;
	bool had_id = json_object_object_get_ex(reply, "id", &sent_id);
	_cleanup_json_ json_object *back = NULL;

	check_emitted(reply, &back);
	/* the id comes back as the same value (ids are strings or int64 integers, never repaired) */
	CHECK(had_id == json_object_object_get_ex(back, "id", &back_id));
	if (had_id)
		CHECK(json_object_equal(sent_id, back_id));
}

/* The input as raw bytes in a string, a member name and an error description: repaired at send, and the
 * UTF-8 helpers never cut inside a character. */
static void check_raw_bytes(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *z = NULL;
	_cleanup_json_ json_object *j = NULL, *e = NULL;
	size_t zlen;

	if (size > 4096)
		size = 4096;
	z = strndup((const char *)data, size); /* up to the first NUL */
	CHECK(z);
	zlen = strlen(z);
	for (size_t max = 0; max <= zlen && max < 80; max++) {
		size_t p = vlu_utf8_prefix(z, max);

		CHECK(p <= max);
		if (vlu_utf8_valid(z, zlen))
			CHECK(vlu_utf8_valid(z, p));
	}
	j = json_object_new_object();
	CHECK(j);
	json_object_object_add(j, z, json_object_new_string_len((const char *)data, (int)size));
	check_emitted(j, NULL);
	e = vlu_reply_error(VLU_ERR_GENERIC, z, NULL);
	check_emitted(e, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_json_ json_object *msg = NULL;
	const char *exec = NULL;
	json_object *args = NULL, *id = NULL;
	char err[256];
	int r;

	if (size > VLU_DEFAULT_MAX_MSG_BYTES)
		return 0;
	check_raw_bytes(data, size);
	r = vlu_json_parse_ex((const char *)data, size, VLU_DEFAULT_MAX_DEPTH, &msg, err, sizeof(err));
	CHECK(r == 0 || r == -EINVAL || r == -E2BIG);
	if (r < 0) {
		CHECK(msg == NULL);
		CHECK(err[0] && vlu_utf8_valid(err, strlen(err)));
		/* the strict check alone refuses it too, unless json-c found more (it never should) */
		CHECK(vlu_json_check((const char *)data, size, VLU_DEFAULT_MAX_DEPTH, err, sizeof(err)) == r);
		_cleanup_json_ json_object *reply = vlu_reply_error(VLU_ERR_INVALID_ARGUMENT, err, NULL);
		check_reply_roundtrip(reply);
		return 0;
	}
	CHECK(json_object_is_type(msg, json_type_object));
	/* what passed the strict parse holds no invalid string, NUL, non-finite number */
	CHECK(vlu_json_check_tree(msg, err, sizeof(err)) == 0);

	id = vlu_request_id(msg);
	CHECK(vlu_id_valid(id));
	r = vlu_request_parse(msg, &exec, &args, &id, err, sizeof(err));
	if (r < 0) {
		CHECK(r == -EINVAL && err[0]);
		_cleanup_json_ json_object *reply = vlu_reply_error(VLU_ERR_INVALID_ARGUMENT, err, vlu_request_id(msg));
		check_reply_roundtrip(reply);
		return 0;
	}
	CHECK(exec != NULL);
	(void)vlu_name_valid(exec);
	(void)vlu_error_class_from_name(exec);

	const struct vlu_command *cmd = vlu_command_find(exec);
	if (!cmd) {
		_cleanup_json_ json_object *reply = vlu_reply_error(VLU_ERR_COMMAND_NOT_FOUND, exec, id);
		check_reply_roundtrip(reply);
		return 0;
	}
	CHECK(strcmp(cmd->name, exec) == 0);

	/* fd counts around what the request implies, and the limit */
	json_object *names = NULL;
	size_t want = 0;
	if (args && json_object_object_get_ex(args, "names", &names) && json_object_is_type(names, json_type_array))
		want = json_object_array_length(names);
	const size_t counts[] = { 0, 1, want, want + 1, VLU_MAX_FDS_PER_MSG, VLU_MAX_FDS_PER_MSG + 1 };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		enum vlu_error_class cls = _VLU_ERR_MAX;
		err[0] = '\0';
		r = vlu_command_check(cmd, args, counts[i], &cls, err, sizeof(err));
		if (r == 0) {
			CHECK(cls == _VLU_ERR_MAX);
			CHECK(counts[i] <= VLU_MAX_FDS_PER_MSG);
			CHECK(cmd->fds_in == VLU_FDS_PER_NAME ? counts[i] == want : counts[i] == 0);
			_cleanup_json_ json_object *reply = vlu_reply_return(NULL, id);
			check_reply_roundtrip(reply);
		} else {
			CHECK(r < 0 && err[0]);
			CHECK(cls == VLU_ERR_INVALID_ARGUMENT || cls == VLU_ERR_LIMIT_EXCEEDED);
			CHECK((cls == VLU_ERR_LIMIT_EXCEEDED) == (counts[i] > VLU_MAX_FDS_PER_MSG));
			_cleanup_json_ json_object *reply = vlu_reply_error(cls, err, id);
			check_reply_roundtrip(reply);
		}
	}
	return 0;
}
