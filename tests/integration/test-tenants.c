/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tenants.c - hostile tenants (docs/SECURITY.md): two unprivileged uids admitted as VMMs by the
 * policy, tenant A (60001) and tenant B (60002), against the built vlud with the fd store on (the test
 * plays PID 1's part).  B hands vlud fds whose close blocks for as long as B wants (a TCP socket with
 * SO_LINGER {1, LINGER_S} and unsent data to a peer that never reads), in a refused request after 150
 * requests before negotiation, and stored then removed; while those closes block, A's status answers,
 * A's fd round trip completes and A's own fd.remove closes A's fd at once (the far end of a pipe sees
 * EOF); the closes really blocked (vlud logs them with B's lane); the fd store never receives a
 * socket; O_PATH fds are refused for every type; device.open refuses a symlink on a listed path;
 * SIGTERM while B's close still blocks ends vlud within a bound.  Each tenant is a forked child with
 * its own uid; it reports its checks over a pipe, the parent prints them as TAP lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basics.h"
#include "integ.h"
#include "vlu-proto.h"

#define UID_A 60001
#define UID_B 60002
#define LINGER_S 6
#define LIVE_MS 1000 /* a liveness bound, not a benchmark */

static struct integ_daemon D;
static struct integ_notify N;
static char *dir;
static int listener = -EBADF; /* a TCP listener nobody accepts from: its peers' data is never read */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a tenant: a forked child with its own uid, reporting checks over a pipe ---- */

static int report_fd = -EBADF;

static void child_check(bool cond, const char *name, const char *fmt, ...)
{
	char buf[1024], why[800] = "";
	va_list ap;

	if (!cond && fmt) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
	}
	snprintf(buf, sizeof(buf), "%s %s%s%s\n", cond ? "ok" : "fail", name, cond ? "" : ": ", why);
	(void)!write(report_fd, buf, strlen(buf));
}

typedef void (*tenant_fn)(void *arg);

struct tenant {
	pid_t pid;
	int rd; /* report pipe, read end */
};

static int become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	return 0;
}

static void tenant_start(struct tenant *t, uid_t uid, tenant_fn fn, void *arg)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		t->pid = -1;
		return;
	}
	fflush(stdout);
	t->pid = fork();
	if (t->pid == 0) {
		close(p[0]);
		report_fd = p[1];
		if (become(uid) < 0) {
			child_check(false, "become", "setresuid(%u): %m", (unsigned)uid);
			_exit(1);
		}
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	t->rd = p[0];
}

