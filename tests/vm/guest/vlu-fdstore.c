/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-fdstore - the fd-store part of systemd's PID 1, played by a test program because the rig's guest
 * boots no systemd (its PID 1 is tests/vm/guest/init).  It supervises one service (vlud) the way
 * vlud.socket + vlud.service (Type=notify, Restart=on-failure, FileDescriptorStoreMax=) do:
 *
 *   - the listening socket: AF_UNIX SOCK_SEQPACKET at --socket PATH, created once and kept across
 *     restarts (vlud.socket), passed first as "vlud.socket";
 *   - NOTIFY_SOCKET (--notify PATH): READY=1, STATUS=, STOPPING=1, WATCHDOG=1, FDSTORE=1 + FDNAME=,
 *     FDSTOREREMOVE=1 + FDNAME=, BARRIER=1 (tests/integration/sdstore.c, the same code the host tests use); the
 *     stored fds are kept here while the service is down;
 *   - when the service dies (a signal, or a non-zero exit) it is started again after --restart-ms
 *     (default 100) with LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID: the socket, then every stored fd
 *     under its FDNAME; a clean exit (status 0) ends vlu-fdstore too, unless --restart-on-exit (a
 *     `systemctl restart`, or a stop and a start with FileDescriptorStorePreserve=yes: the store kept);
 *     SIGTERM/SIGINT are passed on to the service, which is waited for, then vlu-fdstore exits.
 *
 * For the scenarios (--dir DIR): DIR/pid (the service's current pid, "0" while it is down), DIR/starts
 * (how many times it was started), DIR/ready (READY=1 count), DIR/store (the stored fd names, one a
 * line), rewritten on every change.  Log lines on stderr start with "vlu-fdstore:".
 *
 *   vlu-fdstore --socket PATH [--notify PATH] [--dir DIR] [--restart-ms N] [--max-starts N] [--restart-on-exit]
 *               -- PROG ARGS...
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basics.h"
#include "sdstore.h"

static struct sdstore S;
static const char *dir;
static pid_t child;
static unsigned starts;

#define LOG(...) (fprintf(stderr, "vlu-fdstore: " __VA_ARGS__), fputc('\n', stderr))

static void put_file(const char *name, const char *text)
{
	char path[512], tmp[520];
	FILE *f;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fputs(text, f);
	if (fclose(f) == 0)
		(void)rename(tmp, path);
}

static void publish(void)
{
	char buf[64];
	size_t len = 1;
	char *list;

	snprintf(buf, sizeof(buf), "%d\n", (int)child);
	put_file("pid", buf);
	snprintf(buf, sizeof(buf), "%u\n", starts);
	put_file("starts", buf);
	snprintf(buf, sizeof(buf), "%u\n", S.n_ready);
	put_file("ready", buf);
	for (size_t i = 0; i < S.n_store; i++)
		len += strlen(S.store[i].name) + 1;
	list = calloc(1, len);
	if (!list)
		return;
	for (size_t i = 0; i < S.n_store; i++) {
		strcat(list, S.store[i].name);
		strcat(list, "\n");
	}
	put_file("store", list);
	free(list);
}

/* fork + exec the service with the socket and every stored fd */
static int start(int lfd, char **argv)
{
	const int n = (int)S.n_store + 1;
	_cleanup_free_ int *fds = calloc((size_t)n, sizeof(int));
	_cleanup_free_ const char **names = calloc((size_t)n, sizeof(char *));
	pid_t pid;

	if (!fds || !names)
		return -ENOMEM;
	fds[0] = lfd;
	names[0] = "vlud.socket";
	for (size_t i = 0; i < S.n_store; i++) {
		fds[i + 1] = S.store[i].fd;
		names[i + 1] = S.store[i].name;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (sdstore_child_listen_fds(fds, names, (size_t)n) < 0)
			_exit(126);
		setenv("NOTIFY_SOCKET", S.path, 1);
		{
			/* who keeps the fd store, as a systemd user manager tells its services (vlud skips only
			 * that process's copies of a device in device.reopen's holder scan) */
			char m[16];

			snprintf(m, sizeof(m), "%d", (int)getppid());
			setenv("MANAGERPID", m, 1);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "vlu-fdstore: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	child = pid;
	starts++;
	LOG("started %s, pid %d, with %d fds (the socket and %zu stored)", argv[0], (int)pid, n, S.n_store);
	publish();
	return 0;
}

static void drain(void)
{
	unsigned before = S.n_msgs;

	while (sdstore_recv_one(&S) > 0)
		;
	if (S.n_msgs != before)
		publish();
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },   { "notify", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },      { "restart-ms", required_argument, NULL, 'r' },
		{ "max-starts", required_argument, NULL, 'm' }, { "restart-on-exit", no_argument, NULL, 'e' }, {}
	};
	const char *sock = NULL, *notify = "/run/vlu-fdstore.notify";
	unsigned restart_ms = 100, max_starts = 20;
	_cleanup_close_ int lfd = -EBADF, sfd = -EBADF;
	bool stopping = false, restart_on_exit = false;
	sigset_t ss;
	int c, r, rc = 0;

	while ((c = getopt_long(argc, argv, "s:n:d:r:m:e", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'n': notify = optarg; break;
		case 'd': dir = optarg; break;
		case 'r': restart_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': max_starts = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'e': restart_on_exit = true; break;
		default: return 2;
		}
	}
	if (!sock || optind >= argc) {
		fprintf(stderr, "usage: vlu-fdstore --socket PATH [--notify PATH] [--dir DIR] [--restart-ms N] "
				"[--max-starts N] [--restart-on-exit] -- PROG ARGS...\n");
		return 2;
	}
	(void)unlink(notify);
	r = sdstore_open(&S, notify);
	if (r < 0) {
		LOG("notify socket %s: %s", notify, strerror(-r));
		return 1;
	}
	lfd = sdstore_listen_socket(sock);
	if (lfd < 0) {
		LOG("socket %s: %s", sock, strerror(-lfd));
		return 1;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 1;
	if (start(lfd, argv + optind) < 0)
		return 1;

	for (;;) {
		struct pollfd p[] = { { .fd = S.fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		struct signalfd_siginfo si;
		int status;
		pid_t w;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			drain();
		if (!p[1].revents)
			continue;
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				LOG("%s: stopping the service (pid %d)", strsignal((int)si.ssi_signo), (int)child);
				stopping = true;
				if (child > 0)
					kill(child, SIGTERM);
			}
		while (child > 0 && (w = waitpid(child, &status, WNOHANG)) == child) {
			drain(); /* what it sent before it died counts (PID 1 reads its notify socket first too) */
			if (WIFSIGNALED(status))
				LOG("service pid %d killed by signal %d (%s)", (int)child, WTERMSIG(status),
				    strsignal(WTERMSIG(status)));
			else
				LOG("service pid %d exited with status %d", (int)child, WEXITSTATUS(status));
			child = 0;
			S.ready = false;
			publish();
			if (stopping || (!restart_on_exit && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
				rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				goto out;
			}
			if (starts >= max_starts) {
				LOG("started %u times: giving up", starts);
				rc = 1;
				goto out;
			}
			{
				struct timespec ts = { .tv_sec = restart_ms / 1000,
						       .tv_nsec = (long)(restart_ms % 1000) * 1000000L };

				nanosleep(&ts, NULL);
			}
			drain();
			if (start(lfd, argv + optind) < 0) {
				rc = 1;
				goto out;
			}
		}
	}
out:
	LOG("exiting (%zu fds in the store closed)", S.n_store);
	sdstore_close(&S);
	(void)unlink(notify);
	(void)unlink(sock);
	return rc;
}
