/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-ctl.c - control-plane latency of the real daemon with many concurrent clients (host side).
 *
 * Starts the built vlud in a temporary directory.  For each client count K (default 1 4 16 64 256), K
 * threads each open their own libvlu connection (connect + greeting + negotiation timed), wait at a
 * barrier, then call a command in a closed loop for a fixed time, each call timed from send to reply.
 * Commands: "status" (no state touched) and "fd.list" of an instance holding 16 fds (a reply that grows
 * with what the daemon holds).  Reports per K: calls/s over all clients, latency min/median/p90/p99/max,
 * and the connect latency.  The daemon is single-threaded (one libev loop), so throughput is bounded by
 * one core and latency grows with K; the point is how gracefully, and that nobody starves (max).
 *
 * Usage: bench-ctl [--json FILE] [--seconds S] [--clients "1 4 16"] [--quick]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bstat.h"
#include "integ.h"
#include "vlu.h"

#define MAX_CLIENTS 1000

static double seconds = 1.5;
static const char *sock_path;

struct client {
	pthread_t thr;
	const char *cmd;
	pthread_barrier_t *bar;
	uint64_t t_end_ns;
	double connect_us;
	unsigned errors;
	struct bstat_samples s;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct vlu *v = NULL;
	uint64_t t0 = bstat_now_ns();
	int r;

	r = vlu_connect(sock_path, 30000, &v);
	c->connect_us = (double)(bstat_now_ns() - t0) / 1e3;
	if (r < 0)
		c->errors++;
	else
		vlu_set_timeout(v, 30000);
	pthread_barrier_wait(c->bar);
	if (r < 0)
		return NULL;
	/* everybody starts together; the end time is set by the main thread before the barrier */
	while (bstat_now_ns() < c->t_end_ns) {
		json_object *ret = NULL;
		t0 = bstat_now_ns();
		if (!strcmp(c->cmd, "status"))
			r = vlu_status(v, &ret);
		else
			r = vlu_fd_list(v, "ctl-holder", &ret);
		if (r < 0) {
			c->errors++;
			continue;
		}
		bstat_add(&c->s, (double)(bstat_now_ns() - t0) / 1e3);
		json_object_put(ret);
	}
	vlu_close(v);
	return NULL;
}

