/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iommufd-decide.h - the pure decisions about iommufd mappings (docs/IOMMUFD.md): whether a declared IOAS
 * table is well-formed (vmm.mappings "ioas"), and whether IOMMU_IOAS_CHANGE_PROCESS can move everything
 * an instance has (update.start's preflight), with the reason when it cannot.  No I/O, no globals: the
 * caller gathers the facts (the kernel probe, the VMM's capabilities, VmPin, the accounting mode read
 * from each context, the memfds' sizes); tests/unit/test-iommufd-decide.c has a case per refusal.
 */
#ifndef VLUD_IOMMUFD_DECIDE_H
#define VLUD_IOMMUFD_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a context's accounting mode for mappings made without CAP_IPC_LOCK: IOMMU_OPTION_RLIMIT_MODE's value */
enum iof_acct {
	IOF_ACCT_UNKNOWN = -1, /* could not be read */
	IOF_ACCT_USER = 0,     /* user->locked_vm + mm->pinned_vm (the default) */
	IOF_ACCT_MM = 1,       /* mm->locked_vm + mm->pinned_vm (RLIMIT_MODE 1) */
};

struct iof_map {
	uint64_t iova, size, offset;
	bool file;	     /* declared kind "file": made with IOMMU_IOAS_MAP_FILE ("va": IOMMU_IOAS_MAP) */
	const char *memfd;   /* the stored memfd's name (file mappings) */
	bool memfd_stored;   /* the instance holds a memfd of that name */
	uint64_t memfd_size; /* its size now (fstat) */
};

struct iof_ioas {
	const char *iommufd; /* held iommufd fd name */
	uint32_t ioas_id;
	int acct;	     /* enum iof_acct, read from the context by vlud */
	size_t ndevs;	     /* VFIO devices declared attached to it (nothing is pinned without one) */
	const struct iof_map *maps;
	size_t nmaps;
};

struct iof_facts {
	int change_process;	       /* the probe on a new context: 1 the kernel has it, 0 ENOTTY, <0 -errno */
	bool exec_mode;		       /* exec mode: the old mm is gone at the successor's call */
	bool cap_ipc_lock;	       /* the VMM's CapEff has CAP_IPC_LOCK: its mappings are not accounted */
	const char *undeclared_iommufd; /* a held iommufd no "ioas" entry names (NULL: none) */
	const char *unattached_vfio;   /* a held VFIO fd no "ioas" entry lists (NULL: none) */
	int64_t vmpin_kb;	       /* the VMM's VmPin */
	int64_t vdpa_pinned_kb;	       /* what its vhost-vdpa PA mappings pin (docs/UPDATE.md) */
	uint64_t memlock_soft;	       /* the successor's RLIMIT_MEMLOCK, bytes (UINT64_MAX: unlimited or set
					* by vlud at spawn) */
	bool same_user;		       /* successor and VMM are the same user (user mode charges twice) */
	bool allow_memlock_raise;      /* update.allow_memlock_raise */
};

/* One IOAS of a vmm.mappings declaration: iova and size 4 KiB aligned, size > 0, no IOVA range
 * overflowing or overlapping another of the same IOAS, a file mapping within its memfd (offset + size <=
 * memfd_size) and stored.  0, or -1 with why. */
int iof_check_ioas(const struct iof_ioas *a, char *why, size_t len);

/* Can CHANGE_PROCESS move what the instance has?  0 and *ret_pinned (bytes pinned by the IOASes with a
 * device) and *ret_memlock_need (the successor's RLIMIT_MEMLOCK it needs for the call, 0 when nothing;
 * above memlock_soft only when allow_memlock_raise), or -1 with why (the first refusal, in the order of
 * docs/IOMMUFD.md "Preflight refusals"). */
int iof_preflight(const struct iof_facts *f, const struct iof_ioas *a, size_t n, uint64_t *ret_pinned,
		  uint64_t *ret_memlock_need, char *why, size_t len);

/* The successor's update.ready "iommufd_moved" (the iommufds it called IOMMU_IOAS_CHANGE_PROCESS on)
 * against the iommufds the instance holds: every held one named, nothing else named, no name twice.
 * 0, or -1 with why. */
int iof_check_moved(const char *const *held, size_t nheld, const char *const *moved, size_t nmoved, char *why,
		    size_t len);

/* The successor's re-declaration (update.ready "ioas": its new user addresses) against the table declared
 * before the update: the same IOASes (iommufd, ioas_id, number of devices) with the same mappings (iova,
 * size, kind, memfd, offset; uaddr may differ: the successor maps the memfd wherever it likes), in any
 * order.  0, or -1 with why. */
int iof_same_layout(const struct iof_ioas *old, size_t nold, const struct iof_ioas *cur, size_t ncur, char *why,
		    size_t len);

#endif
