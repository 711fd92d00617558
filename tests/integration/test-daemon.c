/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon.c - the built vlud in a temporary directory, driven over its real socket with the real wire
 * format: greeting and negotiation, every foundation command, device.open refusals, fd store/retrieve with
 * identity checked by kcmp, malformed/truncated/oversize messages, too many fds, unknown commands and
 * wrong types (each with its error class and the daemon's state unchanged, refused fds closed), a client of
 * another uid refused by the policy, a flood of connections beyond the limit, kill -9 of a VMM client
 * (fds kept, instance orphaned) and a SIGTERM drain.  One TAP line per check.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
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

#include "integ.h"
#include "vlu-proto.h"

#define MAX_CONN 8
#define MAX_FDS_MSG 8
#define MAX_MSG 4096
#define HANDSHAKE_MS 1500
#define NOBODY 65534
#define VMM_UID 4242 /* admitted as a VMM only, by a second rule */

static struct integ_daemon D;
static struct integ_notify N;

static bool class_is(json_object *rep, const char *cls)
{
	const char *c = integ_error_class(rep);
	return c && strcmp(c, cls) == 0;
}

static const char *cls_or(json_object *rep)
{
	const char *c = integ_error_class(rep);
	return c ? c : (rep ? json_object_to_json_string(rep) : "(no reply)");
}

/* a pipe whose write end we send and close: EOF on the read end proves the daemon closed its copy */
static bool pipe_closed_by_peer(int rfd, int timeout_ms)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	char c;
	return poll(&p, 1, timeout_ms) == 1 && read(rfd, &c, 1) == 0;
}

static int find_by_name(json_object *arr, const char *key, const char *name)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		const char *n = integ_str(integ_get(json_object_array_get_idx(arr, i), key));
		if (n && strcmp(n, name) == 0)
			return (int)i;
	}
	return -1;
}

static int64_t jint(json_object *o)
{
	return o ? json_object_get_int64(o) : -1;
}

/* ---- tests ---- */

static void test_greeting(void)
{
	_cleanup_json_ json_object *g = NULL, *rep = NULL, *rep2 = NULL;
	_cleanup_close_ int c = integ_connect(D.sock);
	int r;

	if (!tap_check(c >= 0, "connect", "connect %s: %s", D.sock, strerror(-c)))
		return;
	r = integ_recv(c, 5000, &g, NULL, 0, NULL);
	tap_check(r == 0 && jint(integ_get(g, "VLU.version.major")) == VLU_PROTO_MAJOR &&
			  integ_str(integ_get(g, "VLU.version.package")) &&
			  json_object_is_type(integ_get(g, "VLU.capabilities"), json_type_array),
		  "greeting", "r=%d greeting %s", r, g ? json_object_to_json_string(g) : "-");
	r = integ_call(c, "status", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && class_is(rep, "NotNegotiated"), "status-before-negotiation-refused",
		  "r=%d got %s", r, cls_or(rep));
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "capabilities", "{\"enable\":[\"no-such-capability\"]}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && class_is(rep, "InvalidArgument"), "capabilities-unknown-refused", "r=%d got %s", r,
		  rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "capabilities", "{\"enable\":[]}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && integ_return(rep), "capabilities", "r=%d got %s", r, cls_or(rep));
	r = integ_call(c, "status", NULL, NULL, 0, &rep2, NULL, 0, NULL);
	tap_check(r == 0 && jint(integ_get(rep2, "return.pid")) == D.pid, "status",
		  "r=%d pid %lld, daemon %d: %s", r, (long long)jint(integ_get(rep2, "return.pid")), (int)D.pid,
		  rep2 ? json_object_to_json_string(rep2) : "-");
}

/* device.reopen refused with nothing changed (the reopen of a real device runs in the rig: qemu-vluctl-run):
 * a stored memfd is not a device, a device name the instance does not hold, an unknown name, another
 * instance's fd, a bad name, no instance.  vm1 on c holds "ram" (memfd) and "kick" (eventfd). */
