/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-restart.c - kill -9 of the daemon and a restart through systemd's fd-store protocol, with this
 * test playing PID 1: it owns the listening socket (as vlud.socket would) and passes it with LISTEN_FDS,
 * receives READY/FDSTORE/FDNAME/FDSTOREREMOVE on a NOTIFY_SOCKET and keeps the stored fds, then restarts
 * the daemon with the socket and every stored fd at 3.. (LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID).
 * Checks: no fd lost, identities unchanged (dev/ino from the daemon, kcmp against the copies this test
 * kept), data written through one copy read through another, instances back (orphaned, reattachable),
 * an unknown fd in the store dropped and removed from it, and the same again after a clean SIGTERM stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"

static struct integ_daemon D;
static struct integ_notify N;

#define NFDS 4
static const char *const names[NFDS] = { "ram0", "ram1", "kick", "call" };
static int orig[NFDS] = { -EBADF, -EBADF, -EBADF, -EBADF };
static struct stat orig_st[NFDS];

static int find_name(json_object *arr, const char *name)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		const char *n = integ_str(integ_get(json_object_array_get_idx(arr, i), "name"));
		if (n && strcmp(n, name) == 0)
			return (int)i;
	}
	return -1;
}

/* fd.list of instance vm1 holds exactly our four, with the identities of our originals */
static bool fd_list_matches(int c, char *why, size_t wl)
{
	_cleanup_json_ json_object *rep = integ_call_json(c, "fd.list", "{\"instance\":\"vm1\"}");
	json_object *a = integ_get(rep, "return.fds");

	if (!a) {
		snprintf(why, wl, "fd.list failed: %s", rep ? json_object_to_json_string(rep) : "-");
		return false;
	}
	if (json_object_array_length(a) != NFDS) {
		snprintf(why, wl, "%zu fds listed, want %d: %s", json_object_array_length(a), NFDS,
			 json_object_to_json_string(a));
		return false;
	}
	for (int i = 0; i < NFDS; i++) {
		int k = find_name(a, names[i]);
		json_object *e = k >= 0 ? json_object_array_get_idx(a, (size_t)k) : NULL;
		if (!e || json_object_get_int64(integ_get(e, "ino")) != (int64_t)orig_st[i].st_ino ||
		    json_object_get_int64(integ_get(e, "dev")) != (int64_t)orig_st[i].st_dev) {
			snprintf(why, wl, "%s missing or other identity: %s", names[i], json_object_to_json_string(a));
			return false;
		}
	}
	return true;
}

/* reattach as vm1 and retrieve everything: kcmp against our originals and the store's copies, data */
static void check_retrieve(const char *tag, int round)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	_cleanup_json_ json_object *rep = NULL, *rep2 = NULL;
	int fds[NFDS + 2];
	size_t nf = 0;
	char t[96], why[2048] = "";
	int r;

	snprintf(t, sizeof(t), "%s-connect", tag);
	if (!tap_check(c >= 0, t, "connect: %s", strerror(-c)))
		return;
	snprintf(t, sizeof(t), "%s-fd.list-identities", tag);
	tap_check(fd_list_matches(c, why, sizeof(why)), t, "%s", why);

	rep = integ_call_json(c, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}");
	snprintf(t, sizeof(t), "%s-reattach", tag);
	tap_check(integ_return(rep) != NULL, t, "%s", rep ? json_object_to_json_string(rep) : "-");

	r = integ_call(c, "fd.retrieve", "{\"names\":[\"ram0\",\"ram1\",\"kick\",\"call\"]}", NULL, 0, &rep2, fds,
		       ELEMENTSOF(fds), &nf);
	snprintf(t, sizeof(t), "%s-retrieve-all", tag);
	if (!tap_check(r == 0 && integ_return(rep2) && nf == NFDS, t, "r=%d nfds=%zu %s", r, nf,
		       rep2 ? json_object_to_json_string(rep2) : "-")) {
		close_many(fds, nf);
		return;
	}
	{
		bool same = true;
		for (int i = 0; i < NFDS; i++)
			if (integ_kcmp_file(getpid(), fds[i], getpid(), orig[i]) != 0)
				same = false;
		snprintf(t, sizeof(t), "%s-kcmp-originals", tag);
		tap_check(same, t, "a retrieved fd is not the file this test stored");
	}
	{
		/* the store's copies of h<id> are the same files too */
		size_t matched = 0;
		integ_notify_lock(&N);
		for (size_t k = 0; k < N.sd.n_store; k++)
			for (int i = 0; i < NFDS; i++)
				if (integ_kcmp_file(getpid(), N.sd.store[k].fd, getpid(), fds[i]) == 0)
					matched++;
		integ_notify_unlock(&N);
		snprintf(t, sizeof(t), "%s-kcmp-fdstore", tag);
		tap_check(matched == NFDS, t, "%zu of %d retrieved fds found in the fd store", matched, NFDS);
	}
	{
		/* data: write through the retrieved copy, read through the original */
		char msg[32], buf[32] = "";
		eventfd_t v = 0;
		int n = snprintf(msg, sizeof(msg), "round-%d", round);
		bool ok = pwrite(fds[0], msg, (size_t)n, 8192) == n && pread(orig[0], buf, (size_t)n, 8192) == n &&
			  memcmp(msg, buf, (size_t)n) == 0 && eventfd_write(fds[2], 40 + (eventfd_t)round) == 0 &&
			  eventfd_read(orig[2], &v) == 0 && v == 40 + (eventfd_t)round;
		snprintf(t, sizeof(t), "%s-data", tag);
		tap_check(ok, t, "memfd read '%s' want '%s', eventfd %llu", buf, msg, (unsigned long long)v);
	}
	close_many(fds, nf);
}

