/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-report.c - the result collector of `make bench` (docs/BENCH.md).
 *
 * Reads the guest's "BENCH {...}" lines from the rig logs of the pause benchmark (tests/bench/guest-pause.sh)
 * and the host benchmarks' JSON (bench-fd, bench-ctl), and writes into --out DIR:
 *   pause.txt   the pause table (per module set, path and guest-memory size: min/median/max of the device
 *               pause, the echo gap the client saw, the daemon's time when the daemon drove the update, the
 *               phases: vlud's, minivmm's ("vmm:"), vlud's own time by phase and kind of step ("own:"), the
 *               steps between the two processes on one clock ("x:", take_timeline())) and the ratios: C/A per size, growth of each path from the smallest size to 1 GiB
 *               (and the largest), a least-squares fit of pause against size, the daemon's share
 *   pause.dat   gnuplot data: one block per (modules, path): mem_mb median min max; then one per iommufd mode
 *               for IOMMU_IOAS_CHANGE_PROCESS and one for the re-pin (unmap + map)
 *   bench.json  everything: the pause rows, the ratios, "iommufd" (the CHANGE_PROCESS rows with their raw
 *               samples), and the host documents as they are
 * and the iommufd section of pause.txt from the guest's "IOFBENCH {...}" lines (tests/vm/guest/vlu-iofbench.c):
 * per mode and size, CHANGE_PROCESS against unmap + map again, the ratio, the growth with the size.
 * The first update of each minivmm run is also reported apart ("first"): under TCG it pays for
 * translating the new image's code once (see docs/BENCH.md).
 *
 * Usage: bench-report --out DIR [--vm-log FILE]... [--fd FILE] [--ctl FILE]
 *        bench-report --out DIR --demo-log FILE...   (make demo: demo.txt, demo.json; exit 1 if an update failed)
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstat.h"

/* a full `make bench` has 96 pause series and 8 with ASLR off; room for the optional RAM kinds too */
#define MAX_SERIES 256
#define MAX_PHASES 64

struct series {
	char modules[16], driver[16], ram[16], path[4];
	int mem_mb;
	unsigned runs, runs_ok, updates_failed, lost, dup;
	struct bstat_samples pause, echo, daemon, first, cvq; /* cvq: the verdict's cvq_replay_ms */
	struct bstat_samples daemon_pause; /* the verdict's daemon_pause_ms: vlud's own time inside pause_ms */
	/* phases: name -> samples (device-side phases from minivmm or the daemon's phases) */
	char phase_name[MAX_PHASES][48];
	struct bstat_samples phase[MAX_PHASES];
	unsigned nphases;
	long vmpin_before_kb, vmpin_after_kb;
};

static struct series S[MAX_SERIES];
static unsigned nS, nS_dropped; /* runs of series beyond MAX_SERIES: an error, never left out silently */

/* the iommufd rows: one per (mode, size), from the "IOFBENCH {...}" lines of tests/vm/guest/vlu-iofbench.c */
#define MAX_IOF 32
struct iofrow {
	char mode[12];
	int mem_mb;
	long long kb;
	unsigned runs, runs_ok, checks, failed, dma_checks, moves, repins;
	unsigned vmpin_exact, vmpin_total; /* VmPin movements equal to the mapped size / all recorded */
	struct bstat_samples cp, unmap, map, repin, first;
	json_object *raw; /* the lines themselves (an array) */
};
static struct iofrow IOF[MAX_IOF];
static unsigned nIOF;

static bool same_group(const struct series *a, const struct series *b)
{
	return !strcmp(a->modules, b->modules) && !strcmp(a->driver, b->driver) && !strcmp(a->ram, b->ram);
}

static struct series *series_get(const char *mods, const char *drv, const char *ram, const char *path, int mem_mb)
{
	for (unsigned i = 0; i < nS; i++)
		if (!strcmp(S[i].modules, mods) && !strcmp(S[i].path, path) && S[i].mem_mb == mem_mb &&
		    !strcmp(S[i].driver, drv) && !strcmp(S[i].ram, ram))
			return &S[i];
	if (nS == MAX_SERIES) {
		if (!nS_dropped++)
			fprintf(stderr, "bench-report: more than %d series (%s %s %s %s %d MiB and after): not reported\n",
				MAX_SERIES, mods, drv, ram, path, mem_mb);
		return NULL;
	}
	struct series *s = &S[nS++];
	snprintf(s->modules, sizeof(s->modules), "%s", mods);
	snprintf(s->driver, sizeof(s->driver), "%s", drv);
	snprintf(s->ram, sizeof(s->ram), "%s", ram);
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->mem_mb = mem_mb;
	return s;
}

static void add_phase(struct series *s, const char *name, double ms)
{
	unsigned i;

	for (i = 0; i < s->nphases; i++)
		if (!strcmp(s->phase_name[i], name))
			break;
	if (i == s->nphases) {
		if (i == MAX_PHASES)
			return;
		snprintf(s->phase_name[i], sizeof(s->phase_name[i]), "%s", name);
		s->nphases++;
	}
	bstat_add(&s->phase[i], ms);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static double jdbl(json_object *o, const char *k, double dflt)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_double(v) : dflt; /* null: none */
}

static json_object *jget(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* Daemon-driven update i (> 0) on one clock: minivmm's points (t_monotonic_us) against vlud's phase
 * boundaries (started_monotonic_us + the phases' ms), the steps between the two processes that neither
 * side's phases show ("x:" prefix, ms):
 *   x:suspended_to_save_seen  vlud's SUSPEND done -> the old image handles update.save (the event's way,
 *                             the old image's wake-up and the events queued before it)
 *   x:state_to_saved          the old image's state saved -> vlud has handled update.saved (the state memfd,
 *                             the update.saved round trip's way in, vlud's checks; path B: and the reset)
 *   x:exec_sent_to_main       vlud sent update.exec -> the new image's main() (the old image's exec
 *                             handling, execve, loading)
 *   x:claim_in_vlud           the claim sent -> vlud's claim handled (its way in, vlud's handler)
 *   x:ready_to_vlud           update.ready sent -> vlud handles it
 *   x:vlud_resume             -> the pause's end (vlud's RESUME on A; B, C: its DRIVER_OK check) */
static void take_timeline(struct series *s, json_object *u, json_object *v)
{
	json_object *t = jget(u, "t_monotonic_us"), *ph = jget(v, "phases");
	double b[32], acc = jdbl(v, "started_monotonic_us", NAN), pause = jdbl(v, "pause_ms", NAN);
	const char *nm[32];
	size_t n = 0;

	if (!t || !ph || !json_object_is_type(ph, json_type_array) || isnan(acc) || jdbl(t, "ready_sent", 0) <= 0)
		return;
	for (size_t k = 0; k < json_object_array_length(ph) && n < 32; k++, n++) {
		json_object *p = json_object_array_get_idx(ph, k);

		acc += jdbl(p, "ms", NAN) * 1000;
		b[n] = acc; /* the end of that phase */
		nm[n] = jstr(p, "phase");
	}
#define B(name, ret) do { (ret) = NAN; for (size_t _k = 0; _k < n; _k++) if (nm[_k] && !strcmp(nm[_k], name)) (ret) = b[_k]; } while (0)
	double susp, save, reset, claim, restore;

	B("suspend", susp);
	B("save", save);
	B("reset", reset);
	B("claim", claim);
	B("restore", restore);
#undef B
	if (!isnan(reset))
		save = reset; /* update.exec is sent after path B's reset */
	if (isnan(susp) || isnan(save) || isnan(claim) || isnan(restore))
		return;
	add_phase(s, "x:suspended_to_save_seen", (jdbl(t, "suspend", NAN) - susp) / 1000);
	add_phase(s, "x:state_to_saved", (save - jdbl(t, "exec", NAN)) / 1000);
	add_phase(s, "x:exec_sent_to_main", (jdbl(t, "main", NAN) - save) / 1000);
	add_phase(s, "x:claim_in_vlud", (claim - jdbl(t, "claim_sent", NAN)) / 1000);
	add_phase(s, "x:ready_to_vlud", (restore - jdbl(t, "ready_sent", NAN)) / 1000);
	if (!isnan(pause))
		add_phase(s, "x:vlud_resume", pause - (restore - susp) / 1000);
}

