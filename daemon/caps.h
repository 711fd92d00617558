/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* caps.h - least privilege (docs/CONFIG.md "Capabilities") */
#ifndef VLUD_CAPS_H
#define VLUD_CAPS_H

/* Keep only the capabilities vlud needs after start-up, drop the rest from the effective, permitted,
 * inheritable, ambient and bounding sets, then PR_SET_NO_NEW_PRIVS.  A process without capabilities
 * (a non-root test run) only sets no-new-privs.  Returns 0 or -errno. */
int caps_drop(void);

#endif
