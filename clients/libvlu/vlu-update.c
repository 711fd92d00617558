/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-update.c - libvlu, the VMM side of live update (docs/UPDATE.md).
 *
 * The old image (O) declares its mapping table once (vlu_update_set_mappings), then follows the
 * daemon's events: "update.save" -> save, vlu_update_saved(); "update.exec" -> vlu_update_exec()
 * (execs the new image with VLU_UPDATE_TOKEN set); "update.arm" (transfer mode, paths A and B) -> arm
 * every owned device for the successor, vlu_update_armed(); "update.rolled-back" -> carry on.  The new image
 * (N) calls vlu_update_claim() with the token, restores, then vlu_update_ready().
 * Never logs, prints or exits (vlu_update_exec returns only when execve fails).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "basics.h"
#include "vlu.h"
#include "vlu-int.h"

#define VLU_EXPORT __attribute__((visibility("default")))
#define VLU_CLAIM_RETRY_MS 50
#define VLU_CLAIM_WAIT_MS 30000

static int add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object *n = json_object_new_uint64(v);

	if (!n || json_object_object_add(o, k, n) < 0) {
		json_object_put(n);
		return -ENOMEM;
	}
	return 0;
}

static int add_str(json_object *o, const char *k, const char *v)
{
	json_object *n;

	if (!v)
		return 0;
	n = json_object_new_string(v);
	if (!n || json_object_object_add(o, k, n) < 0) {
		json_object_put(n);
		return -ENOMEM;
	}
	return 0;
}

VLU_EXPORT int vlu_update_set_mappings(struct vlu *v, const struct vlu_mapping *maps, size_t n,
				       const struct vlu_device_pinning *devs, size_t ndevs)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object *a = json_object_new_array(), *d = json_object_new_array();

	if (!args || !a || !d) {
		json_object_put(a);
		json_object_put(d);
		return -ENOMEM;
	}
	json_object_object_add(args, "mappings", a);
	json_object_object_add(args, "devices", d);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_new_object();

		if (!m || !maps[i].memfd)
			return json_object_put(m), -EINVAL;
		json_object_array_add(a, m);
		if (add_u64(m, "iova", maps[i].iova) < 0 || add_u64(m, "size", maps[i].size) < 0 ||
		    add_str(m, "memfd", maps[i].memfd) < 0 || add_u64(m, "offset", maps[i].offset) < 0 ||
		    add_u64(m, "uaddr", maps[i].uaddr) < 0 || add_u64(m, "perm", maps[i].perm) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < ndevs; i++) {
		json_object *e = json_object_new_object();

		if (!e || !devs[i].name)
			return json_object_put(e), -EINVAL;
		json_object_array_add(d, e);
		if (add_str(e, "name", devs[i].name) < 0 || add_str(e, "pinning", devs[i].va ? "va" : "pa") < 0)
			return -ENOMEM;
	}
	return vlu_call(v, "vmm.mappings", args, NULL, 0, 0, NULL, NULL, NULL);
}

VLU_EXPORT int vlu_update_start(struct vlu *v, const char *instance, const char *mode, const char *path,
				bool wait, int timeout_ms, json_object **ret)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	if (!instance || !mode)
		return -EINVAL;
	if (add_str(args, "instance", instance) < 0 || add_str(args, "mode", mode) < 0 ||
	    add_str(args, "path", path) < 0 || json_object_object_add(args, "wait", json_object_new_boolean(wait)) < 0)
		return -ENOMEM;
	return vlu_call(v, "update.start", args, NULL, 0, timeout_ms, ret, NULL, NULL);
}

/* The arguments update.saved always has: {"names": ["state"], "state_size": N}; NULL when out of memory. */
static json_object *saved_args(uint64_t state_size)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object *names = json_object_new_array();

	if (!args || !names) {
		json_object_put(names);
		return NULL;
	}
	json_object_array_add(names, json_object_new_string("state"));
	json_object_object_add(args, "names", names);
	if (add_u64(args, "state_size", state_size) < 0)
		return NULL;
	return TAKE_PTR(args);
}

VLU_EXPORT int vlu_update_saved(struct vlu *v, int state_fd, uint64_t state_size, json_object *vrings)
{
	_cleanup_json_ json_object *args = saved_args(state_size);

	if (!args)
		return -ENOMEM;
	if (vrings && json_object_object_add(args, "vrings", json_object_get(vrings)) < 0)
		return -ENOMEM;
	return vlu_call(v, "update.saved", args, &state_fd, 1, 0, NULL, NULL, NULL);
}

VLU_EXPORT int vlu_update_save_failed(struct vlu *v, int state_fd, const char *why)
{
	_cleanup_json_ json_object *args = saved_args(0);

	if (!args || add_str(args, "error", why ? why : "save failed") < 0)
		return -ENOMEM;
	return vlu_call(v, "update.saved", args, &state_fd, 1, 0, NULL, NULL, NULL);
}

VLU_EXPORT int vlu_update_armed(struct vlu *v, const char *error)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	if (add_str(args, "error", error) < 0)
		return -ENOMEM;
	return vlu_call(v, "update.armed", args, NULL, 0, 0, NULL, NULL, NULL);
}

