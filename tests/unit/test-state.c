/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-state.c - unit tests of the daemon's persisted state format
 * (daemon/state.c): round trips, the header, padding, and every kind of
 * malformed document the parser must refuse.  Run with
 * CMOCKA_MESSAGE_OUTPUT=TAP.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "state.h"

static void fill_doc(struct state_doc *d, struct state_instance *insts, struct state_fd *fds)
{
	memset(insts, 0, 2 * sizeof(*insts));
	memset(fds, 0, 3 * sizeof(*fds));
	strcpy(insts[0].name, "vm-1");
	insts[0].pid = 1234;
	insts[0].uid = 1000;
	insts[0].gid = 1000;
	insts[0].registered_us = 1700000000123456LL;
	strcpy(insts[1].name, "vm.2_x");
	insts[1].pid = 99;
	insts[1].uid = 4294967294u;
	insts[1].gid = 7;
	insts[1].registered_us = 1;
	insts[1].orphaned = true;
	insts[1].orphaned_us = 1700000001000000LL;

	fds[0] = (struct state_fd){ .id = 1, .dev = 0xfd00, .ino = 42, .rdev = 0, .created_us = 5 };
	strcpy(fds[0].instance, "vm-1");
	strcpy(fds[0].name, "ram0");
	strcpy(fds[0].type, "memfd");
	fds[1] = (struct state_fd){ .id = 7, .dev = 13, .ino = UINT64_MAX, .rdev = (511ull << 20) | 3,
				    .created_us = 6, .device = "vdpa0", .path = "/dev/vhost-vdpa-0" };
	strcpy(fds[1].instance, "vm-1");
	strcpy(fds[1].name, "vdpa:vdpa0");
	strcpy(fds[1].type, "vhost-vdpa");
	/* the same open file as fds[0], kept by another instance: an alias (not in the fd store) */
	fds[2] = (struct state_fd){ .id = 3, .dev = 0xfd00, .ino = 42, .rdev = 0, .created_us = 7, .alias_of = 1 };
	strcpy(fds[2].instance, "vm.2_x");
	strcpy(fds[2].name, "ram0");
	strcpy(fds[2].type, "memfd");

	*d = (struct state_doc){ .next_id = 8, .written_us = 77, .instances = insts, .n_instances = 2, .fds = fds,
				 .n_fds = 3 };
}

/* p, parsed from buf (len bytes), written again: the same bytes */
static void assert_rewritten_same(const struct state_doc *p, const char *buf, size_t len)
{
	char *again = NULL;
	size_t l2 = 0;

	assert_int_equal(state_serialize(p, &again, &l2), 0);
	assert_int_equal(l2, len);
	assert_memory_equal(again, buf, len);
	free(again);
}

static void roundtrip(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d, p = {};
	char *buf = NULL;
	size_t len = 0;

	fill_doc(&d, insts, fds);
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_non_null(buf);
	assert_int_equal(strlen(buf), len);
	assert_memory_equal(buf, "VLUDSTATE 1\n", 12);

	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(p.next_id, 8);
	assert_int_equal(p.written_us, 77);
	assert_int_equal(p.n_instances, 2);
	assert_int_equal(p.n_fds, 3);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(p.instances[i].name, insts[i].name);
		assert_int_equal(p.instances[i].pid, insts[i].pid);
		assert_int_equal(p.instances[i].uid, insts[i].uid);
		assert_int_equal(p.instances[i].gid, insts[i].gid);
		assert_int_equal(p.instances[i].registered_us, insts[i].registered_us);
		assert_int_equal(p.instances[i].orphaned, insts[i].orphaned);
		assert_int_equal(p.instances[i].orphaned_us, insts[i].orphaned_us);
	}
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(p.fds[i].id, fds[i].id);
		assert_string_equal(p.fds[i].instance, fds[i].instance);
		assert_string_equal(p.fds[i].name, fds[i].name);
		assert_string_equal(p.fds[i].type, fds[i].type);
		assert_true(p.fds[i].dev == fds[i].dev); /* 64-bit exact */
		assert_true(p.fds[i].ino == fds[i].ino);
		assert_true(p.fds[i].rdev == fds[i].rdev);
		assert_int_equal(p.fds[i].created_us, fds[i].created_us);
		assert_true(p.fds[i].alias_of == fds[i].alias_of);
	}
	assert_null(p.fds[0].device);
	assert_null(p.fds[0].path);
	assert_string_equal(p.fds[1].device, "vdpa0");
	assert_string_equal(p.fds[1].path, "/dev/vhost-vdpa-0");

	/* serialising the parsed document gives the same bytes */
	{
		char *buf2 = NULL;
		size_t len2 = 0;

		assert_int_equal(state_serialize(&p, &buf2, &len2), 0);
		assert_int_equal(len2, len);
		assert_memory_equal(buf2, buf, len);
		free(buf2);
	}
	state_doc_done(&p);
	free(buf);
}

static void empty_doc(void **unused)
{
	struct state_doc d = { .next_id = 1 }, p = {};
	char *buf = NULL;
	size_t len;

	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(p.n_instances, 0);
	assert_int_equal(p.n_fds, 0);
	assert_int_equal(p.next_id, 1);
	state_doc_done(&p);
	free(buf);
}

/* the daemon pads a shorter document with blanks instead of truncating first */
static void padded(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d, p = {};
	char *buf = NULL, *big;
	size_t len;

	fill_doc(&d, insts, fds);
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	big = malloc(len + 300);
	memcpy(big, buf, len);
	memset(big + len, ' ', 299);
	big[len + 299] = '\n';
	assert_int_equal(state_parse(big, len + 300, &p), 0);
	assert_int_equal(p.n_fds, 3);
	state_doc_done(&p);
	/* but not garbage: the stale tail of a longer old document */
	memcpy(big + len, "\"x\":1}", 6);
	assert_int_equal(state_parse(big, len + 300, &p), -EINVAL);
	free(big);
	free(buf);
}

