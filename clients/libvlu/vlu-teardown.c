/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-teardown.c - libvlu: keep the old image's address space alive across an exec-mode update, so that
 * its teardown runs after the pause (docs/UPDATE.md, "Exec mode: the old address space's teardown").
 *
 * execve() ends with exec_mmap() -> mmput(old mm): when that drops the last user (mm_users), the kernel
 * tears the old address space down right there (exit_mmap: every VMA, every page-table entry of guest
 * RAM the old image had touched), inside the exec and so inside the device's pause.  A process that
 * shares the mm (clone(CLONE_VM) without CLONE_THREAD, which exec's de_thread() would kill) keeps a user:
 * the exec then only drops a reference, and the teardown happens when that process exits.
 *
 * vlu_exec_defer_teardown() (old image, just before execve) starts such a holder: an intermediate
 * child (CLONE_VM, no exit signal) closes every fd but the read end of a pipe, clones the holder
 * (CLONE_VM) and exits; the caller reaps the intermediate, so the holder is reparented to the nearest
 * subreaper or init, which reaps it: no zombie and no SIGCHLD for the VMM, before or after the exec.  The
 * holder blocks in ppoll() on the pipe (every signal blocked: it runs no handler on its small stack) and
 * exits at EOF or after the timeout; it touches nothing but its own stack in the mapping made here.  The
 * write end crosses the exec (no CLOEXEC), named by $VLU_TEARDOWN_FD ("fd:inode"); the new image closes
 * it with vlu_exec_teardown_release() (vlu_update_ready() does it once the daemon answered), and a new
 * image that dies closes it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basics.h"
#include "vlu.h"
#include "vlu-int.h"

#define VLU_EXPORT __attribute__((visibility("default")))
#define TD_MAP_SIZE (64 * 1024)		/* [args][intermediate's stack][holder's stack] */
#define TD_DEFAULT_TIMEOUT_MS 30000
/* the children run on the small stacks below, sharing the caller's TLS: no sanitizer bookkeeping there */
#define TD_CHILD __attribute__((no_sanitize_address, noinline))

/* At the start of the mapping, read by the children (never the caller's stack or heap). */
struct td_args {
	int rfd;
	int timeout_ms;
	volatile int holder_tid;	/* 1 while the holder lives: CLONE_CHILD_CLEARTID zeroes it at its exit */
};

/* Old image: what a failed exec needs to stop the holder again and unmap its stacks. */
static struct {
	void *map;
	int wfd;
} td = { NULL, -EBADF };

TD_CHILD static int holder_main(void *p)
{
	struct td_args *a = p;
	struct pollfd pfd = { .fd = a->rfd, .events = POLLIN };
	struct timespec ts = { a->timeout_ms / 1000, (long)(a->timeout_ms % 1000) * 1000000L };

	/* Returns at EOF (every write end closed), on data, or at the timeout; then the thread exits (the
	 * clone() wrapper calls exit) and, if nobody else uses this mm any more, the kernel tears it down. */
	(void)syscall(SYS_ppoll, &pfd, 1, &ts, NULL, 0);
	return 0;
}

TD_CHILD static int intermediate_main(void *p)
{
	struct td_args *a = p;
	char *map = (char *)p;

	/* hold nothing but the pipe's read end: a copy of a device fd would keep the device from being
	 * released (path C), a copy of the vlud connection would hide the exec from the daemon */
	if (a->rfd > 0 && syscall(SYS_close_range, 0U, (unsigned)a->rfd - 1, 0U) < 0)
		return 1;
	if (syscall(SYS_close_range, (unsigned)a->rfd + 1, ~0U, 0U) < 0)
		return 1;
	if (clone(holder_main, map + TD_MAP_SIZE, CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, a, NULL, NULL,
		  (pid_t *)&a->holder_tid) < 0)
		return 2;
	return 0;
}

VLU_EXPORT int vlu_exec_defer_teardown(int timeout_ms)
{
	_cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
	struct td_args *a;
	sigset_t all, old;
	char env[64];
	struct stat st;
	void *map;
	pid_t pid;
	int p[2], status = 0, r;

	if (td.map)
		return -EALREADY;
	if (timeout_ms <= 0)
		timeout_ms = TD_DEFAULT_TIMEOUT_MS;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	rfd = p[0];
	wfd = p[1];
	if (fstat(wfd, &st) < 0)
		return -errno;
	map = mmap(NULL, TD_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	a = map;
	a->rfd = rfd;
	a->timeout_ms = timeout_ms;
	a->holder_tid = 1;

	/* the children inherit this mask: no handler of ours ever runs on their stacks */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* no exit signal: invisible to the VMM's own waitpid(-1) and SIGCHLD handling, reaped here */
	pid = clone(intermediate_main, (char *)map + TD_MAP_SIZE / 2, CLONE_VM, a);
	r = pid < 0 ? -errno : 0;
	while (pid > 0 && waitpid(pid, &status, __WALL) < 0) {
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		r = WIFEXITED(status) && WEXITSTATUS(status) == 1 ? -ENOSYS : -ECHILD;
	if (r < 0) {
		/* no holder was started (the intermediate exits before anything else runs on the map) */
		(void)munmap(map, TD_MAP_SIZE);
		return r;
	}
	/* the holder runs (or is about to): from here on its stack is not ours to unmap before it exits */
	td.map = map;
	rfd = safe_close(rfd);
	snprintf(env, sizeof(env), "%d:%" PRIu64, wfd, (uint64_t)st.st_ino);
	if (setenv(VLU_TEARDOWN_FD_ENV, env, 1) < 0 || fcntl(wfd, F_SETFD, 0) < 0) {
		r = -errno;
		td.wfd = TAKE_FD(wfd);
		(void)vlu_exec_teardown_release();
		return r;
	}
	td.wfd = TAKE_FD(wfd);
	return 0;
}

/* Old image (the exec failed): stop the holder and unmap its stacks once it is gone. */
static int release_own(void)
{
	struct td_args *a = td.map;
	struct timespec ts = { 0, 10 * 1000000L };

	td.wfd = safe_close(td.wfd);
	for (unsigned i = 0; i < 200 && a->holder_tid != 0; i++)
		(void)syscall(SYS_futex, &a->holder_tid, FUTEX_WAIT, 1, &ts, NULL, 0);
	if (a->holder_tid == 0)
		(void)munmap(td.map, TD_MAP_SIZE);	/* else leave it: the holder may still run on it */
	td.map = NULL;
	return 1;
}

/* New image: the inherited write end named by $VLU_TEARDOWN_FD, if it is still the pipe the old image
 * made (a stale variable in a process that did not inherit the fd must not touch an unrelated one);
 * 0 none, -EINVAL malformed, -ENOENT not that pipe. */
static int td_env_fd(int *ret_fd)
{
	const char *e = getenv(VLU_TEARDOWN_FD_ENV);
	struct stat st;
	uint64_t ino;
	int fd, n = 0;

	if (!e)
		return 0;
	if (sscanf(e, "%d:%" SCNu64 "%n", &fd, &ino, &n) != 2 || e[n] || fd < 0)
		return -EINVAL;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || (uint64_t)st.st_ino != ino)
		return -ENOENT;
	*ret_fd = fd;
	return 1;
}

/* New image, at its claim: the write end must not leak into programs it starts before the release. */
int vlu_td_cloexec(void)
{
	int fd = -EBADF, r = td.map ? 0 : td_env_fd(&fd);

	if (r <= 0)
		return r;
	return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -errno : 0;
}

VLU_EXPORT int vlu_exec_teardown_release(void)
{
	int fd = -EBADF, r;

	if (td.map) {
		(void)unsetenv(VLU_TEARDOWN_FD_ENV);
		return release_own();
	}
	r = td_env_fd(&fd);
	(void)unsetenv(VLU_TEARDOWN_FD_ENV);
	if (r <= 0)
		return r;
	(void)close(fd);
	return 1;
}
