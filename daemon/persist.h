/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * persist.h - restart survival through systemd's fd store (only when
 * NOTIFY_SOCKET is set): every held fd is stored as "h<id>" (or, the memfds
 * of one change, together as "g<group>"), the state memfd as "state" (a
 * document and an append-only log of held-fd changes, compacted).
 */
#ifndef VLUD_PERSIST_H
#define VLUD_PERSIST_H

#include <stdbool.h>

#include "fdtype.h"

struct held;

/* Start-up: adopt listening socket, state and held fds from LISTEN_FDS (validating each), set up the
 * state memfd.  Sets vl.listen_fd when a listening socket was passed.  Returns 0 or -errno (fatal). */
int persist_start(void);

/* Whether held fds of type t go to the fd store (devices, memfds, eventfds): anything else a rule
 * may allow is held in memory only and does not survive a restart of vlud. */
bool persist_storable(enum vlud_fd_type t);

/* fd store bookkeeping for one held fd (no-ops without the store). */
/* persist_fd_add may mark h as an alias (h->alias_of) of a held fd with the same open file
 * description, which systemd would not store twice; persist_fd_remove of such a primary stores its
 * first alias in its place (and rewrites the state). */
/* persist_fd_add only queues h: persist_fds_commit() (or persist_state_write()) pushes the queued fds to
 * the store and names them in the state. */
void persist_fd_add(struct held *h);
void persist_fd_remove(struct held *h);
/* held_unlink/held_relink: the state forgets h / names it again (records buffered until the commit) */
void persist_fd_unlink(struct held *h);
void persist_fd_relink(struct held *h);
/* The end of a change of held fds only: queued fds to the store, then their records appended to the
 * state's log (O(1) per change; a full document when the log is due for compaction); groups some of
 * whose fds went move to a new group.  No-op without the store. */
void persist_fds_commit(void);

/* free bookkeeping at exit */
void persist_done(void);

/* Write a new state document from the live tables (no-op without the store): needed for anything but
 * held fds (instances, updates, verdicts); also pushes queued fds first.  Logs on failure. */
void persist_state_write(void);
/* the same, for a caller that must know the state names what it just changed (docs/UPDATE.md R14: a held
 * successor): 0 when written, or when there is no state at all (no fd store: nothing survives a restart,
 * instances included); -errno when the write failed (logged) or the daemon is exiting */
int persist_state_write_checked(void);
/* time spent in persist_state_write() since the start (us): the update engine's accounting of its own time */
extern int64_t persist_write_us;
/* The daemon exits: no more state writes (instances are freed one by one and must not leave the
 * state; an update ended by the teardown must not either).  Call before instance_free_all(). */
void persist_freeze(void);
/* persist_freeze() was called: the daemon is exiting */
bool persist_frozen(void);
/* Wait (at most 2 s) until the service manager has handled every FDSTORE/FDSTOREREMOVE sent so far
 * (sd_notify_barrier).  A device node is single-open and the store's copy of a device fd we just
 * removed keeps it busy until PID 1 has processed the FDSTOREREMOVE: device_open_node() waits for
 * that on EBUSY.  0 (also without the store) or -errno. */
int persist_store_barrier(void);

#endif
