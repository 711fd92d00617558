/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-commands.c - THE command table.  The daemon binds one handler per
 * entry (indexed by enum vlu_cmd_id), the CLI derives lookup and help from
 * it, docs/PROTOCOL.md documents it, tests/unit/test-proto walks it.
 *
 * Permission bits: the role bits VLU_PERM_ANY / VLU_PERM_VMM /
 * VLU_PERM_OPERATOR are alternatives (the peer needs one of them);
 * VLU_PERM_INSTANCE is an extra requirement for a caller admitted only as a
 * VMM (an operator acting through the OPERATOR bit does not need an
 * instance).  VLU_PERM_PRENEG: allowed before capabilities negotiation.
 *
 * Ranges: STRING/NAME = length in characters, INT = value, *_ARRAY = number
 * of entries.  Every entry sets both bounds explicitly.
 */
#include "vlu-proto.h"

#define ARGS(a) .args = (a), .n_args = sizeof(a) / sizeof((a)[0])
#define NO_ARGS .args = NULL, .n_args = 0

/* a device argument is a vdpa device name or an absolute path (PATH_MAX) */
#define DEVICE_MAX 4096

static const struct vlu_arg capabilities_args[] = {
	{ "enable", VLU_ARG_STRING_ARRAY, false, 0, 32, "capabilities to enable (from the greeting's list)" },
};

static const struct vlu_arg instance_register_args[] = {
	{ "name", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "instance name, unique in the daemon" },
	{ "reattach", VLU_ARG_BOOL, false, 0, 0, "take over an orphaned instance of this name (same uid)" },
};

static const struct vlu_arg instance_release_args[] = {
	{ "name", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "instance to release (its fds are closed)" },
};

static const struct vlu_arg device_open_args[] = {
	{ "device", VLU_ARG_STRING, true, 1, DEVICE_MAX, "vdpa device name or /dev/vhost-vdpa-N path allowed by policy" },
};

static const struct vlu_arg fd_store_args[] = {
	{ "names", VLU_ARG_NAME_ARRAY, true, 1, VLU_MAX_FDS_PER_MSG, "one distinct name per fd, in message order" },
	{ "replace", VLU_ARG_BOOL, false, 0, 0, "replace fds already stored under these names" },
};

static const struct vlu_arg fd_retrieve_args[] = {
	{ "names", VLU_ARG_NAME_ARRAY, true, 1, VLU_MAX_FDS_PER_MSG, "names of the fds to return, in that order" },
};

static const struct vlu_arg fd_list_args[] = {
	{ "instance", VLU_ARG_NAME, false, 1, VLU_NAME_MAX, "only this instance (VMMs: always their own)" },
};

static const struct vlu_arg fd_remove_args[] = {
	{ "names", VLU_ARG_NAME_ARRAY, true, 1, VLU_MAX_FDS_PER_MSG, "names of the fds to close and forget" },
	{ "instance", VLU_ARG_NAME, false, 1, VLU_NAME_MAX, "operator: the instance whose fds to remove" },
};

static const struct vlu_arg events_subscribe_args[] = {
	{ "instance", VLU_ARG_NAME, false, 1, VLU_NAME_MAX, "only events of this instance (VMMs: always their own)" },
};

const struct vlu_command vlu_commands[_VLU_CMD_MAX] = {
	[VLU_CMD_CAPABILITIES] = {
		.id = VLU_CMD_CAPABILITIES,
		.name = "capabilities",
		ARGS(capabilities_args),
		.perm = VLU_PERM_PRENEG | VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "negotiate: leave the greeting state, optionally enabling capabilities",
	},
	[VLU_CMD_STATUS] = {
		.id = VLU_CMD_STATUS,
		.name = "status",
		NO_ARGS,
		.perm = VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "daemon version, pid, uptime, counts, limits and kernel features",
	},
	[VLU_CMD_INSTANCE_REGISTER] = {
		.id = VLU_CMD_INSTANCE_REGISTER,
		.name = "instance.register",
		ARGS(instance_register_args),
		.perm = VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.summary = "register this connection's VMM as a named instance",
	},
	[VLU_CMD_INSTANCE_LIST] = {
		.id = VLU_CMD_INSTANCE_LIST,
		.name = "instance.list",
		NO_ARGS,
		.perm = VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "list instances (VMMs see only their own)",
	},
	[VLU_CMD_INSTANCE_RELEASE] = {
		.id = VLU_CMD_INSTANCE_RELEASE,
		.name = "instance.release",
		ARGS(instance_release_args),
		.perm = VLU_PERM_OPERATOR | VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.summary = "release an instance and close its held fds (operator, or its own VMM)",
	},
	[VLU_CMD_DEVICE_LIST] = {
		.id = VLU_CMD_DEVICE_LIST,
		.name = "device.list",
		NO_ARGS,
		.perm = VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "list configured devices with path, holder and status",
	},
	[VLU_CMD_DEVICE_OPEN] = {
		.id = VLU_CMD_DEVICE_OPEN,
		.name = "device.open",
		ARGS(device_open_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.fds_out = true,
		.summary = "open a vhost-vdpa device for this instance; returns its fd and device facts",
	},
	[VLU_CMD_FD_STORE] = {
		.id = VLU_CMD_FD_STORE,
		.name = "fd.store",
		ARGS(fd_store_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_PER_NAME,
		.summary = "deposit fds (one per name) with the daemon",
	},
	[VLU_CMD_FD_RETRIEVE] = {
		.id = VLU_CMD_FD_RETRIEVE,
		.name = "fd.retrieve",
		ARGS(fd_retrieve_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.fds_out = true,
		.summary = "get copies of stored fds back, in the order of names",
	},
	[VLU_CMD_FD_LIST] = {
		.id = VLU_CMD_FD_LIST,
		.name = "fd.list",
		ARGS(fd_list_args),
		.perm = VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "list held fds with instance, name, type, identity and age",
	},
	[VLU_CMD_FD_REMOVE] = {
		.id = VLU_CMD_FD_REMOVE,
		.name = "fd.remove",
		ARGS(fd_remove_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE | VLU_PERM_OPERATOR,
		.fds_in = VLU_FDS_NONE,
		.summary = "close and forget stored fds (own instance, or operator with instance)",
	},
	[VLU_CMD_EVENTS_SUBSCRIBE] = {
		.id = VLU_CMD_EVENTS_SUBSCRIBE,
		.name = "events.subscribe",
		ARGS(events_subscribe_args),
		.perm = VLU_PERM_ANY,
		.fds_in = VLU_FDS_NONE,
		.summary = "receive events on this connection (VMMs: own instance only)",
	},
};
