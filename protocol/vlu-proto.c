/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-proto.c - the vlud wire format: framing over SOCK_SEQPACKET with
 * SCM_RIGHTS, bounded JSON parsing, request splitting, argument checking,
 * reply/event/greeting builders and error class names.
 *
 * Never logs, never exits, never raises SIGPIPE (MSG_NOSIGNAL).  Returns
 * >= 0 or -errno; output parameters are written only on success.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "basics.h"
#include "vlu-proto.h"

/* ---- error classes ---- */

static const char *const error_class_names[_VLU_ERR_MAX] = {
	[VLU_ERR_GENERIC] = "GenericError",
	[VLU_ERR_COMMAND_NOT_FOUND] = "CommandNotFound",
	[VLU_ERR_INVALID_ARGUMENT] = "InvalidArgument",
	[VLU_ERR_NOT_NEGOTIATED] = "NotNegotiated",
	[VLU_ERR_PERMISSION_DENIED] = "PermissionDenied",
	[VLU_ERR_NOT_FOUND] = "NotFound",
	[VLU_ERR_BUSY] = "Busy",
	[VLU_ERR_LIMIT_EXCEEDED] = "LimitExceeded",
	[VLU_ERR_DEVICE_ERROR] = "DeviceError",
	[VLU_ERR_UNSUPPORTED] = "Unsupported",
	[VLU_ERR_TIMEOUT] = "Timeout",
	[VLU_ERR_INTERNAL] = "Internal",
};

const char *vlu_error_class_name(enum vlu_error_class c)
{
	if ((unsigned)c >= _VLU_ERR_MAX)
		return error_class_names[VLU_ERR_GENERIC];
	return error_class_names[c];
}

int vlu_error_class_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < _VLU_ERR_MAX; i++)
		if (strcmp(name, error_class_names[i]) == 0)
			return i;
	return -EINVAL;
}

/* ---- framing ---- */

int vlu_msg_send(int sock, const char *buf, size_t len, const int *fds, size_t nfds)
{
	/* Control buffer big enough for the largest fd array, aligned for cmsghdr. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VLU_MAX_FDS_PER_MSG)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (sock < 0 || !buf)
		return -EBADF;
	/* A zero-length SOCK_SEQPACKET message reads as EOF on the other side: never send one. */
	if (len == 0)
		return -EINVAL;
	if (len > VLU_MAX_MSG_BYTES || nfds > VLU_MAX_FDS_PER_MSG)
		return -EMSGSIZE;
	if (nfds > 0) {
		struct cmsghdr *cmsg;

		if (!fds)
			return -EINVAL;
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] < 0)
				return -EBADF;
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}

	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* SOCK_SEQPACKET sends are atomic; a short count means the socket type is wrong. */
	if ((size_t)n != len)
		return -EPROTO;
	return 0;
}

ssize_t vlu_msg_recv_all(int sock, char *buf, size_t bufsz, int ret_fds[VLU_MAX_FDS_PER_MSG], size_t *ret_nfds)
{
	/* Room for SCM_MAX_FD fds (all a message can carry: the kernel never has to drop, and so close, one
	 * in our thread) plus SCM_CREDENTIALS in case SO_PASSCRED is on. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VLU_MAX_FDS_PER_MSG) + CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct iovec iov;
	struct msghdr mh;
	size_t nfds = 0;
	ssize_t n;

	*ret_nfds = 0;
	if (sock < 0)
		return -EBADF;
	if (!buf || bufsz < 2 || !ret_fds)
		return -EINVAL;

	iov = (struct iovec){ .iov_base = buf, .iov_len = bufsz - 1 };
	mh = (struct msghdr){
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k > VLU_MAX_FDS_PER_MSG - nfds)
			k = VLU_MAX_FDS_PER_MSG - nfds; /* cannot happen: the control buffer holds no more */
		memcpy(ret_fds + nfds, CMSG_DATA(c), k * sizeof(int));
		nfds += k;
	}
	*ret_nfds = nfds;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE; /* the fds are the caller's to close */
	buf[n] = '\0';
	return n;
}

