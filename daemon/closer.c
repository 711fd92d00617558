/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * closer.c - close fds in worker threads, one lane per owner (see closer.h).
 *
 * A lane is a FIFO of jobs and at most one worker thread.  closer_close*() appends a job to its lane
 * and starts the lane's worker if none runs; the worker close()s the jobs' fds (the only thing it
 * does: it touches no daemon state), moves each job to `done` and signals the eventfd; it ends when
 * its lane is empty (a client lane is freed then).  The loop's ev_io pops `done` one job at a time
 * and runs the completions.  The lanes, their queues, `done` and the worker flags are protected by
 * `lock`; pending, the callbacks and `cancelled` are loop-thread only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "closer.h"
#include "vlud.h"

#define CLOSER_MAX_FDS 64

struct lane {
	struct list link;	/* in C.lanes (client lanes only) */
	bool device;
	uid_t uid;		/* client lanes */
	struct list queue;	/* jobs, under lock */
	bool running;		/* a worker serves the lane, under lock */
	unsigned backlog;	/* fds queued or being closed, under lock */
};

struct closer_job {
	struct list link; /* in its lane's queue, then C.done */
	struct lane *lane;
	int fds[CLOSER_MAX_FDS]; /* owned by the closer (closed by the worker) */
	size_t n;
	char owner[80];
	closer_done_fn done;
	void *userdata;
	int64_t close_us; /* written by the worker before the job moves to done */
	bool device;	  /* a DEVICE lane job (C.pending counts those) */
	bool cancelled;	  /* loop thread only */
};

static struct {
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t idle;   /* a lane ran empty */
	struct lane dev;       /* the DEVICE lane */
	struct list lanes;     /* client lanes, under lock */
	struct list done;      /* under lock */
	unsigned workers;      /* running worker threads, under lock */
	int efd;	       /* owned: eventfd, workers -> loop */
	ev_io io;
	unsigned pending;      /* loop thread: DEVICE jobs queued and not yet completed */
} C = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.dev = { .device = true },
	.efd = -EBADF,
};

static const char *lane_name(const struct lane *l, char *buf, size_t len)
{
	if (l->device)
		snprintf(buf, len, "devices");
	else
		snprintf(buf, len, "uid %u", (unsigned)l->uid);
	return buf;
}

static void *worker(void *arg)
{
	struct lane *l = arg;

	pthread_mutex_lock(&C.lock);
	while (!list_empty(&l->queue)) {
		struct closer_job *j = list_entry(l->queue.next, struct closer_job, link);
		int64_t t0;

		list_del(&j->link);
		pthread_mutex_unlock(&C.lock);

		t0 = now_monotonic_us();
		for (size_t i = 0; i < j->n; i++)
			j->fds[i] = safe_close(j->fds[i]);
		j->close_us = now_monotonic_us() - t0;
		if (j->close_us > CLOSER_SLOW_US) {
			char ln[32];

			log_warning("closer: closing %zu fd%s of %s (lane %s) took %lld ms", j->n, j->n == 1 ? "" : "s",
				    j->owner, lane_name(l, ln, sizeof(ln)), (long long)(j->close_us / 1000));
		}

		pthread_mutex_lock(&C.lock);
		l->backlog -= (unsigned)j->n;
		list_add_tail(&C.done, &j->link);
		{
			uint64_t one = 1;

			(void)!write(C.efd, &one, sizeof(one));
		}
	}
	l->running = false;
	if (!l->device) {
		list_del(&l->link);
		free(l);
	}
	C.workers--;
	pthread_cond_broadcast(&C.idle);
	pthread_mutex_unlock(&C.lock);
	return NULL;
}

/* run the completions of the closed jobs, one at a time (a completion may queue or flush again) */
static void complete(void)
{
	for (;;) {
		struct closer_job *j = NULL;

		pthread_mutex_lock(&C.lock);
		if (!list_empty(&C.done)) {
			j = list_entry(C.done.next, struct closer_job, link);
			list_del(&j->link);
		}
		pthread_mutex_unlock(&C.lock);
		if (!j)
			return;
		if (j->device)
			C.pending--;
		if (!j->cancelled && j->done)
			j->done(j->userdata, j->close_us);
		free(j);
	}
}

static void efd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	uint64_t v;

	(void)loop;
	(void)w;
	(void)revents;
	(void)!read(C.efd, &v, sizeof(v));
	complete();
}

static int start(void)
{
	if (C.started)
		return 0;
	if (!vl.loop)
		return -EINVAL;
	list_init(&C.dev.queue);
	list_init(&C.lanes);
	list_init(&C.done);
	C.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (C.efd < 0)
		return -errno;
	ev_io_init(&C.io, efd_cb, C.efd, EV_READ);
	ev_io_start(vl.loop, &C.io);
	C.started = true;
	return 0;
}

int closer_init(void)
{
	int k = start();

	if (k < 0)
		log_warning("closer: cannot set up: %s (fds close on the loop)", strerror(-k));
	return k;
}

/* under lock: the lane of uid, created if missing (NULL: out of memory) */
static struct lane *client_lane(uid_t uid, bool create)
{
	struct list *p;
	struct lane *l;

