/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * clock.c - vlud's two clocks (vlud.h), apart from main.c so that tests linking the daemon's objects
 * without main.o have them too.
 */
#include <stdint.h>
#include <time.h>

#include "vlud.h"

int64_t now_realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
