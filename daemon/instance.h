/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * instance.h - VMM instances.  An instance is a name, the VMM's pid, pidfd,
 * uid and gid, and the fds it holds.  It is "attached" while the connection
 * that registered (or reattached) it is open and its process lives;
 * otherwise "orphaned": everything is kept until an operator releases it,
 * orphan_expiry_s passes, or a process of the same uid reattaches.
 */
#ifndef VLUD_INSTANCE_H
#define VLUD_INSTANCE_H

#include <stdint.h>
#include <sys/types.h>

#include "vlud.h"

struct conn;

enum instance_state {
	INSTANCE_ATTACHED,
	INSTANCE_ORPHANED,
};

struct instance {
	struct list link; /* in vl.instances */
	char name[65];
	pid_t pid;	  /* last known VMM pid */
	int pidfd;	  /* owned; -EBADF when orphaned */
	ev_io pidfd_io;	  /* readable when the process exits */
	uid_t uid;
	gid_t gid;
	int64_t registered_us; /* CLOCK_REALTIME */
	int64_t orphaned_us;   /* CLOCK_REALTIME, 0 while attached */
	enum instance_state state;
	char orphan_reason[64];
	struct conn *conn; /* attached connection (not owned), NULL when orphaned */
	struct list held;  /* struct held.link, owned */
	unsigned n_held;
	ev_timer expiry;   /* orphan_expiry_s */
	void *update;	   /* the update engine's per-instance state (struct upd_inst, update.c): owned by it, freed
			    * by update_instance_gone() */
};

struct instance *instance_find(const char *name);

/* Create an attached instance for conn (pidfd consumed). */
int instance_create(const char *name, struct conn *c, pid_t pid, int pidfd, uid_t uid, gid_t gid,
		    struct instance **ret);
/* Restore an orphaned instance from the persisted state (start-up). */
int instance_restore(const char *name, pid_t pid, uid_t uid, gid_t gid, int64_t registered_us, int64_t orphaned_us,
		     const char *reason, struct instance **ret);
/* Attach an orphaned instance to conn (pidfd consumed). */
void instance_attach(struct instance *inst, struct conn *c, pid_t pid, int pidfd);
/* The live update's hand-over, never an orphan in between (no instance.orphaned event, no orphaned state
 * written): inst leaves its connection and, when c is given, is attached to c (pid, pidfd consumed).  With
 * c NULL it is in transit (attached to no connection, its process not watched) until the next
 * instance_hand_over(), or instance_hand_over_failed(). */
void instance_hand_over(struct instance *inst, struct conn *c, pid_t pid, int pidfd);
/* The hand-over did not happen: an instance in transit is orphaned (reason); any other is left alone. */
void instance_hand_over_failed(struct instance *inst, const char *reason);
/* Detach from its connection/process: keeps every fd; event instance.orphaned; state written. */
void instance_orphan(struct instance *inst, const char *reason);
/* Close every held fd, emit instance.released, write the state, free.  Returns the number of fds closed. */
unsigned instance_release(struct instance *inst, const char *reason);

const char *instance_state_name(enum instance_state s);
struct json_object *instance_to_json(const struct instance *inst);

/* free everything without touching the fd store (daemon exit) */
void instance_free_all(void);

#endif
