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
	{ "device", VLU_ARG_STRING, true, 1, DEVICE_MAX,
	  "vdpa device name, or a /dev/vhost-vdpa-N, /dev/iommu or /dev/vfio/devices/vfioN path, allowed by policy" },
};

static const struct vlu_arg device_reopen_args[] = {
	{ "name", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "held fd name of a device this instance opened (vdpa:NAME)" },
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
	{ "events", VLU_ARG_EVENT_ARRAY, false, 1, VLU_EVENTS_FILTER_MAX,
	  "only these events (known names; absent: every event); a new subscribe replaces the filter" },
};

/* ---- live update (docs/UPDATE.md) ---- */
static const struct vlu_arg vmm_mappings_args[] = {
	{ "mappings", VLU_ARG_OBJECT_ARRAY, true, 0, 64,
	  "guest memory: [{iova, size, memfd (stored fd name), offset, uaddr, perm}] (replaces the table)" },
	{ "devices", VLU_ARG_OBJECT_ARRAY, false, 0, 16, "[{name (held device fd name), pinning: \"pa\"|\"va\"}]" },
	{ "ioas", VLU_ARG_OBJECT_ARRAY, false, 0, 16,
	  "iommufd mappings: [{iommufd (held fd name), ioas_id, devices: [held VFIO fd names], mappings: [{iova, size, "
	  "kind: \"file\"|\"va\", memfd, offset, uaddr}]}]" },
};

static const struct vlu_arg update_start_args[] = {
	{ "instance", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "the instance to update" },
	{ "mode", VLU_ARG_STRING, true, 4, 8, "\"exec\" (the VMM execs itself) or \"transfer\" (a second process)" },
	{ "path", VLU_ARG_STRING, false, 1, 4, "\"auto\" (default), \"A\", \"B\" or \"C\"" },
	{ "binary", VLU_ARG_STRING, false, 1, 4096, "successor binary (absolute path; default: the VMM's own)" },
	{ "argv", VLU_ARG_STRING_ARRAY, false, 0, 64, "successor argv (default: the VMM's own)" },
	{ "successor_pid", VLU_ARG_INT, false, 1, 4194304, "transfer mode: the pid that will claim (not spawned); needs wait:false, whose reply has the token" },
	{ "allow_disruptive", VLU_ARG_BOOL, false, 0, 0, "allow a device without SUSPEND (needs the policy too)" },
	{ "wait", VLU_ARG_BOOL, false, 0, 0, "reply with the verdict when the update ends (default true)" },
};

static const struct vlu_arg update_instance_args[] = {
	{ "instance", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "the instance" },
};

static const struct vlu_arg update_saved_args[] = {
	{ "names", VLU_ARG_NAME_ARRAY, true, 1, 1, "[\"state\"]: the sealed state memfd sent with the request" },
	{ "vrings", VLU_ARG_OBJECT_ARRAY, false, 0, 256, "[{device, index, base}] as the VMM read them" },
	{ "state_size", VLU_ARG_INT, true, 0, 64 * 1024 * 1024, "bytes of state in the memfd" },
	{ "error", VLU_ARG_STRING, false, 0, 256, "the VMM could not save: roll back" },
};

static const struct vlu_arg update_claim_args[] = {
	{ "instance", VLU_ARG_NAME, true, 1, VLU_NAME_MAX, "the instance being updated" },
	{ "token", VLU_ARG_STRING, true, 32, 32, "the one-time token (VLU_UPDATE_TOKEN)" },
};

static const struct vlu_arg update_ready_args[] = {
	{ "error", VLU_ARG_STRING, false, 0, 256, "the successor failed to restore: roll back" },
	{ "device_state_changes", VLU_ARG_STRING_ARRAY, false, 0, 32,
	  "device state members changed on purpose (\"config.mac\", or \"DEVICE: config.mac\"): any other difference fails verification" },
	{ "cvq_commands", VLU_ARG_INT, false, 0, 65535, "control commands the successor replayed through the CVQ" },
	{ "cvq_replay_us", VLU_ARG_INT, false, 0, 3600000000, "time of that replay: CVQ enabled -> every command used (us)" },
	{ "iommufd_moved", VLU_ARG_STRING_ARRAY, false, 0, 16,
	  "iommufd fd names the successor called IOMMU_IOAS_CHANGE_PROCESS on (every held iommufd: docs/IOMMUFD.md)" },
	{ "ioas", VLU_ARG_OBJECT_ARRAY, false, 0, 16,
	  "the iommufd mappings as the successor has them (vmm.mappings \"ioas\"; only uaddr may differ)" },
};

