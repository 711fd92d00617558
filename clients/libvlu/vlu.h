/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu.h - libvlu, the client library of vlud (the vDPA live-update supervisor).
 *
 * A connection is a `struct vlu`.  Every call returns >= 0 on success or a negative errno; output
 * parameters are written only on success.  The library never logs, prints, exits or raises signals.
 * A `struct vlu` is not thread-safe: use one per thread or lock around it.
 *
 * Calls are synchronous with a timeout.  For a VMM's own event loop, poll vlu_get_fd() for POLLIN and
 * call vlu_process(): it delivers events (also those that arrived while a call was waiting for its
 * reply) to the callback set with vlu_set_event_callback().
 *
 * Error replies from the daemon map to errnos (see vlu_call()); vlu_last_error() gives the daemon's
 * error class and description.
 *
 * fds: fds passed in are never closed by the library (the kernel duplicates them); fds returned are
 * owned by the caller, CLOEXEC.
 *
 * Wire protocol: docs/PROTOCOL.md.
 */
#ifndef VLU_H
#define VLU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VLU_VERSION_MAJOR 0
#define VLU_VERSION_MINOR 1
#define VLU_VERSION_MICRO 0

/* Default socket when the path argument is NULL and $VLUD_SOCKET is unset. */
#define VLU_DEFAULT_SOCKET "/run/vlud/vlud.sock"
/* Timeout used when a call passes timeout_ms == 0 (and by the typed wrappers until vlu_set_timeout()). */
#define VLU_DEFAULT_TIMEOUT_MS 10000

struct vlu;

/* Event callback: name is the event name, event the whole message {"event","data","timestamp"}
 * (borrowed, valid during the callback only).  The callback may make calls on v but must not
 * vlu_close(v); close after vlu_process() returns instead. */
typedef void (*vlu_event_fn)(struct vlu *v, const char *name, json_object *event, void *userdata);

/* Connect to the daemon at path (NULL: $VLUD_SOCKET, else VLU_DEFAULT_SOCKET; a leading '@' names an
 * abstract socket), read the greeting and negotiate, all within timeout_ms (<0: no limit, 0: default).
 * Errors: connect(2)'s (-ENOENT, -ECONNREFUSED, -EACCES), -ETIMEDOUT, -EACCES (refused by the daemon's
 * policy), -E2BIG (the daemon's connection limit), -ECONNRESET (closed without a word),
 * -EPROTONOSUPPORT (protocol major differs), -EPROTO (not a vlud greeting). */
int vlu_connect(const char *path, int timeout_ms, struct vlu **ret);
/* The same, enabling capabilities (NULL-terminated list of names offered in the greeting). */
int vlu_connect_caps(const char *path, int timeout_ms, const char *const *enable, struct vlu **ret);
/* Close the connection and free everything (NULL is fine).  Queued events are discarded. */
void vlu_close(struct vlu *v);

/* The daemon's greeting: protocol version and package string (borrowed, valid until vlu_close). */
void vlu_server_version(struct vlu *v, int *ret_major, int *ret_minor, int *ret_micro);
const char *vlu_server_package(struct vlu *v);
bool vlu_server_has_capability(struct vlu *v, const char *capability);

/* Timeout of the typed wrappers below (ms; <0: no limit, 0: VLU_DEFAULT_TIMEOUT_MS). */
void vlu_set_timeout(struct vlu *v, int timeout_ms);

/* A pollable fd (POLLIN = vlu_process() has work: a message from the daemon or a queued event).
 * Owned by v; do not read from it or close it. */
int vlu_get_fd(struct vlu *v);
/* Without blocking: read what the daemon sent and deliver events to the callback (dropped when none is
 * set); stale replies of timed-out calls are discarded.  Returns the number of events delivered,
 * -ECONNRESET once the daemon closed the connection, or another -errno. */
int vlu_process(struct vlu *v);
void vlu_set_event_callback(struct vlu *v, vlu_event_fn fn, void *userdata);

