/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c - minivmm: options, the datapath glue, the single poll loop, the report.
 *
 * Exit status: 0 verdict pass, 1 verdict fail, 2 usage, 3 setup failed (device, memory, state).
 */
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>

#include "minivmm.h"
#include "mv-vlud.h"
#include "vlu.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_SETUP 3

/* ------------------------------------------------------------------ datapath */
static uint64_t *drive_mark_ptr(const struct mv_vmm *v)
{
	return mv_mem_ptr(&v->mem, MV_IOVA_BASE + MV_DRIVE_MARK_OFF, sizeof(uint64_t));
}

uint64_t mv_drive_mark_read(const struct mv_vmm *v)
{
	uint64_t *p = drive_mark_ptr(v);

	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
}

/* Before this process reaps or sends on the data rings: once per stretch of driving, a fresh value in the
 * drive mark (minivmm.h), so that a state saved before it knows the rings moved on without it.  An RX
 * refill alone is not driving: a new image refills in its takeover, before its update is accepted, and a
 * refill from a saved state posts the same buffers in the same slots as any other refill from that state,
 * so the previous binary vlud restarts after a failed new image (rows R3, R12, R13) may refill again; every
 * refill after that follows a reap or a send, which marks. */
void mv_drive_mark(struct mv_vmm *v)
{
	uint64_t *p, x = 0;

	if (v->drive_marked || !(p = drive_mark_ptr(v)))
		return;
	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x) || !x)
		x = (mv_now_us() << 20) ^ (uint64_t)getpid() ^ 1;
	__atomic_store_n(p, x, __ATOMIC_RELEASE);
	v->drive_marked = true;
}

int mv_dp_refill_rx(struct mv_vmm *v)
{
	struct mv_vq *rx = &v->vq[MV_RXQ];
	unsigned n = 0;
	int id;

	while ((id = mv_vq_free_id(rx)) >= 0) {
		mv_vq_post(rx, (unsigned)id, MV_BUFSZ, true);
		n++;
	}
	if (!n)
		return 0;
	mv_vq_publish(rx);
	return mv_vq_kick(rx);
}

void mv_dp_reap(struct mv_vmm *v, uint64_t now)
{
	struct mv_traffic *t = &v->st->traffic;
	uint32_t id, len;

	mv_drive_mark(v);
	while (mv_vq_reap(&v->vq[MV_RXQ], &id, &len)) {
		if (id >= v->vq[MV_RXQ].num || len > MV_BUFSZ) {
			t->rx_short++;
			continue;
		}
		uint64_t prev = t->last_echo_us;
		int k = mv_traffic_check(t, mv_vq_buf(&v->vq[MV_RXQ], id), len, now);
		if (k == MV_ECHO_OK && v->await_echo_upd >= 0) {
			struct mv_update_rec *u = &v->st->upd[v->await_echo_upd];
			u->echo_gap_us = prev ? now - prev : 0;
			v->await_echo_upd = -1;
			mv_log("first echo after update: gap between echoes %.1f ms", u->echo_gap_us / 1e3);
		}
	}
	while (mv_vq_reap(&v->vq[MV_TXQ], &id, &len))
		;
}

/* one frame into the TX ring (not published); false when the window or the ring is full */
/* window: keep at most --max-inflight frames unechoed (the traffic loop); without it only free
 * descriptors limit (the frames queued during a pause) */
static bool dp_post_frame(struct mv_vmm *v, uint64_t now, bool window)
{
	struct mv_traffic *t = &v->st->traffic;
	struct mv_vq *tx = &v->vq[MV_TXQ];
	int id;

	if ((window && mv_traffic_inflight(t) >= v->o.max_inflight) || (id = mv_vq_free_id(tx)) < 0) {
		t->tx_full++;
		return false;
	}
	uint32_t len = mv_traffic_build(t, mv_vq_buf(tx, (unsigned)id), MV_BUFSZ, now);
	mv_vq_post(tx, (unsigned)id, len, false);
	return true;
}

unsigned mv_dp_send_now(struct mv_vmm *v, unsigned n)
{
	unsigned k = 0;
	uint64_t now = mv_now_us();

	mv_drive_mark(v);
	/* not limited by --max-inflight: under a loaded host the window can be full at the suspend, and the
	 * point of these frames is that they wait in the ring through the pause */
	while (k < n && dp_post_frame(v, now, false))
		k++;
	if (k) {
		mv_vq_publish(&v->vq[MV_TXQ]);
		(void)mv_vq_kick(&v->vq[MV_TXQ]);
	}
	return k;
}

static void dp_send(struct mv_vmm *v, uint64_t now)
{
	struct mv_vq *tx = &v->vq[MV_TXQ];
	uint64_t interval = 1000000u / v->o.rate;
	unsigned n = 0;

	mv_drive_mark(v);
	if (!v->next_send_us || (now > v->next_send_us && now - v->next_send_us > 200000 + interval))
		v->next_send_us = now;	/* after a stall: frames not sent meanwhile are skipped, not burst */
	while (v->next_send_us <= now) {
		if (!dp_post_frame(v, now, true)) {
			v->next_send_us = now + interval;
			break;
		}
		v->next_send_us += interval;
		n++;
	}
	if (n) {
		mv_vq_publish(tx);
		(void)mv_vq_kick(tx);
		/* receive buffers are reposted as they are consumed */
		(void)mv_dp_refill_rx(v);
	}
}

