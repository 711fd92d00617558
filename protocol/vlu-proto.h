/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-proto.h - the vlud wire format: framing, limits, command table,
 * argument checking, replies and events.  Linked by the daemon, libvlu and
 * the tests.  Never logs, never exits.  Functions return >= 0 or -errno and
 * do not write output parameters on failure.
 */
#ifndef VLU_PROTO_H
#define VLU_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define VLU_PROTO_MAJOR 1
#define VLU_PROTO_MINOR 0
#define VLU_PROTO_MICRO 0

/* Hard limits (the configuration may lower, never raise, these). */
#define VLU_MAX_FDS_PER_MSG 253		/* SCM_MAX_FD */
#define VLU_MAX_MSG_BYTES (1024 * 1024) /* absolute ceiling for max_message_bytes */
#define VLU_DEFAULT_MAX_MSG_BYTES 65536
#define VLU_DEFAULT_MAX_DEPTH 16
#define VLU_NAME_MAX 64			/* instance and fd names: [A-Za-z0-9_.:-], 1..64 */

/* ---- error classes (the wire vocabulary) ---- */
enum vlu_error_class {
	VLU_ERR_GENERIC,	  /* "GenericError" */
	VLU_ERR_COMMAND_NOT_FOUND, /* "CommandNotFound" */
	VLU_ERR_INVALID_ARGUMENT, /* "InvalidArgument": unknown, missing or mistyped argument; bad JSON */
	VLU_ERR_NOT_NEGOTIATED,	  /* "NotNegotiated" */
	VLU_ERR_PERMISSION_DENIED, /* "PermissionDenied" */
	VLU_ERR_NOT_FOUND,	  /* "NotFound" */
	VLU_ERR_BUSY,		  /* "Busy" */
	VLU_ERR_LIMIT_EXCEEDED,	  /* "LimitExceeded" */
	VLU_ERR_DEVICE_ERROR,	  /* "DeviceError" */
	VLU_ERR_UNSUPPORTED,	  /* "Unsupported": refused up front (a blocker) */
	VLU_ERR_TIMEOUT,	  /* "Timeout" */
	VLU_ERR_INTERNAL,	  /* "Internal" */
	_VLU_ERR_MAX,
};
const char *vlu_error_class_name(enum vlu_error_class c);
/* -> class, or -EINVAL for an unknown name */
int vlu_error_class_from_name(const char *name);

/* ---- framing: one JSON object + its fds per SOCK_SEQPACKET message ---- */

/* Send one message; fds are duplicated by the kernel, ours stay open.
 * -EAGAIN when the socket is full (nonblocking), -EMSGSIZE if len or nfds exceed limits. */
int vlu_msg_send(int sock, const char *buf, size_t len, const int *fds, size_t nfds);

/* Receive one message into buf (bufsz bytes, NUL-terminated on success, so bufsz >= max message + 1).
 * Received fds land in ret_fds (CLOEXEC, caller owns them), at most max_fds.
 * Returns the message length (> 0), 0 on orderly EOF, -EAGAIN, -EMSGSIZE when the message or its
 * fds were truncated (all received fds already closed), other -errno. */
/* Like vlu_msg_recv(), but every fd that arrived is returned in ret_fds (room for VLU_MAX_FDS_PER_MSG,
 * all a message can carry) and owned by the caller whatever the result (-EMSGSIZE: truncated; 0: EOF):
 * it never closes one.  For the daemon, which closes a peer's fds off its loop (a close can block). */
ssize_t vlu_msg_recv_all(int sock, char *buf, size_t bufsz, int ret_fds[VLU_MAX_FDS_PER_MSG], size_t *ret_nfds);
ssize_t vlu_msg_recv(int sock, char *buf, size_t bufsz, int *ret_fds, size_t max_fds, size_t *ret_nfds);

/* The strict rules (docs/PROTOCOL.md section 1), checked on the raw text because json-c 0.16 lets
 * much through even with JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 (overlong and surrogate
 * UTF-8, raw control characters, single quotes, NaN/Infinity, 1e999 as inf, \u0000 cutting a member
 * name, lone surrogate escapes turned into U+FFFD, integers beyond 64 bits saturated):
 * RFC 8259 grammar, exactly one object at top level; strings and member names are strict UTF-8
 * (RFC 3629) without raw control characters (< 0x20), without \u0000 and without unpaired surrogate
 * escapes; numbers are finite doubles; integers (no fraction, no exponent) lie in
 * [-2^63, 2^64 - 1] (json-c then holds them exactly).
 * 0, -EINVAL with a description naming the byte offset, or -E2BIG when containers nest deeper
 * than max_depth. */
int vlu_json_check(const char *buf, size_t len, int max_depth, char *errbuf, size_t errlen);

/* Parse exactly one JSON object from buf[0..len) with a depth limit, after vlu_json_check().
 * -EINVAL: not JSON / breaks the strict rules / trailing garbage / not an object; -E2BIG: deeper than
 * max_depth.  The _ex form describes the failure in errbuf (may be NULL). */
