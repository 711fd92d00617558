/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vlu-iommufd - the rig's iommufd/VFIO test program (flavour iommufd, docs/IOMMUFD.md): a real VFIO
 * device (QEMU's edu, bound to vfio-pci) on /dev/iommu, its DMA through the guest's IOMMU, and
 * IOMMU_IOAS_CHANGE_PROCESS moving the pinned memory to a second process.  One TAP line per assertion,
 * named "<suite>/<command>.<check>" with suite = $VLUD_SCENARIO (or "vlu-iommufd").
 *
 *   vlu-iommufd [--fixed] [--acct user|mm|none] [--size BYTES] change-process /dev/vfio/devices/vfioN
 *       process A: IOAS_ALLOC, BIND + ATTACH the device, IOAS_MAP_FILE of a memfd, edu DMA RAM -> device
 *       -> RAM checked; passes the iommufd, device and memfd fds (SCM_RIGHTS) to B = fork + exec of this
 *       program (argv: --child SOCKFD ACCT), closes its copies and waits; B maps the memfd at another address, IOAS_CHANGE_PROCESS,
 *       checks that VmPin (and, in mm mode, VmLck) moved from A to B exactly, DMAs again into the memfd,
 *       unmaps and checks that its charge returns to where it was.
 *       --acct user: user locked_vm mode; --acct mm: IOMMU_OPTION_RLIMIT_MODE = 1 (mm locked_vm mode).
 *       Both drop CAP_IPC_LOCK first (bounding set too, so the exec'ed B has none either): a mapper with
 *       it gets no accounting at all (IOPT_PAGES_ACCOUNT_NONE, also under RLIMIT_MODE = 1).
 *       --acct none: keeps CAP_IPC_LOCK; the counters are only reported ("# observed" lines, no
 *       assertion): CHANGE_PROCESS moves no charge in that mode (a known kernel bug, docs/IOMMUFD.md),
 *       unless --fixed is given (a kernel with kernel/iommufd/'s fixes): then VmPin is asserted as in the
 *       other modes (A down and B up by the mapped size, B back to where it was after its unmap).
 *       --maps N (change-process only): the memfd mapped as N MAP_FILE areas of BYTES/N each (1..4096,
 *       consecutive in the memfd and in IOVA): one CHANGE_PROCESS moves them all, the counters are
 *       asserted the same way; TAP names change-process-<acct>-mapsN.
 *   vlu-iommufd [--acct user|mm|none] [--size BYTES] change-process-exec /dev/vfio/devices/vfioN
 *       the exec case: process A maps as above and exec()s this program (the same pid, a new mm: A's mm
 *       has no user left) keeping the iommufd, device and memfd fds; the new image B maps the memfd,
 *       calls IOMMU_IOAS_CHANGE_PROCESS and asserts what is right in every mode (no "observed" lines):
 *       the call succeeds, or fails having changed nothing; B's VmPin (and VmLck in mm mode) up by the
 *       mapped size; DMA into the memfd; after B's unmap both back to where they were (no underflow, no
 *       charge left behind).  Unpatched 7.3 fails it in mm mode (EINVAL after charging B, and B's
 *       charge is never returned) and in none mode (nothing charged to B, VmPin underflows at the unmap).
 *   vlu-iommufd vlud SOCKET /dev/vfio/devices/vfioN BDF [--keep-ipc-lock]
 *       the same device through vlud (docs/IOMMUFD.md): device.open of /dev/iommu and of the cdev, the
 *       fds and info checked, DMA through them, vlud's refusals (second open, vmm.mappings "ioas",
 *       update.start's preflight), and DMA again through the fds retrieved from vlud after the VMM closed
 *       its own copies.  --keep-ipc-lock: the VMM keeps CAP_IPC_LOCK (its mappings are unaccounted) and
 *       the preflight must refuse that where it otherwise says what could move.
 *   vlu-iommufd negative /dev/vfio/devices/vfioN
 *       CHANGE_PROCESS on an empty context succeeds (the capability probe), with __reserved set it fails
 *       EOPNOTSUPP, with a plain IOMMU_IOAS_MAP (user VA) mapping it fails EINVAL.
 *   vlu-iommufd vmm SOCKET /dev/vfio/devices/vfioN BDF LOG MARKER [--acct user|mm] [--stay-after-commit]
 *       [--stop-at-held-reclaim] [--reattach-when-vlud-lost] [--stop-at-save-if FILE] [--first-gen N]
 *       [--skip-change-process|--die-after-claim|--die-after-change-process|
 *       --fail-after-change-process|--hang-after-change-process|--stop-before-claim|--stop-before-ready]
 *       [--fail-exec-if FILE]
 *       an update-capable VMM through vlud (scenarios iommufd-update*, see vmm_main() below); --acct mm:
 *       its iommufd in mm accounting mode (VmLck asserted with VmPin by every image).
 *
 * Exit status: 0 if every check passed, 1 if one failed, 2 on usage errors.
 * The uapi definitions (kernel/uapi/vlu-vfio-edu.h, through iofdev.h) are copied from Linux 7.3's
 * include/uapi/linux/{iommufd,vfio}.h: the build host's headers (Debian 12, 6.1) have no iommufd.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/types.h>
#include <linux/vfio.h>

#include <sys/stat.h>
#include <json-c/json.h>

#include "basics.h"
#include "vlu.h"

static const char *suite = "vlu-iommufd";
static const char *const mode_name[] = { "user", "mm", "none" };
static const char *cmd = "";
static int failures;
/* --fixed: the kernel has kernel/iommufd/'s accounting fixes (none mode asserted, not observed) */
static bool fixed;

#include "guest-tap.h"
#include "iofdev.h" /* /proc counters, fd passing, bind + attach; uapi and edu: vlu-vfio-edu.h */

/*
 * RAM -> device -> RAM: the pattern at mem[src_off] goes to edu's buffer and back to mem[dst_off]
 * (both through the IOMMU at IOVA_BASE + offset); checks the copy and, by pread, that it is in the memfd.
 */
static void dma_roundtrip(struct dev *d, int memfd, uint8_t *mem, size_t src_off, size_t dst_off, uint8_t seed,
			  const char *name)
{
	uint8_t pat[XFER], back[XFER];
	char n[128];
	double t0;
	int r;

	edu_pattern(seed, pat, XFER);
	t0 = now_s();
	r = edu_roundtrip(d->bar, mem, IOVA_BASE, src_off, dst_off, pat, XFER);
	snprintf(n, sizeof(n), "%s.dma", name);
	if (r < 0) {
		tap_fail(n, "edu DMA failed: %s", ename(-r));
		return;
	}
	tap(true, "%s", n);
	printf("# %s: two DMAs of %d bytes in %.0f ms\n", name, XFER, (now_s() - t0) * 1000);
	snprintf(n, sizeof(n), "%s.data", name);
	if (memcmp(mem + dst_off, pat, XFER) == 0)
		tap(true, "%s", n);
	else
		tap_fail(n, "the copy at offset %#zx differs from the pattern (first byte %#x, want %#x)", dst_off,
			 mem[dst_off], pat[0]);
	snprintf(n, sizeof(n), "%s.in-memfd", name);
	if (pread(memfd, back, XFER, dst_off) == XFER && memcmp(back, pat, XFER) == 0)
		tap(true, "%s", n);
	else
		tap_fail(n, "the memfd does not hold the copy at offset %#zx", dst_off);
}

/* What A hands to B besides the fds. */
struct handoff {
	uint32_t ioas;
	uint64_t size;
	uint64_t a_addr;     /* where A had the memfd mapped */
	long long a_pin_kb, a_lck_kb; /* A's VmPin / VmLck with the mapping made */
	long long base_pin_kb, base_lck_kb; /* A's before the mapping */
	int mode; /* 0 user, 1 mm, 2 none */
	bool fixed; /* --fixed */
};

/* ---- change-process, process B (exec'ed, argv: --child SOCKFD ACCT) ---- */
static int child_main(int sock)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	struct handoff h;
	int fds[3] = { -EBADF, -EBADF, -EBADF };
	_cleanup_close_ int memfd = -EBADF;
	pid_t a = getppid(), b = getpid();
	long long b_pin0, b_lck0, a_pin1, a_lck1, b_pin1, b_lck1, kb;
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	uint8_t *mem;
	double t0;

	if (!expect_ok("child.receive-fds", recv_fds(sock, fds, 3, &h, sizeof(h)) < 0 ? (errno = EBADMSG, -1) : 0))
		return 1;
	d.iommufd = fds[0], d.devfd = fds[1], memfd = fds[2];
	kb = (long long)(h.size / 1024);
	/* another address than A's: a hint far from it (the new image's layout differs anyway) */
	mem = mmap((void *)(uintptr_t)(h.a_addr + (1ULL << 36)), h.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!expect_ok("child.mmap-memfd", mem == MAP_FAILED ? -1 : 0))
		goto out;
	if ((uintptr_t)mem != h.a_addr)
		tap(true, "child.new-address");
	else
		tap_fail("child.new-address", "mapped at A's address %#" PRIx64, h.a_addr);
	printf("# A mapped the memfd at %#" PRIx64 ", B at %p\n", h.a_addr, (void *)mem);
	b_pin0 = status_kb(b, "VmPin"), b_lck0 = status_kb(b, "VmLck");
	t0 = now_s();
	if (!expect_ok("child.change-process", ioctl(d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp)))
		goto out;
	printf("# IOMMU_IOAS_CHANGE_PROCESS of %lld kB took %.2f ms\n", kb, (now_s() - t0) * 1000);
	a_pin1 = status_kb(a, "VmPin"), a_lck1 = status_kb(a, "VmLck");
	b_pin1 = status_kb(b, "VmPin"), b_lck1 = status_kb(b, "VmLck");
	printf("# VmPin kB: A %lld -> %lld, B %lld -> %lld; VmLck kB: A %lld -> %lld, B %lld -> %lld (%s mode)\n",
	       h.a_pin_kb, a_pin1, b_pin0, b_pin1, h.a_lck_kb, a_lck1, b_lck0, b_lck1, mode_name[h.mode]);
	if (h.mode == 2 && !h.fixed) {
		printf("# observed (none mode): VmPin moved A -%lld kB, B +%lld kB of %lld kB mapped\n",
		       h.a_pin_kb - a_pin1, b_pin1 - b_pin0, kb);
	} else {
		expect_eq("child.vmpin-a-down", h.a_pin_kb - a_pin1, kb);
		expect_eq("child.vmpin-b-up", b_pin1 - b_pin0, kb);
	}
	if (h.mode == 2 && !h.fixed) {
		/* nothing asserted */
	} else if (h.mode == 1) {
		expect_eq("child.vmlck-a-down", h.a_lck_kb - a_lck1, kb);
		expect_eq("child.vmlck-b-up", b_lck1 - b_lck0, kb);
	} else {
		/* user mode charges user->locked_vm (same uid: no net change, not in /proc), never VmLck */
		expect_eq("child.vmlck-b-unchanged", b_lck1 - b_lck0, 0);
		expect_eq("child.vmlck-a-unchanged", h.a_lck_kb - a_lck1, 0);
	}
	if (!expect_ok("child.enable-bar0", dev_enable(&d) < 0 ? (errno = ENXIO, -1) : 0))
		goto out;
	dma_roundtrip(&d, memfd, mem, 2 * 4096, 3 * 4096, 0x5a, "child");
	{
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = h.ioas, .iova = IOVA_BASE, .length = h.size };
		if (!expect_ok("child.unmap", ioctl(d.iommufd, IOMMU_IOAS_UNMAP, &u))) {
			/* reported */
		} else if (h.mode == 2 && !h.fixed) {
			printf("# observed (none mode) after unmap: VmPin B %lld kB (was %lld before CHANGE_PROCESS), A %lld kB\n",
			       status_kb(b, "VmPin"), b_pin0, status_kb(a, "VmPin"));
		} else {
			expect_eq("child.vmpin-b-after-unmap", status_kb(b, "VmPin"), b_pin0);
			if (h.mode == 1)
				expect_eq("child.vmlck-b-after-unmap", status_kb(b, "VmLck"), b_lck0);
			expect_eq("child.vmpin-a-after-unmap", status_kb(a, "VmPin"), a_pin1);
		}
	}
out:
	if (mem != MAP_FAILED)
		munmap(mem, h.size);
	dev_done(&d);
	return failures ? 1 : 0;
}

