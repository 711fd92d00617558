/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fdstore-log.c - the state memfd's log and the fd store's groups across kill -9 (daemon/persist.c):
 * the memfds of one fd.store go to the store in one datagram under one "g<group>" name, a partial
 * fd.remove moves the rest to a new group, a record cut by a kill is never read, a log compacted
 * many times still restores every held fd, and an fd replaced by the same file, or sharing its file with
 * a released instance's, comes back.  Real daemon, the PID-1 stand-in of tests/integration/sdstore.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integ.h"
#include "sdstore.h"

static struct integ_daemon D;
static struct integ_notify N;

#define NMEM 6
static int mem[NMEM], ev = -EBADF;
static struct stat mem_st[NMEM];

static int start(const char *dir, int lfd, const char *cfg, bool from_store)
{
	const char *ln[] = { "vlud.socket" };
	struct integ_daemon_opts o = { .config_json = cfg, .notify = &N, .listen_fds = &lfd, .listen_names = ln,
				       .n_listen = 1, .from_store = from_store };

	integ_notify_lock(&N);
	N.sd.ready = false;
	integ_notify_unlock(&N);
	return integ_daemon_start(&D, dir, &o);
}

/* fd.list of vm1: exactly the memfds in want[] (by index) and "ev", with our identities */
static bool list_is(const int *want, size_t nw, char *why, size_t wl)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	_cleanup_json_ json_object *rep = c >= 0 ? integ_call_json(c, "fd.list", "{\"instance\":\"vm1\"}") : NULL;
	json_object *a = integ_get(rep, "return.fds");

	if (!a || json_object_array_length(a) != nw + 1) {
		snprintf(why, wl, "fd.list: %s", rep ? json_object_to_json_string(rep) : "-");
		return false;
	}
	for (size_t i = 0; i < nw; i++) {
		char nm[16];
		bool found = false;

		snprintf(nm, sizeof(nm), "m%d", want[i]);
		for (size_t k = 0; k < json_object_array_length(a); k++) {
			json_object *e = json_object_array_get_idx(a, k);
			const char *n = integ_str(integ_get(e, "name"));

			if (n && !strcmp(n, nm) && json_object_get_int64(integ_get(e, "ino")) ==
							   (int64_t)mem_st[want[i]].st_ino)
				found = true;
		}
		if (!found) {
			snprintf(why, wl, "%s missing or other identity: %s", nm, json_object_to_json_string(a));
			return false;
		}
	}
	return true;
}

/* reattach and retrieve m<i>: its data must be what this test wrote through the original */
static bool data_ok(int i, char *why, size_t wl)
{
	_cleanup_close_ int c = integ_open_client(D.sock, NULL);
	_cleanup_json_ json_object *r1 = NULL, *r2 = NULL;
	char req[64], want[16], buf[16] = "";
	int fd = -EBADF, r;
	size_t nf = 0;
	bool ok;

	if (c < 0)
		return snprintf(why, wl, "connect"), false;
	r1 = integ_call_json(c, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}");
	snprintf(req, sizeof(req), "{\"names\":[\"m%d\"]}", i);
	r = integ_call(c, "fd.retrieve", req, NULL, 0, &r2, &fd, 1, &nf);
	snprintf(want, sizeof(want), "data-%d", i);
	ok = r == 0 && nf == 1 && pread(fd, buf, strlen(want), 100) == (ssize_t)strlen(want) &&
	     memcmp(buf, want, strlen(want)) == 0;
	if (!ok)
		snprintf(why, wl, "m%d: r=%d nf=%zu data '%s' %s", i, r, nf, buf,
			 r2 ? json_object_to_json_string(r2) : "-");
	if (nf)
		close(fd);
	return ok;
}