int vlu_json_parse(const char *buf, size_t len, int max_depth, json_object **ret);
int vlu_json_parse_ex(const char *buf, size_t len, int max_depth, json_object **ret, char *errbuf, size_t errlen);

/* Serialize j compactly; returns a pointer owned by j (valid until j changes or is freed).
 * Every string is repaired first (vlu_json_repair()), so that nothing sent is invalid UTF-8. */
const char *vlu_json_dump(json_object *j, size_t *ret_len);

/* Make a tree emittable under the strict rules, in place: in every string and member name each byte
 * that is not part of valid UTF-8, and each NUL, becomes '?'; a non-finite double becomes null.
 * Returns the number of values changed. */
size_t vlu_json_repair(json_object *j);

/* Check a tree against the same rules (what a client sends): 0 or -EINVAL with a description. */
int vlu_json_check_tree(json_object *j, char *errbuf, size_t errlen);

/* ---- UTF-8 ---- */

/* s[0..len) is strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) without NUL. */
bool vlu_utf8_valid(const char *s, size_t len);

/* The length of the longest prefix of the NUL-terminated s that is at most max bytes and does not end
 * inside a character: use "%.*s", (int)vlu_utf8_prefix(s, N), s wherever "%.Ns" would cut. */
size_t vlu_utf8_prefix(const char *s, size_t max);

/* Cut s at the last character boundary at or before max bytes (e.g. after a truncating snprintf:
 * vlu_utf8_truncate(buf, strlen(buf)) drops a character cut in half).  Returns the new length. */
size_t vlu_utf8_truncate(char *s, size_t max);

/* ---- the command table ---- */
enum vlu_perm {
	VLU_PERM_PRENEG = 1u << 0,   /* allowed before negotiation (only "capabilities") */
	VLU_PERM_ANY = 1u << 1,      /* any admitted peer */
	VLU_PERM_VMM = 1u << 2,      /* peers the policy admits as VMMs */
	VLU_PERM_OPERATOR = 1u << 3, /* operators */
	VLU_PERM_INSTANCE = 1u << 4, /* needs an instance registered on this connection (or a claimed successor) */
};

enum vlu_arg_type {
	VLU_ARG_STRING,
	VLU_ARG_NAME,	       /* string matching the name rules above */
	VLU_ARG_INT,	       /* int64 within [min, max] */
	VLU_ARG_BOOL,
	VLU_ARG_NAME_ARRAY,    /* array of names, length within [min, max] */
	VLU_ARG_STRING_ARRAY,  /* array of strings, length within [min, max] */
	VLU_ARG_OBJECT,	       /* nested object, checked by the handler */
	VLU_ARG_OBJECT_ARRAY,  /* array of objects, length within [min, max], checked by the handler */
	VLU_ARG_EVENT_ARRAY,   /* array of known event names (vlu_event_names), length within [min, max] */
};

struct vlu_arg {
	const char *name;
	enum vlu_arg_type type;
	bool required;
	int64_t min, max; /* INT: value range; STRING: length range; *_ARRAY: element count range */
	const char *help;
};

enum vlu_fds_in {
	VLU_FDS_NONE,	  /* the request carries no fds */
	VLU_FDS_PER_NAME, /* exactly one fd per entry of the "names" argument */
};

enum vlu_cmd_id {
	VLU_CMD_CAPABILITIES,
	VLU_CMD_STATUS,
	VLU_CMD_INSTANCE_REGISTER,
	VLU_CMD_INSTANCE_LIST,
	VLU_CMD_INSTANCE_RELEASE,
	VLU_CMD_DEVICE_LIST,
	VLU_CMD_DEVICE_OPEN,
	VLU_CMD_FD_STORE,
	VLU_CMD_FD_RETRIEVE,
	VLU_CMD_FD_LIST,
	VLU_CMD_FD_REMOVE,
	VLU_CMD_EVENTS_SUBSCRIBE,
	/* live-update commands (docs/UPDATE.md) */
	VLU_CMD_VMM_MAPPINGS,
	VLU_CMD_UPDATE_START,
	VLU_CMD_UPDATE_STATUS,
	VLU_CMD_UPDATE_ABORT,
	VLU_CMD_UPDATE_SAVED,
	VLU_CMD_UPDATE_CLAIM,
	VLU_CMD_UPDATE_READY,
	VLU_CMD_UPDATE_ARMED,
	VLU_CMD_DEVICE_REOPEN,
	_VLU_CMD_MAX,
};

struct vlu_command {
	enum vlu_cmd_id id;
	const char *name;
	const struct vlu_arg *args;
	size_t n_args;
	unsigned perm;		 /* enum vlu_perm bits: who may call it */
	enum vlu_fds_in fds_in;	 /* fds the request carries */
	bool fds_out;		 /* the reply carries fds */
	const char *summary;	 /* one line, for CLI help and docs */
};