/* ---- change-process, process A ---- */
static int change_process(const char *self, const char *path, const char *acct, uint64_t size, unsigned maps)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	_cleanup_close_ int memfd = -EBADF, sock = -EBADF;
	int sv[2] = { -EBADF, -EBADF };
	bool mm = strcmp(acct, "mm") == 0, none = strcmp(acct, "none") == 0;
	struct handoff h = { .size = size, .mode = mm ? 1 : none ? 2 : 0, .fixed = fixed };
	struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
	uint8_t *mem = MAP_FAILED;
	pid_t pid;
	int st, fds[3];
	double t0;

	if (!none && !expect_ok("drop-cap-ipc-lock", drop_cap_ipc_lock() < 0 ? -1 : 0))
		return 1;
	if (open_bind_attach(&d, path, mm) < 0)
		goto out;
	memfd = memfd_create("vlu-iommufd-ram", MFD_CLOEXEC);
	if (!expect_ok("memfd", memfd < 0 || ftruncate(memfd, size) < 0 ? -1 : 0))
		goto out;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!expect_ok("mmap-memfd", mem == MAP_FAILED ? -1 : 0))
		goto out;
	h.base_pin_kb = status_kb(getpid(), "VmPin"), h.base_lck_kb = status_kb(getpid(), "VmLck");
	/* --maps N: N areas of size/N each, consecutive in the memfd and in IOVA (one CHANGE_PROCESS moves
	 * them all; B's one unmap of the whole range removes them all) */
	mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	mf.ioas_id = d.ioas, mf.fd = memfd, mf.length = size / maps;
	t0 = now_s();
	for (unsigned k = 0; k < maps; k++) {
		mf.start = k * mf.length, mf.iova = IOVA_BASE + k * mf.length;
		if (ioctl(d.iommufd, IOMMU_IOAS_MAP_FILE, &mf) < 0) {
			tap_fail("map-file", "area %u of %u: %s", k, maps, strerror(errno));
			goto out;
		}
	}
	tap(true, "map-file");
	printf("# IOMMU_IOAS_MAP_FILE of %" PRIu64 " kB in %u area(s) (pins it: a device is attached) took %.2f ms\n",
	       size / 1024, maps, (now_s() - t0) * 1000);
	h.a_pin_kb = status_kb(getpid(), "VmPin"), h.a_lck_kb = status_kb(getpid(), "VmLck");
	printf("# A after MAP_FILE: VmPin %lld kB (was %lld), VmLck %lld kB (was %lld)\n", h.a_pin_kb, h.base_pin_kb,
	       h.a_lck_kb, h.base_lck_kb);
	/* every mode charges VmPin (pinned_vm); mm mode also VmLck (locked_vm) */
	expect_eq("vmpin-charged", h.a_pin_kb - h.base_pin_kb, (long long)(size / 1024));
	expect_eq(mm ? "vmlck-charged" : "vmlck-uncharged", h.a_lck_kb - h.base_lck_kb, mm ? (long long)(size / 1024) : 0);
	dma_roundtrip(&d, memfd, mem, 0, 4096, 0xa5, "parent");

	/* hand everything to B, keep nothing */
	h.ioas = d.ioas, h.a_addr = (uintptr_t)mem;
	if (!expect_ok("socketpair", socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)))
		goto out;
	sock = sv[0];
	fflush(stdout); /* nothing of A's buffered output duplicated or interleaved mid-line with B's */
	pid = fork();
	if (pid == 0) {
		char arg[16];
		int c = dup(sv[1]); /* without CLOEXEC: B's end survives the exec */
		snprintf(arg, sizeof(arg), "%d", c);
		/* B's TAP names: change-process-<acct>[-mapsN], as A's (cmd) */
		execl(self, self, "--child", arg, cmd + strlen("change-process-"), NULL);
		_exit(127);
	}
	safe_close(sv[1]);
	if (!expect_ok("fork", pid))
		goto out;
	fds[0] = d.iommufd, fds[1] = d.devfd, fds[2] = memfd;
	if (!expect_ok("send-fds", send_fds(sock, fds, 3, &h, sizeof(h)) < 0 ? (errno = EIO, -1) : 0)) {
		waitpid(pid, &st, 0);
		goto out;
	}
	/* A lets go of the device and the memory (it stays alive: B reads A's counters) */
	munmap((void *)d.bar, EDU_BAR_SIZE);
	d.bar = NULL;
	munmap(mem, size);
	mem = MAP_FAILED;
	d.devfd = safe_close(d.devfd);
	d.iommufd = safe_close(d.iommufd);
	memfd = safe_close(memfd);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		tap_fail("child-exit", "B did not exit normally (status %#x)", st);
	else if (WEXITSTATUS(st) == 0)
		tap(true, "child-exit");
	else /* B printed its own not ok lines too, unless it died before (exec failed: 127) */
		tap_fail("child-exit", "B exited with status %d", WEXITSTATUS(st));
	if (none && !fixed)
		printf("# observed (none mode): A's VmPin after B ended %lld kB (was %lld before MAP_FILE)\n",
		       status_kb(getpid(), "VmPin"), h.base_pin_kb);
	else
		expect_eq("vmpin-a-after-child", status_kb(getpid(), "VmPin"), h.base_pin_kb);
out:
	if (mem != MAP_FAILED)
		munmap(mem, size);
	dev_done(&d);
	return failures ? 1 : 0;
}

/* ---- change-process-exec ---- */

/* fd survives an exec */
static int keep_on_exec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0 ? -errno : 0;
}

/*
 * The new image B (argv: --exec-child ACCT IOMMUFD DEVFD MEMFD HANDOFF): the same pid as A, a new mm; A's
 * mm has no user left.  Everything asserted, in every mode.
 */
static int exec_child_main(char **argv)
{
	struct dev d = { .iommufd = atoi(argv[3]), .devfd = atoi(argv[4]) };
	_cleanup_close_ int memfd = atoi(argv[5]), hfd = atoi(argv[6]);
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	struct handoff h;
	pid_t b = getpid();
	long long kb, pin0, lck0, pin1, lck1;
	uint8_t *mem = MAP_FAILED;
	double t0;
	int r;

	if (!expect_ok("exec.handoff", pread(hfd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : (errno = EIO, -1)))
		goto out;
	kb = (long long)(h.size / 1024);
	pin0 = status_kb(b, "VmPin"), lck0 = status_kb(b, "VmLck");
	/* the new image's mm: nothing charged to it yet (A's charge went with A's mm or stays there) */
	expect_eq("exec.vmpin-new-mm", pin0, 0);
	expect_eq("exec.vmlck-new-mm", lck0, 0);
	mem = mmap((void *)(uintptr_t)(h.a_addr + (1ULL << 36)), h.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!expect_ok("exec.mmap-memfd", mem == MAP_FAILED ? -1 : 0))
		goto out;
	printf("# A (pid %d, exec'ed) mapped the memfd at %#" PRIx64 ", B (same pid) at %p\n", (int)b, h.a_addr,
	       (void *)mem);
	t0 = now_s();
	r = ioctl(d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp);
	printf("# IOMMU_IOAS_CHANGE_PROCESS of %lld kB from the exec'ed image (%s mode): %s in %.2f ms\n", kb,
	       mode_name[h.mode], r < 0 ? strerror(errno) : "ok", (now_s() - t0) * 1000);
	pin1 = status_kb(b, "VmPin"), lck1 = status_kb(b, "VmLck");
	printf("# B: VmPin %lld -> %lld kB, VmLck %lld -> %lld kB\n", pin0, pin1, lck0, lck1);
	if (!expect_ok("exec.change-process", r)) {
		/* a failed call must have changed nothing */
		expect_eq("exec.vmpin-unchanged-on-failure", pin1, pin0);
		expect_eq("exec.vmlck-unchanged-on-failure", lck1, lck0);
	} else {
		expect_eq("exec.vmpin-b-up", pin1 - pin0, kb);
		expect_eq(h.mode == 1 ? "exec.vmlck-b-up" : "exec.vmlck-b-unchanged", lck1 - lck0, h.mode == 1 ? kb : 0);
	}
	if (!expect_ok("exec.enable-bar0", dev_enable(&d) < 0 ? (errno = ENXIO, -1) : 0))
		goto out;
	dma_roundtrip(&d, memfd, mem, 2 * 4096, 3 * 4096, 0x3c, "exec");
	{
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = h.ioas, .iova = IOVA_BASE, .length = h.size };

		if (expect_ok("exec.unmap", ioctl(d.iommufd, IOMMU_IOAS_UNMAP, &u))) {
			/* every charge B got is returned: no underflow, nothing left behind */
			expect_eq("exec.vmpin-after-unmap", status_kb(b, "VmPin"), pin0);
			expect_eq("exec.vmlck-after-unmap", status_kb(b, "VmLck"), lck0);
		}
	}
out:
	if (mem != MAP_FAILED)
		munmap(mem, h.size);
	dev_done(&d);
	return failures ? 1 : 0;
}

