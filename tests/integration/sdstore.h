/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sdstore.h - the fd-store side of systemd's PID 1, as far as vlud uses it: the NOTIFY_SOCKET receiver
 * (datagrams with SCM_RIGHTS: READY=1, STATUS=, STOPPING=1, WATCHDOG=1, FDSTORE=1 + FDNAME= [+ FDPOLL=],
 * FDSTOREREMOVE=1 + FDNAME=, BARRIER=1 whose fd is closed once everything before it is handled, as every
 * fd not stored is) and the store it keeps (one copy per open file, like systemd: an fd whose
 * file is already stored is closed, whatever its name).
 *
 * Shared by the host tests' helper (tests/integration/integ.c) and the rig's supervisor
 * (tests/vm/guest/vlu-fdstore.c, which plays this part of PID 1 in a guest that boots no systemd).
 * No threads and no locking here: integ.c wraps it in its reader thread.
 */
#ifndef VLU_SDSTORE_H
#define VLU_SDSTORE_H

#include <stdbool.h>
#include <stddef.h>

#define SDSTORE_MAX 1024

struct sdstore_fd {
	char name[256];
	int fd; /* owned by the store */
};

struct sdstore {
	int fd; /* bound SOCK_DGRAM receiver, owned */
	char path[256];
	bool ready, stopping;
	unsigned n_ready; /* READY=1 seen (count) */
	unsigned n_msgs;
	char status[512]; /* last STATUS= */
	unsigned n_status; /* STATUS= seen (count): vlud sends one after each change, once its reply is out */
	struct sdstore_fd store[SDSTORE_MAX];
	size_t n_store;
	unsigned n_stored_total, n_removed_total, n_errors;
	unsigned n_watchdog; /* WATCHDOG=1 seen */
};

/* Bind the receiver at path (SO_PASSCRED on, non-blocking, CLOEXEC); the store starts empty. */
int sdstore_open(struct sdstore *s, const char *path);
/* Close every stored fd and the receiver. */
void sdstore_close(struct sdstore *s);
/* Receive and handle one datagram without waiting: 1 handled, 0 none queued, -errno. */
int sdstore_recv_one(struct sdstore *s);
/* Handle one message (msg is modified) and the fds that came with it (each kept or closed). */
void sdstore_handle(struct sdstore *s, char *msg, int *fds, size_t nfds);
/* the fd stored under name, or -ENOENT */
int sdstore_find(const struct sdstore *s, const char *name);
/* In a child about to exec the service: fds[0..n) to 3.. (without CLOEXEC) and LISTEN_FDS,
 * LISTEN_FDNAMES (names joined with ':'), LISTEN_PID (this process) as systemd sets them (unset when
 * n is 0).  NOTIFY_SOCKET is left alone.  0 or -errno (the child should _exit then). */
/* The listening socket PID 1 passes first (what vlud.socket makes): SOCK_SEQPACKET at path (a stale file is
 * unlinked), mode 0666, CLOEXEC.  fd or -errno. */
int sdstore_listen_socket(const char *path);
int sdstore_child_listen_fds(const int *fds, const char *const *names, size_t n);

#endif