static void header(void **unused)
{
	struct state_doc p = {};
	const char *body = "{\"next_id\":1,\"written_us\":0,\"instances\":[],\"fds\":[]}";
	char b[256];

	snprintf(b, sizeof(b), "VLUDSTATE 1\n%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), 0);
	state_doc_done(&p);
	snprintf(b, sizeof(b), "VLUDSTATE 2\n%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), -EPROTONOSUPPORT);
	snprintf(b, sizeof(b), "VLUDSTATX 1\n%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), -EPROTO);
	snprintf(b, sizeof(b), "%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), -EPROTO);
	snprintf(b, sizeof(b), "VLUDSTATE 1x\n%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), -EPROTO);
	snprintf(b, sizeof(b), "VLUDSTATE \n%s", body);
	assert_int_equal(state_parse(b, strlen(b), &p), -EPROTO);
	assert_int_equal(state_parse("", 0, &p), -EPROTO);
	/* nothing written on failure */
	assert_null(p.instances);
	assert_null(p.fds);
}

/* one row per way a document can be wrong */
static const struct bad {
	const char *what;
	const char *doc;
} bads[] = {
	{ "not json", "{" },
	{ "array", "[]" },
	{ "trailing garbage", "{\"next_id\":1,\"written_us\":0,\"instances\":[],\"fds\":[]} x" },
	{ "unknown key", "{\"next_id\":1,\"written_us\":0,\"instances\":[],\"fds\":[],\"extra\":1}" },
	{ "missing next_id", "{\"written_us\":0,\"instances\":[],\"fds\":[]}" },
	{ "next_id zero", "{\"next_id\":0,\"written_us\":0,\"instances\":[],\"fds\":[]}" },
	{ "next_id string", "{\"next_id\":\"1\",\"written_us\":0,\"instances\":[],\"fds\":[]}" },
	{ "instances not array", "{\"next_id\":1,\"written_us\":0,\"instances\":{},\"fds\":[]}" },
	{ "missing fds", "{\"next_id\":1,\"written_us\":0,\"instances\":[]}" },
	{ "instance bad name",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"a b\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "instance empty name",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "instance negative pid",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":-1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "instance uid too big",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":4294967296,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "instance orphaned not bool",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":1,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "duplicate instance",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0},{\"name\":\"a\",\"pid\":2,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[]}" },
	{ "fd of unknown instance",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[],\"fds\":[{\"id\":1,\"instance\":\"a\",\"name\":\"x\","
	  "\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "fd id zero",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":0,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "fd id not below next_id",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":5,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "duplicate fd id",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0},{\"id\":1,"
	  "\"instance\":\"a\",\"name\":\"y\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "duplicate fd name",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0},{\"id\":2,"
	  "\"instance\":\"a\",\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "fd negative dev",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":-1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "fd missing type",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"x\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
	{ "fd device not string",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0,\"device\":3}]}" },
	{ "fd name too long",
	  "{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"
	  "\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":[{\"id\":1,\"instance\":\"a\","
	  "\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"type\":\"memfd\","
	  "\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}]}" },
#define ALIAS_DOC(a2, a3)                                                                                        \
	"{\"next_id\":9,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,"         \
	"\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],\"fds\":["                                   \
	"{\"id\":1,\"instance\":\"a\",\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0},"  \
	"{\"id\":2,\"instance\":\"a\",\"name\":\"y\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0" a2 "}," \
	"{\"id\":3,\"instance\":\"a\",\"name\":\"z\",\"type\":\"memfd\",\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0" a3 "}]}"
	{ "alias of itself", ALIAS_DOC(",\"alias_of\":2", "") },
	{ "alias of a missing id", ALIAS_DOC(",\"alias_of\":7", "") },
	{ "alias of an alias", ALIAS_DOC(",\"alias_of\":1", ",\"alias_of\":2") },
	{ "alias_of zero", ALIAS_DOC(",\"alias_of\":0", "") },
	{ "alias_of string", ALIAS_DOC(",\"alias_of\":\"1\"", "") },
};

static void malformed(void **unused)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct state_doc p = {};
		char *b;
		int r;

		assert_true(asprintf(&b, "VLUDSTATE 1\n%s", bads[i].doc) > 0);
		r = state_parse(b, strlen(b), &p);
		if (r != -EINVAL)
			fail_msg("%s: expected -EINVAL, got %d", bads[i].what, r);
		assert_null(p.instances);
		free(b);
	}
}

/* the same valid fd row is accepted, so the rows above fail for their stated reason */
static void control_row(void **unused)
{
	const char *ok = "VLUDSTATE 1\n{\"next_id\":5,\"written_us\":0,\"instances\":[{\"name\":\"a\",\"pid\":1,"
			 "\"uid\":0,\"gid\":0,\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0}],"
			 "\"fds\":[{\"id\":1,\"instance\":\"a\",\"name\":\"x\",\"type\":\"memfd\",\"dev\":1,"
			 "\"ino\":2,\"rdev\":0,\"created_us\":0,\"device\":null}]}\n";
	struct state_doc p = {};

	assert_int_equal(state_parse(ok, strlen(ok), &p), 0);
	assert_int_equal(p.n_fds, 1);
	assert_null(p.fds[0].device);
	state_doc_done(&p);

	/* and the alias rows' control: two aliases of one primary */
	{
		const char *al = "VLUDSTATE 1\n" ALIAS_DOC(",\"alias_of\":1", ",\"alias_of\":1");

		assert_int_equal(state_parse(al, strlen(al), &p), 0);
		assert_int_equal(p.n_fds, 3);
		assert_true(p.fds[0].alias_of == 0);
		assert_true(p.fds[1].alias_of == 1);
		assert_true(p.fds[2].alias_of == 1);
		state_doc_done(&p);
	}
}

/* every truncation of a valid document is refused (an interrupted rewrite is never half-adopted) */
static void truncated(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d;
	char *buf = NULL;
	size_t len;

	fill_doc(&d, insts, fds);
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	/* len - 1 drops only the final newline: still complete */
	for (size_t l = 0; l + 1 < len; l++) {
		struct state_doc p = {};
		int r = state_parse(buf, l, &p);

		if (r >= 0)
			fail_msg("truncated to %zu of %zu bytes: accepted", l, len);
	}
	free(buf);
}

/* the index page that names the current copy of the document */
static void index_page(void **unused)
{
	char page[VLUD_STATE_INDEX_SIZE], bad[VLUD_STATE_INDEX_SIZE + 1];
	uint64_t off = 0, len = 0;

	assert_int_equal(state_index_serialize(8192, 1234, page), 0);
	assert_memory_equal(page, "VLUDSTATE 1\n", 12);
	assert_int_equal(page[VLUD_STATE_INDEX_SIZE - 1], '\n');
	assert_null(memchr(page, '\0', sizeof(page)));
	assert_int_equal(state_index_parse(page, sizeof(page), &off, &len), 0);
	assert_true(off == 8192 && len == 1234);
	/* a short read of the page is fine as long as the object is complete */
	assert_int_equal(state_index_parse(page, 64, &off, &len), 0);

	/* what the writer refuses */
	assert_int_equal(state_index_serialize(0, 10, page), -EINVAL);    /* inside the index page */
	assert_int_equal(state_index_serialize(5000, 10, page), -EINVAL); /* not page aligned */
	assert_int_equal(state_index_serialize(4096, 0, page), -EINVAL);
	assert_int_equal(state_index_serialize(4096, (uint64_t)VLUD_STATE_MAX_BYTES + 1, page), -EINVAL);

	/* what the reader refuses; nothing written on failure */
	off = len = 7;
	snprintf(bad, sizeof(bad), "VLUDSTATE 2\n{\"offset\":4096,\"length\":1}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EPROTONOSUPPORT);
	snprintf(bad, sizeof(bad), "VLUDSTATX 1\n{\"offset\":4096,\"length\":1}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EPROTO);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4096,\"length\":1,\"x\":1}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4096}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4097,\"length\":1}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":0,\"length\":1}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4096,\"length\":0}\n");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4096,\"length\":1} x");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	snprintf(bad, sizeof(bad), "VLUDSTATE 1\n{\"offset\":4096,\"len");
	assert_int_equal(state_index_parse(bad, strlen(bad), &off, &len), -EINVAL);
	assert_true(off == 7 && len == 7);
	/* every truncation of a valid page short of its closing brace is refused */
	for (size_t l = 0; l < (size_t)(strchr(page, '}') - page); l++)
		if (state_index_parse(page, l, &off, &len) >= 0)
			fail_msg("index truncated to %zu bytes: accepted", l);
}

/* ---- the running update ("updates") and the last verdict ("last_update") ---- */

#define UPD_INST "{\"name\":\"a\",\"pid\":1,\"uid\":0,\"gid\":0,\"registered_us\":0,\"orphaned\":false,\"orphaned_us\":0"
#define UPD_DOC(inst_extra, upd)                                                                                 \
	"{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST inst_extra "}],\"fds\":[],\"updates\":[" upd "]}"
#define LONG16 "0123456789abcdef"
#define LONG256 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16 LONG16
#define UPD_DEV "{\"name\":\"vdpa:vdpa0\",\"suspended\":true,\"reset\":false,\"released\":false}"
#define UPD(extra, devs)                                                                                          \
	"{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":10,"     \
	"\"new_pid\":0,\"started_us\":5" extra ",\"devices\":[" devs "]}"

static void fill_update(struct state_update *u)
{
	memset(u, 0, sizeof(*u));
	strcpy(u->instance, "vm.2_x");
	u->id = 17;
	strcpy(u->mode, "transfer");
	u->path = 'B';
	strcpy(u->phase, "claim");
	u->old_pid = 99;
	u->new_pid = 4321;
	u->new_start = 18446744073709551615ULL;
	u->started_us = 1700000002000000LL;
	u->n_devs = 2;
	strcpy(u->devs[0].name, "vdpa:vdpa0");
	u->devs[0].suspended = true;
	u->devs[0].reset = true;
	strcpy(u->devs[1].name, "vdpa:vdpa1");
	u->devs[1].released = true;
	strcpy(u->devs[1].device, "vdpa1");
	strcpy(u->devs[1].node, "/dev/vhost-vdpa-1");
}

static void update_roundtrip(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_update u;
	struct state_doc d, p = {};
	const char *verdict = "{\"instance\":\"vm-1\",\"id\":2,\"result\":\"failed\",\"phases\":[{\"phase\":\"save\",\"ms\":1.5}],"
			      "\"error\":\"vlud restarted during the update (phase save): x\"}";
	char *buf = NULL;
	size_t len = 0;

	fill_doc(&d, insts, fds);
	fill_update(&u);
	insts[0].last_update = (char *)verdict;
	insts[1].mappings = "{\"mappings\":[{\"iova\":0,\"size\":67108864,\"memfd\":\"ram0\",\"offset\":0,"
			    "\"uaddr\":140000000000000,\"perm\":\"rw\"}],\"devices\":[{\"name\":\"vdpa:vdpa0\","
			    "\"pinning\":\"pa\"}]}";
	d.updates = &u;
	d.n_updates = 1;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(p.n_updates, 1);
	assert_string_equal(p.updates[0].instance, "vm.2_x");
	assert_int_equal(p.updates[0].id, 17);
	assert_string_equal(p.updates[0].mode, "transfer");
	assert_int_equal(p.updates[0].path, 'B');
	assert_string_equal(p.updates[0].phase, "claim");
	assert_int_equal(p.updates[0].old_pid, 99);
	assert_int_equal(p.updates[0].new_pid, 4321);
	/* start times: the one known comes back, the unknown one (0) is left out and reads back 0 */
	assert_true(p.updates[0].new_start == 18446744073709551615ULL);
	assert_true(p.updates[0].old_start == 0);
	assert_null(strstr(buf, "old_start"));
	assert_int_equal(p.updates[0].started_us, 1700000002000000LL);
	assert_int_equal(p.updates[0].n_devs, 2);
	assert_string_equal(p.updates[0].devs[0].name, "vdpa:vdpa0");
	assert_true(p.updates[0].devs[0].suspended && p.updates[0].devs[0].reset && !p.updates[0].devs[0].released);
	assert_string_equal(p.updates[0].devs[1].name, "vdpa:vdpa1");
	assert_true(!p.updates[0].devs[1].suspended && !p.updates[0].devs[1].reset && p.updates[0].devs[1].released);
	/* where a restarted vlud reopens a released device; absent (older states): "" */
	assert_string_equal(p.updates[0].devs[1].device, "vdpa1");
	assert_string_equal(p.updates[0].devs[1].node, "/dev/vhost-vdpa-1");
	assert_string_equal(p.updates[0].devs[0].node, "");
	/* the verdict comes back as the same JSON object (key order kept, plain) */
	assert_non_null(p.instances[0].last_update);
	assert_null(p.instances[1].last_update);
	assert_null(p.instances[0].mappings);
	assert_string_equal(p.instances[1].mappings, insts[1].mappings);
	/* parse -> serialize -> identical bytes (written_us included: same doc) */
	assert_rewritten_same(&p, buf, len);
	state_doc_done(&p);
	assert_null(p.updates);
	free(buf);

	/* without updates and verdicts the document is the one older daemons wrote: no new keys */
	fill_doc(&d, insts, fds);
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_null(strstr(buf, "updates"));
	assert_null(strstr(buf, "last_update"));
	assert_null(strstr(buf, "mappings"));
	free(buf);
}

/* an old (pre-"updates") document parses with no updates and no verdicts */
static void update_old_doc(void **unused)
{
	const char *old = "VLUDSTATE 1\n{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST "}],\"fds\":[]}\n";
	const char *ok = "VLUDSTATE 1\n" UPD_DOC(",\"last_update\":{\"result\":\"ok\"}", UPD("", UPD_DEV));
	struct state_doc p = {};

	assert_int_equal(state_parse(old, strlen(old), &p), 0);
	assert_int_equal(p.n_updates, 0);
	assert_null(p.updates);
	assert_null(p.instances[0].last_update);
	state_doc_done(&p);
	/* control of the rows below */
	assert_int_equal(state_parse(ok, strlen(ok), &p), 0);
	assert_int_equal(p.n_updates, 1);
	assert_string_equal(p.instances[0].last_update, "{\"result\":\"ok\"}");
	/* a record without start times (older vlud): unknown */
	assert_true(p.updates[0].old_start == 0 && p.updates[0].new_start == 0);
	state_doc_done(&p);
}

static const struct bad upd_bads[] = {
	{ "updates not an array", "{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST "}],\"fds\":[],\"updates\":{}}" },
	{ "update not an object", UPD_DOC("", "1") },
	{ "update of an unknown instance",
	  "{\"next_id\":1,\"written_us\":0,\"instances\":[],\"fds\":[],\"updates\":[" UPD("", UPD_DEV) "]}" },
	{ "two updates of one instance", UPD_DOC("", UPD("", UPD_DEV) "," UPD("", UPD_DEV)) },
	{ "update id zero",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":0,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":10,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update unknown mode",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"copy\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":10,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update unknown path",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"D\",\"phase\":\"save\",\"old_pid\":10,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update path of two letters",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"AB\",\"phase\":\"save\",\"old_pid\":10,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update unknown phase",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"sleep\",\"old_pid\":10,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update old_pid zero",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":0,"
		      "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update negative new_pid",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":1,"
		      "\"new_pid\":-2,\"started_us\":5,\"devices\":[" UPD_DEV "]}") },
	{ "update missing started_us",
	  UPD_DOC("", "{\"instance\":\"a\",\"id\":3,\"mode\":\"exec\",\"path\":\"C\",\"phase\":\"save\",\"old_pid\":1,"
		      "\"new_pid\":0,\"devices\":[" UPD_DEV "]}") },
	{ "update without devices", UPD_DOC("", UPD("", "")) },
	{ "update device bad name", UPD_DOC("", UPD("", "{\"name\":\"a b\",\"suspended\":true,\"reset\":false,\"released\":false}")) },
	{ "update device flag not bool", UPD_DOC("", UPD("", "{\"name\":\"d\",\"suspended\":1,\"reset\":false,\"released\":false}")) },
	{ "update device node not a string", UPD_DOC("", UPD("", "{\"name\":\"d\",\"suspended\":true,\"reset\":false,\"released\":true,\"node\":7}")) },
	{ "update device node too long", UPD_DOC("", UPD("", "{\"name\":\"d\",\"suspended\":true,\"reset\":false,\"released\":true,\"node\":\"" LONG256 "\"}")) },
	{ "update device missing flag", UPD_DOC("", UPD("", "{\"name\":\"d\",\"suspended\":true,\"reset\":false}")) },
	{ "update duplicate device", UPD_DOC("", UPD("", UPD_DEV "," UPD_DEV)) },
