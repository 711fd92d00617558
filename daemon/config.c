/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * config.c - load and validate the configuration.
 *
 * The file is JSON read with json-c's non-strict tokener, which accepts C
 * comments, so config/vlud.conf documents itself.  Every key is known: an
 * unknown key, a wrong type or an out-of-range value is an error naming
 * the key, and the daemon refuses to start (exit 1).  Missing keys take the
 * defaults below (documented in config/vlud.conf and docs/CONFIG.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <json-c/json.h>

#include "basics.h"
#include "config.h"
#include "fdtype.h"
#include "json-oom.h"
#include "vlu-proto.h"

#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_DEPTH 16

struct ctx {
	char *err;
	size_t errlen;
};

_printf_(3, 4) static int fail(struct ctx *x, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return r;
}

static void defaults(struct vlud_config *c)
{
	c->socket_mode = 0660;
	c->limits = (struct vlud_limits){
		.max_message_bytes = VLU_DEFAULT_MAX_MSG_BYTES,
		.max_json_depth = VLU_DEFAULT_MAX_DEPTH,
		/* an update.claim hands every held fd plus the state memfd over in one message: keep
		 * max_fds_per_instance + 1 <= max_fds_per_message (docs/CONFIG.md) */
		.max_fds_per_message = 253,
		.max_fds_per_instance = 252,
		.max_instances = 32,
		.max_connections = 128,
		.max_pending_output_bytes = 1024 * 1024,
		.max_connections_per_uid = 16,
		.max_instances_per_uid = 8,
		.max_fds_per_uid = 1024,
		.max_pending_output_bytes_per_uid = 4 * 1024 * 1024,
		.operator_reserved_connections = 8,
		.handshake_timeout_ms = 5000,
		.idle_timeout_ms = 60000,
	};
	c->update = (struct vlud_update_timeouts){
		.suspend_ms = 2000,
		.save_ms = 10000,
		.exec_ms = 10000,
		.claim_ms = 30000,
		.commit_ms = 10000,
	};
	c->update_policy = (struct vlud_update_policy){
		.allow_memlock_raise = true,
		.allow_disruptive = false,
		.max_state_bytes = 1024 * 1024,
		.restart_previous = true,
		.kill_failed_successor = true,
	};
	c->orphan_expiry_s = 0;
	/* operators: root only; VMMs: nobody (default deny) */
}

static void idset_done(struct vlud_idset *s)
{
	free(s->uids);
	free(s->gids);
	*s = (struct vlud_idset){};
}

void config_free(struct vlud_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->socket_path);
	idset_done(&c->operators);
	for (size_t i = 0; i < c->n_vmms; i++) {
		idset_done(&c->vmms[i].who);
		for (size_t k = 0; k < c->vmms[i].n_devices; k++)
			free(c->vmms[i].devices[k]);
		free(c->vmms[i].devices);
		for (size_t k = 0; k < c->vmms[i].n_names; k++)
			free(c->vmms[i].names[k]);
		free(c->vmms[i].names);
	}
	free(c->vmms);
	free(c);
}

static int get_uint(struct ctx *x, const char *where, json_object *v, uint64_t min, uint64_t max, unsigned *ret)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int))
		return fail(x, -EINVAL, "%s: must be an integer", where);
	errno = 0;
	n = json_object_get_int64(v);
	if (errno != 0 || n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return fail(x, -ERANGE, "%s: must be between %llu and %llu", where, (unsigned long long)min,
			    (unsigned long long)max);
	*ret = (unsigned)n;
	return 0;
}