ssize_t vlu_msg_recv(int sock, char *buf, size_t bufsz, int *ret_fds, size_t max_fds, size_t *ret_nfds)
{
	int fds[VLU_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	ssize_t n;

	if (max_fds > 0 && !ret_fds)
		return -EINVAL;
	n = vlu_msg_recv_all(sock, buf, bufsz, fds, &nfds);
	if (n < 0 && n != -EMSGSIZE)
		return n;
	if (n == -EMSGSIZE || nfds > max_fds || (n == 0 && nfds > 0)) {
		/* The part of the message or of its fds we did get is useless, more fds than the caller
		 * accepts, or fds riding on an empty message (EOF): drop them all. */
		close_many(fds, nfds);
		return n == 0 ? 0 : -EMSGSIZE;
	}
	if (ret_nfds) {
		if (nfds)
			memcpy(ret_fds, fds, nfds * sizeof(int));
		*ret_nfds = nfds;
	} else {
		close_many(fds, nfds); /* caller did not ask for fds: do not leak them */
	}
	return n;
}

/* ---- JSON ---- */

int vlu_json_parse(const char *buf, size_t len, int max_depth, json_object **ret)
{
	json_tokener *tok;
	json_object *j;
	enum json_tokener_error jerr;
	size_t end;
	int r = 0;

	if (!buf || !ret)
		return -EINVAL;
	if (max_depth <= 0)
		max_depth = VLU_DEFAULT_MAX_DEPTH;
	if (len == 0 || len > (size_t)INT32_MAX)
		return -EINVAL;
	/* json-c stops at a NUL byte in some states; a message must be text. */
	if (memchr(buf, '\0', len))
		return -EINVAL;

	tok = json_tokener_new_ex(max_depth);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

	j = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr == json_tokener_error_depth) {
		r = -E2BIG;
		goto fail;
	}
	if (jerr != json_tokener_success || !j) {
		/* includes json_tokener_continue: the object is incomplete */
		r = -EINVAL;
		goto fail;
	}
	/* Only whitespace may follow the one object. */
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", buf[i])) {
			r = -EINVAL;
			goto fail;
		}
	if (!json_object_is_type(j, json_type_object)) {
		r = -EINVAL;
		goto fail;
	}
	*ret = j;
	return 0;
fail:
	json_object_put(j);
	return r;
}

const char *vlu_json_dump(json_object *j, size_t *ret_len)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
							  &len);
	if (s && ret_len)
		*ret_len = len;
	return s;
}

/* ---- names ---- */

bool vlu_name_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n < 1 || n > VLU_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* ---- command table lookup ---- */

const struct vlu_command *vlu_command_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < _VLU_CMD_MAX; i++)
		if (vlu_commands[i].name && strcmp(vlu_commands[i].name, name) == 0)
			return &vlu_commands[i];
	return NULL;
}

/* ---- argument checking ---- */

_printf_(3, 4) static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

const char *vlu_arg_type_name(enum vlu_arg_type t)
{
	switch (t) {
	case VLU_ARG_STRING:
		return "string";
	case VLU_ARG_NAME:
		return "name";
	case VLU_ARG_INT:
		return "int";
	case VLU_ARG_BOOL:
		return "bool";
	case VLU_ARG_NAME_ARRAY:
		return "[name]";
	case VLU_ARG_STRING_ARRAY:
		return "[string]";
	case VLU_ARG_OBJECT:
		return "object";
	case VLU_ARG_OBJECT_ARRAY:
		return "[object]";
	}
	return "?";
}

static const struct vlu_arg *find_arg(const struct vlu_command *cmd, const char *key)
{
	for (size_t i = 0; i < cmd->n_args; i++)
		if (strcmp(cmd->args[i].name, key) == 0)
			return &cmd->args[i];
	return NULL;
}

