/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bstat.h - small helpers shared by the host benchmarks (tests/bench/): monotonic time, a growable
 * sample array, order statistics, the daemon's /proc numbers, JSON rows.  Benchmarks measure; they
 * assert nothing about timings (docs/BENCH.md).
 */
#ifndef VLU_BSTAT_H
#define VLU_BSTAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "basics.h"

uint64_t bstat_now_ns(void);

/* samples in microseconds */
struct bstat_samples {
	double *v;
	size_t n, cap;
};
int bstat_add(struct bstat_samples *s, double us);
void bstat_reset(struct bstat_samples *s);
void bstat_done(struct bstat_samples *s);
/* append the other set (for aggregating per-thread samples) */
int bstat_merge(struct bstat_samples *s, const struct bstat_samples *o);

struct bstat_summary {
	size_t n;
	double min, p50, p90, p99, max, mean;
};
/* sorts s->v in place */
void bstat_summarize(struct bstat_samples *s, struct bstat_summary *ret);
/* {"n":..,"min_us":..,"median_us":..,"p90_us":..,"p99_us":..,"max_us":..,"mean_us":..} */
json_object *bstat_summary_json(const struct bstat_summary *m);

/* a field of /proc/PID/status in kB (VmRSS, VmPin...), or -errno */
long bstat_proc_status_kb(pid_t pid, const char *field);
/* number of open fds of PID, or -errno */
long bstat_proc_nfds(pid_t pid);
/* CPU time the process has run so far (/proc/PID/schedstat, ns precision), in microseconds; -1 if unknown */
double bstat_proc_cpu_us(pid_t pid);

/* write j (pretty) to path; 0 or -errno */
int bstat_write_json(const char *path, json_object *j);

/* raise RLIMIT_NOFILE to the hard limit (the held-fds benchmarks need > 1024) */
void bstat_raise_nofile(void);

#endif
