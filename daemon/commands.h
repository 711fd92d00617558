/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * commands.h - request dispatch and the handler table (one handler per
 * enum vlu_cmd_id; start-up fails if an entry is unbound).  The update
 * engine adds its handlers to the table in commands.c.
 */
#ifndef VLUD_COMMANDS_H
#define VLUD_COMMANDS_H

#include <stdarg.h>
#include <stddef.h>
#include <json-c/json.h>

#include "basics.h"
#include "vlu-proto.h"

struct conn;

struct request {
	struct conn *c;
	const struct vlu_command *cmd;
	json_object *args; /* borrowed; never NULL (an empty object stands in) */
	json_object *id;   /* borrowed; may be NULL */
	int *fds;	   /* received fds: a handler that keeps one sets its entry to -EBADF */
	size_t nfds;
	/* results */
	json_object *ret;  /* owned: the "return" object (NULL = {}) */
	int out_fds[VLU_MAX_FDS_PER_MSG]; /* borrowed fds for the reply (sent as duplicates) */
	size_t n_out_fds;
	enum vlu_error_class err_class;
	char err[512];
	bool failed;
	bool deferred;	   /* the handler replies later itself (update.start with wait) */
};

typedef int (*command_handler)(struct request *r);

/* A string / boolean argument (already type-checked by the command table); NULL / dflt when absent.
 * Shared by the handlers in commands.c and update.c. */
const char *request_arg_str(const struct request *r, const char *k);
bool request_arg_bool(const struct request *r, const char *k, bool dflt);

/* Record an error reply; returns -1 so handlers can `return request_error(...)`. */
int request_error(struct request *r, enum vlu_error_class cls, const char *fmt, ...) _printf_(3, 4);
int request_verror(struct request *r, enum vlu_error_class cls, const char *fmt, va_list ap) _printf_(3, 0);

/* Handle one received message (buf NUL-terminated, len > 0; fds owned: all closed before return
 * unless a handler took them).  May kill the connection. */
void commands_dispatch(struct conn *c, char *buf, size_t len, int *fds, size_t nfds);

struct instance;
/* device.reopen: a reopen of inst's device is under way (its device is a reservation, not in its table) */
bool commands_reopen_pending(const struct instance *inst);
/* inst goes (why: "was released"): its reopens end with an error reply and nothing reopened (their old
 * fds still close); call before inst is freed */
void commands_reopen_forget(struct instance *inst, const char *why);

/* every vlu_commands[] entry has a handler: 0 or -EINVAL (logged) */
int commands_check_table(void);

#endif