/* Check one argument value against its schema; -EINVAL with a description on mismatch. */
static int check_arg(const struct vlu_arg *a, json_object *v, char *errbuf, size_t errlen)
{
	switch (a->type) {
	case VLU_ARG_STRING:
	case VLU_ARG_NAME: {
		if (!json_object_is_type(v, json_type_string))
			goto wrong_type;
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);
		if (strlen(s) != len) {
			set_err(errbuf, errlen, "argument '%s' contains a NUL character", a->name);
			return -EINVAL;
		}
		if ((int64_t)len < a->min || (int64_t)len > a->max) {
			set_err(errbuf, errlen, "argument '%s' must be %" PRId64 "..%" PRId64 " characters long",
				a->name, a->min, a->max);
			return -EINVAL;
		}
		if (a->type == VLU_ARG_NAME && !vlu_name_valid(s)) {
			set_err(errbuf, errlen, "argument '%s' is not a valid name (1..%d of [A-Za-z0-9_.:-])", a->name,
				VLU_NAME_MAX);
			return -EINVAL;
		}
		return 0;
	}
	case VLU_ARG_INT: {
		if (!json_object_is_type(v, json_type_int))
			goto wrong_type;
		int64_t x = json_object_get_int64(v);
		/* json-c saturates values beyond int64; the range check below catches those as long as
		 * max < INT64_MAX and min > INT64_MIN, which the table guarantees (unit-tested). */
		if (x < a->min || x > a->max) {
			set_err(errbuf, errlen, "argument '%s' must be in %" PRId64 "..%" PRId64, a->name, a->min,
				a->max);
			return -EINVAL;
		}
		return 0;
	}
	case VLU_ARG_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			goto wrong_type;
		return 0;
	case VLU_ARG_OBJECT:
		if (!json_object_is_type(v, json_type_object))
			goto wrong_type;
		return 0;
	case VLU_ARG_NAME_ARRAY:
	case VLU_ARG_STRING_ARRAY:
	case VLU_ARG_OBJECT_ARRAY: {
		if (!json_object_is_type(v, json_type_array))
			goto wrong_type;
		size_t n = json_object_array_length(v);
		if ((int64_t)n < a->min || (int64_t)n > a->max) {
			set_err(errbuf, errlen, "argument '%s' must have %" PRId64 "..%" PRId64 " entries", a->name,
				a->min, a->max);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (a->type == VLU_ARG_OBJECT_ARRAY) {
				if (!json_object_is_type(e, json_type_object)) {
					set_err(errbuf, errlen, "argument '%s': entry %zu is not an object", a->name, i);
					return -EINVAL;
				}
				continue;
			}
			if (!json_object_is_type(e, json_type_string) ||
			    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
				set_err(errbuf, errlen, "argument '%s': entry %zu is not a string", a->name, i);
				return -EINVAL;
			}
			if (a->type != VLU_ARG_NAME_ARRAY)
				continue;
			const char *s = json_object_get_string(e);
			if (!vlu_name_valid(s)) {
				set_err(errbuf, errlen,
					"argument '%s': entry %zu is not a valid name (1..%d of [A-Za-z0-9_.:-])", a->name,
					i, VLU_NAME_MAX);
				return -EINVAL;
			}
			/* names in one request must be distinct (n <= 253, quadratic is fine) */
			for (size_t k = 0; k < i; k++)
				if (strcmp(s, json_object_get_string(json_object_array_get_idx(v, k))) == 0) {
					set_err(errbuf, errlen, "argument '%s': name '%s' appears twice", a->name, s);
					return -EINVAL;
				}
		}
		return 0;
	}
	}
wrong_type:
	set_err(errbuf, errlen, "argument '%s' must be of type %s", a->name, vlu_arg_type_name(a->type));
	return -EINVAL;
}