	for (p = C.lanes.next; p != &C.lanes; p = p->next) {
		l = list_entry(p, struct lane, link);
		if (l->uid == uid)
			return l;
	}
	if (!create)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->uid = uid;
	list_init(&l->queue);
	list_add_tail(&C.lanes, &l->link);
	return l;
}

/* under lock: append j to l and make sure a worker serves l.  0 or -errno (j not queued). */
static int enqueue(struct lane *l, struct closer_job *j)
{
	j->lane = l;
	list_add_tail(&l->queue, &j->link);
	l->backlog += (unsigned)j->n;
	if (!l->running) {
		sigset_t all, old;
		pthread_attr_t attr;
		pthread_t t;
		int k;

		/* the workers take no signals: they stay with the loop's thread */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		k = pthread_create(&t, &attr, worker, l);
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (k != 0) {
			list_del(&j->link);
			l->backlog -= (unsigned)j->n;
			return -k;
		}
		l->running = true;
		C.workers++;
		(void)pthread_setname_np(t, l->device ? "vlud-close-dev" : "vlud-close-uid");
	}
	return 0;
}

/* Queue one job (n <= CLOSER_MAX_FDS) on the DEVICE lane (device) or the lane of uid. */
static int submit(bool device, uid_t uid, const char *owner, int *fds, size_t n, closer_done_fn done,
		  void *userdata, struct closer_job **ret)
{
	struct closer_job *j = NULL;
	struct lane *l = NULL;
	int k = -EINVAL;

	if (ret)
		*ret = NULL;
	if (n <= CLOSER_MAX_FDS && (k = start()) == 0 && !(j = calloc(1, sizeof(*j))))
		k = -ENOMEM;
	if (k == 0) {
		for (size_t i = 0; i < n; i++)
			j->fds[i] = fds[i];
		j->n = n;
		j->done = done;
		j->userdata = userdata;
		j->device = device;
		snprintf(j->owner, sizeof(j->owner), "%s", owner ? owner : "?");
		pthread_mutex_lock(&C.lock);
		l = device ? &C.dev : client_lane(uid, true);
		k = l ? enqueue(l, j) : -ENOMEM;
		pthread_mutex_unlock(&C.lock);
	}
	if (k < 0) {
		/* the loop closes them, as before the closer existed: logged, it should never happen */
		log_warning("closer: closing %zu fds of %s on the loop: %s", n, owner ? owner : "?", strerror(-k));
		free(j);
		close_many(fds, n);
		return k;
	}
	for (size_t i = 0; i < n; i++)
		fds[i] = -EBADF;
	if (device)
		C.pending++;
	if (ret)
		*ret = j;
	return 0;
}

int closer_close(int *fds, size_t n, closer_done_fn done, void *userdata, struct closer_job **ret)
{
	return submit(true, 0, "device release", fds, n, done, userdata, ret);
}

void closer_close_fd(int fd)
{
	if (fd >= 0)
		(void)submit(true, 0, "device", &fd, 1, NULL, NULL, NULL);
}

void closer_close_client(uid_t uid, const char *owner, int *fds, size_t n)
{
	while (n > 0) {
		size_t k = n < CLOSER_MAX_FDS ? n : CLOSER_MAX_FDS;

		(void)submit(false, uid, owner, fds, k, NULL, NULL, NULL);
		fds += k;
		n -= k;
	}
}

void closer_close_client_fd(uid_t uid, const char *owner, int fd)
{
	if (fd >= 0)
		closer_close_client(uid, owner, &fd, 1);
}

unsigned closer_client_backlog(uid_t uid)
{
	struct lane *l;
	unsigned n;

	if (!C.started)
		return 0;
	pthread_mutex_lock(&C.lock);
	l = client_lane(uid, false);
	n = l ? l->backlog : 0;
	pthread_mutex_unlock(&C.lock);
	return n;
}

void closer_cancel(struct closer_job *j)
{
	if (j)
		j->cancelled = true;
}

unsigned closer_pending(void)
{
	return C.pending;
}

void closer_flush(void)
{
	if (!C.started)
		return;
	pthread_mutex_lock(&C.lock);
	while (C.dev.running)
		pthread_cond_wait(&C.idle, &C.lock);
	pthread_mutex_unlock(&C.lock);
	complete();
}

void closer_shutdown(unsigned wait_ms)
{
	struct timespec until;
	struct list *p;

	if (!C.started)
		return;
	if (C.pending)
		log_info("closer: finishing %u pending device release jobs before exit", C.pending);
	closer_flush();
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&C.lock);
	while (C.workers > 0 && pthread_cond_timedwait(&C.idle, &C.lock, &until) == 0)
		;
	for (p = C.lanes.next; p != &C.lanes; p = p->next) {
		struct lane *l = list_entry(p, struct lane, link);

		log_warning("closer: %u fds of uid %u still closing at exit (a close that blocks: it ends with the "
			    "process)", l->backlog, (unsigned)l->uid);
	}
	pthread_mutex_unlock(&C.lock);
	complete();
	/* the eventfd and its watcher stay until exit: a worker still blocked may signal it */
}