static void test_reopen_refusals(int c)
{
	static const struct {
		const char *check, *args, *cls, *needle;
	} cases[] = {
		{ "device.reopen-memfd-not-a-device", "{\"name\":\"ram\"}", "InvalidArgument", "is a memfd" },
		{ "device.reopen-eventfd-not-a-device", "{\"name\":\"kick\"}", "InvalidArgument", "device.open" },
		{ "device.reopen-device-not-held", "{\"name\":\"vdpa:vdpa0\"}", "NotFound", "holds no fd named" },
		{ "device.reopen-unknown-name", "{\"name\":\"nosuch\"}", "NotFound", "holds no fd named" },
		{ "device.reopen-other-instances-fd", "{\"name\":\"other-ram\"}", "NotFound", "holds no fd named" },
		{ "device.reopen-bad-name", "{\"name\":\"vdpa 0\"}", "InvalidArgument", "name" },
		{ "device.reopen-no-name", "{}", "InvalidArgument", "name" },
		{ "device.reopen-unknown-argument", "{\"name\":\"ram\",\"device\":\"vdpa0\"}", "InvalidArgument",
		  "device" },
	};
	_cleanup_close_ int c2 = integ_open_client(D.sock, NULL), c3 = integ_open_client(D.sock, NULL);
	_cleanup_close_ int mfd = memfd_create("other-ram", MFD_CLOEXEC);
	_cleanup_free_ char *before = NULL, *after = NULL;
	_cleanup_json_ json_object *rep = NULL;
	int rfd[4], r;
	size_t nr = 0;

	/* another instance (vm-other, same uid) holding "other-ram" */
	r = c2 >= 0 ? integ_call(c2, "instance.register", "{\"name\":\"vm-other\"}", NULL, 0, &rep, NULL, 0, NULL) : -1;
	json_object_put(TAKE_PTR(rep));
	if (r == 0 && mfd >= 0)
		r = integ_call(c2, "fd.store", "{\"names\":[\"other-ram\"]}", &mfd, 1, &rep, NULL, 0, NULL);
	if (!tap_check(r == 0 && integ_return(rep), "device.reopen-setup", "vm-other: %s", cls_or(rep)))
		return;
	json_object_put(TAKE_PTR(rep));

	before = integ_snapshot(c);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *desc;

		nr = 0;
		r = integ_call(c, "device.reopen", cases[i].args, NULL, 0, &rep, rfd, 4, &nr);
		desc = integ_error_desc(rep);
		tap_check(r == 0 && class_is(rep, cases[i].cls) && nr == 0 && desc && strstr(desc, cases[i].needle),
			  cases[i].check, "r=%d nfds=%zu, want %s with '%s': %s", r, nr, cases[i].cls, cases[i].needle,
			  rep ? json_object_to_json_string(rep) : "-");
		close_many(rfd, nr);
		json_object_put(TAKE_PTR(rep));
	}
	/* a connection without an instance */
	r = c3 >= 0 ? integ_call(c3, "device.reopen", "{\"name\":\"ram\"}", NULL, 0, &rep, rfd, 4, &nr) : -1;
	tap_check(r == 0 && class_is(rep, "PermissionDenied") && nr == 0, "device.reopen-no-instance", "r=%d %s", r,
		  cls_or(rep));
	json_object_put(TAKE_PTR(rep));
	after = integ_snapshot(c);
	tap_check(before && after && strcmp(before, after) == 0, "device.reopen-refusals-change-nothing",
		  "before %s\n# after  %s", before ? before : "-", after ? after : "-");
	r = integ_call(c2, "instance.release", "{\"name\":\"vm-other\"}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && integ_return(rep), "device.reopen-cleanup", "%s", cls_or(rep));
}