int vlu_command_check(const struct vlu_command *cmd, json_object *args, size_t nfds, enum vlu_error_class *ret_class,
		      char *errbuf, size_t errlen)
{
	enum vlu_error_class cls = VLU_ERR_INVALID_ARGUMENT;
	int r;

	if (!cmd)
		return -EINVAL;
	if (errbuf && errlen)
		errbuf[0] = '\0';

	if (nfds > VLU_MAX_FDS_PER_MSG) {
		cls = VLU_ERR_LIMIT_EXCEEDED;
		set_err(errbuf, errlen, "too many fds (%zu, at most %d per message)", nfds, VLU_MAX_FDS_PER_MSG);
		r = -E2BIG;
		goto fail;
	}

	if (args && !json_object_is_type(args, json_type_object)) {
		set_err(errbuf, errlen, "'arguments' must be an object");
		r = -EINVAL;
		goto fail;
	}

	if (args) {
		json_object_object_foreach(args, key, val) {
			const struct vlu_arg *a = find_arg(cmd, key);

			if (!a) {
				set_err(errbuf, errlen, "unknown argument '%.64s' for command '%s'", key, cmd->name);
				r = -EINVAL;
				goto fail;
			}
			r = check_arg(a, val, errbuf, errlen);
			if (r < 0)
				goto fail;
		}
	}

	for (size_t i = 0; i < cmd->n_args; i++) {
		const struct vlu_arg *a = &cmd->args[i];

		if (a->required && !(args && json_object_object_get_ex(args, a->name, NULL))) {
			set_err(errbuf, errlen, "missing required argument '%s' for command '%s'", a->name, cmd->name);
			r = -EINVAL;
			goto fail;
		}
	}

	switch (cmd->fds_in) {
	case VLU_FDS_NONE:
		if (nfds > 0) {
			set_err(errbuf, errlen, "command '%s' takes no fds, got %zu", cmd->name, nfds);
			r = -EINVAL;
			goto fail;
		}
		break;
	case VLU_FDS_PER_NAME: {
		json_object *names = NULL;
		size_t want = 0;

		if (args && json_object_object_get_ex(args, "names", &names) &&
		    json_object_is_type(names, json_type_array))
			want = json_object_array_length(names);
		if (nfds != want) {
			set_err(errbuf, errlen, "command '%s' needs one fd per name: %zu names, %zu fds", cmd->name, want,
				nfds);
			r = -EINVAL;
			goto fail;
		}
		break;
	}
	}
	return 0;

fail:
	if (ret_class)
		*ret_class = cls;
	return r;
}

/* ---- requests ---- */

