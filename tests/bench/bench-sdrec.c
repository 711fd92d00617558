/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-sdrec.c - recovery after kill -9 of vlud under the real systemd: the inside of
 * tests/bench/bench-systemd.sh, run as a oneshot service of systemd as PID 1 of a systemd-nspawn container
 * (the shipped vlud.socket and vlud.service, their whole sandbox, a bench drop-in with RestartSec=0).
 *
 * Holds N memfds in vlud (instances of at most 250 fds each: the shipped max_fds_per_instance is 252, and an
 * instance with more than max_fds_per_message - 1 fds could not be live-updated anyway), waits until systemd's
 * fd store has them all, then R times: SIGKILL to vlud's main process and at once a new connection to the
 * listening socket (systemd's, from vlud.socket: the connection waits in its backlog) that asks `status`
 * and checks that the answer counts N held fds.  Timed on CLOCK_MONOTONIC, the clock of systemd's own
 * *TimestampMonotonic properties and of vlud's start time (status' uptime_ms, taken at the top of main()):
 *
 *   kill -> systemd saw the death (ActiveExitTimestampMonotonic) -> the new main process forked
 *   (ExecMainStartTimestampMonotonic) -> vlud's main() (sandbox set-up in the child, exec, dynamic loading)
 *   -> READY=1 processed by systemd (ActiveEnterTimestampMonotonic) -> status answered with N fds
 *   (systemd may process READY=1 after the answer: vlud serves the waiting connection right after sending it;
 *   and on a loaded host PID 1 may record the fork only after the child reached main(): such a kill counts
 *   in "fork_late" and not in the restart / fork_to_main pieces)
 *
 * systemd's part: the kill to vlud's main(); vlud's part: its main() to the answer.  vlud's main() comes
 * from uptime_ms (1 ms resolution: the middle of the millisecond is taken, +-0.5 ms).  No clock marks the
 * exec itself, so the fork -> main() piece holds vlud's exec and dynamic loading too: with --vlud, the
 * fork -> exit of `vlud --version` (outside the unit's sandbox, 10 times) bounds that share from above.  A bad
 * answer (fds missing, no restart, timestamps out of order) is an error: exit 1, nothing written.
 *
 * Usage: bench-sdrec --socket PATH --held N [--reps R] [--unit UNIT] [--vlud PATH] [--json FILE]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bstat.h"
#include "vlu.h"

#define PER_INSTANCE 250
#define TIMEOUT_US (30 * 1000000LL)

static const char *unit = "vlud.service";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-sdrec: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the unit's properties we read, from `systemctl show` (not timed: read after each answer) */
struct props {
	long long main_pid, nstore, active_exit, exec_start, active_enter, nrestarts, restart_usec;
	char active[32];
};

static void show(struct props *p)
{
	char cmd[256], line[512];
	FILE *f;

	memset(p, 0, sizeof(*p));
	p->restart_usec = -1;
	snprintf(cmd, sizeof(cmd),
		 "systemctl show -p MainPID -p NFileDescriptorStore -p ActiveExitTimestampMonotonic "
		 "-p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic -p NRestarts -p ActiveState "
		 "-p RestartUSec %s", unit);
	f = popen(cmd, "r");
	if (!f)
		die("popen systemctl: %m");
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *v;

		if (!eq)
			continue;
		*eq = 0;
		v = eq + 1;
		v[strcspn(v, "\n")] = 0;
		if (!strcmp(line, "MainPID"))
			p->main_pid = atoll(v);
		else if (!strcmp(line, "NFileDescriptorStore"))
			p->nstore = atoll(v);
		else if (!strcmp(line, "ActiveExitTimestampMonotonic"))
			p->active_exit = atoll(v);
		else if (!strcmp(line, "ExecMainStartTimestampMonotonic"))
			p->exec_start = atoll(v);
		else if (!strcmp(line, "ActiveEnterTimestampMonotonic"))
			p->active_enter = atoll(v);
		else if (!strcmp(line, "NRestarts"))
			p->nrestarts = atoll(v);
		else if (!strcmp(line, "ActiveState"))
			snprintf(p->active, sizeof(p->active), "%s", v);
		else if (!strcmp(line, "RestartUSec")) {
			/* "0", "1s", "100ms": only 0 matters here (the target excludes the restart delay) */
			p->restart_usec = strcmp(v, "0") == 0 ? 0 : 1;
		}
	}
	if (pclose(f) != 0)
		die("systemctl show %s failed", unit);
}

