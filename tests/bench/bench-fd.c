/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-fd.c - fd handoff cost through the real daemon (host side, no device needed).
 *
 * Starts the built vlud in a temporary directory (twice: without NOTIFY_SOCKET, and with this program
 * playing systemd's fd store, which is how vlud.service runs) and measures with libvlu:
 *   - the kernel's own cost of passing N fds in one SCM_RIGHTS message over a SOCK_SEQPACKET socketpair
 *     (send + receive + close, one thread): the floor under everything else;
 *   - fd.store of N memfds in one message (replace: the same N names every time) and fd.retrieve of them,
 *     for N = 1, 16, 253 (SCM_MAX_FD): one request/reply round trip each, as a VMM sees it;
 *   - 1000 held fds: the time to store them (4 messages of 250), then fd.store/fd.retrieve of one fd,
 *     fd.list and status while they are held, the daemon's RSS and open fds before and after, and the
 *     time to remove them.
 * Prints a text table on stdout and writes the JSON document given with --json.
 *
 * Usage: bench-fd [--json FILE] [--reps N] [--quick] [--only fd|recovery]   (VLU_BUILD: build directory with vlud, default ./build)
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bstat.h"
#include "integ.h"
#include "sdstore.h"
#include "vlu.h"

#define HELD_N 1000
#define HELD_BATCH 250

static unsigned reps = 200;

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-fd: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* n memfds (the fds a VMM stores: guest RAM); fds owned by the caller */
static int *make_memfds(size_t n)
{
	int *fds = calloc(n, sizeof(int));

	if (!fds)
		die("calloc", -ENOMEM);
	for (size_t i = 0; i < n; i++) {
		fds[i] = memfd_create("bench", MFD_CLOEXEC);
		if (fds[i] < 0)
			die("memfd_create", -errno);
	}
	return fds;
}

static char **make_names(const char *prefix, size_t n)
{
	char **names = calloc(n, sizeof(char *));

	if (!names)
		die("calloc", -ENOMEM);
	for (size_t i = 0; i < n; i++)
		if (asprintf(&names[i], "%s%zu", prefix, i) < 0)
			die("asprintf", -ENOMEM);
	return names;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static json_object *row(const char *op, size_t nfds, size_t held, struct bstat_samples *s)
{
	struct bstat_summary m;
	json_object *o;

	bstat_summarize(s, &m);
	o = bstat_summary_json(&m);
	json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "nfds", json_object_new_int64((int64_t)nfds));
	json_object_object_add(o, "held", json_object_new_int64((int64_t)held));
	{
		char b[32];
		double per = nfds ? m.p50 / (double)nfds : 0;
		snprintf(b, sizeof(b), "%.3f", per);
		json_object_object_add(o, "median_us_per_fd", json_object_new_double_s(per, b));
	}
	printf("  %-22s %5zu %5zu %6zu %10.1f %10.1f %10.1f %10.1f %9.2f\n", op, nfds, held, m.n, m.min, m.p50, m.p99,
	       m.max, nfds ? m.p50 / (double)nfds : 0);
	bstat_reset(s);
	return o;
}

/* the kernel alone: N fds through a socketpair, received with MSG_CMSG_CLOEXEC and closed */
static void bench_raw(size_t n, const int *fds, struct bstat_samples *s)
{
	int sp[2];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 253)];
	} cs, cr;
	char payload[64] = "{\"execute\":\"fd.store\"}";

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		die("socketpair", -errno);
	for (unsigned k = 0; k < reps; k++) {
		struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cs,
				     .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		char rbuf[64];
		struct iovec riov = { .iov_base = rbuf, .iov_len = sizeof(rbuf) };
		struct msghdr rh = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = &cr, .msg_controllen = sizeof(cr) };
		uint64_t t0;

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
		t0 = bstat_now_ns();
		if (sendmsg(sp[0], &mh, MSG_NOSIGNAL) < 0)
			die("sendmsg", -errno);
		if (recvmsg(sp[1], &rh, MSG_CMSG_CLOEXEC) < 0)
			die("recvmsg", -errno);
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&rh); h; h = CMSG_NXTHDR(&rh, h)) {
			size_t k2 = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got[253];
			memcpy(got, CMSG_DATA(h), k2 * sizeof(int));
			close_many(got, k2);
		}
		bstat_add(s, (double)(bstat_now_ns() - t0) / 1e3);
	}
	close(sp[0]);
	close(sp[1]);
}

