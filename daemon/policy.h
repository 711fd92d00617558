/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.h - who may do what (default deny).  A peer's credentials are its
 * SO_PEERCRED uid/gid plus its supplementary groups (SO_PEERGROUPS).
 * A peer may match several VMM rules: it gets the union of their devices
 * and fd types and the largest of their max_fds.
 */
#ifndef VLUD_POLICY_H
#define VLUD_POLICY_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

struct peer_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* owned by the holder */
	size_t n_groups;
};

#define ROLE_OPERATOR (1u << 0)
#define ROLE_VMM (1u << 1)

unsigned policy_roles(const struct vlud_config *c, const struct peer_cred *p);
/* union of fd_types bits over the peer's VMM rules */
unsigned policy_fd_types(const struct vlud_config *c, const struct peer_cred *p);
/* largest max_fds over the peer's VMM rules (0 if none), capped at limits.max_fds_per_instance */
unsigned policy_max_fds(const struct vlud_config *c, const struct peer_cred *p);
/* Is `device` (as the client wrote it) listed verbatim in one of the peer's VMM rules?  A path that a
 * listed vdpa name resolves to is allowed too: the caller checks that with policy_foreach_peer_device()
 * (device.open, daemon/commands.c), since resolving a name reads sysfs. */
bool policy_device_listed(const struct vlud_config *c, const struct peer_cred *p, const char *device);
/* Call fn for every device entry listed in the peer's VMM rules (stops when fn returns true). */
bool policy_foreach_peer_device(const struct vlud_config *c, const struct peer_cred *p,
				bool (*fn)(const char *dev, void *ud), void *ud);
/* May the peer register (or reattach) an instance of this name?  A VMM rule without "names" allows
 * any name; with it, only names matching one of its fnmatch patterns. */
bool policy_name_allowed(const struct vlud_config *c, const struct peer_cred *p, const char *name);
/* Call fn for every device entry listed in any VMM rule, once per distinct string. */
void policy_foreach_device(const struct vlud_config *c, void (*fn)(const char *dev, void *ud), void *ud);

#endif
