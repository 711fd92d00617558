/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-proc.c - a process as /proc shows it to the update engine (update-proc.h).  The parsers are
 * update-decide.c's (pure, unit-tested); this file reads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "update-decide.h"
#include "update-proc.h"

/* the first len bytes of dfd/path into buf: their count, or -errno (-ENOENT when the process or thread went
 * between the open and the read: ESRCH) */
static ssize_t read_at(int dfd, const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, k;

	fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	k = errno;
	close(fd);
	if (n < 0)
		return k == ESRCH ? -ENOENT : -k;
	return n;
}

int upd_pid_stat(pid_t pid, uint64_t *ret_start, char *ret_state)
{
	char path[64], buf[1024];
	unsigned long long v;
	ssize_t n;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = read_at(AT_FDCWD, path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (update_stat_starttime(buf, (size_t)n, &v) < 0 ||
	    (ret_state && update_stat_state(buf, (size_t)n, ret_state) < 0))
		return -EINVAL;
	*ret_start = v;
	return 0;
}

int upd_pid_stat_all(pid_t pid, uint64_t *ret_start, char *ret_state)
{
	char path[64], letters[UPD_TASKS_MAX];
	struct dirent *de;
	DIR *d;
	size_t n = 0;
	bool more = false;
	int k;

	k = upd_pid_stat(pid, ret_start, ret_state);
	if (k < 0 || (*ret_state != 'T' && *ret_state != 't' && *ret_state != 'Z' && *ret_state != 'X'))
		return k; /* the leader runs: so does the process, no need to look further */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d && errno == ENOENT)
		return -ENOENT;
	if (!d) {
		*ret_state = '?'; /* (EMFILE, ENOMEM: not known to be stopped, polled again) */
		return 0;
	}
	while ((de = readdir(d))) {
		char sp[300], buf[1024], c = '?'; /* (a d_name: at most 255 bytes, a tid fewer than 11) */
		ssize_t m;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (n == sizeof(letters)) {
			more = true; /* more threads than read: not known to be stopped (the wait's bound decides) */
			break;
		}
		snprintf(sp, sizeof(sp), "%s/stat", de->d_name);
		m = read_at(dirfd(d), sp, buf, sizeof(buf));
		if (m == -ENOENT)
			continue; /* exited meanwhile: it runs no more */
		if (m < 0 || update_stat_state(buf, (size_t)m, &c) < 0)
			c = '?';
		letters[n++] = c;
	}
	closedir(d);
	*ret_state = update_tasks_state(letters, n, more);
	return 0;
}

int upd_pid_euid(pid_t pid, uid_t *ret)
{
	char path[64], buf[4096], *p;
	unsigned long r, e;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	n = read_at(AT_FDCWD, path, buf, sizeof(buf) - 1);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	p = strstr(buf, "\nUid:");
	if (!p || sscanf(p + 5, "%lu %lu", &r, &e) != 2)
		return -EINVAL;
	*ret = (uid_t)e;
	return 0;
}
