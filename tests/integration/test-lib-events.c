/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-lib-events.c - events.subscribe's "events" filter (docs/PROTOCOL.md, events.subscribe) against the
 * built daemon, raw protocol clients and libvlu:
 *   - three subscribers on their own connections, one unfiltered, one filtered by the protocol
 *     (fd.stored, update.refused), one by vlu_subscribe_events() (instance.registered,
 *     instance.released) read through vlu_process(): a VMM registers, stores, removes an fd, has an
 *     update.start refused (update.refused: an update event) and releases; each filtered subscriber gets
 *     exactly its names, in order, the unfiltered one all of them, the others included;
 *   - refused subscribes (an unknown name, an empty array, 17 names, a non-string, a non-array; libvlu: an
 *     unknown name -EINVAL naming the entry, 17 names -E2BIG, no names -EINVAL) change nothing: the
 *     previous filter delivers the same events afterwards;
 *   - a second subscribe replaces the filter: with another list, then without one (every event again);
 *   - another uid's VMM (root only: a forked child) with a filter naming the same events gets its own
 *     instance's and nothing of root's, and cannot name root's instance with a filter either.
 * The events a live update addresses to the VMM's connection (update.save, update.rolled-back to O) need a
 * device, which the host lacks: tests/unit/test-events.c checks their delivery under a filter, the rig
 * runs it for real (minivmm subscribes with a filter).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basics.h"
#include "integ.h"
#include "vlu.h"

#define TENANT_UID 60011
#define QUIET_MS 300 /* no more events: the daemon sent them before its reply to the VMM */

static struct integ_daemon D;

/* the events (names) that arrive on fd within QUIET_MS after the last one, as "a,b,c" */
static void collect(int fd, char *out, size_t len)
{
	json_object *e = NULL;

	out[0] = '\0';
	while (integ_recv(fd, QUIET_MS, &e, NULL, 0, NULL) == 0) {
		const char *n = integ_str(integ_get(e, "event"));

		if (n && strlen(out) + strlen(n) + 2 < len) {
			if (out[0])
				strcat(out, ",");
			strcat(out, n);
		}
		json_object_put(TAKE_PTR(e));
	}
}

/* libvlu's events, through vlu_process() */
static char lib_seen[512];

static void lib_cb(struct vlu *v, const char *name, json_object *event, void *userdata)
{
	(void)v;
	(void)event;
	(void)userdata;
	if (strlen(lib_seen) + strlen(name) + 2 < sizeof(lib_seen)) {
		if (lib_seen[0])
			strcat(lib_seen, ",");
		strcat(lib_seen, name);
	}
}

static void lib_collect(struct vlu *v)
{
	struct pollfd p = { .fd = vlu_get_fd(v), .events = POLLIN };

	lib_seen[0] = '\0';
	while (poll(&p, 1, QUIET_MS) == 1)
		if (vlu_process(v) < 0)
			break;
}

/* the VMM's activity: instance.registered, fd.stored, fd.removed, update.refused, instance.released */
static bool activity(int c, const char *name)
{
	_cleanup_json_ json_object *rep = NULL;
	_cleanup_close_ int mfd = memfd_create("ram", MFD_CLOEXEC);
	char args[160];
	bool ok = mfd >= 0;

	snprintf(args, sizeof(args), "{\"name\":\"%s\"}", name);
	ok = ok && integ_call(c, "instance.register", args, NULL, 0, &rep, NULL, 0, NULL) == 0 && integ_return(rep);
	json_object_put(TAKE_PTR(rep));
	ok = ok && integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", &mfd, 1, &rep, NULL, 0, NULL) == 0 &&
	     integ_return(rep);
	json_object_put(TAKE_PTR(rep));
	ok = ok && integ_call(c, "fd.remove", "{\"names\":[\"ram\"]}", NULL, 0, &rep, NULL, 0, NULL) == 0 &&
	     integ_return(rep);
	json_object_put(TAKE_PTR(rep));
	/* no mapping table: refused before anything happens, with update.refused */
	snprintf(args, sizeof(args), "{\"instance\":\"%s\",\"mode\":\"exec\"}", name);
	ok = ok && integ_call(c, "update.start", args, NULL, 0, &rep, NULL, 0, NULL) == 0 && integ_error_class(rep);
	json_object_put(TAKE_PTR(rep));
	snprintf(args, sizeof(args), "{\"name\":\"%s\"}", name);
	ok = ok && integ_call(c, "instance.release", args, NULL, 0, &rep, NULL, 0, NULL) == 0 && integ_return(rep);
	return ok;
}

