/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-iofbench - the iommufd part of `make bench` (docs/BENCH.md, docs/IOMMUFD.md): on the rig's real VFIO
 * device (QEMU's edu behind the emulated intel-iommu, flavour iommufd), how long moving the DMA mappings of a
 * guest's RAM to a new process takes with IOMMU_IOAS_CHANGE_PROCESS, against what a VMM without it does
 * (unmap every mapping, map it again from the new process: the re-pin), and the first map (pin) for
 * reference.  Every move is checked: the new side's VmPin went up by exactly the mapped size (and, in
 * transfer mode, the old side's down by as much), and an edu DMA through the IOMMU from the new process's
 * mapping (reading one end of the reachable window, writing the other) returns the pattern, in the memfd.
 *
 *   vlu-iofbench --mode transfer|exec --size BYTES --reps N [--label 64M] /dev/vfio/devices/vfioN
 *
 * Both modes, user accounting mode (CAP_IPC_LOCK dropped, bounding set too; RLIMIT_MEMLOCK set to twice the
 * size plus slack: CHANGE_PROCESS charges the caller before it uncharges the old owner, same user).  The
 * first process X opens /dev/iommu and the cdev, allocates an IOAS, binds and attaches the device, creates a
 * memfd of BYTES, writes every page of it (guest memory touched), and maps it with IOMMU_IOAS_MAP_FILE at
 * IOVA 1 MiB (timed: "pin_first").  Then N times:
 *   transfer: a second process Y (fork + exec of this program, the fds received by SCM_RIGHTS, both alive,
 *             as in a transfer-mode update) calls IOMMU_IOAS_CHANGE_PROCESS (timed: "cp"); X then takes the
 *             mappings back the other way, unmap + map (IOMMU_IOAS_UNMAP and IOMMU_IOAS_MAP_FILE, each
 *             timed: "unmap", "map", their sum "repin");
 *   exec:     X execs itself; the new image (same pid, new mm, the old one gone) calls CHANGE_PROCESS ("cp");
 *             the next image after another exec unmaps and maps again ("unmap", "map"); 2N execs.  A new
 *             image maps the memfd itself (lazily: neither CHANGE_PROCESS nor MAP_FILE reads the caller's
 *             page tables).
 * The re-pin maps with MAP_FILE like the first map, so re-pin against CHANGE_PROCESS is unpin + pin against
 * moving the charge, on the same pages.  (A VMM on a kernel without CHANGE_PROCESS, < 6.13, has no MAP_FILE
 * either: it maps user addresses, IOMMU_IOAS_MAP, which pins through its page tables: not measured here.)
 *
 * Output: the setup steps as TAP lines "<suite>/<mode>-<label>.<step>", one line "ok - ...moved-dma-vmpin"
 * (every check of every move passed) or "not ok" with the first reasons, and one line
 *   IOFBENCH {"mode":..,"mem":..,"mem_mb":..,"kb":..,"reps":..,"pin_first_ms":..,"cp_ms":[..],"unmap_ms":[..],
 *             "map_ms":[..],"repin_ms":[..],"cp_moved_kb":[..],"repin_moved_kb":[..],...,"ok":bool}
 * with every raw sample (tests/bench/bench-report collects it).  Timings are never asserted.
 * Exit status: 0 if every check passed, 1 if one failed, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "basics.h"

static const char *suite = "vlu-iofbench";
static const char *cmd = "";
static int failures;

#include "guest-tap.h"
#include "iofdev.h"

#define MAX_REPS 32
#define PAGE 4096ULL
/* edu's DMA reaches 28 bits of IOVA: the checks use the window [IOVA_BASE, 256 MiB) of the mapping */
#define EDU_REACH ((1ULL << 28) - IOVA_BASE)

/* The results, in a memfd shared by every process of a run (X, Y, the exec'ed images). */
struct res {
	uint64_t size;
	unsigned reps, exec_mode;
	uint32_t ioas;
	char label[16];
	long long base_pin_kb; /* X's VmPin before its first map */
	double pin_first_ms;
	double cp_ms[MAX_REPS], unmap_ms[MAX_REPS], map_ms[MAX_REPS];
	/* VmPin: the new owner's increase, the old owner's decrease (transfer mode; -1 in exec mode: the old
	 * mm is gone) */
	long long cp_up_kb[MAX_REPS], cp_down_kb[MAX_REPS], repin_up_kb[MAX_REPS], repin_down_kb[MAX_REPS];
	unsigned ncp, nrepin, checks, dma_checks, nfail;
	char why[4][200];
};

static struct res *R;

_printf_(2, 3) static bool check(bool ok, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	R->checks++;
	if (ok)
		return true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("# check failed (pid %d): %s\n", (int)getpid(), why);
	if (R->nfail < ELEMENTSOF(R->why))
		snprintf(R->why[R->nfail], sizeof(R->why[0]), "%s", why);
	R->nfail++;
	return false;
}

static long long pin_kb(pid_t pid)
{
	return status_kb(pid, "VmPin");
}

/*
 * One edu round trip through the IOMMU from this process's mapping of the memfd: a fresh pattern at the
 * low end of the reachable window goes to edu's buffer and back to the high end; checked in the mapping and
 * by pread in the memfd.
 */
static void dma_check(struct dev *d, int memfd, uint8_t *mem, const char *what)
{
	uint64_t reach = R->size < EDU_REACH ? R->size : EDU_REACH;
	size_t src = 0, dst = reach - PAGE;
	uint8_t pat[XFER], back[XFER];
	uint8_t seed = (uint8_t)(R->dma_checks * 37 + 11);
	int r;

	R->dma_checks++;
	edu_pattern(seed, pat, XFER);
	r = edu_roundtrip(d->bar, mem, IOVA_BASE, src, dst, pat, XFER);
	if (!check(r == 0, "%s: edu DMA failed: %s", what, ename(-r)))
		return;
	check(memcmp(mem + dst, pat, XFER) == 0, "%s: the DMA's copy at offset %#zx is not the pattern (%#x, want %#x)",
	      what, dst, mem[dst], pat[0]);
	check(pread(memfd, back, XFER, (off_t)dst) == XFER && memcmp(back, pat, XFER) == 0,
	      "%s: the memfd does not hold the DMA's copy at offset %#zx", what, dst);
}

static int map_file(struct dev *d, int memfd, double *ms)
{
	struct iommu_ioas_map_file mf = { .size = sizeof(mf),
					  .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
						   IOMMU_IOAS_MAP_WRITEABLE,
					  .ioas_id = d->ioas, .fd = memfd, .start = 0, .length = R->size, .iova = IOVA_BASE };
	double t0 = now_s();
	int r = ioctl(d->iommufd, IOMMU_IOAS_MAP_FILE, &mf);

	*ms = (now_s() - t0) * 1000;
	return r < 0 ? -errno : 0;
}

static int unmap_all(struct dev *d, double *ms)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = d->ioas, .iova = IOVA_BASE, .length = R->size };
	double t0 = now_s();
	int r = ioctl(d->iommufd, IOMMU_IOAS_UNMAP, &u);

	*ms = (now_s() - t0) * 1000;
	if (r < 0)
		return -errno;
	return u.length == R->size ? 0 : -ERANGE;
}