/* Generic call.  args: the "arguments" object (borrowed; NULL = none); fds: sent with the request.
 * On success *ret_return (if non-NULL) gets a new reference to the "return" object, *ret_fds (if
 * non-NULL) a malloc()ed array of the returned fds (caller owns array and fds; NULL when none) and
 * *ret_nfds their count; fds not asked for are closed.
 * A command or args with invalid UTF-8, NUL or a non-finite number is not sent: -EINVAL.  A reply that
 * breaks the strict rules (docs/PROTOCOL.md section 1) is refused: -EPROTO.
 * Errors: -ETIMEDOUT (no reply in time), -ECONNRESET (connection lost), -EPROTO (malformed reply), or an
 * error reply, mapped by class: InvalidArgument -EINVAL, CommandNotFound -ENOSYS, NotNegotiated -EPROTO,
 * PermissionDenied -EACCES, NotFound -ENOENT, Busy -EBUSY, LimitExceeded -E2BIG, DeviceError -EIO,
 * Unsupported -EOPNOTSUPP, Timeout -ETIME, GenericError/Internal/other -EREMOTEIO. */
int vlu_call(struct vlu *v, const char *command, json_object *args, const int *fds, size_t nfds, int timeout_ms,
	     json_object **ret_return, int **ret_fds, size_t *ret_nfds);
/* After a call that failed with an error reply: 0 and the daemon's class and description (borrowed,
 * valid until the next call); -ENODATA when the last call did not end with an error reply.  After
 * vlu_process() returned -ECONNRESET it gives the daemon's parting error, if it sent one (e.g. Timeout
 * for an idle connection). */
int vlu_last_error(struct vlu *v, const char **ret_class, const char **ret_desc);

/* ---- typed wrappers (timeout: vlu_set_timeout) ---- */

/* Register this connection as instance `name` (reattach: take over an orphaned instance of that name). */
int vlu_register(struct vlu *v, const char *name, bool reattach);
/* Open a vhost-vdpa device (vdpa name or path); *ret_fd gets the fd, *ret_info (optional) a new reference
 * to the "device" object of the reply (device_id, features, vqs, ...). */
int vlu_device_open(struct vlu *v, const char *device, int *ret_fd, json_object **ret_info);
/* Have the daemon close this instance's copy of a device it opened (name: its held fd name, "vdpa:NAME") and
 * open the node afresh, the device reserved to the instance throughout (device.reopen): the relaunch of a VMM
 * after its predecessor died, whose ownership and mappings the close (the kernel's release) ends.  The
 * release unpins the old owner's memory, which takes time with a large guest: timeout_ms as vlu_call's (0:
 * vlu_set_timeout's).  *ret_fd gets the new fd, *ret_info (optional) a new reference to the reply's "return"
 * object {fds:[{name,type,dev,ino,rdev}],device:{...},release_ms,total_ms}.  A reply that does not carry
 * exactly one fd, described by "fds" (one entry: the name asked for, the rdev of that fd, a character
 * device), or has no "device" object: -EPROTO, every fd it carried closed. */
int vlu_device_reopen(struct vlu *v, const char *name, int timeout_ms, int *ret_fd, json_object **ret_info);
/* Store n fds under n distinct names (1..253). */
int vlu_fd_store(struct vlu *v, const char *const *names, const int *fds, size_t n, bool replace);
/* Retrieve n fds by name; fds_out[i] gets the fd stored as names[i]. */
int vlu_fd_retrieve(struct vlu *v, const char *const *names, size_t n, int *fds_out);
/* List held fds (instance NULL: all visible to this peer); *ret gets the "return" object {fds:[...]}. */
int vlu_fd_list(struct vlu *v, const char *instance, json_object **ret);
/* Remove n stored fds (instance: operator only, NULL otherwise); returns the number removed. */
int vlu_fd_remove(struct vlu *v, const char *const *names, size_t n, const char *instance);
/* Receive events on this connection (instance NULL: all visible to this peer).  A second subscription on
 * the connection replaces the first (its instance and its filter: this call, all events again). */
int vlu_subscribe(struct vlu *v, const char *instance);
/* vlu_subscribe() with a filter: receive only the events named in events[0..n) (1..16 names, each a known
 * event name, docs/PROTOCOL.md section 8; duplicates allowed).  Replaces this connection's previous
 * subscription and filter.  Events the daemon addresses to this connection itself arrive whatever the filter
 * says, and without any subscription, exactly once: a live update's update.save, update.exec, update.arm,
 * and to the old VMM update.rolled-back and the verdict's update.completed, whatever the result, while its
 * connection is the old VMM's (docs/UPDATE.md "Events"): the end of its own update reaches a running old
 * VMM unsubscribed; restarted_previous, brought_back and a restarted vlud's verdict reach subscribers only.
 * -EINVAL: events NULL, n == 0, a NULL name, or a name the daemon does not know (InvalidArgument,
 * vlu_last_error() names the entry); -E2BIG: n > 16; else as vlu_call().  A refused call leaves the previous
 * subscription (or none) in force. */
