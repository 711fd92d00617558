/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-fd.c - fd handoff cost through the real daemon (host side, no device needed).
 *
 * Starts the built vlud twice in temporary directories, at the same time: without NOTIFY_SOCKET, and with
 * this program playing systemd's fd store (how vlud.service runs), and measures with libvlu, the two
 * side by side (every row alternates between them request by request, so the host's load drifts over
 * both alike):
 *   - the kernel's own cost of passing N fds in one SCM_RIGHTS message over a SOCK_SEQPACKET socketpair
 *     (send + receive + close, one thread): the floor under everything else;
 *   - fd.store of N memfds in one message (replace: the same N names every time) and fd.retrieve of them,
 *     for N = 1, 16, 253 (SCM_MAX_FD): one request/reply round trip each, as a VMM sees it, and the CPU
 *     CPU time vlud (all its threads) spent on it;
 *   - 1000 held fds: the time to store them (4 messages of 250), then fd.store/fd.retrieve of one fd,
 *     fd.list and status while they are held, the daemon's RSS and open fds before and after, and the
 *     time to remove them;
 *   - fd store on against off per row: medians, minima, the median of the per-pair ratios.
 * Prints a text table on stdout and writes the JSON document given with --json.
 *
 * Usage: bench-fd [--json FILE] [--reps N] [--quick] [--only fd|recovery]   (VLU_BUILD: build directory with vlud, default ./build)
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bstat.h"
#include "integ.h"
#include "sdstore.h"
#include "vlu.h"

#define HELD_N 1000
#define HELD_BATCH 250

static unsigned reps = 200;
static int daemon_cpu = -1; /* the CPU both daemons of the fd rows run on (-1: wherever) */

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

/* The two daemons of the fd rows, measured side by side: "plain" (no NOTIFY_SOCKET) and "fdstore" (this
 * program plays PID 1's notify socket and fd store, as vlud.service runs).  Both run at once and every
 * row alternates between them request by request (which one goes first alternates too), so a burst of
 * load on the host lands on both modes alike instead of on whichever ran during it. */
struct side {
	const char *mode;
	bool fdstore;
	char *dir;
	struct integ_notify notify;
	struct integ_daemon d;
	clockid_t cpu_clock; /* vlud's CPU time, all its threads (clock_getcpuclockid) */
	double cpu_mark; /* vlud's CPU time at the start of its last recorded request ... */
	bool cpu_open;	 /* ... whose CPU sample is taken at the start of its next request (cpu_close()) */
	struct vlu *v;
	json_object *rows;
	FILE *out; /* its table, printed after the run (the rows of both modes come at the same time) */
	char *outbuf;
	size_t outlen;
	struct bstat_samples wall, cpu, drain;
	/* held fds: request times only (PID 1's part is in drain) */
	double store_all_us, remove_all_us;
	long rss0, rss1, nfd0, nfd1;
	/* PID 1 (fdstore): its notify socket is read by this thread only between the timed requests (settle()),
	 * so its work (a kcmp per stored fd for every fd it is given, as systemd's de-duplication) never runs
	 * inside one; the watchdog thread drains during a request only when one has been running for a whole
	 * PID1_DEFER_MS with datagrams queued (vlud's sendmsg would block once net.unix.max_dgram_qlen are):
	 * counted in "pid1_forced", never expected */
	pthread_t watch;
	bool watch_running, stop, timing;
	unsigned seq, forced, status_timeouts;
	pthread_cond_t cond;
};

/* the daemons that run, for stop_left() when the program exits on an error (die(), report_call_error()):
 * vlud does not go with its parent, and each error left one running (two in the fd rows) with its
 * directory */
static struct side *live_sides;
static unsigned n_live_sides;
static struct integ_daemon *live_rec;
static char *live_rec_dir;

#define PID1_DEFER_MS 1000
#define STEP_TAIL_MS 5
#define STATUS_WAIT_MS 1000

static void ts_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* PID 1 handles what is queued (sd->notify.lock held); the number of datagrams */
static unsigned drain_locked(struct side *sd)
{
	unsigned k = 0;

	while (sdstore_recv_one(&sd->notify.sd) > 0)
		k++;
	return k;
}

