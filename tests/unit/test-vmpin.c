/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-vmpin.c - unit tests of daemon/vmpin.c: VmPin/VmLck parsing of a
 * /proc/PID/status text (the update engine's verdict), and reading our own.
 * Run with CMOCKA_MESSAGE_OUTPUT=TAP.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmpin.h"

static void parse_ok(void **state)
{
	static const char status[] = "Name:\tminivmm\nVmPeak:\t  123456 kB\nVmLck:\t       8 kB\n"
				     "VmPin:\t  262144 kB\nVmHWM:\t    1000 kB\n";
	int64_t pin = -1, lck = -1;

	assert_int_equal(vmpin_parse(status, &pin, &lck), 0);
	assert_int_equal(pin, 262144);
	assert_int_equal(lck, 8);
	/* either output may be NULL */
	pin = -1;
	assert_int_equal(vmpin_parse(status, &pin, NULL), 0);
	assert_int_equal(pin, 262144);
	assert_int_equal(vmpin_parse(status, NULL, NULL), 0);
}

static void parse_refused(void **state)
{
	int64_t pin = 7, lck = 7;

	/* a kernel thread or a zombie: no VmPin/VmLck lines */
	assert_int_equal(vmpin_parse("Name:\tkthreadd\nState:\tS (sleeping)\n", &pin, &lck), -ENODATA);
	assert_int_equal(vmpin_parse("", &pin, &lck), -ENODATA);
	assert_int_equal(vmpin_parse("VmPin:\t0 kB\n", &pin, &lck), -ENODATA); /* no VmLck */
	/* the key only counts at the start of a line */
	assert_int_equal(vmpin_parse("XVmPin:\t5 kB\nVmLck:\t0 kB\n", &pin, &lck), -ENODATA);
	/* malformed values */
	assert_int_equal(vmpin_parse("VmPin:\tmany kB\nVmLck:\t0 kB\n", &pin, &lck), -EINVAL);
	assert_int_equal(vmpin_parse("VmPin:\t-4 kB\nVmLck:\t0 kB\n", &pin, &lck), -EINVAL);
	/* outputs untouched on failure */
	assert_int_equal(pin, 7);
	assert_int_equal(lck, 7);
}

static void read_self(void **state)
{
	int64_t pin = -1, lck = -1;

	assert_int_equal(vmpin_read(getpid(), &pin, &lck), 0);
	assert_true(pin >= 0 && lck >= 0);
	/* above pid_max (4194304): no such process */
	assert_int_equal(vmpin_read(4194305, &pin, &lck), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		{ "daemon/vmpin/parse", parse_ok, NULL, NULL, NULL },
		{ "daemon/vmpin/parse-refused", parse_refused, NULL, NULL, NULL },
		{ "daemon/vmpin/read-self", read_self, NULL, NULL, NULL },
	};

	return cmocka_run_group_tests_name("daemon/vmpin", tests, NULL, NULL);
}
