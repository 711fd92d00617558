/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * closer.h - close fds off the event loop, in lanes that cannot hold each other up.
 *
 * close() can block for as long as somebody else wants: the last reference of a vhost-vdpa fd runs
 * the kernel's release (reset, and with PA pinning the unpinning of all guest RAM: seconds for a
 * large VM), and an fd a client supplied can be anything it could send: a TCP socket with SO_LINGER
 * and unsent data, a unix socket whose queue carries such a socket, a FUSE or NFS file.  vlud is one
 * libev loop, so no such close may run on it, and one owner's slow close must not delay another's.
 *
 * Lanes: the DEVICE lane closes the device fds vlud opened itself (device.open: their close is bounded
 * by the kernel's release); each client uid has a lane of its own for every fd that uid's peers
 * supplied (received in a message, stored, or the duplicates queued to them) and for its connection
 * sockets (their receive queue may carry such fds).  Each lane is FIFO with its own worker thread,
 * started when the lane gets a job and ended when it is empty, so a blocked close stalls only the
 * lane of the uid that sent the fd.  Completions are reported on the loop (eventfd + ev_io).  A
 * close that takes longer than CLOSER_SLOW_US is logged with its lane and owner.
 *
 * Fd ownership: the closer owns an fd from the moment it is passed in (on every return path: a
 * failure to queue closes it synchronously).  The caller must not touch the fd number afterwards.
 */
#ifndef VLUD_CLOSER_H
#define VLUD_CLOSER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct closer_job;

#define CLOSER_SLOW_US (1000 * 1000)

/* Called on the loop once every fd of the job is closed; close_us: wall time the worker spent in
 * the job's close() calls. */
typedef void (*closer_done_fn)(void *userdata, int64_t close_us);

/* Set up the completion eventfd and its watcher on vl.loop (else done on first use).  0, or a
 * negative errno (logged): the closes then run synchronously. */
int closer_init(void);

/* DEVICE lane: queue fds[0..n) (n <= 64, device fds vlud opened; owned by the closer from this call
 * on, the array entries set to -EBADF).  done (optional) is called on the loop when all are closed,
 * unless cancelled.  ret (optional): the job, for closer_cancel(), valid until done runs or it is
 * cancelled.  0, or a negative errno when it could not be queued: the fds were closed synchronously
 * and done is NOT called. */
int closer_close(int *fds, size_t n, closer_done_fn done, void *userdata, struct closer_job **ret);

/* One device fd, DEVICE lane, no completion callback. */
void closer_close_fd(int fd);

/* The lane of uid: fds[0..n) that a peer of uid supplied (any n: split into jobs), entries set to
 * -EBADF.  owner: what they belonged to, for the log (an instance name, "connection 12"...). */
void closer_close_client(uid_t uid, const char *owner, int *fds, size_t n);
/* One fd, the lane of uid. */
void closer_close_client_fd(uid_t uid, const char *owner, int fd);

/* Fds of uid's lane not closed yet (queued or being closed): the caller stops reading from a uid
 * whose backlog is large, so that blocked closes cannot fill vlud's fd table. */
unsigned closer_client_backlog(uid_t uid);

/* done will not be called (the fds still close).  j may be NULL. */
void closer_cancel(struct closer_job *j);

/* DEVICE lane jobs queued and not yet completed on the loop. */
unsigned closer_pending(void);

/* Block until every queued DEVICE close has been done (completions run): for device.open that got
 * EBUSY while a device release is pending.  Never waits for a client lane. */
void closer_flush(void);

/* Daemon exit: finish the DEVICE lane (no device is left half released), wait at most wait_ms for the
 * client lanes, log those still blocked (their closes end when the process exits: the kernel skips
 * SO_LINGER for an exiting task and a fatal signal ends the other waits), run the completions. */
void closer_shutdown(unsigned wait_ms);

#endif
