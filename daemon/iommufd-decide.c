/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iommufd-decide.c - pure decisions about iommufd mappings; see iommufd-decide.h and docs/IOMMUFD.md */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "iommufd-decide.h"

#define PAGE 4096u

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

int iof_check_ioas(const struct iof_ioas *a, char *why, size_t len)
{
	for (size_t i = 0; i < a->nmaps; i++) {
		const struct iof_map *m = &a->maps[i];
		uint64_t end;

		if (m->size == 0 || m->iova % PAGE || m->size % PAGE)
			return fail(why, len, "IOAS %" PRIu32 " of '%s', mapping %zu: iova and size must be multiples of 4096, size > 0",
				    a->ioas_id, a->iommufd, i);
		if (__builtin_add_overflow(m->iova, m->size, &end))
			return fail(why, len, "IOAS %" PRIu32 " of '%s', mapping %zu: iova + size overflows", a->ioas_id,
				    a->iommufd, i);
		for (size_t k = 0; k < i; k++) {
			const struct iof_map *o = &a->maps[k];

			if (m->iova < o->iova + o->size && o->iova < end)
				return fail(why, len, "IOAS %" PRIu32 " of '%s': mappings %zu and %zu overlap (IOVA %#" PRIx64
						      " and %#" PRIx64 ")",
					    a->ioas_id, a->iommufd, k, i, o->iova, m->iova);
		}
		if (!m->file)
			continue;
		if (!m->memfd || !m->memfd_stored)
			return fail(why, len, "IOAS %" PRIu32 " of '%s', mapping %zu: '%s' is not a stored memfd", a->ioas_id,
				    a->iommufd, i, m->memfd ? m->memfd : "(none)");
		if (m->offset > m->memfd_size || m->size > m->memfd_size - m->offset)
			return fail(why, len, "IOAS %" PRIu32 " of '%s', mapping %zu: offset %" PRIu64 " + size %" PRIu64
					      " is beyond the end of memfd '%s' (%" PRIu64 " bytes)",
				    a->ioas_id, a->iommufd, i, m->offset, m->size, m->memfd, m->memfd_size);
	}
	return 0;
}

