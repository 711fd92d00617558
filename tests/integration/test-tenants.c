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
#include <sys/ioctl.h>
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
#define QUOTA_CONNS 6
#define QUOTA_INST 3
#define QUOTA_FDS 4
#define STR_(x) #x
#define STR(x) STR_(x)

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

/* fork a tenant running fn(arg) as uid; ret_in (optional): the write end of a pipe that is its stdin
 * (for "go on" signals), else it inherits ours */
static void tenant_start_in(struct tenant *t, uid_t uid, tenant_fn fn, void *arg, int *ret_in)
{
	int p[2], in[2] = { -EBADF, -EBADF };

	t->pid = -1;
	if ((ret_in && pipe2(in, O_CLOEXEC) < 0) || pipe2(p, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	t->pid = fork();
	if (t->pid == 0) {
		close(p[0]);
		if (ret_in)
			dup2(in[0], STDIN_FILENO);
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
	if (ret_in) {
		close(in[0]);
		*ret_in = in[1];
	}
}

static void tenant_start(struct tenant *t, uid_t uid, tenant_fn fn, void *arg)
{
	tenant_start_in(t, uid, fn, arg, NULL);
}

/* The tenant's checks as TAP lines, until it exits or (stop_at) sends that line: true if it did. */
static bool tenant_lines(struct tenant *t, const char *prefix, const char *stop_at)
{
	char line[1024];
	size_t n = 0;

	while (n < sizeof(line) - 1 && read(t->rd, line + n, 1) == 1) {
		char name[256];
		const char *rest, *colon;
		size_t nl;
		bool ok;

		if (line[n] != '\n') {
			n++;
			continue;
		}
		line[n] = '\0';
		n = 0;
		if (stop_at && strcmp(line, stop_at) == 0)
			return true;
		ok = strncmp(line, "ok ", 3) == 0;
		rest = line + (ok ? 3 : strncmp(line, "fail ", 5) == 0 ? 5 : 0);
		colon = strstr(rest, ": ");
		nl = colon ? (size_t)(colon - rest) : strlen(rest);
		snprintf(name, sizeof(name), "%s-%.*s", prefix, (int)nl, rest);
		tap_check(ok, name, "%s", colon ? colon + 2 : "");
	}
	return false;
}

static void tenant_finish(struct tenant *t, const char *prefix)
{
	int st = 0;

	if (t->pid < 0) {
		tap_check(false, prefix, "fork failed");
		return;
	}
	(void)tenant_lines(t, prefix, NULL);
	close(t->rd);
	waitpid(t->pid, &st, 0);
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
	 * and the FIN goes out before the linger time); sent in rounds until the queue stays full */
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 4096; i++)
			if (send(s, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
				break; /* EAGAIN: the peer's window and our buffer are full */
		usleep(50 * 1000);
	}
	{
		int unsent = 0;

		if (ioctl(s, TIOCOUTQ, &unsent) < 0 || unsent < 256 * 1024) {
			close(s);
			return -ENOBUFS; /* nothing would make its close wait */
		}
	}
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
	json_object_put(integ_call_json(c, "instance.release", "{\"name\":\"tenant-b\"}"));
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

/* ---- quotas and names ---- */

static bool is_class(json_object *rep, const char *c)
{
	return integ_error_class(rep) && strcmp(integ_error_class(rep), c) == 0;
}

/* B at its quotas: connections, instances, fds; a name outside its rule */
static void b_quotas(void *arg)
{
	int c[QUOTA_CONNS + 1], r, n = 0, m[QUOTA_FDS + 1];
	json_object *rep = NULL;
	char name[64];

	(void)arg;
	for (int i = 0; i < QUOTA_CONNS; i++)
		if ((c[i] = integ_open_client(D.sock, NULL)) >= 0)
			n++;
	child_check(n == QUOTA_CONNS, "connections-up-to-quota", "%d of %d", n, QUOTA_CONNS);
	/* one more: refused with one LimitExceeded error */
	c[QUOTA_CONNS] = integ_connect(D.sock);
	r = c[QUOTA_CONNS] >= 0 ? integ_recv(c[QUOTA_CONNS], 3000, &rep, NULL, 0, NULL) : c[QUOTA_CONNS];
	child_check(r == 0 && is_class(rep, "LimitExceeded") && strstr(integ_error_desc(rep), "per_uid"),
		    "connection-over-quota-refused", "r=%d %s", r, rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	if (c[QUOTA_CONNS] >= 0)
		close(c[QUOTA_CONNS]);
	/* the operator (root) is told to connect now, while B is at its quota */
	(void)!write(report_fd, "at-quota\n", 9);
	{
		char x;

		(void)!read(STDIN_FILENO, &x, 1);
	}
	/* instances: QUOTA_INST, then one more refused */
	for (int i = 0; i <= QUOTA_INST && i < QUOTA_CONNS; i++) {
		snprintf(name, sizeof(name), "{\"name\":\"tenant-b-q%d\"}", i);
		r = integ_call(c[i], "instance.register", name, NULL, 0, &rep, NULL, 0, NULL);
		if (i < QUOTA_INST)
			child_check(r == 0 && integ_return(rep), "instance-within-quota", "%d: %s", i, cls(rep));
		else
			child_check(r == 0 && is_class(rep, "LimitExceeded"), "instance-over-quota-refused", "%s",
				    cls(rep));
		json_object_put(TAKE_PTR(rep));
	}
	/* fds over all its instances: QUOTA_FDS, then one more refused */
	for (int i = 0; i <= QUOTA_FDS; i++) {
		m[i] = memfd_create("q", MFD_CLOEXEC);
		snprintf(name, sizeof(name), "{\"names\":[\"m%d\"]}", i);
		r = integ_call(c[i % QUOTA_INST], "fd.store", name, &m[i], 1, &rep, NULL, 0, NULL);
		if (i < QUOTA_FDS)
			child_check(r == 0 && integ_return(rep), "fd-within-quota", "%d: %s", i, cls(rep));
		else
			child_check(r == 0 && is_class(rep, "LimitExceeded") &&
					    strstr(integ_error_desc(rep), "max_fds_per_uid"),
				    "fd-over-quota-refused", "%s", cls(rep));
		json_object_put(TAKE_PTR(rep));
		close(m[i]);
	}
	/* a name its rule does not allow */
	r = integ_call(c[QUOTA_INST], "instance.register", "{\"name\":\"tenant-a-evil\"}", NULL, 0, &rep, NULL, 0,
		       NULL);
	child_check(r == 0 && is_class(rep, "PermissionDenied") && strstr(integ_error_desc(rep), "names"),
		    "name-outside-rule-refused", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	for (int i = 0; i < QUOTA_CONNS; i++)
		if (c[i] >= 0) {
			if (i < QUOTA_INST) {
				snprintf(name, sizeof(name), "{\"name\":\"tenant-b-q%d\"}", i);
				json_object_put(integ_call_json(c[i], "instance.release", name));
			}
			close(c[i]);
		}
}

/* A subscribes to its instance "shared-1", releases it; B registers "shared-1": A hears nothing of it */
static void a_subscriber(void *arg)
{
	json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), r;
	unsigned events = 0;

	(void)arg;
	r = integ_call(c, "instance.register", "{\"name\":\"shared-1\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "events.subscribe", NULL, NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "subscribe", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "instance.release", "{\"name\":\"shared-1\"}", NULL, 0, &rep, NULL, 0, NULL);
	json_object_put(TAKE_PTR(rep));
	(void)!write(report_fd, "released\n", 9);
	/* whatever comes within 1.5 s (B registers shared-1 and stores an fd meanwhile) */
	while (integ_recv(c, 1500, &rep, NULL, 0, NULL) == 0) {
		const char *s = json_object_to_json_string(rep);

		if (strstr(s, "shared-1") && !strstr(s, "instance.released"))
			events++;
		json_object_put(TAKE_PTR(rep));
	}
	child_check(events == 0, "no-event-of-the-name-reused-by-another-uid", "%u events about shared-1", events);
	close(c);
}

static void b_takes_name(void *arg)
{
	json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), r, m;

	(void)arg;
	r = integ_call(c, "instance.register", "{\"name\":\"shared-1\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register-released-name", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	m = memfd_create("b", MFD_CLOEXEC);
	r = integ_call(c, "fd.store", "{\"names\":[\"secret\"]}", &m, 1, &rep, NULL, 0, NULL);
	json_object_put(TAKE_PTR(rep));
	close(m);
	json_object_put(integ_call_json(c, "instance.release", "{\"name\":\"shared-1\"}"));
	close(c);
}

/* B holds "shared-2" until told (stdin) */
static void b_holds_name(void *arg)
{
	json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), r;
	char x;

	(void)arg;
	r = integ_call(c, "instance.register", "{\"name\":\"shared-2\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	(void)!write(report_fd, "holding\n", 8);
	(void)!read(STDIN_FILENO, &x, 1);
	json_object_put(integ_call_json(c, "instance.release", "{\"name\":\"shared-2\"}"));
	close(c);
}

/* A, while B holds shared-2: its status counts only its own uid, and the taken name tells nothing */
static void a_own_world(void *arg)
{
	json_object *rep = NULL;
	const char *bpid = arg;
	int c = integ_open_client(D.sock, NULL), r;
	const char *d;

	r = integ_call(c, "status", NULL, NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep) &&
			    json_object_get_int(integ_get(rep, "return.counts.instances")) == 0 &&
			    json_object_get_int(integ_get(rep, "return.counts.connections")) == 1 &&
			    !integ_get(rep, "return.startup.adopted_fds"),
		    "status-counts-own-uid-only", "%s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "instance.register", "{\"name\":\"shared-2\"}", NULL, 0, &rep, NULL, 0, NULL);
	d = integ_error_desc(rep);
	child_check(r == 0 && is_class(rep, "Busy") && d && !strstr(d, bpid) && !strstr(d, "uid") &&
			    !strstr(d, "pid"),
		    "taken-name-tells-nothing", "%s: %s", cls(rep), d ? d : "-");
	json_object_put(TAKE_PTR(rep));
	close(c);
}

/* B probes with update.start: a path it cannot see and a missing one, another uid's pid and a missing
 * one, read alike (arg: an executable root keeps in a directory B cannot enter) */
static void b_probe_update(void *arg)
{
	const char *hidden = arg;
	json_object *rep = NULL;
	int c = integ_open_client(D.sock, NULL), r;
	char args[700], d1[400] = "", d2[400] = "";

	r = integ_call(c, "instance.register", "{\"name\":\"tenant-b-probe\"}", NULL, 0, &rep, NULL, 0, NULL);
	child_check(r == 0 && integ_return(rep), "register", "%s", cls(rep));
	json_object_put(TAKE_PTR(rep));
	/* guest memory in a stored memfd, so that update.start gets as far as the binary and the successor */
	{
		int m = memfd_create("b-ram", MFD_CLOEXEC);

		if (ftruncate(m, 1 << 20) < 0)
			child_check(false, "ftruncate", "%m");
		r = integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", &m, 1, &rep, NULL, 0, NULL);
		json_object_put(TAKE_PTR(rep));
		close(m);
		r = integ_call(c, "vmm.mappings", "{\"mappings\":[{\"iova\":0,\"size\":1048576,\"memfd\":\"ram\",\"offset\":0}]}",
			       NULL, 0, &rep, NULL, 0, NULL);
		child_check(r == 0 && integ_return(rep), "mappings", "%s", cls(rep));
		json_object_put(TAKE_PTR(rep));
	}
	snprintf(args, sizeof(args), "{\"instance\":\"tenant-b-probe\",\"mode\":\"exec\",\"binary\":\"%s\"}", hidden);
	r = integ_call(c, "update.start", args, NULL, 0, &rep, NULL, 0, NULL);
	if (integ_error_desc(rep))
		snprintf(d1, sizeof(d1), "%s", integ_error_desc(rep));
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "update.start",
		       "{\"instance\":\"tenant-b-probe\",\"mode\":\"exec\",\"binary\":\"/nonexistent/vlud-test\"}", NULL,
		       0, &rep, NULL, 0, NULL);
	if (integ_error_desc(rep))
		snprintf(d2, sizeof(d2), "%s", integ_error_desc(rep));
	json_object_put(TAKE_PTR(rep));
	/* the same words once the paths are taken out */
	{
		char *a = strstr(d1, hidden), *b = strstr(d2, "/nonexistent/vlud-test");

		child_check(a && b && strcmp(a + strlen(hidden), b + strlen("/nonexistent/vlud-test")) == 0,
			    "binary-check-tells-nothing", "'%s' vs '%s'", d1, d2);
	}
	r = integ_call(c, "update.start",
		       "{\"instance\":\"tenant-b-probe\",\"mode\":\"transfer\",\"wait\":false,\"successor_pid\":1}",
		       NULL, 0, &rep, NULL, 0, NULL);
	snprintf(d1, sizeof(d1), "%s %s", cls(rep), integ_error_desc(rep) ? integ_error_desc(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "update.start",
		       "{\"instance\":\"tenant-b-probe\",\"mode\":\"transfer\",\"wait\":false,\"successor_pid\":4194303}",
		       NULL, 0, &rep, NULL, 0, NULL);
	snprintf(d2, sizeof(d2), "%s %s", cls(rep), integ_error_desc(rep) ? integ_error_desc(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	child_check(strncmp(d1, "NotFound no process 1 of uid", 28) == 0 &&
			    strncmp(d2, "NotFound no process 4194303 of uid", 34) == 0 && !strstr(d1, "uid 0"),
		    "successor-pid-check-tells-nothing", "'%s' vs '%s'", d1, d2);
	json_object_put(integ_call_json(c, "instance.release", "{\"name\":\"tenant-b-probe\"}"));
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
	unsigned slow_before_2;
	int64_t t0;
	int r, in[2] = { -EBADF, -EBADF };

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
		     "{ \"uids\": [%u], \"fd_types\": [\"memfd\", \"eventfd\", \"pipe\"],\n"
		     "  \"names\": [\"tenant-a-*\", \"shared-*\"] },\n"
		     "{ \"uids\": [%u], \"devices\": [\"%s\"], \"fd_types\": [\"memfd\", \"eventfd\", \"socket\"],\n"
		     "  \"names\": [\"tenant-b*\", \"shared-*\"] }",
		     UID_A, UID_B, link) < 0)
		return 1;
	cfg = integ_config(dir, extra,
			   "\"limits\": { \"max_connections\": 24, \"operator_reserved_connections\": 4, "
			   "\"max_connections_per_uid\": " STR(QUOTA_CONNS) ", \"max_instances_per_uid\": " STR(QUOTA_INST)
			   ", \"max_fds_per_uid\": " STR(QUOTA_FDS) " }");
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
	{
		int small = 4096; /* inherited by the (never accepted) peers: their window closes early */

		if (listener >= 0)
			(void)setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(listener, 16) < 0)
		return 1;

	/* 1. a refused request's fd blocks in close: nothing else waits.  Now and then (about 1 run in 8
	 * here) the kernel lets the first such socket go at once; the checks on A prove something only
	 * while B's close blocks, so the round is repeated (at most 3 times) until vlud logged it slow. */
	for (int round = 1; round <= 3; round++) {
		unsigned before = slow_closes_logged();

		tenant_start(&tb, UID_B, b_refused_request, NULL);
		tenant_finish(&tb, "b-refused-request");
		t0 = now_ms();
		tenant_start(&ta, UID_A, a_live, "1");
		tenant_finish(&ta, "a-live-while-refused-fd-closes");
		tap_check(now_ms() - t0 < LINGER_S * 1000 - 1000, "a-done-before-b-close-ends", "A took %lld ms",
			  (long long)(now_ms() - t0));
		if (wait_log(before + 1, (LINGER_S + 5) * 1000) || round == 3) {
			tap_check(slow_closes_logged() > before, "b-refused-fd-close-really-blocked",
				  "no new 'lane uid %u) took' line in vlud's log (3 rounds)", UID_B);
			break;
		}
		tap_diag("round %d: B's refused fd closed at once; again", round);
	}

	/* 2. fd.store + fd.remove of such a socket: B's lane blocks, A's own closes do not */
	slow_before_2 = slow_closes_logged();
	tenant_start_in(&tb, UID_B, b_store_remove, NULL, &in[1]);
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
	tap_check(wait_log(slow_before_2 + 1, (LINGER_S + 5) * 1000), "b-removed-fd-close-really-blocked",
		  "no new 'lane uid %u) took' line in vlud's log", UID_B);

	/* 3. O_PATH and symlinks */
	tenant_start(&tb, UID_B, b_opath, NULL);
	tenant_finish(&tb, "b-opath-symlink");

	/* 4. quotas per uid; an operator connects and acts while B is at its quota; names */
	tenant_start_in(&tb, UID_B, b_quotas, NULL, &in[1]);
	if (tap_check(tenant_lines(&tb, "b-quotas", "at-quota"), "b-at-quota", "tenant B did not reach its quota")) {
		_cleanup_json_ json_object *st = NULL;
		int op = integ_open_client(D.sock, NULL);

		st = op >= 0 ? integ_call_json(op, "status", NULL) : NULL;
		tap_check(op >= 0 && integ_return(st), "operator-acts-while-tenant-at-quota", "connect: %s",
			  op < 0 ? strerror(-op) : "status failed");
		if (op >= 0)
			close(op);
	}
	(void)!write(in[1], "x", 1);
	close(in[1]);
	tenant_finish(&tb, "b-quotas");

	/* 5. a subscription follows the instance's uid, not a reusable name */
	tenant_start(&ta, UID_A, a_subscriber, NULL);
	if (tap_check(tenant_lines(&ta, "a-subscription", "released"), "a-released-shared",
		      "tenant A did not get there")) {
		tenant_start(&tb, UID_B, b_takes_name, NULL);
		tenant_finish(&tb, "b-takes-released-name");
	}
	tenant_finish(&ta, "a-subscription");

	/* 6. a VMM sees only its own world */
	tenant_start_in(&tb, UID_B, b_holds_name, NULL, &in[1]);
	if (tap_check(tenant_lines(&tb, "b-holds-name", "holding"), "b-holds-shared-2", "B did not get there")) {
		char bpid[32];

		snprintf(bpid, sizeof(bpid), "%d", (int)tb.pid); /* B is the forked child itself */
		tenant_start(&ta, UID_A, a_own_world, bpid);
		tenant_finish(&ta, "a-own-world");
	}
	(void)!write(in[1], "x", 1);
	close(in[1]);
	tenant_finish(&tb, "b-holds-name");

	/* an executable in a directory only root can enter */
	{
		_cleanup_free_ char *sec = NULL, *bin = NULL;

		if (asprintf(&sec, "%s/secret", dir) >= 0 && mkdir(sec, 0700) == 0 && asprintf(&bin, "%s/vmm", sec) >= 0 &&
		    integ_write_file(bin, "#!/bin/sh\n") >= 0 && chmod(bin, 0755) == 0) {
			tenant_start(&tb, UID_B, b_probe_update, bin);
			tenant_finish(&tb, "b-probe-update");
		} else
			tap_check(false, "b-probe-update-setup", "%m");
	}

	/* 7. SIGTERM while a tenant's close blocks: vlud still ends (device lane done, client lanes 1 s) */
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