static int change_process(struct dev *d, double *ms)
{
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	double t0 = now_s();
	int r = ioctl(d->iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp);

	*ms = (now_s() - t0) * 1000;
	return r < 0 ? -errno : 0;
}

/*
 * The re-pin by this process (pid me) of mappings charged to other (0: a dead mm, exec mode): unmap all,
 * map all again; checks and records.
 */
static bool repin(struct dev *d, int memfd, pid_t me, pid_t other)
{
	unsigned i = R->nrepin;
	long long kb = (long long)(R->size / 1024), me0 = pin_kb(me), o0 = other ? pin_kb(other) : -1, me1, o1;
	int r;

	r = unmap_all(d, &R->unmap_ms[i]);
	if (!check(r == 0, "re-pin %u: IOMMU_IOAS_UNMAP: %s", i + 1, ename(-r)))
		return false;
	/* nothing is charged to this process after the unmap: the charge was the other's */
	check(pin_kb(me) == me0, "re-pin %u: VmPin of the new owner %lld kB after the unmap, %lld before", i + 1,
	      pin_kb(me), me0);
	r = map_file(d, memfd, &R->map_ms[i]);
	if (!check(r == 0, "re-pin %u: IOMMU_IOAS_MAP_FILE: %s", i + 1, ename(-r)))
		return false;
	me1 = pin_kb(me), o1 = other ? pin_kb(other) : -1;
	R->repin_up_kb[i] = me1 - me0;
	R->repin_down_kb[i] = other ? o0 - o1 : -1;
	check(me1 - me0 == kb, "re-pin %u: VmPin of the new owner up %lld kB, expected %lld", i + 1, me1 - me0, kb);
	if (other)
		check(o0 - o1 == kb, "re-pin %u: VmPin of the old owner down %lld kB, expected %lld", i + 1, o0 - o1, kb);
	R->nrepin++;
	return true;
}

