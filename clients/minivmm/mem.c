/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mem.c - guest RAM: one memfd mapped MAP_SHARED, so an exec'ed image (or another process) maps the very
 * same pages; the mapping table splits it into IOVA ranges (default: one range for all of it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/memfd.h>

#include "minivmm.h"

void mv_mem_init(struct mv_mem *m)
{
	memset(m, 0, sizeof(*m));
	m->fd = -EBADF;
}

static int mem_mmap(struct mv_mem *m, bool populate)
{
	/* First image with prefault: MAP_POPULATE allocates guest RAM and maps all of it, like a VMM whose
	 * guest has touched its memory.  Otherwise (and always in the new image of an update) the mapping is
	 * lazy: page tables fill as rings and buffers are touched. */
	void *p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | (populate ? MAP_POPULATE : 0), m->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->base = p;
	return 0;
}

int mv_mem_drop_ptes(struct mv_mem *m)
{
	/* Shared memfd mapping: MADV_DONTNEED only zaps this process's page table entries; the pages stay
	 * in the memfd (and pinned, in PA mode).  What is left to tear down at exec is what is touched. */
	return madvise(m->base, m->size, MADV_DONTNEED) < 0 ? -errno : 0;
}

/* 2 MiB hugepages free and not reserved by someone else's mapping, or -errno (no hugetlb support) */
long mv_mem_huge_avail(void)
{
	static const char *const f[] = { "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
					 "/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages" };
	long n[2];

	for (int i = 0; i < 2; i++) {
		FILE *fp = fopen(f[i], "re");
		if (!fp)
			return -errno;
		int k = fscanf(fp, "%ld", &n[i]);
		fclose(fp);
		if (k != 1)
			return -EIO;
	}
	return n[0] > n[1] ? n[0] - n[1] : 0;
}

/* size rounded up to whole 2 MiB pages */
uint64_t mv_mem_huge_round(uint64_t size)
{
	return (size + MV_HUGE_PAGE - 1) & ~(MV_HUGE_PAGE - 1);
}

int mv_mem_create(struct mv_mem *m, uint64_t size, uint64_t chunk, bool prefault, bool hugetlb)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (size < MV_MIN_MEM || size % 4096)
		return -EINVAL;
	if (hugetlb) {
		/* hugetlbfs sizes, offsets and so every IOVA range are whole 2 MiB pages */
		size = mv_mem_huge_round(size);
		chunk = chunk ? mv_mem_huge_round(chunk) : 0;
	}
	if (!chunk || chunk > size)
		chunk = size;
	if (chunk % 4096 || (size + chunk - 1) / chunk > MV_MAX_MAPS)
		return -EINVAL;
	if (hugetlb) {
		/* a clear error now rather than ENOMEM from mmap (the reservation) or SIGBUS at a fault */
		long avail = mv_mem_huge_avail();
		if (avail >= 0 && (uint64_t)avail < size / MV_HUGE_PAGE)
			return -ENOSPC;
		fd = memfd_create("minivmm-guest-ram", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	} else
		fd = memfd_create("minivmm-guest-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	/* allocate every page now (not inside a measured pause), mapped or not */
	if (!prefault && fallocate(fd, 0, 0, (off_t)size) < 0)
		return errno == ENOMEM && hugetlb ? -ENOSPC : -errno;
	m->fd = TAKE_FD(fd);
	m->size = size;
	m->hugetlb = hugetlb;
	r = mem_mmap(m, prefault);
	if (r < 0) {
		mv_mem_done(m);
		/* hugetlbfs reserves every page of a shared mapping at mmap: ENOMEM is "not enough of them" */
		return r == -ENOMEM && hugetlb ? -ENOSPC : r;
	}
	m->nmaps = 0;
	for (uint64_t off = 0; off < size; off += chunk) {
		struct mv_map *mp = &m->maps[m->nmaps++];
		mp->iova = MV_IOVA_BASE + off;
		mp->offset = off;
		mp->size = size - off < chunk ? size - off : chunk;
		mp->perm = VHOST_ACCESS_RW;
	}
	return 0;
}

int mv_mem_attach(struct mv_mem *m, int fd, uint64_t size)
{
	struct stat st;
	int r;

	/* takes fd in all cases */
	m->fd = fd;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if ((uint64_t)st.st_size != size) {
		r = -EINVAL;
		goto fail;
	}
	struct statfs sfs;
	m->hugetlb = fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC;
	m->size = size;
	r = mem_mmap(m, false);
	if (r < 0)
		goto fail;
	/* Test knob for the rig (update-verify.sh, docs/MINIVMM.md): MINIVMM_TEST_MAP_SHORT=1 makes the IOTLB
	 * map of guest RAM attached here (a new image taking over: the path-C re-map) leave out the last range
	 * of the mapping table (vdev.c), so the successor pins less than the declared mappings.  Only here, not
	 * in mv_mem_create: in exec mode the first image has the same environment. */
	m->test_map_short = getenv("MINIVMM_TEST_MAP_SHORT") && strcmp(getenv("MINIVMM_TEST_MAP_SHORT"), "1") == 0;
	return 0;
fail:
	mv_mem_done(m);
	return r;
}

void mv_mem_done(struct mv_mem *m)
{
	if (m->base)
		munmap(m->base, m->size);
	m->base = NULL;
	m->fd = safe_close(m->fd);
}

void *mv_mem_ptr(const struct mv_mem *m, uint64_t iova, uint64_t len)
{
	if (iova < MV_IOVA_BASE || len > m->size || iova - MV_IOVA_BASE > m->size - len)
		return NULL;
	return m->base + (iova - MV_IOVA_BASE);
}

/* vhost-vdpa checks RLIMIT_MEMLOCK against pinned_vm in PA mode and ignores CAP_IPC_LOCK. */
int mv_raise_memlock(uint64_t need, uint64_t *ret_limit)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return -errno;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		goto out;
	struct rlimit inf = { RLIM_INFINITY, RLIM_INFINITY };
	if (setrlimit(RLIMIT_MEMLOCK, &inf) == 0) {
		rl = inf;
		goto out;
	}
	/* unprivileged: go as far as the hard limit */
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return -errno;
out:
	if (ret_limit)
		*ret_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need ? 0 : -ENOMEM;
}