static void *pid1_watch(void *arg)
{
	struct side *sd = arg;
	pthread_mutex_t *m = &sd->notify.lock;
	unsigned last = ~0u;

	pthread_mutex_lock(m);
	while (!sd->stop) {
		struct timespec dl;

		ts_in(&dl, PID1_DEFER_MS);
		while (!sd->stop && pthread_cond_timedwait(&sd->cond, m, &dl) != ETIMEDOUT)
			;
		/* the same request was being timed a whole period ago */
		if (!sd->stop && sd->timing && sd->seq == last && drain_locked(sd))
			sd->forced++;
		last = sd->timing ? sd->seq : ~0u;
	}
	pthread_mutex_unlock(m);
	return NULL;
}

/* a request is timed from here: returns the count of STATUS= PID 1 has seen */
static unsigned timing_begin(struct side *sd)
{
	unsigned st;

	if (!sd->fdstore)
		return 0;
	pthread_mutex_lock(&sd->notify.lock);
	sd->timing = true;
	sd->seq++;
	st = sd->notify.sd.n_status;
	pthread_mutex_unlock(&sd->notify.lock);
	return st;
}

static void timing_end(struct side *sd)
{
	if (!sd->fdstore)
		return;
	pthread_mutex_lock(&sd->notify.lock);
	sd->timing = false;
	pthread_mutex_unlock(&sd->notify.lock);
}

/* With the fd store, after each request: PID 1 handles everything it queued, and for a change, waits
 * for vlud's STATUS= (sent once the reply is out, as the loop goes idle): the next request (of either
 * mode) starts with vlud idle and nothing of PID 1 left to do.  The time is PID 1's part plus vlud's tail
 * after its reply (drain, printed apart). */
static void settle(struct side *sd, bool change, unsigned status0)
{
	pthread_mutex_t *m = &sd->notify.lock;
	uint64_t t0, end;

	if (!sd->fdstore)
		return;
	t0 = bstat_now_ns();
	end = t0 + (uint64_t)STATUS_WAIT_MS * 1000000;
	pthread_mutex_lock(m);
	for (;;) {
		struct pollfd p = { .fd = sd->notify.sd.fd, .events = POLLIN };
		uint64_t now;

		drain_locked(sd);
		if (!change || sd->notify.sd.n_status != status0)
			break;
		now = bstat_now_ns();
		if (now >= end) {
			sd->status_timeouts++;
			break;
		}
		pthread_mutex_unlock(m);
		(void)poll(&p, 1, (int)((end - now) / 1000000) + 1);
		pthread_mutex_lock(m);
	}
	pthread_mutex_unlock(m);
	bstat_add(&sd->drain, (double)(bstat_now_ns() - t0) / 1e3);
}

enum call_op { CALL_STORE, CALL_RETRIEVE, CALL_LIST, CALL_STATUS, CALL_REMOVE };

struct call {
	enum call_op op;
	const char *const *names;
	const int *fds;
	size_t n;
	bool replace;
	const char *what; /* for an error message */
};

/* vlud's CPU time so far (us), its running slice included (unlike /proc/PID/schedstat, which is updated
 * when it stops running); -1 if unknown */
