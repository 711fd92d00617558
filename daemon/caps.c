/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * caps.c - drop to the capabilities vlud needs after its socket is bound
 * and its fds adopted.  Each kept capability, and why (docs/CONFIG.md):
 *   CAP_SYS_RESOURCE  raise a successor VMM's RLIMIT_MEMLOCK with prlimit() before it re-pins guest RAM
 *                     (vhost-vdpa ignores CAP_IPC_LOCK; kernel-facts.md 3)
 *   CAP_SYS_PTRACE    kcmp(KCMP_FILE) and /proc/PID/{status,fd} of VMMs running under other uids
 *   CAP_KILL          SIGKILL a successor VMM running under the instance's uid: one vlud just spawned
 *                     whose pidfd cannot be taken (kill(), daemon/spawn.c), and, with
 *                     update.kill_failed_successor, one that fails a live update while it holds or is
 *                     about to take the instance's fds (pidfd_send_signal(), docs/UPDATE.md "The signals
 *                     D sends").  Never the VMM that started a transfer-mode update.
 *   CAP_SETUID, CAP_SETGID  spawn a successor VMM with the instance's uid, gid and groups
 * Not kept: CAP_DAC_OVERRIDE (vlud runs as root, which owns /dev/vhost-vdpa-N; the service's
 * DeviceAllow= is what grants access), CAP_CHOWN/CAP_FOWNER (only needed to create the socket, done
 * before the drop), CAP_NET_ADMIN (vdpa devices are created by the operator, not by vlud), and all others.
 */
#include <errno.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "caps.h"
#include "vlud.h"

static const cap_value_t keep[] = {
	CAP_SYS_RESOURCE, CAP_SYS_PTRACE, CAP_KILL, CAP_SETUID, CAP_SETGID,
};

static bool kept(cap_value_t c)
{
	for (size_t i = 0; i < ELEMENTSOF(keep); i++)
		if (keep[i] == c)
			return true;
	return false;
}

static void cap_freep(cap_t *c)
{
	if (*c)
		cap_free(*c);
}

/* text form of the current capability sets, for the log (malloc()ed) */
static char *caps_describe(void)
{
	_cleanup_(cap_freep) cap_t cur = cap_get_proc();
	char *t, *r;

	if (!cur)
		return NULL;
	t = cap_to_text(cur, NULL);
	if (!t)
		return NULL;
	r = strdup(t);
	cap_free(t);
	return r;
}

int caps_drop(void)
{
	_cleanup_(cap_freep) cap_t cur = NULL, want = NULL;
	cap_flag_value_t v;
	bool any = false, have_setpcap = false;
	cap_value_t last = (cap_value_t)cap_max_bits() - 1;

	cur = cap_get_proc();
	if (!cur)
		return -errno;
	for (cap_value_t c = 0; c <= last; c++)
		if (cap_get_flag(cur, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
			any = true;
	if (cap_get_flag(cur, CAP_SETPCAP, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET)
		have_setpcap = true;

	if (any) {
		/* bounding set first: dropping from it needs CAP_SETPCAP, which we drop below */
		for (cap_value_t c = 0; have_setpcap && c <= last; c++) {
			if (kept(c) || CAP_IS_SUPPORTED(c) == 0)
				continue;
			if (cap_drop_bound(c) < 0 && errno != EINVAL) {
				int e = errno;

				log_error("cannot drop capability %d from the bounding set: %s", (int)c, strerror(e));
				return -e;
			}
		}
		(void)cap_reset_ambient();

		want = cap_init(); /* all clear */
		if (!want)
			return -errno;
		for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
			/* keep only what we have */
			if (cap_get_flag(cur, keep[i], CAP_PERMITTED, &v) == 0 && v == CAP_SET) {
				cap_set_flag(want, CAP_PERMITTED, 1, &keep[i], CAP_SET);
				cap_set_flag(want, CAP_EFFECTIVE, 1, &keep[i], CAP_SET);
			}
		}
		if (cap_set_proc(want) < 0) {
			int e = errno;

			log_error("cap_set_proc: %s", strerror(e));
			return -e;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		int e = errno;

		log_error("PR_SET_NO_NEW_PRIVS: %s", strerror(e));
		return -e;
	}
	if (any) {
		_cleanup_free_ char *d = caps_describe();

		log_info("capabilities now: %s", d ? d : "?");
	}
	return 0;
}