/* one BENCH line */
static void take_run(json_object *run)
{
	const char *mods = jstr(run, "modules"), *drv = jstr(run, "driver"), *path = jstr(run, "path");
	int mem_mb = (int)jdbl(run, "mem_mb", 0);
	json_object *mv = jget(run, "minivmm"), *ups = mv ? jget(mv, "updates") : NULL, *vl = jget(run, "vlud");
	struct series *s;

	if (!mods || !path || !mem_mb)
		return;
	s = series_get(mods, drv ? drv : "standalone", jstr(run, "ram") ?: "touched", path, mem_mb);
	if (!s)
		return;
	s->runs++;
	if (mv && jstr(mv, "verdict") && !strcmp(jstr(mv, "verdict"), "pass") && jdbl(run, "rc", 1) == 0)
		s->runs_ok++;
	for (size_t i = 0; ups && i < json_object_array_length(ups); i++) {
		json_object *u = json_object_array_get_idx(ups, i), *ph;
		if (!json_object_get_boolean(jget(u, "ok"))) {
			s->updates_failed++;
			continue;
		}
		s->lost += (unsigned)jdbl(u, "lost", 0);
		s->dup += (unsigned)jdbl(u, "dup", 0);
		s->vmpin_before_kb = (long)jdbl(u, "vmpin_before_kb", 0);
		s->vmpin_after_kb = (long)jdbl(u, "vmpin_after_kb", 0);
		/* with the daemon driving, the pause is the daemon's (suspend to resume/DRIVER_OK); else minivmm's */
		if (!vl || !json_object_is_type(vl, json_type_array)) {
			double p = jdbl(u, "pause_device_ms", NAN);
			if (i == 0)
				bstat_add(&s->first, p);
			else
				bstat_add(&s->pause, p);
			if ((ph = jget(u, "phases"))) {
				json_object_object_foreach(ph, pk, pv)
					add_phase(s, pk, json_object_get_double(pv));
			}
		} else if (i > 0 && (ph = jget(u, "phases"))) {
			/* daemon-driven: the new image's own start beside vlud's phases ("vmm:" prefix; where vlud's
			 * exec phase goes: exec and loading, connect, claim), updates 2.. only */
			json_object_object_foreach(ph, pk, pv) {
				char nm[48];

				if (strncmp(pk, "exec_to_", 8) && strncmp(pk, "main_to_", 8) && strncmp(pk, "connected_to_", 13) &&
				    strncmp(pk, "claimed_to_", 11) && strncmp(pk, "claim_", 6) && strncmp(pk, "running_to_", 11) &&
				    strncmp(pk, "ready_to_", 9))
					continue;
				snprintf(nm, sizeof(nm), "vmm:%s", pk);
				add_phase(s, nm, json_object_get_double(pv));
			}
		}
		bstat_add(&s->echo, jdbl(u, "pause_echo_gap_ms", NAN));
	}
	/* the two processes on one clock: updates 2.. of runs whose every update is in both lists */
	for (size_t i = 1; ups && vl && json_object_is_type(vl, json_type_array) && i < json_object_array_length(ups) &&
			   i < json_object_array_length(vl); i++) {
		json_object *u = json_object_array_get_idx(ups, i), *v = json_object_array_get_idx(vl, i);

		if (json_object_get_boolean(jget(u, "ok")) && jstr(v, "result") && !strcmp(jstr(v, "result"), "ok") &&
		    json_object_array_length(ups) == json_object_array_length(vl))
			take_timeline(s, u, v);
	}
	for (size_t i = 0; vl && json_object_is_type(vl, json_type_array) && i < json_object_array_length(vl); i++) {
		json_object *u = json_object_array_get_idx(vl, i), *ph;
		const char *res = jstr(u, "result");
		if (!res || strcmp(res, "ok"))
			continue;
		if (i == 0)
			bstat_add(&s->first, jdbl(u, "pause_ms", NAN));
		else
			bstat_add(&s->pause, jdbl(u, "pause_ms", NAN));
		bstat_add(&s->daemon, jdbl(u, "daemon_ms", NAN));
		if (jget(u, "daemon_pause_ms"))
			bstat_add(&s->daemon_pause, jdbl(u, "daemon_pause_ms", NAN));
		/* vlud's own time by phase ("own:PHASE") and by kind of step ("own:proc", "own:device",
		 * "own:state", "own:other") */
		for (int w = 0; w < 2; w++) {
			json_object *by = jget(u, w ? "daemon_ms_by_step" : "daemon_ms_by_phase");

			if (!by || !json_object_is_type(by, json_type_object))
				continue;
			json_object_object_foreach(by, bk, bv) {
				char nm[48];

				snprintf(nm, sizeof(nm), "own:%s", bk);
				add_phase(s, nm, json_object_get_double(bv));
			}
		}
		if (jget(u, "cvq_replay_ms"))
			bstat_add(&s->cvq, jdbl(u, "cvq_replay_ms", NAN));
		if ((ph = jget(u, "phases")))
			for (size_t k = 0; k < json_object_array_length(ph); k++) {
				json_object *p = json_object_array_get_idx(ph, k);
				const char *n = jstr(p, "phase");
				if (n)
					add_phase(s, n, jdbl(p, "ms", NAN));
			}
	}
}

static void samples_from(struct bstat_samples *s, json_object *arr)
{
	for (size_t i = 0; arr && json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr); i++)
		bstat_add(s, json_object_get_double(json_object_array_get_idx(arr, i)));
}

/* VmPin movements of one IOFBENCH line: how many equal the mapped size (-1: not readable, the old mm gone) */
static void vmpin_count(struct iofrow *r, json_object *arr, long long kb)
{
	for (size_t i = 0; arr && json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr); i++) {
		long long v = json_object_get_int64(json_object_array_get_idx(arr, i));

		if (v == -1)
			continue;
		r->vmpin_total++;
		if (v == kb)
			r->vmpin_exact++;
	}
}

/* one IOFBENCH line */
static void take_iof(json_object *run)
{
	const char *mode = jstr(run, "mode");
	int mem_mb = (int)jdbl(run, "mem_mb", 0);
	long long kb = (long long)jdbl(run, "kb", 0);
	struct iofrow *r = NULL;

	if (!mode || !mem_mb)
		return;
	for (unsigned i = 0; i < nIOF; i++)
		if (!strcmp(IOF[i].mode, mode) && IOF[i].mem_mb == mem_mb)
			r = &IOF[i];
	if (!r) {
		if (nIOF == MAX_IOF)
			return;
		r = &IOF[nIOF++];
		snprintf(r->mode, sizeof(r->mode), "%s", mode);
		r->mem_mb = mem_mb;
		r->kb = kb;
		r->raw = json_object_new_array();
	}
	r->runs++;
	if (json_object_get_boolean(jget(run, "ok")))
		r->runs_ok++;
	r->checks += (unsigned)jdbl(run, "checks", 0);
	r->failed += (unsigned)jdbl(run, "failed", 0);
	r->dma_checks += (unsigned)jdbl(run, "dma_checks", 0);
	samples_from(&r->cp, jget(run, "cp_ms"));
	samples_from(&r->unmap, jget(run, "unmap_ms"));
	samples_from(&r->map, jget(run, "map_ms"));
	samples_from(&r->repin, jget(run, "repin_ms"));
	r->repins = (unsigned)r->repin.n;
	r->moves = (unsigned)r->cp.n;
	if (jget(run, "pin_first_ms")) /* (null when the first map failed) */
		bstat_add(&r->first, jdbl(run, "pin_first_ms", NAN));
	vmpin_count(r, jget(run, "cp_up_kb"), kb);
	vmpin_count(r, jget(run, "cp_down_kb"), kb);
	vmpin_count(r, jget(run, "repin_up_kb"), kb);
	vmpin_count(r, jget(run, "repin_down_kb"), kb);
	json_object_array_add(r->raw, json_object_get(run));
}