json_object *vlu_request_id(json_object *msg)
{
	json_object *id = NULL;

	if (!msg || !json_object_is_type(msg, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(msg, "id", &id))
		return NULL;
	return id;
}

int vlu_request_parse(json_object *msg, const char **ret_execute, json_object **ret_args, json_object **ret_id,
		      char *errbuf, size_t errlen)
{
	json_object *exec = NULL, *args = NULL, *id = NULL;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!msg || !json_object_is_type(msg, json_type_object)) {
		set_err(errbuf, errlen, "a request must be a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(msg, key, val) {
		if (strcmp(key, "execute") == 0)
			exec = val;
		else if (strcmp(key, "arguments") == 0) {
			if (!json_object_is_type(val, json_type_object)) {
				set_err(errbuf, errlen, "'arguments' must be an object");
				return -EINVAL;
			}
			args = val;
		} else if (strcmp(key, "id") == 0)
			id = val;
		else {
			set_err(errbuf, errlen, "unknown member '%.64s' in request", key);
			return -EINVAL;
		}
	}
	if (!exec || !json_object_is_type(exec, json_type_string)) {
		set_err(errbuf, errlen, "'execute' must be a string naming the command");
		return -EINVAL;
	}
	if (strlen(json_object_get_string(exec)) != (size_t)json_object_get_string_len(exec)) {
		set_err(errbuf, errlen, "'execute' contains a NUL character");
		return -EINVAL;
	}

	if (ret_execute)
		*ret_execute = json_object_get_string(exec);
	if (ret_args)
		*ret_args = args;
	if (ret_id)
		*ret_id = id;
	return 0;
}

/* ---- builders ---- */

/* o[key] = v, v just allocated: -ENOMEM when its allocation (v NULL) or the add failed (v freed), so that
 * a builder returns NULL rather than an object with a null where a member should be */
static int add_new(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int append_new(json_object *a, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

json_object *vlu_reply_return(json_object *ret, json_object *id)
{
	json_object *r = json_object_new_object();

	if (!r)
		goto fail;
	if (!ret) {
		ret = json_object_new_object();
		if (!ret)
			goto fail;
	}
	if (json_object_object_add(r, "return", ret) < 0)
		goto fail;
	ret = NULL; /* r's */
	if (id && add_new(r, "id", json_object_get(id)) < 0)
		goto fail;
	return r;
fail:
	json_object_put(ret);
	json_object_put(r);
	return NULL;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), or 0. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* A copy of s with every byte that is not part of valid UTF-8 replaced by '?': descriptions are
 * often built with "%.64s" from client strings, which may cut a multi-byte character in half, and
 * everything we send must be valid UTF-8. */
static char *utf8_sanitized(const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return NULL;
	for (unsigned char *p = (unsigned char *)copy; *p;) {
		size_t n = utf8_seq_len(p); /* stops at the NUL: continuation checks fail on it */
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	return copy;
}

json_object *vlu_reply_error(enum vlu_error_class cls, const char *desc, json_object *id)
{
	_cleanup_json_ json_object *r = NULL;
	_cleanup_free_ char *clean = NULL;
	json_object *e;

	clean = utf8_sanitized(desc ? desc : "");
	if (!clean)
		return NULL;

	r = json_object_new_object();
	e = json_object_new_object();
	if (!r || !e) {
		json_object_put(e);
		return NULL;
	}
	if (json_object_object_add(r, "error", e) < 0) {
		json_object_put(e);
		return NULL;
	}
	if (add_new(e, "class", json_object_new_string(vlu_error_class_name(cls))) < 0 ||
	    add_new(e, "desc", json_object_new_string(clean)) < 0)
		return NULL;
	if (id && add_new(r, "id", json_object_get(id)) < 0)
		return NULL;
	return TAKE_PTR(r);
}

json_object *vlu_event_new(const char *name, json_object *data)
{
	_cleanup_json_ json_object *ev = NULL;
	json_object *ts;
	struct timespec now;

	if (!name)
		goto fail;
	ev = json_object_new_object();
	if (!ev)
		goto fail;
	if (!data) {
		data = json_object_new_object();
		if (!data)
			return NULL;
	}
	if (add_new(ev, "event", json_object_new_string(name)) < 0)
		goto fail;
	if (json_object_object_add(ev, "data", data) < 0)
		goto fail;
	data = NULL; /* ev's */
	clock_gettime(CLOCK_REALTIME, &now);
	ts = json_object_new_object();
	if (!ts)
		return NULL;
	if (json_object_object_add(ev, "timestamp", ts) < 0) {
		json_object_put(ts);
		return NULL;
	}
	if (add_new(ts, "seconds", json_object_new_int64((int64_t)now.tv_sec)) < 0 ||
	    add_new(ts, "microseconds", json_object_new_int64((int64_t)(now.tv_nsec / 1000))) < 0)
		return NULL;
	return TAKE_PTR(ev);
fail:
	json_object_put(data);
	return NULL;
}

json_object *vlu_greeting_new(const char *package, const char *const *capabilities)
{
	_cleanup_json_ json_object *g = NULL;
	json_object *body, *ver, *caps;

	g = json_object_new_object();
	body = json_object_new_object();
	if (!g || !body) {
		json_object_put(body);
		return NULL;
	}
	if (json_object_object_add(g, "VLU", body) < 0) {
		json_object_put(body);
		return NULL;
	}
	ver = json_object_new_object();
	if (!ver)
		return NULL;
	if (json_object_object_add(body, "version", ver) < 0) {
		json_object_put(ver);
		return NULL;
	}
	if (add_new(ver, "major", json_object_new_int(VLU_PROTO_MAJOR)) < 0 ||
	    add_new(ver, "minor", json_object_new_int(VLU_PROTO_MINOR)) < 0 ||
	    add_new(ver, "micro", json_object_new_int(VLU_PROTO_MICRO)) < 0 ||
	    add_new(ver, "package", json_object_new_string(package ? package : "")) < 0)
		return NULL;
	caps = json_object_new_array();
	if (!caps)
		return NULL;
	if (json_object_object_add(body, "capabilities", caps) < 0) {
		json_object_put(caps);
		return NULL;
	}
	for (size_t i = 0; capabilities && capabilities[i]; i++)
		if (append_new(caps, json_object_new_string(capabilities[i])) < 0)
			return NULL;
	return TAKE_PTR(g);
}
