/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmpin.h - pinned and locked memory of a process, from /proc/PID/status (VmPin:, VmLck:, in kB),
 * and its RLIMIT_MEMLOCK.  Used by the update engine to verify that pinned guest RAM moved as expected
 * (docs/UPDATE.md "Verdict").
 */
#ifndef VLUD_VMPIN_H
#define VLUD_VMPIN_H

#include <stdint.h>
#include <sys/types.h>

/* *ret_pin_kb / *ret_lck_kb (either may be NULL).  -ENOENT: no such process; -ENODATA: no VmPin line
 * (a kernel thread or a zombie). */
int vmpin_read(pid_t pid, int64_t *ret_pin_kb, int64_t *ret_lck_kb);
/* Parse the text of a status file (pure; tests/unit/test-vmpin.c).  Outputs untouched on failure. */
int vmpin_parse(const char *status, int64_t *ret_pin_kb, int64_t *ret_lck_kb);

/* soft RLIMIT_MEMLOCK of pid in bytes (UINT64_MAX = unlimited) */
int vmpin_memlock_get(pid_t pid, uint64_t *ret_soft, uint64_t *ret_hard);
/* raise pid's RLIMIT_MEMLOCK (soft and, if needed, hard) to at least bytes */
int vmpin_memlock_raise(pid_t pid, uint64_t bytes);

#endif