static double vlud_cpu_us(const struct side *sd)
{
	struct timespec ts;

	if (clock_gettime(sd->cpu_clock, &ts) < 0)
		return -1;
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The CPU sample of sd's last recorded request: vlud's CPU time from its start to now, the start of sd's
 * next request (vlud does nothing else in between), so that the request's tail is in it whatever the
 * mode: read right after the reply, the sample missed what vlud did after it (the held fds' closes on the
 * closer's thread, its loop going idle), about 17 us a request without the fd store and 10 us with it,
 * where settle() waited for STATUS= (measured on the 2-CPU host, --reps 100) */
static void cpu_close(struct side *sd, double now)
{
	if (sd->cpu_open && now >= 0 && now >= sd->cpu_mark)
		bstat_add(&sd->cpu, now - sd->cpu_mark);
	sd->cpu_open = false;
}

/* One request of sd, timed from the request to its reply (as the VMM sees it); vlud's CPU time over the
 * request and its tail up to sd's next request (cpu_close(); what the host's load does not inflate).
 * record: into sd->wall and, at sd's next request, sd->cpu.  Returns the request's time (us). */
static double one_call(struct side *sd, const struct call *c, bool record)
{
	bool change = c->op == CALL_STORE || c->op == CALL_REMOVE;
	int out[253]; /* SCM_MAX_FD: the most one request carries */
	json_object *j = NULL;
	double cpu0, us;
	unsigned st0;
	uint64_t t0;
	int r = -EINVAL;

	cpu0 = vlud_cpu_us(sd);
	cpu_close(sd, cpu0);
	st0 = timing_begin(sd);
	t0 = bstat_now_ns();
	switch (c->op) {
	case CALL_STORE: r = vlu_fd_store(sd->v, c->names, c->fds, c->n, c->replace); break;
	case CALL_RETRIEVE: r = vlu_fd_retrieve(sd->v, c->names, c->n, out); break;
	case CALL_LIST: r = vlu_fd_list(sd->v, NULL, &j); break;
	case CALL_STATUS: r = vlu_status(sd->v, &j); break;
	case CALL_REMOVE: r = vlu_fd_remove(sd->v, c->names, c->n, NULL); break;
	}
	us = (double)(bstat_now_ns() - t0) / 1e3;
	timing_end(sd);
	if (r < 0)
		report_call_error(sd->v, c->what, r);
	if (c->op == CALL_RETRIEVE)
		close_many(out, c->n);
	json_object_put(j);
	settle(sd, change, st0);
	if (record) {
		bstat_add(&sd->wall, us);
		sd->cpu_mark = cpu0;
		sd->cpu_open = cpu0 >= 0;
	}
	return us;
}

static json_object *samples_json(const struct bstat_samples *s)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < s->n; i++) {
		char b[32];

		snprintf(b, sizeof(b), "%.1f", s->v[i]);
		json_object_array_add(a, json_object_new_double_s(s->v[i], b));
	}
	return a;
}

/* one row of sd's table and JSON (the samples in the order taken, then the summaries) */
static json_object *row(struct side *sd, const char *op, size_t nfds, size_t held, struct bstat_samples *s,
			struct bstat_samples *cpu)
{
	struct bstat_summary m, mc = {};
	json_object *o, *raw = samples_json(s), *rawc = cpu ? samples_json(cpu) : NULL;

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
	json_object_object_add(o, "samples_us", raw);
	if (cpu) {
		bstat_summarize(cpu, &mc);
		json_object_object_add(o, "vlud_cpu_us", bstat_summary_json(&mc));
		json_object_object_add(o, "vlud_cpu_samples_us", rawc);
	}
	fprintf(sd->out, "  %-22s %5zu %5zu %6zu %10.1f %10.1f %10.1f %10.1f %9.2f", op, nfds, held, m.n, m.min, m.p50,
		m.p99, m.max, nfds ? m.p50 / (double)nfds : 0);
	if (cpu)
		fprintf(sd->out, " %9.1f %9.1f\n", mc.min, mc.p50);
	else
		fprintf(sd->out, " %9s %9s\n", "-", "-");
	bstat_reset(s);
	if (cpu)
		bstat_reset(cpu);
	return o;
}

static FILE *cmp_out;
static char *cmp_buf;
static size_t cmp_len;

static double median_of_copy(const struct bstat_samples *s, double *ret_min)
{
	struct bstat_samples c = {};
	struct bstat_summary m;

	bstat_merge(&c, s);
	bstat_summarize(&c, &m);
	bstat_done(&c);
	if (ret_min)
		*ret_min = m.min;
	return m.n ? m.p50 : NAN;
}

/* a number, or null when there was none (json-c would write NaN or Infinity, which are not JSON) */
static json_object *num_or_null(double v)
{
	return isfinite(v) ? json_object_new_double(v) : NULL;
}

/* fd store on against off for the row just measured (before row() sorts the samples): the ratio of the
 * medians and of the minima, the median of the per-pair ratios (request k of one mode against request k
 * of the other, taken next to each other) and vlud's CPU medians */