static void report_call_error(struct vlu *v, const char *what, int r)
{
	const char *cls = NULL, *desc = NULL;

	vlu_last_error(v, &cls, &desc);
	fprintf(stderr, "bench-fd: %s: %s (%s: %s)\n", what, strerror(-r), cls ? cls : "-", desc ? desc : "-");
	exit(1);
}

/* With the fd store: let PID 1 (the stand-in) handle everything this request queued before the next one
 * is timed.  PID 1's de-duplication costs it one kcmp per stored fd for every fd it is given (as
 * systemd's service_add_fd_store() does), so back-to-back requests would measure PID 1's throughput once
 * the kernel's notify queue (net.unix.max_dgram_qlen datagrams) is full; this measures vlud's latency
 * per change, and PID 1's time is reported apart (drain_us). */
static struct bstat_samples drain;

static void settle(struct integ_notify *n)
{
	uint64_t t0;

	if (!n)
		return;
	t0 = bstat_now_ns();
	integ_notify_pump(n, 0, NULL);
	bstat_add(&drain, (double)(bstat_now_ns() - t0) / 1e3);
}

static json_object *run_mode(const char *mode, bool fdstore)
{
	static const size_t sizes[] = { 1, 16, 253 };
	_cleanup_free_ char *dir = integ_mkdtemp("bench-fd");
	_cleanup_free_ char *cfg = NULL;
	struct integ_notify notify = { .sd.fd = -EBADF };
	struct integ_daemon d;
	struct integ_daemon_opts o = {};
	struct bstat_samples s = {};
	struct vlu *v = NULL;
	json_object *res = json_object_new_object(), *rows = json_object_new_array();
	struct integ_notify *pid1 = fdstore ? &notify : NULL;
	uint64_t t0;
	int r;

	if (!dir)
		die("mkdtemp", -errno);
	cfg = integ_default_config(dir, "\"limits\": { \"max_fds_per_message\": 253, \"max_fds_per_instance\": 4096, "
					"\"max_message_bytes\": 1048576, \"max_connections\": 1024, \"idle_timeout_ms\": 0 }");
	o.config_json = cfg;
	if (fdstore) {
		r = integ_notify_open(&notify, dir);
		if (r < 0)
			die("notify socket", r);
		o.notify = &notify;
	}
	r = integ_daemon_start(&d, dir, &o);
	if (r < 0)
		die("start vlud", r);
	r = integ_daemon_wait_ready(&d, 10000);
	if (r < 0) {
		integ_daemon_dump_log(&d);
		die("vlud not ready", r);
	}
	/* systemd's side: integ.c's reader thread handles the notify socket while the benchmark runs */
	if (fdstore && (r = integ_notify_start(&notify)) < 0)
		die("notify reader thread", r);
	r = vlu_connect(d.sock, 5000, &v);
	if (r < 0)
		die("vlu_connect", r);
	r = vlu_register(v, "bench", false);
	if (r < 0)
		report_call_error(v, "register", r);

	printf("mode %s (%s)\n", mode, fdstore ? "NOTIFY_SOCKET set: every held fd also goes to the fd store" : "no fd store");
	printf("  %-22s %5s %5s %6s %10s %10s %10s %10s %9s\n", "operation", "nfds", "held", "reps", "min_us", "median_us",
	       "p99_us", "max_us", "us/fd");
	for (size_t si = 0; si < ELEMENTSOF(sizes); si++) {
		size_t n = sizes[si];
		int *fds = make_memfds(n);
		char **names = make_names("f", n);
		int *out = calloc(n, sizeof(int));

		if (!fdstore) {
			bench_raw(n, fds, &s);
			json_object_array_add(rows, row("kernel-scm-roundtrip", n, 0, &s));
		}
		for (unsigned k = 0; k < reps; k++) {
			t0 = bstat_now_ns();
			r = vlu_fd_store(v, (const char *const *)names, fds, n, true);
			if (r < 0)
				report_call_error(v, "fd.store", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			settle(pid1);
		}
		json_object_array_add(rows, row("fd.store", n, n, &s));
		for (unsigned k = 0; k < reps; k++) {
			t0 = bstat_now_ns();
			r = vlu_fd_retrieve(v, (const char *const *)names, n, out);
			if (r < 0)
				report_call_error(v, "fd.retrieve", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			close_many(out, n);
		}
		json_object_array_add(rows, row("fd.retrieve", n, n, &s));
		r = vlu_fd_remove(v, (const char *const *)names, n, NULL);
		if (r < 0)
			report_call_error(v, "fd.remove", r);
		settle(pid1);
		close_many(fds, n);
		free(fds);
		free(out);
		free_names(names, n);
	}

	/* 1000 held fds */
	{
		int *fds = make_memfds(HELD_N);
		char **names = make_names("h", HELD_N);
		const char *one[] = { "x" };
		int xfd = memfd_create("bench-x", MFD_CLOEXEC), xout = -EBADF;
		long rss0 = bstat_proc_status_kb(d.pid, "VmRSS"), nfd0 = bstat_proc_nfds(d.pid), rss1, nfd1;
		double store_all_ms, remove_all_ms;
		json_object *h = json_object_new_object(), *jl = NULL;

		t0 = bstat_now_ns();
		for (size_t i = 0; i < HELD_N; i += HELD_BATCH) {
			r = vlu_fd_store(v, (const char *const *)names + i, fds + i, HELD_BATCH, false);
			if (r < 0)
				report_call_error(v, "fd.store (held)", r);
			settle(pid1);
		}
		store_all_ms = (double)(bstat_now_ns() - t0) / 1e6;
		rss1 = bstat_proc_status_kb(d.pid, "VmRSS");
		nfd1 = bstat_proc_nfds(d.pid);
		for (unsigned k = 0; k < reps; k++) {
			t0 = bstat_now_ns();
			r = vlu_fd_store(v, one, &xfd, 1, true);
			if (r < 0)
				report_call_error(v, "fd.store (1 with 1000 held)", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			settle(pid1);
		}
		json_object_array_add(rows, row("fd.store", 1, HELD_N + 1, &s));
		for (unsigned k = 0; k < reps; k++) {
			t0 = bstat_now_ns();
			r = vlu_fd_retrieve(v, one, 1, &xout);
			if (r < 0)
				report_call_error(v, "fd.retrieve (1 with 1000 held)", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			xout = safe_close(xout);
		}
		json_object_array_add(rows, row("fd.retrieve", 1, HELD_N + 1, &s));
		for (unsigned k = 0; k < reps / 4 + 1; k++) {
			t0 = bstat_now_ns();
			r = vlu_fd_list(v, NULL, &jl);
			if (r < 0)
				report_call_error(v, "fd.list (1000 held)", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			json_object_put(TAKE_PTR(jl));
		}
		json_object_array_add(rows, row("fd.list", 0, HELD_N + 1, &s));
		for (unsigned k = 0; k < reps; k++) {
			t0 = bstat_now_ns();
			r = vlu_status(v, &jl);
			if (r < 0)
				report_call_error(v, "status", r);
			bstat_add(&s, (double)(bstat_now_ns() - t0) / 1e3);
			json_object_put(TAKE_PTR(jl));
		}
		json_object_array_add(rows, row("status", 0, HELD_N + 1, &s));
		t0 = bstat_now_ns();
		for (size_t i = 0; i < HELD_N; i += HELD_BATCH) {
			r = vlu_fd_remove(v, (const char *const *)names + i, HELD_BATCH, NULL);
			if (r < 0)
				report_call_error(v, "fd.remove (held)", r);
			settle(pid1);
		}
		remove_all_ms = (double)(bstat_now_ns() - t0) / 1e6;
		printf("  held %d fds: store all %.1f ms (%d messages), remove all %.1f ms; vlud RSS %ld -> %ld kB, "
		       "open fds %ld -> %ld\n", HELD_N, store_all_ms, HELD_N / HELD_BATCH, remove_all_ms, rss0, rss1, nfd0, nfd1);
		json_object_object_add(h, "n", json_object_new_int(HELD_N));
		json_object_object_add(h, "messages", json_object_new_int(HELD_N / HELD_BATCH));
		json_object_object_add(h, "store_all_ms", json_object_new_double(store_all_ms));
		json_object_object_add(h, "remove_all_ms", json_object_new_double(remove_all_ms));
		json_object_object_add(h, "vlud_rss_kb_before", json_object_new_int64(rss0));
		json_object_object_add(h, "vlud_rss_kb_held", json_object_new_int64(rss1));
		json_object_object_add(h, "vlud_fds_before", json_object_new_int64(nfd0));
		json_object_object_add(h, "vlud_fds_held", json_object_new_int64(nfd1));
		json_object_object_add(res, "held", h);
		close_many(fds, HELD_N);
		free(fds);
		free_names(names, HELD_N);
		safe_close(xfd);
	}

	vlu_close(v);
	if (fdstore) {
		unsigned stored, removed, errors;

		integ_notify_lock(&notify);
		stored = notify.sd.n_stored_total;
		removed = notify.sd.n_removed_total;
		errors = notify.sd.n_errors;
		integ_notify_unlock(&notify);
		json_object_object_add(res, "fdstore_stored_total", json_object_new_int64(stored));
		json_object_object_add(res, "fdstore_removed_total", json_object_new_int64(removed));
		json_object_object_add(res, "fdstore_errors", json_object_new_int64(errors));
		{
			struct bstat_summary m;

			bstat_summarize(&drain, &m);
			printf("  PID 1 (stand-in) after each request: %zu drains, median %.1f us, max %.1f us (not in the "
			       "times above)\n", m.n, m.p50, m.max);
			json_object_object_add(res, "pid1_drain_us", bstat_summary_json(&m));
			bstat_reset(&drain);
		}
		printf("  fd store: %u fds pushed, %u removed, %u errors\n", stored, removed, errors);
	}
	r = integ_daemon_stop(&d, SIGTERM, 5000);
	if (fdstore)
		integ_notify_close(&notify);
	json_object_object_add(res, "mode", json_object_new_string(mode));
	json_object_object_add(res, "rows", rows);
	integ_rmrf(dir);
	bstat_done(&s);
	return res;
}

/* Recovery after kill -9 (fd store on, socket activated as vlud.socket does): N memfds held (instances of at
 * most 250), SIGKILL, and the stand-in for PID 1 starts vlud again at once with the listening socket and
 * everything stored (no restart delay).  Timed from the kill: READY=1 (every held fd adopted) and the first `status` answered
 * on a new connection that counts N fds. */
static json_object *run_recovery(size_t n, unsigned nreps)
{
	_cleanup_free_ char *dir = integ_mkdtemp("bench-rec");
	_cleanup_free_ char *cfg = NULL;
	_cleanup_close_ int lfd = -EBADF;
	struct integ_notify notify = { .sd.fd = -EBADF };
	struct bstat_samples sready = {}, sanswer = {}, sdead = {}, sspawn = {}, scpu = {}, svlud = {};
	struct bstat_summary mr, ma, md, ms, mc, mv;
	const char *ln[] = { "vlud.socket" };
	struct integ_daemon_opts o = {};
	struct integ_daemon d = {};
	struct vlu *v = NULL;
	char sock[512];
	int *fds = make_memfds(n);
	char **names = make_names("r", n);
	json_object *row = json_object_new_object();
	int r;

	if (!dir)
		die("mkdtemp", -errno);
	cfg = integ_default_config(dir, "\"limits\": { \"max_fds_per_message\": 253, \"max_fds_per_instance\": 4096, "
					"\"max_connections\": 1024, \"idle_timeout_ms\": 0 }");
	snprintf(sock, sizeof(sock), "%s/vlud.sock", dir);
	lfd = sdstore_listen_socket(sock);
	if (lfd < 0)
		die("listen socket", lfd);
	if ((r = integ_notify_open(&notify, dir)) < 0 || (r = integ_notify_start(&notify)) < 0)
		die("notify socket", r);
	o = (struct integ_daemon_opts){ .config_json = cfg, .notify = &notify, .listen_fds = &lfd, .listen_names = ln,
					.n_listen = 1 };
	if ((r = integ_daemon_start(&d, dir, &o)) < 0)
		die("start vlud", r);
	/* one instance per HELD_BATCH fds (1000: 4 of 250), as under the real systemd (bench-sdrec.c: the shipped
	 * max_fds_per_instance is 252), each its own VMM that disconnects: the instances stay, orphaned */
	for (size_t i = 0; i < n; i += HELD_BATCH) {
		size_t k = n - i < HELD_BATCH ? n - i : HELD_BATCH;
		char inst[32];

		snprintf(inst, sizeof(inst), "rec%zu", i / HELD_BATCH);
		if ((r = vlu_connect(d.sock, 5000, &v)) < 0)
			die("vlu_connect", r);
		if ((r = vlu_register(v, inst, false)) < 0)
			report_call_error(v, "register", r);
		r = vlu_fd_store(v, (const char *const *)names + i, fds + i, k, false);
		if (r < 0)
			report_call_error(v, "fd.store (recovery)", r);
		vlu_close(TAKE_PTR(v));
	}
	integ_notify_pump(&notify, 0, NULL);
	o.from_store = true;
	o.no_wait = true;
	for (unsigned k = 0; k < nreps; k++) {
		json_object *st = NULL;
		uint64_t t0;
		int64_t got = -1;
		bool ready = false;

		integ_notify_pump(&notify, 0, NULL);
		t0 = bstat_now_ns();
		r = integ_daemon_stop(&d, SIGKILL, 5000);
		bstat_add(&sdead, (double)(bstat_now_ns() - t0) / 1e3);
		integ_notify_pump(&notify, 0, NULL); /* PID 1 takes what the dead vlud sent */
		integ_notify_lock(&notify);
		notify.sd.ready = false;
		integ_notify_unlock(&notify);
		if ((r = integ_daemon_start(&d, dir, &o)) < 0)
			die("restart vlud", r);
		bstat_add(&sspawn, (double)(bstat_now_ns() - t0) / 1e3);
		while (!ready) {
			integ_notify_lock(&notify);
			ready = notify.sd.ready;
			integ_notify_unlock(&notify);
			if (!ready && bstat_now_ns() - t0 > 20000000000ULL)
				die("no READY=1 after the restart", -ETIMEDOUT);
			if (!ready)
				usleep(200);
		}
		bstat_add(&sready, (double)(bstat_now_ns() - t0) / 1e3);
		{
			double cpu = bstat_proc_cpu_us(d.pid);

			if (cpu >= 0)
				bstat_add(&scpu, cpu);
		}
		r = vlu_connect(d.sock, 5000, &v);
		if (r >= 0)
			r = vlu_status(v, &st);
		if (r < 0)
			die("status after the restart", r);
		{
			uint64_t ta = bstat_now_ns();
			json_object *c = NULL, *f = NULL;

			bstat_add(&sanswer, (double)(ta - t0) / 1e3);
			if (json_object_object_get_ex(st, "counts", &c) && json_object_object_get_ex(c, "fds", &f))
				got = json_object_get_int64(f);
			/* vlud's part, as under the real systemd (bench-sdrec.c): its main() (status' uptime_ms, whole
			 * ms: the middle of the last one) -> answered; the stand-in's child (fds moved to 3.., exec,
			 * loading) is before main() */
			if (json_object_object_get_ex(st, "uptime_ms", &f))
				bstat_add(&svlud, (double)json_object_get_int64(f) * 1e3 + 500);
		}
		json_object_put(st);
		vlu_close(TAKE_PTR(v));
		if (got != (int64_t)n) {
			integ_daemon_dump_log(&d);
			fprintf(stderr, "bench-fd: recovery: %lld fds held after the restart, want %zu\n", (long long)got, n);
			exit(1);
		}
	}
	bstat_summarize(&sready, &mr);
	bstat_summarize(&sanswer, &ma);
	bstat_summarize(&sdead, &md);
	bstat_summarize(&sspawn, &ms);
	bstat_summarize(&scpu, &mc);
	bstat_summarize(&svlud, &mv);
	printf("  %5zu %5u %12.1f %12.1f %12.1f %12.1f %12.1f %12.1f %12.1f %12.1f\n", n, nreps, md.p50 / 1e3, ms.p50 / 1e3,
	       mr.min / 1e3, mr.p50 / 1e3, ma.min / 1e3, ma.p50 / 1e3, mc.p50 / 1e3, mv.p50 / 1e3);
	json_object_object_add(row, "held", json_object_new_int64((int64_t)n));
	json_object_object_add(row, "reps", json_object_new_int((int)nreps));
	json_object_object_add(row, "ready", bstat_summary_json(&mr)); /* microseconds from the kill */
	json_object_object_add(row, "answer", bstat_summary_json(&ma));
	json_object_object_add(row, "reaped", bstat_summary_json(&md));	 /* the stand-in's waitpid() returned */
	json_object_object_add(row, "spawned", bstat_summary_json(&ms)); /* its fork() of the new vlud returned */
	/* CPU time of the new vlud's process at READY=1 (fork to READY: the stand-in's child before exec, exec,
	 * loading, adoption), independent of the host's load */
	json_object_object_add(row, "cpu_to_ready", bstat_summary_json(&mc));
	json_object_object_add(row, "vlud", bstat_summary_json(&mv)); /* vlud's main() -> answered */
	integ_daemon_stop(&d, SIGTERM, 5000);
	integ_notify_close(&notify);
	close_many(fds, n);
	free(fds);
	free_names(names, n);
	integ_rmrf(dir);
	bstat_done(&sready);
	bstat_done(&sanswer);
	bstat_done(&sdead);
	bstat_done(&sspawn);
	bstat_done(&scpu);
	bstat_done(&svlud);
	return row;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "reps", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *json_path = NULL, *only = NULL;
	json_object *doc = json_object_new_object(), *modes = json_object_new_array();
	int c;

	while ((c = getopt_long(argc, argv, "j:r:qo:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json_path = optarg; break;
		case 'r': reps = (unsigned)strtoul(optarg, NULL, 10); if (!reps) reps = 1; break;
		case 'q': reps = 20; break;
		case 'o':
			if (strcmp(optarg, "fd") != 0 && strcmp(optarg, "recovery") != 0) {
				fprintf(stderr, "bench-fd: --only fd|recovery\n");
				return 2;
			}
			only = optarg;
			break;
		case 'h': printf("Usage: bench-fd [--json FILE] [--reps N] [--quick] [--only fd|recovery]\n"); return 0;
		default: return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	bstat_raise_nofile();
	printf("# bench-fd: fd handoff through vlud (%s), %u repetitions per row, times per request/reply round trip\n",
	       integ_prog("vlud"), reps);
	if (!only || strcmp(only, "fd") == 0) {
		json_object_array_add(modes, run_mode("plain", false));
		json_object_array_add(modes, run_mode("fdstore", true));
	}
	if (!only || strcmp(only, "recovery") == 0) {
		static const size_t ns[] = { 10, 100, 1000 };
		json_object *rec = json_object_new_array();

		printf("recovery after kill -9 (fd store on, restarted at once): ms from the kill\n");
		printf("  %5s %5s %12s %12s %12s %12s %12s %12s %12s %12s\n", "held", "reps", "reaped_med", "spawned_med",
		       "ready_min", "ready_med", "answer_min", "answer_med", "cpu_ready_med", "main_answ_med");
		for (size_t i = 0; i < ELEMENTSOF(ns); i++)
			json_object_array_add(rec, run_recovery(ns[i], reps >= 100 ? 5 : 2));
		json_object_object_add(doc, "recovery", rec);
	}
	json_object_object_add(doc, "bench", json_object_new_string("fd"));
	json_object_object_add(doc, "reps", json_object_new_int((int)reps));
	json_object_object_add(doc, "modes", modes);
	if (json_path) {
		int r = bstat_write_json(json_path, doc);
		if (r < 0)
			die(json_path, r);
		printf("# JSON: %s\n", json_path);
	}
	json_object_put(doc);
	return 0;
}