/* A list of uids or gids: integers or user/group names resolved now. */
static int get_ids(struct ctx *x, const char *where, json_object *v, bool groups, unsigned **ret, size_t *ret_n)
{
	_cleanup_free_ unsigned *ids = NULL;
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return fail(x, -EINVAL, "%s: must be an array of %s", where, groups ? "gids or group names" : "uids or user names");
	n = json_object_array_length(v);
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		return fail(x, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);

		if (json_object_is_type(e, json_type_int)) {
			int64_t id = json_object_get_int64(e);

			if (id < 0 || id >= (int64_t)UINT32_MAX)
				return fail(x, -ERANGE, "%s[%zu]: id out of range", where, i);
			ids[i] = (unsigned)id;
		} else if (json_object_is_type(e, json_type_string)) {
			const char *name = json_object_get_string(e);

			if (groups) {
				struct group *gr = getgrnam(name);

				if (!gr)
					return fail(x, -ENOENT, "%s[%zu]: unknown group '%s'", where, i, name);
				ids[i] = gr->gr_gid;
			} else {
				struct passwd *pw = getpwnam(name);

				if (!pw)
					return fail(x, -ENOENT, "%s[%zu]: unknown user '%s'", where, i, name);
				ids[i] = pw->pw_uid;
			}
		} else
			return fail(x, -EINVAL, "%s[%zu]: must be an integer or a name", where, i);
	}
	*ret = TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}

static int parse_idset(struct ctx *x, const char *where, json_object *o, struct vlud_idset *s)
{
	char w[128];
	int r;

	json_object_object_foreach(o, key, v) {
		snprintf(w, sizeof(w), "%s.%s", where, key);
		if (strcmp(key, "uids") == 0) {
			free(s->uids);
			s->uids = NULL;
			r = get_ids(x, w, v, false, &s->uids, &s->n_uids);
		} else if (strcmp(key, "gids") == 0) {
			free(s->gids);
			s->gids = NULL;
			r = get_ids(x, w, v, true, &s->gids, &s->n_gids);
		} else if (strcmp(key, "devices") == 0 || strcmp(key, "fd_types") == 0 || strcmp(key, "max_fds") == 0 ||
			   strcmp(key, "names") == 0)
			continue; /* vmm rule keys, parsed by the caller */
		else
			return fail(x, -EINVAL, "%s: unknown key", w);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool device_entry_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= PATH_MAX)
		return false;
	if (s[0] == '/')
		return true;
	/* a vdpa device name: one path component */
	if (strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	return true;
}

/* an instance name with fnmatch wildcards */
static bool name_pattern_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-*?[]!", s[i]))
			return false;
	return true;
}

static int parse_vmm_rule(struct ctx *x, const char *where, json_object *o, const struct vlud_limits *lim,
			  struct vlud_vmm_rule *rule)
{
	char w[128];
	bool have_max = false;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return fail(x, -EINVAL, "%s: must be an object", where);
	r = parse_idset(x, where, o, &rule->who);
	if (r < 0)
		return r;
	rule->fd_types = 0;
	json_object_object_foreach(o, key, v) {
		snprintf(w, sizeof(w), "%s.%s", where, key);
		if (strcmp(key, "devices") == 0) {
			size_t n;

			if (!json_object_is_type(v, json_type_array))
				return fail(x, -EINVAL, "%s: must be an array of device names or paths", w);
			n = json_object_array_length(v);
			rule->devices = calloc(n ? n : 1, sizeof(char *));
			if (!rule->devices)
				return fail(x, -ENOMEM, "out of memory");
			for (size_t i = 0; i < n; i++) {
				json_object *e = json_object_array_get_idx(v, i);

				if (!json_object_is_type(e, json_type_string) ||
				    !device_entry_valid(json_object_get_string(e)))
					return fail(x, -EINVAL,
						    "%s[%zu]: must be a vdpa device name (\"vdpa0\") or an absolute path",
						    w, i);
				rule->devices[i] = strdup(json_object_get_string(e));
				if (!rule->devices[i])
					return fail(x, -ENOMEM, "out of memory");
				rule->n_devices = i + 1;
			}
		} else if (strcmp(key, "fd_types") == 0) {
			if (!json_object_is_type(v, json_type_array))
				return fail(x, -EINVAL, "%s: must be an array of fd type names", w);
			for (size_t i = 0; i < json_object_array_length(v); i++) {
				json_object *e = json_object_array_get_idx(v, i);
				int t;

				if (!json_object_is_type(e, json_type_string) ||
				    (t = fdtype_from_name(json_object_get_string(e))) < 0)
					return fail(x, -EINVAL,
						    "%s[%zu]: unknown fd type (vhost-vdpa, memfd, eventfd, socket, pipe, file, chardev, other)",
						    w, i);
				rule->fd_types |= 1u << t;
			}
		} else if (strcmp(key, "names") == 0) {
			size_t n;

			if (!json_object_is_type(v, json_type_array))
				return fail(x, -EINVAL, "%s: must be an array of instance name patterns", w);
			n = json_object_array_length(v);
			rule->names = calloc(n ? n : 1, sizeof(char *));
			if (!rule->names)
				return fail(x, -ENOMEM, "out of memory");
			for (size_t i = 0; i < n; i++) {
				json_object *e = json_object_array_get_idx(v, i);
				const char *pat = json_object_get_string(e);

				if (!json_object_is_type(e, json_type_string) || !name_pattern_valid(pat))
					return fail(x, -EINVAL,
						    "%s[%zu]: must be a name pattern (1..64 of [A-Za-z0-9_.:-] and the "
						    "fnmatch wildcards * ? [ ] !)",
						    w, i);
				rule->names[i] = strdup(pat);
				if (!rule->names[i])
					return fail(x, -ENOMEM, "out of memory");
				rule->n_names = i + 1;
			}
		} else if (strcmp(key, "max_fds") == 0) {
			r = get_uint(x, w, v, 0, lim->max_fds_per_instance, &rule->max_fds);
			if (r < 0)
				return r;
			have_max = true;
		}
		/* uids/gids handled by parse_idset, anything else rejected there */
	}
	if (!have_max)
		rule->max_fds = lim->max_fds_per_instance;
	return 0;
}