/* until the unit is active and its fd store holds at least want fds, unchanged over three reads 100 ms
 * apart (vlud pushes the held fds and its state after each change and after a restart) */
static void settle(long long want, struct props *p)
{
	int64_t t0 = mono_us();
	long long last = -1;
	int same = 0;

	for (;;) {
		show(p);
		if (!strcmp(p->active, "active") && p->main_pid > 0 && p->nstore >= want && p->nstore == last)
			same++;
		else
			same = 0;
		if (same >= 2)
			return;
		last = p->nstore;
		if (mono_us() - t0 > TIMEOUT_US)
			die("%s not settled: %s, main pid %lld, %lld fds in the store (want >= %lld)", unit, p->active,
			    p->main_pid, p->nstore, want);
		usleep(100000);
	}
}

/* fork -> exec -> vlud's main() -> exit -> reaped, of `vlud --version`, n times */
static void exec_bound(const char *vlud, unsigned n, struct bstat_samples *s)
{
	for (unsigned i = 0; i < n; i++) {
		int64_t t0 = mono_us();
		int st = 0;
		pid_t pid = fork();

		if (pid < 0)
			die("fork: %m");
		if (pid == 0) {
			int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

			if (nul >= 0)
				dup2(nul, STDOUT_FILENO);
			execl(vlud, vlud, "--version", (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("%s --version failed (status 0x%x)", vlud, st);
		bstat_add(s, (double)(mono_us() - t0));
	}
}

static json_object *samples_json(struct bstat_samples *s)
{
	struct bstat_summary m;

	bstat_summarize(s, &m);
	return bstat_summary_json(&m);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "held", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "unit", required_argument, NULL, 'u' },
		{ "json", required_argument, NULL, 'j' },
		{ "vlud", required_argument, NULL, 'v' },
		{}
	};
	const char *sock = NULL, *json_path = NULL, *vlud_path = NULL;
	long held = 0, reps = 5, ninst, fork_late = 0;
	/* microseconds: the whole, systemd's part and its pieces, vlud's part and its piece */
	struct bstat_samples total = {}, sd = {}, death = {}, restart = {}, tomain = {}, vlud = {}, ready = {}, execb = {};
	struct props p;
	json_object *row;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:n:r:u:j:v:", lo, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'n': held = strtol(optarg, NULL, 10); break;
		case 'r': reps = strtol(optarg, NULL, 10); break;
		case 'u': unit = optarg; break;
		case 'j': json_path = optarg; break;
		case 'v': vlud_path = optarg; break;
		default: return 2;
		}
	}
	if (!sock || held <= 0 || held > 100000 || reps <= 0 || reps > 1000) {
		fprintf(stderr, "usage: bench-sdrec --socket PATH --held N (1..100000) [--reps R (1..1000)] [--unit UNIT] "
				"[--vlud PATH] [--json FILE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bstat_raise_nofile();
	ninst = (held + PER_INSTANCE - 1) / PER_INSTANCE;

	/* the VMMs: each stores its memfds in one fd.store and disconnects (its instance stays, orphaned) */
	for (long i = 0; i < ninst; i++) {
		long k = held - i * PER_INSTANCE < PER_INSTANCE ? held - i * PER_INSTANCE : PER_INSTANCE;
		int fds[PER_INSTANCE];
		char nb[PER_INSTANCE][16], inst[32];
		const char *names[PER_INSTANCE];
		struct vlu *v = NULL;

		for (long j = 0; j < k; j++) {
			fds[j] = memfd_create("bench-sdrec", MFD_CLOEXEC);
			if (fds[j] < 0)
				die("memfd_create: %m");
			snprintf(nb[j], sizeof(nb[j]), "m%ld", j);
			names[j] = nb[j];
		}
		snprintf(inst, sizeof(inst), "rec%ld", i);
		if ((r = vlu_connect(sock, 30000, &v)) < 0)
			die("connect %s: %s", sock, strerror(-r));
		if ((r = vlu_register(v, inst, false)) < 0 || (r = vlu_fd_store(v, names, fds, (size_t)k, false)) < 0) {
			const char *cls = NULL, *desc = NULL;

			vlu_last_error(v, &cls, &desc);
			die("%s: register/fd.store of %ld fds: %s (%s: %s)", inst, k, strerror(-r), cls ? cls : "-",
			    desc ? desc : "-");
		}
		vlu_close(v);
		for (long j = 0; j < k; j++)
			close(fds[j]);
	}

	for (long k = 0; k < reps; k++) {
		struct vlu *v = NULL;
		json_object *st = NULL, *cnt = NULL, *f = NULL, *up = NULL, *su = NULL;
		int64_t tk, ta, tm, got = -1, uptime, adopted = -1, lost = -1;
		long long pid0, nr0;

		settle(held + 1, &p); /* the held fds and at least the state memfd */
		pid0 = p.main_pid;
		nr0 = p.nrestarts;
		if (p.restart_usec != 0)
			die("%s has a restart delay (RestartSec=): the bench drop-in sets 0", unit);
		tk = mono_us();
		if (kill((pid_t)pid0, SIGKILL) < 0)
			die("kill %lld: %m", pid0);
		/* the new connection waits in the backlog of systemd's listening socket until the new vlud takes it */
		for (;;) {
			r = vlu_connect(sock, 30000, &v);
			if (r >= 0)
				r = vlu_status(v, &st);
			if (r >= 0)
				break;
			vlu_close(v);
			v = NULL;
			if (mono_us() - tk > TIMEOUT_US)
				die("no answer within 30 s of the kill: %s", strerror(-r));
			usleep(1000);
		}
		ta = mono_us();
		if (json_object_object_get_ex(st, "counts", &cnt) && json_object_object_get_ex(cnt, "fds", &f))
			got = json_object_get_int64(f);
		if (!json_object_object_get_ex(st, "uptime_ms", &up))
			die("status without uptime_ms");
		uptime = json_object_get_int64(up);
		if (json_object_object_get_ex(st, "startup", &su)) {
			if (json_object_object_get_ex(su, "adopted_fds", &f))
				adopted = json_object_get_int64(f);
			if (json_object_object_get_ex(su, "lost_fds", &f))
				lost = json_object_get_int64(f);
		}
		json_object_put(st);
		vlu_close(v);
		if (got != held || adopted < held || lost != 0)
			die("after the kill: status counts %lld held fds, %lld adopted, %lld lost; want %ld held and adopted, "
			    "0 lost", (long long)got, (long long)adopted, (long long)lost, held);
		show(&p);
		/* vlud's main(): uptime_ms is whole milliseconds, the middle of the last one */
		tm = ta - uptime * 1000 - 500;
		if (p.main_pid == pid0 || p.main_pid <= 0 || p.nrestarts != nr0 + 1)
			die("no restart seen: main pid %lld -> %lld, restarts %lld -> %lld", pid0, p.main_pid, nr0,
			    p.nrestarts);
		/* READY=1 may be processed by systemd after vlud answered the queued connection: no order there */
		if (!(tk <= p.active_exit && p.active_exit <= p.exec_start && tk <= tm && tm <= p.active_enter + 1000 &&
		      tm <= ta))
			die("timestamps out of order: kill %lld, death seen %lld, fork %lld, main() %lld, READY=1 %lld, "
			    "answer %lld", (long long)tk, p.active_exit, p.exec_start, (long long)tm, p.active_enter,
			    (long long)ta);
		bstat_add(&total, (double)(ta - tk));
		bstat_add(&sd, (double)(tm - tk));
		bstat_add(&death, (double)(p.active_exit - tk));
		/* systemd takes ExecMainStartTimestamp in PID 1 after its fork() returned: on a loaded host PID 1
		 * may get the CPU back only after the child has set up, exec'd and reached main(); that kill's
		 * restart / fork_to_main split is then unknown (counted apart), the rest stands */
		if (p.exec_start > tm + 1000) {
			fork_late++;
			fprintf(stderr, "bench-sdrec: %ld fds, kill %d: systemd recorded the fork %.1f ms after vlud's "
					"main(): no restart / fork -> main() split for this kill\n", held, (int)k + 1,
				(p.exec_start - tm) / 1e3);
		} else {
			bstat_add(&restart, (double)(p.exec_start - p.active_exit));
			bstat_add(&tomain, (double)(tm - p.exec_start));
		}
		bstat_add(&vlud, (double)(ta - tm));
		bstat_add(&ready, (double)(p.active_enter - tm));
		fprintf(stderr, "bench-sdrec: %ld fds, kill %d: total %.1f ms = systemd %.1f (death seen %.1f, fork %.1f, "
				"main() %.1f) + vlud %.1f (READY=1 %.1f)\n", held, (int)k + 1, (ta - tk) / 1e3,
			(tm - tk) / 1e3, (p.active_exit - tk) / 1e3, (p.exec_start - p.active_exit) / 1e3,
			(tm - p.exec_start) / 1e3, (ta - tm) / 1e3, (p.active_enter - tm) / 1e3);
	}

	if (vlud_path)
		exec_bound(vlud_path, 10, &execb);
	{
		struct bstat_summary mt, ms, md, mr, mf, mv, my, me;

		bstat_summarize(&total, &mt);
		bstat_summarize(&sd, &ms);
		bstat_summarize(&death, &md);
		bstat_summarize(&restart, &mr);
		bstat_summarize(&tomain, &mf);
		bstat_summarize(&vlud, &mv);
		bstat_summarize(&ready, &my);
		bstat_summarize(&execb, &me);
		printf("  %5ld %4ld %4ld %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", held, ninst, reps,
		       mt.min / 1e3, mt.p50 / 1e3, ms.p50 / 1e3, md.p50 / 1e3, mr.p50 / 1e3, mf.p50 / 1e3, me.p50 / 1e3,
		       mv.min / 1e3, mv.p50 / 1e3, my.p50 / 1e3);
		if (fork_late)
			printf("        (%ld of %ld kills: systemd recorded the fork after vlud's main(), PID 1 off the CPU; "
			       "restart and fork_main are of the other kills)\n", fork_late, reps);
	}
	row = json_object_new_object();
	json_object_object_add(row, "held", json_object_new_int64(held));
	json_object_object_add(row, "instances", json_object_new_int64(ninst));
	json_object_object_add(row, "reps", json_object_new_int64(reps));
	/* kills whose fork timestamp came after vlud's main() (not in restart / fork_to_main) */
	json_object_object_add(row, "fork_late", json_object_new_int64(fork_late));
	json_object_object_add(row, "total", samples_json(&total));			/* kill -> answered */
	json_object_object_add(row, "systemd", samples_json(&sd));			/* kill -> vlud's main() */
	json_object_object_add(row, "death_seen", samples_json(&death));		/* kill -> ActiveExit */
	json_object_object_add(row, "restart", samples_json(&restart));		/* ActiveExit -> fork */
	json_object_object_add(row, "fork_to_main", samples_json(&tomain));		/* fork -> main() */
	json_object_object_add(row, "vlud", samples_json(&vlud));			/* main() -> answered */
	json_object_object_add(row, "vlud_ready", samples_json(&ready));		/* main() -> READY=1 */
	if (execb.n)	/* fork -> reaped of `vlud --version`: bounds exec + loading inside fork_to_main */
		json_object_object_add(row, "exec_bound", samples_json(&execb));
	if (json_path && (r = bstat_write_json(json_path, row)) < 0)
		die("%s: %s", json_path, strerror(-r));
	json_object_put(row);
	bstat_done(&total);
	bstat_done(&sd);
	bstat_done(&death);
	bstat_done(&restart);
	bstat_done(&tomain);
	bstat_done(&vlud);
	bstat_done(&ready);
	bstat_done(&execb);
	return 0;
}