int vlu_subscribe_events(struct vlu *v, const char *instance, const char *const *events, size_t n);
/* Daemon status; *ret gets the "return" object. */
int vlu_status(struct vlu *v, json_object **ret);

/* ==== live update, the VMM side (docs/UPDATE.md; clients/libvlu/vlu-update.c) ====
 * Old image: vlu_update_set_mappings() once, then on the events (vlu_set_event_callback):
 *   "update.save"        stop the datapath, save (vring bases + opaque state in a memfd), vlu_update_saved()
 *   "update.exec"        vlu_update_exec_keep(v, event): execs the new image with $VLU_UPDATE_TOKEN, the
 *                        connection kept across the exec (exec mode; vlu_update_exec(event): not kept)
 *   "update.arm"         transfer mode, paths A and B: consent to the successor's take-over of every
 *                        device this image owns (data.successor_pid: pidfd_open + VHOST_NEW_OWNER with
 *                        VHOST_NEW_OWNER_F_ARM, kernel/uapi/vlud-vhost.h), then vlu_update_armed()
 *   "update.rolled-back" the update was abandoned: carry on (data.reinit: re-create the vrings)
 *   "update.completed"   transfer mode: the successor committed, exit now
 * New image: vlu_update_token() != NULL -> vlu_update_connect(), vlu_update_claim(), restore,
 * vlu_update_ready(). */
#define VLU_UPDATE_TOKEN_ENV "VLU_UPDATE_TOKEN"
#define VLU_CONNECTION_ENV "VLU_CONNECTION"

struct vlu_mapping {
	uint64_t iova, size;	/* device address and length */
	const char *memfd;	/* the name the guest-RAM memfd was stored under (vlu_fd_store) */
	uint64_t offset;	/* into that memfd */
	uint64_t uaddr;		/* user address in this image (informational) */
	unsigned perm;		/* VHOST_ACCESS_RO 1, WO 2, RW 3 */
};

struct vlu_device_pinning {
	const char *name;	/* the device's held fd name (device.open's fds[0].name, "vdpa:...") */
	bool va;		/* VA mode (nothing pinned) instead of PA mode */
};

/* Declare the mapping table and each device's pinning mode (replaces what was declared before). */
int vlu_update_set_mappings(struct vlu *v, const struct vlu_mapping *maps, size_t n,
			    const struct vlu_device_pinning *devs, size_t ndevs);
/* Ask for an update of instance (mode "exec"|"transfer", path NULL/"auto"/"A"/"B"/"C").  wait: the reply
 * (*ret, optional) is the verdict, sent when the update ends; timeout_ms as in vlu_call(). */
int vlu_update_start(struct vlu *v, const char *instance, const char *mode, const char *path, bool wait,
		     int timeout_ms, json_object **ret);
/* Old image, after "update.save": hand the state memfd (state_size bytes) and the vring bases
 * ([{device,index,base}], borrowed, may be NULL) to the daemon. */
int vlu_update_saved(struct vlu *v, int state_fd, uint64_t state_size, json_object *vrings);
/* Old image: saving failed; the daemon rolls back (state_fd: any memfd, e.g. an empty one). */
int vlu_update_save_failed(struct vlu *v, int state_fd, const char *why);
/* Old image, after "update.arm": every device is armed for the successor (error NULL) or could not be
 * (error: why; the daemon rolls back). */
int vlu_update_armed(struct vlu *v, const char *error);
/* Old image, on "update.exec" (event: the whole event or its data): execv(binary, argv) with
 * $VLU_UPDATE_TOKEN set.  Returns only on failure (-errno, the variable unset again). */
int vlu_update_exec(json_object *event);
/* vlu_update_exec() keeping the connection v: its socket crosses the exec (FD_CLOEXEC cleared right
 * before execv), described in $VLU_CONNECTION ("FD:INODE:UID:MAJOR.MINOR.MICRO:NEXTID:CAPS"), so that the new
 * image's vlu_update_connect() adopts it: no connect, greeting or negotiation inside the pause, and the
 * instance stays registered on it.  When it cannot be described, the exec goes on without it.  Returns
 * only on failure (-errno; both variables unset, the socket close-on-exec again, v usable). */