/* execv the binary update.exec names, $VLU_UPDATE_TOKEN set; keep: the connection crosses the exec too
 * ($VLU_CONNECTION), when it can (otherwise the new image connects anew).  Returns only on failure, with
 * both variables unset and the connection close-on-exec again. */
static int exec_event(json_object *event, struct vlu *keep)
{
	json_object *data = NULL, *argv = NULL, *bin = NULL, *tok = NULL;
	char **args;
	size_t n;
	int r;

	if (!json_object_object_get_ex(event, "data", &data))
		data = event;
	if (!json_object_object_get_ex(data, "binary", &bin) || !json_object_object_get_ex(data, "token", &tok) ||
	    !json_object_is_type(bin, json_type_string) || !json_object_is_type(tok, json_type_string))
		return -EINVAL;
	if (!json_object_object_get_ex(data, "argv", &argv) || !json_object_is_type(argv, json_type_array))
		argv = NULL;
	n = argv ? json_object_array_length(argv) : 0;
	args = calloc(n + 2, sizeof(char *));
	if (!args)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		args[i] = (char *)json_object_get_string(json_object_array_get_idx(argv, i));
	if (n == 0)
		args[0] = (char *)json_object_get_string(bin);
	if (setenv(VLU_UPDATE_TOKEN_ENV, json_object_get_string(tok), 1) < 0) {
		r = -errno;
		free(args);
		return r;
	}
	if (keep && vlu_keep_prepare(keep) < 0)
		keep = NULL; /* not kept: the new image's vlu_update_connect() connects */
	execv(json_object_get_string(bin), args);
	r = -errno;
	if (keep)
		vlu_keep_undo(keep);
	unsetenv(VLU_UPDATE_TOKEN_ENV);
	free(args);
	return r;
}

VLU_EXPORT int vlu_update_exec(json_object *event)
{
	return exec_event(event, NULL);
}

VLU_EXPORT int vlu_update_exec_keep(struct vlu *v, json_object *event)
{
	if (!v)
		return -EINVAL;
	return exec_event(event, v);
}

VLU_EXPORT const char *vlu_update_token(void)
{
	const char *t = getenv(VLU_UPDATE_TOKEN_ENV);

	return t && *t ? t : NULL;
}

VLU_EXPORT int vlu_update_claim(struct vlu *v, const char *instance, const char *token, json_object **ret_info,
				int **ret_fds, size_t *ret_nfds)
{
	_cleanup_json_ json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	if (!instance || !token)
		return -EINVAL;
	if (add_str(args, "instance", instance) < 0 || add_str(args, "token", token) < 0)
		return -ENOMEM;
	(void)vlu_td_cloexec();	/* the old image's teardown pipe stays ours until vlu_update_ready() */
	/* Busy: the right successor, before the old VMM has saved (its token came early) or armed its
	 * devices for us (transfer mode, paths A and B): ask again */
	for (unsigned waited = 0;; waited += VLU_CLAIM_RETRY_MS) {
		int r = vlu_call(v, "update.claim", args, NULL, 0, 0, ret_info, ret_fds, ret_nfds);

		if (r != -EBUSY || waited >= VLU_CLAIM_WAIT_MS)
			return r;
		(void)usleep(VLU_CLAIM_RETRY_MS * 1000);
	}
}

VLU_EXPORT int vlu_update_claim_fd(json_object *info, const char *name)
{
	json_object *fds;

	if (!info || !name || !json_object_object_get_ex(info, "fds", &fds) || !json_object_is_type(fds, json_type_array))
		return -EINVAL;
	for (size_t i = 0; i < json_object_array_length(fds); i++) {
		json_object *e = json_object_array_get_idx(fds, i), *nm;

		if (json_object_object_get_ex(e, "name", &nm) && strcmp(json_object_get_string(nm), name) == 0)
			return (int)i;
	}
	return -ENOENT;
}

VLU_EXPORT int vlu_update_ready_with(struct vlu *v, const char *error, json_object *extra, json_object **ret_verdict)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	int r;

	if (!args)
		return -ENOMEM;
	if (extra && !json_object_is_type(extra, json_type_object))
		return -EINVAL;
	if (extra) {
		json_object_object_foreach(extra, k, val) {
			if (strcmp(k, "error") == 0)
				return -EINVAL; /* that one is the error parameter */
			if (json_object_object_add(args, k, json_object_get(val)) < 0) {
				json_object_put(val);
				return -ENOMEM;
			}
		}
	}
	if (add_str(args, "error", error) < 0)
		return -ENOMEM;
	r = vlu_call(v, "update.ready", args, NULL, 0, 0, ret_verdict, NULL, NULL);
	/* the pause is over (or the update failed): the old image's address space may go now */
	(void)vlu_exec_teardown_release();
	return r;
}

VLU_EXPORT int vlu_update_ready(struct vlu *v, const char *error, json_object **ret_verdict)
{
	return vlu_update_ready_with(v, error, NULL, ret_verdict);
}
