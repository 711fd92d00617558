/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-update.c - the live-update engine on the host, where there is no vhost-vdpa device: everything that
 * is decided before a device is touched.  The real daemon in a temporary directory, the real wire format.
 *   vmm.mappings     accepted for a stored memfd; refused for an unknown name, a non-memfd, a bad entry,
 *                    a device name the instance does not hold, a bad pinning mode
 *   update.start     refused (Unsupported / PermissionDenied / NotFound / InvalidArgument) for: no
 *                    instance, another uid's VMM, an orphaned instance, a bad mode, successor_pid in exec
 *                    mode, allow_disruptive against the policy, no mapping table, a missing or
 *                    non-executable binary, no device; each refusal emits update.refused and changes nothing
 *   update.claim     refused without an update waiting (wrong token for a non-existent update), with a
 *                    malformed token; update.saved / update.ready / update.armed / update.abort without an update
 *   update.status    nothing running, nothing done
 *   no fd leaked in the daemon (/proc/<vlud>/fd before and after)
 * The device-facing phases (suspend, save, exec, claim, restore, resume, the rollbacks) run in the rig:
 * tests/vm/scenarios/update-*.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"

#define NOBODY 65534

static struct integ_daemon D;

static int count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* call and expect an error of class cls whose description contains needle (NULL: any) */
static void expect_error(int c, const char *name, const char *cmd, const char *args, const char *cls,
			 const char *needle)
{
	_cleanup_json_ json_object *rep = NULL;
	const char *got, *desc;
	int r = integ_call(c, cmd, args, NULL, 0, &rep, NULL, 0, NULL);

	got = r == 0 ? integ_error_class(rep) : NULL;
	desc = r == 0 ? integ_error_desc(rep) : NULL;
	tap_check(got && strcmp(got, cls) == 0 && (!needle || (desc && strstr(desc, needle))), name,
		  "%s %s: r=%d class %s desc '%s' (want %s '%s')", cmd, args ? args : "", r, got ? got : "-",
		  desc ? desc : "-", cls, needle ? needle : "");
}

static void expect_ok(int c, const char *name, const char *cmd, const char *args, json_object **ret)
{
	_cleanup_json_ json_object *rep = NULL;
	int r = integ_call(c, cmd, args, NULL, 0, &rep, NULL, 0, NULL);

	if (tap_check(r == 0 && integ_return(rep), name, "%s: r=%d %s", cmd, r,
		      rep ? json_object_to_json_string(rep) : "") &&
	    ret)
		*ret = json_object_get(integ_return(rep));
}

static int store(int c, const char *names_json, const int *fds, size_t n)
{
	_cleanup_json_ json_object *rep = NULL;
	char args[256];

	snprintf(args, sizeof(args), "{\"names\":%s}", names_json);
	if (integ_call(c, "fd.store", args, fds, n, &rep, NULL, 0, NULL) < 0 || !integ_return(rep))
		return -1;
	return 0;
}