#define D17(i) "{\"name\":\"d" #i "\",\"suspended\":true,\"reset\":false,\"released\":false}"
	{ "update with 17 devices",
	  UPD_DOC("", UPD("", D17(1) "," D17(2) "," D17(3) "," D17(4) "," D17(5) "," D17(6) "," D17(7) "," D17(8) ","
			      D17(9) "," D17(10) "," D17(11) "," D17(12) "," D17(13) "," D17(14) "," D17(15) "," D17(16) ","
			      D17(17))) },
	{ "last_update not an object", UPD_DOC(",\"last_update\":\"failed\"", UPD("", UPD_DEV)) },
	{ "last_update array", UPD_DOC(",\"last_update\":[]", UPD("", UPD_DEV)) },
	{ "mappings not an object", UPD_DOC(",\"mappings\":[]", UPD("", UPD_DEV)) },
	{ "mappings null", UPD_DOC(",\"mappings\":null", UPD("", UPD_DEV)) },
};

static void update_malformed(void **unused)
{
	for (size_t i = 0; i < sizeof(upd_bads) / sizeof(upd_bads[0]); i++) {
		struct state_doc p = {};
		char *b;
		int r;

		assert_true(asprintf(&b, "VLUDSTATE 1\n%s", upd_bads[i].doc) > 0);
		r = state_parse(b, strlen(b), &p);
		if (r != -EINVAL)
			fail_msg("%s: expected -EINVAL, got %d", upd_bads[i].what, r);
		assert_null(p.instances);
		assert_null(p.updates);
		free(b);
	}
}