/* every command once, with the state it leaves checked */
static void test_commands(int c, int ev)
{
	_cleanup_json_ json_object *rep = NULL;
	_cleanup_close_ int mfd = -EBADF, efd = -EBADF;
	int fds[2], rfd[4];
	size_t nr = 0;
	char *m;
	int r, i;

	r = integ_call(c, "instance.register", "{\"name\":\"vm1\"}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && integ_str(integ_get(rep, "return.name")) &&
			  strcmp(integ_str(integ_get(rep, "return.name")), "vm1") == 0 &&
			  jint(integ_get(rep, "return.pid")) == getpid() && jint(integ_get(rep, "return.uid")) == 0,
		  "instance.register", "r=%d %s", r, rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "instance.register", "{\"name\":\"vm1\"}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && class_is(rep, "Busy"), "instance.register-twice-refused", "r=%d %s", r, cls_or(rep));
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "instance.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
	i = find_by_name(integ_get(rep, "return.instances"), "name", "vm1");
	tap_check(r == 0 && i >= 0, "instance.list", "vm1 not listed: %s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "device.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && json_object_is_type(integ_get(rep, "return.devices"), json_type_array) &&
			  json_object_array_length(integ_get(rep, "return.devices")) >= 1,
		  "device.list", "r=%d %s", r, rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));

	/* device.open refusals (the success path needs a real vhost-vdpa device: the rig tests it) */
	r = integ_call(c, "device.open", "{\"device\":\"/dev/zero\"}", NULL, 0, &rep, rfd, 4, &nr);
	tap_check(r == 0 && class_is(rep, "PermissionDenied") && nr == 0, "device.open-not-in-policy",
		  "r=%d %s nfds=%zu", r, cls_or(rep), nr);
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "device.open", "{\"device\":\"vdpa9\"}", NULL, 0, &rep, rfd, 4, &nr);
	tap_check(r == 0 && class_is(rep, "PermissionDenied") && nr == 0, "device.open-vdpa-name-not-in-policy",
		  "r=%d %s nfds=%zu", r, cls_or(rep), nr);
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "device.open", "{\"device\":\"/dev/null\"}", NULL, 0, &rep, rfd, 4, &nr);
	tap_check(r == 0 && (class_is(rep, "DeviceError") || class_is(rep, "InvalidArgument")) && nr == 0 &&
			  integ_error_desc(rep),
		  "device.open-not-vhost-vdpa", "r=%d %s nfds=%zu", r,
		  rep ? json_object_to_json_string(rep) : "-", nr);
	if (integ_error_desc(rep))
		tap_diag("device.open /dev/null: %s", integ_error_desc(rep));
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "device.open", "{\"device\":\"vdpa0\"}", NULL, 0, &rep, rfd, 4, &nr);
	tap_check(r == 0 && (class_is(rep, "NotFound") || class_is(rep, "DeviceError")) && nr == 0,
		  "device.open-absent-vdpa-device",
		  "host has no vdpa0 but got %s nfds=%zu", rep ? json_object_to_json_string(rep) : "-", nr);
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));

	/* fd.store: a real memfd with data and a real eventfd with a count */
	mfd = memfd_create("integ-ram", MFD_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mfd < 0 || efd < 0 || ftruncate(mfd, 65536) < 0 || pwrite(mfd, "guest-ram", 9, 4096) != 9 ||
	    eventfd_write(efd, 5) < 0) {
		tap_check(false, "fd.store", "memfd/eventfd setup: %m");
		return;
	}
	fds[0] = mfd;
	fds[1] = efd;
	r = integ_call(c, "fd.store", "{\"names\":[\"ram\",\"kick\"]}", fds, 2, &rep, NULL, 0, NULL);
	{
		struct stat st;
		json_object *a = integ_get(rep, "return.fds");
		bool ok = r == 0 && a && json_object_array_length(a) == 2 && fstat(mfd, &st) == 0 &&
			  jint(integ_get(a, "0.ino")) == (int64_t)st.st_ino &&
			  integ_str(integ_get(a, "0.type")) && strcmp(integ_str(integ_get(a, "0.type")), "memfd") == 0 &&
			  integ_str(integ_get(a, "1.type")) && strcmp(integ_str(integ_get(a, "1.type")), "eventfd") == 0;
		tap_check(ok, "fd.store", "r=%d %s", r, rep ? json_object_to_json_string(rep) : "-");
	}
	json_object_put(TAKE_PTR(rep));

	/* the subscriber sees fd.stored */
	{
		json_object *e = NULL;
		bool seen = false;
		for (int k = 0; k < 10 && !seen; k++) {
			if (integ_recv(ev, 500, &e, NULL, 0, NULL) < 0)
				break;
			if (integ_str(integ_get(e, "event")) && strcmp(integ_str(integ_get(e, "event")), "fd.stored") == 0 &&
			    integ_get(e, "timestamp.seconds"))
				seen = true;
			json_object_put(e);
			e = NULL;
		}
		tap_check(seen, "events.subscribe-fd.stored", "no fd.stored event with timestamp on the subscriber");
	}

	test_reopen_refusals(c);

	r = integ_call(c, "fd.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
	{
		json_object *a = integ_get(rep, "return.fds");
		int k = find_by_name(a, "name", "ram");
		tap_check(r == 0 && k >= 0 && find_by_name(a, "name", "kick") >= 0 &&
				  integ_get(json_object_array_get_idx(a, (size_t)k), "age_ms") &&
				  integ_str(integ_get(json_object_array_get_idx(a, (size_t)k), "instance")),
			  "fd.list", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "fd.store", "{\"names\":[\"ram\"]}", fds, 1, &rep, NULL, 0, NULL);
	tap_check(r == 0 && class_is(rep, "Busy"), "fd.store-duplicate-name-refused", "r=%d %s", r, cls_or(rep));
	json_object_put(TAKE_PTR(rep));

	/* fd.retrieve: the same open file (kcmp), data visible both ways */
	r = integ_call(c, "fd.retrieve", "{\"names\":[\"kick\",\"ram\"]}", NULL, 0, &rep, rfd, 4, &nr);
	if (tap_check(r == 0 && integ_return(rep) && nr == 2, "fd.retrieve", "r=%d nfds=%zu %s", r, nr,
		      rep ? json_object_to_json_string(rep) : "-")) {
		char buf[16] = "";
		eventfd_t v = 0;
		tap_check(integ_kcmp_file(getpid(), rfd[0], getpid(), efd) == 0 &&
				  integ_kcmp_file(getpid(), rfd[1], getpid(), mfd) == 0,
			  "fd.retrieve-kcmp-same-file", "kcmp says the retrieved fds are other files");
		tap_check(pread(rfd[1], buf, 9, 4096) == 9 && memcmp(buf, "guest-ram", 9) == 0 &&
				  eventfd_read(rfd[0], &v) == 0 && v == 5,
			  "fd.retrieve-data", "memfd '%s', eventfd %llu", buf, (unsigned long long)v);
	}
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "fd.retrieve", "{\"names\":[\"nope\"]}", NULL, 0, &rep, rfd, 4, &nr);
	tap_check(r == 0 && class_is(rep, "NotFound") && nr == 0, "fd.retrieve-unknown-name", "r=%d %s", r, cls_or(rep));
	close_many(rfd, nr);
	json_object_put(TAKE_PTR(rep));

	r = integ_call(c, "fd.remove", "{\"names\":[\"kick\"]}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && jint(integ_get(rep, "return.removed")) == 1, "fd.remove", "r=%d %s", r,
		  rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));
	r = integ_call(c, "fd.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && find_by_name(integ_get(rep, "return.fds"), "name", "kick") < 0 &&
			  find_by_name(integ_get(rep, "return.fds"), "name", "ram") >= 0,
		  "fd.remove-listed", "%s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(TAKE_PTR(rep));

	m = integ_snapshot(c);
	tap_diag("state: %s", m ? m : "-");
	free(m);
}

