/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-strict.c - strict input on the real daemon (docs/PROTOCOL.md section 1): each
 * probe of the hostile-tenant report sent on a real socket (overlong UTF-8, surrogates, code points above
 * U+10FFFF, a cut character, \u0000 in a member name and in strings, 1e999, Infinity, NaN, a raw tab,
 * lone surrogate escapes, ids beyond int64, float/bool/array ids) is answered InvalidArgument with a
 * description that says what, without id; the connection keeps working; nothing changed (fd.list and
 * instance.list as before, no event to an operator subscriber).  The probes target fd.remove of a stored
 * fd, so that a probe accepted by mistake would show.  Valid edge cases work: 4-byte UTF-8 and escaped
 * non-BMP pairs in ids, int64 min/max ids echoed byte for byte.  Every reply (raw bytes) is valid UTF-8,
 * also when a description quotes a client string cut in the middle of a character.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"

static struct integ_daemon D;

/* One reply as raw bytes (so that the id's text can be compared), skipping events. */
static ssize_t recv_raw(int fd, char *buf, size_t bufsz, int timeout_ms)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) != 1)
			return -ETIMEDOUT;
		n = vlu_msg_recv(fd, buf, bufsz, NULL, 0, NULL);
		if (n <= 0)
			return n == 0 ? -ECONNRESET : n;
		if (!strstr(buf, "\"event\":"))
			return n;
	}
}

/* Send raw bytes, get the raw reply: valid UTF-8 as a whole and strict JSON, parsed into *ret. */
static int exchange(int c, const char *name, const char *msg, size_t len, char *raw, size_t rawsz,
		    json_object **ret)
{
	char err[256];
	ssize_t n;
	int r;

	r = integ_send_raw(c, msg, len, NULL, 0);
	if (r < 0)
		return tap_check(false, name, "send: %s", strerror(-r)), r;
	n = recv_raw(c, raw, rawsz, 5000);
	if (n < 0)
		return tap_check(false, name, "no reply: %s", strerror((int)-n)), (int)n;
	if (!vlu_utf8_valid(raw, (size_t)n))
		return tap_check(false, name, "reply is not valid UTF-8: %s", raw), -EILSEQ;
	r = vlu_json_parse_ex(raw, (size_t)n, 64, ret, err, sizeof(err));
	if (r < 0)
		return tap_check(false, name, "reply breaks the strict rules (%s): %s", err, raw), r;
	return 0;
}

#define FDREMOVE(id) "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[\"ram0\"]},\"id\":" id "}"
#define FDREMOVE_NAME(x) "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[" x "]},\"id\":1}"

