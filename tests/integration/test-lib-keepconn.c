/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lib-keepconn.c - the VMM's connection to vlud kept across an exec-mode exec (docs/PROTOCOL.md,
 * "The connection kept across exec"), with the real daemon and real execs of this program:
 *   - kept: an image connects, registers, subscribes and calls vlu_update_exec_keep(); the new image's
 *     vlu_update_connect() adopts the socket (returns 1, no connect: vlud counts one connection), the
 *     variable is gone, the socket is close-on-exec again, the instance is still registered on it (fd.store
 *     works without a register, instance.list shows it attached to this pid, never orphaned) and the old
 *     image's subscription goes on (the fd.stored event arrives);
 *   - a failed exec: vlu_update_exec_keep() returns the error, the variable is unset, the socket is
 *     close-on-exec again and the connection keeps working;
 *   - refused, each falling back to a fresh connect (returns 0, the connection works) and leaving the fd
 *     the variable names exactly as it was (open, same inode, flags unchanged): garbage, too few fields, an
 *     fd that is not open, a pipe with its right inode, an AF_UNIX stream socket, a SEQPACKET socketpair
 *     (no daemon at the other end), a SEQPACKET socket connected to another listening socket, and the
 *     real kept socket described with a stale inode, another uid, another protocol major, or reached
 *     through another path.
 * Each case runs in a child that execs this program again ("--new-image CASE ..."); the new image prints
 * its own TAP lines and its exit status says whether they passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"
#include "vlu.h"

static struct integ_daemon D;
static char self[4096];

static uint64_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* the update.exec event vlud would send: execs this program as the new image with args */
static json_object *exec_event(const char *const *args)
{
	json_object *ev = json_object_new_object(), *d = json_object_new_object(), *a = json_object_new_array();

	json_object_array_add(a, json_object_new_string(self));
	json_object_array_add(a, json_object_new_string("--new-image"));
	for (size_t i = 0; args[i]; i++)
		json_object_array_add(a, json_object_new_string(args[i]));
	json_object_object_add(d, "binary", json_object_new_string(self));
	json_object_object_add(d, "argv", a);
	json_object_object_add(d, "token", json_object_new_string("0123456789abcdef0123456789abcdef"));
	json_object_object_add(ev, "data", d);
	return ev;
}

static int connections(struct vlu *v)
{
	_cleanup_json_ json_object *st = NULL;
	json_object *c;

	if (vlu_status(v, &st) < 0 || !(c = integ_get(st, "counts.connections")))
		return -1;
	return json_object_get_int(c);
}

/* instance name's state and pid from instance.list ("" / 0 when not listed) */
static void instance_of(struct vlu *v, const char *name, char *state, size_t len, int *pid)
{
	_cleanup_json_ json_object *ret = NULL;
	json_object *a, *e, *x;

	snprintf(state, len, "%s", "");
	*pid = 0;
	if (vlu_call(v, "instance.list", NULL, NULL, 0, 0, &ret, NULL, NULL) < 0 ||
	    !json_object_object_get_ex(ret, "instances", &a))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_object_get_ex(e, "name", &x) || strcmp(json_object_get_string(x), name) != 0)
			continue;
		if (json_object_object_get_ex(e, "state", &x))
			snprintf(state, len, "%s", json_object_get_string(x));
		if (json_object_object_get_ex(e, "pid", &x))
			*pid = json_object_get_int(x);
	}
}

static int release(struct vlu *v, const char *name)
{
	_cleanup_json_ json_object *a = json_object_new_object();

	json_object_object_add(a, "name", json_object_new_string(name));
	return vlu_call(v, "instance.release", a, NULL, 0, 0, NULL, NULL, NULL);
}

static unsigned n_events, n_stored_events;
static void on_event(struct vlu *v, const char *name, json_object *ev, void *ud)
{
	(void)v;
	(void)ev;
	(void)ud;
	n_events++;
	n_stored_events += strcmp(name, "fd.stored") == 0;
}

/* ---------------------------------------------------------------- the new image */

/* the fd the variable names (-1 if it does not parse) */
static int env_fd(void)
{
	const char *e = getenv(VLU_CONNECTION_ENV);

	return e ? atoi(e) : -1;
}