/* CHANGE_PROCESS by this process (me) of mappings charged to other (0: a dead mm) */
static bool move(struct dev *d, pid_t me, pid_t other)
{
	unsigned i = R->ncp;
	long long kb = (long long)(R->size / 1024), me0 = pin_kb(me), o0 = other ? pin_kb(other) : -1, me1, o1;
	int r;

	r = change_process(d, &R->cp_ms[i]);
	if (!check(r == 0, "move %u: IOMMU_IOAS_CHANGE_PROCESS: %s", i + 1, ename(-r)))
		return false;
	me1 = pin_kb(me), o1 = other ? pin_kb(other) : -1;
	R->cp_up_kb[i] = me1 - me0;
	R->cp_down_kb[i] = other ? o0 - o1 : -1;
	check(me1 - me0 == kb, "move %u: VmPin of the new owner up %lld kB, expected %lld", i + 1, me1 - me0, kb);
	if (other)
		check(o0 - o1 == kb, "move %u: VmPin of the old owner down %lld kB, expected %lld", i + 1, o0 - o1, kb);
	R->ncp++;
	return true;
}

static void json_dbl_array(const char *key, const double *v, unsigned n)
{
	printf(",\"%s\":[", key);
	for (unsigned i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", v[i]);
	printf("]");
}

static void json_ll_array(const char *key, const long long *v, unsigned n)
{
	printf(",\"%s\":[", key);
	for (unsigned i = 0; i < n; i++)
		printf("%s%lld", i ? "," : "", v[i]);
	printf("]");
}

/* the TAP verdict of the run and the IOFBENCH line; the exit status */
static int report(void)
{
	double repin[MAX_REPS];
	unsigned n = R->nrepin;
	bool ok = R->nfail == 0 && failures == 0 && R->ncp == R->reps && R->nrepin == R->reps;

	for (unsigned i = 0; i < n; i++)
		repin[i] = R->unmap_ms[i] + R->map_ms[i];
	if (ok)
		tap(true, "moved-dma-vmpin");
	else
		tap_fail("moved-dma-vmpin", "%u of %u checks failed, %u/%u moves, %u/%u re-pins%s%s", R->nfail, R->checks,
			 R->ncp, R->reps, R->nrepin, R->reps, R->nfail ? "; first: " : "", R->nfail ? R->why[0] : "");
	printf("IOFBENCH {\"mode\":\"%s\",\"mem\":\"%s\",\"mem_mb\":%" PRIu64 ",\"kb\":%" PRIu64
	       ",\"reps\":%u,\"accounting\":\"user\"",
	       R->exec_mode ? "exec" : "transfer", R->label, R->size >> 20, R->size >> 10, R->reps);
	if (R->pin_first_ms >= 0)
		printf(",\"pin_first_ms\":%.3f", R->pin_first_ms);
	else
		printf(",\"pin_first_ms\":null");
	json_dbl_array("cp_ms", R->cp_ms, R->ncp);
	json_dbl_array("unmap_ms", R->unmap_ms, n);
	json_dbl_array("map_ms", R->map_ms, n);
	json_dbl_array("repin_ms", repin, n);
	json_ll_array("cp_up_kb", R->cp_up_kb, R->ncp);
	json_ll_array("cp_down_kb", R->cp_down_kb, R->ncp);
	json_ll_array("repin_up_kb", R->repin_up_kb, n);
	json_ll_array("repin_down_kb", R->repin_down_kb, n);
	printf(",\"dma_checks\":%u,\"checks\":%u,\"failed\":%u,\"reasons\":[", R->dma_checks, R->checks, R->nfail);
	for (unsigned i = 0; i < R->nfail && i < ELEMENTSOF(R->why); i++) {
		for (char *c = R->why[i]; *c; c++)
			if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
				*c = '\'';
		printf("%s\"%s\"", i ? "," : "", R->why[i]);
	}
	printf("],\"ok\":%s}\n", ok ? "true" : "false");
	fflush(stdout);
	return ok ? 0 : 1;
}

/* a new process's mapping of the memfd (the old one had it elsewhere; where does not matter to the kernel) */
static uint8_t *map_mem(int memfd)
{
	void *p = mmap(NULL, R->size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* ---- transfer mode: Y (fork + exec, argv: --peer SOCKFD) ---- */
static int peer_main(int sock)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	_cleanup_close_ int memfd = -EBADF, resfd = -EBADF;
	int fds[4];
	uint32_t ioas;
	uint8_t *mem = NULL;
	pid_t x = getppid();
	char op;

	if (recv_fds(sock, fds, 4, &ioas, sizeof(ioas)) < 0) {
		printf("# vlu-iofbench peer: no fds received\n");
		return 1;
	}
	d.iommufd = fds[0], d.devfd = fds[1], memfd = fds[2], resfd = fds[3], d.ioas = ioas;
	R = mmap(NULL, sizeof(*R), PROT_READ | PROT_WRITE, MAP_SHARED, resfd, 0);
	if (R == MAP_FAILED)
		return 1;
	if (!check(dev_enable(&d) == 0, "peer: BAR0 of the device not mappable") || !(mem = map_mem(memfd))) {
		check(mem != NULL, "peer: mmap of the memfd failed");
		op = 'x';
		(void)!write(sock, &op, 1);
		dev_done(&d);
		return 1;
	}
	while (read(sock, &op, 1) == 1 && op == 'c') {
		if (move(&d, getpid(), x))
			dma_check(&d, memfd, mem, "after CHANGE_PROCESS (transfer)");
		op = 'd';
		if (write(sock, &op, 1) != 1)
			break;
	}
	munmap(mem, R->size);
	dev_done(&d);
	return 0;
}

static int run_transfer(const char *self, struct dev *d, int memfd, int resfd, uint8_t *mem)
{
	int sv[2], fds[4], st = 0;
	_cleanup_close_ int sock = -EBADF;
	char op;
	pid_t y, me = getpid();

	if (!expect_ok("socketpair", socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)))
		return -1;
	sock = sv[0];
	fflush(stdout);
	y = fork();
	if (y == 0) {
		char arg[16];
		int c = dup(sv[1]); /* without CLOEXEC: Y's end survives the exec */

		snprintf(arg, sizeof(arg), "%d", c);
		execl(self, self, "--peer", arg, R->label, NULL);
		_exit(127);
	}
	safe_close(sv[1]);
	if (!expect_ok("fork", y))
		return -1;
	fds[0] = d->iommufd, fds[1] = d->devfd, fds[2] = memfd, fds[3] = resfd;
	if (!expect_ok("send-fds", send_fds(sock, fds, 4, &d->ioas, sizeof(d->ioas)) < 0 ? (errno = EIO, -1) : 0)) {
		kill(y, SIGKILL);
		waitpid(y, &st, 0);
		return -1;
	}
	for (unsigned i = 0; i < R->reps; i++) {
		op = 'c';
		if (!check(write(sock, &op, 1) == 1 && read(sock, &op, 1) == 1 && op == 'd',
			   "the peer did not answer move %u", i + 1))
			break;
		/* the peer now owns the charge: take it back the way a VMM without CHANGE_PROCESS would */
		if (!repin(d, memfd, me, y))
			break;
		dma_check(d, memfd, mem, "after the re-pin (transfer)");
	}
	sock = safe_close(sock); /* the peer's read ends: it exits */
	if (waitpid(y, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		check(false, "the peer process ended with status %#x", st);
	return 0;
}

/* ---- exec mode: the image after exec K (argv: --exec-step K RESFD IOMMUFD DEVFD MEMFD) ---- */
static int exec_next(const char *self, unsigned k, int resfd, struct dev *d, int memfd)
{
	char a[5][16];
	int fds[4] = { resfd, d->iommufd, d->devfd, memfd };

	for (int i = 0; i < 4; i++)
		if (fcntl(fds[i], F_SETFD, 0) < 0) /* kept across the exec */
			return -errno;
	snprintf(a[0], sizeof(a[0]), "%u", k);
	for (int i = 0; i < 4; i++)
		snprintf(a[i + 1], sizeof(a[0]), "%d", fds[i]);
	/* the BAR and the memfd's mapping die with this image's mm, the fds live on */
	fflush(stdout);
	execl(self, self, "--exec-step", a[0], a[1], a[2], a[3], a[4], R->label, NULL);
	return -errno;
}

static int exec_step(const char *self, unsigned k, int resfd, int iommufd, int devfd, int memfd)
{
	struct dev d = { .iommufd = iommufd, .devfd = devfd };
	uint8_t *mem;
	long long pin0;
	int r;

	R = mmap(NULL, sizeof(*R), PROT_READ | PROT_WRITE, MAP_SHARED, resfd, 0);
	if (R == MAP_FAILED) {
		printf("# vlu-iofbench exec step %u: the results memfd is not mappable\n", k);
		return 1;
	}
	d.ioas = R->ioas;
	pin0 = pin_kb(getpid());
	/* a new mm: nothing pinned until this image moves or re-pins the mappings */
	check(pin0 == 0, "exec %u: VmPin of the new image %lld kB, expected 0", k, pin0);
	if (!check(dev_enable(&d) == 0, "exec %u: BAR0 of the device not mappable", k) ||
	    !check((mem = map_mem(memfd)) != NULL, "exec %u: mmap of the memfd failed", k))
		goto end;
	if (k % 2) {
		if (move(&d, getpid(), 0))
			dma_check(&d, memfd, mem, "after CHANGE_PROCESS (exec)");
		else
			goto end;
	} else {
		if (repin(&d, memfd, getpid(), 0))
			dma_check(&d, memfd, mem, "after the re-pin (exec)");
		else
			goto end;
	}
	if (k < 2 * R->reps) {
		munmap(mem, R->size);
		munmap((void *)d.bar, EDU_BAR_SIZE);
		d.bar = NULL;
		r = exec_next(self, k + 1, resfd, &d, memfd);
		check(false, "exec %u: exec failed: %s", k + 1, ename(-r));
		goto end;
	}
	munmap(mem, R->size);
end:
	{
		double ms;

		/* the last image lets go: nothing left charged to it */
		r = unmap_all(&d, &ms);
		if (check(r == 0, "the last image's IOMMU_IOAS_UNMAP: %s", ename(-r)))
			check(pin_kb(getpid()) == 0, "VmPin of the last image %lld kB after the unmap, expected 0",
			      pin_kb(getpid()));
	}
	dev_done(&d);
	safe_close(memfd);
	return report();
}

/* ---- X ---- */
static int run(const char *self, const char *path, bool exec_mode, uint64_t size, unsigned reps, const char *label)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	_cleanup_close_ int memfd = -EBADF, resfd = -EBADF;
	struct rlimit rl;
	uint8_t *mem = NULL;
	long long kb = (long long)(size / 1024), pin1;
	int r;

	resfd = memfd_create("vlu-iofbench-results", MFD_CLOEXEC);
	if (!expect_ok("results-memfd", resfd < 0 || ftruncate(resfd, sizeof(*R)) < 0 ? -1 : 0))
		return 1;
	R = mmap(NULL, sizeof(*R), PROT_READ | PROT_WRITE, MAP_SHARED, resfd, 0);
	if (!expect_ok("results-mmap", R == MAP_FAILED ? -1 : 0))
		return 1;
	R->size = size, R->reps = reps, R->exec_mode = exec_mode, R->pin_first_ms = -1;
	snprintf(R->label, sizeof(R->label), "%s", label);
	/* user mode: the same user's charge is counted twice during CHANGE_PROCESS */
	if (!expect_ok("rlimit-memlock", getrlimit(RLIMIT_MEMLOCK, &rl)))
		goto out;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * size + (64 << 20)) {
		rl.rlim_cur = 2 * size + (64 << 20);
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (!expect_ok("rlimit-memlock-raise", setrlimit(RLIMIT_MEMLOCK, &rl)))
			goto out;
	}
	if (!expect_ok("drop-cap-ipc-lock", drop_cap_ipc_lock() < 0 ? -1 : 0))
		goto out;
	if (open_bind_attach(&d, path, false) < 0)
		goto out;
	R->ioas = d.ioas;
	memfd = memfd_create("vlu-iofbench-ram", MFD_CLOEXEC);
	if (!expect_ok("memfd", memfd < 0 || ftruncate(memfd, (off_t)size) < 0 ? -1 : 0))
		goto out;
	if (!expect_ok("mmap-memfd", (mem = map_mem(memfd)) ? 0 : -1))
		goto out;
	/* guest memory touched: every page exists and is mapped here before the first map */
	for (uint64_t o = 0; o < size; o += PAGE)
		mem[o] = (uint8_t)(o >> 12);
	R->base_pin_kb = pin_kb(getpid());
	r = map_file(&d, memfd, &R->pin_first_ms);
	if (!expect_ok("map-file", r < 0 ? (errno = -r, -1) : 0))
		goto out;
	pin1 = pin_kb(getpid());
	check(pin1 - R->base_pin_kb == kb, "first map: VmPin up %lld kB, expected %lld", pin1 - R->base_pin_kb, kb);
	dma_check(&d, memfd, mem, "after the first map");
	printf("# %s %s: first map (pin) of %lld kB %.1f ms\n", exec_mode ? "exec" : "transfer", label, kb,
	       R->pin_first_ms);
	if (exec_mode) {
		munmap(mem, size);
		mem = NULL;
		munmap((void *)d.bar, EDU_BAR_SIZE);
		d.bar = NULL;
		r = exec_next(self, 1, resfd, &d, memfd);
		check(false, "exec 1: exec failed: %s", ename(-r));
		goto out;
	}
	if (run_transfer(self, &d, memfd, resfd, mem) == 0) {
		double ms;

		r = unmap_all(&d, &ms);
		if (check(r == 0, "the final IOMMU_IOAS_UNMAP: %s", ename(-r)))
			check(pin_kb(getpid()) == R->base_pin_kb, "VmPin %lld kB after the final unmap, expected %lld",
			      pin_kb(getpid()), R->base_pin_kb);
	}
out:
	if (mem)
		munmap(mem, size);
	dev_done(&d);
	return report();
}

static int usage(void)
{
	fprintf(stderr, "usage: vlu-iofbench --mode transfer|exec --size BYTES --reps N [--label L] /dev/vfio/devices/vfioN\n");
	return 2;
}

static void set_cmd(bool exec_mode, const char *label)
{
	static char c[48];

	snprintf(c, sizeof(c), "%s-%s", exec_mode ? "exec" : "transfer", label);
	cmd = c;
}

int main(int argc, char **argv)
{
	const char *s = getenv("VLUD_SCENARIO"), *label = NULL, *mode = "transfer";
	uint64_t size = 0;
	unsigned long reps = 5;
	int i = 1;

	if (s && *s)
		suite = s;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "--peer") == 0) {
		set_cmd(false, argv[3]);
		return peer_main(atoi(argv[2]));
	}
	if (argc == 8 && strcmp(argv[1], "--exec-step") == 0) {
		set_cmd(true, argv[7]);
		return exec_step("/proc/self/exe", (unsigned)atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
				 atoi(argv[6]));
	}
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "--mode") == 0 && (!strcmp(argv[i + 1], "transfer") || !strcmp(argv[i + 1], "exec")))
			mode = argv[i + 1];
		else if (strcmp(argv[i], "--size") == 0)
			size = strtoull(argv[i + 1], NULL, 0);
		else if (strcmp(argv[i], "--reps") == 0)
			reps = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--label") == 0 && strlen(argv[i + 1]) < 16)
			label = argv[i + 1];
		else
			return usage();
	}
	/* the DMA checks need 2 pages; edu reaches the first 255 MiB of the window */
	if (argc - i != 1 || size < 2 * PAGE || size % PAGE || reps < 1 || reps > MAX_REPS)
		return usage();
	if (!label) {
		static char l[16];

		snprintf(l, sizeof(l), "%" PRIu64 "M", size >> 20);
		label = l;
	}
	set_cmd(!strcmp(mode, "exec"), label);
	return run("/proc/self/exe", argv[i], !strcmp(mode, "exec"), size, (unsigned)reps, label);
}
