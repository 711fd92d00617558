/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * closer.h - close fds off the event loop.
 *
 * close() of the last reference of a vhost-vdpa fd runs the kernel's release: reset, and with PA
 * pinning the unpinning of all guest RAM (seconds for a large VM).  vlud is one libev loop, so such
 * a close would stall every client.  The closer closes fds in one worker thread (FIFO) and reports
 * a job's completion on the loop (eventfd watched by an ev_io).
 *
 * Fd ownership: the closer owns an fd from the moment it is passed to closer_close() (on every
 * return path: a failure to queue closes it synchronously before returning).  The caller must not
 * touch the fd number afterwards.
 */
#ifndef VLUD_CLOSER_H
#define VLUD_CLOSER_H

#include <stddef.h>
#include <stdint.h>

struct closer_job;

/* Called on the loop once every fd of the job is closed; close_us: wall time the worker spent in
 * the job's close() calls. */
typedef void (*closer_done_fn)(void *userdata, int64_t close_us);

/* Start the worker thread and the eventfd watcher on vl.loop (else done on first use).  0, or a
 * negative errno (logged): closer_close() then closes synchronously. */
int closer_init(void);

/* Queue fds[0..n) for closing (n <= 64; the fds are owned by the closer from this call on, and the
 * array entries are set to -EBADF).  done (optional) is called on the loop when all are closed,
 * unless cancelled.  ret (optional): the job, for closer_cancel(), valid until done runs or it is
 * cancelled.  0, or a negative errno when it could not be queued: the fds were closed synchronously
 * and done is NOT called. */
int closer_close(int *fds, size_t n, closer_done_fn done, void *userdata, struct closer_job **ret);

/* One fd, no completion callback (the held-fd destroy path). */
void closer_close_fd(int fd);

/* done will not be called (the fds still close).  j may be NULL. */
void closer_cancel(struct closer_job *j);

/* Jobs queued and not yet completed on the loop. */
unsigned closer_pending(void);

/* Block until every queued close has been done (completions run).  For the rare caller that needs
 * a node free now (device.open got EBUSY while closes are pending) and for shutdown. */
void closer_flush(void);

/* Daemon exit: finish the pending closes, stop the worker; completions of not-cancelled jobs run. */
void closer_shutdown(void);

#endif
