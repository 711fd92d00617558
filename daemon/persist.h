/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * persist.h - restart survival through systemd's fd store (only when
 * NOTIFY_SOCKET is set): every held fd is stored as "h<id>", the state
 * memfd as "state" (rewritten in place on every change).
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
void persist_fd_add(struct held *h);
void persist_fd_remove(struct held *h);

/* free bookkeeping at exit */
void persist_done(void);

/* Rewrite the state memfd from the live tables (no-op without the store).  Logs on failure. */
void persist_state_write(void);
/* The daemon exits: no more state writes (instances are freed one by one and must not leave the
 * state; an update ended by the teardown must not either).  Call before instance_free_all(). */
void persist_freeze(void);
/* Wait (at most 2 s) until the service manager has handled every FDSTORE/FDSTOREREMOVE sent so far
 * (sd_notify_barrier).  A device node is single-open and the store's copy of a device fd we just
 * removed keeps it busy until PID 1 has processed the FDSTOREREMOVE: device_open_node() waits for
 * that on EBUSY.  0 (also without the store) or -errno. */
int persist_store_barrier(void);

#endif
