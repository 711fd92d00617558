/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* spawn.c - start a successor VMM (see spawn.h) */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "config.h"
#include "spawn.h"
#include "vlud.h"

#define MAX_ARGS 64

static ev_child reaper;
static bool reaper_started;

static void reap_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)loop;
	(void)revents;
	log_info("successor pid %d ended (status 0x%x)", w->rpid, w->rstatus);
}

int spawn_successor(const char *binary, json_object *argv, uid_t uid, gid_t gid, const gid_t *groups,
		    size_t n_groups, const char *token, const char *instance, uint64_t memlock_bytes, pid_t *ret_pid, int *ret_pidfd)
{
	char *args[MAX_ARGS + 1] = {};
	size_t n = argv ? json_object_array_length(argv) : 0;
	char tok[128], ins[128], sock[256];
	int pidfd;
	pid_t pid;

	if (n > MAX_ARGS)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		args[i] = (char *)json_object_get_string(json_object_array_get_idx(argv, i));
	if (n == 0)
		args[0] = (char *)binary;
	snprintf(tok, sizeof(tok), "VLU_UPDATE_TOKEN=%s", token);
	snprintf(ins, sizeof(ins), "VLU_UPDATE_INSTANCE=%s", instance);
	snprintf(sock, sizeof(sock), "VLUD_SOCKET=%s", vl.cfg->socket_path ? vl.cfg->socket_path : VLUD_DEFAULT_SOCKET);
	if (!reaper_started) {
		ev_child_init(&reaper, reap_cb, 0, 0);
		ev_child_start(vl.loop, &reaper);
		reaper_started = true;
	}

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char *envp[] = { tok, ins, sock, "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
		sigset_t all;
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		struct rlimit rl;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (null >= 0)
			dup2(null, 0);
		if (memlock_bytes && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
		    (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < memlock_bytes)) {
			if (rl.rlim_cur != RLIM_INFINITY)
				rl.rlim_cur = memlock_bytes;
			if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
				rl.rlim_max = rl.rlim_cur;
			(void)setrlimit(RLIMIT_MEMLOCK, &rl);
		}
		(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		if (setgroups(n_groups, n_groups ? groups : NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(126);
		(void)setsid();
		execve(binary, args, envp);
		_exit(127);
	}
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		int e = -errno;

		kill(pid, SIGKILL);
		return e;
	}
	log_info("spawned successor %s as pid %d (uid %u gid %u, %zu supplementary groups)", binary, (int)pid,
		 (unsigned)uid, (unsigned)gid, n_groups);
	*ret_pid = pid;
	*ret_pidfd = pidfd;
	return 0;
}
