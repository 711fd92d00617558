/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vlu-int.h - libvlu's functions shared between its files, not exported (not installed). */
#ifndef VLU_INT_H
#define VLU_INT_H

/* vlu-teardown.c: the new image's claim marks the old image's teardown pipe FD_CLOEXEC (0 or -errno). */
int vlu_td_cloexec(void);

#endif /* VLU_INT_H */