int iof_preflight(const struct iof_facts *f, const struct iof_ioas *a, size_t n, uint64_t *ret_pinned,
		  uint64_t *ret_memlock_need, char *why, size_t len)
{
	uint64_t pinned = 0, need;
	bool mm = false, user = false;

	*ret_pinned = *ret_memlock_need = 0;
	if (f->change_process == 0)
		return fail(why, len, "the kernel has no IOMMU_IOAS_CHANGE_PROCESS (probed on a new iommufd: ENOTTY; "
				      "it is in Linux >= 6.13): the iommufd mappings cannot move to another process");
	if (f->change_process < 0)
		return fail(why, len, "cannot probe IOMMU_IOAS_CHANGE_PROCESS on a new iommufd: %s",
			    strerror(-f->change_process));
	if (f->undeclared_iommufd)
		return fail(why, len, "iommufd '%s' has no declared IOAS (vmm.mappings \"ioas\"): what it maps is not known",
			    f->undeclared_iommufd);
	if (f->unattached_vfio)
		return fail(why, len, "VFIO device '%s' is in no declared IOAS (vmm.mappings \"ioas\" devices)",
			    f->unattached_vfio);
	for (size_t i = 0; i < n; i++) {
		int k = iof_check_ioas(&a[i], why, len);

		if (k < 0)
			return k;
		for (size_t j = 0; j < a[i].nmaps; j++) {
			const struct iof_map *m = &a[i].maps[j];

			if (!m->file)
				return fail(why, len, "mapping IOVA %#" PRIx64 " of IOAS %" PRIu32 " of iommufd '%s' was made with "
						      "IOMMU_IOAS_MAP; only IOMMU_IOAS_MAP_FILE mappings of a stored memfd can "
						      "move to a new process",
					    m->iova, a[i].ioas_id, a[i].iommufd);
			if (a[i].ndevs)
				pinned += m->size;
		}
		if (a[i].ndevs && a[i].nmaps) {
			if (a[i].acct == IOF_ACCT_UNKNOWN)
				return fail(why, len, "cannot read the accounting mode (IOMMU_OPTION_RLIMIT_MODE) of iommufd '%s'",
					    a[i].iommufd);
			mm |= a[i].acct == IOF_ACCT_MM;
			user |= a[i].acct == IOF_ACCT_USER;
		}
	}
	if (pinned && f->cap_ipc_lock)
		return fail(why, len, "the VMM has CAP_IPC_LOCK: its iommufd mappings are not accounted and "
				      "IOMMU_IOAS_CHANGE_PROCESS would move no charge while switching their mm (the new "
				      "process's VmPin underflows at the first unmap: a kernel bug, docs/IOMMUFD.md)");
	/* the exec rule first (its reason names what any instance in mm accounting hits), with the advice that
	 * works: a mixed instance is refused in transfer mode too (below), only user accounting updates it */
	if (pinned && mm && f->exec_mode)
		return fail(why, len, "an iommufd uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and exec mode leaves no "
				      "old mm to uncharge at the successor's IOMMU_IOAS_CHANGE_PROCESS (the kernel WARNs and "
				      "fails after a partial move: a kernel bug, docs/IOMMUFD.md): %s",
			    f->vdpa ? "use user accounting (the instance also holds vhost-vdpa devices: in mm accounting "
				      "it is refused in transfer mode too)"
				    : "use transfer mode");
	/* a mixed instance in transfer mode: a rollback after the successor's CHANGE_PROCESS needs the successor
	 * gone before the old VMM takes its vhost-vdpa devices back (VHOST_NEW_OWNER refuses while the
	 * successor's mm lives; path C's reopened device is released only once its copy is closed), so the old
	 * VMM's CHANGE_PROCESS would uncharge an mm without users: the same kernel bug.  R14's hold (the
	 * successor stopped, alive, until the take-back) covers iommufd-only instances; a two-step rollback
	 * for a mixed one is not implemented (docs/IOMMUFD.md "Mixed instances"), so it is refused up front */
	if (pinned && mm && f->vdpa)
		return fail(why, len, "an iommufd uses mm accounting (IOMMU_OPTION_RLIMIT_MODE 1) and the instance also "
				      "holds vhost-vdpa devices: a rollback after the successor's IOMMU_IOAS_CHANGE_PROCESS "
				      "must end the successor before the old VMM can take the vhost-vdpa devices back, and "
				      "the old VMM's IOMMU_IOAS_CHANGE_PROCESS would then uncharge an mm without users (the "
				      "kernel WARNs and fails after a partial move: a kernel bug, docs/IOMMUFD.md): use user "
				      "accounting for a mixed instance");
	if (f->vmpin_kb != f->vdpa_pinned_kb + (int64_t)(pinned / 1024))
		return fail(why, len, "VmPin of the VMM is %" PRId64 " kB, its declared mappings pin %" PRId64
				      " kB (vhost-vdpa %" PRId64 " kB, iommufd %" PRIu64 " kB): the accounting to verify is "
				      "already wrong",
			    f->vmpin_kb, f->vdpa_pinned_kb + (int64_t)(pinned / 1024), f->vdpa_pinned_kb, pinned / 1024);
	/* the successor is charged before the old owner is uncharged: the same user in user mode holds both;
	 * its vhost-vdpa devices' pins count against the same limit (iof_memlock_need()) */
	need = iof_memlock_need(pinned, f->vdpa_pinned_kb > 0 ? (uint64_t)f->vdpa_pinned_kb * 1024 : 0, user,
				f->same_user);
	if (need > f->memlock_soft && !f->allow_memlock_raise)
		return fail(why, len, "RLIMIT_MEMLOCK of the successor is %" PRIu64 " bytes, IOMMU_IOAS_CHANGE_PROCESS "
				      "charges it %" PRIu64 " (%s) and the policy (update.allow_memlock_raise) forbids raising it",
			    f->memlock_soft, need,
			    f->vdpa_pinned_kb > 0 && need == pinned + (uint64_t)f->vdpa_pinned_kb * 1024
				    ? "the iommufd pinned size plus the vhost-vdpa devices' pins: one mm holds both"
			    : user && f->same_user ? "twice the pinned size: the same user holds both charges for a moment"
						   : "the pinned size");
	*ret_pinned = pinned;
	*ret_memlock_need = need;
	return 0;
}