static int new_kept(const char *sock, int conns_before)
{
	struct vlu *v = NULL;
	const char *nm[] = { "kc-after" };
	char state[32];
	int fd = env_fd(), pid, r, efd, maj = 0, min = -1, mic = -1;

	tap_check(getenv(VLU_UPDATE_TOKEN_ENV) != NULL, "kept/token-crossed", "no $%s", VLU_UPDATE_TOKEN_ENV);
	tap_check(fd >= 0 && fcntl(fd, F_GETFD) >= 0 && !(fcntl(fd, F_GETFD) & FD_CLOEXEC), "kept/socket-crossed-exec",
		  "fd %d from $%s=%s not open without FD_CLOEXEC", fd, VLU_CONNECTION_ENV,
		  getenv(VLU_CONNECTION_ENV) ? getenv(VLU_CONNECTION_ENV) : "(unset)");
	r = vlu_update_connect(sock, 5000, &v);
	if (!tap_check(r == 1, "kept/adopted", "vlu_update_connect returned %d (%s), not 1", r, r < 0 ? strerror(-r) : "fresh"))
		return tap_exit_status();
	tap_check(!getenv(VLU_CONNECTION_ENV), "kept/variable-unset", "still set");
	tap_check(fcntl(fd, F_GETFD) >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "kept/cloexec-again", "flags %d",
		  fcntl(fd, F_GETFD));
	vlu_server_version(v, &maj, &min, &mic);
	tap_check(maj == 1 && min >= 0 && mic >= 0 && !vlu_server_package(v), "kept/version-from-variable",
		  "%d.%d.%d package %s", maj, min, mic, vlu_server_package(v) ? vlu_server_package(v) : "NULL");
	r = connections(v);
	/* (a connection closed meanwhile may count one less, a new one would count one more) */
	tap_check(r > 0 && r <= conns_before, "kept/no-new-connection", "vlud counts %d connections, %d before the exec",
		  r, conns_before);
	vlu_set_event_callback(v, on_event, NULL);
	/* fd.store needs an instance on the connection: the old image's registration */
	efd = eventfd(0, EFD_CLOEXEC);
	r = vlu_fd_store(v, nm, &efd, 1, false);
	tap_check(r == 0, "kept/instance-still-registered", "fd.store: %s", strerror(-r));
	close(efd);
	instance_of(v, "kc-kept", state, sizeof(state), &pid);
	tap_check(strcmp(state, "attached") == 0 && pid == getpid(), "kept/instance-attached-same-pid",
		  "state '%s' pid %d (this pid %d)", state, pid, (int)getpid());
	/* the old image's subscription: the fd.stored event of the store above */
	for (int i = 0; i < 50 && !n_stored_events; i++) {
		(void)vlu_process(v);
		if (!n_stored_events)
			usleep(20000);
	}
	tap_check(n_stored_events >= 1, "kept/subscription-goes-on", "%u events, no fd.stored", n_events);
	r = release(v, "kc-kept");
	tap_check(r == 0, "kept/release", "instance.release: %s", strerror(-r));
	vlu_close(v);
	return tap_exit_status();
}

/* mutate the variable the old image left (what: ino, uid, major, path), then expect a fresh connection
 * and the kept socket untouched */