/* bad input: each gets its error class, the state does not change, fds that came with it are closed */
static void test_bad_input(int c)
{
	_cleanup_free_ char *before = integ_snapshot(c), *big = NULL;
	json_object *rep = NULL;
	int p[2], r;
	struct {
		const char *name, *msg, *cls;
	} cases[] = {
		{ "malformed-json", "{\"execute\": \"status\", ", "InvalidArgument" },
		{ "truncated-json", "{\"execute\":\"fd.list\",\"arguments\":{\"instance\":\"vm", "InvalidArgument" },
		{ "not-an-object", "[1,2,3]", "InvalidArgument" },
		{ "execute-not-string", "{\"execute\":42,\"id\":1}", "InvalidArgument" },
		{ "unknown-top-level-key", "{\"execute\":\"status\",\"bogus\":1,\"id\":1}", "InvalidArgument" },
		{ "unknown-command", "{\"execute\":\"no.such.command\",\"id\":1}", "CommandNotFound" },
		{ "wrong-type-name", "{\"execute\":\"instance.register\",\"arguments\":{\"name\":5},\"id\":1}", "InvalidArgument" },
		{ "wrong-type-names", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":\"ram\"},\"id\":1}", "InvalidArgument" },
		{ "unknown-argument", "{\"execute\":\"fd.list\",\"arguments\":{\"bogus\":true},\"id\":1}", "InvalidArgument" },
		{ "missing-argument", "{\"execute\":\"fd.retrieve\",\"arguments\":{},\"id\":1}", "InvalidArgument" },
		{ "bad-name", "{\"execute\":\"fd.remove\",\"arguments\":{\"names\":[\"../x\"]},\"id\":1}", "InvalidArgument" },
		{ "arguments-not-object", "{\"execute\":\"fd.list\",\"arguments\":[],\"id\":1}", "InvalidArgument" },
		{ "too-deep", "{\"execute\":\"fd.list\",\"arguments\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]},\"id\":1}", NULL },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		r = integ_send_raw(c, cases[i].msg, strlen(cases[i].msg), NULL, 0);
		if (r == 0)
			r = integ_recv(c, 5000, &rep, NULL, 0, NULL);
		if (cases[i].cls)
			tap_check(r == 0 && class_is(rep, cases[i].cls), cases[i].name, "r=%d want %s got %s", r,
				  cases[i].cls, cls_or(rep));
		else
			tap_check(r == 0 && integ_error_class(rep) &&
					  (class_is(rep, "InvalidArgument") || class_is(rep, "LimitExceeded")),
				  cases[i].name, "r=%d got %s", r, cls_or(rep));
		json_object_put(rep);
		rep = NULL;
	}

	/* oversize: beyond max_message_bytes */
	big = malloc(MAX_MSG * 2);
	memset(big, ' ', MAX_MSG * 2);
	memcpy(big, "{\"execute\":\"status\",\"id\":1", 26);
	big[MAX_MSG * 2 - 1] = '}';
	r = integ_send_raw(c, big, MAX_MSG * 2, NULL, 0);
	if (r == 0)
		r = integ_recv(c, 5000, &rep, NULL, 0, NULL);
	/* the message is truncated by the kernel: its id cannot be known, the reply has none */
	tap_check(r == 0 && class_is(rep, "LimitExceeded") && !integ_get(rep, "id"), "oversize-message",
		  "r=%d (%s) got %s", r, r < 0 ? strerror(-r) : "", cls_or(rep));
	json_object_put(rep);
	rep = NULL;

	/* too many fds: more than max_fds_per_message, with a pipe to prove they were closed */
	if (pipe2(p, O_CLOEXEC) == 0) {
		int fds[MAX_FDS_MSG + 1];
		char names[1024] = "{\"names\":[";
		for (int k = 0; k <= MAX_FDS_MSG; k++) {
			fds[k] = p[1];
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s\"p%d\"", k ? "," : "", k);
		}
		strcat(names, "]}");
		char msg[1200];
		/* the daemon receives at most max_fds_per_message fds: the kernel truncates the rest
		 * (MSG_CTRUNC) and the reply carries no id (a truncated message is not trusted) */
		snprintf(msg, sizeof(msg), "{\"execute\":\"fd.store\",\"arguments\":%s,\"id\":77}", names);
		r = integ_send_raw(c, msg, strlen(msg), fds, MAX_FDS_MSG + 1);
		if (r == 0)
			r = integ_recv(c, 5000, &rep, NULL, 0, NULL);
		close(p[1]);
		tap_check(r == 0 && class_is(rep, "LimitExceeded"), "too-many-fds", "r=%d got %s", r, cls_or(rep));
		tap_check(pipe_closed_by_peer(p[0], 2000), "too-many-fds-closed", "daemon kept a refused fd open");
		close(p[0]);
		json_object_put(rep);
		rep = NULL;
	}
	/* fd count not matching names */
	if (pipe2(p, O_CLOEXEC) == 0) {
		r = integ_call(c, "fd.store", "{\"names\":[\"a\",\"b\"]}", &p[1], 1, &rep, NULL, 0, NULL);
		close(p[1]);
		tap_check(r == 0 && class_is(rep, "InvalidArgument"), "fd-count-mismatch", "r=%d got %s", r, cls_or(rep));
		tap_check(pipe_closed_by_peer(p[0], 2000), "fd-count-mismatch-closed", "daemon kept a refused fd open");
		close(p[0]);
		json_object_put(rep);
		rep = NULL;
	}
	/* fds on a command that takes none */
	if (pipe2(p, O_CLOEXEC) == 0) {
		r = integ_call(c, "status", NULL, &p[1], 1, &rep, NULL, 0, NULL);
		close(p[1]);
		tap_check(r == 0 && class_is(rep, "InvalidArgument"), "fds-on-command-without-fds", "r=%d got %s", r,
			  cls_or(rep));
		tap_check(pipe_closed_by_peer(p[0], 2000), "fds-on-command-without-fds-closed",
			  "daemon kept an unexpected fd open");
		close(p[0]);
		json_object_put(rep);
		rep = NULL;
	}
	/* an fd type the policy does not allow (a character device) */
	{
		int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		r = integ_call(c, "fd.store", "{\"names\":[\"null\"]}", &nfd, 1, &rep, NULL, 0, NULL);
		tap_check(r == 0 && class_is(rep, "PermissionDenied"), "fd.store-type-not-allowed", "r=%d got %s", r,
			  cls_or(rep));
		close(nfd);
		json_object_put(rep);
		rep = NULL;
	}

	{
		_cleanup_free_ char *after = integ_snapshot(c);
		tap_check(before && after && strcmp(before, after) == 0, "bad-input-state-unchanged",
			  "before %s after %s", before ? before : "-", after ? after : "-");
	}
	/* the connection survived all of it */
	r = integ_call(c, "status", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && integ_return(rep), "bad-input-connection-usable", "r=%d %s", r, cls_or(rep));
	json_object_put(rep);
}

