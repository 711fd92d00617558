/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * helper-vmm.c - a minimal VMM for the shell integration tests, through libvlu:
 *   helper-vmm SOCKET NAME
 * registers instance NAME, stores a 1 MiB guest-RAM memfd as "ram" and an eventfd as "kick", prints
 * "ready" on stdout, then each line read from stdin is a command:
 *   store NAME   store a new eventfd under NAME        (prints "stored NAME" or "error ...")
 *   quit         close the connection and exit 0
 * EOF on stdin = quit.  Exit status: 0 ok, 1 a libvlu call failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vlu.h"

static void fail(struct vlu *v, const char *what, int r)
{
	const char *cls = NULL, *desc = NULL;

	if (v)
		vlu_last_error(v, &cls, &desc);
	printf("error %s: %s (%s: %s)\n", what, strerror(-r), cls ? cls : "-", desc ? desc : "-");
	fflush(stdout);
	exit(1);
}

int main(int argc, char **argv)
{
	struct vlu *v = NULL;
	const char *names[] = { "ram", "kick" };
	int fds[2], r;
	char line[256];

	if (argc != 3) {
		fprintf(stderr, "usage: helper-vmm SOCKET NAME\n");
		return 2;
	}
	fds[0] = memfd_create("guest-ram", MFD_CLOEXEC);
	fds[1] = eventfd(0, EFD_CLOEXEC);
	if (fds[0] < 0 || fds[1] < 0 || ftruncate(fds[0], 1 << 20) < 0)
		fail(NULL, "memfd/eventfd", -errno);
	if ((r = vlu_connect(argv[1], 5000, &v)) < 0)
		fail(NULL, "connect", r);
	if ((r = vlu_register(v, argv[2], false)) < 0)
		fail(v, "register", r);
	if ((r = vlu_fd_store(v, names, fds, 2, false)) < 0)
		fail(v, "fd.store", r);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(line, "store ", 6) == 0) {
			const char *n[] = { line + 6 };
			int e = eventfd(0, EFD_CLOEXEC);
			if ((r = vlu_fd_store(v, n, &e, 1, false)) < 0)
				fail(v, "fd.store", r);
			close(e);
			printf("stored %s\n", line + 6);
			fflush(stdout);
		} else if (strcmp(line, "quit") == 0)
			break;
	}
	vlu_close(v);
	return 0;
}