int iof_check_moved(const char *const *held, size_t nheld, const char *const *moved, size_t nmoved, char *why,
		    size_t len)
{
	for (size_t i = 0; i < nmoved; i++) {
		bool known = false;

		for (size_t k = 0; k < i; k++)
			if (strcmp(moved[k], moved[i]) == 0)
				return fail(why, len, "iommufd_moved names '%s' twice", moved[i]);
		for (size_t k = 0; k < nheld && !known; k++)
			known = strcmp(held[k], moved[i]) == 0;
		if (!known)
			return fail(why, len, "iommufd_moved names '%s', which is not an iommufd of this instance", moved[i]);
	}
	for (size_t i = 0; i < nheld; i++) {
		bool found = false;

		for (size_t k = 0; k < nmoved && !found; k++)
			found = strcmp(held[i], moved[k]) == 0;
		if (!found)
			return fail(why, len, "the successor did not call IOMMU_IOAS_CHANGE_PROCESS on iommufd '%s' (not in "
					      "update.ready's iommufd_moved): its pinned memory is still charged to the old "
					      "process",
				    held[i]);
	}
	return 0;
}

static bool map_same(const struct iof_map *a, const struct iof_map *b)
{
	return a->iova == b->iova && a->size == b->size && a->file == b->file && a->offset == b->offset &&
	       (a->memfd && b->memfd ? strcmp(a->memfd, b->memfd) == 0 : a->memfd == b->memfd);
}

int iof_same_layout(const struct iof_ioas *old, size_t nold, const struct iof_ioas *cur, size_t ncur, char *why,
		    size_t len)
{
	if (nold != ncur)
		return fail(why, len, "the successor declares %zu IOASes, %zu were declared before the update", ncur, nold);
	for (size_t i = 0; i < nold; i++) {
		const struct iof_ioas *a = &old[i], *b = NULL;

		for (size_t j = 0; j < ncur && !b; j++)
			if (strcmp(cur[j].iommufd, a->iommufd) == 0 && cur[j].ioas_id == a->ioas_id)
				b = &cur[j];
		if (!b)
			return fail(why, len, "IOAS %" PRIu32 " of '%s' is missing from the successor's declaration", a->ioas_id,
				    a->iommufd);
		if (b->ndevs != a->ndevs || b->nmaps != a->nmaps)
			return fail(why, len, "IOAS %" PRIu32 " of '%s': the successor declares %zu devices and %zu mappings, "
					      "before the update %zu and %zu",
				    a->ioas_id, a->iommufd, b->ndevs, b->nmaps, a->ndevs, a->nmaps);
		for (size_t m = 0; m < a->nmaps; m++) {
			bool found = false;

			for (size_t k = 0; k < b->nmaps && !found; k++)
				found = map_same(&a->maps[m], &b->maps[k]);
			if (!found)
				return fail(why, len, "IOAS %" PRIu32 " of '%s': the mapping at IOVA %#" PRIx64 " differs in the "
						      "successor's declaration (only uaddr may change: the device's mappings did not)",
					    a->ioas_id, a->iommufd, a->maps[m].iova);
		}
	}
	return 0;
}

uint64_t iof_memlock_need(uint64_t iof, uint64_t vdpa, bool user_mode, bool same_user)
{
	uint64_t lk = user_mode && same_user ? 2 * iof : iof, pin = vdpa + iof;

	return lk > pin ? lk : pin;
}

void iof_mix_plan(const struct iof_mix *in, struct iof_mix_plan *out)
{
	*out = (struct iof_mix_plan){};
	out->vdpa_kb = in->route ? (int64_t)(in->vdpa_bytes / 1024) : 0;
	out->iof_kb = (int64_t)(in->iof_bytes / 1024);
	out->expected_kb = out->vdpa_kb + out->iof_kb;
	out->vmlck_verified = in->acct == IOF_ACCT_MM && in->iof_bytes > 0;
	out->vmlck_kb = out->vmlck_verified ? out->iof_kb : 0;
	out->vdpa_repinned = in->route == 'C' && out->vdpa_kb > 0;
	out->memlock_need = iof_memlock_need(in->iof_bytes, in->route ? in->vdpa_bytes : 0, in->acct != IOF_ACCT_MM,
					     in->same_user);
}

bool iof_vmlck_moved(const struct iof_mix_plan *p, bool transfer, int64_t old_before_kb, int64_t old_after_kb,
		     int64_t new_before_kb, int64_t new_after_kb)
{
	if (!p->vmlck_verified || !transfer)
		return true;
	return old_before_kb - old_after_kb == p->vmlck_kb && new_after_kb - new_before_kb == p->vmlck_kb;
}

bool iof_vmlck_retaken(const struct iof_mix_plan *p, int64_t before_kb, int64_t after_kb)
{
	if (!p->vmlck_verified)
		return true;
	return after_kb >= 0 && after_kb == before_kb;
}
