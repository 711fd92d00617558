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
	bool vdpa;		       /* the instance holds vhost-vdpa devices too (a mixed instance) */
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

/*
 * The successor's RLIMIT_MEMLOCK for an update that moves iof bytes of iommufd mappings and vdpa bytes of
 * vhost-vdpa PA mappings (0: none; VA devices pin nothing) in one update (docs/IOMMUFD.md "Mixed
 * instances"): the two are checked against different counters, so the need is not their sum:
 *  - iommufd in user mode checks user->locked_vm, which holds O's and N's charge for the moment of the
 *    call when both are the same user (2 * iof), and no vhost-vdpa pin (vhost-vdpa never charges it);
 *    in mm mode it checks the caller's mm->locked_vm (iof);
 *  - vhost-vdpa (path C's re-pin, VHOST_NEW_OWNER's charge on A/B) checks the new mm's pinned_vm, which
 *    holds the iommufd share too once CHANGE_PROCESS ran (the successor may do either first): vdpa + iof.
 * So the maximum of the two (vdpa 0: the iommufd-only rule; iof 0: the vhost-vdpa-only rule, vdpa).
 */
uint64_t iof_memlock_need(uint64_t iof, uint64_t vdpa, bool user_mode, bool same_user);

/* A mixed update (vhost-vdpa devices on their path and iommufds moved by CHANGE_PROCESS, or either alone):
 * what vlud verifies.  In: route ('A', 'B', 'C'; 0 without vhost-vdpa devices), the vhost-vdpa PA mappings'
 * pinned bytes, the iommufds' (iof_preflight()'s pinned), their accounting mode. */
struct iof_mix {
	char route;
	uint64_t vdpa_bytes, iof_bytes;
	int acct; /* enum iof_acct */
	bool same_user;
};
struct iof_mix_plan {
	/* VmPin: the exec-mode successor ends with this (same pid, new mm); transfer mode, O loses and N gains
	 * exactly this; a rollback's taker (O, the restarted previous binary) ends with it.  The sum in every
	 * path, but on path C the vhost-vdpa share is not moved: D's release at the claim drops O's and N pins
	 * it anew (vdpa_repinned), so only the end values add up, not every moment in between */
	int64_t expected_kb;
	int64_t vdpa_kb, iof_kb; /* the two shares */
	/* VmLck: moves in mm accounting mode only, and only the iommufd share (vhost-vdpa charges pinned_vm,
	 * never locked_vm); 0 in user mode (user->locked_vm is in no /proc file): not verified */
	int64_t vmlck_kb;
	bool vmlck_verified;
	bool vdpa_repinned;	/* path C */
	uint64_t memlock_need;	/* iof_memlock_need() */
};
void iof_mix_plan(const struct iof_mix *in, struct iof_mix_plan *out);

/* VmLck verified at N's update.ready (transfer mode: O's before and after, N's at its claim and after;
 * exec mode refuses mm mode, so only transfer mode gets here with vmlck_verified): true when nothing is to
 * be verified or O lost and N gained exactly vmlck_kb (N's own mlock()s before its claim are its baseline,
 * like VmPin's new_before_kb). */
bool iof_vmlck_moved(const struct iof_mix_plan *p, bool transfer, int64_t old_before_kb, int64_t old_after_kb,
		     int64_t new_before_kb, int64_t new_after_kb);

/* VmLck verified at O's update.ready after a transfer-mode rollback (its CHANGE_PROCESS took the charge
 * back): true when nothing is to be verified (user accounting: VmLck never moves) or O's VmLck is what it
 * was at the start (before_kb, its own mlock()s included); after_kb < 0 (unread) is not verified. */
bool iof_vmlck_retaken(const struct iof_mix_plan *p, int64_t before_kb, int64_t after_kb);

#endif