/* a malformed start time costs the record its reservation only (old_start_bad or new_start_bad, that time 0), not the document:
 * the instance, its fds and the update record stand */
static void update_start_malformed(void **unused)
{
	static const struct {
		const char *what, *doc;
	} sbads[] = {
		{ "old_start negative", UPD_DOC("", UPD(",\"old_start\":-1,\"new_start\":7", UPD_DEV)) },
		{ "new_start a string", UPD_DOC("", UPD(",\"old_start\":7,\"new_start\":\"5\"", UPD_DEV)) },
		{ "new_start a float", UPD_DOC("", UPD(",\"new_start\":1.5", UPD_DEV)) },
	};

	for (size_t i = 0; i < sizeof(sbads) / sizeof(sbads[0]); i++) {
		struct state_doc p = {};
		char *b;
		int r;

		assert_true(asprintf(&b, "VLUDSTATE 1\n%s", sbads[i].doc) > 0);
		r = state_parse(b, strlen(b), &p);
		/* only the malformed one is flagged */
		bool want_old = strstr(sbads[i].what, "old_start") != NULL;

		if (r != 0 || p.n_instances != 1 || p.n_updates != 1 || p.updates[0].old_start_bad != want_old ||
		    p.updates[0].new_start_bad == want_old)
			fail_msg("%s: r=%d, %zu instances, %zu updates, bad old %d new %d", sbads[i].what, r, p.n_instances,
				 p.n_updates, p.n_updates ? p.updates[0].old_start_bad : -1,
				 p.n_updates ? p.updates[0].new_start_bad : -1);
		/* the malformed one reads 0; a good one beside it is kept */
		if ((strstr(sbads[i].what, "old_start") && p.updates[0].old_start != 0) ||
		    (strstr(sbads[i].what, "new_start") && p.updates[0].new_start != 0) ||
		    (i == 0 && p.updates[0].new_start != 7) || (i == 1 && p.updates[0].old_start != 7))
			fail_msg("%s: old_start %llu new_start %llu", sbads[i].what,
				 (unsigned long long)p.updates[0].old_start, (unsigned long long)p.updates[0].new_start);
		state_doc_done(&p);
		free(b);
	}
}

/* limits: 16 devices is the most; a verdict of VLUD_STATE_VERDICT_MAX bytes is kept, one byte more is
 * refused by the parser and by the writer */
static void update_limits(void **unused)
{
	const char *d16 = "VLUDSTATE 1\n" UPD_DOC("", UPD("", D17(1) "," D17(2) "," D17(3) "," D17(4) "," D17(5) ","
							    D17(6) "," D17(7) "," D17(8) "," D17(9) "," D17(10) ","
							    D17(11) "," D17(12) "," D17(13) "," D17(14) "," D17(15) ","
							    D17(16)));
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d, p = {};
	char *verdict, *buf = NULL, *doc;
	size_t len;

	assert_int_equal(state_parse(d16, strlen(d16), &p), 0);
	assert_int_equal(p.updates[0].n_devs, 16);
	assert_string_equal(p.updates[0].devs[15].name, "d16");
	state_doc_done(&p);

	/* {"e":"xxx..."}: 8 bytes of syntax around the string */
	verdict = malloc(VLUD_STATE_VERDICT_MAX + 2);
	assert_non_null(verdict);
	memset(verdict, 'x', VLUD_STATE_VERDICT_MAX + 1);
	memcpy(verdict, "{\"e\":\"", 6);
	memcpy(verdict + VLUD_STATE_VERDICT_MAX - 2, "\"}", 3);
	assert_int_equal(strlen(verdict), VLUD_STATE_VERDICT_MAX);
	fill_doc(&d, insts, fds);
	insts[1].last_update = verdict;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(strlen(p.instances[1].last_update), VLUD_STATE_VERDICT_MAX);
	state_doc_done(&p);
	free(buf);
	buf = NULL;
	/* one byte more: the writer refuses, and so does the parser of a document that has it */
	memset(verdict, 'x', VLUD_STATE_VERDICT_MAX + 1);
	memcpy(verdict, "{\"e\":\"", 6);
	memcpy(verdict + VLUD_STATE_VERDICT_MAX - 1, "\"}", 3);
	assert_int_equal(strlen(verdict), VLUD_STATE_VERDICT_MAX + 1);
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	assert_true(asprintf(&doc, "VLUDSTATE 1\n{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST
				   ",\"last_update\":%s}],\"fds\":[]}",
			     verdict) > 0);
	assert_int_equal(state_parse(doc, strlen(doc), &p), -EINVAL);
	assert_null(p.instances);
	free(doc);
	/* not JSON, or not an object: the writer refuses */
	insts[1].last_update = "{\"e\":";
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	insts[1].last_update = "[1]";
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	free(verdict);
	/* the mapping table: VLUD_STATE_MAPPINGS_MAX bytes kept, one more refused */
	{
		char *m = malloc(VLUD_STATE_MAPPINGS_MAX + 2);

		assert_non_null(m);
		memset(m, 'x', VLUD_STATE_MAPPINGS_MAX + 1);
		memcpy(m, "{\"e\":\"", 6);
		memcpy(m + VLUD_STATE_MAPPINGS_MAX - 2, "\"}", 3);
		fill_doc(&d, insts, fds);
		insts[0].mappings = m;
		assert_int_equal(state_serialize(&d, &buf, &len), 0);
		assert_int_equal(state_parse(buf, len, &p), 0);
		assert_int_equal(strlen(p.instances[0].mappings), VLUD_STATE_MAPPINGS_MAX);
		state_doc_done(&p);
		free(buf);
		buf = NULL;
		memset(m, 'x', VLUD_STATE_MAPPINGS_MAX + 1);
		memcpy(m, "{\"e\":\"", 6);
		memcpy(m + VLUD_STATE_MAPPINGS_MAX - 1, "\"}", 3);
		assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
		free(m);
	}
	/* every phase name the engine reports is known, and nothing else */
	assert_true(state_phase_known("save") && state_phase_known("rollback") && state_phase_known("done"));
	assert_false(state_phase_known("") || state_phase_known("Save") || state_phase_known("saved"));
}

/* an instance's reattach reservation ("reserved_for"): kept both ways, absent in older documents (which
 * parse as before), and a malformed one costs the reservation only, with the reason */