static const struct probe {
	const char *name, *msg;
	size_t len; /* 0: strlen */
	const char *why; /* in the description */
} probes[] = {
	{ "overlong-2-id", FDREMOVE("\"\xc0\x80\""), 0, "invalid UTF-8" },
	{ "overlong-3-name", FDREMOVE_NAME("\"ram0\",\"\xe0\x80\xaf\""), 0, "invalid UTF-8" },
	{ "overlong-4-id", FDREMOVE("\"\xf0\x80\x80\xaf\""), 0, "invalid UTF-8" },
	{ "surrogate-utf8-id", FDREMOVE("\"\xed\xa0\x80\""), 0, "invalid UTF-8" },
	{ "above-10ffff-id", FDREMOVE("\"\xf4\x90\x80\x80\""), 0, "invalid UTF-8" },
	{ "cut-character-name", FDREMOVE_NAME("\"ram0\",\"x\xe2\x82\""), 0, "invalid UTF-8" },
	{ "invalid-utf8-key", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[\"ram0\"]},\"\xff\":1}", 0,
	  "invalid UTF-8" },
	{ "nul-in-member-name", "{\"execute\\u0000junk\":\"fd.remove\",\"arguments\":{\"names\":[\"ram0\"]}}", 0,
	  "NUL" },
	{ "nul-in-argument-name", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\\u0000x\":[\"ram0\"]}}", 0,
	  "NUL" },
	{ "nul-in-string", FDREMOVE_NAME("\"ram0\",\"ram0\\u0000x\""), 0, "NUL" },
	{ "nul-raw-byte", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[\"ram0\"]},\"id\":\"\0\"}", 63,
	  "control character U+0000" },
	{ "exp-overflow-id", FDREMOVE("1e999"), 0, "not finite" },
	{ "exp-overflow-arg", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[\"ram0\"],\"x\":-1e999}}", 0,
	  "not finite" },
	{ "infinity-id", FDREMOVE("Infinity"), 0, "value expected" },
	{ "nan-id", FDREMOVE("NaN"), 0, "value expected" },
	{ "raw-tab-id", FDREMOVE("\"a\tb\""), 0, "control character U+0009" },
	{ "raw-tab-name", FDREMOVE_NAME("\"ram0\t\""), 0, "control character U+0009" },
	{ "lone-high-surrogate-id", FDREMOVE("\"\\ud800\""), 0, "surrogate" },
	{ "lone-low-surrogate-name", FDREMOVE_NAME("\"ram0\",\"\\udc00\""), 0, "surrogate" },
	{ "reversed-surrogates-id", FDREMOVE("\"\\udc00\\ud800\""), 0, "surrogate" },
	{ "id-beyond-uint64", FDREMOVE("18446744073709551616"), 0, "64-bit range" },
	{ "id-below-int64", FDREMOVE("-9223372036854775809"), 0, "64-bit range" },
	{ "id-huge", FDREMOVE("99999999999999999999999999"), 0, "64-bit range" },
	{ "id-beyond-int64", FDREMOVE("9223372036854775808"), 0, "'id' must be" },
	{ "id-uint64-max", FDREMOVE("18446744073709551615"), 0, "'id' must be" },
	{ "id-float", FDREMOVE("1.5"), 0, "'id' must be" },
	{ "id-exponent", FDREMOVE("1e3"), 0, "'id' must be" },
	{ "id-bool", FDREMOVE("true"), 0, "'id' must be" },
	{ "id-array", FDREMOVE("[1]"), 0, "'id' must be" },
	{ "id-object", FDREMOVE("{\"a\":1}"), 0, "'id' must be" },
	{ "single-quotes", "{'execute':'fd.remove','arguments':{'names':['ram0']}}", 0, "member name" },
};

/* The events already sent (of the setup); the first one in *ret_first (malloc'd) if asked. */
static size_t drain_events(int ev, int timeout_ms, char **ret_first)
{
	static char raw[VLU_DEFAULT_MAX_MSG_BYTES + 1];
	struct pollfd pfd = { .fd = ev, .events = POLLIN };
	size_t n = 0;

	while (poll(&pfd, 1, timeout_ms) == 1 && vlu_msg_recv(ev, raw, sizeof(raw), NULL, 0, NULL) > 0)
		if (n++ == 0 && ret_first)
			*ret_first = strdup(raw);
	return n;
}

static void test_probes(int c, int ev)
{
	_cleanup_free_ char *before = integ_snapshot(c), *after = NULL, *event = NULL;
	static char raw[VLU_DEFAULT_MAX_MSG_BYTES + 1];

	(void)drain_events(ev, 300, NULL);

	for (size_t i = 0; i < ELEMENTSOF(probes); i++) {
		const struct probe *p = &probes[i];
		_cleanup_json_ json_object *rep = NULL, *st = NULL;
		const char *cls, *desc;

		if (exchange(c, p->name, p->msg, p->len ? p->len : strlen(p->msg), raw, sizeof(raw), &rep) < 0)
			continue;
		cls = integ_error_class(rep);
		desc = integ_error_desc(rep);
		if (!tap_check(cls && strcmp(cls, "InvalidArgument") == 0 && desc && strstr(desc, p->why) &&
				       !json_object_object_get_ex(rep, "id", NULL),
			       p->name, "want InvalidArgument '...%s...' without id, got %s", p->why, raw))
			continue;
		/* the same connection still works */
		st = integ_call_json(c, "status", NULL);
		tap_check(st && integ_return(st), p->name, "status after the probe: %s",
			  st ? json_object_to_json_string(st) : "no reply");
	}
	after = integ_snapshot(c);
	tap_check(before && after && strcmp(before, after) == 0, "nothing-changed", "before %s\nafter  %s", before,
		  after);
	/* no event reached the operator subscriber (an fd.remove accepted by mistake would send one) */
	tap_check(drain_events(ev, 300, &event) == 0, "no-events", "an event reached the subscriber: %s",
		  event ? event : "?");
}

/* valid edge cases: ids come back byte for byte */
static void test_ids_echoed(int c)
{
	static const struct {
		const char *name, *id, *echoed;
	} rows[] = {
		{ "id-int64-min", "-9223372036854775808", "-9223372036854775808" },
		{ "id-int64-max", "9223372036854775807", "9223372036854775807" },
		{ "id-utf8-4", "\"vm-\xf0\x9f\x98\x80-\xc3\xa9\"", "\"vm-\xf0\x9f\x98\x80-\xc3\xa9\"" },
		{ "id-escaped-pair", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"" },
		{ "id-10ffff", "\"\xf4\x8f\xbf\xbf\"", "\"\xf4\x8f\xbf\xbf\"" },
		{ "id-null-is-none", "null", NULL },
	};
	static char raw[VLU_DEFAULT_MAX_MSG_BYTES + 1];

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_json_ json_object *rep = NULL;
		_cleanup_free_ char *msg = NULL, *want = NULL;

		if (asprintf(&msg, "{\"execute\":\"instance.list\",\"id\":%s}", rows[i].id) < 0 ||
		    (rows[i].echoed && asprintf(&want, ",\"id\":%s}", rows[i].echoed) < 0))
			return;
		if (exchange(c, rows[i].name, msg, strlen(msg), raw, sizeof(raw), &rep) < 0)
			continue;
		if (!integ_return(rep)) {
			tap_check(false, rows[i].name, "refused: %s", raw);
			continue;
		}
		if (want)
			tap_check(strlen(raw) > strlen(want) && strcmp(raw + strlen(raw) - strlen(want), want) == 0,
				  rows[i].name, "want the reply to end in %s, got %s", want, raw);
		else
			tap_check(!strstr(raw, "\"id\":"), rows[i].name, "want no id, got %s", raw);
	}
	/* a 4-byte character in an argument is fine too: the name rules refuse it, as a name */
	{
		_cleanup_json_ json_object *rep = NULL;
		const char *m = "{\"execute\":\"fd.list\",\"arguments\":{\"instance\":\"\xf0\x9f\x98\x80\"},\"id\":9}";

		if (exchange(c, "utf8-4-argument", m, strlen(m), raw, sizeof(raw), &rep) == 0)
			tap_check(integ_error_class(rep) && strstr(integ_error_desc(rep), "not a valid name") &&
					  json_object_get_int(integ_get(rep, "id")) == 9,
				  "utf8-4-argument", "want the name rule, id 9: %s", raw);
	}
}

/* descriptions quoting a client string cut at a width stay valid UTF-8 (repaired or cut at a boundary) */
static void test_desc_cut(int c)
{
	static char raw[VLU_DEFAULT_MAX_MSG_BYTES + 1];
	char name[200], key[128], *msg = NULL;
	_cleanup_json_ json_object *rep = NULL, *rep2 = NULL;

	/* an unknown command of euro signs: commands.c quotes it with "%.64s", which ends in half of one */
	name[0] = '\0';
	for (int i = 0; i < 30; i++)
		strcat(name, "\xe2\x82\xac");
	if (asprintf(&msg, "{\"execute\":\"%s\",\"id\":11}", name) < 0)
		return;
	if (exchange(c, "desc-cut-unknown-command", msg, strlen(msg), raw, sizeof(raw), &rep) == 0)
		tap_check(integ_error_class(rep) && strcmp(integ_error_class(rep), "CommandNotFound") == 0 &&
				  json_object_get_int(integ_get(rep, "id")) == 11,
			  "desc-cut-unknown-command", "got %s", raw);
	free(msg);
	/* an unknown argument whose 64th byte is inside a character */
	memset(key, 'k', 63);
	strcpy(key + 63, "\xe2\x82\xac-tail");
	if (asprintf(&msg, "{\"execute\":\"fd.list\",\"arguments\":{\"%s\":1},\"id\":12}", key) < 0)
		return;
	if (exchange(c, "desc-cut-unknown-argument", msg, strlen(msg), raw, sizeof(raw), &rep2) == 0)
		tap_check(integ_error_desc(rep2) && strstr(integ_error_desc(rep2), "kkkk'") &&
				  json_object_get_int(integ_get(rep2, "id")) == 12,
			  "desc-cut-unknown-argument", "want the key cut before the euro sign: %s", raw);
	free(msg);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("strict");
	_cleanup_close_ int c = -EBADF, ev = -EBADF, mfd = -EBADF;
	_cleanup_json_ json_object *rep = NULL, *rep2 = NULL, *rep3 = NULL;
	int r;

	tap_suite("integ-strict");
	signal(SIGPIPE, SIG_IGN);
	if (!dir) {
		tap_check(false, "setup", "temporary directory: %m");
		return 1;
	}
	r = integ_daemon_start(&D, dir, NULL);
	if (!tap_check(r == 0, "start-ready", "vlud did not become ready (%s)", strerror(-r))) {
		integ_daemon_dump_log(&D);
		integ_daemon_stop(&D, SIGKILL, 1000);
		integ_rmrf(dir);
		return 1;
	}
	c = integ_open_client(D.sock, NULL);
	ev = integ_open_client(D.sock, NULL);
	if (!tap_check(c >= 0 && ev >= 0, "clients", "connect/negotiate: %s", strerror(-(c < 0 ? c : ev))))
		goto out;
	rep = integ_call_json(ev, "events.subscribe", NULL);
	rep2 = integ_call_json(c, "instance.register", "{\"name\":\"vm-strict\"}");
	mfd = memfd_create("strict-ram", MFD_CLOEXEC);
	r = mfd >= 0 ? integ_call(c, "fd.store", "{\"names\":[\"ram0\"]}", &mfd, 1, &rep3, NULL, 0, NULL) : -errno;
	if (!tap_check(integ_return(rep) && integ_return(rep2) && r == 0 && integ_return(rep3), "setup",
		       "subscribe/register/store failed (r=%d)", r))
		goto out;

	test_probes(c, ev);
	test_ids_echoed(c);
	test_desc_cut(c);
	tap_check(integ_daemon_alive(&D), "daemon-alive", "vlud exited");
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGTERM, 5000);
	integ_rmrf(dir);
	return tap_exit_status();
}