static int new_fallback(const char *name, const char *sock, const char *what, int fd, uint64_t ino)
{
	struct vlu *v = NULL;
	_cleanup_json_ json_object *st = NULL;
	char t[128], state[32], path[600], inst[80];
	const char *use = sock;
	int flags_before, r, pid;

	snprintf(inst, sizeof(inst), "kc-%s", name);
	if (strcmp(what, "-") != 0) {
		const char *e = getenv(VLU_CONNECTION_ENV);
		unsigned kfd = 0, uid = 0, a = 0, b = 0, c = 0;
		unsigned long long kino = 0, nid = 0;
		char v2[256];

		if (!e || sscanf(e, "%u:%llu:%u:%u.%u.%u:%llu:", &kfd, &kino, &uid, &a, &b, &c, &nid) != 7) {
			tap_check(false, name, "the kept variable %s does not parse", e ? e : "(unset)");
			return tap_exit_status();
		}
		fd = (int)kfd;
		ino = kino;
		if (strcmp(what, "ino") == 0)
			kino++;
		else if (strcmp(what, "uid") == 0)
			uid++;
		else if (strcmp(what, "major") == 0)
			a++;
		else if (strcmp(what, "path") == 0) {
			/* the same daemon through a symlink: getpeername() names the bound path, not this one */
			snprintf(path, sizeof(path), "%s.link", sock);
			use = path;
		}
		snprintf(v2, sizeof(v2), "%u:%llu:%u:%u.%u.%u:%llu:", kfd, kino, uid, a, b, c, nid);
		setenv(VLU_CONNECTION_ENV, v2, 1);
	}
	flags_before = fd >= 0 ? fcntl(fd, F_GETFD) : -1;
	r = vlu_update_connect(use, 5000, &v);
	snprintf(t, sizeof(t), "%s/fresh-connection", name);
	if (!tap_check(r == 0, t, "vlu_update_connect returned %d (%s), not 0", r, r < 0 ? strerror(-r) : "adopted"))
		return tap_exit_status();
	snprintf(t, sizeof(t), "%s/works", name);
	r = vlu_status(v, &st);
	tap_check(r == 0, t, "status: %s", strerror(-r));
	snprintf(t, sizeof(t), "%s/variable-unset", name);
	tap_check(!getenv(VLU_CONNECTION_ENV), t, "still set");
	if (fd >= 0 && flags_before >= 0) {
		snprintf(t, sizeof(t), "%s/named-fd-untouched", name);
		tap_check(fcntl(fd, F_GETFD) == flags_before && ino_of(fd) == ino, t,
			  "fd %d: flags %d (before %d), inode %" PRIu64 " (before %" PRIu64 ")", fd, fcntl(fd, F_GETFD),
			  flags_before, ino_of(fd), ino);
	}
	if (strcmp(what, "-") != 0) {
		/* the kept socket, not adopted, still carries the instance: this fresh connection does not */
		instance_of(v, inst, state, sizeof(state), &pid);
		snprintf(t, sizeof(t), "%s/instance-on-the-kept-socket", name);
		tap_check(strcmp(state, "attached") == 0 && pid == getpid(), t, "state '%s' pid %d", state, pid);
		close(fd);
		for (int i = 0; i < 100; i++) {
			instance_of(v, inst, state, sizeof(state), &pid);
			if (strcmp(state, "orphaned") == 0)
				break;
			usleep(20000);
		}
		r = vlu_register(v, inst, true);
		snprintf(t, sizeof(t), "%s/reattach-on-fresh", name);
		tap_check(r == 0, t, "instance.register reattach: %s (state %s)", strerror(-r), state);
		(void)release(v, inst);
	}
	vlu_close(v);
	return tap_exit_status();
}

static int new_image(int argc, char **argv)
{
	/* argv: self --new-image SUITE CASE SOCK ARGS... */
	if (argc < 5)
		return 2;
	tap_suite(argv[2]);
	if (strcmp(argv[3], "kept") == 0 && argc == 6)
		return new_kept(argv[4], atoi(argv[5]));
	if (strcmp(argv[3], "fallback") == 0 && argc == 9)
		return new_fallback(argv[5], argv[4], argv[6], atoi(argv[7]), strtoull(argv[8], NULL, 10));
	return 2;
}

/* ---------------------------------------------------------------- the old images */

/* fork; the child runs fn (which execs) and exits 3 if it returns; the parent checks the new image's status */
static void run_child(const char *name, void (*fn)(void *), void *arg)
{
	char t[128];
	int status = -1;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		fn(arg);
		fflush(NULL);
		_exit(3);
	}
	snprintf(t, sizeof(t), "%s/new-image-passed", name);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		tap_check(false, t, "fork/wait: %m");
	else
		tap_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, t, "status 0x%x", status);
}

static void old_kept(void *arg)
{
	struct vlu *v = NULL;
	_cleanup_json_ json_object *ev = NULL;
	char conns[16];
	int r;

	(void)arg;
	if (vlu_connect(D.sock, 5000, &v) < 0 || vlu_register(v, "kc-kept", false) < 0 || vlu_subscribe(v, "kc-kept") < 0)
		_exit(4);
	snprintf(conns, sizeof(conns), "%d", connections(v));
	ev = exec_event((const char *[]){ "integ-lib-keepconn", "kept", D.sock, conns, NULL });
	r = vlu_update_exec_keep(v, ev);
	printf("# vlu_update_exec_keep: %s\n", strerror(-r));
}

