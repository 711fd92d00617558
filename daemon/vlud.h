/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlud.h - the daemon's shared context, logging and small helpers.
 *
 * vlud is single-threaded (one libev loop); the daemon-wide state lives in
 * the one global `vl` below.  Modules keep their own objects (connections,
 * instances, held fds) in intrusive lists anchored there.
 */
#ifndef VLUD_H
#define VLUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>
#include <sys/types.h>
#include <ev.h>

#include "basics.h"

#define VLUD_PACKAGE "vlud " VLUD_VERSION
#ifndef VLUD_VERSION
#define VLUD_VERSION "0.0.0"
#endif

/* ---- intrusive doubly linked list ---- */
struct list {
	struct list *next, *prev;
};
#define LIST_INIT(l) { &(l), &(l) }
static inline void list_init(struct list *l) { l->next = l->prev = l; }
static inline bool list_empty(const struct list *l) { return l->next == l; }
static inline void list_add_tail(struct list *head, struct list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}
static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
/* safe against removal of the current entry */
#define list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

/* ---- logging (stderr, sd-daemon.h level prefixes) ---- */
extern int vlud_log_level; /* messages above this syslog level are dropped */
void vlud_log(int prio, const char *fmt, ...) _printf_(2, 3);
#define log_error(...) vlud_log(LOG_ERR, __VA_ARGS__)
#define log_warning(...) vlud_log(LOG_WARNING, __VA_ARGS__)
#define log_info(...) vlud_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) vlud_log(LOG_DEBUG, __VA_ARGS__)

/* ---- time ---- */
int64_t now_realtime_us(void);
int64_t now_monotonic_us(void);

struct vlud_config;

/* ---- the daemon context ---- */
struct vlud {
	struct ev_loop *loop;
	struct vlud_config *cfg;

	/* listening socket (owned); activated = came from LISTEN_FDS */
	int listen_fd;
	bool listen_activated;
	char *bound_path; /* path we bound and unlink at exit, or NULL */
	ev_io listen_io;

	struct list conns; /* struct conn.link */
	unsigned n_conns;
	uint64_t next_conn_id;
	ev_idle reaper; /* frees dead connections (still in conns, marked dead) outside of their callbacks */

	struct list instances; /* struct instance.link */
	unsigned n_instances;

	unsigned n_held;	/* held fds over all instances */
	uint64_t next_held_id;	/* ids are never reused (persisted in the state) */

	/* one receive buffer for all connections (single-threaded): max_message_bytes + 1 */
	char *recvbuf;
	size_t recvbuf_size;

	int64_t start_monotonic_us;
	bool stopping;

	/* persistence (persist.c): only when NOTIFY_SOCKET is set */
	bool fdstore;
	int state_fd;		/* owned; the "vlud-state" memfd, -EBADF without fd store */
	size_t state_len;	/* length of the current state document in the memfd */
	unsigned adopted_fds, dropped_fds, lost_fds, restored_instances;

	int vdpa_major;		/* major of "vhost-vdpa" in /proc/devices, -1 unknown */
	uint64_t backend_features_seen; /* OR of the backend features of every device opened */
};

extern struct vlud vl;

/* update the systemd STATUS= line (main.c); cheap, call after any change of counts */
void vlud_notify_status(void);

#endif /* VLUD_H */