static void reservation(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d, p = {};
	char *buf = NULL, *again = NULL;
	size_t len = 0, l2 = 0;
	static const struct {
		const char *what, *member, *reason;
	} rbads[] = {
		{ "not an object", "5", "not an object" },
		{ "null", "null", "not an object" },
		{ "empty", "{}", "\"pid\"" },
		{ "pid zero", "{\"pid\":0,\"start\":1,\"update\":3}", "\"pid\"" },
		{ "pid negative", "{\"pid\":-5,\"start\":1,\"update\":3}", "\"pid\"" },
		{ "pid too big", "{\"pid\":2147483648,\"start\":1,\"update\":3}", "\"pid\"" },
		{ "pid a string", "{\"pid\":\"5\",\"start\":1,\"update\":3}", "\"pid\"" },
		{ "start missing (cut)", "{\"pid\":5}", "\"start\"" },
		{ "start negative", "{\"pid\":5,\"start\":-1,\"update\":3}", "\"start\"" },
		{ "start a float", "{\"pid\":5,\"start\":1.5,\"update\":3}", "\"start\"" },
		{ "update missing", "{\"pid\":5,\"start\":1}", "\"update\"" },
		{ "update zero", "{\"pid\":5,\"start\":1,\"update\":0}", "\"update\"" },
	};

	(void)unused;
	fill_doc(&d, insts, fds);
	insts[1].reserved = (struct state_reservation){ .pid = 2147483647, .start = UINT64_MAX, .update = 57 };
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"reserved_for\":{\"pid\":2147483647,\"start\":18446744073709551615,\"update\":57}"));
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(p.instances[0].reserved.pid, 0);
	assert_null(p.instances[0].reserved_bad);
	assert_int_equal(p.instances[1].reserved.pid, 2147483647);
	assert_true(p.instances[1].reserved.start == UINT64_MAX);
	assert_int_equal(p.instances[1].reserved.update, 57);
	assert_null(p.instances[1].reserved_bad);
	assert_rewritten_same(&p, buf, len);
	free(buf);
	state_doc_done(&p);
	/* start time 0 is a start time (a process started in the first tick) */
	insts[1].reserved.start = 0;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_true(p.instances[1].reserved.pid == 2147483647 && p.instances[1].reserved.start == 0);
	free(buf);
	state_doc_done(&p);
	/* the writer refuses a reservation without its update */
	insts[1].reserved.update = 0;
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	insts[1].reserved = (struct state_reservation){};
	/* none: no key (the document older daemons wrote) */
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_null(strstr(buf, "reserved"));
	free(buf);

	/* malformed: the document parses, the instance has no reservation and says why; nothing else lost */
	for (size_t i = 0; i < sizeof(rbads) / sizeof(rbads[0]); i++) {
		char *b;

		assert_true(asprintf(&b, "VLUDSTATE 1\n{\"next_id\":9,\"written_us\":0,\"instances\":[" UPD_INST
					 ",\"reserved_for\":%s,\"last_update\":{\"id\":4},\"mappings\":{\"m\":1}}],"
					 "\"fds\":[{\"id\":1,\"instance\":\"a\",\"name\":\"ram0\",\"type\":\"memfd\","
					 "\"dev\":1,\"ino\":2,\"rdev\":0,\"created_us\":0}],\"updates\":[" UPD("", UPD_DEV) "]}\n",
				     rbads[i].member) > 0);
		if (state_parse(b, strlen(b), &p) != 0)
			fail_msg("%s: the document was refused", rbads[i].what);
		if (!p.instances[0].reserved_bad || !strstr(p.instances[0].reserved_bad, rbads[i].reason))
			fail_msg("%s: reason %s", rbads[i].what, p.instances[0].reserved_bad ?: "(none)");
		assert_true(p.instances[0].reserved.pid == 0 && p.instances[0].reserved.start == 0 &&
			    p.instances[0].reserved.update == 0);
		assert_true(p.n_instances == 1 && p.n_fds == 1 && p.n_updates == 1 && p.next_id == 9);
		assert_string_equal(p.instances[0].last_update, "{\"id\":4}");
		assert_string_equal(p.instances[0].mappings, "{\"m\":1}");
		/* written again, the bad member is gone */
		assert_int_equal(state_serialize(&p, &again, &l2), 0);
		assert_null(strstr(again, "reserved"));
		free(again);
		state_doc_done(&p);
		free(b);
	}
	/* members a later writer may add to it are not looked at */
	{
		const char *b = "VLUDSTATE 1\n{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST
				",\"reserved_for\":{\"pid\":5,\"start\":6,\"update\":7,\"later\":true}}],\"fds\":[]}\n";

		assert_int_equal(state_parse(b, strlen(b), &p), 0);
		assert_null(p.instances[0].reserved_bad);
		assert_true(p.instances[0].reserved.pid == 5 && p.instances[0].reserved.start == 6 &&
			    p.instances[0].reserved.update == 7);
		state_doc_done(&p);
	}
}

/* an instance's held successor ("held_successor", docs/UPDATE.md R14: a successor vlud stopped until the old
 * VMM took the iommufd charge back): the same shape as "reserved_for", kept both ways next to it, absent in
 * older documents, and a malformed one costs that member only (the reservation beside it is kept) */
static void held_successor(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d, p = {};
	char *buf = NULL, *again = NULL;
	size_t len = 0, l2 = 0;
	static const struct {
		const char *member, *reason;
	} hbads[] = {
		{ "[]", "not an object" },
		{ "{\"pid\":0,\"start\":1,\"update\":3}", "\"pid\"" },
		{ "{\"pid\":5,\"update\":3}", "\"start\"" },
		{ "{\"pid\":5,\"start\":1}", "\"update\"" },
		/* the old VMM: a pid in range, with its start time */
		{ "{\"pid\":5,\"start\":1,\"update\":3,\"old_pid\":0,\"old_start\":1}", "\"old_pid\"" },
		{ "{\"pid\":5,\"start\":1,\"update\":3,\"old_pid\":\"6\",\"old_start\":1}", "\"old_pid\"" },
		{ "{\"pid\":5,\"start\":1,\"update\":3,\"old_pid\":6}", "\"old_start\"" },
		{ "{\"pid\":5,\"start\":1,\"update\":3,\"old_pid\":6,\"old_start\":-1}", "\"old_start\"" },
	};

	(void)unused;
	fill_doc(&d, insts, fds);
	insts[1].reserved = (struct state_reservation){ .pid = 40, .start = 41, .update = 42 };
	insts[1].held = (struct state_reservation){ .pid = 2147483647, .start = UINT64_MAX, .update = 58 };
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"held_successor\":{\"pid\":2147483647,\"start\":18446744073709551615,\"update\":58}"));
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_true(p.instances[0].held.pid == 0 && !p.instances[0].held_bad);
	assert_true(p.instances[1].held.pid == 2147483647 && p.instances[1].held.start == UINT64_MAX &&
		    p.instances[1].held.update == 58 && !p.instances[1].held_bad);
	assert_true(p.instances[1].reserved.pid == 40 && p.instances[1].reserved.start == 41 &&
		    p.instances[1].reserved.update == 42);
	assert_rewritten_same(&p, buf, len);
	free(buf);
	state_doc_done(&p);
	/* the old VMM's pid and start time (written since R14's restart rule), both ways; "reserved_for" never
	 * carries them */
	insts[1].held.old_pid = 2147483646;
	insts[1].held.old_start = UINT64_MAX - 1;
	insts[1].reserved.old_pid = 9;
	insts[1].reserved.old_start = 10;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"held_successor\":{\"pid\":2147483647,\"start\":18446744073709551615,\"update\":58,"
				    "\"old_pid\":2147483646,\"old_start\":18446744073709551614}"));
	assert_non_null(strstr(buf, "\"reserved_for\":{\"pid\":40,\"start\":41,\"update\":42}"));
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_true(p.instances[1].held.old_pid == 2147483646 && p.instances[1].held.old_start == UINT64_MAX - 1 &&
		    p.instances[1].held.pid == 2147483647 && !p.instances[1].held_bad);
	assert_true(p.instances[1].reserved.old_pid == 0 && p.instances[1].reserved.old_start == 0);
	assert_rewritten_same(&p, buf, len);
	free(buf);
	state_doc_done(&p);
	insts[1].reserved.old_pid = 0;
	insts[1].reserved.old_start = 0;
	/* the writer refuses one without its update; none: no key */
	insts[1].held.update = 0;
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	insts[1].held = (struct state_reservation){};
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_null(strstr(buf, "held_successor"));
	free(buf);
	/* malformed: the document parses, the member is dropped with the reason, the reservation beside it kept */
	for (size_t i = 0; i < sizeof(hbads) / sizeof(hbads[0]); i++) {
		char *b;

		assert_true(asprintf(&b, "VLUDSTATE 1\n{\"next_id\":9,\"written_us\":0,\"instances\":[" UPD_INST
					 ",\"reserved_for\":{\"pid\":5,\"start\":6,\"update\":7},\"held_successor\":%s}],"
					 "\"fds\":[]}\n",
				     hbads[i].member) > 0);
		if (state_parse(b, strlen(b), &p) != 0)
			fail_msg("%s: the document was refused", hbads[i].member);
		if (!p.instances[0].held_bad || !strstr(p.instances[0].held_bad, hbads[i].reason))
			fail_msg("%s: reason %s", hbads[i].member, p.instances[0].held_bad ?: "(none)");
		assert_true(p.instances[0].held.pid == 0 && p.instances[0].held.start == 0 && p.instances[0].held.update == 0);
		assert_true(p.instances[0].reserved.pid == 5 && !p.instances[0].reserved_bad);
		assert_int_equal(state_serialize(&p, &again, &l2), 0);
		assert_null(strstr(again, "held_successor"));
		assert_non_null(strstr(again, "reserved_for"));
		free(again);
		state_doc_done(&p);
		free(b);
	}
}