static const struct vlu_arg update_armed_args[] = {
	{ "error", VLU_ARG_STRING, false, 0, 256, "the VMM could not arm its devices for the successor: roll back" },
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
	[VLU_CMD_VMM_MAPPINGS] = {
		.id = VLU_CMD_VMM_MAPPINGS,
		.name = "vmm.mappings",
		ARGS(vmm_mappings_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.summary = "declare the guest-memory mapping table and each device's pinning mode (pa/va)",
	},
	[VLU_CMD_UPDATE_START] = {
		.id = VLU_CMD_UPDATE_START,
		.name = "update.start",
		ARGS(update_start_args),
		.perm = VLU_PERM_OPERATOR | VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.summary = "live-update an instance (operator, or the instance's own VMM); the reply is the verdict",
	},
	[VLU_CMD_UPDATE_STATUS] = {
		.id = VLU_CMD_UPDATE_STATUS,
		.name = "update.status",
		ARGS(update_instance_args),
		.perm = VLU_PERM_OPERATOR | VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.summary = "the running (or last) update of an instance: phase, path, timings",
	},
	[VLU_CMD_UPDATE_ABORT] = {
		.id = VLU_CMD_UPDATE_ABORT,
		.name = "update.abort",
		ARGS(update_instance_args),
		.perm = VLU_PERM_OPERATOR | VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.summary = "roll back the running update of an instance now",
	},
	[VLU_CMD_UPDATE_SAVED] = {
		.id = VLU_CMD_UPDATE_SAVED,
		.name = "update.saved",
		ARGS(update_saved_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_PER_NAME,
		.summary = "the old VMM saved its state (after update.save): vring bases + the state memfd",
	},
	[VLU_CMD_UPDATE_CLAIM] = {
		.id = VLU_CMD_UPDATE_CLAIM,
		.name = "update.claim",
		ARGS(update_claim_args),
		.perm = VLU_PERM_VMM,
		.fds_in = VLU_FDS_NONE,
		.fds_out = true,
		.summary = "the successor claims the instance with its token: all fds, the state, mappings, path",
	},
	[VLU_CMD_UPDATE_READY] = {
		.id = VLU_CMD_UPDATE_READY,
		.name = "update.ready",
		ARGS(update_ready_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.summary = "the successor restored the device; the daemon resumes, verifies and commits (reply: verdict)",
	},
	[VLU_CMD_UPDATE_ARMED] = {
		.id = VLU_CMD_UPDATE_ARMED,
		.name = "update.armed",
		ARGS(update_armed_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.summary = "the old VMM armed every device for the successor (after update.arm; transfer mode, A and B)",
	},
	[VLU_CMD_DEVICE_REOPEN] = {
		.id = VLU_CMD_DEVICE_REOPEN,
		.name = "device.reopen",
		ARGS(device_reopen_args),
		.perm = VLU_PERM_VMM | VLU_PERM_INSTANCE,
		.fds_in = VLU_FDS_NONE,
		.fds_out = true,
		.summary = "close this instance's device and open it afresh, reserved to it throughout; returns the new fd",
	},
};

/* THE event names (enum vlu_event_id order; docs/PROTOCOL.md section 8 describes each) */
const char *const vlu_event_names[_VLU_EV_MAX] = {
	[VLU_EV_INSTANCE_REGISTERED] = "instance.registered",
	[VLU_EV_INSTANCE_REATTACHED] = "instance.reattached",
	[VLU_EV_INSTANCE_ORPHANED] = "instance.orphaned",
	[VLU_EV_INSTANCE_RELEASED] = "instance.released",
	[VLU_EV_DEVICE_OPENED] = "device.opened",
	[VLU_EV_DEVICE_REOPENED] = "device.reopened",
	[VLU_EV_DEVICE_LOST] = "device.lost",
	[VLU_EV_FD_STORED] = "fd.stored",
	[VLU_EV_FD_REMOVED] = "fd.removed",
	[VLU_EV_DAEMON_STARTED] = "daemon.started",
	[VLU_EV_UPDATE_STARTED] = "update.started",
	[VLU_EV_UPDATE_PHASE] = "update.phase",
	[VLU_EV_UPDATE_SAVE] = "update.save",
	[VLU_EV_UPDATE_EXEC] = "update.exec",
	[VLU_EV_UPDATE_ARM] = "update.arm",
	[VLU_EV_UPDATE_EXEC_SENT] = "update.exec-sent",
	[VLU_EV_UPDATE_CLAIM_REFUSED] = "update.claim-refused",
	[VLU_EV_UPDATE_RESTARTING_PREVIOUS] = "update.restarting-previous",
	[VLU_EV_UPDATE_ROLLED_BACK] = "update.rolled-back",
	[VLU_EV_UPDATE_REFUSED] = "update.refused",
	[VLU_EV_UPDATE_COMPLETED] = "update.completed",
	[VLU_EV_UPDATE_KILLED] = "update.killed",
};

/* the filter is one bit per event, and VLU_EVENTS_ALL shifts by _VLU_EV_MAX: 64 would be undefined */
_Static_assert(_VLU_EV_MAX < 64, "vlu_event_mask has 64 bits, VLU_EVENTS_ALL needs _VLU_EV_MAX < 64");