/* process A of change-process-exec: maps, checks, exec()s itself with the fds */
static int change_process_exec(const char *self, const char *path, const char *acct, uint64_t size)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	_cleanup_close_ int memfd = -EBADF, hfd = -EBADF;
	bool mm = strcmp(acct, "mm") == 0, none = strcmp(acct, "none") == 0;
	struct handoff h = { .size = size, .mode = mm ? 1 : none ? 2 : 0, .fixed = true };
	struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
	char a[4][16];
	uint8_t *mem = MAP_FAILED;

	if (!none && !expect_ok("drop-cap-ipc-lock", drop_cap_ipc_lock() < 0 ? -1 : 0))
		return 1;
	if (open_bind_attach(&d, path, mm) < 0)
		goto out;
	memfd = memfd_create("vlu-iommufd-ram", MFD_CLOEXEC);
	if (!expect_ok("memfd", memfd < 0 || ftruncate(memfd, size) < 0 ? -1 : 0))
		goto out;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!expect_ok("mmap-memfd", mem == MAP_FAILED ? -1 : 0))
		goto out;
	h.base_pin_kb = status_kb(getpid(), "VmPin"), h.base_lck_kb = status_kb(getpid(), "VmLck");
	mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	mf.ioas_id = d.ioas, mf.fd = memfd, mf.start = 0, mf.length = size, mf.iova = IOVA_BASE;
	if (!expect_ok("map-file", ioctl(d.iommufd, IOMMU_IOAS_MAP_FILE, &mf)))
		goto out;
	h.a_pin_kb = status_kb(getpid(), "VmPin"), h.a_lck_kb = status_kb(getpid(), "VmLck");
	expect_eq("vmpin-charged", h.a_pin_kb - h.base_pin_kb, (long long)(size / 1024));
	expect_eq(mm ? "vmlck-charged" : "vmlck-uncharged", h.a_lck_kb - h.base_lck_kb, mm ? (long long)(size / 1024) : 0);
	dma_roundtrip(&d, memfd, mem, 0, 4096, 0xc3, "parent");
	h.ioas = d.ioas, h.a_addr = (uintptr_t)mem;
	hfd = memfd_create("vlu-iommufd-handoff", 0);
	if (!expect_ok("handoff", hfd < 0 || pwrite(hfd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ? -1 : 0))
		goto out;
	if (!expect_ok("keep-fds-on-exec", keep_on_exec(d.iommufd) < 0 || keep_on_exec(d.devfd) < 0 ||
					   keep_on_exec(memfd) < 0 ? -1 : 0))
		goto out;
	snprintf(a[0], sizeof(a[0]), "%d", d.iommufd);
	snprintf(a[1], sizeof(a[1]), "%d", d.devfd);
	snprintf(a[2], sizeof(a[2]), "%d", memfd);
	snprintf(a[3], sizeof(a[3]), "%d", hfd);
	printf("# A (pid %d) exec's itself with the iommufd, the device and the memfd; its mm dies\n", (int)getpid());
	fflush(stdout);
	execl(self, self, "--exec-child", acct, a[0], a[1], a[2], a[3], NULL);
	tap_fail("exec", "%s", strerror(errno));
out:
	if (mem != MAP_FAILED)
		munmap(mem, size);
	dev_done(&d);
	return failures ? 1 : 0;
}

/* ---- negative ---- */
static int negative(const char *path)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	struct iommu_ioas_map m = { .size = sizeof(m) };
	void *anon;
	size_t size = 64 * 1024;

	if (open_bind_attach(&d, path, false) < 0)
		goto out;
	expect_ok("change-process-empty", ioctl(d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	cp.__reserved = 1;
	expect_errno("change-process-reserved", ioctl(d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp), EOPNOTSUPP);
	cp.__reserved = 0;
	anon = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!expect_ok("mmap-anon", anon == MAP_FAILED ? -1 : 0))
		goto out;
	memset(anon, 1, size);
	m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	m.ioas_id = d.ioas, m.user_va = (uintptr_t)anon, m.length = size, m.iova = IOVA_BASE;
	if (expect_ok("map-user-va", ioctl(d.iommufd, IOMMU_IOAS_MAP, &m)))
		expect_errno("change-process-user-va-map", ioctl(d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &cp), EINVAL);
	munmap(anon, size);
out:
	dev_done(&d);
	return failures ? 1 : 0;
}

/* ---- through vlud ---- */

/* r of a libvlu call as expect_ok() takes it (errno = -r) */
static long vr(int r)
{
	if (r >= 0)
		return 0;
	errno = -r;
	return -1;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int64_t jint(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
												: dflt;
}

static void expect_str(const char *name, const char *got, const char *want)
{
	if (got && strcmp(got, want) == 0)
		tap(true, "%s=%s", name, want);
	else
		tap_fail(name, "'%s', expected '%s'", got ? got : "(null)", want);
}

/* fd is a character device with node's device number, and not O_PATH */
static void expect_node(const char *name, int fd, const char *node)
{
	struct stat a, b;
	int fl = fcntl(fd, F_GETFL);

	if (fstat(fd, &a) == 0 && stat(node, &b) == 0 && S_ISCHR(a.st_mode) && a.st_rdev == b.st_rdev && fl >= 0 &&
	    !(fl & O_PATH) && (fl & O_ACCMODE) == O_RDWR)
		tap(true, "%s", name);
	else
		tap_fail(name, "fd %d is not %s opened O_RDWR (flags %#x)", fd, node, fl);
}

/* the last error of v contains want */
static void expect_desc(const char *name, struct vlu *v, int r, int want_errno, const char *want)
{
	const char *cls = NULL, *desc = NULL;

	if (r != -want_errno) {
		tap_fail(name, "expected %s, got %d", ename(want_errno), r);
		return;
	}
	if (vlu_last_error(v, &cls, &desc) < 0 || !desc || !strstr(desc, want)) {
		tap_fail(name, "the error (%s) does not say '%s'", desc ? desc : "-", want);
		return;
	}
	tap(true, "%s", name);
	printf("# %s: %s: %s\n", name, cls, desc);
}

/* vmm.mappings with one IOAS entry: iommufd "iommufd:iommu", ioas, devices [dev] (none if NULL), the
 * mappings (iova, size, kind, memfd "ram"/NULL, uaddr) */
struct decl { uint64_t iova, size; const char *kind, *memfd; uint64_t uaddr; };

static int declare(struct vlu *v, const char *iommufd, uint32_t ioas, const char *dev, const struct decl *m, size_t n)
{
	json_object *a = json_object_new_object(), *io = json_object_new_array(), *e = json_object_new_object(),
		    *ms = json_object_new_array(), *ds = json_object_new_array();
	int r;

	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "iova", json_object_new_int64((int64_t)m[i].iova));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)m[i].size));
		json_object_object_add(o, "kind", json_object_new_string(m[i].kind));
		if (m[i].memfd)
			json_object_object_add(o, "memfd", json_object_new_string(m[i].memfd));
		json_object_object_add(o, "offset", json_object_new_int64(0));
		json_object_object_add(o, "uaddr", json_object_new_int64((int64_t)m[i].uaddr));
		json_object_array_add(ms, o);
	}
	if (dev)
		json_object_array_add(ds, json_object_new_string(dev));
	json_object_object_add(e, "iommufd", json_object_new_string(iommufd));
	json_object_object_add(e, "ioas_id", json_object_new_int64(ioas));
	json_object_object_add(e, "devices", ds);
	json_object_object_add(e, "mappings", ms);
	json_object_array_add(io, e);
	json_object_object_add(a, "mappings", json_object_new_array());
	json_object_object_add(a, "ioas", io);
	r = vlu_call(v, "vmm.mappings", a, NULL, 0, 10000, NULL, NULL, NULL);
	json_object_put(a);
	return r;
}

static int update_start_path(struct vlu *v, const char *inst, const char *mode, const char *path)
{
	json_object *a = json_object_new_object();
	int r;

	json_object_object_add(a, "instance", json_object_new_string(inst));
	json_object_object_add(a, "mode", json_object_new_string(mode));
	if (path)
		json_object_object_add(a, "path", json_object_new_string(path));
	r = vlu_call(v, "update.start", a, NULL, 0, 10000, NULL, NULL, NULL);
	json_object_put(a);
	return r;
}

static int update_start(struct vlu *v, const char *inst, const char *mode)
{
	return update_start_path(v, inst, mode, NULL);
}

/*
 * vlud SOCKET DEV BDF: the VMM gets /dev/iommu and the VFIO cdev from vlud (device.open), checks what it
 * got (the nodes' device numbers, O_RDWR, the kinds and the device info), makes its device work through
 * them (bind, attach, MAP_FILE of a memfd, edu DMA), and proves vlud holds them: the refusals of a second
 * open, the refusals of an update (the preflight's, and transfer mode), and, after it closed its own copies, the same
 * IOAS and device DMAing again through fds retrieved from vlud.
 */
