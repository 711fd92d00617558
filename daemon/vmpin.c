/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmpin.c - VmPin/VmLck from /proc/PID/status, RLIMIT_MEMLOCK via prlimit (see vmpin.h) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "basics.h"
#include "vmpin.h"

static int field_kb(const char *status, const char *key, int64_t *ret)
{
	const char *p = status;
	size_t kl = strlen(key);

	while (p && *p) {
		if (strncmp(p, key, kl) == 0) {
			long long v;

			if (sscanf(p + kl, " %lld kB", &v) != 1 || v < 0)
				return -EINVAL;
			*ret = v;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENODATA;
}

int vmpin_parse(const char *status, int64_t *ret_pin_kb, int64_t *ret_lck_kb)
{
	int64_t pin = 0, lck = 0;
	int r;

	r = field_kb(status, "VmPin:", &pin);
	if (r < 0)
		return r;
	r = field_kb(status, "VmLck:", &lck);
	if (r < 0)
		return r;
	if (ret_pin_kb)
		*ret_pin_kb = pin;
	if (ret_lck_kb)
		*ret_lck_kb = lck;
	return 0;
}

int vmpin_read(pid_t pid, int64_t *ret_pin_kb, int64_t *ret_lck_kb)
{
	char path[64], buf[8192];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return -errno;
	buf[len] = '\0';
	return vmpin_parse(buf, ret_pin_kb, ret_lck_kb);
}

int vmpin_memlock_get(pid_t pid, uint64_t *ret_soft, uint64_t *ret_hard)
{
	struct rlimit rl;

	if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl) < 0)
		return -errno;
	if (ret_soft)
		*ret_soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	if (ret_hard)
		*ret_hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
	return 0;
}

int vmpin_memlock_raise(pid_t pid, uint64_t bytes)
{
	struct rlimit rl;

	if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < bytes)
		rl.rlim_cur = bytes;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (prlimit(pid, RLIMIT_MEMLOCK, &rl, NULL) < 0)
		return -errno;
	return 0;
}