static int read_vm_log(const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned n = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *p = strstr(line, "BENCH {");
		if (p && !strncmp(line, "  | IOFBENCH {", 14)) {
			json_object *j = json_tokener_parse(line + 13);

			if (!j) {
				fprintf(stderr, "bench-report: %s: unparsable IOFBENCH line\n", path);
				continue;
			}
			take_iof(j);
			json_object_put(j);
			n++;
			continue;
		}
		if (!p || strncmp(line, "  | BENCH ", 10))
			continue;
		json_object *j = json_tokener_parse(p + 6);
		if (!j) {
			fprintf(stderr, "bench-report: %s: unparsable BENCH line\n", path);
			continue;
		}
		take_run(j);
		json_object_put(j);
		n++;
	}
	free(line);
	fclose(f);
	fprintf(stderr, "bench-report: %s: %u runs\n", path, n);
	return (int)n;
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int c = strcmp(y->modules, x->modules); /* stock before patched */
	if (c)
		return c;
	if ((c = strcmp(y->driver, x->driver))) /* vlud before standalone */
		return c;
	if ((c = strcmp(y->ram, x->ram))) /* touched before lazy */
		return c;
	if ((c = strcmp(x->path, y->path)))
		return c;
	return x->mem_mb - y->mem_mb;
}

static json_object *jd(double d)
{
	char b[32];
	if (isnan(d))
		return NULL;
	snprintf(b, sizeof(b), "%.3f", d);
	return json_object_new_double_s(d, b);
}

static double median_of(struct bstat_samples *s);
/* vlud's own time counted against the pause: the part inside it (daemon_pause_ms) when the verdicts
 * have it, else all of it (daemon_ms, older verdicts); *in_pause says which */
static double own_of(struct series *s, bool *in_pause)
{
	*in_pause = s->daemon_pause.n > 0;
	return median_of(*in_pause ? &s->daemon_pause : &s->daemon);
}

static double median_of(struct bstat_samples *s)
{
	struct bstat_summary m;
	bstat_summarize(s, &m);
	return m.n ? m.p50 : NAN;
}

static double min_of(struct bstat_samples *s)
{
	struct bstat_summary m;
	bstat_summarize(s, &m);
	return m.n ? m.min : NAN;
}

static struct series *find(const struct series *like, const char *path, int mem_mb)
{
	for (unsigned i = 0; i < nS; i++)
		if (same_group(&S[i], like) && !strcmp(S[i].path, path) && S[i].mem_mb == mem_mb)
			return &S[i];
	return NULL;
}

static const char *mem_str(int mb, char *b, size_t n)
{
	if (mb >= 1024 && mb % 1024 == 0)
		snprintf(b, n, "%dG", mb / 1024);
	else
		snprintf(b, n, "%dM", mb);
	return b;
}


/* ------------------------------------------------------------------ make demo */
/* "DEMO {...}" lines of tests/demo/guest-demo.sh -> DIR/demo.txt (the verdict table) and DIR/demo.json
 * (an array, one object per update, one per line) */
static json_object *last_update(json_object *client)
{
	json_object *ups = client ? jget(client, "updates") : NULL;
	size_t n = ups && json_object_is_type(ups, json_type_array) ? json_object_array_length(ups) : 0;
	return n ? json_object_array_get_idx(ups, n - 1) : NULL;
}

static json_object *demo_row(json_object *run)
{
	json_object *o = json_object_new_object(), *v = jget(run, "verdict"), *cl = jget(run, "client");
	json_object *err = v ? jget(v, "error") : NULL, *vp = v ? jget(v, "vmpin") : NULL, *cu = last_update(cl);
	json_object *tr = cl ? jget(cl, "traffic") : NULL;
	const char *res = v ? jstr(v, "result") : NULL;
	char rb[256];

	json_object_object_add(o, "modules", json_object_get(jget(run, "modules")));
	json_object_object_add(o, "path", json_object_get(jget(run, "path")));
	json_object_object_add(o, "mode", json_object_get(jget(run, "mode")));
	json_object_object_add(o, "guest_memory", json_object_get(jget(run, "mem")));
	if (err) {
		const char *cls = jstr(err, "class"), *desc = jstr(err, "desc");
		snprintf(rb, sizeof(rb), "%s", cls && !strcmp(cls, "Unsupported") ? "not offered" : "error");
		json_object_object_add(o, "result", json_object_new_string(rb));
		json_object_object_add(o, "reason", json_object_new_string(desc ? desc : cls ? cls : "?"));
		return o;
	}
	json_object_object_add(o, "result", json_object_new_string(res ? res : "?"));
	json_object_object_add(o, "path_taken", json_object_get(jget(v, "path")));
	json_object_object_add(o, "path_reason", json_object_get(jget(v, "path_reason")));
	json_object_object_add(o, "pause_client_ms", cu ? json_object_get(jget(cu, "pause_echo_gap_ms")) : NULL);
	json_object_object_add(o, "pause_daemon_ms", json_object_get(jget(v, "pause_ms")));
	json_object_object_add(o, "daemon_own_ms", json_object_get(jget(v, "daemon_ms")));
	json_object_object_add(o, "daemon_own_in_pause_ms", json_object_get(jget(v, "daemon_pause_ms")));
	json_object_object_add(o, "frames_lost", tr ? json_object_get(jget(tr, "lost")) : NULL);
	json_object_object_add(o, "frames_dup", tr ? json_object_get(jget(tr, "dup")) : NULL);
	json_object_object_add(o, "client_verdict", cl ? json_object_get(jget(cl, "verdict")) : NULL);
	json_object_object_add(o, "old_pid", json_object_get(jget(v, "old_pid")));
	json_object_object_add(o, "new_pid", json_object_get(jget(v, "new_pid")));
	json_object_object_add(o, "vmpin", json_object_get(vp));
	json_object_object_add(o, "status_after", json_object_get(jget(v, "status_after")));
	json_object_object_add(o, "phases", json_object_get(jget(v, "phases")));
	if (jget(v, "error"))
		json_object_object_add(o, "reason", json_object_get(jget(v, "error")));
	return o;
}