static int kill_and_restart(const char *dir, int lfd, const char *cfg)
{
	int ws = integ_daemon_stop(&D, SIGKILL, 5000);

	if (ws < 0 || !WIFSIGNALED(ws))
		return -ECHILD;
	integ_notify_pump(&N, 100, NULL);
	return start(dir, lfd, cfg, true);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("fdstore-log"), *cfg = NULL;
	_cleanup_close_ int lfd = -EBADF, vm = -EBADF;
	char sock[512], why[4096] = "";
	int r;

	tap_suite("integ-fdstore-log");
	signal(SIGPIPE, SIG_IGN);
	if (!dir || integ_notify_open(&N, dir) < 0 || integ_notify_start(&N) < 0) {
		tap_check(false, "setup", "temporary directory / notify socket: %m");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/vlud.sock", dir);
	lfd = sdstore_listen_socket(sock);
	cfg = integ_default_config(dir, NULL);
	r = lfd >= 0 && cfg ? start(dir, lfd, cfg, false) : -EINVAL;
	if (!tap_check(r == 0, "start", "%s", strerror(-r)))
		goto out;

	/* one fd.store: six memfds (one group) and an eventfd (alone) */
	vm = integ_open_client(D.sock, NULL);
	{
		_cleanup_json_ json_object *reg = vm >= 0 ? integ_call_json(vm, "instance.register", "{\"name\":\"vm1\"}")
							  : NULL;
		_cleanup_json_ json_object *rep = NULL;
		int fds[NMEM + 1];
		bool ok = integ_return(reg) != NULL;

		for (int i = 0; i < NMEM; i++) {
			char d[16];

			mem[i] = memfd_create("m", MFD_CLOEXEC);
			snprintf(d, sizeof(d), "data-%d", i);
			ok = ok && mem[i] >= 0 && pwrite(mem[i], d, strlen(d), 100) == (ssize_t)strlen(d) &&
			     fstat(mem[i], &mem_st[i]) == 0;
			fds[i] = mem[i];
		}
		ev = eventfd(0, EFD_CLOEXEC);
		fds[NMEM] = ev;
		r = ok ? integ_call(vm, "fd.store", "{\"names\":[\"m0\",\"m1\",\"m2\",\"m3\",\"m4\",\"m5\",\"ev\"]}", fds,
				    NMEM + 1, &rep, NULL, 0, NULL)
		       : -EINVAL;
		if (!tap_check(r == 0 && integ_return(rep), "store", "%s", rep ? json_object_to_json_string(rep) : "-"))
			goto out;
	}
	integ_notify_pump(&N, 300, NULL);
	tap_check(integ_notify_count_prefix(&N, "g") == NMEM && integ_notify_count_prefix(&N, "h") == 1,
		  "one-group-one-alone", "%zu g*, %zu h* in the store (want %d, 1)", integ_notify_count_prefix(&N, "g"),
		  integ_notify_count_prefix(&N, "h"), NMEM);

	/* part of the group goes: the rest moves to a new group, the old name leaves the store */
	{
		_cleanup_json_ json_object *rep = integ_call_json(vm, "fd.remove", "{\"names\":[\"m1\",\"m2\"]}");
		char first[256] = "";
		bool one_name = true;

		integ_notify_pump(&N, 300, NULL);
		integ_notify_lock(&N);
		for (size_t k = 0; k < N.sd.n_store; k++)
			if (N.sd.store[k].name[0] == 'g') {
				if (!first[0])
					snprintf(first, sizeof(first), "%s", N.sd.store[k].name);
				else if (strcmp(first, N.sd.store[k].name))
					one_name = false;
			}
		integ_notify_unlock(&N);
		tap_check(integ_return(rep) && integ_notify_count_prefix(&N, "g") == NMEM - 2 && one_name, "regroup",
			  "%zu g* fds in the store (want %d, one name: %d)", integ_notify_count_prefix(&N, "g"), NMEM - 2,
			  one_name);
	}

	/* a record cut by the kill: bytes after log_length that the index does not cover are never read */
	{
		int sfd = integ_notify_find(&N, "state");
		char page[4096];
		unsigned long long off = 0, len = 0, loff = 0, llen = 0;
		const char *p;
		bool ok = sfd >= 0 && pread(sfd, page, sizeof(page), 0) > 0;

		page[sizeof(page) - 1] = 0;
		p = ok ? strchr(page, '{') : NULL;
		ok = p && sscanf(p, "{\"offset\":%llu,\"length\":%llu,\"log_offset\":%llu,\"log_length\":%llu", &off, &len,
				 &loff, &llen) == 4;
		ok = ok && pwrite(sfd, "{\"op\":\"del\",\"id\":", 17, (off_t)(loff + llen)) == 17;
		tap_check(ok, "cut-record-written", "index: %.120s", p ? p : "-");
	}
	r = kill_and_restart(dir, lfd, cfg);
	if (!tap_check(r == 0, "restart-after-cut", "%s", strerror(-r)))
		goto out;
	{
		static const int want[] = { 0, 3, 4, 5 };

		tap_check(list_is(want, 4, why, sizeof(why)), "restart-after-cut-fds", "%s", why);
		tap_check(data_ok(3, why, sizeof(why)) && data_ok(5, why, sizeof(why)), "restart-after-cut-data", "%s", why);
		tap_check(integ_notify_count_held(&N) == 5, "restart-after-cut-store", "%zu held fds in the store",
			  integ_notify_count_held(&N));
	}

	/* many changes: the log is compacted into new documents several times; kill -9 in the middle */
	vm = safe_close(vm);
	vm = integ_open_client(D.sock, NULL);
	{
		_cleanup_json_ json_object *reg = vm >= 0 ? integ_call_json(vm, "instance.register",
									   "{\"name\":\"vm1\",\"reattach\":true}")
							  : NULL;
		bool ok = integ_return(reg) != NULL;

		for (int i = 0; ok && i < 1200; i++) {
			_cleanup_json_ json_object *a = NULL, *b = NULL;
			int t = memfd_create("t", MFD_CLOEXEC);

			r = integ_call(vm, "fd.store", "{\"names\":[\"t\"]}", &t, 1, &a, NULL, 0, NULL);
			close(t);
			b = integ_call_json(vm, "fd.remove", "{\"names\":[\"t\"]}");
			ok = r == 0 && integ_return(a) && integ_return(b);
			if (i % 50 == 0)
				integ_notify_pump(&N, 0, NULL);
		}
		tap_check(ok, "churn", "store/remove loop failed");
	}
	r = kill_and_restart(dir, lfd, cfg);
	if (!tap_check(r == 0, "restart-after-churn", "%s", strerror(-r)))
		goto out;
	{
		static const int want[] = { 0, 3, 4, 5 };

		tap_check(list_is(want, 4, why, sizeof(why)), "restart-after-churn-fds", "%s", why);
		tap_check(data_ok(0, why, sizeof(why)) && data_ok(4, why, sizeof(why)), "restart-after-churn-data", "%s",
			  why);
		integ_notify_pump(&N, 300, NULL);
		tap_check(integ_notify_count_held(&N) == 5, "restart-after-churn-store", "%zu held fds in the store",
			  integ_notify_count_held(&N));
	}
	/* an alias (the same eventfd stored again as ev2) outlives the stored one: it takes over the store's
	 * copy without a datagram, and comes back after kill -9 */
	{
		_cleanup_json_ json_object *a = NULL, *b = NULL, *l = NULL, *got_rep = NULL;
		_cleanup_close_ int c = -EBADF;
		int d = fcntl(ev, F_DUPFD_CLOEXEC, 3), got = -EBADF;
		size_t before, nf = 0;
		eventfd_t v = 0;
		bool ok;

		vm = safe_close(vm); /* its daemon was killed */
		vm = integ_open_client(D.sock, NULL);
		json_object_put(vm >= 0 ? integ_call_json(vm, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}")
				       : NULL);
		before = integ_notify_count_held(&N);
		r = integ_call(vm, "fd.store", "{\"names\":[\"ev2\"]}", &d, 1, &a, NULL, 0, NULL);
		close(d);
		b = integ_call_json(vm, "fd.remove", "{\"names\":[\"ev\"]}");
		integ_notify_pump(&N, 300, NULL);
		tap_check(r == 0 && integ_return(a) && integ_return(b) && integ_notify_count_held(&N) == before,
			  "heir-takes-over", "%zu held fds in the store, %zu before", integ_notify_count_held(&N), before);
		r = kill_and_restart(dir, lfd, cfg);
		c = r == 0 ? integ_open_client(D.sock, NULL) : -EBADF;
		l = c >= 0 ? integ_call_json(c, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}") : NULL;
		r = c >= 0 ? integ_call(c, "fd.retrieve", "{\"names\":[\"ev2\"]}", NULL, 0, &got_rep, &got, 1, &nf) : -EBADF;
		ok = r == 0 && nf == 1 && eventfd_write(got, 5) == 0 && eventfd_read(ev, &v) == 0 && v == 5;
		tap_check(ok, "heir-after-restart", "r=%d nf=%zu v=%llu", r, nf, (unsigned long long)v);
		if (nf)
			close(got);
	}
	/* fd.store replace with the very same files (two memfds of the group, the eventfd stored alone): each
	 * new fd shares its file with the one it replaces and takes over its place in the store; the state
	 * must name them (not as aliases of the fds it has just forgotten: that log would not apply and every
	 * fd would be dropped at the restart) */
	{
		_cleanup_json_ json_object *a = NULL, *l = NULL, *got_rep = NULL;
		_cleanup_close_ int c = -EBADF;
		static const int want[] = { 0, 3, 4, 5 };
		int fds[3] = { mem[0], mem[3], fcntl(ev, F_DUPFD_CLOEXEC, 3) }, got = -EBADF;
		size_t before, nf = 0;
		eventfd_t v = 0;
		bool ok;

		c = integ_open_client(D.sock, NULL);
		json_object_put(c >= 0 ? integ_call_json(c, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}")
				       : NULL);
		before = integ_notify_count_held(&N);
		r = c >= 0 ? integ_call(c, "fd.store", "{\"names\":[\"m0\",\"m3\",\"ev2\"],\"replace\":true}", fds, 3, &a,
					NULL, 0, NULL)
			   : -EBADF;
		close(fds[2]);
		integ_notify_pump(&N, 300, NULL);
		tap_check(r == 0 && integ_return(a) && integ_notify_count_held(&N) == before, "replace-same-file",
			  "r=%d %s; %zu held fds in the store, %zu before", r, a ? json_object_to_json_string(a) : "-",
			  integ_notify_count_held(&N), before);
		c = safe_close(c);
		r = kill_and_restart(dir, lfd, cfg);
		if (!tap_check(r == 0, "restart-after-replace", "%s", strerror(-r)))
			goto out;
		tap_check(list_is(want, 4, why, sizeof(why)), "restart-after-replace-fds", "%s", why);
		tap_check(data_ok(0, why, sizeof(why)) && data_ok(3, why, sizeof(why)), "restart-after-replace-data", "%s",
			  why);
		c = integ_open_client(D.sock, NULL);
		l = c >= 0 ? integ_call_json(c, "instance.register", "{\"name\":\"vm1\",\"reattach\":true}") : NULL;
		r = c >= 0 ? integ_call(c, "fd.retrieve", "{\"names\":[\"ev2\"]}", NULL, 0, &got_rep, &got, 1, &nf) : -EBADF;
		ok = r == 0 && nf == 1 && eventfd_write(got, 7) == 0 && eventfd_read(ev, &v) == 0 && v == 7;
		tap_check(ok, "restart-after-replace-eventfd", "r=%d nf=%zu v=%llu", r, nf, (unsigned long long)v);
		if (nf)
			close(got);
	}
	/* another instance stores the same eventfd (an alias of vm1's ev2), then vm1 is released: vm2's fd
	 * takes over the store's copy before the state forgets vm1 (a document naming an alias of an fd it
	 * does not list would not parse, and every fd would be dropped at the restart) */
	{
		_cleanup_json_ json_object *a = NULL, *b = NULL, *got_rep = NULL;
		_cleanup_close_ int c = integ_open_client(D.sock, NULL), op = integ_open_client(D.sock, NULL);
		int d = fcntl(ev, F_DUPFD_CLOEXEC, 3), got = -EBADF;
		size_t nf = 0;
		eventfd_t v = 0;
		bool ok;

		json_object_put(c >= 0 ? integ_call_json(c, "instance.register", "{\"name\":\"vm2\"}") : NULL);
		r = c >= 0 ? integ_call(c, "fd.store", "{\"names\":[\"x\"]}", &d, 1, &a, NULL, 0, NULL) : -EBADF;
		close(d);
		b = op >= 0 ? integ_call_json(op, "instance.release", "{\"name\":\"vm1\"}") : NULL;
		integ_notify_pump(&N, 300, NULL);
		tap_check(r == 0 && integ_return(a) && integ_return(b) && integ_notify_count_held(&N) == 1,
			  "release-shared-file", "r=%d %s; %zu held fds in the store", r,
			  b ? json_object_to_json_string(b) : "-", integ_notify_count_held(&N));
		c = safe_close(c);
		op = safe_close(op);
		r = kill_and_restart(dir, lfd, cfg);
		if (!tap_check(r == 0, "restart-after-release", "%s", strerror(-r)))
			goto out;
		c = integ_open_client(D.sock, NULL);
		json_object_put(c >= 0 ? integ_call_json(c, "instance.register", "{\"name\":\"vm2\",\"reattach\":true}")
				       : NULL);
		r = c >= 0 ? integ_call(c, "fd.retrieve", "{\"names\":[\"x\"]}", NULL, 0, &got_rep, &got, 1, &nf) : -EBADF;
		ok = r == 0 && nf == 1 && eventfd_write(got, 9) == 0 && eventfd_read(ev, &v) == 0 && v == 9;
		tap_check(ok, "restart-after-release-eventfd", "r=%d nf=%zu v=%llu %s", r, nf, (unsigned long long)v,
			  got_rep ? json_object_to_json_string(got_rep) : "-");
		if (nf)
			close(got);
	}
	r = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "clean-exit", "wait status 0x%x", r);
	if (tap_failures())
		integ_daemon_dump_log(&D);
out:
	if (D.pid > 0)
		integ_daemon_stop(&D, SIGKILL, 1000);
	close_many(mem, NMEM);
	safe_close(ev);
	integ_notify_close(&N);
	integ_rmrf(dir);
	return tap_exit_status();
}