/* the tenant's checks as TAP lines, until it exits */
static void tenant_finish(struct tenant *t, const char *prefix)
{
	char buf[8192], *line, *save = NULL;
	size_t len = 0;
	ssize_t n;
	int st = 0;

	if (t->pid < 0) {
		tap_check(false, prefix, "fork failed");
		return;
	}
	while ((n = read(t->rd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(t->rd);
	waitpid(t->pid, &st, 0);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[256];
		bool ok = strncmp(line, "ok ", 3) == 0;
		const char *rest = line + (ok ? 3 : 5);
		const char *colon = strstr(rest, ": ");
		size_t nl = colon ? (size_t)(colon - rest) : strlen(rest);

		snprintf(name, sizeof(name), "%s-%.*s", prefix, (int)nl, rest);
		tap_check(ok, name, "%s", colon ? colon + 2 : "");
	}
	tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, prefix, "tenant exited with status 0x%x", st);
}

/* ---- the fd whose close blocks ---- */

/* A TCP socket connected to `listener` (never accepted, never read), its send buffer full and
 * SO_LINGER {1, LINGER_S}: the last close() waits LINGER_S seconds for a FIN that cannot go out. */
static int lingering_socket(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct linger l = { .l_onoff = 1, .l_linger = LINGER_S };
	int s;
	char chunk[65536];

	if (getsockname(listener, (struct sockaddr *)&a, &al) < 0)
		return -errno;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -errno;
	}
	memset(chunk, 'x', sizeof(chunk));
	(void)fcntl(s, F_SETFL, O_NONBLOCK);
	/* megabytes queued behind a closed window (a small send buffer is not enough: the window reopens
	 * and the FIN goes out before the linger time) */
	for (int i = 0; i < 4096; i++)
		if (send(s, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
			break; /* EAGAIN: the peer's window and our buffer are full */
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0) {
		close(s);
		return -errno;
	}
	return s;
}

static const char *cls(json_object *rep)
{
	const char *c = integ_error_class(rep);

	return c ? c : (integ_return(rep) ? "ok" : "-");
}

/* ---- tenant B: hands vlud blocking closes ---- */

static void b_refused_request(void *arg)
{
	_cleanup_json_ json_object *rep = NULL;
	int c = integ_connect(D.sock), s, r;
	bool ok = true;

	(void)arg;
	if (c < 0) {
		child_check(false, "connect", "%s", strerror(-c));
		return;
	}
	/* requests before negotiation: refused, and so will be the last one, with the socket attached */
	for (int i = 0; i < 150 && ok; i++) {
		static const char m[] = "{\"execute\":\"status\",\"id\":1}";

		ok = integ_send_raw(c, m, strlen(m), NULL, 0) >= 0;
	}
	s = lingering_socket();
	child_check(s >= 0, "lingering-socket", "%s", strerror(-s));
	if (s < 0)
		return;
	{
		static const char m[] = "{\"execute\":\"status\",\"id\":2}";

		r = integ_send_raw(c, m, strlen(m), &s, 1);
	}
	close(s); /* vlud's copy is the last reference now */
	child_check(ok && r >= 0, "sent", "send: %s", strerror(-r));
	/* the reply to the refused request comes, its fd's close notwithstanding */
	for (int i = 0; i < 200; i++) {
		json_object_put(TAKE_PTR(rep));
		r = integ_recv(c, 3000, &rep, NULL, 0, NULL);
		if (r < 0 || json_object_object_get_ex(rep, "id", NULL))
			if (r < 0 || json_object_get_int(json_object_object_get(rep, "id")) == 2)
				break;
	}
	child_check(r == 0 && integ_error_class(rep), "refused-reply", "r=%d %s", r, cls(rep));
	close(c);
}

static void b_store_remove(void *arg)
{
	_cleanup_json_ json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), s, r;

	(void)arg;
	if (c < 0) {
		child_check(false, "connect", "%s", strerror(-c));
		return;
	}
	r = integ_call(c, "instance.register", "{\"name\":\"tenant-b\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	s = lingering_socket();
	if (s < 0) {
		child_check(false, "lingering-socket", "%s", strerror(-s));
		return;
	}
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"sock\"]}", &s, 1, &rep, NULL, 0, NULL);
	close(s);
	child_check(r == 0 && integ_return(rep), "store-socket", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.remove", "{\"names\":[\"sock\"]}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "remove-socket", "%s", cls(rep));
	/* the instance stays registered (its connection open) until the parent says so */
	{
		char x;

		(void)!read(STDIN_FILENO, &x, 1);
	}
	close(c);
}

static void b_opath(void *arg)
{
	_cleanup_json_ json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), m, p, r;
	char proc[64];

	(void)arg;
	if (c < 0) {
		child_check(false, "connect", "%s", strerror(-c));
		return;
	}
	r = integ_call(c, "instance.register", "{\"name\":\"tenant-b2\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	/* an O_PATH fd of a memfd (a type B may store) */
	m = memfd_create("b-ram", MFD_CLOEXEC);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m);
	p = open(proc, O_PATH | O_CLOEXEC);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"opath-memfd\"]}", &p, 1, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_error_class(rep) && strcmp(integ_error_class(rep), "InvalidArgument") == 0 &&
			    strstr(integ_error_desc(rep), "O_PATH"),
		    "opath-memfd-refused", "%s: %s", cls(rep), integ_error_desc(rep) ? integ_error_desc(rep) : "-");
	close(p);
	/* the memfd itself is fine */
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", &m, 1, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "memfd-stored", "%s", cls(rep));
	close(m);
	/* an O_PATH fd of a character device (what would block a device's real holder) */
	p = open("/dev/null", O_PATH | O_CLOEXEC);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"opath-dev\"]}", &p, 1, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_error_class(rep) && strcmp(integ_error_class(rep), "InvalidArgument") == 0,
		    "opath-chardev-refused", "%s", cls(rep));
	close(p);
	/* device.open through a listed path that is a symlink (in a directory B can write) */
	json_object_put(TAKE_PTR(rep));
	{
		char args[600];

		snprintf(args, sizeof(args), "{\"device\":\"%s/bdir/vdpa-link\"}", dir);
		r = integ_call(c, "device.open", args, NULL, 0, &rep, NULL, 0, NULL);
	}
	child_check(r == 0 && integ_error_class(rep) && strcmp(integ_error_class(rep), "PermissionDenied") == 0 &&
			    strstr(integ_error_desc(rep), "symbolic link"),
		    "symlink-refused", "%s: %s", cls(rep), integ_error_desc(rep) ? integ_error_desc(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "instance.release", "{\"name\":\"tenant-b2\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "release", "%s", cls(rep));
	close(c);
}

/* ---- tenant A: must not notice ---- */

static void a_live(void *arg)
{
	_cleanup_json_ json_object *rep = NULL;
	const char *tag = arg;
	int64_t t0 = now_ms(), t;
	int c, r, m, pp[2], got[4];
	size_t ng = 0;
	struct stat s1, s2;
	char name[64], x;

	c = integ_open_client(D.sock, NULL);
	if (c < 0) {
		child_check(false, "connect", "%s", strerror(-c));
		return;
	}
	r = integ_call(c, "status", NULL, NULL, 0, &rep, NULL, 0, NULL);
	t = now_ms() - t0;
	child_check(r == 0 && integ_return(rep) && t < LIVE_MS, "connect-and-status-answer", "r=%d %s after %lld ms",
		    r, cls(rep), (long long)t);
	snprintf(name, sizeof(name), "{\"name\":\"tenant-a-%s\"}", tag);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "instance.register", name, NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	/* fd round trip: a memfd stored and retrieved is the same file */
	m = memfd_create("a-ram", MFD_CLOEXEC);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", &m, 1, &rep, NULL, 0, NULL);
	json_object_put(TAKE_PTR(rep));
	if (r == 0)
		r = integ_call(c, "fd.retrieve", "{\"names\":[\"ram\"]}", NULL, 0, &rep, got, ELEMENTSOF(got), &ng);
	child_check(r == 0 && ng == 1 && fstat(m, &s1) == 0 && fstat(got[0], &s2) == 0 && s1.st_ino == s2.st_ino &&
			    s1.st_dev == s2.st_dev,
		    "fd-round-trip", "r=%d %s nfds %zu", r, cls(rep), ng);
	if (ng == 1)
		close(got[0]);
	close(m);
	/* its own fd.remove closes its fd now, not behind B's: the write end of a pipe, EOF at the reader */
	if (pipe2(pp, O_CLOEXEC) < 0)
		return;
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.store", "{\"names\":[\"pipe\"]}", &pp[1], 1, &rep, NULL, 0, NULL);
	close(pp[1]);
	child_check(r == 0 && integ_return(rep), "store-pipe", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	t0 = now_ms();
	r = integ_call(c, "fd.remove", "{\"names\":[\"pipe\"]}", NULL, 0, &rep, NULL, 0, NULL);
	{
		struct pollfd pf = { .fd = pp[0], .events = POLLIN };

		(void)poll(&pf, 1, LIVE_MS);
	}
	(void)fcntl(pp[0], F_SETFL, O_NONBLOCK);
	t = now_ms() - t0;
	child_check(r == 0 && integ_return(rep) && read(pp[0], &x, 1) == 0 && t < LIVE_MS, "own-close-not-delayed",
		    "%s, EOF after %lld ms", cls(rep), (long long)t);
	close(pp[0]);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "instance.release", name, NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "release", "%s", cls(rep));
	close(c);
}

/* ---- the parent ---- */

/* vlud's log lines saying a close in B's lane took long */
static unsigned slow_closes_logged(void)
{
	_cleanup_free_ char *cmd = NULL, *out = NULL;
	unsigned n = 0;

	if (asprintf(&cmd, "grep -c 'lane uid %u) took' %s", UID_B, D.log) < 0)
		return 0;
	if (integ_run(cmd, &out) >= 0 && out)
		n = (unsigned)atoi(out);
	return n;
}

static bool fdstore_has_socket(void)
{
	bool found = false;

	integ_notify_lock(&N);
	for (size_t i = 0; i < N.sd.n_store; i++) {
		struct stat st;

		if (fstat(N.sd.store[i].fd, &st) == 0 && S_ISSOCK(st.st_mode))
			found = true;
	}
	integ_notify_unlock(&N);
	return found;
}

static bool wait_log(unsigned want, int timeout_ms)
{
	for (int w = 0; w < timeout_ms; w += 100) {
		if (slow_closes_logged() >= want)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

int main(void)
{
	_cleanup_free_ char *cfg = NULL, *extra = NULL, *bdir = NULL, *link = NULL;
	struct integ_daemon_opts o = {};
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct tenant ta, tb;
	int64_t t0;
	int r, in[2];

	tap_suite("tenants");
	if (geteuid() != 0) {
		tap_skip("all", "needs root (two unprivileged uids)");
		return tap_exit_status();
	}
	signal(SIGPIPE, SIG_IGN);
	dir = integ_mkdtemp("tenants");
	if (!dir || chmod(dir, 0755) < 0)
		return 1;
	/* a directory tenant B can write, listed in B's rule: B puts a symlink there */
	if (asprintf(&bdir, "%s/bdir", dir) < 0 || mkdir(bdir, 0777) < 0 || chmod(bdir, 0777) < 0 ||
	    asprintf(&link, "%s/vdpa-link", bdir) < 0 || symlink("/dev/null", link) < 0)
		return 1;
	if (asprintf(&extra,
		     "{ \"uids\": [%u], \"fd_types\": [\"memfd\", \"eventfd\", \"pipe\"] },\n"
		     "{ \"uids\": [%u], \"devices\": [\"%s\"], \"fd_types\": [\"memfd\", \"eventfd\", \"socket\"] }",
		     UID_A, UID_B, link) < 0)
		return 1;
	cfg = integ_config(dir, extra, NULL);
	o.config_json = cfg;
	r = integ_notify_open(&N, dir);
	if (!tap_check(r >= 0, "notify-socket", "%s", strerror(-r)))
		return tap_exit_status();
	o.notify = &N;
	r = integ_daemon_start(&D, dir, &o);
	if (r >= 0)
		r = integ_daemon_wait_ready(&D, 10000);
	if (!tap_check(r >= 0, "daemon-ready", "%s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		return tap_exit_status();
	}
	(void)integ_notify_start(&N);

	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(listener, 16) < 0)
		return 1;

	/* 1. a refused request's fd blocks in close: nothing else waits */
	tenant_start(&tb, UID_B, b_refused_request, NULL);
	tenant_finish(&tb, "b-refused-request");
	t0 = now_ms();
	tenant_start(&ta, UID_A, a_live, "1");
	tenant_finish(&ta, "a-live-while-refused-fd-closes");
	tap_check(now_ms() - t0 < LINGER_S * 1000 - 1000, "a-done-before-b-close-ends", "A took %lld ms",
		  (long long)(now_ms() - t0));
	tap_check(wait_log(1, (LINGER_S + 5) * 1000), "b-refused-fd-close-really-blocked",
		  "no 'lane uid %u) took' line in vlud's log", UID_B);

	/* 2. fd.store + fd.remove of such a socket: B's lane blocks, A's own closes do not */
	if (pipe2(in, O_CLOEXEC) < 0)
		return 1;
	fflush(stdout);
	tb.pid = -1;
	{
		int p[2];

		if (pipe2(p, O_CLOEXEC) == 0) {
			tb.pid = fork();
			if (tb.pid == 0) {
				close(p[0]);
				dup2(in[0], STDIN_FILENO);
				report_fd = p[1];
				if (become(UID_B) < 0)
					_exit(1);
				b_store_remove(NULL);
				_exit(0);
			}
			close(p[1]);
			tb.rd = p[0];
		}
	}
	close(in[0]);
	usleep(300 * 1000); /* B has stored and removed (its reply is before it waits on stdin) */
	t0 = now_ms();
	tenant_start(&ta, UID_A, a_live, "2");
	tenant_finish(&ta, "a-live-while-stored-fd-closes");
	tap_check(now_ms() - t0 < LINGER_S * 1000 - 1000, "a-done-before-b-remove-ends", "A took %lld ms",
		  (long long)(now_ms() - t0));
	tap_check(!fdstore_has_socket(), "fdstore-never-gets-a-socket", "PID 1's store holds a socket");
	(void)!write(in[1], "x", 1);
	close(in[1]);
	tenant_finish(&tb, "b-store-remove");
	tap_check(wait_log(2, (LINGER_S + 5) * 1000), "b-removed-fd-close-really-blocked",
		  "fewer than 2 'lane uid %u) took' lines in vlud's log", UID_B);

	/* 3. O_PATH and symlinks */
	tenant_start(&tb, UID_B, b_opath, NULL);
	tenant_finish(&tb, "b-opath-symlink");

	/* 4. SIGTERM while a tenant's close blocks: vlud still ends (device lane done, client lanes 1 s) */
	tenant_start(&tb, UID_B, b_refused_request, NULL);
	tenant_finish(&tb, "b-refused-request-before-stop");
	t0 = now_ms();
	r = integ_daemon_stop(&D, SIGTERM, 5000);
	tap_check(r >= 0 && now_ms() - t0 < 4000, "stop-not-held-by-a-blocked-close", "stop: %s after %lld ms",
		  r < 0 ? strerror(-r) : "ok", (long long)(now_ms() - t0));
	if (tap_failures())
		integ_daemon_dump_log(&D);
	integ_notify_close(&N);
	close(listener);
	integ_rmrf(dir);
	return tap_exit_status();
}
