/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-tap.h - the TAP helpers of the rig's guest test programs (vdpatest, vlu-iommufd): one line per
 * assertion, "ok - <suite>/<cmd>.<name>" or "not ok - <suite>/<cmd>.<name>: why".  Included once, by the
 * program's .c file, after it defined `suite`, `cmd` (strings) and `failures` (the count of not ok lines).
 */
#ifndef VLU_GUEST_TAP_H
#define VLU_GUEST_TAP_H

_printf_(2, 3) static void tap(bool ok, const char *fmt, ...)
{
	char name[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (ok) {
		printf("ok - %s/%s.%s\n", suite, cmd, name);
	} else {
		/* the reason follows as ": why" from the callers that know one */
		printf("not ok - %s/%s.%s\n", suite, cmd, name);
		failures++;
	}
	fflush(stdout);
}

_printf_(2, 3) static void tap_fail(const char *name, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("not ok - %s/%s.%s: %s\n", suite, cmd, name, why);
	fflush(stdout);
	failures++;
}

static const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";
	return n ? n : "?";
}

/* ret is a syscall result with errno set on failure: expect success. */
static bool expect_ok(const char *name, long ret)
{
	if (ret >= 0) {
		tap(true, "%s", name);
		return true;
	}
	tap_fail(name, "failed with %s (%s)", ename(errno), strerror(errno));
	return false;
}

/* expect failure with exactly errno want (not every program has such a check) */
_unused_ static bool expect_errno(const char *name, long ret, int want)
{
	if (ret < 0 && errno == want) {
		tap(true, "%s=%s", name, ename(want));
		return true;
	}
	if (ret >= 0)
		tap_fail(name, "expected %s, succeeded (ret %ld)", ename(want), ret);
	else
		tap_fail(name, "expected %s, got %s", ename(want), ename(errno));
	return false;
}

#endif