static json_object *compare(const struct side *off, const struct side *on, const char *op, size_t nfds, size_t held)
{
	struct bstat_samples pr = {};
	double on_min, off_min, on_med = median_of_copy(&on->wall, &on_min);
	double off_med = median_of_copy(&off->wall, &off_min);
	double on_cpu = median_of_copy(&on->cpu, NULL), off_cpu = median_of_copy(&off->cpu, NULL), pmed;
	json_object *o = json_object_new_object();

	for (size_t k = 0; k < on->wall.n && k < off->wall.n; k++)
		if (off->wall.v[k] > 0)
			bstat_add(&pr, on->wall.v[k] / off->wall.v[k]);
	pmed = median_of_copy(&pr, NULL);
	bstat_done(&pr);
	json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "nfds", json_object_new_int64((int64_t)nfds));
	json_object_object_add(o, "held", json_object_new_int64((int64_t)held));
	json_object_object_add(o, "on_median_us", num_or_null(on_med));
	json_object_object_add(o, "off_median_us", num_or_null(off_med));
	json_object_object_add(o, "ratio_medians", num_or_null(on_med / off_med));
	json_object_object_add(o, "on_min_us", num_or_null(on_min));
	json_object_object_add(o, "off_min_us", num_or_null(off_min));
	json_object_object_add(o, "ratio_minima", num_or_null(on_min / off_min));
	json_object_object_add(o, "paired_ratio_median", num_or_null(pmed));
	json_object_object_add(o, "on_vlud_cpu_median_us", num_or_null(on_cpu));
	json_object_object_add(o, "off_vlud_cpu_median_us", num_or_null(off_cpu));
	fprintf(cmp_out, "  %-22s %5zu %5zu %10.1f %10.1f %7.2f %10.1f %10.1f %7.2f %8.2f %9.1f %9.1f\n", op, nfds,
		held, on_med, off_med, on_med / off_med, on_min, off_min, on_min / off_min, pmed, on_cpu, off_cpu);
	return o;
}

/* reps requests on each side, alternating (pair k: plain first when k is even) */
static void step(struct side *sides, const struct call *c, unsigned n, const char *op, size_t nfds, size_t held,
		 json_object *cmp)
{
	for (unsigned k = 0; k < n; k++)
		for (unsigned j = 0; j < 2; j++)
			one_call(&sides[(j + k) & 1], c, true);
	/* the last request of each side: its tail done (as a next request would find it: the other side's
	 * request and settle() take longer than this) */
	(void)usleep(STEP_TAIL_MS * 1000);
	for (unsigned j = 0; j < 2; j++)
		cpu_close(&sides[j], vlud_cpu_us(&sides[j]));
	json_object_array_add(cmp, compare(&sides[0], &sides[1], op, nfds, held));
	for (unsigned j = 0; j < 2; j++)
		json_object_array_add(sides[j].rows, row(&sides[j], op, nfds, held, &sides[j].wall, &sides[j].cpu));
}

static void side_start(struct side *sd, const char *mode, bool fdstore)
{
	_cleanup_free_ char *cfg = NULL;
	struct integ_daemon_opts o = {};
	unsigned st0 = 0;
	int r;

	*sd = (struct side){ .mode = mode, .fdstore = fdstore, .notify = { .sd.fd = -EBADF } };
	sd->dir = integ_mkdtemp("bench-fd");
	if (!sd->dir)
		die("mkdtemp", -errno);
	sd->rows = json_object_new_array();
	sd->out = open_memstream(&sd->outbuf, &sd->outlen);
	if (!sd->out)
		die("open_memstream", -errno);
	cfg = integ_default_config(sd->dir, "\"limits\": { \"max_fds_per_message\": 253, "
					    "\"max_fds_per_instance\": 4096, \"max_message_bytes\": 1048576, "
					    "\"max_connections\": 1024, \"idle_timeout_ms\": 0 }");
	o.config_json = cfg;
	if (fdstore) {
		r = integ_notify_open(&sd->notify, sd->dir);
		if (r < 0)
			die("notify socket", r);
		o.notify = &sd->notify;
	}
	r = integ_daemon_start(&sd->d, sd->dir, &o);
	if (r < 0)
		die("start vlud", r);
	r = integ_daemon_wait_ready(&sd->d, 10000);
	if (r < 0) {
		integ_daemon_dump_log(&sd->d);
		die("vlud not ready", r);
	}
	/* both daemons on one CPU: on this 2-CPU host, a daemon that the scheduler keeps on the CPU the other
	 * load is on runs its requests up to 2.8x slower (fd.retrieve, which the fd store does not touch, in
	 * 3 of 5 runs), which is where each daemon ran, not its mode */
	if (daemon_cpu >= 0) {
		cpu_set_t cs;

		CPU_ZERO(&cs);
		CPU_SET(daemon_cpu, &cs);
		if (sched_setaffinity(sd->d.pid, sizeof(cs), &cs) < 0)
			die("sched_setaffinity", -errno);
	}
	r = clock_getcpuclockid(sd->d.pid, &sd->cpu_clock);
	if (r != 0)
		die("clock_getcpuclockid", -r);
	if (fdstore) {
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&sd->cond, &ca);
		pthread_condattr_destroy(&ca);
		r = pthread_create(&sd->watch, NULL, pid1_watch, sd);
		if (r != 0)
			die("PID 1 watchdog thread", -r);
		sd->watch_running = true;
	}
	r = vlu_connect(sd->d.sock, 5000, &sd->v);
	if (r < 0)
		die("vlu_connect", r);
	if (fdstore) {
		pthread_mutex_lock(&sd->notify.lock);
		drain_locked(sd);
		st0 = sd->notify.sd.n_status;
		pthread_mutex_unlock(&sd->notify.lock);
	}
	r = vlu_register(sd->v, "bench", false);
	if (r < 0)
		report_call_error(sd->v, "register", r);
	/* the registration's STATUS= handled too: the first timed request starts from a quiet PID 1 */
	settle(sd, true, st0);
	bstat_reset(&sd->drain);
}

