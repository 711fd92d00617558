/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * spawn.h - start a transfer-mode successor VMM: the instance's uid, gid and supplementary groups (those
 * of the instance's VMM connection, SO_PEERGROUPS), no capabilities beyond what that uid gets (none for a non-root uid: setuid clears them,
 * ambient set emptied), RLIMIT_MEMLOCK raised first when the policy allows (vhost-vdpa ignores
 * CAP_IPC_LOCK), stdin /dev/null, the daemon's stdout/stderr, and in the environment
 * VLU_UPDATE_TOKEN, VLU_UPDATE_INSTANCE and VLUD_SOCKET.  Children are reaped by an ev_child watcher.
 */
#ifndef VLUD_SPAWN_H
#define VLUD_SPAWN_H

#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

/* argv: JSON array of strings (argv[0] included).  memlock_bytes 0: leave the limit alone.
 * *ret_pidfd: a pidfd of the child (owned by the caller, CLOEXEC). */
int spawn_successor(const char *binary, json_object *argv, uid_t uid, gid_t gid, const gid_t *groups,
		    size_t n_groups, const char *token, const char *instance, uint64_t memlock_bytes, pid_t *ret_pid,
		    int *ret_pidfd);

#endif