/* a child as uid NOBODY (a VMM by the extra rule) tries to update someone else's instance */
static void other_uid_refused(void)
{
	int p[2], st = 0;
	pid_t pid;
	char buf[256] = "";

	if (pipe2(p, O_CLOEXEC) < 0)
		return (void)tap_check(false, "start/other-uid-vmm-refused", "pipe: %m");
	pid = fork();
	if (pid == 0) {
		_cleanup_json_ json_object *rep = NULL;
		const char *cls;
		int c;

		close(p[0]);
		if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(10);
		c = integ_open_client(D.sock, NULL);
		if (c < 0)
			_exit(11);
		if (integ_call(c, "update.start", "{\"instance\":\"vm1\",\"mode\":\"exec\"}", NULL, 0, &rep, NULL, 0, NULL) < 0)
			_exit(12);
		cls = integ_error_class(rep);
		dprintf(p[1], "%s", cls ? cls : "none");
		_exit(cls && strcmp(cls, "PermissionDenied") == 0 ? 0 : 13);
	}
	close(p[1]);
	if (read(p[0], buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "start/other-uid-vmm-refused",
		  "child status 0x%x (10 setresuid, 11 connect, 12 call), class %s", st, buf);
}

/* a second daemon whose max_fds_per_message (3) is below what an instance holds + the state memfd: update.start
 * is refused up front (LimitExceeded) instead of a claim that would hand over fewer fds than held (P1-4) */
static void claim_fd_capacity(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("update-fdcap"), *cfg = NULL;
	struct integ_daemon_opts o = { 0 };
	struct integ_daemon d2;
	int c, fds[3], r;

	if (!dir)
		return (void)tap_check(false, "fdcap/setup", "mkdtemp: %m");
	cfg = integ_default_config(dir, "\"limits\": { \"max_fds_per_message\": 3, \"max_fds_per_instance\": 8 }");
	o.config_json = cfg;
	r = integ_daemon_start(&d2, dir, &o);
	if (!tap_check(r == 0, "fdcap/start", "vlud did not start (%s)", strerror(-r)))
		return;
	c = integ_open_client(d2.sock, NULL);
	expect_ok(c, "fdcap/register", "instance.register", "{\"name\":\"vm1\"}", NULL);
	for (int i = 0; i < 3; i++)
		fds[i] = memfd_create("ram", MFD_CLOEXEC);
	r = ftruncate(fds[0], 1 << 20);
	tap_check(r == 0 && store(c, "[\"ram0\",\"ram1\",\"ram2\"]", fds, 3) == 0, "fdcap/store-3", "fd.store failed");
	expect_ok(c, "fdcap/mappings", "vmm.mappings",
		  "{\"mappings\":[{\"iova\":0,\"size\":1048576,\"memfd\":\"ram0\",\"offset\":0}]}", NULL);
	expect_error(c, "fdcap/start-refused-3-held-plus-state-over-3", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"/bin/true\"}", "LimitExceeded",
		     "max_fds_per_message");
	close_many(fds, 3);
	safe_close(c);
	r = integ_daemon_stop(&d2, SIGTERM, 5000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "fdcap/stop", "status 0x%x", r);
	if (tap_failures())
		integ_daemon_dump_log(&d2);
	integ_rmrf(dir);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("update"), *cfg = NULL, *vmm2 = NULL, *binpath = NULL,
			    *noexec = NULL;
	_cleanup_json_ json_object *ret = NULL, *ev = NULL;
	struct integ_daemon_opts o = { 0 };
	int c = -EBADF, op = -EBADF, sub = -EBADF, fds[2] = { -EBADF, -EBADF }, fd0, fd1, r;
	size_t refused_events = 0;

	tap_suite("integ-update");
	signal(SIGPIPE, SIG_IGN);
	if (!dir)
		return tap_check(false, "setup", "mkdtemp: %m"), 1;
	if (asprintf(&vmm2, "{ \"uids\": [%d], \"fd_types\": [\"memfd\"] }", NOBODY) < 0)
		return 1;
	cfg = integ_config(dir, vmm2, "\"update\": { \"allow_disruptive\": false, \"allow_memlock_raise\": false }");
	o.config_json = cfg;
	r = integ_daemon_start(&D, dir, &o);
	if (!tap_check(r == 0, "start", "vlud did not start (%s)", strerror(-r))) {
		integ_daemon_dump_log(&D);
		return 1;
	}
	/* settle first: the readiness probe's connection (integ_daemon_wait_ready) may not be closed in the
	 * daemon yet, which made fd0 one or two too high under ASan (slower) */
	usleep(300000);
	fd0 = count_fds(D.pid);

	/* an operator subscribed to every event, to see update.refused */
	sub = integ_open_client(D.sock, NULL);
	expect_ok(sub, "subscribe", "events.subscribe", NULL, NULL);

	c = integ_open_client(D.sock, NULL);
	op = integ_open_client(D.sock, NULL);
	tap_check(c >= 0 && op >= 0, "connect", "%d %d", c, op);
	expect_ok(c, "register", "instance.register", "{\"name\":\"vm1\"}", NULL);
	expect_ok(c, "status/nothing-yet", "update.status", "{\"instance\":\"vm1\"}", &ret);
	tap_check(ret && !integ_get(ret, "running") && !integ_get(ret, "last") && !integ_get(ret, "mappings"),
		  "status/no-running-no-last", "%s", ret ? json_object_to_json_string(ret) : "");

	/* ---- vmm.mappings ---- */
	fds[0] = memfd_create("ram", MFD_CLOEXEC);
	fds[1] = eventfd(0, EFD_CLOEXEC);
	r = ftruncate(fds[0], 1 << 20);
	tap_check(r == 0 && store(c, "[\"ram0\",\"kick\"]", fds, 2) == 0, "store-ram-and-eventfd", "fd.store failed");
	expect_error(c, "mappings/unknown-memfd", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":4096,\"size\":4096,\"memfd\":\"nope\",\"offset\":0,\"perm\":3}]}", "NotFound",
		     "not a memfd stored");
	expect_error(c, "mappings/eventfd-is-not-memory", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":4096,\"size\":4096,\"memfd\":\"kick\",\"offset\":0,\"perm\":3}]}", "NotFound",
		     "not a memfd stored");
	expect_error(c, "mappings/zero-size", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":4096,\"size\":0,\"memfd\":\"ram0\",\"offset\":0}]}", "InvalidArgument", "size>0");
	expect_error(c, "mappings/bad-perm", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":4096,\"size\":4096,\"memfd\":\"ram0\",\"offset\":0,\"perm\":7}]}",
		     "InvalidArgument", "perm");
	expect_error(c, "mappings/unknown-device", "vmm.mappings",
		     "{\"mappings\":[],\"devices\":[{\"name\":\"vdpa:vdpa9\",\"pinning\":\"pa\"}]}", "NotFound", "no device fd");
	expect_error(c, "mappings/not-a-device", "vmm.mappings",
		     "{\"mappings\":[],\"devices\":[{\"name\":\"ram0\",\"pinning\":\"pa\"}]}", "NotFound", "no device fd");
	/* bounds (a VMM must not overflow the daemon's arithmetic: 4 x 2^62 then update.start killed a
	 * UBSan daemon) and unknown keys */
	expect_error(c, "mappings/size-2^62-refused", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":0,\"size\":4611686018427387904,\"memfd\":\"ram0\",\"offset\":0}]}",
		     "InvalidArgument", "2^48");
	expect_error(c, "mappings/iova-plus-size-wraps", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":9223372036854771712,\"size\":8192,\"memfd\":\"ram0\",\"offset\":0}]}",
		     "InvalidArgument", "2^48");
	expect_error(c, "mappings/offset-plus-size-over-2^48", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":0,\"size\":4096,\"memfd\":\"ram0\",\"offset\":281474976710656}]}",
		     "InvalidArgument", "2^48");
	expect_error(c, "mappings/negative-uaddr", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":0,\"size\":4096,\"memfd\":\"ram0\",\"offset\":0,\"uaddr\":-1}]}",
		     "InvalidArgument", "uaddr");
	expect_error(c, "mappings/unknown-key-in-mapping", "vmm.mappings",
		     "{\"mappings\":[{\"iova\":0,\"size\":4096,\"memfd\":\"ram0\",\"offset\":0,\"sise\":1}]}",
		     "InvalidArgument", "unknown key 'sise'");
	expect_error(c, "mappings/unknown-key-in-device", "vmm.mappings",
		     "{\"mappings\":[],\"devices\":[{\"name\":\"vdpa:vdpa0\",\"pinning\":\"pa\",\"x\":1}]}",
		     "InvalidArgument", "unknown key 'x'");
	{
		/* 65 mappings: over the command table's limit (checked before the handler) */
		char *big = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&big, &len);

		fprintf(f, "{\"mappings\":[");
		for (int i = 0; i < 65; i++)
			fprintf(f, "%s{\"iova\":%d,\"size\":4096,\"memfd\":\"ram0\",\"offset\":0}", i ? "," : "",
				i * 4096);
		fprintf(f, "]}");
		fclose(f);
		{
			_cleanup_json_ json_object *rep = NULL;
			const char *cls, *desc;

			r = integ_call(c, "vmm.mappings", big, NULL, 0, &rep, NULL, 0, NULL);
			cls = r == 0 ? integ_error_class(rep) : NULL;
			desc = r == 0 ? integ_error_desc(rep) : NULL;
			tap_check(cls && strcmp(cls, "InvalidArgument") == 0 && desc && strstr(desc, "0..64"),
				  "mappings/more-than-64-refused", "r=%d class %s desc '%s'", r, cls ? cls : "-",
				  desc ? desc : "-");
		}
		free(big);
	}
	/* the largest accepted values, summed by update.start: no overflow (the daemon lives on, checked by
	 * the refusals that follow) */
	expect_ok(c, "mappings/2^48-bounds-accepted", "vmm.mappings",
		  "{\"mappings\":["
		  "{\"iova\":0,\"size\":281474976710656,\"memfd\":\"ram0\",\"offset\":0},"
		  "{\"iova\":0,\"size\":281474976710656,\"memfd\":\"ram0\",\"offset\":0},"
		  "{\"iova\":0,\"size\":281474976710656,\"memfd\":\"ram0\",\"offset\":0},"
		  "{\"iova\":0,\"size\":281474976710656,\"memfd\":\"ram0\",\"offset\":0}]}",
		  NULL);
	expect_error(c, "start/huge-mappings-no-device", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"/bin/true\"}", "Unsupported",
		     "holds no vhost-vdpa device");
	expect_ok(c, "mappings/empty-table-accepted", "vmm.mappings", "{\"mappings\":[]}", NULL);

	/* ---- update.start refusals (nothing touched) ---- */
	expect_error(op, "start/unknown-instance", "update.start", "{\"instance\":\"nope\",\"mode\":\"exec\"}", "NotFound",
		     "no instance");
	other_uid_refused();
	expect_error(c, "start/bad-mode", "update.start", "{\"instance\":\"vm1\",\"mode\":\"fork\"}", "InvalidArgument",
		     "mode");
	expect_error(c, "start/successor-pid-in-exec-mode", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"successor_pid\":1}", "InvalidArgument", "transfer mode");
	expect_error(c, "start/disruptive-forbidden-by-policy", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"allow_disruptive\":true}", "PermissionDenied",
		     "allow_disruptive");
	expect_error(c, "start/no-mapping-table", "update.start", "{\"instance\":\"vm1\",\"mode\":\"exec\"}", "Unsupported",
		     "guest memory is not known to be in a stored memfd");
	expect_ok(c, "mappings/accepted", "vmm.mappings",
		  "{\"mappings\":[{\"iova\":4294967296,\"size\":1048576,\"memfd\":\"ram0\",\"offset\":0,\"uaddr\":0,"
		  "\"perm\":3}]}",
		  NULL);
	expect_error(c, "start/missing-binary", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"/nonexistent/vmm\"}", "Unsupported",
		     "No such file");
	expect_error(c, "start/relative-binary", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"vmm\"}", "Unsupported", "absolute path");
	if (asprintf(&noexec, "%s/vlud.conf", dir) >= 0) {
		char args[512];

		snprintf(args, sizeof(args), "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"%s\"}", noexec);
		expect_error(c, "start/non-executable-binary", "update.start", args, "Unsupported", "not an executable");
	}
	expect_error(c, "start/no-device", "update.start", "{\"instance\":\"vm1\",\"mode\":\"exec\",\"binary\":\"/bin/true\"}",
		     "Unsupported", "holds no vhost-vdpa device");
	expect_error(c, "start/transfer-missing-successor-pid", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"transfer\",\"successor_pid\":4194000,\"wait\":false}", "NotFound",
		     "does not exist");
	/* a named successor needs the token, which only the wait:false reply carries: wait:true (the
	 * default) could never succeed */
	expect_error(c, "start/successor-pid-needs-wait-false", "update.start",
		     "{\"instance\":\"vm1\",\"mode\":\"transfer\",\"successor_pid\":1}", "InvalidArgument",
		     "wait:false");
	json_object_put(ret);
	ret = NULL;
	expect_ok(c, "status/still-nothing", "update.status", "{\"instance\":\"vm1\"}", &ret);
	tap_check(ret && !integ_get(ret, "running") && !integ_get(ret, "last") && integ_get(ret, "mappings"),
		  "status/refusals-changed-nothing", "%s", ret ? json_object_to_json_string(ret) : "");

	/* ---- binding and out-of-phase calls ---- */
	expect_error(op, "claim/no-update-waiting", "update.claim",
		     "{\"instance\":\"vm1\",\"token\":\"0123456789abcdef0123456789abcdef\"}", "PermissionDenied",
		     "no update of 'vm1' is waiting");
	expect_error(op, "claim/short-token", "update.claim", "{\"instance\":\"vm1\",\"token\":\"0123\"}", "InvalidArgument",
		     NULL);
	expect_error(c, "ready/no-update", "update.ready", NULL, "NotFound", "no update");
	expect_error(c, "armed/no-update", "update.armed", NULL, "NotFound", "no update");
	expect_error(c, "armed/no-update-error", "update.armed", "{\"error\":\"x\"}", "NotFound", "no update");
	expect_error(c, "abort/no-update", "update.abort", "{\"instance\":\"vm1\"}", "NotFound", "no update");
	{
		_cleanup_json_ json_object *rep = NULL;
		int sfd = memfd_create("state", MFD_CLOEXEC);

		r = integ_call(c, "update.saved", "{\"names\":[\"state\"],\"state_size\":0}", &sfd, 1, &rep, NULL, 0, NULL);
		tap_check(r == 0 && integ_error_class(rep) && strcmp(integ_error_class(rep), "NotFound") == 0,
			  "saved/no-update", "r=%d %s", r, rep ? json_object_to_json_string(rep) : "");
		safe_close(sfd);
	}

	/* ---- the refusals were announced ---- */
	for (;;) {
		json_object *m = NULL, *n;

		if (integ_recv(sub, 300, &m, NULL, 0, NULL) < 0)
			break;
		n = integ_get(m, "event");
		if (n && strcmp(integ_str(n), "update.refused") == 0)
			refused_events++;
		json_object_put(m);
	}
	tap_check(refused_events >= 13, "events/update.refused-for-each-refusal", "%zu update.refused events",
		  refused_events);

	/* ---- release; no fd leaked ---- */
	expect_ok(op, "release", "instance.release", "{\"name\":\"vm1\"}", NULL);
	close(c);
	close(op);
	close(sub);
	close_many(fds, 2);
	usleep(300000);
	fd1 = count_fds(D.pid);
	tap_check(fd0 > 0 && fd1 == fd0, "no-fd-leak-in-daemon", "daemon fds %d before, %d after", fd0, fd1);

	r = integ_daemon_stop(&D, SIGTERM, 5000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "stop", "status 0x%x", r);
	if (tap_failures())
		integ_daemon_dump_log(&D);
	integ_rmrf(dir);
	claim_fd_capacity();
	(void)binpath;
	(void)ev;
	return tap_exit_status();
}