/* a client of another uid (not in the policy) is refused */
static void test_other_uid(int c)
{
	_cleanup_free_ char *before = integ_snapshot(c), *after = NULL;
	int st = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		json_object *rep = NULL, *g = NULL;
		int fd, r;

		if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setgroups(0, NULL) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(10);
		fd = integ_connect(D.sock);
		if (fd < 0)
			_exit(fd == -EACCES ? 11 : 12); /* 11: file mode refused, not the policy */
		r = integ_recv(fd, 3000, &g, NULL, 0, NULL);
		if (r == -ECONNRESET)
			_exit(0); /* refused at accept: closed without a greeting */
		if (r < 0)
			_exit(13);
		if (integ_get(g, "error")) /* greeting replaced by an error */
			_exit(0);
		r = integ_call(fd, "capabilities", "{}", NULL, 0, &rep, NULL, 0, NULL);
		if (r == -ECONNRESET || (r == 0 && class_is(rep, "PermissionDenied")))
			_exit(0);
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "instance.register", "{\"name\":\"intruder\"}", NULL, 0, &rep, NULL, 0, NULL);
		if (r == -ECONNRESET || (r == 0 && class_is(rep, "PermissionDenied")))
			_exit(0);
		_exit(14);
	}
	waitpid(pid, &st, 0);
	tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "other-uid-refused",
		  "uid %d child: status 0x%x (10 setresuid, 11 EACCES on the socket file, 12 connect, 13 recv, 14 admitted)",
		  NOBODY, st);
	after = integ_snapshot(c);
	tap_check(before && after && strcmp(before, after) == 0, "other-uid-state-unchanged", "before %s after %s",
		  before ? before : "-", after ? after : "-");
}