static int demo_report(const char *out, const char *const *logs, unsigned nlogs)
{
	json_object *rows = json_object_new_array();
	char p[4096];
	FILE *txt, *js;
	unsigned ok = 0, bad = 0, skipped = 0;

	for (unsigned i = 0; i < nlogs; i++) {
		FILE *f = fopen(logs[i], "re");
		char *line = NULL;
		size_t cap = 0;

		if (!f) {
			fprintf(stderr, "bench-report: %s: %m\n", logs[i]);
			continue;
		}
		while (getline(&line, &cap, f) > 0) {
			if (strncmp(line, "  | DEMO {", 10))
				continue;
			json_object *j = json_tokener_parse(line + 9);
			if (!j) {
				fprintf(stderr, "bench-report: %s: unparsable DEMO line\n", logs[i]);
				continue;
			}
			json_object_array_add(rows, demo_row(j));
			json_object_put(j);
		}
		free(line);
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/demo.txt", out);
	txt = fopen(p, "we");
	snprintf(p, sizeof(p), "%s/demo.json", out);
	js = fopen(p, "we");
	if (!txt || !js)
		return fprintf(stderr, "bench-report: %s: %m\n", p), 1;
	fprintf(txt, "%-8s %-4s %-8s %-6s %10s %10s %10s %6s %6s %-19s %s\n", "modules", "path", "mode", "memory",
		"client_ms", "daemon_ms", "own_ms", "share", "lost", "VmPin kB old->new", "result");
	fprintf(js, "[\n");
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *o = json_object_array_get_idx(rows, i), *vp = jget(o, "vmpin");
		const char *res = jstr(o, "result");
		double pc = jdbl(o, "pause_client_ms", NAN), pd = jdbl(o, "pause_daemon_ms", NAN),
		       own = jdbl(o, "daemon_own_ms", NAN),
		       /* the share: vlud's own time inside the pause (an older vlud's verdict: all of it) */
		       own_in = jget(o, "daemon_own_in_pause_ms") ? jdbl(o, "daemon_own_in_pause_ms", NAN) : own;
		char vb[64] = "-", rb[200];

		if (vp)
			snprintf(vb, sizeof(vb), "%ld->%ld", (long)jdbl(vp, "old_before_kb", -1),
				 (long)jdbl(vp, "new_after_kb", -1)); /* exec: before exec -> after commit; transfer: O -> N */
		if (res && !strcmp(res, "ok") && jstr(o, "client_verdict") && !strcmp(jstr(o, "client_verdict"), "pass"))
			snprintf(rb, sizeof(rb), "OK");
		else if (res && !strcmp(res, "not offered"))
			snprintf(rb, sizeof(rb), "not offered: %.150s", jstr(o, "reason") ?: "");
		else
			snprintf(rb, sizeof(rb), "FAILED: %s%s%.150s (client: %s)", res ?: "?", jstr(o, "reason") ? ": " : "",
				 jstr(o, "reason") ?: "", jstr(o, "client_verdict") ?: "no report");
		if (res && !strcmp(res, "not offered"))
			skipped++;
		else if (!strcmp(rb, "OK"))
			ok++;
		else
			bad++;
		if (res && !strcmp(res, "not offered"))
			fprintf(txt, "%-8s %-4s %-8s %-6s %10s %10s %10s %6s %6s %-19s %s\n", jstr(o, "modules") ?: "?",
				jstr(o, "path") ?: "?", jstr(o, "mode") ?: "?", jstr(o, "guest_memory") ?: "?", "-", "-", "-", "-",
				"-", "-", rb);
		else
			fprintf(txt, "%-8s %-4s %-8s %-6s %10.1f %10.1f %10.2f %5.1f%% %6.0f %-19s %s\n", jstr(o, "modules") ?: "?",
				jstr(o, "path") ?: "?", jstr(o, "mode") ?: "?", jstr(o, "guest_memory") ?: "?", pc, pd, own,
				pd > 0 ? 100 * own_in / pd : NAN, jdbl(o, "frames_lost", NAN), vb, rb);
		fprintf(js, "%s%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			i + 1 < json_object_array_length(rows) ? "," : "");
	}
	fprintf(js, "]\n");
	fprintf(txt, "%u updates OK, %u failed, %u paths not offered by the modules (refused before anything was touched)\n",
		ok, bad, skipped);
	fclose(txt);
	fclose(js);
	json_object_put(rows);
	return bad || !ok ? 1 : 0;
}

/* ---- targets: each computed from this run's data; missing data is "not measured", never met ---- */

/* a row of guest-pause.sh run with ASLR off in the guest (BENCH_NOASLR): its RAM kind ends so */
static int is_noaslr(const char *ram)
{
	size_t n = strlen(ram), k = strlen("-noaslr");

	return n > k && !strcmp(ram + n - k, "-noaslr");
}

static struct series *find_series(const char *mods, const char *drv, const char *ram, const char *path, int mem_mb)
{
	for (unsigned i = 0; i < nS; i++)
		if (!strcmp(S[i].modules, mods) && !strcmp(S[i].driver, drv) && !strcmp(S[i].ram, ram) &&
		    !strcmp(S[i].path, path) && S[i].mem_mb == mem_mb)
			return &S[i];
	return NULL;
}

/* one row of fd.json: mode, op, nfds, held -> the row, NULL if absent */
static json_object *fd_row(json_object *fd, const char *mode, const char *op, int nfds, int held)
{
	json_object *modes = jget(fd, "modes");

	for (size_t i = 0; modes && i < json_object_array_length(modes); i++) {
		json_object *m = json_object_array_get_idx(modes, i), *rows = jget(m, "rows");

		if (!jstr(m, "mode") || strcmp(jstr(m, "mode"), mode))
			continue;
		for (size_t k = 0; rows && k < json_object_array_length(rows); k++) {
			json_object *r = json_object_array_get_idx(rows, k);

			if (jstr(r, "op") && !strcmp(jstr(r, "op"), op) && jdbl(r, "nfds", -1) == nfds &&
			    jdbl(r, "held", -1) == held)
				return r;
		}
	}
	return NULL;
}

static void target(FILE *txt, json_object *arr, const char *name, const char *what, double value, const char *op,
		   double limit, const char *unit, const char *raw);

/* fd store on against off for one fd row: the target on the medians; beside it (raw) the minima, and,
 * when bench-fd took the two modes side by side ("schedule": "interleaved"), the median of the per-pair
 * ratios and vlud's CPU per request, which the host's load moves far less than the times */
static void fd_store_target(FILE *txt, json_object *arr, json_object *fd, const char *name, const char *what, int nfds,
			    int held)
{
	json_object *on = fd_row(fd, "fdstore", "fd.store", nfds, held);
	json_object *off = fd_row(fd, "plain", "fd.store", nfds, held), *cmp = jget(fd, "fdstore_vs_plain"), *c = NULL;
	double mon = on ? jdbl(on, "median_us", NAN) : NAN, moff = off ? jdbl(off, "median_us", NAN) : NAN;
	const char *sched = jstr(fd, "schedule");
	char raw[512];
	size_t l;

	for (size_t i = 0; cmp && i < json_object_array_length(cmp); i++) {
		json_object *x = json_object_array_get_idx(cmp, i);

		if (jstr(x, "op") && !strcmp(jstr(x, "op"), "fd.store") && jdbl(x, "nfds", -1) == nfds &&
		    jdbl(x, "held", -1) == held)
			c = x;
	}
	snprintf(raw, sizeof(raw), "%s, median: %.1f us with, %.1f us without (minima %.1f / %.1f)", what, mon, moff,
		 on ? jdbl(on, "min_us", NAN) : NAN, off ? jdbl(off, "min_us", NAN) : NAN);
	l = strlen(raw);
	if (c)
		snprintf(raw + l, sizeof(raw) - l, "; side by side: per-pair ratio %.2fx, vlud CPU %.1f / %.1f us",
			 jdbl(c, "paired_ratio_median", NAN), jdbl(c, "on_vlud_cpu_median_us", NAN),
			 jdbl(c, "off_vlud_cpu_median_us", NAN));
	else if (!sched || strcmp(sched, "interleaved"))
		snprintf(raw + l, sizeof(raw) - l, "; the modes one after the other");
	target(txt, arr, name, "fd.store, fd store on / off", mon / moff, "<=", 2, "x", raw);
}

static void target(FILE *txt, json_object *arr, const char *name, const char *what, double value, const char *op,
		   double limit, const char *unit, const char *raw)
{
	json_object *o = json_object_new_object();
	const char *verdict = isnan(value) ? "not measured" : value <= limit ? "met" : "not met";

	fprintf(txt, "  %-22s %s %g%s: %s", name, op, limit, unit, verdict);
	if (!isnan(value))
		fprintf(txt, ", measured %.3g%s", value, unit);
	fprintf(txt, "\n    %s; %s\n", what, raw);
	json_object_object_add(o, "target", json_object_new_string(name));
	json_object_object_add(o, "what", json_object_new_string(what));
	json_object_object_add(o, "value", isnan(value) ? NULL : jd(value));
	json_object_object_add(o, "limit", jd(limit));
	json_object_object_add(o, "unit", json_object_new_string(unit));
	json_object_object_add(o, "raw", json_object_new_string(raw));
	json_object_object_add(o, "result", json_object_new_string(verdict));
	json_object_array_add(arr, o);
}

static void targets_report(FILE *txt, json_object *fd, json_object *sd, json_object *arr)
{
	char raw[1024], mb[16];
	size_t l = 0;
	double v, worst;

	fprintf(txt, "Targets (computed from this run; \"not measured\": the data is not in this run)\n");
	/* 1: exec mode, touched RAM, the first update at 2 GiB against 64 MiB; the same for guest RAM in
	 * hugetlb pages (BENCH_RAM=hugetlb: touched too, one of the two remedies the issue asks to compare) */
	static const char *const flat_ram[] = { "touched", "hugetlb" };
	for (size_t k = 0; k < ELEMENTSOF(flat_ram); k++) {
		struct series *lo = find_series("patched", "vlud", flat_ram[k], "A", 64),
			      *hi = find_series("patched", "vlud", flat_ram[k], "A", 2048);
		double lf = lo ? median_of(&lo->first) : NAN, hf = hi ? median_of(&hi->first) : NAN;
		char ls[32] = "not run", hs[32] = "not run";

		v = lo && hi && lo->first.n && hi->first.n ? hf / lf : NAN;
		if (!isnan(lf))
			snprintf(ls, sizeof(ls), "%.1f ms", lf);
		if (!isnan(hf))
			snprintf(hs, sizeof(hs), "%.1f ms", hf);
		snprintf(raw, sizeof(raw), "first update (median of %zu and %zu runs), patched, vlud, %s, path A: 64M %s, 2G %s",
			 lo ? lo->first.n : 0, hi ? hi->first.n : 0, flat_ram[k], ls, hs);
		target(txt, arr, k ? "exec-flat-hugetlb" : "exec-flat", "pause of the first update at 2 GiB / at 64 MiB",
		       v, "<=", 1.2, "x", raw);
	}

	/* 2: vlud-driven A against minivmm alone, median of updates 2..N, every size: the worst; then the same
	 * for the rows run with ASLR off in the guest (RAM kind "-noaslr", BENCH_NOASLR: TCG translates the code
	 * of every fresh image again unless its libraries sit at the same addresses, docs/BENCH.md) */
	for (int na = 0; na < 2; na++) {
		worst = NAN;
		raw[0] = 0;
		for (unsigned i = 0; i < nS; i++) {
			struct series *a = &S[i], *sa;
			double r;

			if (strcmp(a->modules, "patched") || strcmp(a->driver, "vlud") || strcmp(a->path, "A") ||
			    is_noaslr(a->ram) != na || !(sa = find_series(a->modules, "standalone", a->ram, "A", a->mem_mb)))
				continue;
			r = median_of(&a->pause) / median_of(&sa->pause);
			if (isnan(r))
				continue;
			if (isnan(worst) || r > worst)
				worst = r;
			l = strlen(raw);
			snprintf(raw + l, sizeof(raw) - l, "%s%s %s %.1f/%.1f ms", l ? ", " : "", a->ram,
				 mem_str(a->mem_mb, mb, sizeof(mb)), median_of(&a->pause), median_of(&sa->pause));
		}
		target(txt, arr, na ? "path-a-vs-sa-noaslr" : "path-a-vs-standalone",
		       na ? "the same with ASLR off in the guest (code translated once, as a CPU runs it)"
			  : "vlud-driven path A / minivmm alone (median, worst size)",
		       worst, "<=", 1.3, "x", raw[0] ? raw : "no patched A rows of both drivers");
	}

	/* 3: fd store on against off */
	fd_store_target(txt, arr, fd, "fdstore-1-of-1000", "fd.store of 1 fd with 1000 held", 1, 1001);
	fd_store_target(txt, arr, fd, "fdstore-253", "fd.store of 253 fds in one message", 253, 253);

	/* 4: recovery after kill -9 at 1000 held fds */
	{
		json_object *rec = jget(fd, "recovery");
		double vp = NAN;

		v = NAN;
		raw[0] = 0;
		for (size_t i = 0; rec && i < json_object_array_length(rec); i++) {
			json_object *r = json_object_array_get_idx(rec, i);
			double a = jdbl(jget(r, "answer"), "median_us", NAN) / 1e3;

			l = strlen(raw);
			snprintf(raw + l, sizeof(raw) - l, "%s%d fds %.1f ms", l ? ", " : "", (int)jdbl(r, "held", 0), a);
			if (jdbl(r, "held", 0) == 1000) {
				v = a;
				vp = jdbl(jget(r, "vlud"), "median_us", NAN) / 1e3;
			}
		}
		if (!isnan(vp)) {
			l = strlen(raw);
			snprintf(raw + l, sizeof(raw) - l, "; of 1000 fds' %.1f ms, vlud's main() -> answered %.1f ms", v, vp);
		}
		target(txt, arr, "recovery-1000", "kill -9 -> every fd adopted and status answered (median, stand-in PID 1)",
		       v, "<=", 100, " ms", raw[0] ? raw : "no recovery rows");
	}

	/* 4 under the real systemd (tests/bench/bench-systemd.sh, RestartSec=0): vlud's part, its exec (bounded
	 * from above by the fork -> exit of `vlud --version`: no clock marks the exec) and main() -> every fd
	 * adopted and status answered; and the whole, kill -> answered */
	{
		json_object *rows = jget(sd, "rows"), *r1000 = NULL;
		const char *why = jstr(sd, "not_measured");
		double part = NAN, all = NAN;

		raw[0] = 0;
		if (!sd)
			snprintf(raw, sizeof(raw), "no run under the real systemd in this run (tests/bench/bench-systemd.sh)");
		else if (why)
			snprintf(raw, sizeof(raw), "not measured: %s", why);
		for (size_t i = 0; rows && i < json_object_array_length(rows); i++) {
			json_object *r = json_object_array_get_idx(rows, i);
			double e = jdbl(jget(r, "exec_bound"), "median_us", NAN) / 1e3,
			       m = jdbl(jget(r, "vlud"), "median_us", NAN) / 1e3;

			l = strlen(raw);
			snprintf(raw + l, sizeof(raw) - l, "%s%d fds %.1f + %.1f ms", l ? ", " : "", (int)jdbl(r, "held", 0), e, m);
			if (jdbl(r, "held", 0) == 1000) {
				r1000 = r;
				part = e + m;
				all = jdbl(jget(r, "total"), "median_us", NAN) / 1e3;
			}
		}
		if (!raw[0])
			snprintf(raw, sizeof(raw), "no rows");
		target(txt, arr, "recovery-1000-systemd",
		       "real systemd, vlud's part: exec (at most: vlud --version, fork -> exit) + main() -> every fd adopted "
		       "and status answered (medians)", part, "<=", 100, " ms", raw);
		if (rows && !r1000) {
			raw[0] = 0;
			for (size_t i = 0; i < json_object_array_length(rows); i++) {
				json_object *r = json_object_array_get_idx(rows, i);

				l = strlen(raw);
				snprintf(raw + l, sizeof(raw) - l, "%s%d fds %.1f ms", l ? ", " : "", (int)jdbl(r, "held", 0),
					 jdbl(jget(r, "total"), "median_us", NAN) / 1e3);
			}
			if (!raw[0])
				snprintf(raw, sizeof(raw), "no rows");
		}
		if (r1000)
			snprintf(raw, sizeof(raw), "1000 fds, medians: kill -> answered %.1f ms = systemd %.1f ms (death seen "
				 "%.1f, restart job to fork %.1f, fork -> vlud's main() %.1f, of it exec at most %.1f) + vlud "
				 "main() -> answered %.1f ms", all, jdbl(jget(r1000, "systemd"), "median_us", NAN) / 1e3,
				 jdbl(jget(r1000, "death_seen"), "median_us", NAN) / 1e3,
				 jdbl(jget(r1000, "restart"), "median_us", NAN) / 1e3,
				 jdbl(jget(r1000, "fork_to_main"), "median_us", NAN) / 1e3,
				 jdbl(jget(r1000, "exec_bound"), "median_us", NAN) / 1e3,
				 jdbl(jget(r1000, "vlud"), "median_us", NAN) / 1e3);
		target(txt, arr, "recovery-1000-sd-total",
		       "real systemd, RestartSec=0: kill -9 -> every fd adopted and status answered (median; systemd's "
		       "sandbox set-up included)", all, "<=", 100, " ms", raw);
	}

	/* 5: vlud's own share of the pause, every path and size it drives: the worst (and apart, the rows with
	 * ASLR off, as for 2) */
	for (int na = 0; na < 2; na++) {
		worst = NAN;
		raw[0] = 0;
		for (unsigned i = 0; i < nS; i++) {
			bool inp;
			double d = own_of(&S[i], &inp), pz = median_of(&S[i].pause), all = median_of(&S[i].daemon);

			if (is_noaslr(S[i].ram) != na || isnan(d) || isnan(pz) || pz <= 0)
				continue;
			if (isnan(worst) || d / pz > worst) {
				worst = d / pz;
				if (snprintf(raw, sizeof(raw), "worst: %s %s RAM path %s %s: %.2f of %.1f ms (%s; all of vlud's "
					     "own time %.2f ms, %.1f%%)", S[i].modules, S[i].ram, S[i].path,
					     mem_str(S[i].mem_mb, mb, sizeof(mb)), d, pz,
					     inp ? "inside the pause" : "all of it: no daemon_pause_ms", all,
					     100 * all / pz) >= (int)sizeof(raw))
					raw[sizeof(raw) - 1] = '\0';
			}
		}
		target(txt, arr, na ? "vlud-share-noaslr" : "vlud-share",
		       na ? "the same with ASLR off in the guest"
			  : "vlud's own time inside the pause / pause (median, worst row)",
		       isnan(worst) ? NAN : 100 * worst, "<=", 5, "%", raw[0] ? raw : "no vlud-driven rows");
	}
}

static int cmp_iof(const void *a, const void *b)
{
	const struct iofrow *x = a, *y = b;
	int c = strcmp(y->mode, x->mode); /* transfer before exec */

	return c ? c : x->mem_mb - y->mem_mb;
}

static json_object *samples_json(struct bstat_samples *s)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < s->n; i++)
		json_object_array_add(a, jd(s->v[i]));
	return a;
}