#define ALL_FIVE "instance.registered,fd.stored,fd.removed,update.refused,instance.released"

static void expect_seen(const char *name, const char *got, const char *want)
{
	tap_check(strcmp(got, want) == 0, name, "got '%s', want '%s'", got, want);
}

static void expect_refused(int fd, const char *name, const char *args, const char *needle)
{
	_cleanup_json_ json_object *rep = NULL;
	int r = integ_call(fd, "events.subscribe", args, NULL, 0, &rep, NULL, 0, NULL);
	const char *cls = r == 0 ? integ_error_class(rep) : NULL, *desc = r == 0 ? integ_error_desc(rep) : NULL;

	tap_check(cls && strcmp(cls, "InvalidArgument") == 0 && desc && strstr(desc, needle), name,
		  "r=%d %s (want InvalidArgument '%s')", r, rep ? json_object_to_json_string(rep) : "-", needle);
}

static bool subscribe(int fd, const char *args)
{
	_cleanup_json_ json_object *rep = NULL;

	return integ_call(fd, "events.subscribe", args, NULL, 0, &rep, NULL, 0, NULL) == 0 && integ_return(rep);
}

/* ---- another uid: a forked child reporting through its exit status and a pipe ---- */

static void tenant(int go_rd, int done_wr)
{
	const char *names[] = { "instance.registered", "fd.stored", "fd.removed", "update.refused",
				"instance.released" };
	const char *one[] = { "fd.stored" }, *ram[] = { "ram" };
	struct vlu *v = NULL;
	int mfd, fail = 0;
	char c;

	if (setgroups(0, NULL) < 0 || setresgid(TENANT_UID, TENANT_UID, TENANT_UID) < 0 ||
	    setresuid(TENANT_UID, TENANT_UID, TENANT_UID) < 0)
		_exit(10);
	if (vlu_connect(D.sock, 5000, &v) < 0 || vlu_register(v, "tenant-1", false) < 0)
		_exit(11);
	vlu_set_event_callback(v, lib_cb, NULL);
	/* the filter names root's events too: it narrows, never widens */
	if (vlu_subscribe_events(v, NULL, names, ELEMENTSOF(names)) < 0)
		_exit(12);
	/* root's instance by name, with a filter: still refused, and the subscription stays */
	if (vlu_subscribe_events(v, "vm-root", one, 1) != -EACCES)
		fail |= 1;
	(void)!write(done_wr, "s", 1); /* subscribed */
	if (read(go_rd, &c, 1) != 1)   /* root's activity is over */
		_exit(13);
	lib_collect(v);
	if (lib_seen[0])
		fail |= 2; /* anything of root's instance */
	/* its own instance's events pass the filter */
	mfd = memfd_create("ram", MFD_CLOEXEC);
	if (mfd < 0 || vlu_fd_store(v, ram, &mfd, 1, false) < 0)
		_exit(14);
	lib_collect(v);
	if (strcmp(lib_seen, "fd.stored") != 0)
		fail |= 4;
	vlu_close(v);
	_exit(fail ? 20 + fail : 0);
}