/* the log after the document: records applied in order, a cut or inconsistent record refused */
static char *log_of(struct state_doc *d, const struct state_fd *add, uint64_t del)
{
	char *line = NULL;
	size_t len = 0;

	if (add)
		assert_int_equal(state_log_add(add, d->next_id + 5, &line, &len), 0);
	else
		assert_int_equal(state_log_del(del, &line, &len), 0);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1));
	return line;
}

static void parsed_sample(struct state_doc *out)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_doc d;
	char *buf = NULL;
	size_t len = 0;

	fill_doc(&d, insts, fds);
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_int_equal(state_parse(buf, len, out), 0);
	free(buf);
}

static void log_records(void **unused)
{
	struct state_doc doc;
	struct state_fd nf = { .id = 9, .dev = 1, .ino = 2, .created_us = 3, .group = 9 };
	char *a, *b, *g = NULL, *all;
	size_t glen = 0, n;
	uint64_t ids[] = { 1, 9 };

	(void)unused;
	strcpy(nf.instance, "vm-1");
	strcpy(nf.name, "kick");
	strcpy(nf.type, "memfd");
	parsed_sample(&doc);
	a = log_of(&doc, &nf, 0);
	b = log_of(&doc, NULL, 7);
	assert_int_equal(state_log_group(20, ids, 2, 21, &g, &glen), 0);
	n = strlen(a) + strlen(b) + glen;
	all = malloc(n + 1);
	snprintf(all, n + 1, "%s%s%s", a, b, g);
	assert_int_equal(state_log_apply(&doc, all, n), 0);
	assert_int_equal(doc.n_fds, 3); /* 3 + kick - vdpa:vdpa0 */
	assert_true(doc.next_id == 21);
	for (size_t i = 0; i < doc.n_fds; i++) {
		assert_true(doc.fds[i].id != 7);
		if (doc.fds[i].id == 1 || doc.fds[i].id == 9)
			assert_true(doc.fds[i].group == 20);
	}
	state_doc_done(&doc);

	/* a record cut by a kill (no newline) or a log ending half-way: refused */
	parsed_sample(&doc);
	assert_int_equal(state_log_apply(&doc, a, strlen(a) - 1), -EINVAL);
	state_doc_done(&doc);
	parsed_sample(&doc);
	assert_int_equal(state_log_apply(&doc, all, strlen(a) + 5), -EINVAL);
	state_doc_done(&doc);
	/* the same add twice, a del of an unknown id, a group of an alias: refused */
	parsed_sample(&doc);
	snprintf(all, n + 1, "%s%s", a, a);
	assert_int_equal(state_log_apply(&doc, all, strlen(all)), -EINVAL);
	state_doc_done(&doc);
	parsed_sample(&doc);
	free(b);
	b = log_of(&doc, NULL, 12345);
	assert_int_equal(state_log_apply(&doc, b, strlen(b)), -EINVAL);
	state_doc_done(&doc);
	parsed_sample(&doc);
	free(g);
	ids[0] = 3; /* fds[2] is an alias */
	assert_int_equal(state_log_group(20, ids, 1, 21, &g, &glen), 0);
	assert_int_equal(state_log_apply(&doc, g, glen), -EINVAL);
	state_doc_done(&doc);
	/* garbage, an unknown op; an empty log changes nothing */
	parsed_sample(&doc);
	assert_int_equal(state_log_apply(&doc, "{\"op\":\"zap\"}\n", 14), -EINVAL);
	assert_int_equal(state_log_apply(&doc, "xx\n", 3), -EINVAL);
	state_doc_done(&doc);
	parsed_sample(&doc);
	assert_int_equal(state_log_apply(&doc, "", 0), 0);
	assert_int_equal(doc.n_fds, 3);
	state_doc_done(&doc);
	free(a);
	free(b);
	free(g);
	free(all);
}

/* the index page with a log */
static void index_log(void **unused)
{
	char page[VLUD_STATE_INDEX_SIZE];
	uint64_t off = 0, len = 0, loff = 1, llen = 1;

	(void)unused;
	assert_int_equal(state_index_serialize_log(8192, 1234, 16384, 99, page), 0);
	assert_int_equal(state_index_parse_log(page, sizeof(page), &off, &len, &loff, &llen), 0);
	assert_true(off == 8192 && len == 1234 && loff == 16384 && llen == 99);
	/* the old parser reads the document part of it */
	assert_int_equal(state_index_parse(page, sizeof(page), &off, &len), 0);
	/* no log: the keys are left out and read back as 0, 0 */
	assert_int_equal(state_index_serialize_log(8192, 1234, 16384, 0, page), 0);
	assert_null(memmem(page, sizeof(page), "log_", 4));
	assert_int_equal(state_index_parse_log(page, sizeof(page), &off, &len, &loff, &llen), 0);
	assert_true(loff == 0 && llen == 0);
	/* a log inside the index page or not page aligned; one key without the other */
	assert_int_equal(state_index_serialize_log(8192, 1234, 0, 10, page), -EINVAL);
	assert_int_equal(state_index_serialize_log(8192, 1234, 5000, 10, page), -EINVAL);
	assert_int_equal(state_index_parse_log("VLUDSTATE 1\n{\"offset\":8192,\"length\":1,\"log_offset\":8192}\n", 52,
					       &off, &len, &loff, &llen),
			 -EINVAL);
}

/* ---- iommufd/VFIO fds in update records: "iommufd" of an "updates" entry, an instance's "iommufd_update" ---- */

#define IOF_UPD(extra, iof)                                                                                        \
	"{\"id\":4,\"mode\":\"transfer\",\"path\":\"A\",\"phase\":\"restore\",\"old_pid\":10,\"new_pid\":11,"    \
	"\"started_us\":5" extra ",\"devices\":[],\"iommufd\":[" iof "]}"
#define IOF_DOC(member)                                                                                            \
	"{\"next_id\":1,\"written_us\":0,\"instances\":[" UPD_INST member "}],\"fds\":[]}"