/* vlu_commands[i].id == i for every i < _VLU_CMD_MAX */
extern const struct vlu_command vlu_commands[_VLU_CMD_MAX];

const struct vlu_command *vlu_command_find(const char *name);

/* An argument type as docs/PROTOCOL.md section 7 writes it ("int", "[name]", ...), for help and errors. */
const char *vlu_arg_type_name(enum vlu_arg_type t);

/* Check a request's arguments (may be NULL = {}) and fd count against the table entry, before any side
 * effect: unknown keys, missing required keys, wrong types, out-of-range values, fd count mismatch.
 * Returns 0 or a negative errno, with a human description in errbuf; the class is InvalidArgument
 * (or LimitExceeded for too many fds). */
int vlu_command_check(const struct vlu_command *cmd, json_object *args, size_t nfds,
		      enum vlu_error_class *ret_class, char *errbuf, size_t errlen);

/* Split a parsed message into its parts (borrowed references into msg).  -EINVAL when it is not a
 * well-formed request: "execute" not a string, "arguments" not an object, unknown top-level keys. */
int vlu_request_parse(json_object *msg, const char **ret_execute, json_object **ret_args, json_object **ret_id,
		      char *errbuf, size_t errlen);

/* The request's "id" member (borrowed), or NULL when absent, JSON null, not a valid id
 * (vlu_id_valid()) or msg is not an object.  Usable when vlu_request_parse() failed, so that an error
 * reply can still echo the id. */
json_object *vlu_request_id(json_object *msg);

/* A request id is a string (strict UTF-8, no NUL) or an integer within int64; NULL (absent or JSON
 * null) is no id and valid too.  Anything else is refused (InvalidArgument) and not echoed. */
bool vlu_id_valid(json_object *id);

/* Builders.  They take ownership of ret/data (also on failure); id is borrowed (copied by reference count).
 * NULL when an allocation failed (or vlu_event_new's name is NULL), never a partly built object. */
json_object *vlu_reply_return(json_object *ret, json_object *id);
json_object *vlu_reply_error(enum vlu_error_class cls, const char *desc, json_object *id);
json_object *vlu_event_new(const char *name, json_object *data);
json_object *vlu_greeting_new(const char *package, const char *const *capabilities);

/* ---- events (docs/PROTOCOL.md section 8) ---- */

/* Every event name vlud sends: THE list.  The daemon emits by id, the argument checker and the daemon's
 * per-connection filter (events.subscribe "events") look names up here, tests/unit/test-proto walks it. */
enum vlu_event_id {
	VLU_EV_INSTANCE_REGISTERED,
	VLU_EV_INSTANCE_REATTACHED,
	VLU_EV_INSTANCE_ORPHANED,
	VLU_EV_INSTANCE_RELEASED,
	VLU_EV_DEVICE_OPENED,
	VLU_EV_DEVICE_REOPENED,
	VLU_EV_DEVICE_LOST,
	VLU_EV_FD_STORED,
	VLU_EV_FD_REMOVED,
	VLU_EV_DAEMON_STARTED,
	VLU_EV_UPDATE_STARTED,
	VLU_EV_UPDATE_PHASE,
	VLU_EV_UPDATE_SAVE,
	VLU_EV_UPDATE_EXEC,
	VLU_EV_UPDATE_ARM,
	VLU_EV_UPDATE_EXEC_SENT,
	VLU_EV_UPDATE_CLAIM_REFUSED,
	VLU_EV_UPDATE_RESTARTING_PREVIOUS,
	VLU_EV_UPDATE_ROLLED_BACK,
	VLU_EV_UPDATE_REFUSED,
	VLU_EV_UPDATE_COMPLETED,
	VLU_EV_UPDATE_KILLED,
	_VLU_EV_MAX,
};

/* vlu_event_names[i] is event i's wire name */
extern const char *const vlu_event_names[_VLU_EV_MAX];

/* The events.subscribe filter: one bit per enum vlu_event_id. */
typedef uint64_t vlu_event_mask;
#define VLU_EVENT_BIT(id) ((vlu_event_mask)1 << (id))
#define VLU_EVENTS_ALL (VLU_EVENT_BIT(_VLU_EV_MAX) - 1)
#define VLU_EVENTS_FILTER_MAX 16 /* names in one events.subscribe "events" argument */

/* The id of an event name, or -ENOENT (NULL too). */
int vlu_event_find(const char *name);

/* An events.subscribe "events" value -> its mask: a JSON array of 1..VLU_EVENTS_FILTER_MAX strings, each a
 * known event name (duplicates allowed).  0, or -EINVAL with a description naming the bad entry (what the
 * argument checker reports: it calls this). */
int vlu_event_mask_from_json(json_object *arr, vlu_event_mask *ret, char *errbuf, size_t errlen);

/* Name rules shared by instance and fd names. */
bool vlu_name_valid(const char *s);

#endif /* VLU_PROTO_H */
