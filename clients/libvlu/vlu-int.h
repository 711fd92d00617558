/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vlu-int.h - libvlu's functions shared between its files, not exported (not installed). */
#ifndef VLU_INT_H
#define VLU_INT_H

/* vlu-teardown.c: the new image's claim marks the old image's teardown pipe FD_CLOEXEC (0 or -errno). */
int vlu_td_cloexec(void);

struct vlu;
/* vlu.c, the connection kept across an exec-mode exec: the old image, right before execv, clears the
 * socket's FD_CLOEXEC and describes it in $VLU_CONNECTION (0 or -errno with nothing changed); after a
 * failed exec, vlu_keep_undo() sets FD_CLOEXEC again and unsets the variable. */
int vlu_keep_prepare(struct vlu *v);
void vlu_keep_undo(struct vlu *v);

/* vlu.c, timing of the last call on v (CLOCK_MONOTONIC us, 0 = not yet): its request sent, its reply
 * read off the socket (before parsing and checking it).  For the reference VMM's pause breakdown
 * (docs/MINIVMM.md): what a call costs this process (building, serialising, parsing) against the round
 * trip through the daemon. */
#include <stdint.h>
void vlu_call_times(struct vlu *v, uint64_t *ret_sent_us, uint64_t *ret_reply_us);

#endif /* VLU_INT_H */