/* more connections than max_connections: the extra ones are refused, the daemon keeps serving */
static void test_flood(int existing)
{
	int fds[MAX_CONN + 6];
	unsigned served = 0, refused = 0;
	json_object *rep = NULL;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
		json_object *g = NULL;
		fds[i] = integ_connect(D.sock);
		if (fds[i] < 0) {
			refused++;
			continue;
		}
		r = integ_recv(fds[i], 2000, &g, NULL, 0, NULL);
		if (r == 0 && integ_get(g, "VLU"))
			served++;
		else
			refused++;
		json_object_put(g);
	}
	tap_check(served + existing <= MAX_CONN && refused >= ELEMENTSOF(fds) + existing - MAX_CONN,
		  "connection-flood-limited", "%u greeted (+%d already open), %u refused, limit %d", served, existing,
		  refused, MAX_CONN);
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		safe_close(fds[i]);
	/* after the flood is gone, a new client is served again */
	usleep(200000);
	{
		int c = -EBADF;
		for (int k = 0; k < 20 && c < 0; k++) {
			c = integ_open_client(D.sock, NULL);
			if (c < 0)
				usleep(100000);
		}
		r = c >= 0 ? integ_call(c, "status", NULL, NULL, 0, &rep, NULL, 0, NULL) : c;
		tap_check(r == 0 && integ_return(rep), "connection-flood-recovers", "r=%d", r);
		json_object_put(rep);
		safe_close(c);
	}
}

