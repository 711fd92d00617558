/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-linger - a hostile tenant for the rig (scenario tenant-linger-update): hands vlud an fd whose
 * close blocks for SECONDS, then stays alive so that it keeps blocking.
 *
 * As root it brings the loopback interface up and listens on 127.0.0.1 (a peer that never accepts
 * nor reads), drops to UID, connects a TCP socket to that listener, queues megabytes behind the closed
 * window, sets SO_LINGER {1, SECONDS}, registers instance NAME with vlud at SOCKET, stores the socket
 * (fd.store: the policy must allow "socket" for UID) and removes it (fd.remove): vlud's copy is the last
 * reference, its close() waits SECONDS.  Prints "vlu-linger: lingering" once fd.remove has answered,
 * then sleeps SECONDS + 30 (keeping the listener) and exits.
 *
 * Usage: vlu-linger SOCKET UID NAME SECONDS
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "vlu.h"

static int die(const char *what, int r)
{
	fprintf(stderr, "vlu-linger: %s: %s\n", what, strerror(r < 0 ? -r : r));
	return 1;
}

static int lo_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (!(ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)))
		r = -errno;
	close(s);
	return r;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	static char chunk[65536];
	const char *name;
	struct vlu *v = NULL;
	int l, s, r, secs, small = 4096, unsent = 0;
	struct linger lg;
	uid_t uid;

	if (argc != 5)
		return fprintf(stderr, "usage: vlu-linger SOCKET UID NAME SECONDS\n"), 2;
	uid = (uid_t)atoi(argv[2]);
	name = argv[3];
	secs = atoi(argv[4]);
	if ((r = lo_up()) < 0)
		return die("loopback up", r);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return die("socket", -errno);
	(void)setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		return die("listen", -errno);
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		return die("setresuid", -errno);

	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return die("connect", -errno);
	memset(chunk, 'x', sizeof(chunk));
	(void)fcntl(s, F_SETFL, O_NONBLOCK);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 4096; i++)
			if (send(s, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
				break;
		usleep(50 * 1000);
	}
	if (ioctl(s, TIOCOUTQ, &unsent) < 0 || unsent < 256 * 1024)
		return die("nothing unsent: its close would not wait", -ENOBUFS);
	lg = (struct linger){ .l_onoff = 1, .l_linger = secs };
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		return die("SO_LINGER", -errno);

	if ((r = vlu_connect(argv[1], 5000, &v)) < 0)
		return die("vlu_connect", r);
	if ((r = vlu_register(v, name, false)) < 0)
		return die("register", r);
	{
		const char *names[] = { "linger" };

		if ((r = vlu_fd_store(v, names, &s, 1, false)) < 0)
			return die("fd.store", r);
		close(s); /* vlud's copy is the last one */
		if ((r = vlu_fd_remove(v, names, 1, NULL)) < 0)
			return die("fd.remove", r);
	}
	printf("vlu-linger: lingering (%d kB unsent, SO_LINGER %d s)\n", unsent / 1024, secs);
	fflush(stdout);
	sleep((unsigned)secs + 30);
	vlu_close(v);
	close(l);
	return 0;
}