/* ------------------------------------------------------------------ options */
static void usage(FILE *f)
{
	fprintf(f,
		"Usage: minivmm --device /dev/vhost-vdpa-N [options]\n"
		"       minivmm --vlud SOCKET --instance NAME --vdpa NAME [options]\n"
		"Reference VMM: guest RAM in a memfd, RX/TX vrings on a vhost-vdpa net device, loopback traffic,\n"
		"live update by exec (paths A, B, C).\n"
		"  --device PATH        open the vhost-vdpa device directly (standalone)\n"
		"  --vlud SOCKET --instance NAME --vdpa NAME   get the device through vlud (libvlu)\n"
		"  --edu /dev/vfio/devices/vfioN  also QEMU's edu (a DMA engine) on VFIO and iommufd, through\n"
		"                       vlud: the last MiB of guest RAM mapped with IOMMU_IOAS_MAP_FILE, a DMA\n"
		"                       check at start and after each update, which moves it with\n"
		"                       IOMMU_IOAS_CHANGE_PROCESS (drops CAP_IPC_LOCK; needs --vlud)\n"
		"  --edu-acct user|mm   the iommufd's accounting mode (default user; mm: IOMMU_OPTION_RLIMIT_MODE 1\n"
		"                       before any object, needs CAP_SYS_RESOURCE; vlud refuses to update a\n"
		"                       mixed instance in mm mode)\n"
		"  --mem SIZE           guest RAM (default 256M; K/M/G suffixes)\n"
		"  --chunk SIZE         split the IOTLB mapping into ranges of SIZE (default: one range)\n"
		"  --rate N             frames per second (default 1000)\n"
		"  --frame-len N        Ethernet frame length %d..%d (default 128)\n"
		"  --max-inflight N     frames sent but not echoed at most (default 64)\n"
		"  --duration SEC       run time in seconds, 0 = until SIGINT/SIGTERM (default 5)\n"
		"  --update-after SEC   start a live update SEC seconds after start (and after each update)\n"
		"  --updates N          number of timed updates (default 1 with --update-after)\n"
		"  --path A|B|C|auto    force the update path (default auto from the backend features)\n"
		"  --exec PATH          image to exec on update (default /proc/self/exe)\n"
		"  --drain-ms N         wait for outstanding echoes at the end (default 2000)\n"
		"  --pause-frames N     frames posted while the device is suspended for an update; they stay\n"
		"                       queued in the TX ring and must come back after it (default 8)\n"
		"  --no-vmpin-check     do not fail the verdict on a VmPin mismatch\n"
		"  --no-prefault        keep guest RAM allocated but unmapped except what is touched (default:\n"
		"                       all mapped, like a guest that touched its RAM; exec then tears it down)\n"
		"  --hugetlb            guest RAM in 2 MiB hugetlb pages (memfd MFD_HUGETLB; --mem and --chunk\n"
		"                       rounded up to 2 MiB; needs free hugepages, vm.nr_hugepages)\n"
		"  --ring-base N        initial vring index 0..65535 (default 0; 65500 makes the 16-bit\n"
		"                       indices wrap after a few hundred frames)\n"
		"  --mac XX:XX:XX:XX:XX:XX  MAC set through the control virtqueue, frames go to it\n"
		"                       (default 02:6d:76:6d:6d:01)\n"
		"  --no-cvq             negotiate no control virtqueue: no control state, broadcast frames\n"
		"  --test-no-cvq-restore  test knob: as MINIVMM_TEST_NO_CVQ_RESTORE=1, through the argv vlud\n"
		"                       gives a transfer-mode successor\n"
		"  --test-edu-die-after-move  test knob: a successor (new image) exits right after its\n"
		"                       IOMMU_IOAS_CHANGE_PROCESS, before update.ready (with --edu)\n"
		"  --test-edu-final-check  test knob: one more edu DMA check at the end of the run (with --edu):\n"
		"                       the last copy still in guest RAM, a new DMA through the same mapping\n"
		"  --test-stop-at POINT  test knob: as MINIVMM_TEST_STOP_AT=POINT, through the argv vlud\n"
		"                       gives a transfer-mode successor (save, exec, claim, claimed, ready)\n"
		"  --test-declare-changes LIST  test knob: a successor declares these device state members\n"
		"                       (comma-separated, e.g. config.mac) changed on purpose in update.ready\n"
		"  --json               print one JSON object with the verdict on stdout\n"
		"  --report FILE        write the report to FILE (created or truncated at the end of the run)\n"
		"                       instead of stdout; an exec'ed image or successor, started with the\n"
		"                       same arguments, writes its own there when it ends\n"
		"  -v, --verbose        more log lines on stderr\n"
		"  -h, --help\n"
		"SIGUSR1 starts an update now.  Exit: 0 pass, 1 fail, 2 usage, 3 setup error.\n",
		MV_FRAME_MIN, MV_FRAME_MAX);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
	char *e;
	errno = 0;
	unsigned long v = strtoul(s, &e, 10);
	if (errno || e == s || *e || *s == '-' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_secs(const char *s, double *ret)
{
	char *e;
	errno = 0;
	double d = strtod(s, &e);
	if (errno || e == s || *e || !isfinite(d) || d < 0 || d > 1e7)
		return -EINVAL;
	*ret = d;
	return 0;
}

static int parse_opts(struct mv_opts *o, int argc, char **argv)
{
	enum { O_VLUD = 256, O_INSTANCE, O_VDPA, O_MEM, O_CHUNK, O_RATE, O_FLEN, O_INFL, O_DUR, O_UPAFTER,
	       O_UPDATES, O_PATH, O_EXEC, O_DRAIN, O_NOPIN, O_JSON, O_PFRAMES, O_NOPREFAULT, O_HUGETLB, O_RINGBASE, O_MAC, O_NOCVQ,
	       O_TNOCVQR, O_TDECLARE, O_REPORT, O_EDU, O_EDUACCT, O_TEDUDIE, O_TEDUFINAL, O_TSTOP };
	static const struct option lo[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "vlud", required_argument, NULL, O_VLUD },
		{ "edu", required_argument, NULL, O_EDU },
		{ "edu-acct", required_argument, NULL, O_EDUACCT },
		{ "test-edu-die-after-move", no_argument, NULL, O_TEDUDIE },
		{ "test-edu-final-check", no_argument, NULL, O_TEDUFINAL },
		{ "test-stop-at", required_argument, NULL, O_TSTOP },
		{ "instance", required_argument, NULL, O_INSTANCE },
		{ "vdpa", required_argument, NULL, O_VDPA },
		{ "mem", required_argument, NULL, O_MEM },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "rate", required_argument, NULL, O_RATE },
		{ "frame-len", required_argument, NULL, O_FLEN },
		{ "max-inflight", required_argument, NULL, O_INFL },
		{ "duration", required_argument, NULL, O_DUR },
		{ "update-after", required_argument, NULL, O_UPAFTER },
		{ "updates", required_argument, NULL, O_UPDATES },
		{ "path", required_argument, NULL, O_PATH },
		{ "exec", required_argument, NULL, O_EXEC },
		{ "drain-ms", required_argument, NULL, O_DRAIN },
		{ "no-vmpin-check", no_argument, NULL, O_NOPIN },
		{ "pause-frames", required_argument, NULL, O_PFRAMES },
		{ "no-prefault", no_argument, NULL, O_NOPREFAULT },
		{ "hugetlb", no_argument, NULL, O_HUGETLB },
		{ "ring-base", required_argument, NULL, O_RINGBASE },
		{ "mac", required_argument, NULL, O_MAC },
		{ "no-cvq", no_argument, NULL, O_NOCVQ },
		{ "test-no-cvq-restore", no_argument, NULL, O_TNOCVQR },
		{ "test-declare-changes", required_argument, NULL, O_TDECLARE },
		{ "json", no_argument, NULL, O_JSON },
		{ "report", required_argument, NULL, O_REPORT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned long u;
	bool updates_set = false;
	int c;

	*o = (struct mv_opts){
		.mem_size = 256ULL << 20, .rate = 1000, .frame_len = 128, .duration_s = 5, .update_after_s = -1,
		.exec_path = "/proc/self/exe", .drain_ms = 2000, .max_inflight = 64, .pause_frames = 8,
		.check_vmpin = true, .prefault = true, .cvq = true,
		.mac = { 0x02, 0x6d, 0x76, 0x6d, 0x6d, 0x01 },
		.argv = argv,
	};
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o->device = optarg; break;
		case O_VLUD: o->vlud = optarg; break;
		case O_INSTANCE: o->instance = optarg; break;
		case O_VDPA: o->vdpa = optarg; break;
		case O_MEM:
			if (mv_parse_size(optarg, &o->mem_size) < 0 || o->mem_size < MV_MIN_MEM || o->mem_size % 4096)
				return fprintf(stderr, "--mem: need a multiple of 4K, at least 4M\n"), -EINVAL;
			break;
		case O_CHUNK:
			if (mv_parse_size(optarg, &o->chunk) < 0 || !o->chunk || o->chunk % 4096)
				return fprintf(stderr, "--chunk: need a multiple of 4K\n"), -EINVAL;
			break;
		case O_RATE:
			if (parse_uint(optarg, 1, 1000000, &u) < 0)
				return fprintf(stderr, "--rate: 1..1000000\n"), -EINVAL;
			o->rate = (unsigned)u;
			break;
		case O_FLEN:
			if (parse_uint(optarg, MV_FRAME_MIN, MV_FRAME_MAX, &u) < 0)
				return fprintf(stderr, "--frame-len: %d..%d\n", MV_FRAME_MIN, MV_FRAME_MAX), -EINVAL;
			o->frame_len = (uint32_t)u;
			break;
		case O_INFL:
			if (parse_uint(optarg, 1, MV_QSZ / 2, &u) < 0)
				return fprintf(stderr, "--max-inflight: 1..%d\n", MV_QSZ / 2), -EINVAL;
			o->max_inflight = (unsigned)u;
			break;
		case O_DUR:
			if (parse_secs(optarg, &o->duration_s) < 0)
				return fprintf(stderr, "--duration: seconds >= 0\n"), -EINVAL;
			break;
		case O_UPAFTER:
			if (parse_secs(optarg, &o->update_after_s) < 0)
				return fprintf(stderr, "--update-after: seconds >= 0\n"), -EINVAL;
			break;
		case O_UPDATES:
			if (parse_uint(optarg, 0, MV_MAX_UPDATES, &u) < 0)
				return fprintf(stderr, "--updates: 0..%d\n", MV_MAX_UPDATES), -EINVAL;
			o->updates = (unsigned)u;
			updates_set = true;
			break;
		case O_PATH:
			if (!strcmp(optarg, "auto"))
				o->path = 0;
			else if (strlen(optarg) == 1 && strchr("ABCabc", optarg[0]))
				o->path = (char)(optarg[0] & ~0x20);
			else
				return fprintf(stderr, "--path: A, B, C or auto\n"), -EINVAL;
			break;
		case O_EXEC: o->exec_path = optarg; break;
		case O_DRAIN:
			if (parse_uint(optarg, 0, 600000, &u) < 0)
				return fprintf(stderr, "--drain-ms: 0..600000\n"), -EINVAL;
			o->drain_ms = (unsigned)u;
			break;
		case O_NOPIN: o->check_vmpin = false; break;
		case O_NOPREFAULT: o->prefault = false; break;
		case O_HUGETLB: o->hugetlb = true; break;
		case O_NOCVQ: o->cvq = false; break;
		case O_TNOCVQR: o->test_no_cvq_restore = true; break;
		case O_TDECLARE: o->test_declare_changes = optarg; break;
		case O_EDU: o->edu = optarg; break;
		case O_EDUACCT:
			if (strcmp(optarg, "mm") != 0 && strcmp(optarg, "user") != 0)
				return fprintf(stderr, "--edu-acct: user or mm\n"), -EINVAL;
			o->edu_acct_mm = strcmp(optarg, "mm") == 0;
			break;
		case O_TEDUDIE: o->test_edu_die_after_move = true; break;
		case O_TEDUFINAL: o->test_edu_final_check = true; break;
		case O_TSTOP:
			/* vlud gives a successor it spawns its own environment: the knob comes in the argv and
			 * stays in ours (an exec'ed image of this process inherits it, as with the variable) */
			if (strcmp(optarg, "save") != 0 && strcmp(optarg, "exec") != 0 && strcmp(optarg, "claim") != 0 &&
			    strcmp(optarg, "claimed") != 0 && strcmp(optarg, "ready") != 0)
				return fprintf(stderr, "--test-stop-at: save, exec, claim, claimed or ready\n"), -EINVAL;
			if (setenv("MINIVMM_TEST_STOP_AT", optarg, 1) < 0)
				return -errno;
			break;
		case O_MAC: {
			unsigned m[6];
			char end;
			if (sscanf(optarg, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &end) != 6 ||
			    (m[0] & 1))
				return fprintf(stderr, "--mac: a unicast XX:XX:XX:XX:XX:XX\n"), -EINVAL;
			for (int i = 0; i < 6; i++)
				o->mac[i] = (uint8_t)m[i];
			break;
		}
		case O_RINGBASE:
			if (parse_uint(optarg, 0, 65535, &u) < 0)
				return fprintf(stderr, "--ring-base: 0..65535\n"), -EINVAL;
			o->ring_base = (uint16_t)u;
			break;
		case O_PFRAMES:
			if (parse_uint(optarg, 0, MV_QSZ / 2, &u) < 0)
				return fprintf(stderr, "--pause-frames: 0..%d\n", MV_QSZ / 2), -EINVAL;
			o->pause_frames = (unsigned)u;
			break;
		case O_JSON: o->json = true; break;
		case O_REPORT:
			if (!*optarg)
				return fprintf(stderr, "--report: a file name\n"), -EINVAL;
			o->report = optarg;
			break;
		case 'v': mv_verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc)
		return fprintf(stderr, "unexpected argument '%s'\n", argv[optind]), -EINVAL;
	if (!!o->device == !!o->vlud)
		return fprintf(stderr, "give exactly one of --device and --vlud\n"), -EINVAL;
	if (o->vlud && (!o->instance || !o->vdpa))
		return fprintf(stderr, "--vlud needs --instance and --vdpa\n"), -EINVAL;
	if (o->edu_acct_mm && !o->edu)
		return fprintf(stderr, "--edu-acct needs --edu\n"), -EINVAL;
	if (o->edu && (!o->vlud || o->mem_size < MV_MIN_MEM + MV_EDU_WINDOW))
		return fprintf(stderr, "--edu needs --vlud and --mem of at least %u MiB\n",
			       (unsigned)((MV_MIN_MEM + MV_EDU_WINDOW) >> 20)), -EINVAL;
	if (o->chunk && o->chunk < o->mem_size && (o->mem_size + o->chunk - 1) / o->chunk > MV_MAX_MAPS)
		return fprintf(stderr, "--chunk: at most %d ranges\n", MV_MAX_MAPS), -EINVAL;
	if (!updates_set)
		o->updates = o->update_after_s >= 0 ? 1 : 0;
	if (o->updates && o->update_after_s < 0)
		return fprintf(stderr, "--updates needs --update-after\n"), -EINVAL;
	if (o->max_inflight > MV_WIN / 4)
		o->max_inflight = MV_WIN / 4;
	return 0;
}

/* ------------------------------------------------------------------ report */
static double ms(uint64_t us) { return us / 1e3; }

static json_object *jms(uint64_t us)
{
	char b[32];
	snprintf(b, sizeof(b), "%.3f", us / 1e3);
	return json_object_new_double_s(us / 1e3, b);
}

static bool update_vmpin_ok(const struct mv_vmm *v, const struct mv_update_rec *u)
{
	return u->vmpin_after_kb == v->st->vmpin_expected_kb;
}

/* --report FILE: the report is written to FILE.PID.tmp on stdout's descriptor and renamed to FILE once
 * complete, so a reader finds the whole report of the last image that ended, or none (a process killed
 * while it wrote leaves only its .tmp). */
static char report_tmp[PATH_MAX];

static void report_open(const char *path)
{
	FILE *f;

	if (snprintf(report_tmp, sizeof(report_tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(report_tmp)) {
		mv_log("--report %s: name too long, the report goes to stdout", path);
		report_tmp[0] = 0;
		return;
	}
	fflush(stdout);
	f = fopen(report_tmp, "we");
	if (!f || dup2(fileno(f), STDOUT_FILENO) < 0) {
		mv_log("--report %s: %s, the report goes to stdout", report_tmp, strerror(errno));
		report_tmp[0] = 0;
	}
	if (f)
		fclose(f);
}

static void report_close(const char *path)
{
	if (!report_tmp[0])
		return;
	if (fflush(stdout) != 0 || rename(report_tmp, path) < 0)
		mv_log("--report %s: %s", path, strerror(errno));
}

static int report(struct mv_vmm *v, int setup_error)
{
	struct mv_state *s = v->st;
	struct mv_traffic *t = &s->traffic;
	_cleanup_json_ json_object *root = json_object_new_object(), *reasons = json_object_new_array();
	json_object *ups = json_object_new_array();
	char names[256];
	bool pass = true;

	if (v->o.report)
		report_open(v->o.report);

#define FAIL(...) do { char _b[256]; snprintf(_b, sizeof(_b), __VA_ARGS__); \
		json_object_array_add(reasons, json_object_new_string(_b)); pass = false; } while (0)

	if (setup_error)
		FAIL("setup failed: %s", strerror(-setup_error));
	if (!t->echoed)
		FAIL("no frame echoed");
	if (t->lost)
		FAIL("%" PRIu64 " frames lost", t->lost);
	if (t->dup)
		FAIL("%" PRIu64 " frames duplicated", t->dup);
	if (t->corrupt || t->rx_short)
		FAIL("%" PRIu64 " frames corrupt", t->corrupt + t->rx_short);

	for (unsigned i = 0; i < s->nupdates; i++) {
		const struct mv_update_rec *u = &s->upd[i];
		json_object *o = json_object_new_object();
		uint64_t lost_next = i + 1 < s->nupdates ? s->upd[i + 1].lost_before : t->lost;
		uint64_t dup_next = i + 1 < s->nupdates ? s->upd[i + 1].dup_before : t->dup;
		const char *why = NULL;
		bool vmpin_ok = update_vmpin_ok(v, u);

		(void)mv_choose_path(s->backend_offered ? s->backend_offered : v->dev.backend_offered, v->o.path, &why);
		if (u->path == 'C' && u->error == -EOPNOTSUPP && v->o.vlud)
			why = "path C needs vlud's update engine while vlud holds the device";
		json_object_object_add(o, "path", json_object_new_string_len((const char *)&u->path, 1));
		json_object_object_add(o, "reason", json_object_new_string(why ? why : ""));
		json_object_object_add(o, "ok", json_object_new_boolean(u->ok));
		if (!u->ok)
			json_object_object_add(o, "error", json_object_new_string(strerror(-u->error)));
		json_object_object_add(o, "mode", json_object_new_string(u->va_mode ? "va" : "pa"));
		if (u->ok) {
			json_object_object_add(o, "pause_device_ms", jms(u->t_resume_us - u->t_suspend_us));
			json_object_object_add(o, "pause_echo_gap_ms", jms(u->echo_gap_us));
			json_object *ph = json_object_new_object();
			json_object_object_add(ph, "suspend_to_exec_ms", jms(u->t_exec_us - u->t_suspend_us));
			json_object_object_add(ph, "exec_to_image_ms", jms(u->t_image_us - u->t_exec_us));
			json_object_object_add(ph, "image_to_owner_ms", jms(u->t_owner_us - u->t_image_us));
			json_object_object_add(ph, "owner_to_mapped_ms", jms(u->t_mapped_us - u->t_owner_us));
			json_object_object_add(ph, "mapped_to_running_ms", jms(u->t_resume_us - u->t_mapped_us));
			/* exec_to_image split: the exec and loading, then (daemon-driven) connect and claim */
			if (u->t_main_us >= u->t_exec_us && u->t_main_us <= u->t_image_us) {
				json_object_object_add(ph, "exec_to_main_ms", jms(u->t_main_us - u->t_exec_us));
				if (u->t_connected_us >= u->t_main_us && u->t_claimed_us >= u->t_connected_us &&
				    u->t_claimed_us <= u->t_image_us) {
					json_object_object_add(ph, "main_to_connected_ms", jms(u->t_connected_us - u->t_main_us));
					json_object_object_add(ph, "connected_to_claimed_ms",
							       jms(u->t_claimed_us - u->t_connected_us));
					json_object_object_add(ph, "claimed_to_image_ms", jms(u->t_image_us - u->t_claimed_us));
					/* connected_to_claimed split: building and sending the request (this image's
					 * first JSON serialisation), the round trip through vlud until the reply is read
					 * off the socket, parsing and checking the reply (its first JSON parse) */
					if (u->t_claim_sent_us >= u->t_connected_us && u->t_claim_reply_us >= u->t_claim_sent_us &&
					    u->t_claimed_us >= u->t_claim_reply_us) {
						json_object_object_add(ph, "claim_send_ms", jms(u->t_claim_sent_us - u->t_connected_us));
						json_object_object_add(ph, "claim_wait_ms", jms(u->t_claim_reply_us - u->t_claim_sent_us));
						json_object_object_add(ph, "claim_parse_ms", jms(u->t_claimed_us - u->t_claim_reply_us));
					}
					/* after the takeover: update.ready sent (its report built), and the verdict read
					 * (vlud's RESUME on A, its verification and commit inside) */
					if (u->t_ready_sent_us >= u->t_resume_us && u->t_verdict_us >= u->t_ready_sent_us) {
						json_object_object_add(ph, "running_to_ready_ms", jms(u->t_ready_sent_us - u->t_resume_us));
						json_object_object_add(ph, "ready_to_verdict_ms", jms(u->t_verdict_us - u->t_ready_sent_us));
					}
				} else
					json_object_object_add(ph, "main_to_image_ms", jms(u->t_image_us - u->t_main_us));
			}
			json_object_object_add(o, "phases", ph);
			{
				/* the same points as CLOCK_MONOTONIC microseconds (0: not measured), to line them
				 * up with vlud's verdict (started_monotonic_us and its phases) */
				json_object *tm = json_object_new_object();
				const struct { const char *n; uint64_t v; } pts[] = {
					{ "suspend", u->t_suspend_us }, { "exec", u->t_exec_us }, { "main", u->t_main_us },
					{ "connected", u->t_connected_us }, { "claim_sent", u->t_claim_sent_us },
					{ "claim_reply", u->t_claim_reply_us }, { "claimed", u->t_claimed_us },
					{ "image", u->t_image_us }, { "owner", u->t_owner_us }, { "mapped", u->t_mapped_us },
					{ "running", u->t_resume_us }, { "ready_sent", u->t_ready_sent_us },
					{ "verdict", u->t_verdict_us },
				};

				for (size_t k = 0; k < sizeof(pts) / sizeof(pts[0]); k++)
					json_object_object_add(tm, pts[k].n, json_object_new_int64((int64_t)pts[k].v));
				json_object_object_add(o, "t_monotonic_us", tm);
			}
		}
		json_object_object_add(o, "inflight_at_suspend", json_object_new_int64((int64_t)u->inflight_at_suspend));
		json_object_object_add(o, "sent_in_pause", json_object_new_int64((int64_t)u->sent_in_pause));
		json_object_object_add(o, "lost", json_object_new_int64((int64_t)(lost_next - u->lost_before)));
		json_object_object_add(o, "dup", json_object_new_int64((int64_t)(dup_next - u->dup_before)));
		json_object_object_add(o, "vmpin_before_kb", json_object_new_int64(u->vmpin_before_kb));
		json_object_object_add(o, "vmpin_after_kb", json_object_new_int64(u->vmpin_after_kb));
		json_object_object_add(o, "vmpin_expected_kb", json_object_new_int64(s->vmpin_expected_kb));
		json_object_object_add(o, "vmpin_ok", json_object_new_boolean(vmpin_ok));
		json_object_object_add(o, "cvq_replayed", json_object_new_boolean(u->cvq_replayed));
		json_object_object_add(o, "cvq_cmds", json_object_new_int(u->cvq_cmds));
		json_object_object_add(o, "cvq_used_at_enable", json_object_new_int(u->cvq_used_at_enable));
		json_object_object_add(o, "cvq_restore_ms", jms(u->cvq_restore_us));
		json_object_object_add(o, "mac_ok", u->mac_ok == 2 ? NULL : json_object_new_boolean(u->mac_ok));
		json_object_array_add(ups, o);

		if (!u->ok)
			FAIL("update %u (path %c) failed: %s", i + 1, u->path, strerror(-u->error));
		else if (!u->echo_gap_us)
			FAIL("update %u: no echo after the update", i + 1);
		if (u->ok && u->mac_ok == 0)
			FAIL("update %u: the device's MAC differs from the control state (the reset lost it%s)", i + 1,
			     u->cvq_replayed ? "" : " and it was not replayed");
		if (u->ok && !vmpin_ok && v->o.check_vmpin)
			FAIL("update %u: VmPin after %" PRId64 " kB, expected %" PRId64 " kB", i + 1, u->vmpin_after_kb,
			     s->vmpin_expected_kb);
		if (!v->o.json)
			printf("update %u: path=%c ok=%d mode=%s pause_device_ms=%.3f pause_echo_gap_ms=%.3f "
			       "inflight_at_suspend=%" PRIu64 " sent_in_pause=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64 " vmpin_before_kb=%" PRId64 " vmpin_after_kb=%" PRId64
			       " vmpin_expected_kb=%" PRId64 " cvq_replayed=%u cvq_cmds=%u cvq_used_at_enable=%u cvq_restore_ms=%.3f"
			       " mac_ok=%s%s%s\n",
			       i + 1, u->path, u->ok, u->va_mode ? "va" : "pa",
			       u->ok ? ms(u->t_resume_us - u->t_suspend_us) : 0.0, ms(u->echo_gap_us),
			       u->inflight_at_suspend, u->sent_in_pause, lost_next - u->lost_before, dup_next - u->dup_before,
			       u->vmpin_before_kb, u->vmpin_after_kb, s->vmpin_expected_kb,
			       u->cvq_replayed, u->cvq_cmds, u->cvq_used_at_enable, ms(u->cvq_restore_us),
			       u->mac_ok == 2 ? "na" : u->mac_ok ? "1" : "0",
			       u->ok ? "" : " error=", u->ok ? "" : strerror(-u->error));
	}
	if (v->superseded_by) {
		FAIL("vlud: instance taken over by pid %d while vlud was away: stopped", v->superseded_by);
	} else if (v->o.vlud && !setup_error) {
		if (v->link_reattach_error)
			FAIL("vlud: reattach after the update failed: %s", strerror(-v->link_reattach_error));
		else if (!v->link)
			FAIL("vlud: connection lost");
		if (!v->link_stored && !s->generation)
			FAIL("vlud: fds not stored");
	}
	if (s->nupdates < v->o.updates && !setup_error && !v->stop)
		FAIL("%u of %u updates done", s->nupdates, v->o.updates);
	if (v->o.edu && v->edu.fails)
		FAIL("edu: %u of %u DMA checks or moves failed (last: %s)", v->edu.fails, v->edu.checks,
		     strerror(-v->edu.last_error));

	json_object *dev = json_object_new_object();
	json_object_object_add(dev, "path", json_object_new_string(v->dev.path));
	json_object_object_add(dev, "features", json_object_new_int64((int64_t)v->dev.features));
	json_object_object_add(dev, "backend_offered",
			       json_object_new_string(mv_backend_names(v->dev.backend_offered, names, sizeof(names))));
	json_object_object_add(dev, "backend_acked",
			       json_object_new_string(mv_backend_names(v->dev.backend_acked, names, sizeof(names))));
	json_object_object_add(dev, "mode", json_object_new_string(v->va_mode ? "va" : "pa"));
	json_object_object_add(dev, "mem_bytes", json_object_new_int64((int64_t)v->mem.size));
	json_object_object_add(dev, "maps", json_object_new_int((int)v->mem.nmaps));
	json_object_object_add(dev, "hugetlb", json_object_new_boolean(v->mem.hugetlb));
	json_object_object_add(dev, "vmpin_expected_kb", json_object_new_int64(s->vmpin_expected_kb));
	char mac[18];
	json_object_object_add(dev, "cvq", json_object_new_boolean(s->ctrl.cvq));
	json_object_object_add(dev, "mac", s->ctrl.mac_set ? json_object_new_string(mv_mac_str(s->ctrl.mac, mac)) : NULL);
	json_object_object_add(dev, "cvq_first", json_object_new_boolean(s->ctrl.cvq_first));

	json_object *tr = json_object_new_object();
	json_object_object_add(tr, "sent", json_object_new_int64((int64_t)t->sent));
	json_object_object_add(tr, "echoed", json_object_new_int64((int64_t)t->echoed));
	json_object_object_add(tr, "lost", json_object_new_int64((int64_t)t->lost));
	json_object_object_add(tr, "dup", json_object_new_int64((int64_t)t->dup));
	json_object_object_add(tr, "corrupt", json_object_new_int64((int64_t)(t->corrupt + t->rx_short)));
	json_object_object_add(tr, "foreign", json_object_new_int64((int64_t)t->foreign));
	json_object_object_add(tr, "throttled", json_object_new_int64((int64_t)t->tx_full));
	json_object_object_add(tr, "max_gap_ms", jms(t->max_gap_us));
	json_object_object_add(tr, "rate", json_object_new_int((int)v->o.rate));
	json_object_object_add(tr, "frame_len", json_object_new_int((int)t->frame_len));
	json_object_object_add(tr, "generation", json_object_new_int((int)s->generation));
	json_object_object_add(tr, "paused_frames", json_object_new_string("queued"));

	if (v->o.vlud) {
		json_object *l = json_object_new_object();
		json_object_object_add(l, "socket", json_object_new_string(v->o.vlud));
		json_object_object_add(l, "instance", json_object_new_string(v->o.instance));
		json_object_object_add(l, "device_fd", json_object_new_string(v->dev_fd_name));
		json_object_object_add(l, "connected", json_object_new_boolean(v->link != NULL));
		json_object_object_add(l, "reattaches", json_object_new_int((int)v->link_reattaches));
		json_object_object_add(l, "stored", json_object_new_int((int)v->link_stored));
		json_object_object_add(l, "mappings", json_object_new_string(v->link_mappings_ok ? "ok" :
			v->link_mappings_error ? strerror(-v->link_mappings_error) : "not sent"));
		json_object_object_add(root, "vlud", l);
	}
	if (v->o.edu) {
		json_object *ed = json_object_new_object();

		json_object_object_add(ed, "cdev", json_object_new_string(v->o.edu));
		json_object_object_add(ed, "checks", json_object_new_int((int)v->edu.checks));
		json_object_object_add(ed, "ok", json_object_new_int((int)v->edu.ok));
		json_object_object_add(ed, "kept", json_object_new_int((int)v->edu.kept));
		json_object_object_add(ed, "fails", json_object_new_int((int)v->edu.fails));
		json_object_object_add(ed, "moves", json_object_new_int((int)v->edu.moves));
		json_object_object_add(ed, "vmpin_before_kb", json_object_new_int64(v->edu.vmpin_before_kb));
		json_object_object_add(ed, "vmpin_after_kb", json_object_new_int64(v->edu.vmpin_after_kb));
		json_object_object_add(root, "edu", ed);
	}
	json_object_object_add(root, "minivmm", json_object_new_string("0.1.0"));
	json_object_object_add(root, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(root, "device", dev);
	json_object_object_add(root, "traffic", tr);
	json_object_object_add(root, "updates", ups);
	json_object_object_add(root, "verdict", json_object_new_string(pass ? "pass" : "fail"));
	json_object_object_add(root, "reasons", json_object_get(reasons));

	if (v->o.json)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	else {
		printf("device: path=%s mode=%s mem_bytes=%" PRIu64 " maps=%u vmpin_expected_kb=%" PRId64
		       " backend_offered=%s cvq=%u cvq_first=%u mac=%s\n", v->dev.path, v->va_mode ? "va" : "pa", v->mem.size,
		       v->mem.nmaps, s->vmpin_expected_kb, mv_backend_names(v->dev.backend_offered, names, sizeof(names)),
		       s->ctrl.cvq, s->ctrl.cvq_first, s->ctrl.mac_set ? mv_mac_str(s->ctrl.mac, mac) : "none");
		if (v->o.vlud)
			printf("vlud: instance=%s device_fd=%s connected=%d stored=%u mappings=%s reattaches=%u\n", v->o.instance,
			       v->dev_fd_name, v->link != NULL, v->link_stored,
			       v->link_mappings_ok ? "ok" : v->link_mappings_error ? "error" : "not-sent", v->link_reattaches);
		if (v->o.edu)
			printf("edu: cdev=%s checks=%u ok=%u kept=%u fails=%u moves=%u vmpin_before_kb=%ld vmpin_after_kb=%ld "
			       "change_process_ms=%.3f\n", v->o.edu, v->edu.checks, v->edu.ok, v->edu.kept, v->edu.fails,
			       v->edu.moves, v->edu.vmpin_before_kb, v->edu.vmpin_after_kb, (double)v->edu.cp_us / 1e3);
		printf("traffic: sent=%" PRIu64 " echoed=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64 " corrupt=%" PRIu64
		       " max_gap_ms=%.3f updates=%u\n", t->sent, t->echoed, t->lost, t->dup, t->corrupt + t->rx_short,
		       ms(t->max_gap_us), s->nupdates);
		for (size_t i = 0; i < json_object_array_length(reasons); i++)
			printf("fail: %s\n", json_object_get_string(json_object_array_get_idx(reasons, i)));
		printf("verdict: %s\n", pass ? "pass" : "fail");
	}
	fflush(stdout);
	if (v->o.report)
		report_close(v->o.report);
	if (setup_error)
		return EXIT_SETUP;
	return pass ? 0 : EXIT_FAIL;
}

/* ------------------------------------------------------------------ loop */
static void handle_signals(struct mv_vmm *v)
{
	struct signalfd_siginfo si;
	while (read(v->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			v->update_requested = true;
		else
			v->stop = true;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int run(struct mv_vmm *v)
{
	struct mv_state *s = v->st;

	for (;;) {
		uint64_t now = mv_now_us();
		if (v->stop || (s->t_deadline_us && now >= s->t_deadline_us))
			break;
		if (v->update_requested || (s->updates_left && now >= s->t_next_update_us)) {
			if (!v->update_requested)
				s->updates_left--;
			/* on success this does not return: the new image continues in main() */
			(void)mv_update_start(v);
			s->t_next_update_us = mv_now_us() + (uint64_t)(v->o.update_after_s * 1e6);
			continue;
		}
		/* daemon-driven update: nothing moves between save and exec, nor in a new image whose
		 * vlud went away before the verdict, until it is back (mv_vlud_tick) */
		if (!v->suspended && !v->held_until_us)
			dp_send(v, now);

		uint64_t until = v->next_send_us;
		if (s->t_deadline_us)
			until = min_u64(until, s->t_deadline_us);
		if (s->updates_left)
			until = min_u64(until, s->t_next_update_us);
		now = mv_now_us();
		uint64_t wait = until > now ? until - now : 0;
		if (wait > 100000)
			wait = 100000;
		struct pollfd p[] = {
			{ .fd = v->vq[MV_RXQ].call, .events = POLLIN },
			{ .fd = v->vq[MV_TXQ].call, .events = POLLIN },
			{ .fd = v->sigfd, .events = POLLIN },
			{ .fd = mv_link_fd(v), .events = POLLIN },	/* negative: ignored by poll */
		};
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000), .tv_nsec = (long)(wait % 1000000) * 1000 };
		if (ppoll(p, ELEMENTSOF(p), &ts, NULL) < 0 && errno != EINTR)
			return -errno;
		if (p[0].revents)
			mv_vq_drain_call(&v->vq[MV_RXQ]);
		if (p[1].revents)
			mv_vq_drain_call(&v->vq[MV_TXQ]);
		if (p[2].revents)
			handle_signals(v);
		if (p[3].fd >= 0 && p[3].revents)
			(void)mv_link_process(v);
		mv_vlud_tick(v);	/* vlud gone: reattach when it is back (vlud.c) */
		if (v->suspended || v->held_until_us)
			continue;
		mv_dp_reap(v, mv_now_us());
		(void)mv_dp_refill_rx(v);
	}

	/* drain: no new frames; wait for the echoes still outstanding.  Not while suspended for an update
	 * (stopped after its save, e.g. SIGTERM in transfer mode): the rings may be the successor's by now, and
	 * reaping them would take its completions */
	uint64_t end = mv_now_us() + (uint64_t)v->o.drain_ms * 1000;
	while (!v->suspended && mv_traffic_inflight(&s->traffic) && mv_now_us() < end) {
		struct pollfd p = { .fd = v->vq[MV_RXQ].call, .events = POLLIN };
		(void)poll(&p, 1, 10);
		mv_vq_drain_call(&v->vq[MV_RXQ]);
		mv_dp_reap(v, mv_now_us());
		(void)mv_dp_refill_rx(v);
	}
	mv_traffic_finish(&s->traffic);
	return 0;
}

static int setup_signals(struct mv_vmm *v)
{
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		return -errno;
	v->sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	return v->sigfd < 0 ? -errno : 0;
}

uint64_t mv_t_main_us, mv_t_connected_us, mv_t_claimed_us, mv_t_claim_sent_us, mv_t_claim_reply_us;

int main(int argc, char **argv)
{
	struct mv_vmm v = { .sigfd = -EBADF, .await_echo_upd = -1, .vmpin_idle_kb = -1 };
	const char *env;
	int r, setup_error = 0;

	mv_t_main_us = mv_now_us();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_opts(&v.o, argc, argv) < 0)
		return EXIT_USAGE;
	mv_mem_init(&v.mem);
	mv_vdev_init(&v.dev);
	mv_edu_init(&v.edu);
	if (v.o.edu) {
		mv_edu_name(&v.edu, v.o.edu);
		/* iommufd accounts a mapping only when its mapper lacks CAP_IPC_LOCK (vlud refuses to update
		 * unaccounted ones): every image drops it before it maps anything */
		r = mv_edu_drop_ipc_lock();
		if (r < 0) {
			mv_log("edu: dropping CAP_IPC_LOCK: %s", strerror(-r));
			return EXIT_SETUP;
		}
	}
	for (unsigned q = 0; q < MV_NQ; q++)
		mv_vq_init(&v.vq[q], q);
	mv_vq_init(&v.cvq, MV_CVQ);
	/* test knob: a B/C successor does not replay the control state (the negative test of the restore) */
	v.test_no_cvq_restore = v.o.test_no_cvq_restore ||
				(getenv("MINIVMM_TEST_NO_CVQ_RESTORE") && strcmp(getenv("MINIVMM_TEST_NO_CVQ_RESTORE"), "0"));
	v.st = calloc(1, sizeof(*v.st));
	if (!v.st)
		return EXIT_SETUP;

	r = setup_signals(&v);
	if (r < 0) {
		mv_log("signalfd: %s", strerror(-r));
		return EXIT_SETUP;
	}

	env = getenv(MV_STATE_ENV);
	const char *tok = v.o.vlud ? getenv("VLU_UPDATE_TOKEN") : NULL;	/* daemon-driven update (vlud.c) */
	if (tok) {
		r = mv_vlud_takeover(&v, tok);
		v.st->t_next_update_us = mv_now_us() + (uint64_t)(v.o.update_after_s * 1e6);
		if (r < 0) {
			mv_log("taking over after the update failed: %s", strerror(-r));
			if (!v.st->nupdates) {
				setup_error = r;
				goto out;
			}
			v.stop = true;
			goto out;
		}
	} else if (env) {
		/* the new image of a live update */
		unsigned long fd;
		if (parse_uint(env, 0, INT32_MAX, &fd) < 0) {
			mv_log("bad $%s", MV_STATE_ENV);
			return EXIT_SETUP;
		}
		r = mv_update_finish(&v, (int)fd);
		/* the next timed update counts from the end of this one */
		v.st->t_next_update_us = mv_now_us() + (uint64_t)(v.o.update_after_s * 1e6);
		if (r >= 0 && v.o.vlud) {
			/* the fds came across exec; the instance waits orphaned for us */
			int r2 = mv_link_reattach(&v);
			if (r2 < 0)
				v.link_reattach_error = r2;
		}
		if (r < 0) {
			mv_log("taking over after the update failed: %s", strerror(-r));
			setup_error = 0;	/* reported as a failed update */
			if (!v.st->nupdates) {
				setup_error = r;
				goto out;
			}
			v.stop = true;
			goto out;
		}
	} else {
		struct mv_state *s = v.st;
		r = mv_mem_create(&v.mem, v.o.mem_size, v.o.chunk, v.o.prefault, v.o.hugetlb);
		if (r == -ENOSPC && v.o.hugetlb) {
			uint64_t want = mv_mem_huge_round(v.o.mem_size);
			mv_log("guest RAM %" PRIu64 " bytes: no free 2 MiB hugepages (vm.nr_hugepages): %ld available, %"
			       PRIu64 " needed", want, mv_mem_huge_avail(), want / MV_HUGE_PAGE);
			setup_error = r;
			goto out;
		}
		if (r < 0) {
			mv_log("guest RAM %" PRIu64 " bytes: %s", v.o.mem_size, strerror(-r));
			setup_error = r;
			goto out;
		}
		if (v.o.vlud)
			r = mv_link_open_device(&v);
		else {
			r = mv_vdev_open(&v.dev, v.o.device);
			if (r < 0)
				mv_log("open %s: %s", v.o.device, strerror(-r));
		}
		if (r < 0) {
			setup_error = r;
			goto out;
		}
		mv_traffic_init(&s->traffic, v.o.frame_len);
		r = mv_bringup(&v);
		if (r < 0) {
			setup_error = r;
			goto out;
		}
		if (v.o.edu) {
			r = mv_edu_open(&v);
			if (r < 0) {
				setup_error = r;
				goto out;
			}
		}
		if (v.link) {
			r = mv_link_store(&v);
			if (r < 0) {
				setup_error = r;
				goto out;
			}
		}
		s->t_run_start_us = mv_now_us();
		s->t_deadline_us = v.o.duration_s > 0 ? s->t_run_start_us + (uint64_t)(v.o.duration_s * 1e6) : 0;
		s->updates_left = v.o.updates;
		s->t_next_update_us = s->t_run_start_us + (uint64_t)(v.o.update_after_s * 1e6);
		mv_log("running: %u frames/s of %u bytes for %.1f s, %u update(s)", v.o.rate, v.o.frame_len,
		       v.o.duration_s, v.o.updates);
	}

	r = run(&v);
	if (r < 0)
		mv_log("event loop: %s", strerror(-r));
	/* --test-edu-final-check: the edu still DMAs through the mapping this image made or took (the rig's
	 * check after a refused update: nothing was moved); counted in the report as any check */
	else if (v.o.test_edu_final_check && v.edu.iommufd >= 0)
		(void)mv_edu_check(&v, v.st->generation, v.st->generation + 1, "final");
out:
	r = report(&v, setup_error);
	for (unsigned q = 0; q < MV_NQ; q++)
		mv_vq_done(&v.vq[q]);
	mv_vq_done(&v.cvq);
	/* reset before close so the device stops DMA into memory we unmap next, but only as its owner:
	 * VHOST_VDPA_SET_STATUS has no owner check, and a process that is not the owner (a transfer
	 * successor whose VHOST_NEW_OWNER failed, a VMM its successor took the device from) would reset a
	 * device another process runs (chaos soak, patched, seed 20261206 kill 109: the successor, refused
	 * by the withdrawn consent, exited and reset the device the old VMM had just brought back).  An
	 * owner-checked ioctl tells (mv_vdev_other_owner). */
	if (v.dev.fd >= 0) {
		if (mv_vdev_other_owner(&v.dev))
			mv_log("exit: the device's owner is another process: not resetting it");
		else
			(void)mv_vdev_set_status(&v.dev, 0);
	}
	mv_vdev_done(&v.dev);
	mv_edu_done(&v.edu);
	mv_mem_done(&v.mem);
	v.sigfd = safe_close(v.sigfd);
	mv_link_close(&v);
	free(v.st);
	return r;
}
