/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * config.h - vlud configuration (commented JSON, see docs/CONFIG.md).
 */
#ifndef VLUD_CONFIG_H
#define VLUD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VLUD_DEFAULT_CONFIG "/etc/vlud/vlud.conf"
#define VLUD_DEFAULT_SOCKET "/run/vlud/vlud.sock"

struct vlud_idset {
	uid_t *uids; /* gid_t and uid_t are both unsigned int */
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
};

struct vlud_vmm_rule {
	struct vlud_idset who;
	char **devices;	 /* vdpa names ("vdpa0") or absolute paths ("/dev/vhost-vdpa-0") */
	size_t n_devices;
	unsigned fd_types; /* bit (1u << enum vlud_fd_type) per allowed type */
	unsigned max_fds;  /* per instance; capped by limits.max_fds_per_instance */
	char **names;	   /* fnmatch(3) patterns of the instance names its peers may register; none: any */
	size_t n_names;
};

struct vlud_limits {
	unsigned max_message_bytes;
	unsigned max_json_depth;
	unsigned max_fds_per_message;
	unsigned max_fds_per_instance;
	unsigned max_instances;
	unsigned max_connections;
	unsigned max_pending_output_bytes;
	/* per uid (a peer that is not an operator: operators are trusted and never held by a quota) */
	unsigned max_connections_per_uid;
	unsigned max_instances_per_uid;
	unsigned max_fds_per_uid;
	unsigned max_pending_output_bytes_per_uid;
	unsigned operator_reserved_connections; /* of max_connections, only operators may use these */
	unsigned handshake_timeout_ms;
	unsigned idle_timeout_ms; /* 0 = never */
};

/* the update engine: per-phase deadlines, parsed and kept here */
struct vlud_update_timeouts {
	unsigned suspend_ms, save_ms, exec_ms, claim_ms, commit_ms;
};

/* the update engine: the "update" policy object */
struct vlud_update_policy {
	bool allow_memlock_raise; /* D may raise a successor's RLIMIT_MEMLOCK (prlimit) */
	bool allow_disruptive;	  /* update.start may ask for a path without SUSPEND */
	unsigned max_state_bytes; /* size limit of a VMM's saved state */
	bool restart_previous;	  /* exec mode: start the previous binary when the new image fails */
	bool kill_failed_successor; /* SIGKILL a successor that misses its deadline or fails verification */
	bool held_successor_survives_stop; /* the fd store outlives a stop: R14's held successor stays stopped */
};

struct vlud_config {
	char *path; /* file it came from, or NULL for built-in defaults */
	char *socket_path;
	mode_t socket_mode;
	bool socket_group_set;
	gid_t socket_group;
	struct vlud_limits limits;
	struct vlud_update_timeouts update;
	struct vlud_update_policy update_policy;
	unsigned orphan_expiry_s; /* 0 = never */
	struct vlud_idset operators;
	struct vlud_vmm_rule *vmms;
	size_t n_vmms;
};

/* Load path (NULL: built-in defaults only).  On error returns -errno and writes a message to errbuf. */
int config_load(const char *path, struct vlud_config **ret, char *errbuf, size_t errlen);
void config_free(struct vlud_config *c);
/* The configuration as JSON (what status/--check-config show); never NULL (json-oom.h). */
struct json_object *config_to_json(const struct vlud_config *c);

#endif
