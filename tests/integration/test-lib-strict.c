/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lib-strict.c - libvlu holds the strict rules in both directions (docs/PROTOCOL.md section 1):
 *   - against a fake daemon (a child process on a real SOCK_SEQPACKET socket that answers each request
 *     with a reply breaking one rule: overlong UTF-8, a surrogate, a code point above U+10FFFF, a cut
 *     character, \u0000 in a member name, 1e999, Infinity, NaN, a raw tab, a lone surrogate escape, an
 *     integer beyond 64 bits): every call fails with -EPROTO at once (not at its timeout), and the next
 *     call on the same connection, answered properly, works;
 *   - against the real daemon: a call whose command or arguments hold invalid UTF-8, NUL or a non-finite
 *     number is refused with -EINVAL before anything is sent, and the connection keeps working.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"
#include "vlu.h"

static struct integ_daemon D;

/* each a reply without its id (added as ,"id":N}) */
static const struct {
	const char *name, *body;
} bad_replies[] = {
	{ "overlong", "{\"return\":{\"x\":\"\xc0\x80\"}" },
	{ "surrogate-utf8", "{\"return\":{\"x\":\"\xed\xa0\x80\"}" },
	{ "above-10ffff", "{\"return\":{\"x\":\"\xf4\x90\x80\x80\"}" },
	{ "cut-character", "{\"error\":{\"class\":\"Busy\",\"desc\":\"cut \xe2\x82\"}" },
	{ "nul-in-member-name", "{\"return\":{\"a\\u0000b\":1}" },
	{ "exp-overflow", "{\"return\":{\"x\":1e999}" },
	{ "infinity", "{\"return\":{\"x\":Infinity}" },
	{ "nan", "{\"return\":{\"x\":NaN}" },
	{ "raw-tab", "{\"return\":{\"x\":\"a\tb\"}" },
	{ "lone-surrogate-escape", "{\"return\":{\"x\":\"\\udc00\"}" },
	{ "integer-beyond-64-bits", "{\"return\":{\"x\":99999999999999999999}" },
};

/* The fake daemon: greeting, then answer request k (after capabilities) with bad_replies[k/2] when k is
 * even and a proper reply when k is odd.  Exits at EOF. */
static void fake_daemon(int lfd)
{
	static char buf[VLU_DEFAULT_MAX_MSG_BYTES + 1];
	const char *greeting = "{\"VLU\":{\"version\":{\"major\":1,\"minor\":0,\"micro\":0,\"package\":\"fake\"},"
			       "\"capabilities\":[]}}";
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	size_t k = 0;

	if (c < 0 || vlu_msg_send(c, greeting, strlen(greeting), NULL, 0) < 0)
		_exit(2);
	for (;;) {
		_cleanup_json_ json_object *req = NULL;
		json_object *id = NULL, *exec = NULL;
		char reply[512];
		ssize_t n = vlu_msg_recv(c, buf, sizeof(buf), NULL, 0, NULL);

		if (n <= 0)
			_exit(0);
		if (vlu_json_parse(buf, (size_t)n, 16, &req) < 0 || !json_object_object_get_ex(req, "id", &id) ||
		    !json_object_object_get_ex(req, "execute", &exec))
			_exit(3);
		if (strcmp(json_object_get_string(exec), "capabilities") == 0 || k % 2 == 1 ||
		    k / 2 >= ELEMENTSOF(bad_replies))
			snprintf(reply, sizeof(reply), "{\"return\":{\"ok\":true},\"id\":%lld}",
				 (long long)json_object_get_int64(id));
		else
			snprintf(reply, sizeof(reply), "%s,\"id\":%lld}", bad_replies[k / 2].body,
				 (long long)json_object_get_int64(id));
		if (strcmp(json_object_get_string(exec), "capabilities") != 0)
			k++;
		if (vlu_msg_send(c, reply, strlen(reply), NULL, 0) < 0)
			_exit(4);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_fake_daemon(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int lfd = -EBADF;
	struct vlu *v = NULL;
	int status = -1, r;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.sock", dir);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!tap_check(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0,
		       "fake/listen", "%m"))
		return;
	pid = fork();
	if (pid == 0)
		fake_daemon(lfd);
	r = vlu_connect(sa.sun_path, 5000, &v);
	if (!tap_check(r == 0, "fake/connect", "vlu_connect: %s", strerror(-r)))
		goto out;
	for (size_t i = 0; i < ELEMENTSOF(bad_replies); i++) {
		char name[96];
		_cleanup_json_ json_object *ret = NULL;
		int64_t t0 = now_ms();

		snprintf(name, sizeof(name), "fake/refused/%s", bad_replies[i].name);
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EPROTO && !ret && now_ms() - t0 < 2500, name,
			  "want -EPROTO at once, got %s after %lld ms", strerror(-r), (long long)(now_ms() - t0));
		json_object_put(ret);
		ret = NULL;
		snprintf(name, sizeof(name), "fake/next-call-works/%s", bad_replies[i].name);
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == 0 && json_object_get_boolean(json_object_object_get(ret, "ok")), name, "%s",
			  strerror(-r));
	}
