/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * conn.h - client connections.  One struct, one destructor (conn_kill +
 * the reaper's free): watchers stopped, queued output and its fds closed,
 * socket closed, instance orphaned.
 */
#ifndef VLUD_CONN_H
#define VLUD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "vlu-proto.h"
#include "vlud.h"

struct instance;

struct conn {
	struct list link; /* in vl.conns, until the reaper frees it (also once dead) */
	uint64_t id;
	int fd;		  /* owned */
	ev_io io_in, io_out;
	ev_timer handshake, idle;
	ev_timer backlog;      /* reading paused: the uid's closer lane is behind (closer.h) */
	struct peer_cred cred; /* groups owned */
	int pidfd;	       /* owned: the peer process at connect time */
	unsigned roles;	       /* ROLE_* */
	bool negotiated;
	bool subscribed;
	char sub_instance[65]; /* "" = every instance (operators only) */
	vlu_event_mask sub_events; /* the subscription's filter: VLU_EVENTS_ALL without one */
	struct instance *inst; /* registered on this connection (not owned) */
	struct list outq;      /* struct outmsg */
	size_t out_bytes;
	size_t out_fds;	       /* duplicates held by queued messages */
	bool dead;
};

/* listening socket readable */
void conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Queue (or send) one message.  fds are borrowed: the queue keeps duplicates until sent.
 * Returns 0, or -errno after which the connection is dead (output limit, send error). */
int conn_send(struct conn *c, json_object *msg, const int *fds, size_t nfds);

/* Mark dead: stop watchers, close socket and queued fds, orphan its instance; freed by the reaper. */
void conn_kill(struct conn *c, const char *why);

/* live connections of uid (for the per-uid quota) */
unsigned conn_count_uid(uid_t uid);

/* (re)arm the idle timer: only for connections with neither an instance nor a subscription */
void conn_update_idle(struct conn *c);

/* close every connection (shutdown) */
void conn_kill_all(const char *why);
/* free killed connections now */
void conn_reap(void);

#endif
