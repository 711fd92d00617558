/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * closer.c - close fds in a worker thread (see closer.h).
 *
 * One worker, started on first use, takes jobs FIFO from `queue`, close()s their fds (the only thing
 * it does: it touches no daemon state), moves them to `done` and signals the eventfd; the loop's
 * ev_io pops `done` one job at a time and runs the completions.  Both lists and the worker flags are
 * protected by `lock`; everything else (pending, the callbacks, cancelled) is loop-thread only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "closer.h"
#include "vlud.h"

#define CLOSER_MAX_FDS 64

struct closer_job {
	struct list link; /* in C.queue, then C.done */
	int fds[CLOSER_MAX_FDS]; /* owned by the closer (closed by the worker) */
	size_t n;
	closer_done_fn done;
	void *userdata;
	int64_t close_us; /* written by the worker before the job moves to done */
	bool cancelled;	  /* loop thread only */
};

static struct {
	bool started;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work; /* the worker waits for a job or stop */
	pthread_cond_t idle; /* closer_flush() waits for the queue to drain */
	struct list queue;   /* under lock */
	struct list done;    /* under lock */
	bool busy, stop;     /* under lock */
	int efd;	     /* owned: eventfd, worker -> loop */
	ev_io io;
	unsigned pending;    /* loop thread: queued and not yet completed */
} C = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.efd = -EBADF,
};

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&C.lock);
	for (;;) {
		struct closer_job *j;
		int64_t t0;

		while (list_empty(&C.queue) && !C.stop)
			pthread_cond_wait(&C.work, &C.lock);
		if (list_empty(&C.queue))
			break; /* stop, and nothing left */
		j = list_entry(C.queue.next, struct closer_job, link);
		list_del(&j->link);
		C.busy = true;
		pthread_mutex_unlock(&C.lock);

		t0 = now_monotonic_us();
		for (size_t i = 0; i < j->n; i++)
			j->fds[i] = safe_close(j->fds[i]);
		j->close_us = now_monotonic_us() - t0;

		pthread_mutex_lock(&C.lock);
		list_add_tail(&C.done, &j->link);
		C.busy = false;
		if (list_empty(&C.queue))
			pthread_cond_broadcast(&C.idle);
		{
			uint64_t one = 1;

			(void)!write(C.efd, &one, sizeof(one));
		}
	}
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
	sigset_t all, old;
	int k;

	if (C.started)
		return 0;
	list_init(&C.queue);
	list_init(&C.done);
	C.stop = false;
	C.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (C.efd < 0)
		return -errno;
	/* the worker takes no signals: they stay with the loop's thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	k = pthread_create(&C.thread, NULL, worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (k != 0) {
		C.efd = safe_close(C.efd);
		return -k;
	}
	(void)pthread_setname_np(C.thread, "vlud-closer");
	ev_io_init(&C.io, efd_cb, C.efd, EV_READ);
	ev_io_start(vl.loop, &C.io);
	C.started = true;
	return 0;
}

int closer_init(void)
{
	int k = start();

	if (k < 0)
		log_warning("closer: cannot start the worker thread: %s (fds close on the loop)", strerror(-k));
	return k;
}

int closer_close(int *fds, size_t n, closer_done_fn done, void *userdata, struct closer_job **ret)
{
	struct closer_job *j = NULL;
	int k = -EINVAL;

	if (ret)
		*ret = NULL;
	if (n <= CLOSER_MAX_FDS && vl.loop) {
		k = start();
		if (k == 0) {
			j = calloc(1, sizeof(*j));
			if (!j)
				k = -ENOMEM;
		}
	}
	if (k < 0) {
		log_warning("closer: closing %zu fds on the loop: %s", n, strerror(-k));
		close_many(fds, n);
		return k;
	}
	/* from here the closer owns the fds */
	for (size_t i = 0; i < n; i++) {
		j->fds[i] = fds[i];
		fds[i] = -EBADF;
	}
	j->n = n;
	j->done = done;
	j->userdata = userdata;
	C.pending++;
	pthread_mutex_lock(&C.lock);
	list_add_tail(&C.queue, &j->link);
	pthread_cond_signal(&C.work);
	pthread_mutex_unlock(&C.lock);
	if (ret)
		*ret = j;
	return 0;
}

void closer_close_fd(int fd)
{
	if (fd < 0)
		return;
	(void)closer_close(&fd, 1, NULL, NULL, NULL);
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
	while (!list_empty(&C.queue) || C.busy)
		pthread_cond_wait(&C.idle, &C.lock);
	pthread_mutex_unlock(&C.lock);
	complete();
}

void closer_shutdown(void)
{
	if (!C.started)
		return;
	if (C.pending)
		log_info("closer: finishing %u pending close jobs before exit", C.pending);
	pthread_mutex_lock(&C.lock);
	C.stop = true;
	pthread_cond_signal(&C.work);
	pthread_mutex_unlock(&C.lock);
	pthread_join(C.thread, NULL); /* the worker drains the queue before it stops */
	complete();
	ev_io_stop(vl.loop, &C.io);
	C.efd = safe_close(C.efd);
	C.started = false;
}
