/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-proc.h - what the update engine reads of a process in /proc: its start time and state (the
 * successor held stopped, R14: every thread's), its effective uid.  libc only (no libev, no globals): linked
 * into the unit tests as it is.
 */
#ifndef VLUD_UPDATE_PROC_H
#define VLUD_UPDATE_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* /proc/PID/stat: the start time (field 22) into *ret_start and, when ret_state, the state letter (the
 * thread-group leader's); 0, or -errno (-ENOENT, -ESRCH: the process exited; -EINVAL: unparsable) */
int upd_pid_stat(pid_t pid, uint64_t *ret_start, char *ret_state);
/* R14: the same, with the state of the whole thread group (update_tasks_state() over every
 * /proc/PID/task/TID/stat, at most UPD_TASKS_MAX threads read: more count as not stopped) */
#define UPD_TASKS_MAX 1024
int upd_pid_stat_all(pid_t pid, uint64_t *ret_start, char *ret_state);
/* the effective uid of pid (/proc/PID/status): 0, or -errno (-ENOENT: it exited) */
int upd_pid_euid(pid_t pid, uid_t *ret);

#endif
