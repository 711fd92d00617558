/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sdstore.c - PID 1's side of sd_notify and the fd store (sdstore.h), shared by the host tests and the
 * rig's vlu-fdstore.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/kcmp.h>

#include "basics.h"
#include "sdstore.h"
#include "vlu-proto.h"

int sdstore_open(struct sdstore *s, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->fd = -EBADF;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (strlen(s->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -errno;
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		s->fd = safe_close(s->fd);
		return r;
	}
	/* like PID 1: ask for credentials (the daemon may send them) */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	return 0;
}

void sdstore_close(struct sdstore *s)
{
	for (size_t i = 0; i < s->n_store; i++)
		s->store[i].fd = safe_close(s->store[i].fd);
	s->n_store = 0;
	s->fd = safe_close(s->fd);
}

static bool same_file(int a, int b)
{
	/* what systemd does: an fd already in the store (same file) is not added twice */
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

void sdstore_handle(struct sdstore *s, char *msg, int *fds, size_t nfds)
{
	bool fdstore = false, fdstoreremove = false;
	char fdname[256] = "stored";

	s->n_msgs++;
	for (char *save = NULL, *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "READY=1") == 0) {
			s->ready = true;
			s->n_ready++;
		} else if (strcmp(line, "STOPPING=1") == 0)
			s->stopping = true;
		else if (strcmp(line, "WATCHDOG=1") == 0)
			s->n_watchdog++;
		else if (strncmp(line, "STATUS=", 7) == 0) {
			snprintf(s->status, sizeof(s->status), "%s", line + 7);
			s->n_status++;
		}
		else if (strcmp(line, "FDSTORE=1") == 0)
			fdstore = true;
		else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
			fdstoreremove = true;
		else if (strncmp(line, "FDNAME=", 7) == 0)
			snprintf(fdname, sizeof(fdname), "%s", line + 7);
	}
	if (fdstoreremove) {
		size_t j = 0;

		for (size_t i = 0; i < s->n_store; i++) {
			if (strcmp(s->store[i].name, fdname) == 0) {
				s->store[i].fd = safe_close(s->store[i].fd);
				s->n_removed_total++;
			} else
				s->store[j++] = s->store[i];
		}
		s->n_store = j;
	}
	if (fdstore) {
		for (size_t i = 0; i < nfds; i++) {
			bool dup = false;

			for (size_t k = 0; k < s->n_store; k++)
				if (same_file(s->store[k].fd, fds[i]))
					dup = true;
			if (dup)
				continue;
			if (s->n_store >= SDSTORE_MAX) {
				s->n_errors++;
				continue;
			}
			snprintf(s->store[s->n_store].name, sizeof(s->store[0].name), "%s", fdname);
			s->store[s->n_store++].fd = fds[i];
			fds[i] = -EBADF;
			s->n_stored_total++;
		}
	}
	close_many(fds, nfds); /* fds not kept (no FDSTORE=1 or duplicates) are closed, like PID 1 */
}

int sdstore_recv_one(struct sdstore *s)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VLU_MAX_FDS_PER_MSG) + CMSG_SPACE(sizeof(struct ucred))];
	} control;
	char buf[4096];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
			     .msg_controllen = sizeof(control) };
	int fds[VLU_MAX_FDS_PER_MSG];
	size_t nfds = 0;
	ssize_t len;

	len = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (len < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (nfds + k > ELEMENTSOF(fds))
				k = ELEMENTSOF(fds) - nfds;
			memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
			nfds += k;
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		s->n_errors++;
		close_many(fds, nfds);
		return 1;
	}
	buf[len] = 0;
	sdstore_handle(s, buf, fds, nfds);
	return 1;
}

int sdstore_find(const struct sdstore *s, const char *name)
{
	for (size_t i = 0; i < s->n_store; i++)
		if (strcmp(s->store[i].name, name) == 0)
			return s->store[i].fd;
	return -ENOENT;
}

int sdstore_child_listen_fds(const int *fds, const char *const *names, size_t n)
{
	_cleanup_free_ int *hi = NULL;
	_cleanup_free_ char *fdnames = NULL;
	size_t len = 1;
	char buf[32];

	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("LISTEN_PID");
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	hi = calloc(n, sizeof(*hi));
	fdnames = calloc(1, len);
	if (!hi || !fdnames)
		return -ENOMEM;
	/* move the passed fds out of the way, then to 3.. (dup2 leaves CLOEXEC off) */
	for (size_t i = 0; i < n; i++) {
		hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 1000);
		if (hi[i] < 0)
			return -errno;
	}
	for (size_t i = 0; i < n; i++) {
		if (dup2(hi[i], 3 + (int)i) < 0)
			return -errno;
		if (i)
			strcat(fdnames, ":");
		strcat(fdnames, names[i]);
	}
	snprintf(buf, sizeof(buf), "%zu", n);
	setenv("LISTEN_FDS", buf, 1);
	setenv("LISTEN_FDNAMES", fdnames, 1);
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
	return 0;
}

int sdstore_listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 || listen(fd, 128) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}