struct fb {
	const char *name, *value, *what;
	int fd; /* the fd the value names, -1 none */
};

static void old_fallback(void *arg)
{
	struct fb *f = arg;
	_cleanup_json_ json_object *ev = NULL;
	struct vlu *v = NULL;
	char fdnum[16], ino[32], inst[80];
	int r;

	snprintf(fdnum, sizeof(fdnum), "%d", f->fd);
	snprintf(ino, sizeof(ino), "%" PRIu64, f->fd >= 0 ? ino_of(f->fd) : 0);
	ev = exec_event((const char *[]){ "integ-lib-keepconn", "fallback", D.sock, f->name, f->what, fdnum, ino, NULL });
	if (strcmp(f->what, "-") == 0) {
		/* a bogus value, the connection not kept */
		setenv(VLU_CONNECTION_ENV, f->value, 1);
		r = vlu_update_exec(ev);
	} else {
		/* kept, the new image spoils the description */
		snprintf(inst, sizeof(inst), "kc-%s", f->name);
		if (vlu_connect(D.sock, 5000, &v) < 0 || vlu_register(v, inst, false) < 0)
			_exit(4);
		r = vlu_update_exec_keep(v, ev);
	}
	printf("# exec: %s\n", strerror(-r));
}

static void test_failed_exec(void)
{
	struct vlu *v = NULL;
	_cleanup_json_ json_object *ev = json_object_new_object(), *d = json_object_new_object(), *st = NULL;
	static bool plain[1024];
	int r, before = -1;

	if (!tap_check(vlu_connect(D.sock, 5000, &v) == 0, "failed-exec/connect", "connect"))
		return;
	json_object_object_add(d, "binary", json_object_new_string("/nonexistent/vmm"));
	json_object_object_add(d, "token", json_object_new_string("0123456789abcdef0123456789abcdef"));
	json_object_object_add(ev, "data", json_object_get(d));
	before = connections(v);
	for (int fd = 0; fd < 1024; fd++)
		plain[fd] = fcntl(fd, F_GETFD) >= 0 && !(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	r = vlu_update_exec_keep(v, ev);
	tap_check(r == -ENOENT, "failed-exec/error", "returned %d (%s)", r, strerror(-r));
	tap_check(!getenv(VLU_CONNECTION_ENV) && !getenv(VLU_UPDATE_TOKEN_ENV), "failed-exec/variables-unset", "%s %s",
		  getenv(VLU_CONNECTION_ENV) ? "VLU_CONNECTION set" : "", getenv(VLU_UPDATE_TOKEN_ENV) ? "token set" : "");
	{
		/* no fd lost its FD_CLOEXEC (libvlu's socket has it again) */
		bool all = true;

		for (int fd = 0; fd < 1024; fd++) {
			int fl = fcntl(fd, F_GETFD);

			if (fl >= 0 && !(fl & FD_CLOEXEC) && !plain[fd]) {
				tap_diag("fd %d is not close-on-exec any more", fd);
				all = false;
			}
		}
		tap_check(all, "failed-exec/cloexec-again", "an fd lost FD_CLOEXEC");
	}
	r = vlu_status(v, &st);
	tap_check(r == 0 && connections(v) == before, "failed-exec/connection-works", "status: %s", strerror(-r));
	vlu_close(v);
}

static void test_no_variable(void)
{
	struct vlu *v = NULL;
	int r;

	unsetenv(VLU_CONNECTION_ENV);
	r = vlu_update_connect(D.sock, 5000, &v);
	tap_check(r == 0 && v, "no-variable/fresh-connection", "returned %d", r);
	vlu_close(v);
}

int main(int argc, char **argv)
{
	_cleanup_free_ char *dir = NULL;
	ssize_t n;
	int r;

	if (argc >= 2 && strcmp(argv[1], "--new-image") == 0)
		return new_image(argc, argv);
	tap_suite("integ-lib-keepconn");
	signal(SIGPIPE, SIG_IGN);
	unsetenv(VLU_CONNECTION_ENV);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	dir = integ_mkdtemp("lib-keepconn");
	if (n <= 0 || !dir) {
		tap_check(false, "setup", "temporary directory or /proc/self/exe: %m");
		return 1;
	}
	self[n] = '\0';
	r = integ_daemon_start(&D, dir, NULL);
	if (tap_check(r == 0, "start-ready", "vlud did not become ready (%s)", strerror(-r))) {
		int p[2] = { -1, -1 }, sp[2] = { -1, -1 }, ss[2] = { -1, -1 }, other = -1, lfd = -1;
		char val[128], link[600];
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		run_child("kept", old_kept, NULL);
		test_no_variable();
		test_failed_exec();

		/* bogus values, the connection not kept; the fds they name cross the exec (no CLOEXEC) */
		{
			struct fb f[] = {
				{ "garbage", "garbage", "-", -1 },
				{ "too-few-fields", "3:4:0", "-", -1 },
				{ "fd-not-open", "900:12345:0:1.0.0:1:", "-", -1 },
			};

			for (size_t i = 0; i < ELEMENTSOF(f); i++)
				run_child(f[i].name, old_fallback, &f[i]);
		}
		if (pipe(p) == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) == 0 &&
		    socketpair(AF_UNIX, SOCK_STREAM, 0, ss) == 0) {
			struct fb f = { "pipe", val, "-", p[0] };

			snprintf(val, sizeof(val), "%d:%" PRIu64 ":0:1.0.0:1:", p[0], ino_of(p[0]));
			run_child(f.name, old_fallback, &f);
			f = (struct fb){ "stream-socket", val, "-", ss[0] };
			snprintf(val, sizeof(val), "%d:%" PRIu64 ":%u:1.0.0:1:", ss[0], ino_of(ss[0]), (unsigned)geteuid());
			run_child(f.name, old_fallback, &f);
			f = (struct fb){ "seqpacket-socketpair", val, "-", sp[0] };
			snprintf(val, sizeof(val), "%d:%" PRIu64 ":%u:1.0.0:1:", sp[0], ino_of(sp[0]), (unsigned)geteuid());
			run_child(f.name, old_fallback, &f);
			/* the socketpair still works here (the new image left it alone, and so did the exec) */
			tap_check(send(sp[1], "x", 1, 0) == 1 && recv(sp[0], val, sizeof(val), MSG_DONTWAIT) == 1,
				  "seqpacket-socketpair/still-works", "%m");
		} else
			tap_check(false, "pipes", "pipe/socketpair: %m");
		/* connected to another listening SEQPACKET socket (not vlud's path) */
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/other.sock", dir);
		lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		other = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (tap_check(lfd >= 0 && other >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
				      listen(lfd, 4) == 0 && connect(other, (struct sockaddr *)&sa, sizeof(sa)) == 0,
			      "other-listener/setup", "%m")) {
			struct fb f = { "other-listener", val, "-", other };

			snprintf(val, sizeof(val), "%d:%" PRIu64 ":%u:1.0.0:1:", other, ino_of(other), (unsigned)geteuid());
			run_child(f.name, old_fallback, &f);
		}
		/* the real kept socket, described wrongly */
		snprintf(link, sizeof(link), "%s.link", D.sock);
		if (symlink(D.sock, link) < 0)
			tap_diag("symlink %s: %m", link);
		{
			struct fb f[] = {
				{ "stale-inode", NULL, "ino", -1 },
				{ "other-uid", NULL, "uid", -1 },
				{ "other-major", NULL, "major", -1 },
				{ "other-path", NULL, "path", -1 },
			};

			for (size_t i = 0; i < ELEMENTSOF(f); i++)
				run_child(f[i].name, old_fallback, &f[i]);
		}
		safe_close(p[0]);
		safe_close(p[1]);
		safe_close(sp[0]);
		safe_close(sp[1]);
		safe_close(ss[0]);
		safe_close(ss[1]);
		safe_close(other);
		safe_close(lfd);
	}
	tap_check(integ_daemon_alive(&D), "daemon-alive", "vlud exited");
	if (tap_failures())
		integ_daemon_dump_log(&D);
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGTERM, 5000);
	integ_rmrf(dir);
	return tap_exit_status();
}
