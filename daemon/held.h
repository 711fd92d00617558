/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * held.h - the held fd table.  Every fd the daemon keeps for an instance
 * (a device it opened, an fd a VMM stored) is one struct held, owned by its
 * instance, with a daemon-unique id (fd store name "h<id>").
 *
 * held_add() and held_destroy() keep systemd's fd store in step (persist.c)
 * but do not rewrite the state memfd: callers make all their changes, then
 * call persist_state_write() once.  Removal is two steps, held_unlink(),
 * then (after the state is rewritten) held_destroy(): a removed fd leaves
 * the state before the store.
 */
#ifndef VLUD_HELD_H
#define VLUD_HELD_H

#include <stdint.h>
#include <sys/stat.h>

#include "fdtype.h"
#include "vlud.h"

struct instance;

struct held {
	struct list link; /* in instance->held */
	uint64_t id;
	char name[65];
	struct instance *inst;
	int fd;		  /* owned */
	enum vlud_fd_type type;
	uint64_t dev, ino, rdev;
	int64_t created_us; /* CLOCK_REALTIME */
	char *device;	    /* device.open: the device as requested, else NULL */
	char *path;	    /* device.open: the node opened, else NULL */
	uint64_t alias_of;  /* 0, or the id of the held fd with the same open file description that
			     * stands for both in the fd store (persist.c) */
	/* persist.c's bookkeeping: */
	uint64_t group;	    /* 0, or stored with others under "g<group>" */
	uint64_t state_gen; /* the state memfd names it: equal to persist.c's current generation */
	bool pending;	    /* added, not yet pushed to the fd store nor logged (persist_fds_commit) */
	bool leaving;	    /* unlinked (held_unlink()), to be destroyed unless relinked */
	bool reserved;	    /* a reservation (held_reserve): no fd, in no instance's table */
};

/* Add fd (consumed: owned by the table on success, closed on failure) to inst under name.
 * id 0: allocate a new id and push the fd to the fd store; id > 0: adoption at start-up (already stored).
 * st: the fd's fstat (identity recorded). */
int held_add(struct instance *inst, const char *name, int fd, enum vlud_fd_type type, const struct stat *st,
	     uint64_t id, int64_t created_us, const char *device, const char *path, struct held **ret);

/* Removal, first half: unlink from its instance (the fd stays open and in the fd store). */
void held_unlink(struct held *h);
/* Undo held_unlink(): back into its instance (fd.store's replacement could not be added). */
void held_relink(struct held *h);
/* Removal, second half (after held_unlink(), or instance_release()'s own unlinking, and the state
 * rewrite): remove from the fd store, close the fd in the closer's worker thread (closer.h, not on the
 * loop) and free. */
void held_destroy(struct held *h);
/* held_destroy() without the close: the fd is returned, owned by the caller (path C hands it to the
 * closer together with the instance's other device fds and waits for the close) */
int held_destroy_take_fd(struct held *h);

/* held_destroy_take_fd() in two halves: the fd leaves the fd store and goes to the caller (h->fd is
 * -EBADF after), and the struct is freed (NULL: nothing). */
int held_take_fd(struct held *h);
void held_free(struct held *h);

/* A reservation: h (held_unlink()ed, its fd taken with held_take_fd()) keeps its device reserved to
 * its instance while vlud has no fd of it (device.reopen: between the close of the old fd and the
 * reopen): held_find_rdev() finds it, so every device.open of that node is Busy; held_find() and the
 * instance's table do not (nothing to retrieve, nothing in the state).  held_unreserve() ends it (a
 * no-op for an h that is not reserved); the caller frees h (held_free()). */
void held_reserve(struct held *h);
void held_unreserve(struct held *h);

/* Open the vhost-vdpa node path again for inst under the held fd name (device: as device.open was
 * asked, or NULL): device_open_node() (no symlink on the path; EBUSY: once more after vlud's own pending
 * device closes), checked a vhost-vdpa node and, when want_rdev is not 0, that device; then held_add().
 * The one reopen of device.reopen, of the path-C hand-over and rollback, and of a restart during a path-C
 * release.  0 and *ret, or -errno with nothing added (-EBUSY: open elsewhere; -ENODEV: not that device). */
int held_open_device(struct instance *inst, const char *name, const char *device, const char *path,
		     uint64_t want_rdev, struct held **ret);

/* Close fd (owned) off the loop in the closer lane it belongs to: the DEVICE lane for a device vlud
 * opened (opened_by_vlud), else the lane of inst's uid. */
void held_close_fd(const struct instance *inst, bool opened_by_vlud, int fd);

struct held *held_find(struct instance *inst, const char *name);
/* a held fd with this id, in any instance */
struct held *held_find_id(uint64_t id);
/* a held vhost-vdpa or VFIO cdev fd (one holder per device) whose rdev equals rdev, in any instance, or a
 * reservation of that device (held_reserve()), other than except (may be NULL): the one answer to "is this
 * device busy in vlud" */
struct held *held_find_rdev(uint64_t rdev, const struct held *except);

/* never NULL: json-c allocation failures abort (json-oom.h) */
struct json_object *held_to_json(const struct held *h, bool with_instance);

#endif
