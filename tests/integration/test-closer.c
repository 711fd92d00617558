/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-closer.c - held fds the daemon lets go of are closed by its closer thread (daemon/closer.c), off
 * the event loop, and really closed: for fd.remove, instance.release of an instance holding many fds,
 * and orphan expiry, the write ends of pipes stored in the daemon give EOF to this test's read ends,
 * the daemon answers `status` while the closes run, and its /proc/PID/fd count returns to its baseline.
 * Last, a SIGTERM with fds just released: a clean exit (the closer finishes its queue before exit).
 * No fd store here (no NOTIFY_SOCKET): the daemon's copy is the last reference of each write end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integ.h"
#include "vlu-proto.h"

#define NPIPES 240 /* under max_fds_per_instance (252) */
#define BATCH 60

static struct integ_daemon D;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_fds(pid_t pid)
{
	char p[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* wait until /proc/PID/fd has want entries (up to timeout_ms); the last count */
static int wait_fd_count(pid_t pid, int want, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = count_fds(pid);
		if (n == want || now_ms() >= end)
			return n;
		usleep(10000);
	}
}

/* every read end in rd[0..n) reads EOF within timeout_ms: the number that did */
static unsigned wait_eof(const int *rd, unsigned n, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	unsigned got = 0;

	for (unsigned i = 0; i < n; i++) {
		for (;;) {
			struct pollfd p = { .fd = rd[i], .events = POLLIN };
			int left = (int)(end - now_ms());
			char c;

			if (left < 0 || poll(&p, 1, left) <= 0)
				return got;
			if (read(rd[i], &c, 1) == 0) {
				got++;
				break;
			}
		}
	}
	return got;
}

static json_object *call(int c, const char *cmd, const char *args)
{
	json_object *rep = NULL;

	if (integ_call(c, cmd, args, NULL, 0, &rep, NULL, 0, NULL) < 0)
		return NULL;
	return rep;
}

/* store n pipes' write ends in the connection's instance as <prefix><i>; the read ends in rd[] */
static bool store_pipes(int c, const char *prefix, int *rd, unsigned n, char *why, size_t wl)
{
	for (unsigned b = 0; b < n; b += BATCH) {
		unsigned m = n - b < BATCH ? n - b : BATCH;
		int wr[BATCH];
		char args[BATCH * 24 + 32];
		size_t off = 0;
		_cleanup_json_ json_object *rep = NULL;
		int r;

		off += (size_t)snprintf(args + off, sizeof(args) - off, "{\"names\":[");
		for (unsigned i = 0; i < m; i++) {
			int p[2];

			if (pipe2(p, O_CLOEXEC) < 0) {
				snprintf(why, wl, "pipe2: %m");
				return false;
			}
			rd[b + i] = p[0];
			wr[i] = p[1];
			off += (size_t)snprintf(args + off, sizeof(args) - off, "%s\"%s%u\"", i ? "," : "", prefix, b + i);
		}
		snprintf(args + off, sizeof(args) - off, "]}");
		r = integ_call(c, "fd.store", args, wr, m, &rep, NULL, 0, NULL);
		for (unsigned i = 0; i < m; i++)
			close(wr[i]); /* the daemon's copies are the only write ends left */
		if (r < 0 || !integ_return(rep)) {
			snprintf(why, wl, "fd.store batch %u: r=%d %s", b / BATCH, r,
				 rep ? json_object_to_json_string(rep) : "-");
			return false;
		}
	}
	return true;
}

static void close_all(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			fds[i] = safe_close(fds[i]);
}

int main(void)
{
	_cleanup_free_ char *dir = integ_mkdtemp("closer"), *conf = NULL;
	struct integ_daemon_opts o = { 0 };
	static int rd[NPIPES];
	int base, n, c = -EBADF, op = -EBADF, r;
	char why[4096] = "";

	tap_suite("integ-closer");
	for (unsigned i = 0; i < NPIPES; i++)
		rd[i] = -EBADF;
	if (!tap_check(dir != NULL, "setup-tmpdir", "%m"))
		return tap_exit_status();
	conf = integ_default_config(dir, "\"orphan_expiry_s\": 1");
	o.config_json = conf;
	if (!tap_check(integ_daemon_start(&D, dir, &o) == 0, "start", "daemon did not start"))
		goto out;
	op = integ_open_client(D.sock, NULL);
	c = integ_open_client(D.sock, NULL);
	if (!tap_check(c >= 0 && op >= 0, "connect", "%s", strerror(-(c < 0 ? c : op))))
		goto out;
	{
		_cleanup_json_ json_object *rep = call(c, "instance.register", "{\"name\":\"vm1\"}");

		if (!tap_check(integ_return(rep) != NULL, "register", "%s", rep ? json_object_to_json_string(rep) : "-"))
			goto out;
	}

	/* warm-up: the closer's thread and eventfd exist from its first job on; fd.remove of one pipe */
	if (!tap_check(store_pipes(c, "w", rd, 1, why, sizeof(why)), "fd.store-one", "%s", why))
		goto out;
	{
		_cleanup_json_ json_object *rep = call(c, "fd.remove", "{\"names\":[\"w0\"]}");

		tap_check(integ_return(rep) != NULL, "fd.remove", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	tap_check(wait_eof(rd, 1, 5000) == 1, "fd.remove-write-end-closed", "the reader got no EOF within 5 s");
	close_all(rd, 1);
	usleep(100000);
	base = count_fds(D.pid);
	tap_diag("daemon fds at baseline: %d", base);

	/* many fds, then instance.release by the operator while the VMM's connection stays */
	if (!tap_check(store_pipes(c, "p", rd, NPIPES, why, sizeof(why)), "fd.store-many", "%s", why))
		goto out;
	n = count_fds(D.pid);
	tap_check(n == base + NPIPES, "fds-held", "daemon has %d fds, want baseline %d + %d", n, base, NPIPES);
	{
		_cleanup_json_ json_object *rep = call(op, "instance.release", "{\"name\":\"vm1\"}");
		_cleanup_json_ json_object *st = NULL;
		int64_t t0;

		tap_check(json_object_get_int64(integ_get(rep, "return.closed_fds")) == NPIPES, "instance.release",
			  "%s", rep ? json_object_to_json_string(rep) : "-");
		t0 = now_ms();
		st = call(op, "status", NULL);
		tap_check(integ_return(st) != NULL, "status-after-release", "no status reply (%lld ms)",
			  (long long)(now_ms() - t0));
	}
	r = (int)wait_eof(rd, NPIPES, 10000);
	tap_check(r == NPIPES, "instance.release-write-ends-closed", "%d of %d readers got EOF within 10 s", r, NPIPES);
	close_all(rd, NPIPES);
	/* the instance's own pidfd closes with it: one below the baseline */
	n = wait_fd_count(D.pid, base - 1, 5000);
	tap_check(n == base - 1, "instance.release-fd-count-baseline", "daemon has %d fds, want baseline %d - 1 "
		  "(the instance's pidfd)", n, base);

	/* orphan expiry (1 s): register again, store, disconnect */
	c = safe_close(c);
	c = integ_open_client(D.sock, NULL);
	{
		_cleanup_json_ json_object *rep = call(c, "instance.register", "{\"name\":\"vm2\"}");

		tap_check(integ_return(rep) != NULL, "register-vm2", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	if (!tap_check(store_pipes(c, "e", rd, 20, why, sizeof(why)), "fd.store-orphan", "%s", why))
		goto out;
	c = safe_close(c); /* orphaned now; expires after 1 s */
	r = (int)wait_eof(rd, 20, 10000);
	tap_check(r == 20, "orphan-expiry-write-ends-closed", "%d of 20 readers got EOF within 10 s", r);
	close_all(rd, 20);
	/* base - 1 after the release, + 1 for vm2's pidfd; the VMM's socket, its connection's pidfd and
	 * the instance's pidfd are gone too */
	n = wait_fd_count(D.pid, base - 3, 5000);
	tap_check(n == base - 3, "orphan-expiry-fd-count", "daemon has %d fds, want %d (baseline without the VMM's "
		  "socket, its pidfd and the instance's pidfd)", n, base - 3);

	/* shutdown right after a release: the closer finishes, the daemon exits cleanly */
	c = integ_open_client(D.sock, NULL);
	{
		_cleanup_json_ json_object *rep = call(c, "instance.register", "{\"name\":\"vm3\"}");

		tap_check(integ_return(rep) != NULL, "register-vm3", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	if (!tap_check(store_pipes(c, "s", rd, NPIPES, why, sizeof(why)), "fd.store-before-stop", "%s", why))
		goto out;
	{
		_cleanup_json_ json_object *rep = call(op, "instance.release", "{\"name\":\"vm3\"}");

		tap_check(integ_return(rep) != NULL, "release-before-stop", "%s", rep ? json_object_to_json_string(rep) : "-");
	}
	r = integ_daemon_stop(&D, SIGTERM, 10000);
	tap_check(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "sigterm-clean-exit", "wait status %d", r);
	close_all(rd, NPIPES);

out:
	if (tap_failures())
		integ_daemon_dump_log(&D);
	safe_close(c);
	safe_close(op);
	if (integ_daemon_alive(&D))
		(void)integ_daemon_stop(&D, SIGTERM, 5000);
	close_all(rd, NPIPES);
	if (dir)
		integ_rmrf(dir);
	return tap_exit_status();
}