static int via_vlud(const char *sock, const char *path, const char *bdf, bool keep_ipc_lock)
{
	struct dev d = { .iommufd = -EBADF, .devfd = -EBADF };
	struct vlu *v = NULL, *v2 = NULL;
	json_object *info = NULL, *o = NULL;
	_cleanup_close_ int memfd = -EBADF, other = -EBADF;
	struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
	const char *vfname = strrchr(path, '/') + 1;
	char devname[64];
	uint8_t *mem = MAP_FAILED;
	uint64_t size = 1 << 20;
	long long pin0, pin1;
	int fds[2] = { -EBADF, -EBADF };

	snprintf(devname, sizeof(devname), "vfio:%s", vfname);
	if (!keep_ipc_lock && !expect_ok("drop-cap-ipc-lock", drop_cap_ipc_lock() < 0 ? -1 : 0))
		return 1;
	if (!expect_ok("connect", vr(vlu_connect(sock, 5000, &v))) || !expect_ok("register", vr(vlu_register(v, "iof1", false))))
		goto out;
	/* /dev/iommu */
	if (!expect_ok("open-iommu", vr(vlu_device_open(v, "/dev/iommu", &d.iommufd, &info))))
		goto out;
	expect_node("iommu-fd-is-the-node", d.iommufd, "/dev/iommu");
	expect_str("iommu-kind", jstr(info, "kind"), "iommufd");
	expect_str("iommu-change-process-probed", jstr(info, "change_process"), "true");
	printf("# device.open /dev/iommu: %s\n", json_object_to_json_string(info));
	json_object_put(info), info = NULL;
	/* the VFIO cdev */
	if (!expect_ok("open-vfio", vr(vlu_device_open(v, path, &d.devfd, &info))))
		goto out;
	expect_node("vfio-fd-is-the-node", d.devfd, path);
	expect_str("vfio-kind", jstr(info, "kind"), "vfio");
	expect_str("vfio-pci", jstr(info, "pci"), bdf);
	expect_str("vfio-driver", jstr(info, "driver"), "vfio-pci");
	expect_str("vfio-vendor", jstr(info, "vendor"), "0x1234");
	expect_str("vfio-pci-device", jstr(info, "pci_device"), "0x11e8");
	printf("# device.open %s: %s\n", path, json_object_to_json_string(info));
	json_object_put(info), info = NULL;
	/* vlud's view */
	if (expect_ok("fd-list", vr(vlu_fd_list(v, NULL, &o)))) {
		json_object *a = NULL;
		int seen = 0;

		json_object_object_get_ex(o, "fds", &a);
		for (size_t i = 0; a && i < json_object_array_length(a); i++) {
			json_object *e = json_object_array_get_idx(a, i);
			const char *n = jstr(e, "name"), *t = jstr(e, "type");

			if (n && t && strcmp(n, "iommufd:iommu") == 0 && strcmp(t, "iommufd") == 0)
				seen |= 1;
			if (n && t && strcmp(n, devname) == 0 && strcmp(t, "vfio") == 0)
				seen |= 2;
		}
		expect_eq("fd-list-iommufd-and-vfio-held", seen, 3);
		json_object_put(o), o = NULL;
	}
	/* a second open by the same instance: both Busy */
	expect_desc("open-iommu-twice-busy", v, vlu_device_open(v, "/dev/iommu", &other, NULL), EBUSY, "iommufd:iommu");
	expect_desc("open-vfio-twice-busy", v, vlu_device_open(v, path, &other, NULL), EBUSY, "iof1");

	/* the device works through vlud's fds */
	if (bind_attach(&d, false) < 0)
		goto out;
	memfd = memfd_create("vlu-iommufd-ram", MFD_CLOEXEC);
	if (!expect_ok("memfd", memfd < 0 || ftruncate(memfd, size) < 0 ? -1 : 0))
		goto out;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!expect_ok("mmap-memfd", mem == MAP_FAILED ? -1 : 0))
		goto out;
	pin0 = status_kb(getpid(), "VmPin");
	mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	mf.ioas_id = d.ioas, mf.fd = memfd, mf.start = 0, mf.length = size, mf.iova = IOVA_BASE;
	if (!expect_ok("map-file", ioctl(d.iommufd, IOMMU_IOAS_MAP_FILE, &mf)))
		goto out;
	pin1 = status_kb(getpid(), "VmPin");
	expect_eq("vmpin-charged", pin1 - pin0, (long long)(size / 1024));
	dma_roundtrip(&d, memfd, mem, 0, 4096, 0x3c, "vlud-fds");
	{
		const char *n = "ram";

		expect_ok("store-memfd", vr(vlu_fd_store(v, &n, &memfd, 1, false)));
	}
	/* updates are refused, each with its reason (nothing handed over, nothing changed) */
	expect_desc("update-refused-undeclared", v, update_start(v, "iof1", "exec"), EOPNOTSUPP,
		    "iommufd 'iommufd:iommu' has no declared IOAS");
	{
		struct decl file = { IOVA_BASE, size, "file", "ram", (uintptr_t)mem };
		struct decl nomemfd = { IOVA_BASE, size, "file", "nope", (uintptr_t)mem };
		struct decl half = { IOVA_BASE, size / 2, "file", "ram", (uintptr_t)mem };
		struct decl two[2] = { file, { IOVA_BASE + size / 2, size, "file", "ram", (uintptr_t)mem } };
		struct decl toolong = { IOVA_BASE, 2 * size, "file", "ram", (uintptr_t)mem };
		struct iommu_ioas_map vm = { .size = sizeof(vm) };
		void *anon;

		expect_desc("declare-memfd-not-stored", v, declare(v, "iommufd:iommu", d.ioas, devname, &nomemfd, 1), ENOENT,
			    "'nope' is not a memfd stored");
		expect_desc("declare-overlap", v, declare(v, "iommufd:iommu", d.ioas, devname, two, 2), EINVAL, "overlap");
		expect_desc("declare-beyond-memfd", v, declare(v, "iommufd:iommu", d.ioas, devname, &toolong, 1), EINVAL,
			    "beyond the end of memfd 'ram'");
		expect_desc("declare-not-an-iommufd", v, declare(v, "ram", d.ioas, devname, &file, 1), ENOENT,
			    "no iommufd fd 'ram'");
		/* the device in no IOAS */
		if (expect_ok("declare-no-device", vr(declare(v, "iommufd:iommu", d.ioas, NULL, &file, 1))))
			expect_desc("update-refused-device-in-no-ioas", v, update_start(v, "iof1", "exec"), EOPNOTSUPP,
				    "VFIO device 'vfio:vfio0' is in no declared IOAS");
		/* VmPin says 1024 kB, the declaration 512 */
		if (expect_ok("declare-half", vr(declare(v, "iommufd:iommu", d.ioas, devname, &half, 1))))
			/* (with CAP_IPC_LOCK kept that refusal comes first: docs/IOMMUFD.md's order) */
			expect_desc(keep_ipc_lock ? "update-refused-cap-before-vmpin" : "update-refused-vmpin", v,
				    update_start(v, "iof1", "exec"), EOPNOTSUPP,
				    keep_ipc_lock ? "the VMM has CAP_IPC_LOCK" : "VmPin of the VMM is 1024 kB, its declared mappings pin 512 kB");
		/* everything CHANGE_PROCESS can move (probed, user accounting, VmPin right): only the missing
		 * sequence refuses */
		if (expect_ok("declare", vr(declare(v, "iommufd:iommu", d.ioas, devname, &file, 1)))) {
			if (keep_ipc_lock) /* mapped unaccounted: CHANGE_PROCESS would move nothing */
				expect_desc("update-refused-cap-ipc-lock", v, update_start(v, "iof1", "exec"), EOPNOTSUPP,
					    "the VMM has CAP_IPC_LOCK");
			else
				/* (the update itself would start: scenario iommufd-update; vhost-vdpa's path B is
				 * refused after the preflight, which says what could move) */
				expect_desc("update-preflight-passes-path-b-refused", v, update_start_path(v, "iof1", "exec", "B"),
				    EOPNOTSUPP, "the iommufd mappings could move (1024 kB pinned, the successor needs RLIMIT_MEMLOCK "
				    "2097152 bytes), but path B is for vhost-vdpa devices");
		}
		/* a plain IOMMU_IOAS_MAP of anonymous memory in the same IOAS */
		anon = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (anon != MAP_FAILED) {
			struct decl both[2] = { file, { IOVA_BASE + 2 * size, 65536, "va", NULL, (uintptr_t)anon } };

			memset(anon, 1, 65536);
			vm.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
			vm.ioas_id = d.ioas, vm.user_va = (uintptr_t)anon, vm.length = 65536, vm.iova = IOVA_BASE + 2 * size;
			if (expect_ok("map-user-va", ioctl(d.iommufd, IOMMU_IOAS_MAP, &vm)) &&
			    expect_ok("declare-va", vr(declare(v, "iommufd:iommu", d.ioas, devname, both, 2)))) {
				struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = d.ioas, .iova = vm.iova,
							      .length = 65536 };

				expect_desc("update-refused-va-mapping", v, update_start(v, "iof1", "exec"), EOPNOTSUPP,
					    "was made with IOMMU_IOAS_MAP; only IOMMU_IOAS_MAP_FILE");
				expect_ok("unmap-user-va", ioctl(d.iommufd, IOMMU_IOAS_UNMAP, &u));
				expect_ok("declare-again", vr(declare(v, "iommufd:iommu", d.ioas, devname, &file, 1)));
			}
			munmap(anon, 65536);
		}
	}
	/* another instance: the device is held (Busy, naming the holder), /dev/iommu is its own context */
	if (expect_ok("connect-2", vr(vlu_connect(sock, 5000, &v2))) &&
	    expect_ok("register-2", vr(vlu_register(v2, "iof2", false)))) {
		expect_desc("open-vfio-other-instance-busy", v2, vlu_device_open(v2, path, &other, NULL), EBUSY,
			    "held by instance 'iof1'");
		if (expect_ok("open-iommu-other-instance", vr(vlu_device_open(v2, "/dev/iommu", &other, NULL)))) {
			struct stat a, b;

			/* a context of its own: another open file, same node */
			expect_eq("other-iommufd-is-another-file",
				  fstat(other, &a) == 0 && fstat(d.iommufd, &b) == 0 && a.st_rdev == b.st_rdev &&
					  syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, other, d.iommufd) != 0,
				  1);
		}
	}

	/* the VMM lets go of its copies: vlud's keep the context, the IOAS, the binding and the pinned memory */
	munmap((void *)d.bar, EDU_BAR_SIZE);
	d.bar = NULL;
	d.devfd = safe_close(d.devfd);
	d.iommufd = safe_close(d.iommufd);
	expect_eq("vmpin-kept-while-vlud-holds", status_kb(getpid(), "VmPin"), pin1);
	{
		const char *names[2] = { "iommufd:iommu", devname };

		if (!expect_ok("retrieve", vr(vlu_fd_retrieve(v, names, 2, fds))))
			goto out;
		d.iommufd = fds[0], d.devfd = fds[1];
	}
	if (!expect_ok("enable-bar0-retrieved", dev_enable(&d) < 0 ? (errno = ENXIO, -1) : 0))
		goto out;
	dma_roundtrip(&d, memfd, mem, 2 * 4096, 3 * 4096, 0xc3, "retrieved-fds");
	{
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = d.ioas, .iova = IOVA_BASE, .length = size };

		if (expect_ok("unmap", ioctl(d.iommufd, IOMMU_IOAS_UNMAP, &u)))
			expect_eq("vmpin-after-unmap", status_kb(getpid(), "VmPin"), pin0);
	}
	/* released: vlud closes its copies; the device can be opened again (by iof2) */
	{
		json_object *a = json_object_new_object();

		json_object_object_add(a, "name", json_object_new_string("iof1"));
		expect_ok("release", vr(vlu_call(v, "instance.release", a, NULL, 0, 10000, NULL, NULL, NULL)));
		json_object_put(a);
	}
	munmap((void *)d.bar, EDU_BAR_SIZE);
	d.bar = NULL;
	dev_done(&d);
	other = safe_close(other);
	if (v2 && expect_ok("open-vfio-after-release", vr(vlu_device_open(v2, path, &other, NULL)))) {
		struct dev d2 = { .iommufd = -EBADF, .devfd = other };
		const char *n = "ram";
		int ifd = -EBADF;

		expect_node("reopened-fd-is-the-node", other, path);
		other = -EBADF;
		/* iof2's iommufd (no object in it yet) in mm accounting mode, the device on it */
		{
			const char *nm = "iommufd:iommu";

			if (expect_ok("iof2-retrieve-iommufd", vr(vlu_fd_retrieve(v2, &nm, 1, &ifd))))
				d2.iommufd = ifd;
		}
		if (d2.iommufd >= 0 && bind_attach(&d2, true) == 0 &&
		    expect_ok("iof2-store-memfd", vr(vlu_fd_store(v2, &n, &memfd, 1, false)))) {
			struct iommu_ioas_map_file mf2 = { .size = sizeof(mf2), .ioas_id = d2.ioas, .fd = memfd, .length = size,
							   .iova = IOVA_BASE,
							   .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
								    IOMMU_IOAS_MAP_WRITEABLE };
			struct decl file = { IOVA_BASE, size, "file", "ram", (uintptr_t)mem };

			if (expect_ok("iof2-map-file-mm", ioctl(d2.iommufd, IOMMU_IOAS_MAP_FILE, &mf2)) &&
			    expect_ok("iof2-declare", vr(declare(v2, "iommufd:iommu", d2.ioas, devname, &file, 1)))) {
				if (keep_ipc_lock) /* unaccounted in mm mode too: the capability decides */
					expect_desc("update-refused-cap-ipc-lock-mm", v2, update_start(v2, "iof2", "transfer"),
						    EOPNOTSUPP, "the VMM has CAP_IPC_LOCK");
				else
					expect_desc("update-refused-mm-exec", v2, update_start(v2, "iof2", "exec"), EOPNOTSUPP,
						    "uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and exec mode");
				/* transfer mode: the old mm is alive at the call; mm mode charges the new mm alone */
				if (!keep_ipc_lock)
					expect_desc("update-transfer-mm-preflight-passes", v2,
					    update_start_path(v2, "iof2", "transfer", "B"), EOPNOTSUPP,
					    "the iommufd mappings could move (1024 kB pinned, the successor needs RLIMIT_MEMLOCK 1048576 bytes), "
					    "but path B is for vhost-vdpa devices");
			}
		}
		if (d2.bar)
			munmap((void *)d2.bar, EDU_BAR_SIZE);
		d2.bar = NULL;
		dev_done(&d2);
	}
out:
	if (mem != MAP_FAILED)
		munmap(mem, size);
	json_object_put(info);
	json_object_put(o);
	dev_done(&d);
	vlu_close(v2);
	vlu_close(v);
	return failures ? 1 : 0;
}

static int usage(void);

/* ---- vmm: an update-capable VMM through vlud (docs/IOMMUFD.md "The update sequence") ---- */

#define VMM_INST "iofu"
#define VMM_MAGIC 0x1f0d5a7eu
#define VMM_SIZE (1u << 20)

/* what the old image saves for the new one (the state memfd) */
struct vmm_state {
	uint32_t magic, ioas, gen;
	uint8_t seed;     /* the pattern the last DMA check wrote at dst_off */
	uint32_t dst_off;
};