/* stop sd's daemon; its table on stdout; its JSON object */
static json_object *side_stop(struct side *sd)
{
	json_object *res = json_object_new_object(), *h = json_object_new_object();

	vlu_close(TAKE_PTR(sd->v));
	fclose(sd->out);
	printf("mode %s (%s)\n", sd->mode,
	       sd->fdstore ? "NOTIFY_SOCKET set: every held fd also goes to the fd store" : "no fd store");
	printf("  %-22s %5s %5s %6s %10s %10s %10s %10s %9s %9s %9s\n", "operation", "nfds", "held", "reps", "min_us",
	       "median_us", "p99_us", "max_us", "us/fd", "cpu_min", "cpu_med");
	fwrite(sd->outbuf, 1, sd->outlen, stdout);
	free(sd->outbuf);
	printf("  held %d fds: store all %.1f ms (%d messages), remove all %.1f ms (requests only); "
	       "vlud RSS %ld -> %ld kB, open fds %ld -> %ld\n", HELD_N, sd->store_all_us / 1e3, HELD_N / HELD_BATCH,
	       sd->remove_all_us / 1e3, sd->rss0, sd->rss1, sd->nfd0, sd->nfd1);
	json_object_object_add(h, "n", json_object_new_int(HELD_N));
	json_object_object_add(h, "messages", json_object_new_int(HELD_N / HELD_BATCH));
	json_object_object_add(h, "store_all_ms", json_object_new_double(sd->store_all_us / 1e3));
	json_object_object_add(h, "remove_all_ms", json_object_new_double(sd->remove_all_us / 1e3));
	json_object_object_add(h, "vlud_rss_kb_before", json_object_new_int64(sd->rss0));
	json_object_object_add(h, "vlud_rss_kb_held", json_object_new_int64(sd->rss1));
	json_object_object_add(h, "vlud_fds_before", json_object_new_int64(sd->nfd0));
	json_object_object_add(h, "vlud_fds_held", json_object_new_int64(sd->nfd1));
	json_object_object_add(res, "held", h);
	if (sd->fdstore) {
		struct bstat_summary m;
		unsigned stored, removed, errors;

		pthread_mutex_lock(&sd->notify.lock);
		drain_locked(sd);
		stored = sd->notify.sd.n_stored_total;
		removed = sd->notify.sd.n_removed_total;
		errors = sd->notify.sd.n_errors;
		sd->stop = true;
		pthread_cond_broadcast(&sd->cond);
		pthread_mutex_unlock(&sd->notify.lock);
		pthread_join(sd->watch, NULL);
		sd->watch_running = false;
		json_object_object_add(res, "fdstore_stored_total", json_object_new_int64(stored));
		json_object_object_add(res, "fdstore_removed_total", json_object_new_int64(removed));
		json_object_object_add(res, "fdstore_errors", json_object_new_int64(errors));
		bstat_summarize(&sd->drain, &m);
		printf("  PID 1 (stand-in) after each request, until vlud's STATUS= for a change: %zu drains, "
		       "median %.1f us, max %.1f us (not in the times above); handled during a request: %u, "
		       "STATUS= not seen within %d ms: %u\n", m.n, m.p50, m.max, sd->forced, STATUS_WAIT_MS,
		       sd->status_timeouts);
		json_object_object_add(res, "pid1_drain_us", bstat_summary_json(&m));
		json_object_object_add(res, "pid1_forced", json_object_new_int64(sd->forced));
		json_object_object_add(res, "status_timeouts", json_object_new_int64(sd->status_timeouts));
		printf("  fd store: %u fds pushed, %u removed, %u errors\n", stored, removed, errors);
	}
	integ_daemon_stop(&sd->d, SIGTERM, 5000);
	if (sd->fdstore) {
		integ_notify_close(&sd->notify);
		pthread_cond_destroy(&sd->cond);
	}
	json_object_object_add(res, "mode", json_object_new_string(sd->mode));
	json_object_object_add(res, "rows", sd->rows);
	integ_rmrf(sd->dir);
	free(TAKE_PTR(sd->dir));
	bstat_done(&sd->wall);
	bstat_done(&sd->cpu);
	bstat_done(&sd->drain);
	return res;
}

