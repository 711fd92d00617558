/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devstate.h - a vhost-vdpa net device's externally visible state, read by any holder of its fd, for the
 * update verdict's device_state {before, after, equal}: read before the suspend and once the new image is
 * ready, equal when the update kept (or the successor restored) what the device showed before.
 */
#ifndef VLUD_DEVSTATE_H
#define VLUD_DEVSTATE_H

#include <stdbool.h>
#include <json-c/json.h>

/* {"status", "features", "backend_features", "config": {"mac", "status", "max_virtqueue_pairs", "mtu"}}
 * (GET_STATUS, GET_FEATURES, GET_BACKEND_FEATURES, GET_CONFIG; config members only as far as the config
 * space reaches); a failed read gives an object with "error" (the ioctl and errno) instead.  Never NULL. */
json_object *devstate_read(int fd);
/* Both read without error and every member equal; ret_diff (may be NULL) gets the names that differ,
 * "error" when either has one (caller frees). */
bool devstate_equal(json_object *before, json_object *after, json_object **ret_diff);
/* Device dev's differences as the verdict names them, "DEV: member" ("DEV: not read" when before or after
 * is NULL, "DEV: error" when a read failed; a "device" member is ignored), appended to differ; those
 * that declared (the successor's device_state_changes: strings "member" for every device or
 * "DEV: member", each covering the members under it) does not cover are appended to undeclared too
 * (may be NULL).  Returns the number of undeclared differences. */
size_t devstate_compare(const char *dev, json_object *before, json_object *after, json_object *declared,
			json_object *differ, json_object *undeclared);

#endif