static void test_tenant(int c)
{
	int go[2], done[2], st = 0;
	pid_t pid;
	char x;

	if (geteuid() != 0) {
		tap_skip("other-uid", "needs root (a second uid)");
		return;
	}
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
		return (void)tap_check(false, "other-uid", "pipe: %m");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		close(done[0]);
		tenant(go[0], done[1]);
	}
	close(go[0]);
	close(done[1]);
	if (pid < 0 || read(done[0], &x, 1) != 1) {
		tap_check(false, "other-uid", "the tenant did not subscribe");
	} else {
		tap_check(activity(c, "vm-root"), "other-uid/root-activity", "a call failed");
		(void)!write(go[1], "g", 1);
	}
	close(go[1]);
	close(done[0]);
	if (pid > 0)
		waitpid(pid, &st, 0);
	tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "other-uid/own-events-only",
		  "tenant status 0x%x (exit 10-14: setup; 21/23/25/27: bit 1 root's instance named, bit 2 root's "
		  "events seen, bit 4 its own fd.stored not seen)", st);
}

int main(void)
{
	_cleanup_free_ char *dir = NULL, *cfg = NULL, *extra = NULL;
	struct integ_daemon_opts o = { 0 };
	struct vlu *lib = NULL;
	int c = -EBADF, all = -EBADF, filt = -EBADF, r;
	char seen[512];

	tap_suite("lib-events");
	signal(SIGPIPE, SIG_IGN);
	dir = integ_mkdtemp("events");
	if (!dir || chmod(dir, 0755) < 0)
		return tap_check(false, "setup", "mkdtemp: %m"), 1;
	if (asprintf(&extra, "{ \"uids\": [%d], \"fd_types\": [\"memfd\"] }", TENANT_UID) < 0)
		return 1;
	cfg = integ_config(dir, extra, NULL);
	o.config_json = cfg;
	r = integ_daemon_start(&D, dir, &o);
	if (r >= 0)
		r = integ_daemon_wait_ready(&D, 10000);
	if (!tap_check(r >= 0, "start", "vlud did not start (%s)", strerror(-r))) {
		integ_daemon_dump_log(&D);
		integ_daemon_stop(&D, SIGKILL, 1000);
		integ_rmrf(dir);
		return 1;
	}

	c = integ_open_client(D.sock, NULL);
	all = integ_open_client(D.sock, NULL);
	filt = integ_open_client(D.sock, NULL);
	r = vlu_connect(D.sock, 5000, &lib);
	if (!tap_check(c >= 0 && all >= 0 && filt >= 0 && r == 0, "connect", "%d %d %d %d", c, all, filt, r))
		goto out;
	vlu_set_event_callback(lib, lib_cb, NULL);

	/* ---- filtered and unfiltered subscribers of the same activity ---- */
	tap_check(subscribe(all, NULL), "subscribe/unfiltered", "refused");
	tap_check(subscribe(filt, "{\"events\":[\"update.refused\",\"fd.stored\",\"fd.stored\"]}"),
		  "subscribe/filtered-with-duplicate", "refused");
	{
		const char *names[] = { "instance.registered", "instance.released" };

		r = vlu_subscribe_events(lib, NULL, names, ELEMENTSOF(names));
		tap_check(r == 0, "subscribe/libvlu", "%s", strerror(-r));
	}
	tap_check(activity(c, "vm1"), "activity-1", "a call failed");
	collect(all, seen, sizeof(seen));
	expect_seen("unfiltered-gets-all", seen, ALL_FIVE);
	collect(filt, seen, sizeof(seen));
	expect_seen("filtered-gets-only-its-names", seen, "fd.stored,update.refused");
	lib_collect(lib);
	expect_seen("libvlu-filtered-gets-only-its-names", lib_seen, "instance.registered,instance.released");

	/* ---- refused subscribes change nothing ---- */
	expect_refused(filt, "refused/unknown-name", "{\"events\":[\"fd.stored\",\"update.complete\"]}",
		       "entry 1 ('update.complete') is not a known event");
	expect_refused(filt, "refused/empty", "{\"events\":[]}", "1..16 entries");
	expect_refused(filt, "refused/17-names",
		       "{\"events\":[\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\","
		       "\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\","
		       "\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.stored\",\"fd.removed\"]}",
		       "1..16 entries");
	expect_refused(filt, "refused/non-string", "{\"events\":[\"fd.stored\",1]}", "entry 1 is not a string");
	expect_refused(filt, "refused/not-an-array", "{\"events\":\"fd.stored\"}", "must be of type [event]");
	{
		const char *bad[] = { "instance.registered", "instance.registerd" };
		const char *many[17], *cls = NULL, *desc = NULL;

		r = vlu_subscribe_events(lib, NULL, bad, 2);
		tap_check(r == -EINVAL && vlu_last_error(lib, &cls, &desc) == 0 && desc &&
				  strstr(desc, "'instance.registerd'"),
			  "refused/libvlu-unknown-name", "r=%d %s", r, desc ? desc : "-");
		for (size_t i = 0; i < ELEMENTSOF(many); i++)
			many[i] = "fd.stored";
		r = vlu_subscribe_events(lib, NULL, many, ELEMENTSOF(many));
		tap_check(r == -E2BIG, "refused/libvlu-17-names", "r=%d", r);
		r = vlu_subscribe_events(lib, NULL, many, 0);
		tap_check(r == -EINVAL, "refused/libvlu-no-names", "r=%d", r);
	}
	tap_check(activity(c, "vm2"), "activity-2", "a call failed");
	collect(all, seen, sizeof(seen));
	expect_seen("after-refusals/unfiltered-unchanged", seen, ALL_FIVE);
	collect(filt, seen, sizeof(seen));
	expect_seen("after-refusals/filter-unchanged", seen, "fd.stored,update.refused");
	lib_collect(lib);
	expect_seen("after-refusals/libvlu-filter-unchanged", lib_seen, "instance.registered,instance.released");

	/* ---- a second subscribe replaces the filter; without one: every event again ---- */
	tap_check(subscribe(filt, "{\"events\":[\"fd.removed\"],\"instance\":\"vm3\"}"), "resubscribe/other-filter",
		  "refused");
	r = vlu_subscribe(lib, NULL);
	tap_check(r == 0, "resubscribe/libvlu-unfiltered", "%s", strerror(-r));
	tap_check(activity(c, "vm3"), "activity-3", "a call failed");
	collect(filt, seen, sizeof(seen));
	expect_seen("resubscribe/filter-replaced", seen, "fd.removed");
	lib_collect(lib);
	expect_seen("resubscribe/no-filter-every-event", lib_seen, ALL_FIVE);
	collect(all, seen, sizeof(seen));
	expect_seen("resubscribe/unfiltered-unchanged", seen, ALL_FIVE);
	/* the instance scoping is the subscription's, not the filter's: vm4 is not vm3 */
	tap_check(activity(c, "vm4"), "activity-4", "a call failed");
	collect(filt, seen, sizeof(seen));
	expect_seen("resubscribe/instance-scope-kept", seen, "");
	collect(all, seen, sizeof(seen));
	lib_collect(lib);

	test_tenant(c);
	/* the operator's unfiltered subscription saw the tenant's instance too (scoping is per role) */
	collect(all, seen, sizeof(seen));
	tap_check(strstr(seen, "fd.stored") != NULL, "other-uid/operator-sees-tenant", "got '%s'", seen);

	r = integ_daemon_stop(&D, SIGTERM, 5000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "stop", "status 0x%x", r);
out:
	if (tap_failures())
		integ_daemon_dump_log(&D);
	vlu_close(lib);
	safe_close(c);
	safe_close(all);
	safe_close(filt);
	if (D.pid > 0 && D.exit_status < 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	integ_rmrf(dir);
	return tap_exit_status();
}