/*
 * The iommufd rows: moving a VFIO device's pinned guest memory to a new process with
 * IOMMU_IOAS_CHANGE_PROCESS against unmap + map again (the re-pin), per mode and size; the ratio re-pin / move
 * per size and how each grows with the size (a least-squares fit per mode).  Into txt (pause.txt), dat
 * (pause.dat: a block per mode and operation, after the pause blocks when there are any), doc's
 * "iommufd" (summaries and every raw line) and ratios.
 */
static void iof_report(FILE *txt, FILE *dat, bool dat_used, json_object *doc, json_object *ratios)
{
	json_object *rows = json_object_new_array();
	char mb[16];

	if (!nIOF)
		return;
	qsort(IOF, nIOF, sizeof(IOF[0]), cmp_iof);
	fprintf(txt, "\niommufd: a VFIO device's pinned guest memory moved to a new process (ms; TCG guest, QEMU edu behind\n"
		     "intel-iommu, user accounting mode; 'cp' = IOMMU_IOAS_CHANGE_PROCESS by the new process, 're-pin' =\n"
		     "IOMMU_IOAS_UNMAP of every mapping + IOMMU_IOAS_MAP_FILE again by the new process, 'first' = the first\n"
		     "map (pin) of touched memory; transfer: a second process that received the fds, exec: the same process\n"
		     "after exec; every move checked: VmPin moved by exactly the size, an edu DMA through the IOMMU after it)\n\n");
	fprintf(txt, "%-8s %5s %3s %8s %8s %9s %9s %9s %9s %9s %9s %9s  %s\n", "mode", "mem", "n", "cp_min", "cp_med",
		"repin_min", "repin_med", "unmap_med", "map_med", "first", "x_med", "x_min",
		"runs ok/all, moves/re-pins, VmPin exact, DMA checks, checks failed");
	for (unsigned i = 0; i < nIOF; i++) {
		struct iofrow *r = &IOF[i];
		struct bstat_summary c, rp, u, m, f;
		json_object *o = json_object_new_object();
		double x, xm;

		bstat_summarize(&r->cp, &c);
		bstat_summarize(&r->repin, &rp);
		bstat_summarize(&r->unmap, &u);
		bstat_summarize(&r->map, &m);
		bstat_summarize(&r->first, &f);
		x = c.n && rp.n && c.p50 > 0 ? rp.p50 / c.p50 : NAN;
		xm = c.n && rp.n && c.min > 0 ? rp.min / c.min : NAN;
		fprintf(txt, "%-8s %5s %3zu %8.3f %8.3f %9.1f %9.1f %9.1f %9.1f %9.1f %8.0fx %8.0fx  %u/%u, %u/%u, %u/%u, %u, %u\n",
			r->mode, mem_str(r->mem_mb, mb, sizeof(mb)), c.n, c.n ? c.min : NAN, c.n ? c.p50 : NAN,
			rp.n ? rp.min : NAN, rp.n ? rp.p50 : NAN, u.n ? u.p50 : NAN, m.n ? m.p50 : NAN, f.n ? f.p50 : NAN, x,
			xm, r->runs_ok, r->runs, r->moves, r->repins, r->vmpin_exact, r->vmpin_total, r->dma_checks, r->failed);
		json_object_object_add(o, "mode", json_object_new_string(r->mode));
		json_object_object_add(o, "mem_mb", json_object_new_int(r->mem_mb));
		json_object_object_add(o, "kb", json_object_new_int64(r->kb));
		json_object_object_add(o, "moves", json_object_new_int((int)r->moves));
		json_object_object_add(o, "repins", json_object_new_int((int)r->repins));
		json_object_object_add(o, "cp_min_ms", c.n ? jd(c.min) : NULL);
		json_object_object_add(o, "cp_median_ms", c.n ? jd(c.p50) : NULL);
		json_object_object_add(o, "cp_max_ms", c.n ? jd(c.max) : NULL);
		json_object_object_add(o, "repin_min_ms", rp.n ? jd(rp.min) : NULL);
		json_object_object_add(o, "repin_median_ms", rp.n ? jd(rp.p50) : NULL);
		json_object_object_add(o, "repin_max_ms", rp.n ? jd(rp.max) : NULL);
		json_object_object_add(o, "unmap_median_ms", u.n ? jd(u.p50) : NULL);
		json_object_object_add(o, "map_median_ms", m.n ? jd(m.p50) : NULL);
		json_object_object_add(o, "pin_first_ms", f.n ? jd(f.p50) : NULL);
		json_object_object_add(o, "repin_over_cp_median", isnan(x) ? NULL : jd(x));
		json_object_object_add(o, "repin_over_cp_min", isnan(xm) ? NULL : jd(xm));
		json_object_object_add(o, "runs", json_object_new_int((int)r->runs));
		json_object_object_add(o, "runs_ok", json_object_new_int((int)r->runs_ok));
		json_object_object_add(o, "vmpin_exact", json_object_new_int((int)r->vmpin_exact));
		json_object_object_add(o, "vmpin_recorded", json_object_new_int((int)r->vmpin_total));
		json_object_object_add(o, "dma_checks", json_object_new_int((int)r->dma_checks));
		json_object_object_add(o, "checks", json_object_new_int((int)r->checks));
		json_object_object_add(o, "checks_failed", json_object_new_int((int)r->failed));
		json_object_object_add(o, "cp_ms", samples_json(&r->cp));
		json_object_object_add(o, "repin_ms", samples_json(&r->repin));
		json_object_object_add(o, "raw", json_object_get(r->raw));
		json_object_array_add(rows, o);
		if (!isnan(x)) {
			json_object *q = json_object_new_object();

			json_object_object_add(q, "ratio", json_object_new_string("iommufd_repin/cp"));
			json_object_object_add(q, "mode", json_object_new_string(r->mode));
			json_object_object_add(q, "mem_mb", json_object_new_int(r->mem_mb));
			json_object_object_add(q, "value", jd(x));
			json_object_object_add(q, "value_min", isnan(xm) ? NULL : jd(xm));
			json_object_array_add(ratios, q);
		}
	}
	/* growth with the size, per mode and operation: smallest -> largest, and a fit of the medians */
	for (unsigned i = 0; i < nIOF; i++) {
		static const char *const opn[] = { "cp", "repin", "first" };
		unsigned k, last = i;

		if (i > 0 && !strcmp(IOF[i - 1].mode, IOF[i].mode))
			continue;
		for (k = i; k < nIOF && !strcmp(IOF[k].mode, IOF[i].mode); k++)
			last = k;
		for (unsigned op = 0; op < ELEMENTSOF(opn); op++) {
			double sx = 0, sy = 0, sxx = 0, sxy = 0, y0 = NAN, y1 = NAN;
			unsigned n = 0;
			json_object *q;

			for (k = i; k <= last; k++) {
				struct bstat_samples *sm = op == 0 ? &IOF[k].cp : op == 1 ? &IOF[k].repin : &IOF[k].first;
				double y = median_of(sm), xx = IOF[k].mem_mb;

				if (isnan(y))
					continue;
				if (k == i)
					y0 = y;
				if (k == last)
					y1 = y;
				sx += xx, sy += y, sxx += xx * xx, sxy += xx * y, n++;
			}
			if (last == i || isnan(y0) || isnan(y1) || n < 2)
				continue;
			double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), icpt = (sy - slope * sx) / n;
			char mb2[16];

			fprintf(txt, "  iommufd %s %-5s: %s -> %s median x%.2f (memory x%d); fit: %.3f ms + %.5f ms/MiB\n",
				IOF[i].mode, opn[op], mem_str(IOF[i].mem_mb, mb, sizeof(mb)),
				mem_str(IOF[last].mem_mb, mb2, sizeof(mb2)), y1 / y0, IOF[last].mem_mb / IOF[i].mem_mb, icpt,
				slope);
			q = json_object_new_object();
			json_object_object_add(q, "ratio", json_object_new_string("iommufd_growth"));
			json_object_object_add(q, "mode", json_object_new_string(IOF[i].mode));
			json_object_object_add(q, "op", json_object_new_string(opn[op]));
			json_object_object_add(q, "from_mb", json_object_new_int(IOF[i].mem_mb));
			json_object_object_add(q, "to_mb", json_object_new_int(IOF[last].mem_mb));
			json_object_object_add(q, "value", jd(y1 / y0));
			json_object_object_add(q, "fit_intercept_ms", jd(icpt));
			json_object_object_add(q, "fit_ms_per_mib", jd(slope));
			json_object_array_add(ratios, q);
		}
	}
	/* the plot: CHANGE_PROCESS and the re-pin of each mode, beside the pause of the vhost-vdpa paths */
	for (unsigned op = 0; op < 2; op++) {
		const char *block = NULL; /* the mode whose block is open */

		for (unsigned i = 0; i < nIOF; i++) {
			struct bstat_samples *sm = op == 0 ? &IOF[i].cp : &IOF[i].repin;
			struct bstat_summary m;

			bstat_summarize(sm, &m);
			if (!m.n)
				continue; /* (no empty blocks: gnuplot would take the next block's title for data) */
			if (!block || strcmp(block, IOF[i].mode)) {
				if (dat_used)
					fprintf(dat, "\n\n");
				fprintf(dat, "\"iommufd %s (%s, VFIO edu)\"\n",
					op == 0 ? "IOMMU_IOAS_CHANGE_PROCESS" : "re-pin: unmap + map", IOF[i].mode);
				dat_used = true;
				block = IOF[i].mode;
			}
			fprintf(dat, "%d %.3f %.3f %.3f\n", IOF[i].mem_mb, m.p50, m.min, m.max);
		}
	}
	json_object_object_add(doc, "iommufd", rows);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "vm-log", required_argument, NULL, 'v' },
		{ "fd", required_argument, NULL, 'f' },
		{ "ctl", required_argument, NULL, 'c' },
		{ "demo-log", required_argument, NULL, 'd' },
		{ "sdrec", required_argument, NULL, 's' },
		{}
	};
	const char *out = NULL, *fd_path = NULL, *ctl_path = NULL, *sd_path = NULL;
	const char *logs[8], *dlogs[8];
	unsigned nlogs = 0, ndlogs = 0;
	char p[4096], mb1[16], mb2[16];
	json_object *doc = json_object_new_object(), *rows = json_object_new_array(), *ratios = json_object_new_array();
	FILE *txt, *dat;
	int c;

	while ((c = getopt_long(argc, argv, "o:v:f:c:d:s:", lo, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'v': if (nlogs < ELEMENTSOF(logs)) logs[nlogs++] = optarg; break;
		case 'f': fd_path = optarg; break;
		case 'c': ctl_path = optarg; break;
		case 's': sd_path = optarg; break;
		case 'd': if (ndlogs < ELEMENTSOF(dlogs)) dlogs[ndlogs++] = optarg; break;
		default: return 2;
		}
	}
	if (!out)
		return fprintf(stderr, "usage: bench-report --out DIR [--vm-log F]... [--fd F] [--ctl F] [--sdrec F] | --demo-log F...\n"), 2;
	if (ndlogs)
		return demo_report(out, dlogs, ndlogs);
	for (unsigned i = 0; i < nlogs; i++)
		(void)read_vm_log(logs[i]);
	qsort(S, nS, sizeof(S[0]), cmp_series);

	snprintf(p, sizeof(p), "%s/pause.txt", out);
	txt = fopen(p, "we");
	snprintf(p, sizeof(p), "%s/pause.dat", out);
	dat = fopen(p, "we");
	if (!txt || !dat)
		return fprintf(stderr, "bench-report: %s: %m\n", p), 1;

	fprintf(txt, "Pause of a live update (ms; TCG guest, vdpa_sim_net, loopback traffic at 1000 frames/s)\n");
	fprintf(txt, "device pause = suspend -> RESUME (A) / DRIVER_OK (B, C); echo gap = largest gap between echoes the\n"
		     "client saw; 'first' = the first update of each run (not in min/median/max; see docs/BENCH.md)\n\n");
	fprintf(txt, "%-8s %-10s %-15s %-4s %5s %3s %9s %9s %9s %9s %9s %9s %7s %6s %s\n", "modules", "driver", "ram", "path", "mem", "n",
		"pause_min", "pause_med", "pause_max", "first", "echo_med", "daemon_md", "share", "cvq_md", "runs ok/all, lost, VmPin kB");
	char cur[64] = "";
	for (unsigned i = 0; i < nS; i++) {
		struct series *s = &S[i];
		struct bstat_summary mp, me, md, mf, mc;
		json_object *o = json_object_new_object(), *ph = json_object_new_object();

		bstat_summarize(&s->pause, &mp);
		bstat_summarize(&s->echo, &me);
		bstat_summarize(&s->daemon, &md);
		bstat_summarize(&s->first, &mf);
		bstat_summarize(&s->cvq, &mc);
		fprintf(txt, "%-8s %-10s %-15s %-4s %5s %3zu ", s->modules, s->driver, s->ram, s->path,
			mem_str(s->mem_mb, mb1, sizeof(mb1)), mp.n);
		/* no update after the first (quick mode: one update per run): nothing to summarize, not 0 */
		if (mp.n)
			fprintf(txt, "%9.1f %9.1f %9.1f ", mp.min, mp.p50, mp.max);
		else
			fprintf(txt, "%9s %9s %9s ", "-", "-", "-");
		if (mf.n)
			fprintf(txt, "%9.1f ", mf.p50);
		else
			fprintf(txt, "%9s ", "-");
		fprintf(txt, "%9.1f ", me.p50);
		bool inp;
		double own = own_of(s, &inp);

		if (md.n && mp.n && mp.p50 > 0)
			fprintf(txt, "%9.1f %6.1f%% ", md.p50, 100 * own / mp.p50);
		else if (md.n)
			fprintf(txt, "%9.1f %7s ", md.p50, "-");
		else
			fprintf(txt, "%9s %7s ", "-", "-");
		if (mc.n)
			fprintf(txt, "%6.1f ", mc.p50);
		else
			fprintf(txt, "%6s ", "-"); /* no cvq_replay_ms in the verdicts (or standalone) */
		fprintf(txt, "%u/%u, %u, %ld->%ld\n", s->runs_ok, s->runs, s->lost, s->vmpin_before_kb, s->vmpin_after_kb);

		json_object_object_add(o, "modules", json_object_new_string(s->modules));
		json_object_object_add(o, "driver", json_object_new_string(s->driver));
		json_object_object_add(o, "ram", json_object_new_string(s->ram));
		json_object_object_add(o, "path", json_object_new_string(s->path));
		json_object_object_add(o, "mem_mb", json_object_new_int(s->mem_mb));
		json_object_object_add(o, "updates", json_object_new_int((int)mp.n));
		json_object_object_add(o, "pause_min_ms", mp.n ? jd(mp.min) : NULL);
		json_object_object_add(o, "pause_median_ms", mp.n ? jd(mp.p50) : NULL);
		json_object_object_add(o, "pause_max_ms", mp.n ? jd(mp.max) : NULL);
		json_object_object_add(o, "pause_first_ms", mf.n ? jd(mf.p50) : NULL);
		json_object_object_add(o, "echo_gap_median_ms", me.n ? jd(me.p50) : NULL);
		json_object_object_add(o, "echo_gap_max_ms", me.n ? jd(me.max) : NULL);
		json_object_object_add(o, "daemon_median_ms", md.n ? jd(md.p50) : NULL);
		json_object_object_add(o, "daemon_in_pause_median_ms", s->daemon_pause.n ? jd(median_of(&s->daemon_pause)) : NULL);
		json_object_object_add(o, "cvq_replay_median_ms", mc.n ? jd(mc.p50) : NULL);
		json_object_object_add(o, "runs", json_object_new_int((int)s->runs));
		json_object_object_add(o, "runs_ok", json_object_new_int((int)s->runs_ok));
		json_object_object_add(o, "updates_failed", json_object_new_int((int)s->updates_failed));
		json_object_object_add(o, "frames_lost", json_object_new_int((int)s->lost));
		json_object_object_add(o, "frames_dup", json_object_new_int((int)s->dup));
		json_object_object_add(o, "vmpin_before_kb", json_object_new_int64(s->vmpin_before_kb));
		json_object_object_add(o, "vmpin_after_kb", json_object_new_int64(s->vmpin_after_kb));
		for (unsigned k = 0; k < s->nphases; k++)
			json_object_object_add(ph, s->phase_name[k], jd(median_of(&s->phase[k])));
		json_object_object_add(o, "phases_median_ms", ph);
		json_object_array_add(rows, o);

		/* gnuplot: one block per (modules, path), for the first driver and RAM kind only (the sort puts the
		 * daemon-driven updates of touched guest RAM first) */
		char key[64];
		if (strcmp(s->driver, S[0].driver) || strcmp(s->ram, S[0].ram))
			continue;
		snprintf(key, sizeof(key), "%s-%s", s->modules, s->path);
		if (strcmp(cur, key)) {
			if (*cur)
				fprintf(dat, "\n\n");
			fprintf(dat, "\"path %s (%s modules, %s, %s RAM)\"\n", s->path, s->modules, s->driver, s->ram);
			snprintf(cur, sizeof(cur), "%s", key);
		}
		fprintf(dat, "%d %.3f %.3f %.3f\n", s->mem_mb, mp.p50, mp.min, mp.max);
	}

	/* phases (median ms) */
	fprintf(txt, "\nPhases (median ms over the updates of each row, first updates included)\n");
	for (unsigned i = 0; i < nS; i++) {
		struct series *s = &S[i];
		fprintf(txt, "%-8s %-10s %-15s %-4s %5s:", s->modules, s->driver, s->ram, s->path, mem_str(s->mem_mb, mb1, sizeof(mb1)));
		for (unsigned k = 0; k < s->nphases; k++)
			fprintf(txt, " %s %.1f", s->phase_name[k], median_of(&s->phase[k]));
		fprintf(txt, "\n");
	}

	/* ratios */
	fprintf(txt, "\nRatios (same rig run; the minimum is the least disturbed by other load on the host)\n");
	for (unsigned i = 0; i < nS; i++) {
		struct series *a, *cc = &S[i];
		if (strcmp(cc->path, "C") || !(a = find(cc, "A", cc->mem_mb)))
			continue;
		double r = median_of(&cc->pause) / median_of(&a->pause), rm = min_of(&cc->pause) / min_of(&a->pause);
		if (isnan(r) || isnan(rm))
			continue; /* no update 2..N in one of them (quick mode) */
		fprintf(txt, "  C/A at %-5s (%s, %s, %s RAM): median %.1f, min %.1f\n", mem_str(cc->mem_mb, mb1, sizeof(mb1)),
			cc->modules, cc->driver, cc->ram, r, rm);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ratio", json_object_new_string("C/A"));
		json_object_object_add(o, "modules", json_object_new_string(cc->modules));
		json_object_object_add(o, "driver", json_object_new_string(cc->driver));
		json_object_object_add(o, "ram", json_object_new_string(cc->ram));
		json_object_object_add(o, "mem_mb", json_object_new_int(cc->mem_mb));
		json_object_object_add(o, "value", jd(r));
		json_object_object_add(o, "value_min", jd(rm));
		json_object_array_add(ratios, o);
	}
	for (unsigned i = 0; i < nS; i++) {
		struct series *lo_s = &S[i], *hi_s = NULL;
		/* the smallest size of a (modules, path) series starts it */
		if (i > 0 && same_group(&S[i - 1], lo_s) && !strcmp(S[i - 1].path, lo_s->path))
			continue;
		double sx = 0, sy = 0, sxx = 0, sxy = 0;
		unsigned n = 0;
		for (unsigned k = i; k < nS && same_group(&S[k], lo_s) && !strcmp(S[k].path, lo_s->path); k++) {
			double y = median_of(&S[k].pause), x = S[k].mem_mb;
			if (isnan(y))
				continue;
			sx += x, sy += y, sxx += x * x, sxy += x * y, n++;
			if (S[k].mem_mb == 1024 || !hi_s || S[k].mem_mb > hi_s->mem_mb) {
				if (!hi_s || hi_s->mem_mb != 1024)
					hi_s = &S[k];
			}
		}
		if (hi_s && hi_s != lo_s) {
			double g = median_of(&hi_s->pause) / median_of(&lo_s->pause);
			double gm = min_of(&hi_s->pause) / min_of(&lo_s->pause);
			/* the first update of a run (median over the runs): in exec mode the one that tears down
			 * all of touched guest RAM (target 1) */
			double gf = median_of(&hi_s->first) / median_of(&lo_s->first);
			fprintf(txt, "  %s %s %s RAM, path %s: %s -> %s median x%.2f, min x%.2f, first x%.2f (memory x%d)",
				lo_s->modules, lo_s->driver, lo_s->ram, lo_s->path,
				mem_str(lo_s->mem_mb, mb1, sizeof(mb1)), mem_str(hi_s->mem_mb, mb2, sizeof(mb2)), g, gm,
				gf, hi_s->mem_mb / lo_s->mem_mb);
			json_object *o = json_object_new_object();
			json_object_object_add(o, "ratio", json_object_new_string("growth"));
			json_object_object_add(o, "modules", json_object_new_string(lo_s->modules));
			json_object_object_add(o, "driver", json_object_new_string(lo_s->driver));
			json_object_object_add(o, "ram", json_object_new_string(lo_s->ram));
			json_object_object_add(o, "path", json_object_new_string(lo_s->path));
			json_object_object_add(o, "from_mb", json_object_new_int(lo_s->mem_mb));
			json_object_object_add(o, "to_mb", json_object_new_int(hi_s->mem_mb));
			json_object_object_add(o, "value", jd(g));
			json_object_object_add(o, "value_min", jd(gm));
			json_object_object_add(o, "value_first", isnan(gf) ? NULL : jd(gf));
			if (n >= 2) {
				double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), icpt = (sy - slope * sx) / n;
				fprintf(txt, "; fit: %.3f ms + %.4f ms/MiB", icpt, slope);
				json_object_object_add(o, "fit_intercept_ms", jd(icpt));
				json_object_object_add(o, "fit_ms_per_mib", jd(slope));
			}
			fprintf(txt, "\n");
			json_object_array_add(ratios, o);
		}
	}
	for (unsigned i = 0; i < nS; i++) {
		struct series *s = &S[i];
		bool inp;
		double d = own_of(s, &inp), pz = median_of(&s->pause), all = median_of(&s->daemon);
		if (isnan(d) || isnan(pz) || pz <= 0)
			continue;
		fprintf(txt, "  daemon share %s %s RAM, path %s %s: %.1f%% (%.2f of %.1f ms%s; all own time %.2f ms)\n",
			s->modules, s->ram, s->path, mem_str(s->mem_mb, mb1, sizeof(mb1)), 100 * d / pz, d, pz,
			inp ? " inside the pause" : "", all);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ratio", json_object_new_string("daemon_share"));
		json_object_object_add(o, "modules", json_object_new_string(s->modules));
		json_object_object_add(o, "ram", json_object_new_string(s->ram));
		json_object_object_add(o, "path", json_object_new_string(s->path));
		json_object_object_add(o, "mem_mb", json_object_new_int(s->mem_mb));
		json_object_object_add(o, "value", jd(d / pz));
		json_object_array_add(ratios, o);
	}
	iof_report(txt, dat, cur[0] != 0, doc, ratios);
	fclose(txt);
	fclose(dat);

	json_object_object_add(doc, "pause", rows);
	json_object_object_add(doc, "ratios", ratios);
	{
		json_object *fd = fd_path ? json_object_from_file(fd_path) : NULL, *tg = json_object_new_array();
		json_object *sd = sd_path ? json_object_from_file(sd_path) : NULL;
		FILE *tt;

		snprintf(p, sizeof(p), "%s/targets.txt", out);
		tt = fopen(p, "we");
		if (!tt)
			return fprintf(stderr, "bench-report: %s: %m\n", p), 1;
		targets_report(tt, fd, sd, tg);
		fclose(tt);
		json_object_object_add(doc, "targets", tg);
		if (fd)
			json_object_object_add(doc, "fd", fd);
		if (sd)
			json_object_object_add(doc, "recovery_systemd", sd);
	}
	if (ctl_path)
		json_object_object_add(doc, "ctl", json_object_from_file(ctl_path));
	snprintf(p, sizeof(p), "%s/bench.json", out);
	int r = bstat_write_json(p, doc);
	json_object_put(doc);
	if (r < 0)
		return fprintf(stderr, "bench-report: %s: %s\n", p, strerror(-r)), 1;
	if (nS_dropped)
		return fprintf(stderr, "bench-report: %u runs beyond %d series were left out of the report\n", nS_dropped,
			       MAX_SERIES), 1;
	return 0;
}