/* the fd rows of both modes, side by side; appends the two modes to modes, returns the comparison */
static json_object *run_fd(json_object *modes)
{
	static const size_t sizes[] = { 1, 16, 253 };
	struct side sides[2] = {};
	struct bstat_samples s = {};
	json_object *cmp = json_object_new_array();

	{
		cpu_set_t cs;

		/* the last CPU this program may use (make's jobs and the shell tend to start on the first) */
		if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
			for (int c = CPU_SETSIZE - 1; c >= 0 && daemon_cpu < 0; c--)
				if (CPU_ISSET(c, &cs))
					daemon_cpu = c;
		printf("# fd rows: both daemons at once on CPU %d, the two modes alternating request by request\n",
		       daemon_cpu);
	}
	live_sides = sides;
	n_live_sides = 2;
	side_start(&sides[0], "plain", false);
	side_start(&sides[1], "fdstore", true);
	cmp_out = open_memstream(&cmp_buf, &cmp_len);
	if (!cmp_out)
		die("open_memstream", -errno);
	for (size_t si = 0; si < ELEMENTSOF(sizes); si++) {
		size_t n = sizes[si];
		int *fds = make_memfds(n);
		char **names = make_names("f", n);
		struct call st = { CALL_STORE, (const char *const *)names, fds, n, true, "fd.store" };
		struct call rt = { CALL_RETRIEVE, (const char *const *)names, NULL, n, false, "fd.retrieve" };
		struct call rm = { CALL_REMOVE, (const char *const *)names, NULL, n, false, "fd.remove" };

		bench_raw(n, fds, &s);
		json_object_array_add(sides[0].rows, row(&sides[0], "kernel-scm-roundtrip", n, 0, &s, NULL));
		step(sides, &st, reps, "fd.store", n, n, cmp);
		step(sides, &rt, reps, "fd.retrieve", n, n, cmp);
		for (unsigned j = 0; j < 2; j++)
			one_call(&sides[j], &rm, false);
		close_many(fds, n);
		free(fds);
		free_names(names, n);
	}

	/* 1000 held fds (the same memfds in both daemons) */
	{
		int *fds = make_memfds(HELD_N);
		char **names = make_names("h", HELD_N);
		const char *one[] = { "x" };
		int xfd = memfd_create("bench-x", MFD_CLOEXEC);
		struct call x = { CALL_STORE, one, &xfd, 1, true, "fd.store (1 with 1000 held)" };
		struct call xr = { CALL_RETRIEVE, one, NULL, 1, false, "fd.retrieve (1 with 1000 held)" };
		struct call ls = { CALL_LIST, NULL, NULL, 0, false, "fd.list (1000 held)" };
		struct call stt = { CALL_STATUS, NULL, NULL, 0, false, "status" };

		for (unsigned j = 0; j < 2; j++) {
			sides[j].rss0 = bstat_proc_status_kb(sides[j].d.pid, "VmRSS");
			sides[j].nfd0 = bstat_proc_nfds(sides[j].d.pid);
		}
		for (size_t i = 0; i < HELD_N; i += HELD_BATCH)
			for (unsigned j = 0; j < 2; j++) {
				struct side *sd = &sides[(j + i / HELD_BATCH) & 1];
				struct call b = { CALL_STORE, (const char *const *)names + i, fds + i, HELD_BATCH,
						  false, "fd.store (held)" };

				sd->store_all_us += one_call(sd, &b, false);
			}
		for (unsigned j = 0; j < 2; j++) {
			sides[j].rss1 = bstat_proc_status_kb(sides[j].d.pid, "VmRSS");
			sides[j].nfd1 = bstat_proc_nfds(sides[j].d.pid);
		}
		step(sides, &x, reps, "fd.store", 1, HELD_N + 1, cmp);
		step(sides, &xr, reps, "fd.retrieve", 1, HELD_N + 1, cmp);
		step(sides, &ls, reps / 4 + 1, "fd.list", 0, HELD_N + 1, cmp);
		step(sides, &stt, reps, "status", 0, HELD_N + 1, cmp);
		for (size_t i = 0; i < HELD_N; i += HELD_BATCH)
			for (unsigned j = 0; j < 2; j++) {
				struct side *sd = &sides[(j + i / HELD_BATCH) & 1];
				struct call b = { CALL_REMOVE, (const char *const *)names + i, NULL, HELD_BATCH, false,
						  "fd.remove (held)" };

				sd->remove_all_us += one_call(sd, &b, false);
			}
		close_many(fds, HELD_N);
		free(fds);
		free_names(names, HELD_N);
		safe_close(xfd);
	}
	fclose(cmp_out);
	for (unsigned j = 0; j < 2; j++)
		json_object_array_add(modes, side_stop(&sides[j]));
	n_live_sides = 0;
	live_sides = NULL;
	printf("fd store on / off, the same requests side by side: medians, minima (us), the median of the per-pair "
	       "ratios, vlud's CPU per request (median, us)\n");
	printf("  %-22s %5s %5s %10s %10s %7s %10s %10s %7s %8s %9s %9s\n", "operation", "nfds", "held", "med_on",
	       "med_off", "x_med", "min_on", "min_off", "x_min", "x_pairs", "cpu_on", "cpu_off");
	fwrite(cmp_buf, 1, cmp_len, stdout);
	free(cmp_buf);
	bstat_done(&s);
	return cmp;
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
	live_rec = &d;
	live_rec_dir = dir;
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
	live_rec = NULL;
	live_rec_dir = NULL;
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

/* atexit: the daemons still running (an error ended the program) killed, their directories removed */
static void stop_left(void)
{
	for (unsigned j = 0; j < n_live_sides; j++) {
		struct side *sd = &live_sides[j];

		if (sd->d.pid > 0) {
			(void)kill(sd->d.pid, SIGKILL);
			(void)waitpid(sd->d.pid, NULL, 0);
			sd->d.pid = 0;
		}
		if (sd->dir)
			integ_rmrf(sd->dir);
	}
	if (live_rec && live_rec->pid > 0) {
		(void)kill(live_rec->pid, SIGKILL);
		(void)waitpid(live_rec->pid, NULL, 0);
		live_rec->pid = 0;
	}
	if (live_rec_dir)
		integ_rmrf(live_rec_dir);
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
	(void)atexit(stop_left);
	bstat_raise_nofile();
	printf("# bench-fd: fd handoff through vlud (%s), %u repetitions per row, times per request/reply round trip\n",
	       integ_prog("vlud"), reps);
	if (!only || strcmp(only, "fd") == 0) {
		json_object_object_add(doc, "fdstore_vs_plain", run_fd(modes));
		/* how the two modes of the fd rows were taken (before 2026-12-03: one after the other) */
		json_object_object_add(doc, "schedule", json_object_new_string("interleaved"));
		json_object_object_add(doc, "daemon_cpu", json_object_new_int(daemon_cpu));
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