struct uint_key {
	const char *name;
	size_t off;
	uint64_t min, max;
};

#define LIM(field, mn, mx) { #field, offsetof(struct vlud_limits, field), mn, mx }
static const struct uint_key limit_keys[] = {
	LIM(max_message_bytes, 256, VLU_MAX_MSG_BYTES),
	LIM(max_json_depth, 4, 64),
	LIM(max_fds_per_message, 1, VLU_MAX_FDS_PER_MSG),
	LIM(max_fds_per_instance, 1, 65536),
	LIM(max_instances, 1, 65536),
	LIM(max_connections, 1, 65536),
	LIM(max_pending_output_bytes, 4096, 1u << 30),
	LIM(max_connections_per_uid, 1, 65536),
	LIM(max_instances_per_uid, 1, 65536),
	LIM(max_fds_per_uid, 1, 1u << 20),
	LIM(max_pending_output_bytes_per_uid, 4096, 1u << 30),
	LIM(operator_reserved_connections, 0, 65535),
	LIM(handshake_timeout_ms, 1, 3600000),
	LIM(idle_timeout_ms, 0, 86400000),
};
#define UPD(field) { #field, offsetof(struct vlud_update_timeouts, field), 1, 3600000 }
static const struct uint_key update_keys[] = {
	UPD(suspend_ms), UPD(save_ms), UPD(exec_ms), UPD(claim_ms), UPD(commit_ms),
};