enum vmm_fault {
	VMM_OK,
	VMM_SKIP_CHANGE_PROCESS,
	VMM_DIE_AFTER_CLAIM,
	VMM_DIE_AFTER_CHANGE_PROCESS,
	VMM_FAIL_AFTER_CHANGE_PROCESS, /* moves the charge, then update.ready without iommufd_moved */
	VMM_HANG_AFTER_CHANGE_PROCESS, /* moves the charge, then never sends update.ready */
	VMM_STOP_BEFORE_CLAIM,	       /* stops itself (SIGSTOP) before it connects to claim: vlud in phase claim */
	VMM_STOP_BEFORE_READY,	       /* stops itself after its CHANGE_PROCESS and DMA, before update.ready:
					* vlud in phase restore */
};

struct vmm {
	struct vlu *v;
	struct dev d;
	int memfd;
	uint8_t *mem;
	char devname[64];
	struct vmm_state st;
	json_object *exec_ev; /* update.exec received: exec once vlu_process() returned */
	json_object *reclaim_ev; /* transfer mode: update.rolled-back telling this (old) image to take the
				  * iommufd charge back */
	const char *marker;
	unsigned saved_gen; /* the gen of the last state saved */
	bool mm;	    /* --acct mm: the iommufd in mm accounting mode (IOMMU_OPTION_RLIMIT_MODE 1) */
	bool stay;	    /* --stay-after-commit: this image does not exit when its successor committed */
	/* --stop-at-held-reclaim: told to take the charge back from a successor vlud holds stopped (R14),
	 * this image stops itself (SIGSTOP) before its CHANGE_PROCESS; the scenario restarts vlud meanwhile
	 * and continues it: it takes the charge back, then reattaches to the restarted vlud */
	bool stop_at_reclaim;
	/* --stop-at-save-if FILE: at update.save, if FILE exists, it is removed and this image stops itself
	 * (SIGSTOP) before it saves: vlud in phase save; the scenario kills vlud meanwhile and continues it */
	const char *stop_save_file;
	bool stopped_at_save; /* (that stop happened: update.saved to the killed vlud is expected to fail) */
	/* --fail-exec-if FILE: at update.exec, if FILE exists, it is removed and this image's exec fails (a
	 * binary that does not exist); it calls update.abort (docs/UPDATE.md R1: resume), then waits for the
	 * verdict on its own connection (failed_exec) and checks that it serves on with its charge (resume_check) */
	const char *fail_exec_file;
	bool failed_exec, resume_check;
	/* --reattach-when-vlud-lost: the connection gone (vlud killed), this image reattaches to the
	 * restarted vlud instead of exiting (vmm_lost()) */
	bool reattach_on_loss;
	const char *role; /* "first", or a new image's role (vmm_successor()) */
	/* --first-gen N: the first image's gen (0 by default; its TAP names vmm-N-first.*, its first save N+1):
	 * a second first VMM in one scenario gets names of its own */
	unsigned first_gen;
	const char *sock;
};

static volatile sig_atomic_t vmm_stop;

static void vmm_on_term(int sig)
{
	(void)sig;
	vmm_stop = 1;
}

/* "ready PID GEN ROLE" in the marker file the scenario waits for */
static void vmm_mark(const char *marker, const char *role, unsigned gen)
{
	FILE *f = fopen(marker, "we");

	if (f) {
		fprintf(f, "ready %d %u %s\n", (int)getpid(), gen, role);
		fclose(f);
	}
}

static void vmm_event(struct vlu *v, const char *name, json_object *ev, void *userdata)
{
	struct vmm *m = userdata;

	printf("# %s: event %s\n", cmd, name);
	if (strcmp(name, "update.save") == 0) {
		struct vmm_state s = m->st;
		int fd = memfd_create("vlu-iommufd-state", MFD_CLOEXEC | MFD_ALLOW_SEALING), r = -EIO;

		/* nothing to quiesce for the device: its IOAS never changes; this VMM makes no IOAS change from
		 * here on */
		if (m->stop_save_file && unlink(m->stop_save_file) == 0) {
			printf("# %s: stopping before the save (--stop-at-save-if %s)\n", cmd, m->stop_save_file);
			fflush(stdout);
			raise(SIGSTOP);
			m->stopped_at_save = true;
		}
		s.gen++;
		m->saved_gen = s.gen;
		if (fd >= 0 && write(fd, &s, sizeof(s)) == (ssize_t)sizeof(s) &&
		    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0)
			r = vlu_update_saved(v, fd, sizeof(s), NULL);
		if (m->stopped_at_save) {
			/* continued by the scenario, which killed vlud meanwhile: nobody takes the save */
			m->stopped_at_save = false;
			printf("# %s: update.saved to the killed vlud: %s\n", cmd, r < 0 ? strerror(-r) : "answered");
			tap(r < 0, "update-saved-%u-to-the-killed-vlud-fails", s.gen);
		} else {
			char n[32];

			snprintf(n, sizeof(n), "update-saved-%u", s.gen);
			expect_ok(n, vr(r));
		}
		safe_close(fd);
	} else if (strcmp(name, "update.exec") == 0) {
		json_object_put(m->exec_ev);
		m->exec_ev = json_object_get(ev);
	} else if (strcmp(name, "update.rolled-back") == 0 || strcmp(name, "update.completed") == 0) {
		json_object *data = NULL, *io = NULL;

		printf("# %s: %s\n", cmd, json_object_to_json_string(ev));
		json_object_object_get_ex(ev, "data", &data);
		if (strcmp(name, "update.rolled-back") == 0 && json_object_object_get_ex(data, "iommufd", &io) && io) {
			json_object_put(m->reclaim_ev);
			m->reclaim_ev = json_object_get(data);
		}
		/* exec mode, this image's exec failed and it aborted: the verdict, told to it directly */
		if (strcmp(name, "update.completed") == 0 && m->failed_exec) {
			expect_str("failed-exec.verdict", jstr(data, "result"), "rolled-back");
			m->failed_exec = false;
			m->resume_check = true;
		}
		/* transfer mode: the successor committed; this image is done, its charge went to the successor
		 * (VmLck too in mm mode; 0 in user mode: user->locked_vm is in no /proc file) */
		if (strcmp(name, "update.completed") == 0 && jstr(data, "result") && strcmp(jstr(data, "result"), "ok") == 0) {
			expect_eq("old.vmpin-after-commit", status_kb(getpid(), "VmPin"), 0);
			expect_eq("old.vmlck-after-commit", status_kb(getpid(), "VmLck"), 0);
			if (m->stay) {
				printf("# %s: the successor committed: staying until SIGTERM (--stay-after-commit)\n", cmd);
			} else {
				printf("# %s: the successor committed: exiting\n", cmd);
				vmm_stop = 1;
			}
		}
	}
}

/* the State: letter of /proc/PID/status ('T' stopped, 'S' sleeping, ...), 0 if unreadable */
static char proc_state(pid_t pid)
{
	char path[64], line[256], st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "State:", 6) == 0) {
			sscanf(line + 6, " %c", &st);
			break;
		}
	fclose(f);
	return st;
}

/* transfer mode, rolled back after the successor's claim: this (old) image takes the charge back with
 * its own IOMMU_IOAS_CHANGE_PROCESS, checks its device and tells vlud (update.ready, the verdict).  When
 * vlud says it holds the successor (successor_held: mm accounting, docs/UPDATE.md R14), the successor is
 * checked to be alive and stopped, with the charge, before the call, and without it after: the charge
 * comes from a live mm. */
