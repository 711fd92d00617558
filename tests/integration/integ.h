/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * integ.h - helpers for the host integration tests: TAP output, a temporary directory, the real built
 * daemon started with a generated configuration, a NOTIFY_SOCKET receiver that plays systemd's side of
 * the fd-store protocol, and a raw protocol client (the real wire format from libvluproto, so tests can
 * also send what a well-behaved client never would).
 *
 * Test programs print one TAP line per check (docs/DESIGN.md) and exit non-zero if any check failed.
 */
#ifndef VLU_INTEG_H
#define VLU_INTEG_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "basics.h"

/* ---- TAP ---- */
void tap_suite(const char *suite);			 /* prefix of the names that follow */
bool tap_check(bool cond, const char *name, const char *fmt, ...) _printf_(3, 4); /* ok / not ok: why */
void tap_skip(const char *name, const char *reason);
void tap_diag(const char *fmt, ...) _printf_(1, 2);	 /* "# ..." */
unsigned tap_failures(void);
int tap_exit_status(void);

/* ---- environment ---- */
const char *integ_build_dir(void); /* $VLU_BUILD or ./build (absolute) */
/* path of a built program in the build dir; static buffer per call slot (4 rotating) */
const char *integ_prog(const char *name);
/* mkdtemp under $TMPDIR or /tmp, mode 0755 (so an unprivileged uid can reach sockets inside) */
char *integ_mkdtemp(const char *tag);
void integ_rmrf(const char *dir);
int integ_write_file(const char *path, const char *content);

/* ---- systemd's side of sd_notify and the fd store ---- */
#include "sdstore.h" /* the receiver and the store itself, shared with the rig's vlu-fdstore */
#define INTEG_STORE_MAX SDSTORE_MAX
struct integ_notify {
	struct sdstore sd; /* socket, READY/STATUS/..., the stored fds */
	/* PID 1 reads its notify socket all the time (the kernel queues only net.unix.max_dgram_qlen
	 * datagrams): a thread does that here; sd is guarded by lock while it runs */
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_running;
	volatile bool thread_stop;
};
int integ_notify_open(struct integ_notify *n, const char *dir);
void integ_notify_close(struct integ_notify *n); /* stops the thread too */
/* Start the reader thread (after this, integ_notify_pump only waits). */
int integ_notify_start(struct integ_notify *n);
void integ_notify_lock(struct integ_notify *n);
void integ_notify_unlock(struct integ_notify *n);
/* Process datagrams for up to timeout_ms (returns early once *flag becomes true when flag != NULL). */
int integ_notify_pump(struct integ_notify *n, int timeout_ms, const bool *flag);
size_t integ_notify_count_prefix(struct integ_notify *n, const char *prefix);
/* how many of vlud's held fds are in the store ("h<id>" and "g<group>" names) */
size_t integ_notify_count_held(struct integ_notify *n);
int integ_notify_find(struct integ_notify *n, const char *name); /* fd or -ENOENT */

/* ---- the daemon ---- */
struct integ_daemon {
	pid_t pid;
	char dir[256];
	char sock[300];
	char conf[300];
	char log[300];
	struct integ_notify *notify; /* borrowed; NULL = no NOTIFY_SOCKET */
	int exit_status;	     /* wait status once reaped, -1 before */
};

struct integ_daemon_opts {
	const char *config_json; /* full config text; NULL = integ_default_config() for dir */
	struct integ_notify *notify;
	/* socket activation: fds passed as LISTEN_FDS starting at 3 with these names (NULL names = "unknown") */
	const int *listen_fds;
	const char *const *listen_names;
	size_t n_listen;
	bool from_store; /* also pass every fd in notify->store (after listen_fds), named as stored */
	const char *const *extra_args;
	bool no_wait; /* do not wait for readiness */
	unsigned watchdog_usec; /* > 0: WATCHDOG_USEC and WATCHDOG_PID (the daemon's pid) as systemd sets them */
};

/* A configuration for a daemon whose socket is DIR/vlud.sock (mode 0666): root is operator and VMM
 * (devices vdpa0 and /dev/null; memfd, eventfd, vhost-vdpa, pipe, socket, file).  extra_vmms: more
 * rules for the "vmms" array (JSON objects, comma separated); extra_json: more top-level members. */
char *integ_config(const char *dir, const char *extra_vmms, const char *extra_json);
/* = integ_config(dir, NULL, extra_json) */
char *integ_default_config(const char *dir, const char *extra_json);
int integ_daemon_start(struct integ_daemon *d, const char *dir, const struct integ_daemon_opts *o);
/* wait for READY=1 (with notify) or a successful connect; 0 or -ETIMEDOUT / -ECHILD (exited) */
int integ_daemon_wait_ready(struct integ_daemon *d, int timeout_ms);
/* send sig, wait up to timeout_ms; returns wait status or -ETIMEDOUT (then SIGKILLed) */
int integ_daemon_stop(struct integ_daemon *d, int sig, int timeout_ms);
void integ_daemon_dump_log(const struct integ_daemon *d); /* as TAP diagnostics */
bool integ_daemon_alive(struct integ_daemon *d);

/* ---- raw protocol client ---- */
int integ_connect(const char *path); /* connected SOCK_SEQPACKET, CLOEXEC; -errno */
/* Receive one message within timeout_ms: 0 and *ret (parsed) and fds; -ETIMEDOUT, -ECONNRESET on EOF. */
int integ_recv(int fd, int timeout_ms, json_object **ret, int *ret_fds, size_t max_fds, size_t *ret_nfds);
int integ_send_raw(int fd, const void *buf, size_t len, const int *fds, size_t nfds);
/* connect, read greeting (optional *ret_greeting), negotiate; fd or -errno */
int integ_open_client(const char *path, json_object **ret_greeting);
/* Send {"execute":cmd,"arguments":args(json text or NULL),"id":N} with fds and wait for the reply with
 * that id (events are skipped, counted in *ret_events if given).  0 and *ret_reply; reply fds in ret_fds. */
int integ_call(int fd, const char *cmd, const char *args_json, const int *fds, size_t nfds, json_object **ret_reply,
	       int *ret_fds, size_t max_fds, size_t *ret_nfds);
/* "return" object of a reply or NULL */
json_object *integ_return(json_object *reply);
/* integ_call() without fds: the whole reply (caller puts it), NULL on a transport error. */
json_object *integ_call_json(int fd, const char *cmd, const char *args_json);
/* error class string of a reply or NULL */
const char *integ_error_class(json_object *reply);
const char *integ_error_desc(json_object *reply);
/* json path lookup "a.b.c" (array index as number) */
json_object *integ_get(json_object *o, const char *path);
/* The daemon's state as the operator connection c sees it (fd.list + instance.list, without the fields
 * that change with time: *_ms, *_us, uptime*), for before/after comparisons; malloc'd text. */
char *integ_snapshot(int c);
const char *integ_str(json_object *o);

/* Run a command line (sh -c), capture stdout+stderr into *ret_out (malloc'd); returns wait status. */
int integ_run(const char *cmdline, char **ret_out);

/* kcmp(KCMP_FILE): 0 = same open file description */
int integ_kcmp_file(pid_t p1, int fd1, pid_t p2, int fd2);

#endif