static json_object *run_k(const char *cmd, unsigned k)
{
	struct client *cl = calloc(k, sizeof(*cl));
	pthread_barrier_t bar;
	struct bstat_samples all = {}, conn = {};
	struct bstat_summary m, mc;
	unsigned errors = 0;
	uint64_t t_start, t_end;
	json_object *o;

	if (!cl)
		return NULL;
	pthread_barrier_init(&bar, NULL, k + 1);
	for (unsigned i = 0; i < k; i++) {
		cl[i].cmd = cmd;
		cl[i].bar = &bar;
		cl[i].t_end_ns = UINT64_MAX;
		if (pthread_create(&cl[i].thr, NULL, client_main, &cl[i]) != 0) {
			fprintf(stderr, "bench-ctl: pthread_create failed at %u\n", i);
			exit(1);
		}
	}
	/* the threads read t_end_ns after the barrier: set it first (the barrier orders it) */
	t_start = bstat_now_ns();
	for (unsigned i = 0; i < k; i++)
		cl[i].t_end_ns = t_start + (uint64_t)(seconds * 1e9) + 50000000u; /* + time to pass the barrier */
	pthread_barrier_wait(&bar);
	t_start = bstat_now_ns();
	for (unsigned i = 0; i < k; i++) {
		pthread_join(cl[i].thr, NULL);
		bstat_merge(&all, &cl[i].s);
		bstat_add(&conn, cl[i].connect_us);
		errors += cl[i].errors;
		bstat_done(&cl[i].s);
	}
	t_end = bstat_now_ns();
	bstat_summarize(&all, &m);
	bstat_summarize(&conn, &mc);
	{
		double el = (double)(t_end - t_start) / 1e9;
		double rate = el > 0 ? (double)m.n / el : 0;
		printf("  %-8s %6u %9.0f %8.1f %9.1f %8.1f %8.1f %9.1f %11.1f %11.1f %6u\n", cmd, k, rate, m.min, m.p50, m.p90,
		       m.p99, m.max, mc.p50, mc.max, errors);
		o = json_object_new_object();
		json_object_object_add(o, "command", json_object_new_string(cmd));
		json_object_object_add(o, "clients", json_object_new_int((int)k));
		json_object_object_add(o, "calls_per_s", json_object_new_double(rate));
		json_object_object_add(o, "latency", bstat_summary_json(&m));
		json_object_object_add(o, "connect", bstat_summary_json(&mc));
		json_object_object_add(o, "errors", json_object_new_int((int)errors));
	}
	bstat_done(&all);
	bstat_done(&conn);
	pthread_barrier_destroy(&bar);
	free(cl);
	return o;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "seconds", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *json_path = NULL, *clients = "1 4 16 64 256";
	_cleanup_free_ char *dir = NULL, *cfg = NULL;
	struct integ_daemon d;
	struct integ_daemon_opts o = {};
	json_object *doc = json_object_new_object(), *rows = json_object_new_array();
	struct vlu *holder = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "j:s:c:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json_path = optarg; break;
		case 's': seconds = strtod(optarg, NULL); if (seconds <= 0) seconds = 1; break;
		case 'c': clients = optarg; break;
		case 'q': seconds = 0.3; clients = "1 16 64"; break;
		case 'h': printf("Usage: bench-ctl [--json FILE] [--seconds S] [--clients \"1 4 16\"] [--quick]\n"); return 0;
		default: return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	bstat_raise_nofile();

	dir = integ_mkdtemp("bench-ctl");
	if (!dir)
		return fprintf(stderr, "bench-ctl: mkdtemp: %m\n"), 1;
	cfg = integ_default_config(dir, "\"limits\": { \"max_connections\": 1100, \"idle_timeout_ms\": 0, "
					"\"max_message_bytes\": 1048576, \"handshake_timeout_ms\": 30000 }");
	o.config_json = cfg;
	r = integ_daemon_start(&d, dir, &o);
	if (r < 0) {
		integ_daemon_dump_log(&d);
		return fprintf(stderr, "bench-ctl: start vlud: %s\n", strerror(-r)), 1;
	}
	sock_path = d.sock;

	/* an instance holding 16 memfds: what fd.list reports */
	r = vlu_connect(sock_path, 5000, &holder);
	if (r >= 0)
		r = vlu_register(holder, "ctl-holder", false);
	if (r >= 0) {
		int fds[16];
		char nb[16][8];
		const char *names[16];
		for (int i = 0; i < 16; i++) {
			fds[i] = memfd_create("bench-ctl", MFD_CLOEXEC);
			snprintf(nb[i], sizeof(nb[i]), "m%d", i);
			names[i] = nb[i];
		}
		r = vlu_fd_store(holder, names, fds, 16, false);
		close_many(fds, 16);
	}
	if (r < 0) {
		fprintf(stderr, "bench-ctl: setting up the holder instance: %s\n", strerror(-r));
		integ_daemon_stop(&d, SIGTERM, 5000);
		return 1;
	}

	printf("# bench-ctl: vlud %s, closed-loop clients for %.1f s per row (one libvlu connection per thread)\n",
	       integ_prog("vlud"), seconds);
	printf("  %-8s %6s %9s %8s %9s %8s %8s %9s %11s %11s %6s\n", "command", "conns", "calls/s", "min_us", "median_us",
	       "p90_us", "p99_us", "max_us", "connect_p50", "connect_max", "errors");
	for (int pass = 0; pass < 2; pass++) {
		const char *cmd = pass ? "fd.list" : "status";
		char *cs = strdup(clients), *save = NULL;
		for (char *t = strtok_r(cs, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
			unsigned k = (unsigned)strtoul(t, NULL, 10);
			if (k < 1 || k > MAX_CLIENTS)
				continue;
			json_object *row = run_k(cmd, k);
			if (row)
				json_object_array_add(rows, row);
		}
		free(cs);
	}
	{
		long rss = bstat_proc_status_kb(d.pid, "VmRSS");
		printf("  vlud RSS after the runs: %ld kB\n", rss);
		json_object_object_add(doc, "vlud_rss_kb_after", json_object_new_int64(rss));
	}
	vlu_close(holder);
	integ_daemon_stop(&d, SIGTERM, 5000);
	integ_rmrf(dir);
	json_object_object_add(doc, "bench", json_object_new_string("ctl"));
	json_object_object_add(doc, "seconds", json_object_new_double(seconds));
	json_object_object_add(doc, "cpus", json_object_new_int((int)sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(doc, "rows", rows);
	if (json_path) {
		r = bstat_write_json(json_path, doc);
		if (r < 0)
			return fprintf(stderr, "bench-ctl: %s: %s\n", json_path, strerror(-r)), 1;
		printf("# JSON: %s\n", json_path);
	}
	json_object_put(doc);
	return 0;
}