static void vmm_reclaim(struct vmm *m, json_object *ev)
{
	json_object *h = NULL;
	bool held = json_object_object_get_ex(ev, "successor_held", &h) && json_object_get_boolean(h);
	pid_t np = (pid_t)jint(ev, "successor_pid", 0);
	struct iommu_ioas_change_process chp = { .size = sizeof(chp) };
	json_object *extra = json_object_new_object(), *moved = json_object_new_array(), *verdict = NULL;
	static char c[64];
	int k;

	/* this image again, after the update of that gen failed */
	m->st.gen = m->saved_gen;
	snprintf(c, sizeof(c), "vmm-%u-reclaimed", m->st.gen);
	cmd = c;
	printf("# %s: told to take the iommufd charge back (VmPin %lld kB now; successor %d %s)\n", cmd,
	       status_kb(getpid(), "VmPin"), (int)np, held ? "held by vlud" : "not held");
	if (held) {
		char st = 0;

		/* the SIGSTOP is sent before the event: give its delivery a moment */
		for (int i = 0; i < 100 && (st = proc_state(np)) != 'T'; i++)
			usleep(20000);
		if (st == 'T')
			tap(true, "reclaim.successor-stopped");
		else
			tap_fail("reclaim.successor-stopped", "pid %d state '%c'", (int)np, st ? st : '?');
		long long pin = status_kb(np, "VmPin"), lck = status_kb(np, "VmLck");

		/* where the charge is: with the successor when it called CHANGE_PROCESS, else still here
		 * (--skip-change-process); the values are the scenario's to assert per case, their sums are the
		 * whole charge either way */
		tap(pin >= 0, "reclaim.successor-vmpin-before=%lld", pin);
		tap(lck >= 0, "reclaim.successor-vmlck-before=%lld", lck);
		expect_eq("reclaim.charge-before", pin + status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
		expect_eq("reclaim.vmlck-charge-before", lck + status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
	}
	if (held && m->stop_at_reclaim) {
		char st;

		printf("# %s: stopping before the take-back (--stop-at-held-reclaim)\n", cmd);
		raise(SIGSTOP);
		/* continued by the scenario, vlud restarted meanwhile: the restarted vlud keeps the successor
		 * stopped until this image reattached (docs/UPDATE.md R14) */
		st = proc_state(np);
		if (st == 'T')
			tap(true, "reclaim.successor-stopped-after-vlud-restart");
		else
			tap_fail("reclaim.successor-stopped-after-vlud-restart", "pid %d state '%c'", (int)np, st ? st : '?');
		expect_eq("reclaim.successor-vmpin-after-vlud-restart", status_kb(np, "VmPin"), VMM_SIZE / 1024);
	}
	expect_ok("reclaim.change-process", ioctl(m->d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &chp));
	if (held) {
		/* uncharged from its live mm (a dead one: the second kernel bug in mm mode) */
		expect_eq("reclaim.successor-vmpin-after", status_kb(np, "VmPin"), 0);
		expect_eq("reclaim.successor-vmlck-after", status_kb(np, "VmLck"), 0);
		{
			char st = proc_state(np);

			/* alive and stopped until vlud has verified this take-back */
			if (st == 'T')
				tap(true, "reclaim.successor-still-stopped");
			else
				tap_fail("reclaim.successor-still-stopped", "pid %d state '%c'", (int)np, st ? st : '?');
		}
	}
	expect_eq("reclaim.vmpin", status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
	/* mm mode: VmLck is this image's again (user mode: never charged to VmLck) */
	expect_eq("reclaim.vmlck", status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
	m->st.seed = (uint8_t)(m->st.seed + 0x11);
	dma_roundtrip(&m->d, m->memfd, m->mem, 5 * 4096, 6 * 4096, m->st.seed, "reclaim");
	m->st.dst_off = 6 * 4096;
	json_object_array_add(moved, json_object_new_string("iommufd:iommu"));
	json_object_object_add(extra, "iommufd_moved", moved);
	if (held && m->stop_at_reclaim) {
		struct vlu *nv = NULL;

		/* the vlud that told us is gone (its restarted successor ended the update without a verdict to
		 * send): the charge is back (above), and only now do we reattach, the order a VMM keeps so that
		 * the restarted vlud may kill the held successor at our reattach */
		json_object_put(extra);
		k = vlu_update_ready_with(m->v, NULL, NULL, &verdict);
		printf("# %s: update.ready to the killed vlud: %s\n", cmd, k < 0 ? strerror(-k) : "answered");
		tap(k < 0, "reclaim.ready-to-the-killed-vlud-fails");
		json_object_put(verdict);
		for (int i = 0; i < 50 && !nv; i++) {
			k = vlu_connect(m->sock, 5000, &nv);
			if (k == 0 && (k = vlu_register(nv, VMM_INST, true)) < 0) {
				vlu_close(nv);
				nv = NULL;
			}
			if (!nv)
				usleep(100000);
		}
		if (!expect_ok("reclaim.reattached", nv ? 0 : vr(k))) {
			vmm_stop = 1;
			return;
		}
		vlu_close(m->v);
		m->v = nv;
		vlu_set_event_callback(m->v, vmm_event, m);
		vmm_mark(m->marker, "reattached", m->st.gen);
		return;
	}
	k = vlu_update_ready_with(m->v, NULL, extra, &verdict);
	json_object_put(extra);
	if (expect_ok("reclaim.ready", vr(k))) {
		printf("# %s: verdict %s\n", cmd, json_object_to_json_string(verdict));
		expect_str("reclaim.verdict", jstr(verdict, "result"), "rolled-back");
	}
	json_object_put(verdict);
	vmm_mark(m->marker, "reclaimed", m->st.gen);
}

/*
 * --reattach-when-vlud-lost: the connection to vlud is gone in the middle of an update (vlud killed; no
 * verdict, no update.rolled-back, no update.ready to answer).  Like a VMM that meets a restarted vlud
 * (docs/IOMMUFD.md "vlud restarted during a mixed update"), this image reattaches FIRST: the restarted vlud
 * reserves the instance to the process that holds the iommufd charge (docs/UPDATE.md "An update of
 * iommufd/VFIO devices"), so a refusal (Busy) means another process holds it and this one must not take
 * it; it retries every 200 ms until SIGTERM (at most 60 s).  Once the instance is its own it calls
 * IOMMU_IOAS_CHANGE_PROCESS (a no-op when the charge never left it: the kernel's need_charge_update()),
 * checks its counters and its device (an edu DMA from its own mapping) and serves on (marker
 * "ROLE-reattached").  Returns 0 when reattached, -1 when not (SIGTERM or the 60 s).
 */
static int vmm_lost(struct vmm *m)
{
	struct iommu_ioas_change_process chp = { .size = sizeof(chp) };
	static char c[64], mrole[64];
	struct vlu *nv = NULL;
	unsigned refused = 0;
	int k = 0;

	/* an old image: the gen of the update it saved for */
	if (m->saved_gen > m->st.gen)
		m->st.gen = m->saved_gen;
	snprintf(c, sizeof(c), "vmm-%u-%s", m->st.gen, m->role);
	cmd = c;
	printf("# %s: vlud is gone in the middle of an update: reattaching (VmPin %lld kB, VmLck %lld kB)\n", cmd,
	       status_kb(getpid(), "VmPin"), status_kb(getpid(), "VmLck"));
	for (int i = 0; i < 300 && !vmm_stop && !nv; i++) {
		k = vlu_connect(m->sock, 5000, &nv);
		if (k == 0 && (k = vlu_register(nv, VMM_INST, true)) < 0) {
			vlu_close(nv);
			nv = NULL;
		}
		if (nv)
			break;
		if (k == -EBUSY && refused++ % 10 == 0)
			printf("# %s: reattach refused (%s), %u time(s): the instance is another process's\n", cmd,
			       strerror(-k), refused);
		fflush(stdout);
		usleep(200000);
	}
	if (!nv) {
		/* SIGTERM while refused: the charge was never touched; the scenario reads the counters */
		printf("# %s: not reattached (%u refusals, last %s); VmPin %lld kB, VmLck %lld kB\n", cmd, refused,
		       strerror(-k), status_kb(getpid(), "VmPin"), status_kb(getpid(), "VmLck"));
		if (vmm_stop)
			tap(refused > 0, "lost.reattach-refused");
		else
			tap_fail("lost.reattached", "no reattach in 60 s (%u refusals, last %s)", refused, strerror(-k));
		vmm_stop = 1;
		return -1;
	}
	tap(true, "lost.reattached");
	printf("# %s: reattached after %u refusal(s)\n", cmd, refused);
	vlu_close(m->v);
	m->v = nv;
	vlu_set_event_callback(m->v, vmm_event, m);
	expect_ok("lost.change-process", ioctl(m->d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &chp));
	expect_eq("lost.vmpin", status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
	expect_eq("lost.vmlck", status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
	m->st.seed = (uint8_t)(m->st.seed + 0x11);
	dma_roundtrip(&m->d, m->memfd, m->mem, 5 * 4096, 6 * 4096, m->st.seed, "lost");
	m->st.dst_off = 6 * 4096;
	snprintf(mrole, sizeof(mrole), "%s-reattached", m->role);
	vmm_mark(m->marker, mrole, m->st.gen);
	return 0;
}

/* serve vlud until SIGTERM (or an exec) */
static int vmm_loop(struct vmm *m)
{
	vlu_set_event_callback(m->v, vmm_event, m);
	while (!vmm_stop) {
		struct pollfd p = { .fd = vlu_get_fd(m->v), .events = POLLIN };
		int r = poll(&p, 1, 200);

		if (r < 0 && errno != EINTR)
			return tap_fail("poll", "%s", strerror(errno)), 1;
		if (r > 0 && vlu_process(m->v) < 0) {
			printf("# %s: vlud closed the connection\n", cmd);
			if (m->reattach_on_loss && !vmm_stop && vmm_lost(m) == 0)
				continue;
			break;
		}
		if (m->reclaim_ev) {
			json_object *ev = TAKE_PTR(m->reclaim_ev);

			vmm_reclaim(m, ev);
			json_object_put(ev);
		}
		if (m->resume_check) {
			/* the update rolled back in phase exec: nothing moved; this image still holds the charge
			 * (VmPin, VmLck in mm mode) and its device works */
			m->resume_check = false;
			expect_eq("failed-exec.vmpin", status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
			expect_eq("failed-exec.vmlck", status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
			m->st.seed = (uint8_t)(0x80 + m->st.gen);
			dma_roundtrip(&m->d, m->memfd, m->mem, 2 * 4096, (16 + m->st.gen) * 4096, m->st.seed, "failed-exec");
			vmm_mark(m->marker, "resumed", m->st.gen);
		}
		if (m->exec_ev && m->fail_exec_file && unlink(m->fail_exec_file) == 0) {
			json_object *ev = TAKE_PTR(m->exec_ev), *bad = NULL, *data = NULL, *a;
			int k;

			/* the event as vlud sent it, but a binary that does not exist: vlu_update_exec() fails the
			 * way a real exec does (ENOENT), after the save: vlud is in phase exec */
			if (json_object_deep_copy(ev, &bad, NULL) == 0 && json_object_object_get_ex(bad, "data", &data))
				json_object_object_add(data, "binary", json_object_new_string("/nonexistent/vlu-iommufd"));
			printf("# %s: exec'ing a binary that does not exist (--fail-exec-if %s)\n", cmd, m->fail_exec_file);
			fflush(stdout);
			k = bad ? vlu_update_exec(bad) : -ENOMEM;
			expect_eq("failed-exec.enoent", k, -ENOENT);
			json_object_put(bad);
			json_object_put(ev);
			/* as minivmm does: the exec failed, vlud is asked to roll back */
			a = json_object_new_object();
			json_object_object_add(a, "instance", json_object_new_string(VMM_INST));
			m->failed_exec = true;
			expect_ok("failed-exec.abort", vr(vlu_call(m->v, "update.abort", a, NULL, 0, 10000, NULL, NULL, NULL)));
			json_object_put(a);
			continue;
		}
		if (m->exec_ev) {
			int k;

			printf("# %s: exec'ing the new image\n", cmd);
			fflush(stdout);
			k = vlu_update_exec(m->exec_ev);
			/* only on failure */
			tap_fail("update-exec", "%s", strerror(-k));
			json_object_put(TAKE_PTR(m->exec_ev));
		}
	}
	return failures ? 1 : 0;
}

/* the vmm.mappings "ioas" of m (its current address of the memfd) */
static json_object *vmm_ioas(struct vmm *m)
{
	json_object *io = json_object_new_array(), *e = json_object_new_object(), *ms = json_object_new_array(),
		    *ds = json_object_new_array(), *o = json_object_new_object();

	json_object_object_add(o, "iova", json_object_new_int64(IOVA_BASE));
	json_object_object_add(o, "size", json_object_new_int64(VMM_SIZE));
	json_object_object_add(o, "kind", json_object_new_string("file"));
	json_object_object_add(o, "memfd", json_object_new_string("ram"));
	json_object_object_add(o, "offset", json_object_new_int64(0));
	json_object_object_add(o, "uaddr", json_object_new_int64((int64_t)(uintptr_t)m->mem));
	json_object_array_add(ms, o);
	json_object_array_add(ds, json_object_new_string(m->devname));
	json_object_object_add(e, "iommufd", json_object_new_string("iommufd:iommu"));
	json_object_object_add(e, "ioas_id", json_object_new_int64(m->d.ioas));
	json_object_object_add(e, "devices", ds);
	json_object_object_add(e, "mappings", ms);
	json_object_array_add(io, e);
	return io;
}

/* the first image: device.open of both nodes, bind, attach, MAP_FILE, the memfd stored, the mappings
 * declared, a DMA check; then it serves vlud */
static int vmm_first(struct vmm *m, const char *sock, const char *path, const char *marker)
{
	struct iommu_ioas_map_file mf = { .size = sizeof(mf) };
	const char *n = "ram";
	json_object *a;

	static char c[32];

	snprintf(c, sizeof(c), "vmm-%u-first", m->first_gen);
	cmd = c;
	m->role = "first";
	if (!expect_ok("connect", vr(vlu_connect(sock, 5000, &m->v))) || !expect_ok("register", vr(vlu_register(m->v, VMM_INST, false))))
		return 1;
	if (!expect_ok("open-iommu", vr(vlu_device_open(m->v, "/dev/iommu", &m->d.iommufd, NULL))) ||
	    !expect_ok("open-vfio", vr(vlu_device_open(m->v, path, &m->d.devfd, NULL))))
		return 1;
	/* --acct mm: IOMMU_OPTION_RLIMIT_MODE 1 before any object (CAP_SYS_RESOURCE: kept; CAP_IPC_LOCK is
	 * dropped, else the mapping would be unaccounted whatever the mode) */
	if (bind_attach(&m->d, m->mm) < 0)
		return 1;
	m->memfd = memfd_create("vlu-iommufd-ram", MFD_CLOEXEC);
	if (!expect_ok("memfd", m->memfd < 0 || ftruncate(m->memfd, VMM_SIZE) < 0 ? -1 : 0))
		return 1;
	m->mem = mmap(NULL, VMM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
	if (!expect_ok("mmap-memfd", m->mem == MAP_FAILED ? -1 : 0))
		return 1;
	mf.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	mf.ioas_id = m->d.ioas, mf.fd = m->memfd, mf.length = VMM_SIZE, mf.iova = IOVA_BASE;
	if (!expect_ok("map-file", ioctl(m->d.iommufd, IOMMU_IOAS_MAP_FILE, &mf)))
		return 1;
	/* VmPin in every mode; VmLck (mm->locked_vm) in mm mode only */
	expect_eq("vmpin-charged", status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
	expect_eq(m->mm ? "vmlck-charged" : "vmlck-uncharged", status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
	if (!expect_ok("store-memfd", vr(vlu_fd_store(m->v, &n, &m->memfd, 1, false))))
		return 1;
	a = json_object_new_object();
	json_object_object_add(a, "mappings", json_object_new_array());
	json_object_object_add(a, "ioas", vmm_ioas(m));
	if (!expect_ok("declare", vr(vlu_call(m->v, "vmm.mappings", a, NULL, 0, 10000, NULL, NULL, NULL)))) {
		json_object_put(a);
		return 1;
	}
	json_object_put(a);
	m->st = (struct vmm_state){ .magic = VMM_MAGIC, .ioas = m->d.ioas, .gen = m->first_gen, .seed = 0x21,
				    .dst_off = 4096 };
	dma_roundtrip(&m->d, m->memfd, m->mem, 0, m->st.dst_off, m->st.seed, "before");
	vmm_mark(marker, "first", m->st.gen);
	return vmm_loop(m);
}

/* a new image (exec'ed by the old one, or the previous binary restarted by vlud's rollback): claim, map
 * the memfd at a new address, IOMMU_IOAS_CHANGE_PROCESS on every iommufd the claim names, check the data
 * the old image's DMA left and DMA again, update.ready with iommufd_moved and the new uaddr */
/* the successor's claim done with: the replies, and every claimed fd but the three it keeps */
static void claimed_end(json_object *verdict, json_object *info, int *fds, size_t nfds, int ifd, int dfd, int mfd)
{
	json_object_put(verdict);
	json_object_put(info);
	for (size_t i = 0; i < nfds; i++)
		if ((int)i != ifd && (int)i != dfd && (int)i != mfd)
			safe_close(fds[i]);
	free(fds);
}

static int vmm_successor(struct vmm *m, const char *sock, const char *marker, enum vmm_fault fault)
{
	const char *token = vlu_update_token(), *inst = getenv("VLU_UPDATE_INSTANCE");
	json_object *info = NULL, *io = NULL, *cp = NULL, *moved = json_object_new_array(), *extra, *verdict = NULL;
	int *fds = NULL, ifd, dfd, mfd, sfd, k;
	size_t nfds = 0;
	bool rollback = false;
	static char c[64];
	uint8_t pat[XFER];
	const char *role;

	/* (named by pid until the saved state says which image this is) */
	snprintf(c, sizeof(c), "vmm-pid%d-%.6s", (int)getpid(), token ? token : "?");
	cmd = c;
	if (fault == VMM_STOP_BEFORE_CLAIM) {
		/* vlud waits for this claim (phase claim); the scenario kills it meanwhile: the restarted vlud
		 * ended the update, and the claim is refused (nothing is handed over, nothing moved) */
		snprintf(c, sizeof(c), "vmm-pid%d-stop-claim", (int)getpid());
		printf("# %s: stopping before the claim (--stop-before-claim)\n", cmd);
		fflush(stdout);
		vmm_mark(marker, "stopped-before-claim", 0);
		raise(SIGSTOP);
	}
	if (!expect_ok("connect", vr(vlu_connect(sock, 5000, &m->v))))
		return 1;
	k = vlu_update_claim(m->v, inst && *inst ? inst : VMM_INST, token, &info, &fds, &nfds);
	if (fault == VMM_STOP_BEFORE_CLAIM) {
		printf("# %s: claim after vlud's restart: %s\n", cmd, k < 0 ? strerror(-k) : "accepted");
		tap(k < 0, "claim-refused-after-vlud-restart");
		printf("# %s: VmPin %lld kB, VmLck %lld kB; exiting\n", cmd, status_kb(getpid(), "VmPin"),
		       status_kb(getpid(), "VmLck"));
		if (k >= 0) {
			for (size_t i = 0; i < nfds; i++)
				safe_close(fds[i]);
			free(fds);
			json_object_put(info);
		}
		return k < 0 ? 0 : 1;
	}
	if (!expect_ok("claim", vr(k)))
		return 1;
	if (json_object_object_get_ex(info, "iommufd", &io) && io) {
		json_object *rb;

		rollback = json_object_object_get_ex(io, "rollback", &rb) && json_object_get_boolean(rb);
		json_object_object_get_ex(io, "change_process", &cp);
	}
	sfd = vlu_update_claim_fd(info, "update:state");
	if (sfd < 0 || pread(fds[sfd], &m->st, sizeof(m->st), 0) != (ssize_t)sizeof(m->st) || m->st.magic != VMM_MAGIC) {
		tap_fail("state", "no saved state");
		return 1;
	}
	role = rollback ? "restarted" : fault == VMM_SKIP_CHANGE_PROCESS ? "skip" : fault == VMM_DIE_AFTER_CLAIM ? "die"
	       : fault == VMM_DIE_AFTER_CHANGE_PROCESS ? "die-moved" : fault == VMM_FAIL_AFTER_CHANGE_PROCESS ? "fail-moved"
	       : fault == VMM_HANG_AFTER_CHANGE_PROCESS ? "hang-moved" : fault == VMM_STOP_BEFORE_READY ? "stop-ready"
	       : "successor";
	m->role = role;
	snprintf(c, sizeof(c), "vmm-%u-%s", m->st.gen, role);
	cmd = c;
	tap(true, "claim");
	printf("# %s: pid %d claimed: %s\n", cmd, (int)getpid(), json_object_to_json_string(io));
	if (fault == VMM_DIE_AFTER_CLAIM) {
		printf("# %s: dying after the claim, before update.ready\n", cmd);
		fflush(stdout);
		_exit(3);
	}
	expect_eq("told-to-change-process", cp && json_object_array_length(cp) == 1 &&
		  strcmp(json_object_get_string(json_object_array_get_idx(cp, 0)), "iommufd:iommu") == 0, 1);
	/* vlud read the context's mode (IOMMU_OPTION RLIMIT_MODE, OP_GET on its copy): the one this VMM set */
	expect_str("claim-accounting", jstr(io, "accounting"), m->mm ? "mm" : "user");
	ifd = vlu_update_claim_fd(info, "iommufd:iommu");
	dfd = vlu_update_claim_fd(info, m->devname);
	mfd = vlu_update_claim_fd(info, "ram");
	if (!expect_ok("claimed-fds", ifd < 0 || dfd < 0 || mfd < 0 ? (errno = ENOENT, -1) : 0))
		return 1;
	m->d.iommufd = fds[ifd], m->d.devfd = fds[dfd], m->memfd = fds[mfd], m->d.ioas = m->st.ioas;
	/* another address than the old image's: a hint far from where it is usually put */
	m->mem = mmap((void *)(uintptr_t)(0x7e0000000000ULL + ((uint64_t)getpid() << 24)), VMM_SIZE,
		      PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
	if (!expect_ok("mmap-memfd", m->mem == MAP_FAILED ? -1 : 0))
		return 1;
	printf("# %s: memfd mapped at %p\n", cmd, (void *)m->mem);
	edu_pattern(m->st.seed, pat, XFER);
	/* what the previous image's DMA wrote through the IOMMU is in guest RAM, seen at the new address */
	if (memcmp(m->mem + m->st.dst_off, pat, XFER) == 0)
		tap(true, "data-kept");
	else
		tap_fail("data-kept", "the previous DMA's copy at offset %#x is not in the memfd", m->st.dst_off);
	expect_eq("vmpin-before-change-process", status_kb(getpid(), "VmPin"), 0);
	expect_eq("vmlck-before-change-process", status_kb(getpid(), "VmLck"), 0);
	if (fault == VMM_SKIP_CHANGE_PROCESS) {
		printf("# %s: NOT calling IOMMU_IOAS_CHANGE_PROCESS, but saying so in update.ready\n", cmd);
	} else {
		struct iommu_ioas_change_process chp = { .size = sizeof(chp) };
		double t0 = now_s();

		if (!expect_ok("change-process", ioctl(m->d.iommufd, IOMMU_IOAS_CHANGE_PROCESS, &chp)))
			return 1;
		printf("# %s: IOMMU_IOAS_CHANGE_PROCESS took %.2f ms\n", cmd, (now_s() - t0) * 1000);
		expect_eq("vmpin-after-change-process", status_kb(getpid(), "VmPin"), VMM_SIZE / 1024);
		/* mm mode: the locked_vm charge moved to this mm too (user mode: user->locked_vm, not in /proc) */
		expect_eq("vmlck-after-change-process", status_kb(getpid(), "VmLck"), m->mm ? VMM_SIZE / 1024 : 0);
		if (fault == VMM_DIE_AFTER_CHANGE_PROCESS) {
			printf("# %s: dying with the charge, before update.ready\n", cmd);
			fflush(stdout);
			_exit(4);
		}
		if (fault == VMM_HANG_AFTER_CHANGE_PROCESS) {
			/* vlud's restore deadline passes; it stops (mm mode: R14) or kills this process */
			printf("# %s: keeping the charge and never sending update.ready (pid %d)\n", cmd, (int)getpid());
			fflush(stdout);
			vmm_mark(marker, role, m->st.gen);
			while (!vmm_stop)
				pause();
			return 1;
		}
	}
	/* --fail-after-change-process: the charge moved, but update.ready names no iommufd moved (a
	 * verification failure at vlud: R5, or R14 in mm mode) */
	if (fault != VMM_FAIL_AFTER_CHANGE_PROCESS)
		json_object_array_add(moved, json_object_new_string("iommufd:iommu"));
	else {
		printf("# %s: the charge moved, but update.ready will not say so (pid %d)\n", cmd, (int)getpid());
		vmm_mark(marker, role, m->st.gen);
	}
	if (!expect_ok("enable-bar0", dev_enable(&m->d) < 0 ? (errno = ENXIO, -1) : 0))
		return 1;
	m->st.seed = (uint8_t)(0x40 + m->st.gen);
	/* a page of its own per image: a failed successor's DMA must not overwrite what the restarted previous
	 * binary checks (the saved state's dst_off) */
	m->st.dst_off = (8 + m->st.gen) * 4096;
	dma_roundtrip(&m->d, m->memfd, m->mem, 2 * 4096, m->st.dst_off, m->st.seed, "after");
	extra = json_object_new_object();
	json_object_object_add(extra, "iommufd_moved", moved);
	json_object_object_add(extra, "ioas", vmm_ioas(m));
	if (fault == VMM_STOP_BEFORE_READY) {
		/* vlud waits for update.ready (phase restore), the charge moved to this process; the scenario
		 * kills vlud meanwhile, and the restarted vlud reserves the instance to this process */
		printf("# %s: stopping before update.ready, the charge moved (pid %d)\n", cmd, (int)getpid());
		fflush(stdout);
		vmm_mark(marker, role, m->st.gen);
		raise(SIGSTOP);
	}
	k = vlu_update_ready_with(m->v, NULL, extra, &verdict);
	json_object_put(extra);
	if (fault == VMM_STOP_BEFORE_READY) {
		printf("# %s: update.ready to the killed vlud: %s\n", cmd, k < 0 ? strerror(-k) : "answered");
		tap(k < 0, "ready-to-the-killed-vlud-fails");
		claimed_end(verdict, info, fds, nfds, ifd, dfd, mfd);
		/* the instance is this process's again once it reattached (it holds the charge) */
		if (k >= 0 || vmm_lost(m) < 0)
			return 1;
		return vmm_loop(m);
	} else if (expect_ok("ready", vr(k))) {
		const char *res = jstr(verdict, "result");

		printf("# %s: verdict %s\n", cmd, json_object_to_json_string(verdict));
		/* the restarted previous binary ends a rolled-back update; a failed one gets no verdict (it is
		 * stopped or killed: the verdict comes when the old VMM took back) */
		if (fault == VMM_FAIL_AFTER_CHANGE_PROCESS)
			expect_eq("no-verdict", res != NULL, 0);
		else
			expect_str("verdict", res, rollback ? "rolled-back" : "ok");
	}
	claimed_end(verdict, info, fds, nfds, ifd, dfd, mfd);
	vmm_mark(marker, role, m->st.gen);
	return vmm_loop(m);
}

/*
 * vmm SOCKET DEV BDF LOG MARKER [--acct user|mm] [--stay-after-commit] [--stop-at-held-reclaim]
 *     [--reattach-when-vlud-lost] [--stop-at-save-if FILE] [--first-gen N]
 *     [--skip-change-process|--die-after-claim|--die-after-change-process|
 *       --fail-after-change-process|--hang-after-change-process|--stop-before-claim|--stop-before-ready]:
 * exec or transfer mode (the old image exits when the successor committed, and takes the charge back
 * when told to by a rollback: update.rolled-back with "iommufd").  stdout appended to LOG (the
 * restarted previous binary, spawned by vlud, writes there too); MARKER gets "ready PID GEN ROLE" when the
 * image serves.  --acct mm (default user): the first image sets IOMMU_OPTION_RLIMIT_MODE 1 on its fresh
 * iommufd (mm accounting: VmLck charged with VmPin), and every image asserts VmLck as well (a successor
 * needs the option too, to know what to expect: the claim says the mode, which it checks against it).
 * --stay-after-commit: an old image whose successor committed (transfer mode) stays until SIGTERM instead
 * of exiting, so that its /proc counters can be read.  --stop-at-held-reclaim: an old image told to take
 * the charge back from a successor vlud holds stopped (docs/UPDATE.md R14) stops itself (SIGSTOP) before
 * its CHANGE_PROCESS; continued (by the scenario, after it restarted vlud), it checks the successor still
 * stopped and charged, takes the charge back, and reattaches to the restarted vlud (marker "reattached")
 * instead of sending update.ready.  --reattach-when-vlud-lost: an image whose connection to vlud is gone (vlud
 * killed) reattaches to the restarted vlud instead of exiting: reattach first, then CHANGE_PROCESS and a DMA
 * check (vmm_lost()).  --stop-at-save-if FILE: at an update.save while FILE exists, FILE is removed and the
 * image stops itself (SIGSTOP) before it saves (vlud in phase save).  --stop-before-claim: a new image stops
 * itself before it connects to claim (phase claim; continued, it expects the claim refused and exits);
 * --stop-before-ready: after its CHANGE_PROCESS and DMA, before update.ready (phase restore; continued, it
 * expects update.ready to fail and reattaches as vmm_lost() does).  --first-gen N: the first image starts at
 * gen N (TAP names vmm-N-first.*, marker "ready PID N first"), for a second first VMM in one scenario.
 * --fail-exec-if FILE: at an update.exec while FILE exists, FILE is removed and the image's exec fails (a
 * binary that does not exist: ENOENT); it calls update.abort, expects the verdict rolled-back on its own
 * connection, then checks its VmPin/VmLck and a DMA (TAP <image>.failed-exec.*) and marks "ready PID GEN
 * resumed" (exec mode; given to the first image, every image of its command line has it).  The fault
 * options act in a new image only (given as update.start's argv); each option at most once.
 */
static int vmm_main(int argc, char **argv)
{
	struct vmm m = { .d = { .iommufd = -EBADF, .devfd = -EBADF }, .memfd = -EBADF, .mem = MAP_FAILED, .role = "first" };
	enum vmm_fault fault = VMM_OK;
	bool acct_seen = false;
	int fd, r;

	if (argc < 7)
		return usage();
	for (int i = 7; i < argc; i++) {
		enum vmm_fault f = VMM_OK;

		if (strcmp(argv[i], "--acct") == 0 && !acct_seen && i + 1 < argc &&
		    (strcmp(argv[i + 1], "user") == 0 || strcmp(argv[i + 1], "mm") == 0)) {
			m.mm = strcmp(argv[++i], "mm") == 0;
			acct_seen = true;
			continue;
		}
		if (strcmp(argv[i], "--stay-after-commit") == 0 && !m.stay) {
			m.stay = true;
			continue;
		}
		if (strcmp(argv[i], "--stop-at-held-reclaim") == 0 && !m.stop_at_reclaim) {
			m.stop_at_reclaim = true;
			continue;
		}
		if (strcmp(argv[i], "--reattach-when-vlud-lost") == 0 && !m.reattach_on_loss) {
			m.reattach_on_loss = true;
			continue;
		}
		if (strcmp(argv[i], "--first-gen") == 0 && i + 1 < argc) {
			m.first_gen = (unsigned)strtoul(argv[++i], NULL, 10);
			continue;
		}
		if (strcmp(argv[i], "--stop-at-save-if") == 0 && !m.stop_save_file && i + 1 < argc) {
			m.stop_save_file = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--fail-exec-if") == 0 && !m.fail_exec_file && i + 1 < argc) {
			m.fail_exec_file = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--skip-change-process") == 0)
			f = VMM_SKIP_CHANGE_PROCESS;
		else if (strcmp(argv[i], "--die-after-claim") == 0)
			f = VMM_DIE_AFTER_CLAIM;
		else if (strcmp(argv[i], "--die-after-change-process") == 0)
			f = VMM_DIE_AFTER_CHANGE_PROCESS;
		else if (strcmp(argv[i], "--fail-after-change-process") == 0)
			f = VMM_FAIL_AFTER_CHANGE_PROCESS;
		else if (strcmp(argv[i], "--hang-after-change-process") == 0)
			f = VMM_HANG_AFTER_CHANGE_PROCESS;
		else if (strcmp(argv[i], "--stop-before-claim") == 0)
			f = VMM_STOP_BEFORE_CLAIM;
		else if (strcmp(argv[i], "--stop-before-ready") == 0)
			f = VMM_STOP_BEFORE_READY;
		if (f == VMM_OK || fault != VMM_OK)
			return usage();
		fault = f;
	}
	fd = open(argv[5], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, 1) < 0)
		return 2;
	close(fd);
	signal(SIGTERM, vmm_on_term);
	snprintf(m.devname, sizeof(m.devname), "vfio:%s", strrchr(argv[3], '/') + 1);
	m.marker = argv[6];
	m.sock = argv[2];
	{
		static char c[32];

		/* (an exec'ed image keeps the pid: its token tells it apart) */
		snprintf(c, sizeof(c), "vmm-pid%d-%.6s", (int)getpid(), vlu_update_token() ? vlu_update_token() : "first");
		cmd = c;
	}
	/* accounted mappings (user or mm mode): every image of this VMM runs without CAP_IPC_LOCK */
	if (!expect_ok("drop-cap-ipc-lock", drop_cap_ipc_lock() < 0 ? -1 : 0))
		return 1;
	if (vlu_update_token())
		r = vmm_successor(&m, argv[2], argv[6], fault);
	else
		r = vmm_first(&m, argv[2], argv[3], argv[6]);
	printf("# %s: pid %d exits (%d)\n", cmd, (int)getpid(), r);
	if (m.mem != MAP_FAILED)
		munmap(m.mem, VMM_SIZE);
	dev_done(&m.d);
	safe_close(m.memfd);
	vlu_close(m.v);
	return r;
}

static int usage(void)
{
	fprintf(stderr, "usage: vlu-iommufd [--fixed] [--acct user|mm|none] [--size BYTES] [--maps N] change-process|change-process-exec|negative\n"
			"           /dev/vfio/devices/vfioN\n"
			"       vlu-iommufd vlud SOCKET /dev/vfio/devices/vfioN BDF [--keep-ipc-lock]\n"
			"       vlu-iommufd vmm SOCKET /dev/vfio/devices/vfioN BDF LOG MARKER [--acct user|mm]\n"
			"           [--stay-after-commit] [--stop-at-held-reclaim] [--skip-change-process|--die-after-claim|--die-after-change-process|\n"
			"           --fail-after-change-process|--hang-after-change-process|--stop-before-claim|--stop-before-ready]\n"
			"           [--reattach-when-vlud-lost] [--stop-at-save-if FILE] [--fail-exec-if FILE] [--first-gen N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *acct = "user", *s = getenv("VLUD_SCENARIO");
	uint64_t size = 1 << 20;
	unsigned long maps = 1;
	int i = 1;

	if (s && *s)
		suite = s;
	/* one TAP line per write: the output is a pipe to the rig's console; a crash loses no line already
	 * printed, and A's and B's lines never interleave mid-line */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "--child") == 0) {
		static char c[48];
		snprintf(c, sizeof(c), "change-process-%s", argv[3]);
		cmd = c;
		return child_main(atoi(argv[2]));
	}
	if (argc == 7 && strcmp(argv[1], "--exec-child") == 0) {
		static char c[40];
		snprintf(c, sizeof(c), "change-process-exec-%s", argv[2]);
		cmd = c;
		return exec_child_main(argv);
	}
	if (argc >= 2 && strcmp(argv[1], "vmm") == 0)
		return vmm_main(argc, argv);
	if ((argc == 5 || (argc == 6 && strcmp(argv[5], "--keep-ipc-lock") == 0)) && strcmp(argv[1], "vlud") == 0) {
		cmd = argc == 6 ? "vlud-ipc-lock" : "vlud";
		return via_vlud(argv[2], argv[3], argv[4], argc == 6);
	}
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "--fixed") == 0) {
			fixed = true;
			i--;
		} else if (strcmp(argv[i], "--acct") == 0 &&
		    (!strcmp(argv[i + 1], "user") || !strcmp(argv[i + 1], "mm") || !strcmp(argv[i + 1], "none")))
			acct = argv[i + 1];
		else if (strcmp(argv[i], "--size") == 0)
			size = strtoull(argv[i + 1], NULL, 0);
		else if (strcmp(argv[i], "--maps") == 0)
			maps = strtoul(argv[i + 1], NULL, 0);
		else
			return usage();
	}
	if (argc - i != 2 || size == 0 || size % 4096 || size > (64 << 20) || maps < 1 || maps > 4096 ||
	    size % (maps * 4096) || (maps > 1 && strcmp(argv[i], "change-process") != 0))
		return usage();
	cmd = argv[i];
	if (strcmp(cmd, "change-process") == 0) {
		static char c[48];
		if (maps > 1)
			snprintf(c, sizeof(c), "change-process-%s-maps%lu", acct, maps);
		else
			snprintf(c, sizeof(c), "change-process-%s", acct);
		cmd = c;
		return change_process("/proc/self/exe", argv[i + 1], acct, size, (unsigned)maps);
	}
	if (strcmp(cmd, "change-process-exec") == 0) {
		static char c[40];
		snprintf(c, sizeof(c), "change-process-exec-%s", acct);
		cmd = c;
		return change_process_exec("/proc/self/exe", argv[i + 1], acct, size);
	}
	if (strcmp(cmd, "negative") == 0)
		return negative(argv[i + 1]);
	return usage();
}