static int restart(const char *dir, int lfd, const char *cfg, unsigned watchdog_usec)
{
	const char *ln[] = { "vlud.socket" };
	struct integ_daemon_opts o = {
		.config_json = cfg, .notify = &N, .listen_fds = &lfd, .listen_names = ln, .n_listen = 1,
		.from_store = true, .watchdog_usec = watchdog_usec,
	};
	integ_notify_lock(&N);
	N.sd.ready = false;
	integ_notify_unlock(&N);
	return integ_daemon_start(&D, dir, &o);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("restart"), *cfg = NULL;
	_cleanup_close_ int lfd = -EBADF, vm = -EBADF;
	char sock[512], why[2048];
	int r, ws;

	tap_suite("integ-restart");
	signal(SIGPIPE, SIG_IGN);
	if (!dir || integ_notify_open(&N, dir) < 0 || integ_notify_start(&N) < 0) {
		tap_check(false, "setup", "temporary directory / notify socket: %m");
		integ_rmrf(dir);
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/vlud.sock", dir);
	lfd = sdstore_listen_socket(sock);
	cfg = integ_default_config(dir, NULL);
	if (!tap_check(lfd >= 0 && cfg, "setup-listen-socket", "%s: %s", sock, strerror(-lfd)))
		goto out;

	/* first start: socket activated, with a NOTIFY_SOCKET */
	{
		const char *ln[] = { "vlud.socket" };
		struct integ_daemon_opts o = { .config_json = cfg, .notify = &N, .listen_fds = &lfd,
					       .listen_names = ln, .n_listen = 1 };
		r = integ_daemon_start(&D, dir, &o);
	}
	if (!tap_check(r == 0, "start-ready", "no READY=1: %s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		goto out;
	}
	tap_check(integ_notify_find(&N, "state") >= 0, "state-memfd-stored", "no FDNAME=state in the store");

	/* a VMM stores two memfds with data and two eventfds */
	vm = integ_open_client(D.sock, NULL);
	{
		_cleanup_json_ json_object *rep = vm >= 0 ? integ_call_json(vm, "instance.register", "{\"name\":\"vm1\"}") : NULL;
		_cleanup_json_ json_object *rep2 = NULL;
		bool ok = integ_return(rep) != NULL;

		orig[0] = memfd_create("ram0", MFD_CLOEXEC);
		orig[1] = memfd_create("ram1", MFD_CLOEXEC);
		orig[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		orig[3] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		for (int i = 0; i < NFDS; i++)
			ok = ok && orig[i] >= 0 && fstat(orig[i], &orig_st[i]) == 0;
		ok = ok && ftruncate(orig[0], 1 << 20) == 0 && ftruncate(orig[1], 4096) == 0;
		if (ok)
			r = integ_call(vm, "fd.store", "{\"names\":[\"ram0\",\"ram1\",\"kick\",\"call\"]}", orig, NFDS, &rep2,
				       NULL, 0, NULL);
		if (!tap_check(ok && r == 0 && integ_return(rep2), "vmm-store", "%s",
			       rep2 ? json_object_to_json_string(rep2) : rep ? json_object_to_json_string(rep) : "-"))
			goto out;
	}
	integ_notify_pump(&N, 300, NULL);
	tap_check(integ_notify_count_held(&N) == NFDS, "fdstore-has-every-held-fd",
		  "%zu held fds (h*, g*) in the store, want %d", integ_notify_count_held(&N), NFDS);
	{
		/* fd.remove takes one out of the store too (FDSTOREREMOVE) */
		int extra = memfd_create("tmp", MFD_CLOEXEC);
		_cleanup_json_ json_object *a = NULL, *b = NULL;
		size_t before, after;

		integ_call(vm, "fd.store", "{\"names\":[\"tmp\"]}", &extra, 1, &a, NULL, 0, NULL);
		close(extra);
		integ_notify_pump(&N, 300, NULL);
		before = integ_notify_count_held(&N);
		b = integ_call_json(vm, "fd.remove", "{\"names\":[\"tmp\"]}");
		integ_notify_pump(&N, 300, NULL);
		after = integ_notify_count_held(&N);
		tap_check(integ_return(a) && integ_return(b) && before == NFDS + 1 && after == NFDS,
			  "fdstore-remove", "store held count %zu after store, %zu after remove", before, after);
	}
	{
		/* an fd the state does not name: the restarted daemon must drop it and remove it from the store */
		int bogus = memfd_create("bogus", MFD_CLOEXEC);
		integ_notify_lock(&N);
		if (bogus >= 0 && N.sd.n_store < INTEG_STORE_MAX) {
			snprintf(N.sd.store[N.sd.n_store].name, sizeof(N.sd.store[0].name), "h999999");
			N.sd.store[N.sd.n_store++].fd = bogus;
		}
		integ_notify_unlock(&N);
	}

	/* kill -9 of the daemon */
	ws = integ_daemon_stop(&D, SIGKILL, 5000);
	tap_check(ws >= 0 && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "kill-9", "wait status 0x%x", ws);
	vm = safe_close(vm);

	r = restart(dir, lfd, cfg, 0);
	if (!tap_check(r == 0, "restart-ready", "no READY=1 after restart: %s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		goto out;
	}
	integ_notify_pump(&N, 300, NULL);
	tap_check(integ_notify_find(&N, "h999999") < 0, "restart-unknown-fd-dropped",
		  "h999999 still in the fd store after the restart");
	tap_check(integ_notify_count_held(&N) == NFDS, "restart-no-fd-lost",
		  "%zu held fds (h*, g*) in the store, want %d", integ_notify_count_held(&N), NFDS);
	{
		_cleanup_close_ int c = integ_open_client(D.sock, NULL);
		_cleanup_json_ json_object *rep = c >= 0 ? integ_call_json(c, "instance.list", NULL) : NULL;
		json_object *a = integ_get(rep, "return.instances");
		int k = find_name(a, "vm1");
		json_object *e = k >= 0 ? json_object_array_get_idx(a, (size_t)k) : NULL;
		const char *st = integ_str(integ_get(e, "state"));
		json_object *orph = integ_get(e, "orphaned");
		tap_check(e && ((st && strcmp(st, "orphaned") == 0) || (orph && json_object_get_boolean(orph))),
			  "restart-instance-orphaned", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	check_retrieve("restart", 1);

	/* a clean stop (SIGTERM) keeps the store too; the next start adopts it all again */
	ws = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "sigterm-clean-exit", "wait status 0x%x", ws);
	/* this time systemd's watchdog is on (WatchdogSec): the daemon must ping within the interval */
	r = restart(dir, lfd, cfg, 400000);
	if (!tap_check(r == 0, "restart2-ready", "no READY=1: %s", strerror(-r))) {
		integ_daemon_dump_log(&D);
		goto out;
	}
	{
		unsigned w0, w1;
		integ_notify_lock(&N);
		w0 = N.sd.n_watchdog;
		integ_notify_unlock(&N);
		usleep(1200000);
		integ_notify_lock(&N);
		w1 = N.sd.n_watchdog;
		integ_notify_unlock(&N);
		tap_check(w1 - w0 >= 3, "watchdog-pings", "%u WATCHDOG=1 in 1.2 s with WATCHDOG_USEC=400000 (want >= 3)",
			  w1 - w0);
		tap_check(N.sd.status[0] != 0, "status-line", "no STATUS= sent");
	}
	integ_notify_pump(&N, 300, NULL);
	tap_check(integ_notify_count_held(&N) == NFDS, "restart2-no-fd-lost", "%zu held fds (h*, g*) in the store",
		  integ_notify_count_held(&N));
	check_retrieve("restart2", 2);
	{
		_cleanup_close_ int c = integ_open_client(D.sock, NULL);
		why[0] = 0;
		tap_check(c >= 0 && fd_list_matches(c, why, sizeof(why)), "restart2-state-after-retrieve", "%s", why);
	}
	ws = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "final-clean-exit", "wait status 0x%x", ws);
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	close_many(orig, NFDS);
	integ_notify_close(&N);
	integ_rmrf(dir);
	return tap_exit_status();
}