out:
	vlu_close(v);
	if (pid > 0) {
		waitpid(pid, &status, 0);
		tap_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake/daemon-exit", "status %d", status);
	}
}

static void test_real_daemon(void)
{
	struct vlu *v = NULL;
	int r;

	r = vlu_connect(D.sock, 5000, &v);
	if (!tap_check(r == 0, "real/connect", "vlu_connect: %s", strerror(-r)))
		return;
	static const char *const bad_names[] = { "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "vm\xe2\x82" };
	for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
		_cleanup_json_ json_object *args = json_object_new_object();
		_cleanup_json_ json_object *ret = NULL, *st = NULL;
		char name[64];

		json_object_object_add(args, "instance", json_object_new_string(bad_names[i]));
		snprintf(name, sizeof(name), "real/not-sent/invalid-utf8-%zu", i);
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL && vlu_last_error(v, NULL, NULL) == -ENODATA, name,
			  "want -EINVAL without an error reply, got %s", strerror(-r));
		r = vlu_call(v, "status", NULL, NULL, 0, 5000, &st, NULL, NULL);
		tap_check(r == 0 && st, name, "status afterwards: %s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;

		json_object_object_add(args, "instance", json_object_new_string_len("vm\0x", 4));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/nul", "%s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;

		json_object_object_add(args, "x", json_object_new_double(INFINITY));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/infinity", "%s", strerror(-r));
	}
	{
		_cleanup_json_ json_object *ret = NULL;

		r = vlu_call(v, "sta\xc0\xb4us", NULL, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL, "real/not-sent/command", "%s", strerror(-r));
	}
	{
		/* valid non-ASCII travels: the daemon's name rule answers (an error reply, not -EPROTO) */
		_cleanup_json_ json_object *args = json_object_new_object(), *ret = NULL;
		const char *cls = NULL, *desc = NULL;

		json_object_object_add(args, "instance", json_object_new_string("vm-\xf0\x9f\x98\x80"));
		r = vlu_call(v, "fd.list", args, NULL, 0, 5000, &ret, NULL, NULL);
		tap_check(r == -EINVAL && vlu_last_error(v, &cls, &desc) == 0 && strcmp(cls, "InvalidArgument") == 0 &&
				  strstr(desc, "not a valid name"),
			  "real/utf8-4-sent", "%s %s", strerror(-r), desc ? desc : "-");
	}
	vlu_close(v);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("lib-strict");
	int r;

	tap_suite("integ-lib-strict");
	signal(SIGPIPE, SIG_IGN);
	if (!dir) {
		tap_check(false, "setup", "temporary directory: %m");
		return 1;
	}
	test_fake_daemon(dir);
	r = integ_daemon_start(&D, dir, NULL);
	if (tap_check(r == 0, "start-ready", "vlud did not become ready (%s)", strerror(-r)))
		test_real_daemon();
	tap_check(integ_daemon_alive(&D), "daemon-alive", "vlud exited");
	if (tap_failures())
		integ_daemon_dump_log(&D);
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGTERM, 5000);
	integ_rmrf(dir);
	return tap_exit_status();
}