int vlu_update_exec_keep(struct vlu *v, json_object *event);
/* New image: the connection to the daemon at path (NULL: $VLUD_SOCKET or the default).  Adopts the one the
 * old image kept across the exec when $VLU_CONNECTION names exactly it: an open AF_UNIX SOCK_SEQPACKET
 * socket (not listening, not hung up) with that inode, whose other end has the uid the old image saw and
 * listens at path (getpeername); returns 1 then.  Otherwise vlu_connect(path, timeout_ms) (0 or -errno);
 * an fd the variable names but that is not that socket is left untouched.  The variable is unset either
 * way.  An adopted connection is negotiated already; vlu_server_version() and
 * vlu_server_has_capability() answer from the variable, vlu_server_package() returns NULL; events the old
 * image had not read yet (its subscription goes on until the daemon accepts update.claim on it, which ends
 * it: subscribe again after the pause) are delivered by vlu_process(). */
int vlu_update_connect(const char *path, int timeout_ms, struct vlu **ret);
/* New image: the token from the environment, or NULL when this is not a successor. */
const char *vlu_update_token(void);
/* New image: claim the instance.  *ret_info: {path, mode, fds:[{name,...}], state_size, vrings, mappings,
 * devices}; *ret_fds / *ret_nfds as in vlu_call() (in the order of info.fds; the state memfd is named
 * "update:state").  A claim that comes before the old VMM has saved (a transfer successor started with
 * the token early), or before it armed its devices for this process (transfer mode, paths A and B), is
 * answered Busy: this call asks again every 50 ms for up to 30 s. */
int vlu_update_claim(struct vlu *v, const char *instance, const char *token, json_object **ret_info,
		     int **ret_fds, size_t *ret_nfds);
/* Index in the claimed fds of the fd named name, or -ENOENT. */
int vlu_update_claim_fd(json_object *info, const char *name);
/* New image: the device is restored (error NULL) or could not be (error: why).  *ret_verdict (optional):
 * the daemon's verdict.  0 is returned whenever the daemon answered: check verdict.result ("ok",
 * "failed", "rolled-back"). */
int vlu_update_ready(struct vlu *v, const char *error, json_object **ret_verdict);
/* vlu_update_ready() with further update.ready arguments (extra: an object, borrowed, may be NULL; no
 * "error" member): device_state_changes, cvq_commands, cvq_replay_us (docs/PROTOCOL.md). */
int vlu_update_ready_with(struct vlu *v, const char *error, json_object *extra, json_object **ret_verdict);

/* ==== exec mode: the old image's address space torn down after the pause (clients/libvlu/vlu-teardown.c) ====
 * exec() tears the old image's address space down inside the pause when it drops its last user: every
 * page-table entry of the guest RAM it had touched.  Old image, right before execve (after the save):
 * vlu_exec_defer_teardown() starts a small helper process sharing the address space (clone(CLONE_VM), no
 * fd but a pipe, every signal blocked, reparented to init: no zombie, no SIGCHLD), so the exec only drops
 * a reference; the helper exits, and the kernel tears the old address space down then, when the new image
 * calls vlu_exec_teardown_release() (vlu_update_ready() does, after the daemon answered), exits, or after
 * timeout_ms (<= 0: 30 s).  The pipe's write end crosses the exec, named by $VLU_TEARDOWN_FD.
 * While the helper lives the old address space has a user, so the kernel no longer infers the owner's
 * consent to VHOST_NEW_OWNER from the exec: arm every device the new image takes over for this process
 * first (VHOST_NEW_OWNER with VHOST_NEW_OWNER_F_ARM and pidfd_open(getpid()); the pid survives exec).
 * Returns 0, or -errno with nothing started.  After a failed exec, vlu_exec_teardown_release() stops the
 * helper again. */
#define VLU_TEARDOWN_FD_ENV "VLU_TEARDOWN_FD"
int vlu_exec_defer_teardown(int timeout_ms);
/* New image (or the old one after a failed exec): let the helper exit.  1 released, 0 none, -errno. */
int vlu_exec_teardown_release(void);

#ifdef __cplusplus
}
#endif

#endif /* VLU_H */