/* kill -9 of a VMM client: the instance is orphaned, its fds are kept; an operator releases it */
static void test_vmm_killed(int c)
{
	json_object *rep = NULL;
	int sync[2], st, r;
	bool orphaned = false;
	pid_t pid;
	char ch;

	if (pipe2(sync, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int k = integ_open_client(D.sock, NULL);
		int m = memfd_create("vmk-ram", MFD_CLOEXEC);
		json_object *x = NULL;

		close(sync[0]);
		if (k < 0 || m < 0 || integ_call(k, "instance.register", "{\"name\":\"vmk\"}", NULL, 0, &x, NULL, 0, NULL) < 0 ||
		    !integ_return(x))
			_exit(1);
		json_object_put(x);
		if (integ_call(k, "fd.store", "{\"names\":[\"ram\"]}", &m, 1, &x, NULL, 0, NULL) < 0 || !integ_return(x))
			_exit(2);
		if (write(sync[1], "s", 1) != 1)
			_exit(3);
		pause();
		_exit(4);
	}
	close(sync[1]);
	r = (int)read(sync[0], &ch, 1);
	close(sync[0]);
	if (!tap_check(r == 1, "vmm-kill9-setup", "child could not register and store")) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	for (int k = 0; k < 50 && !orphaned; k++) {
		json_object *inst;
		int i;

		r = integ_call(c, "instance.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
		inst = integ_get(rep, "return.instances");
		i = find_by_name(inst, "name", "vmk");
		if (i >= 0) {
			json_object *e = json_object_array_get_idx(inst, (size_t)i);
			const char *s = integ_str(integ_get(e, "state"));
			json_object *o = integ_get(e, "orphaned");
			orphaned = (s && strcmp(s, "orphaned") == 0) || (o && json_object_get_boolean(o));
		}
		if (!orphaned) {
			json_object_put(rep);
			rep = NULL;
			usleep(100000);
		}
	}
	tap_check(orphaned, "vmm-kill9-orphaned", "instance vmk not orphaned: %s",
		  rep ? json_object_to_json_string(rep) : "-");
	json_object_put(rep);
	rep = NULL;
	r = integ_call(c, "fd.list", "{\"instance\":\"vmk\"}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && find_by_name(integ_get(rep, "return.fds"), "name", "ram") >= 0, "vmm-kill9-fds-kept",
		  "%s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(rep);
	rep = NULL;
	r = integ_call(c, "instance.release", "{\"name\":\"vmk\"}", NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && jint(integ_get(rep, "return.closed_fds")) == 1, "instance.release-orphan",
		  "%s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(rep);
	rep = NULL;
	r = integ_call(c, "instance.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && find_by_name(integ_get(rep, "return.instances"), "name", "vmk") < 0,
		  "instance.release-gone", "%s", rep ? json_object_to_json_string(rep) : "-");
	json_object_put(rep);
}

/* every command of the table (foundation and later ones) answers a request without arguments with a
 * return or a well-formed error of a known class: never CommandNotFound, Internal or silence */
static void test_table_walk(void)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	_cleanup_free_ char *before = NULL, *after = NULL;
	unsigned bad = 0;
	char why[2048] = "";

	if (!tap_check(c >= 0, "table-walk-connect", "%s", strerror(-c)))
		return;
	before = integ_snapshot(c);
	for (size_t i = 0; i < _VLU_CMD_MAX; i++) {
		json_object *rep = NULL;
		const char *cls;
		int r;

		if (vlu_commands[i].id == VLU_CMD_CAPABILITIES)
			continue; /* already negotiated on this connection */
		r = integ_call(c, vlu_commands[i].name, "{}", NULL, 0, &rep, NULL, 0, NULL);
		cls = integ_error_class(rep);
		if (r < 0 || (!integ_return(rep) && (!cls || vlu_error_class_from_name(cls) < 0 ||
						      strcmp(cls, "CommandNotFound") == 0 || strcmp(cls, "Internal") == 0))) {
			bad++;
			snprintf(why + strlen(why), sizeof(why) - strlen(why), "%s: r=%d %s; ", vlu_commands[i].name, r,
				 rep ? json_object_to_json_string(rep) : "-");
		}
		json_object_put(rep);
	}
	tap_check(bad == 0, "table-walk-every-command-answers", "%u commands: %s", bad, why);
	after = integ_snapshot(c);
	tap_check(before && after && strcmp(before, after) == 0, "table-walk-state-unchanged", "before %s after %s",
		  before ? before : "-", after ? after : "-");
}

/* a VMM of another uid: sees only its own instance, cannot touch others', opens only its devices */
static void test_unprivileged_vmm(int c)
{
	_cleanup_free_ char *before = integ_snapshot(c);
	int st = 0, sync[2];
	pid_t pid;
	char buf[1024] = "";
	ssize_t n;

	if (pipe2(sync, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		json_object *rep = NULL;
		char out[1024] = "";
		int fd, r, fail = 0;
		int m;

		close(sync[0]);
#define STEP(cond, ...) do { if (!(cond)) { snprintf(out + strlen(out), sizeof(out) - strlen(out), __VA_ARGS__); fail++; } } while (0)
		if (setresgid(VMM_UID, VMM_UID, VMM_UID) < 0 || setgroups(0, NULL) < 0 ||
		    setresuid(VMM_UID, VMM_UID, VMM_UID) < 0)
			_exit(10);
		fd = integ_open_client(D.sock, NULL);
		if (fd < 0)
			_exit(11);
		r = integ_call(fd, "instance.register", "{\"name\":\"vmuser\"}", NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && integ_return(rep) && jint(integ_get(rep, "return.uid")) == VMM_UID, "register %s; ",
		     cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "instance.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && find_by_name(integ_get(rep, "return.instances"), "name", "vm1") < 0 &&
			     find_by_name(integ_get(rep, "return.instances"), "name", "vmuser") >= 0,
		     "instance.list shows others or not itself: %s; ", rep ? json_object_to_json_string(rep) : "-");
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "fd.list", NULL, NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && integ_return(rep) && find_by_name(integ_get(rep, "return.fds"), "instance", "vm1") < 0,
		     "fd.list shows vm1's fds: %s; ", rep ? json_object_to_json_string(rep) : "-");
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "instance.release", "{\"name\":\"vm1\"}", NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && class_is(rep, "PermissionDenied"), "release of vm1: %s; ", cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "fd.remove", "{\"names\":[\"ram\"],\"instance\":\"vm1\"}", NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && class_is(rep, "PermissionDenied"), "fd.remove of vm1's: %s; ", cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "device.open", "{\"device\":\"/dev/null\"}", NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && class_is(rep, "PermissionDenied"), "device.open of root's device: %s; ", cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		/* its own fds: a memfd is allowed by its rule, an eventfd is not */
		m = memfd_create("user-ram", MFD_CLOEXEC);
		r = integ_call(fd, "fd.store", "{\"names\":[\"uram\"]}", &m, 1, &rep, NULL, 0, NULL);
		STEP(r == 0 && integ_return(rep), "store memfd: %s; ", cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		close(m);
		m = eventfd(0, EFD_CLOEXEC);
		r = integ_call(fd, "fd.store", "{\"names\":[\"uev\"]}", &m, 1, &rep, NULL, 0, NULL);
		STEP(r == 0 && class_is(rep, "PermissionDenied"), "store eventfd (type not in its rule): %s; ",
		     cls_or(rep));
		json_object_put(rep);
		rep = NULL;
		r = integ_call(fd, "instance.release", "{\"name\":\"vmuser\"}", NULL, 0, &rep, NULL, 0, NULL);
		STEP(r == 0 && jint(integ_get(rep, "return.closed_fds")) == 1, "release own: %s; ",
		     rep ? json_object_to_json_string(rep) : "-");
		json_object_put(rep);
#undef STEP
		if (write(sync[1], out, strlen(out)) < 0)
			_exit(12);
		_exit(fail ? 1 : 0);
	}
	close(sync[1]);
	n = read(sync[0], buf, sizeof(buf) - 1);
	close(sync[0]);
	if (n > 0)
		buf[n] = 0;
	waitpid(pid, &st, 0);
	tap_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "unprivileged-vmm-confined",
		  "uid %d child status 0x%x (10 setresuid, 11 connect): %s", VMM_UID, st, buf);
	{
		_cleanup_free_ char *after = integ_snapshot(c);
		tap_check(before && after && strcmp(before, after) == 0, "unprivileged-vmm-state-unchanged",
			  "before %s after %s", before ? before : "-", after ? after : "-");
	}
}

/* a client that never negotiates is disconnected after handshake_timeout_ms, not before */
static void test_handshake_timeout(void)
{
	_cleanup_close_ int c = integ_connect(D.sock);
	json_object *m = NULL;
	struct timespec t0, t1;
	long ms;
	int r;

	if (!tap_check(c >= 0, "handshake-timeout-connect", "%s", strerror(-c)))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = integ_recv(c, 2000, &m, NULL, 0, NULL); /* the greeting */
	json_object_put(m);
	m = NULL;
	do {
		r = integ_recv(c, 3 * HANDSHAKE_MS, &m, NULL, 0, NULL);
		json_object_put(m);
		m = NULL;
	} while (r == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	tap_check(r == -ECONNRESET && ms >= HANDSHAKE_MS - 100 && ms < 3 * HANDSHAKE_MS, "handshake-timeout",
		  "r=%d after %ld ms (limit %d ms)", r, ms, HANDSHAKE_MS);
}

static void test_sigterm(int c)
{
	json_object *m = NULL;
	struct stat st;
	int r, ws;

	ws = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "sigterm-clean-exit", "wait status 0x%x%s", ws,
		  ws == -ETIMEDOUT ? " (timed out, killed)" : "");
	tap_check(N.sd.stopping, "sigterm-stopping-notified", "no STOPPING=1 on NOTIFY_SOCKET");
	/* the connected client is told: EOF (possibly after a shutdown event) */
	for (int k = 0; k < 5; k++) {
		r = integ_recv(c, 2000, &m, NULL, 0, NULL);
		json_object_put(m);
		m = NULL;
		if (r != 0)
			break;
	}
	tap_check(r == -ECONNRESET, "sigterm-clients-disconnected", "client saw r=%d", r);
	tap_check(stat(D.sock, &st) < 0 && errno == ENOENT, "sigterm-socket-removed", "%s still exists", D.sock);
	/* held fds stay in the fd store across a clean stop (FileDescriptorStorePreserve) */
	tap_check(integ_notify_count_held(&N) >= 1 && integ_notify_find(&N, "state") >= 0,
		  "sigterm-fdstore-kept", "store has %zu held fds, state %s", integ_notify_count_held(&N),
		  integ_notify_find(&N, "state") >= 0 ? "present" : "missing");
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("daemon"), *cfg = NULL, *extra = NULL, *vmm2 = NULL;
	json_object *rep = NULL;
	int c = -EBADF, ev = -EBADF, r;
	struct integ_daemon_opts o = { 0 };

	tap_suite("integ-daemon");
	signal(SIGPIPE, SIG_IGN);
	if (!dir || integ_notify_open(&N, dir) < 0 || integ_notify_start(&N) < 0) {
		tap_check(false, "setup", "temporary directory / notify socket: %m");
		integ_rmrf(dir);
		return 1;
	}
	/* a second VMM rule: uid VMM_UID, memfds only, no devices */
	if (asprintf(&extra, "\"limits\": { \"max_connections\": %d, \"max_fds_per_message\": %d, "
			     "\"max_message_bytes\": %d, \"max_fds_per_instance\": 32, \"handshake_timeout_ms\": %d }",
		     MAX_CONN, MAX_FDS_MSG, MAX_MSG, HANDSHAKE_MS) < 0 ||
	    asprintf(&vmm2, "{ \"uids\": [%d], \"fd_types\": [\"memfd\"] }", VMM_UID) < 0)
		return 1;
	cfg = integ_config(dir, vmm2, extra);
	o.config_json = cfg;
	o.notify = &N;
	r = integ_daemon_start(&D, dir, &o);
	if (!tap_check(r == 0, "start-ready", "vlud did not send READY=1 (%s)", strerror(-r))) {
		integ_daemon_dump_log(&D);
		integ_daemon_stop(&D, SIGKILL, 1000);
		integ_notify_close(&N);
		integ_rmrf(dir);
		return 1;
	}

	test_greeting();
	c = integ_open_client(D.sock, NULL);
	ev = integ_open_client(D.sock, NULL);
	if (!tap_check(c >= 0 && ev >= 0, "clients", "connect/negotiate: %s", strerror(-(c < 0 ? c : ev))))
		goto out;
	r = integ_call(ev, "events.subscribe", NULL, NULL, 0, &rep, NULL, 0, NULL);
	tap_check(r == 0 && integ_return(rep), "events.subscribe", "r=%d %s", r, cls_or(rep));
	json_object_put(rep);
	rep = NULL;

	test_commands(c, ev);
	test_bad_input(c);
	test_other_uid(c);
	test_unprivileged_vmm(c);
	test_table_walk();
	test_handshake_timeout();
	test_vmm_killed(c);
	ev = safe_close(ev);
	test_flood(1);
	test_sigterm(c);
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	safe_close(c);
	safe_close(ev);
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	integ_notify_close(&N);
	integ_rmrf(dir);
	return tap_exit_status();
}
