/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bstat.c - see bstat.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bstat.h"

uint64_t bstat_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bstat_add(struct bstat_samples *s, double us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = us;
	return 0;
}

void bstat_reset(struct bstat_samples *s)
{
	s->n = 0;
}

void bstat_done(struct bstat_samples *s)
{
	free(s->v);
	*s = (struct bstat_samples){};
}

int bstat_merge(struct bstat_samples *s, const struct bstat_samples *o)
{
	for (size_t i = 0; i < o->n; i++) {
		int r = bstat_add(s, o->v[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted v */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

void bstat_summarize(struct bstat_samples *s, struct bstat_summary *ret)
{
	struct bstat_summary m = { .n = s->n };
	double sum = 0;

	if (s->n) {
		qsort(s->v, s->n, sizeof(double), cmp_double);
		for (size_t i = 0; i < s->n; i++)
			sum += s->v[i];
		m.min = s->v[0];
		m.max = s->v[s->n - 1];
		/* median: mean of the two middle values for an even count */
		m.p50 = s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
		m.p90 = pct(s->v, s->n, 90);
		m.p99 = pct(s->v, s->n, 99);
		m.mean = sum / (double)s->n;
	}
	*ret = m;
}

static json_object *jnum(double d)
{
	char b[32];
	snprintf(b, sizeof(b), "%.2f", d);
	return json_object_new_double_s(d, b);
}

json_object *bstat_summary_json(const struct bstat_summary *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "n", json_object_new_int64((int64_t)m->n));
	json_object_object_add(o, "min_us", jnum(m->min));
	json_object_object_add(o, "median_us", jnum(m->p50));
	json_object_object_add(o, "p90_us", jnum(m->p90));
	json_object_object_add(o, "p99_us", jnum(m->p99));
	json_object_object_add(o, "max_us", jnum(m->max));
	json_object_object_add(o, "mean_us", jnum(m->mean));
	return o;
}

long bstat_proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	long v = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl) && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

double bstat_proc_cpu_us(pid_t pid)
{
	char path[64];
	unsigned long long ns;
	FILE *f;
	int k;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	k = fscanf(f, "%llu", &ns);
	fclose(f);
	return k == 1 ? (double)ns / 1e3 : -1;
}

long bstat_proc_nfds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int bstat_write_json(const char *path, json_object *j)
{
	FILE *f = fopen(path, "we");
	int r = 0;

	if (!f)
		return -errno;
	if (fprintf(f, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED)) < 0)
		r = -EIO;
	if (fclose(f) != 0 && !r)
		r = -errno;
	return r;
}

void bstat_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}
