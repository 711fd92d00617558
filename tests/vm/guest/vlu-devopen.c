/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-devopen - a minimal VMM for the rig's daemon scenario, through libvlu:
 *
 *   vlu-devopen SOCKET INSTANCE DEVICE [--expect-busy | --expect-error CLASS] [--store-copy NAME] [--copy-to INSTANCE] [--hold]
 *               [--uid N] [--until FILE]
 *
 * connects, registers INSTANCE and asks vlud to open DEVICE (device.open).  Without --expect-busy it checks
 * the reply (one fd: a vhost-vdpa char device whose rdev is the node's, that answers the kernel's queries;
 * the device info: name, path, device id 1, 3 vqs, vring_num 256, config_size 24, backend features as the
 * kernel reports them on the fd); with --expect-error it checks the open is refused with that error class
 * (--expect-busy = --expect-error Busy).
 * --store-copy NAME: then store the device fd once more, under NAME (fd.store): the instance holds the
 * device twice (update.start must refuse that).
 * --copy-to INSTANCE: then register INSTANCE on a second connection and store the device fd there as
 * "vdpa-copy": two instances hold the device (update.start of either must refuse that).
 * --hold: after the checks print "held" and keep the connection (and the instance) until stdin ends.
 * --reopen: after the checks, device.reopen while this process still has its copy of the fd: Busy naming
 * this pid; at once again: Busy without the scan of every process's fds (at most one a second per uid);
 * with the copy only in a child of uid 65534: Busy, the holder not described ("a process of another
 * user"); with every copy closed: the device reopened (one fd, the node's rdev).
 * --uid N: become uid and gid N (groups dropped) first: another tenant than root.
 * --until FILE (with --expect-error/--expect-busy): ask again and again on the same connection until FILE
 * exists (and once more after); every answer must be that refusal, no fd ever: one TAP line
 * "open-refused-<CLASS>-every-time" with the count (a hostile tenant trying throughout a relaunch).
 * One TAP line per check, named "<$VLUD_SCENARIO>/devopen.<INSTANCE>.<check>".  Exit 0 if all passed.
 */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basics.h"
#include "vlu.h"
#include "vlud-vhost.h"

static const char *suite = "vlu-devopen";
static const char *inst = "";
static int failures;

_printf_(2, 3) static void tap(bool ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* msg is "check" or "check: why" */
	printf("%s - %s/devopen.%s.%s\n", ok ? "ok" : "not ok", suite, inst, msg);
	fflush(stdout);
	if (!ok)
		failures++;
}

static void last_error(struct vlu *v, const char **cls, const char **desc)
{
	*cls = *desc = "-";
	if (v)
		vlu_last_error(v, cls, desc);
}

static int64_t info_int(json_object *info, const char *key)
{
	json_object *o;

	if (!json_object_object_get_ex(info, key, &o) || !o)
		return -1;
	return json_object_get_int64(o);
}

static void expect_info(json_object *info, const char *key, int64_t want)
{
	int64_t got = info_int(info, key);

	if (got == want)
		tap(true, "info-%s=%" PRId64, key, want);
	else
		tap(false, "info-%s: expected %" PRId64 ", got %" PRId64, key, want, got);
}

static void expect_info_str(json_object *info, const char *key, const char *want)
{
	json_object *o;
	const char *got = json_object_object_get_ex(info, key, &o) && o ? json_object_get_string(o) : "(missing)";

	tap(!strcmp(got, want), "info-%s=%s%s%s", key, want, strcmp(got, want) ? ": got " : "",
	    strcmp(got, want) ? got : "");
}

/* device.reopen of "vdpa:DEVICE" -> 0 and the reply's fds, or the error class and description */
static int reopen_call(struct vlu *v, const char *device, int **fds, size_t *nfds, const char **cls, const char **desc)
{
	json_object *args = json_object_new_object(), *ret = NULL;
	char name[80];
	int r;

	snprintf(name, sizeof(name), "vdpa:%s", device);
	json_object_object_add(args, "name", json_object_new_string(name));
	*fds = NULL, *nfds = 0;
	r = vlu_call(v, "device.reopen", args, NULL, 0, 60000, &ret, fds, nfds);
	json_object_put(args);
	json_object_put(ret);
	*cls = *desc = "";
	if (r < 0)
		last_error(v, cls, desc);
	return r;
}

/* the device.reopen refusals around a copy this process holds, then the reopen itself (closes fd) */
static void check_reopen(struct vlu *v, const char *device, int fd, dev_t rdev)
{
	const char *cls, *desc;
	char mypid[32];
	int *fds = NULL;
	size_t nfds = 0;
	struct stat st;
	pid_t child;
	bool ok;
	int r;

	snprintf(mypid, sizeof(mypid), "pid %d ", (int)getpid());
	r = reopen_call(v, device, &fds, &nfds, &cls, &desc);
	ok = r < 0 && !strcmp(cls, "Busy") && strstr(desc, mypid) && nfds == 0;
	tap(ok, "reopen-busy-names-the-copy-in-this-pid%s%s %s", ok ? "" : ": ", ok ? "" : r < 0 ? cls : "reopened",
	    ok ? "" : desc);
	close_many(fds, nfds), free(fds);
	r = reopen_call(v, device, &fds, &nfds, &cls, &desc);
	ok = r < 0 && !strcmp(cls, "Busy") && strstr(desc, "at most once a second per uid") && nfds == 0;
	tap(ok, "reopen-again-at-once-busy-without-scan%s%s %s", ok ? "" : ": ", ok ? "" : r < 0 ? cls : "reopened",
	    ok ? "" : desc);
	close_many(fds, nfds), free(fds);
	/* the copy in a process of another user (uid 65534) only: not described to this uid */
	child = fork();
	if (child == 0) {
		if (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0)
			pause();
		_exit(1);
	}
	safe_close(fd);
	usleep(1100 * 1000);
	r = reopen_call(v, device, &fds, &nfds, &cls, &desc);
	ok = child > 0 && r < 0 && !strcmp(cls, "Busy") && strstr(desc, "a process of another user") &&
	     !strstr(desc, "pid ") && nfds == 0;
	tap(ok, "reopen-busy-copy-of-another-user-not-described%s%s %s", ok ? "" : ": ",
	    ok ? "" : r < 0 ? cls : "reopened", ok ? "" : desc);
	close_many(fds, nfds), free(fds);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	usleep(1100 * 1000);
	r = reopen_call(v, device, &fds, &nfds, &cls, &desc);
	ok = r >= 0 && nfds == 1 && fstat(fds[0], &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == rdev;
	tap(ok, "reopened-after-the-copy-closed%s%s %s%s", ok ? "" : ": ", ok ? "" : r < 0 ? cls : "ok", ok ? "" : desc,
	    ok ? "" : " (not one fd of the node)");
	close_many(fds, nfds), free(fds);
}

int main(int argc, char **argv)
{
	struct vlu *v = NULL;
	json_object *info = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *sock, *device, *cls, *desc;
	const char *expect_error = NULL;
	bool hold = false, reopen = false;
	const char *copy_name = NULL, *copy_inst = NULL, *until = NULL;
	long uid = -1;
	struct vlu *v2 = NULL;
	char path[64];
	struct stat st, node;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("VLUD_SCENARIO") && *getenv("VLUD_SCENARIO"))
		suite = getenv("VLUD_SCENARIO");
	if (argc < 4) {
		fprintf(stderr, "usage: vlu-devopen SOCKET INSTANCE DEVICE [--expect-busy | --expect-error CLASS] "
				"[--store-copy NAME] [--copy-to INSTANCE] [--hold]\n");
		return 2;
	}
	sock = argv[1];
	inst = argv[2];
	device = argv[3];
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--expect-busy"))
			expect_error = "Busy";
		else if (!strcmp(argv[i], "--expect-error") && i + 1 < argc)
			expect_error = argv[++i];
		else if (!strcmp(argv[i], "--hold"))
			hold = true;
		else if (!strcmp(argv[i], "--reopen"))
			reopen = true;
		else if (!strcmp(argv[i], "--uid") && i + 1 < argc)
			uid = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--until") && i + 1 < argc)
			until = argv[++i];
		else if (!strcmp(argv[i], "--store-copy") && i + 1 < argc)
			copy_name = argv[++i];
		else if (!strcmp(argv[i], "--copy-to") && i + 1 < argc)
			copy_inst = argv[++i];
		else {
			fprintf(stderr, "vlu-devopen: unknown option %s\n", argv[i]);
			return 2;
		}
	}

	if (uid > 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0)) {
		tap(false, "become-uid-%ld: %s", uid, strerror(errno));
		return 1;
	}
	if (until && !expect_error) {
		fprintf(stderr, "vlu-devopen: --until needs --expect-busy or --expect-error\n");
		return 2;
	}
	r = vlu_connect(sock, 5000, &v);
	tap(r >= 0, "connect%s%s", r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
	if (r < 0)
		return 1;
	r = vlu_register(v, inst, false);
	last_error(v, &cls, &desc);
	tap(r >= 0, "register%s%s%s%s", r < 0 ? ": " : "", r < 0 ? cls : "", r < 0 ? " " : "", r < 0 ? desc : "");
	if (r < 0)
		goto out;

	if (until) {
		unsigned n = 0, bad = 0;
		bool last = false;
		char first_bad[400] = "";

		for (;;) {
			bool done = access(until, F_OK) == 0; /* one more request after FILE appeared */

			r = vlu_device_open(v, device, &fd, NULL);
			last_error(v, &cls, &desc);
			n++;
			if (r >= 0 || strcmp(cls, expect_error) != 0) {
				if (!bad++)
					snprintf(first_bad, sizeof(first_bad), "request %u: %s %s", n,
						 r >= 0 ? "success, fd" : cls, r >= 0 ? "received" : desc);
				fd = safe_close(fd);
			}
			if (last)
				break;
			last = done;
		}
		tap(bad == 0 && n > 1, "open-refused-%s-every-time: %u requests, %u not refused%s%s", expect_error, n,
		    bad, bad ? ", first: " : "", first_bad);
		printf("# %u device.open requests, all refused with %s: %s\n", n, expect_error, bad ? "no" : "yes");
		goto out;
	}
	r = vlu_device_open(v, device, &fd, &info);
	last_error(v, &cls, &desc);
	if (expect_error) {
		bool refused = r < 0 && !strcmp(cls, expect_error);
		if (refused)
			tap(true, "open-refused-%s", expect_error);
		else
			tap(false, "open-refused-%s: got %s%s%s", expect_error, r < 0 ? cls : "success", r < 0 ? " " : "",
			    r < 0 ? desc : "");
		if (r < 0)
			printf("# refused: %s: %s\n", cls, desc);
		goto out;
	}
	tap(r >= 0, "open%s%s%s%s", r < 0 ? ": " : "", r < 0 ? cls : "", r < 0 ? " " : "", r < 0 ? desc : "");
	if (r < 0)
		goto out;
	printf("# device info: %s\n", json_object_to_json_string_ext(info, JSON_C_TO_STRING_PLAIN));

	/* the fd is the device node's */
	snprintf(path, sizeof(path), "/dev/vhost-vdpa-%s", device + strcspn(device, "0123456789"));
	tap(fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode), "fd-is-chardev");
	tap(stat(path, &node) == 0 && fd >= 0 && st.st_rdev == node.st_rdev, "fd-rdev-is-%s", path);
	/* and it answers the kernel's non-owner queries */
	uint32_t id = 0, vqs = 0;
	uint64_t bf = 0;
	tap(ioctl(fd, VHOST_VDPA_GET_DEVICE_ID, &id) == 0 && id == 1, "fd-GET_DEVICE_ID=1");
	tap(ioctl(fd, VHOST_VDPA_GET_VQS_COUNT, &vqs) == 0 && vqs == 3, "fd-GET_VQS_COUNT=3");
	tap(ioctl(fd, VHOST_GET_BACKEND_FEATURES, &bf) == 0, "fd-GET_BACKEND_FEATURES");
	/* the info matches */
	expect_info_str(info, "name", device);
	expect_info_str(info, "path", path);
	expect_info(info, "device_id", 1);
	expect_info(info, "vqs", 3);
	expect_info(info, "vring_num", 256);
	expect_info(info, "config_size", 24);
	expect_info(info, "backend_features", (int64_t)bf);
	tap(info_int(info, "features") > 0 &&
		    (info_int(info, "features") & (1LL << 32)) && (info_int(info, "features") & (1LL << 33)),
	    "info-features-VERSION_1+ACCESS_PLATFORM");
	json_object *names;
	tap(json_object_object_get_ex(info, "backend_feature_names", &names) &&
		    json_object_is_type(names, json_type_array) &&
		    (int)json_object_array_length(names) == __builtin_popcountll(bf),
	    "info-backend_feature_names");

	if (copy_name) {
		const char *n[] = { copy_name };

		r = vlu_fd_store(v, n, &fd, 1, false);
		last_error(v, &cls, &desc);
		tap(r >= 0, "stored-copy-%s%s%s%s%s", copy_name, r < 0 ? ": " : "", r < 0 ? cls : "", r < 0 ? " " : "",
		    r < 0 ? desc : "");
	}
	if (copy_inst) {
		const char *n[] = { "vdpa-copy" };

		r = vlu_connect(sock, 5000, &v2);
		if (r >= 0)
			r = vlu_register(v2, copy_inst, false);
		if (r >= 0)
			r = vlu_fd_store(v2, n, &fd, 1, false);
		cls = desc = "";
		if (v2)
			last_error(v2, &cls, &desc);
		tap(r >= 0, "copy-stored-in-%s%s%s%s%s", copy_inst, r < 0 ? ": " : "", r < 0 ? cls : "", r < 0 ? " " : "",
		    r < 0 ? desc : "");
	}
	if (reopen)
		check_reopen(v, device, fd, node.st_rdev), fd = -EBADF;
	if (hold) {
		char buf[64];
		printf("held\n");
		fflush(stdout);
		while (read(0, buf, sizeof(buf)) > 0)
			;
	}
out:
	if (info)
		json_object_put(info);
	if (v2)
		vlu_close(v2);
	vlu_close(v);
	return failures ? 1 : 0;
}
