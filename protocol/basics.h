/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * basics.h - cleanup idioms shared by every vlud module (not installed).
 *
 * fd variables start at -EBADF; ownership moves only with TAKE_FD(); a
 * function that consumes an fd closes it on failure too.  Close helpers test
 * fd >= 0, never "if (fd)".
 */
#ifndef VLU_BASICS_H
#define VLU_BASICS_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <json-c/json.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -EBADF; _fd; })

/* Close fd if valid, preserving errno; always returns -EBADF. */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd) { *fd = safe_close(*fd); }
static inline void freep(void *p) { free(*(void **)p); *(void **)p = NULL; }
static inline void json_object_putp(json_object **j)
{
	if (*j)
		json_object_put(*j);
	*j = NULL;
}

/* Close an array of n fds (entries < 0 skipped) and mark them -EBADF. */
static inline void close_many(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fds[i] = safe_close(fds[i]);
}

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_json_ _cleanup_(json_object_putp)

#endif /* VLU_BASICS_H */