#define N8(p) "\"" p "1\",\"" p "2\",\"" p "3\",\"" p "4\",\"" p "5\",\"" p "6\",\"" p "7\",\"" p "8\""
#define N32 N8("a") "," N8("b") "," N8("c") "," N8("d")

/* an iommufd-only record (no device) into its instance's "iommufd_update", a mixed one into "updates" with
 * its "iommufd" names; both come back as they were, in updates[] */
static void iof_roundtrip(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_update u[2];
	struct state_doc d, p = {};
	char *buf = NULL;
	size_t len = 0;
	const struct state_update *io = NULL, *mx = NULL;
	json_object *root;

	(void)unused;
	fill_doc(&d, insts, fds);
	fill_update(&u[0]); /* vm.2_x, mixed: two devices and two iommufd/VFIO fds */
	strcpy(u[0].iof[0], "iommufd:0");
	strcpy(u[0].iof[1], "vfio:dev0");
	u[0].n_iof = 2;
	memset(&u[1], 0, sizeof(u[1])); /* vm-1: iommufd only */
	strcpy(u[1].instance, "vm-1");
	u[1].id = 18;
	strcpy(u[1].mode, "exec");
	u[1].path = 'A';
	strcpy(u[1].phase, "rollback");
	u[1].old_pid = 1234;
	u[1].new_pid = 1234;
	u[1].old_start = 555;
	u[1].started_us = 1700000003000000LL;
	for (unsigned i = 0; i < VLUD_STATE_UPDATE_MAX_IOF; i++)
		snprintf(u[1].iof[i], sizeof(u[1].iof[i]), "iof%u", i);
	u[1].n_iof = VLUD_STATE_UPDATE_MAX_IOF;
	d.updates = u;
	d.n_updates = 2;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	/* where each is: "updates" has the mixed record only (an older vlud reads it as before), the
	 * iommufd-only one is its instance's member, without "instance" */
	root = json_tokener_parse(strchr(buf, '\n') + 1);
	assert_non_null(root);
	{
		json_object *ups, *inst0, *inst1, *e;

		assert_true(json_object_object_get_ex(root, "updates", &ups));
		assert_int_equal(json_object_array_length(ups), 1);
		assert_true(json_object_object_get_ex(json_object_array_get_idx(ups, 0), "iommufd", &e));
		assert_int_equal(json_object_array_length(e), 2);
		assert_true(json_object_object_get_ex(json_object_array_get_idx(ups, 0), "devices", &e));
		assert_int_equal(json_object_array_length(e), 2);
		json_object_object_get_ex(root, "instances", &e);
		inst0 = json_object_array_get_idx(e, 0);
		inst1 = json_object_array_get_idx(e, 1);
		assert_true(json_object_object_get_ex(inst0, "iommufd_update", &e));
		assert_false(json_object_object_get_ex(e, "instance", NULL));
		assert_false(json_object_object_get_ex(inst1, "iommufd_update", NULL));
	}
	json_object_put(root);
	assert_int_equal(state_parse(buf, len, &p), 0);
	assert_int_equal(p.n_updates, 2);
	for (size_t i = 0; i < p.n_updates; i++)
		if (strcmp(p.updates[i].instance, "vm-1") == 0)
			io = &p.updates[i];
		else
			mx = &p.updates[i];
	assert_non_null(io);
	assert_non_null(mx);
	assert_int_equal(io->n_devs, 0);
	assert_int_equal(io->n_iof, VLUD_STATE_UPDATE_MAX_IOF);
	assert_string_equal(io->iof[0], "iof0");
	assert_string_equal(io->iof[31], "iof31");
	assert_int_equal(io->id, 18);
	assert_string_equal(io->mode, "exec");
	assert_string_equal(io->phase, "rollback");
	assert_true(io->old_pid == 1234 && io->new_pid == 1234 && io->old_start == 555 && io->new_start == 0);
	assert_int_equal(io->started_us, 1700000003000000LL);
	assert_null(io->iof_bad);
	assert_int_equal(mx->n_devs, 2);
	assert_int_equal(mx->n_iof, 2);
	assert_string_equal(mx->iof[1], "vfio:dev0");
	assert_null(p.instances[0].iof_update_bad);
	/* parse -> serialize -> identical bytes */
	assert_rewritten_same(&p, buf, len);
	state_doc_done(&p);
	free(buf);

	/* a record without iommufd fds is written as before: no "iommufd" key */
	u[0].n_iof = 0;
	d.n_updates = 1;
	assert_int_equal(state_serialize(&d, &buf, &len), 0);
	assert_null(strstr(buf, "iommufd"));
	free(buf);
}

/* the writer refuses what no parser would take back: a record of neither devices nor iommufd fds, over a
 * limit, an iommufd-only record of an instance not in the document or two of one instance */
static void iof_writer_refuses(void **unused)
{
	struct state_instance insts[2];
	struct state_fd fds[3];
	struct state_update u[2];
	struct state_doc d;
	char *buf = NULL;
	size_t len = 0;

	(void)unused;
	fill_doc(&d, insts, fds);
	fill_update(&u[0]);
	u[0].n_devs = 0;
	d.updates = u;
	d.n_updates = 1;
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL); /* nothing to record */
	u[0].n_iof = VLUD_STATE_UPDATE_MAX_IOF + 1;
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	u[0].n_iof = 1;
	strcpy(u[0].iof[0], "iommufd:0");
	assert_int_equal(state_serialize(&d, &buf, &len), 0); /* control */
	free(buf);
	buf = NULL;
	strcpy(u[0].instance, "gone");
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	strcpy(u[0].instance, "vm-1");
	u[1] = u[0];
	d.n_updates = 2;
	assert_int_equal(state_serialize(&d, &buf, &len), -EINVAL);
	assert_null(buf);
}

/* an older document: update records without "iommufd" (n_iof 0), instances without "iommufd_update" */
static void iof_old_doc(void **unused)
{
	const char *ok = "VLUDSTATE 1\n" UPD_DOC("", UPD("", UPD_DEV));
	struct state_doc p = {};

	(void)unused;
	assert_int_equal(state_parse(ok, strlen(ok), &p), 0);
	assert_int_equal(p.n_updates, 1);
	assert_int_equal(p.updates[0].n_devs, 1);
	assert_int_equal(p.updates[0].n_iof, 0);
	assert_null(p.updates[0].iof_bad);
	assert_null(p.instances[0].iof_update_bad);
	state_doc_done(&p);
}

/* limits: 32 names is the most (in both places), names of 64 characters */
static void iof_limits(void **unused)
{
	const char *emb32 = "VLUDSTATE 1\n" IOF_DOC(",\"iommufd_update\":" IOF_UPD("", N32));
	const char *upd32 = "VLUDSTATE 1\n" UPD_DOC("", UPD(",\"iommufd\":[" N32 "]", UPD_DEV));
	const char *long64 = "VLUDSTATE 1\n" IOF_DOC(",\"iommufd_update\":" IOF_UPD("", "\"" LONG16 LONG16 LONG16 LONG16 "\""));
	struct state_doc p = {};

	(void)unused;
	assert_int_equal(state_parse(emb32, strlen(emb32), &p), 0);
	assert_int_equal(p.n_updates, 1);
	assert_int_equal(p.updates[0].n_iof, 32);
	assert_string_equal(p.updates[0].iof[31], "d8");
	assert_string_equal(p.updates[0].instance, "a");
	state_doc_done(&p);
	assert_int_equal(state_parse(upd32, strlen(upd32), &p), 0);
	assert_int_equal(p.updates[0].n_iof, 32);
	assert_null(p.updates[0].iof_bad);
	state_doc_done(&p);
	assert_int_equal(state_parse(long64, strlen(long64), &p), 0);
	assert_int_equal(strlen(p.updates[0].iof[0]), 64);
	state_doc_done(&p);
}