static int parse_uint_object(struct ctx *x, const char *where, json_object *o, const struct uint_key *keys,
			     size_t n_keys, void *base)
{
	char w[128];

	if (!json_object_is_type(o, json_type_object))
		return fail(x, -EINVAL, "%s: must be an object", where);
	json_object_object_foreach(o, key, v) {
		const struct uint_key *k = NULL;
		int r;

		for (size_t i = 0; i < n_keys; i++)
			if (strcmp(keys[i].name, key) == 0)
				k = &keys[i];
		snprintf(w, sizeof(w), "%s.%s", where, key);
		if (!k)
			return fail(x, -EINVAL, "%s: unknown key", w);
		r = get_uint(x, w, v, k->min, k->max, (unsigned *)((char *)base + k->off));
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_socket(struct ctx *x, json_object *o, struct vlud_config *c)
{
	if (!json_object_is_type(o, json_type_object))
		return fail(x, -EINVAL, "socket: must be an object");
	json_object_object_foreach(o, key, v) {
		if (strcmp(key, "path") == 0) {
			const char *p = json_object_get_string(v);

			if (!json_object_is_type(v, json_type_string) || p[0] != '/' ||
			    strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				return fail(x, -EINVAL, "socket.path: must be an absolute path shorter than 108 bytes");
			free(c->socket_path);
			c->socket_path = strdup(p);
			if (!c->socket_path)
				return fail(x, -ENOMEM, "out of memory");
		} else if (strcmp(key, "mode") == 0) {
			const char *s = json_object_get_string(v);
			char *end;
			unsigned long m;

			if (!json_object_is_type(v, json_type_string))
				return fail(x, -EINVAL, "socket.mode: must be an octal string such as \"0660\"");
			errno = 0;
			m = strtoul(s, &end, 8);
			if (errno || *end || end == s || m > 0777)
				return fail(x, -EINVAL, "socket.mode: must be an octal string such as \"0660\"");
			c->socket_mode = (mode_t)m;
		} else if (strcmp(key, "group") == 0) {
			if (json_object_is_type(v, json_type_null)) {
				c->socket_group_set = false;
			} else if (json_object_is_type(v, json_type_int)) {
				int64_t g = json_object_get_int64(v);

				if (g < 0 || g >= (int64_t)UINT32_MAX)
					return fail(x, -ERANGE, "socket.group: gid out of range");
				c->socket_group = (gid_t)g;
				c->socket_group_set = true;
			} else if (json_object_is_type(v, json_type_string)) {
				struct group *gr = getgrnam(json_object_get_string(v));

				if (!gr)
					return fail(x, -ENOENT, "socket.group: unknown group '%s'", json_object_get_string(v));
				c->socket_group = gr->gr_gid;
				c->socket_group_set = true;
			} else
				return fail(x, -EINVAL, "socket.group: must be a group name, a gid or null");
		} else
			return fail(x, -EINVAL, "socket.%s: unknown key", key);
	}
	return 0;
}

static int parse_root(struct ctx *x, json_object *root, struct vlud_config *c)
{
	json_object *v;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return fail(x, -EINVAL, "the configuration must be a JSON object");

	/* limits first: vmm rules are checked against them */
	if (json_object_object_get_ex(root, "limits", &v)) {
		r = parse_uint_object(x, "limits", v, limit_keys, ELEMENTSOF(limit_keys), &c->limits);
		if (r < 0)
			return r;
	}

	json_object_object_foreach(root, key, val) {
		if (strcmp(key, "limits") == 0)
			continue;
		if (strcmp(key, "socket") == 0)
			r = parse_socket(x, val, c);
		else if (strcmp(key, "timeouts") == 0) {
			if (!json_object_is_type(val, json_type_object))
				return fail(x, -EINVAL, "timeouts: must be an object");
			r = 0;
			json_object_object_foreach(val, k2, v2) {
				if (strcmp(k2, "update") != 0)
					return fail(x, -EINVAL, "timeouts.%s: unknown key", k2);
				r = parse_uint_object(x, "timeouts.update", v2, update_keys, ELEMENTSOF(update_keys),
						      &c->update);
				if (r < 0)
					return r;
			}
		} else if (strcmp(key, "update") == 0) {
			/* the update policy (docs/CONFIG.md): allow_memlock_raise, allow_disruptive,
			 * restart_previous, kill_failed_successor, held_successor_survives_stop (booleans) and
			 * max_state_bytes */
			if (!json_object_is_type(val, json_type_object))
				return fail(x, -EINVAL, "update: must be an object");
			r = 0;
			json_object_object_foreach(val, k4, v4) {
				static const struct {
					const char *key;
					size_t off;
				} bools[] = {
					{ "allow_memlock_raise", offsetof(struct vlud_update_policy, allow_memlock_raise) },
					{ "allow_disruptive", offsetof(struct vlud_update_policy, allow_disruptive) },
					{ "restart_previous", offsetof(struct vlud_update_policy, restart_previous) },
					{ "kill_failed_successor", offsetof(struct vlud_update_policy, kill_failed_successor) },
					{ "held_successor_survives_stop",
					  offsetof(struct vlud_update_policy, held_successor_survives_stop) },
				};
				size_t b = 0;

				while (b < ELEMENTSOF(bools) && strcmp(k4, bools[b].key) != 0)
					b++;
				if (b < ELEMENTSOF(bools)) {
					if (!json_object_is_type(v4, json_type_boolean))
						return fail(x, -EINVAL, "update.%s: must be true or false", k4);
					*(bool *)((char *)&c->update_policy + bools[b].off) = json_object_get_boolean(v4);
				} else if (strcmp(k4, "max_state_bytes") == 0)
					r = get_uint(x, "update.max_state_bytes", v4, 1, 64u * 1024 * 1024,
						     &c->update_policy.max_state_bytes);
				else
					return fail(x, -EINVAL, "update.%s: unknown key", k4);
				if (r < 0)
					return r;
			}
		} else if (strcmp(key, "orphan_expiry_s") == 0)
			r = get_uint(x, "orphan_expiry_s", val, 0, 365u * 86400u, &c->orphan_expiry_s);
		else if (strcmp(key, "operators") == 0) {
			if (!json_object_is_type(val, json_type_object))
				return fail(x, -EINVAL, "operators: must be an object {uids, gids}");
			idset_done(&c->operators);
			json_object_object_foreach(val, k3, v3) {
				(void)v3;
				if (strcmp(k3, "uids") != 0 && strcmp(k3, "gids") != 0)
					return fail(x, -EINVAL, "operators.%s: unknown key", k3);
			}
			r = parse_idset(x, "operators", val, &c->operators);
		} else if (strcmp(key, "vmms") == 0) {
			size_t n;

			if (!json_object_is_type(val, json_type_array))
				return fail(x, -EINVAL, "vmms: must be an array of rules");
			n = json_object_array_length(val);
			c->vmms = calloc(n ? n : 1, sizeof(*c->vmms));
			if (!c->vmms)
				return fail(x, -ENOMEM, "out of memory");
			for (size_t i = 0; i < n; i++) {
				char w[32];

				snprintf(w, sizeof(w), "vmms[%zu]", i);
				c->n_vmms = i + 1;
				r = parse_vmm_rule(x, w, json_object_array_get_idx(val, i), &c->limits, &c->vmms[i]);
				if (r < 0)
					return r;
			}
			r = 0;
		} else
			return fail(x, -EINVAL, "%s: unknown key", key);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_file(struct ctx *x, const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(x, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return fail(x, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(x, -EINVAL, "%s: not a regular file", path);
	if (st.st_size > CONFIG_MAX_BYTES)
		return fail(x, -EFBIG, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return fail(x, -ENOMEM, "out of memory");
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(x, -errno, "%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* Line and column of byte offset off, for error messages. */
static void line_col(const char *buf, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && buf[i]; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

int config_load(const char *path, struct vlud_config **ret, char *errbuf, size_t errlen)
{
	struct ctx x = { errbuf, errlen };
	struct vlud_config *c;
	_cleanup_free_ char *buf = NULL;
	_cleanup_json_ json_object *root = NULL;
	size_t len = 0;
	int r;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		return fail(&x, -ENOMEM, "out of memory");
	defaults(c);
	c->socket_path = strdup(VLUD_DEFAULT_SOCKET);
	c->operators.uids = calloc(1, sizeof(uid_t)); /* root */
	if (!c->socket_path || !c->operators.uids) {
		config_free(c);
		return fail(&x, -ENOMEM, "out of memory");
	}
	c->operators.n_uids = 1;

	if (path) {
		json_tokener *tok;
		enum json_tokener_error jerr;
		size_t end;

		c->path = strdup(path);
		r = read_file(&x, path, &buf, &len);
		if (r < 0)
			goto fail;
		tok = json_tokener_new_ex(CONFIG_MAX_DEPTH);
		if (!tok) {
			r = fail(&x, -ENOMEM, "out of memory");
			goto fail;
		}
		root = json_tokener_parse_ex(tok, buf, (int)len);
		jerr = json_tokener_get_error(tok);
		end = json_tokener_get_parse_end(tok);
		json_tokener_free(tok);
		if (!root || jerr != json_tokener_success) {
			unsigned line, col;

			line_col(buf, end, &line, &col);
			r = fail(&x, -EINVAL, "%s:%u:%u: %s", path, line, col,
				 jerr == json_tokener_continue ? "unexpected end of file"
						       : json_tokener_error_desc(jerr));
			goto fail;
		}
		/* json-c stops after the first object: only whitespace and comments (already eaten) may follow */
		for (size_t i = end; i < len; i++)
			if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\0') {
				unsigned line, col;

				line_col(buf, i, &line, &col);
				r = fail(&x, -EINVAL, "%s:%u:%u: trailing data after the configuration object", path,
					 line, col);
				goto fail;
			}
		r = parse_root(&x, root, c);
		if (r < 0) {
			/* prefix the file name */
			char tmp[512];

			snprintf(tmp, sizeof(tmp), "%s: %s", path, errbuf);
			snprintf(errbuf, errlen, "%s", tmp);
			goto fail;
		}
	}
	*ret = c;
	return 0;
fail:
	config_free(c);
	return r;
}

static json_object *ids_json(const unsigned *ids, size_t n)
{
	json_object *a = jnew_arr();

	for (size_t i = 0; i < n; i++)
		jappend(a, jnew_int(ids[i]));
	return a;
}

json_object *config_to_json(const struct vlud_config *c)
{
	json_object *o = jnew_obj(), *s, *l, *t, *u, *op, *vm;
	char mode[8];

	s = jnew_obj();
	jadd(s, "path", jnew_str(c->socket_path));
	snprintf(mode, sizeof(mode), "%04o", (unsigned)c->socket_mode);
	jadd(s, "mode", jnew_str(mode));
	jadd(s, "group", c->socket_group_set ? jnew_int(c->socket_group) : NULL);
	jadd(o, "socket", s);

	l = jnew_obj();
	for (size_t i = 0; i < ELEMENTSOF(limit_keys); i++)
		jadd(l, limit_keys[i].name,
		     jnew_int(*(const unsigned *)((const char *)&c->limits + limit_keys[i].off)));
	jadd(o, "limits", l);

	t = jnew_obj();
	u = jnew_obj();
	for (size_t i = 0; i < ELEMENTSOF(update_keys); i++)
		jadd(u, update_keys[i].name,
		     jnew_int(*(const unsigned *)((const char *)&c->update + update_keys[i].off)));
	jadd(t, "update", u);
	jadd(o, "timeouts", t);
	{
		json_object *up = jnew_obj();

		jadd(up, "allow_memlock_raise", jnew_bool(c->update_policy.allow_memlock_raise));
		jadd(up, "allow_disruptive", jnew_bool(c->update_policy.allow_disruptive));
		jadd(up, "max_state_bytes", jnew_int(c->update_policy.max_state_bytes));
		jadd(up, "restart_previous", jnew_bool(c->update_policy.restart_previous));
		jadd(up, "kill_failed_successor", jnew_bool(c->update_policy.kill_failed_successor));
		jadd(up, "held_successor_survives_stop", jnew_bool(c->update_policy.held_successor_survives_stop));
		jadd(o, "update", up);
	}
	jadd(o, "orphan_expiry_s", jnew_int(c->orphan_expiry_s));

	op = jnew_obj();
	jadd(op, "uids", ids_json(c->operators.uids, c->operators.n_uids));
	jadd(op, "gids", ids_json(c->operators.gids, c->operators.n_gids));
	jadd(o, "operators", op);

	vm = jnew_arr();
	for (size_t i = 0; i < c->n_vmms; i++) {
		const struct vlud_vmm_rule *r = &c->vmms[i];
		json_object *ro = jnew_obj(), *d = jnew_arr(), *ft = jnew_arr();

		jadd(ro, "uids", ids_json(r->who.uids, r->who.n_uids));
		jadd(ro, "gids", ids_json(r->who.gids, r->who.n_gids));
		for (size_t k = 0; k < r->n_devices; k++)
			jappend(d, jnew_str(r->devices[k]));
		jadd(ro, "devices", d);
		for (unsigned k = 0; k < _VLUD_FD_TYPE_MAX; k++)
			if (r->fd_types & (1u << k))
				jappend(ft, jnew_str(fdtype_name(k)));
		jadd(ro, "fd_types", ft);
		jadd(ro, "max_fds", jnew_int(r->max_fds));
		if (r->n_names) {
			json_object *nm = jnew_arr();

			for (size_t k = 0; k < r->n_names; k++)
				jappend(nm, jnew_str(r->names[k]));
			jadd(ro, "names", nm);
		}
		jappend(vm, ro);
	}
	jadd(o, "vmms", vm);
	return o;
}