/* a malformed "iommufd_update" costs that record only (the instance's iof_update_bad says why): the
 * document, its instances and fds stand; a malformed "iommufd" beside devices costs the names only */
static void iof_malformed(void **unused)
{
	static const struct {
		const char *what, *member, *reason;
	} ebads[] = {
		{ "not an object", "[]", "not an object" },
		{ "iommufd missing", "{\"id\":4,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"save\",\"old_pid\":10,"
				     "\"new_pid\":0,\"started_us\":5,\"devices\":[]}",
		  "\"iommufd\" missing" },
		{ "devices missing", "{\"id\":4,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"save\",\"old_pid\":10,"
				     "\"new_pid\":0,\"started_us\":5,\"iommufd\":[\"i\"]}",
		  "\"devices\"" },
		{ "devices not empty", "{\"id\":4,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"save\",\"old_pid\":10,"
				       "\"new_pid\":0,\"started_us\":5,\"devices\":[" UPD_DEV "],\"iommufd\":[\"i\"]}",
		  "\"devices\"" },
		{ "iommufd empty", IOF_UPD("", ""), "1..32" },
		{ "iommufd not an array", "{\"id\":4,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"save\",\"old_pid\":10,"
					  "\"new_pid\":0,\"started_us\":5,\"devices\":[],\"iommufd\":\"i\"}",
		  "not an array" },
		{ "33 names", IOF_UPD("", N32 ",\"e1\""), "1..32" },
		{ "a name too long", IOF_UPD("", "\"" LONG16 LONG16 LONG16 LONG16 "x\""), "valid fd name" },
		{ "a name with a blank", IOF_UPD("", "\"a b\""), "valid fd name" },
		{ "a name not a string", IOF_UPD("", "7"), "valid fd name" },
		{ "a name twice", IOF_UPD("", "\"i\",\"j\",\"i\""), "twice" },
		{ "id zero", "{\"id\":0,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"save\",\"old_pid\":10,"
			     "\"new_pid\":0,\"started_us\":5,\"devices\":[],\"iommufd\":[\"i\"]}",
		  "malformed" },
		{ "unknown phase", "{\"id\":4,\"mode\":\"exec\",\"path\":\"A\",\"phase\":\"nap\",\"old_pid\":10,"
				   "\"new_pid\":0,\"started_us\":5,\"devices\":[],\"iommufd\":[\"i\"]}",
		  "malformed" },
	};
	static const struct {
		const char *what, *iof, *reason;
	} ubads[] = {
		{ "not an array", "{}", "not an array" },
		{ "empty", "[]", "1..32" },
		{ "33 names", "[" N32 ",\"e1\"]", "1..32" },
		{ "a device name", "[\"vdpa:vdpa0\"]", "a device name" },
		{ "a name twice", "[\"i\",\"i\"]", "twice" },
		{ "a bad name", "[\"\"]", "valid fd name" },
	};
	const char *both = "VLUDSTATE 1\n" UPD_DOC(",\"iommufd_update\":" IOF_UPD("", "\"i\""), UPD("", UPD_DEV));

	(void)unused;
	for (size_t i = 0; i < sizeof(ebads) / sizeof(ebads[0]); i++) {
		struct state_doc p = {};
		char *b;
		int r;

		assert_true(asprintf(&b, "VLUDSTATE 1\n{\"next_id\":2,\"written_us\":0,\"instances\":[" UPD_INST
				     ",\"iommufd_update\":%s}],\"fds\":[{\"id\":1,\"instance\":\"a\",\"name\":\"i\","
				     "\"type\":\"iommufd\",\"dev\":1,\"ino\":2,\"rdev\":3,\"created_us\":0}]}",
				     ebads[i].member) > 0);
		r = state_parse(b, strlen(b), &p);
		if (r != 0 || p.n_instances != 1 || p.n_fds != 1 || p.n_updates != 0 || !p.instances[0].iof_update_bad ||
		    !strstr(p.instances[0].iof_update_bad, ebads[i].reason))
			fail_msg("%s: r=%d, %zu instances, %zu fds, %zu updates, reason %s", ebads[i].what, r, p.n_instances,
				 p.n_fds, p.n_updates, r == 0 && p.n_instances ? p.instances[0].iof_update_bad : "-");
		state_doc_done(&p);
		free(b);
	}
	for (size_t i = 0; i < sizeof(ubads) / sizeof(ubads[0]); i++) {
		struct state_doc p = {};
		char *b;
		int r;

		assert_true(asprintf(&b, "VLUDSTATE 1\n" UPD_DOC("", UPD(",\"iommufd\":%s", UPD_DEV)), ubads[i].iof) > 0);
		r = state_parse(b, strlen(b), &p);
		if (r != 0 || p.n_updates != 1 || p.updates[0].n_devs != 1 || p.updates[0].n_iof != 0 ||
		    !p.updates[0].iof_bad || !strstr(p.updates[0].iof_bad, ubads[i].reason))
			fail_msg("%s: r=%d, %zu updates, n_iof %u, reason %s", ubads[i].what, r, p.n_updates,
				 p.n_updates ? p.updates[0].n_iof : 0, p.n_updates ? p.updates[0].iof_bad : "-");
		state_doc_done(&p);
		free(b);
	}
	/* one instance, two records: the "updates" entry stands, the member is dropped */
	{
		struct state_doc p = {};

		assert_int_equal(state_parse(both, strlen(both), &p), 0);
		assert_int_equal(p.n_updates, 1);
		assert_int_equal(p.updates[0].n_devs, 1);
		assert_non_null(p.instances[0].iof_update_bad);
		assert_non_null(strstr(p.instances[0].iof_update_bad, "\"updates\" too"));
		state_doc_done(&p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		{ "daemon/state/roundtrip", roundtrip, NULL, NULL, NULL },
		{ "daemon/state/empty-doc", empty_doc, NULL, NULL, NULL },
		{ "daemon/state/padded", padded, NULL, NULL, NULL },
		{ "daemon/state/header", header, NULL, NULL, NULL },
		{ "daemon/state/malformed", malformed, NULL, NULL, NULL },
		{ "daemon/state/control-row", control_row, NULL, NULL, NULL },
		{ "daemon/state/truncated", truncated, NULL, NULL, NULL },
		{ "daemon/state/index-page", index_page, NULL, NULL, NULL },
		{ "daemon/state/update-roundtrip", update_roundtrip, NULL, NULL, NULL },
		{ "daemon/state/update-old-doc", update_old_doc, NULL, NULL, NULL },
		{ "daemon/state/update-malformed", update_malformed, NULL, NULL, NULL },
		{ "daemon/state/update-start-malformed", update_start_malformed, NULL, NULL, NULL },
		{ "daemon/state/update-limits", update_limits, NULL, NULL, NULL },
		{ "daemon/state/reservation", reservation, NULL, NULL, NULL },
		{ "daemon/state/held_successor", held_successor, NULL, NULL, NULL },
		{ "daemon/state/iof-roundtrip", iof_roundtrip, NULL, NULL, NULL },
		{ "daemon/state/iof-writer-refuses", iof_writer_refuses, NULL, NULL, NULL },
		{ "daemon/state/iof-old-doc", iof_old_doc, NULL, NULL, NULL },
		{ "daemon/state/iof-limits", iof_limits, NULL, NULL, NULL },
		{ "daemon/state/iof-malformed", iof_malformed, NULL, NULL, NULL },
		{ "daemon/state/log-records", log_records, NULL, NULL, NULL },
		{ "daemon/state/index-log", index_log, NULL, NULL, NULL },
	};

	return cmocka_run_group_tests_name("daemon/state", tests, NULL, NULL);
}
