/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-iommufd.c - iommufd and VFIO devices in the update engine (docs/IOMMUFD.md): the "ioas" part of
 * vmm.mappings (checked against the fds the instance holds) and the facts update.start's preflight
 * gathers for iof_preflight() (daemon/iommufd-decide.c, pure): the CHANGE_PROCESS probe on a new
 * context, the VMM's CAP_IPC_LOCK, each context's accounting mode, VmPin, the memfds' sizes and the
 * successor's RLIMIT_MEMLOCK.  Nothing here changes any state of the kernel or of the instance.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "basics.h"
#include "config.h"
#include "device.h"
#include "held.h"
#include "instance.h"
#include "iommufd-decide.h"
#include "json-oom.h"
#include "update-int.h"
#include "vlud-iommufd.h"
#include "vlud.h"
#include "vmpin.h"

#define CAP_IPC_LOCK_BIT 14

struct iof_table {
	struct iof_ioas *a;
	struct iof_map *maps;
	size_t n;
};

static void table_free(struct iof_table *t)
{
	free(t->a);
	free(t->maps);
	*t = (struct iof_table){};
}

static bool only_keys(json_object *o, const char *const *keys, const char **bad)
{
	*bad = NULL;
	if (!json_object_is_type(o, json_type_object))
		return false;
	json_object_object_foreach(o, k, v) {
		size_t i;

		(void)v;
		for (i = 0; keys[i] && strcmp(keys[i], k) != 0; i++)
			;
		if (!keys[i]) {
			*bad = k;
			return false;
		}
	}
	return true;
}

/* the context's IOMMU_OPTION_RLIMIT_MODE (a GET: no capability, changes nothing) */
static int acct_mode(int fd)
{
	struct vlud_iommu_option o = { .size = sizeof(o), .option_id = VLUD_IOMMU_OPTION_RLIMIT_MODE,
				       .op = VLUD_IOMMU_OPTION_OP_GET };

	if (ioctl(fd, VLUD_IOMMU_OPTION, &o) < 0)
		return IOF_ACCT_UNKNOWN;
	return o.val64 ? IOF_ACCT_MM : IOF_ACCT_USER;
}

/*
 * The declaration ioas (an array, checked by the command table) of inst into t: shape errors with
 * *ret_cls InvalidArgument, names the instance does not hold with NotFound; -1 and why.  Strings in t
 * point into ioas (borrowed).
 */
static int table_build(struct instance *inst, json_object *ioas, struct iof_table *t, enum vlu_error_class *ret_cls,
		       char *why, size_t len)
{
	static const char *const ikeys[] = { "iommufd", "ioas_id", "devices", "mappings", NULL };
	static const char *const mkeys[] = { "iova", "size", "kind", "memfd", "offset", "uaddr", NULL };
	size_t n = json_object_array_length(ioas), total = 0, k = 0;
	const char *bad;

	*t = (struct iof_table){};
	*ret_cls = VLU_ERR_INVALID_ARGUMENT;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ioas, i), *m;

		if (!only_keys(e, ikeys, &bad))
			return snprintf(why, len, "ioas[%zu]: unknown key '%s'", i, bad ? bad : "(not an object)"), -1;
		if (!json_object_object_get_ex(e, "mappings", &m) || !json_object_is_type(m, json_type_array) ||
		    json_object_array_length(m) > MAX_MAPS)
			return snprintf(why, len, "ioas[%zu]: needs mappings, an array of at most %d", i, MAX_MAPS), -1;
		total += json_object_array_length(m);
	}
	t->a = calloc(n ? n : 1, sizeof(*t->a));
	t->maps = calloc(total ? total : 1, sizeof(*t->maps));
	if (!t->a || !t->maps) {
		*ret_cls = VLU_ERR_INTERNAL;
		return snprintf(why, len, "out of memory"), -1;
	}
	t->n = n;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ioas, i), *maps, *devs = NULL;
		const char *fdn = upd_jstr(e, "iommufd");
		int64_t id = upd_jint(e, "ioas_id", -1);
		struct held *h = fdn ? held_find(inst, fdn) : NULL;
		struct iof_ioas *a = &t->a[i];

		if (!fdn || id < 0 || id > UINT32_MAX)
			return snprintf(why, len, "ioas[%zu]: needs iommufd (a held fd name) and ioas_id 0..2^32-1", i), -1;
		if (!h || h->type != VLUD_FD_IOMMUFD) {
			*ret_cls = VLU_ERR_NOT_FOUND;
			return snprintf(why, len, "ioas[%zu]: no iommufd fd '%s' in instance '%s'", i, fdn, inst->name), -1;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->a[j].iommufd, fdn) == 0 && t->a[j].ioas_id == (uint32_t)id)
				return snprintf(why, len, "ioas[%zu]: IOAS %" PRId64 " of '%s' is declared twice", i, id, fdn), -1;
		a->iommufd = fdn;
		a->ioas_id = (uint32_t)id;
		a->acct = acct_mode(h->fd);
		if (json_object_object_get_ex(e, "devices", &devs)) {
			if (!json_object_is_type(devs, json_type_array) || json_object_array_length(devs) > MAX_DEVS)
				return snprintf(why, len, "ioas[%zu]: devices must be an array of at most %d names", i, MAX_DEVS), -1;
			for (size_t d = 0; d < json_object_array_length(devs); d++) {
				json_object *dv = json_object_array_get_idx(devs, d);
				const char *dn = json_object_is_type(dv, json_type_string) ? json_object_get_string(dv) : NULL;
				struct held *dh = dn ? held_find(inst, dn) : NULL;

				if (!dh || dh->type != VLUD_FD_VFIO) {
					*ret_cls = VLU_ERR_NOT_FOUND;
					return snprintf(why, len, "ioas[%zu].devices[%zu]: no VFIO device fd '%s' in instance '%s'",
							i, d, dn ? dn : "(not a string)", inst->name),
					       -1;
				}
			}
			a->ndevs = json_object_array_length(devs);
		}
		json_object_object_get_ex(e, "mappings", &maps);
		a->maps = &t->maps[k];
		a->nmaps = json_object_array_length(maps);
		for (size_t j = 0; j < a->nmaps; j++) {
			json_object *m = json_object_array_get_idx(maps, j);
			struct iof_map *mp = &t->maps[k++];
			const char *kind = upd_jstr(m, "kind");
			int64_t iova = upd_jint(m, "iova", -1), size = upd_jint(m, "size", -1), off = upd_jint(m, "offset", 0),
				uaddr = upd_jint(m, "uaddr", 0);

			if (!only_keys(m, mkeys, &bad))
				return snprintf(why, len, "ioas[%zu].mappings[%zu]: unknown key '%s'", i, j,
						bad ? bad : "(not an object)"),
				       -1;
			if (!kind || (strcmp(kind, "file") != 0 && strcmp(kind, "va") != 0) || iova < 0 || size <= 0 ||
			    off < 0 || uaddr < 0)
				return snprintf(why, len,
						"ioas[%zu].mappings[%zu]: needs kind \"file\"|\"va\", iova>=0, size>0, offset>=0, uaddr>=0",
						i, j),
				       -1;
			mp->iova = (uint64_t)iova, mp->size = (uint64_t)size, mp->offset = (uint64_t)off;
			mp->file = strcmp(kind, "file") == 0;
			mp->memfd = upd_jstr(m, "memfd");
			if (mp->file) {
				struct held *mh = mp->memfd ? held_find(inst, mp->memfd) : NULL;
				struct stat st;

				if (!mh || mh->type != VLUD_FD_MEMFD) {
					*ret_cls = VLU_ERR_NOT_FOUND;
					return snprintf(why, len, "ioas[%zu].mappings[%zu]: '%s' is not a memfd stored by instance '%s'",
							i, j, mp->memfd ? mp->memfd : "(no memfd)", inst->name),
					       -1;
				}
				mp->memfd_stored = true;
				mp->memfd_size = fstat(mh->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
			}
		}
		if (iof_check_ioas(a, why, len) < 0)
			return -1;
	}
	return 0;
}

int upd_iof_declare(struct request *r, struct instance *inst, json_object *ioas)
{
	struct iof_table t;
	enum vlu_error_class cls;
	char why[512];
	int k;

	if (!ioas)
		return 0;
	k = table_build(inst, ioas, &t, &cls, why, sizeof(why));
	table_free(&t);
	if (k < 0)
		return request_error(r, cls, "%s", why);
	return 0;
}

bool upd_iof_held(struct instance *inst)
{
	struct list *p, *n;

	list_for_each_safe(p, n, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		if (h->type == VLUD_FD_IOMMUFD || h->type == VLUD_FD_VFIO)
			return true;
	}
	return false;
}

/* CapEff of pid has CAP_IPC_LOCK: 1, 0, or -errno */
static int has_ipc_lock(pid_t pid)
{
	char path[64], line[256];
	unsigned long long eff;
	FILE *f;
	int k = -ENODATA;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			k = !!(eff & (1ULL << CAP_IPC_LOCK_BIT));
			break;
		}
	fclose(f);
	return k;
}

/* IOMMU_IOAS_CHANGE_PROCESS on a context of vlud's own, opened for this and closed (never a held one:
 * it would move their charge to vlud) */
static int probe_change_process(void)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int k, e;

	k = device_open_node("/dev/iommu", &fd);
	if (k < 0)
		return k;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (fdtype_chr_kind(st.st_rdev, vl.vdpa_major) != VLUD_FD_IOMMUFD)
		return -ENODEV;
	k = device_iommufd_probe(fd, &e);
	return k;
}

int upd_iof_preflight(struct instance *inst, struct upd_inst *ui, bool exec_mode, pid_t successor, bool vdpa,
		      int64_t vdpa_pinned_kb, struct upd_iof_plan *plan, char *why, size_t len)
{
	struct iof_facts f = { .exec_mode = exec_mode, .vdpa = vdpa, .same_user = true,
			       .allow_memlock_raise = vl.cfg->update_policy.allow_memlock_raise,
			       .vdpa_pinned_kb = vdpa_pinned_kb, .memlock_soft = UINT64_MAX };
	struct iof_table t = {};
	enum vlu_error_class cls;
	struct list *p, *n;
	uint64_t pinned = 0, need = 0;
	int k;

	if (ui->ioas) {
		k = table_build(inst, ui->ioas, &t, &cls, why, len);
		if (k < 0) {
			char tmp[512];

			snprintf(tmp, sizeof(tmp), "the declared IOAS table is no longer valid: %s", why);
			snprintf(why, len, "%s", tmp);
			table_free(&t);
			return -1;
		}
	}
	/* every held iommufd named by an entry, every held VFIO device in one */
	list_for_each_safe(p, n, &inst->held) {
		struct held *h = list_entry(p, struct held, link);
		bool found = false;

		if (h->type != VLUD_FD_IOMMUFD && h->type != VLUD_FD_VFIO)
			continue;
		for (size_t i = 0; ui->ioas && i < json_object_array_length(ui->ioas) && !found; i++) {
			json_object *e = json_object_array_get_idx(ui->ioas, i), *d;
			const char *fdn = upd_jstr(e, "iommufd");

			if (h->type == VLUD_FD_IOMMUFD)
				found = fdn && strcmp(fdn, h->name) == 0;
			else if (json_object_object_get_ex(e, "devices", &d))
				for (size_t j = 0; j < json_object_array_length(d) && !found; j++)
					found = strcmp(json_object_get_string(json_object_array_get_idx(d, j)), h->name) == 0;
		}
		if (!found && h->type == VLUD_FD_IOMMUFD && !f.undeclared_iommufd)
			f.undeclared_iommufd = h->name;
		if (!found && h->type == VLUD_FD_VFIO && !f.unattached_vfio)
			f.unattached_vfio = h->name;
	}
	f.change_process = probe_change_process();
	k = has_ipc_lock(inst->pid);
	f.cap_ipc_lock = k > 0;
	if (vmpin_read(inst->pid, &f.vmpin_kb, NULL) < 0)
		f.vmpin_kb = -1;
	if (exec_mode || successor > 0) {
		uint64_t soft;

		if (vmpin_memlock_get(exec_mode ? inst->pid : successor, &soft, NULL) == 0)
			f.memlock_soft = soft;
	}
	k = iof_preflight(&f, t.a, t.n, &pinned, &need, why, len);
	*plan = (struct upd_iof_plan){ .pinned = pinned, .memlock_need = need, .acct = IOF_ACCT_USER };
	for (size_t i = 0; k == 0 && i < t.n; i++)
		if (t.a[i].ndevs && t.a[i].nmaps && t.a[i].acct == IOF_ACCT_MM)
			plan->acct = IOF_ACCT_MM;
	table_free(&t);
	if (k < 0)
		return -1;
	snprintf(why, len,
		 "the iommufd mappings could move (%" PRIu64 " kB pinned, the successor needs RLIMIT_MEMLOCK %" PRIu64
		 " bytes)",
		 pinned / 1024, need);
	return 0;
}

/* the names of inst's held iommufds (at most MAX_DEVS; borrowed) */
static size_t held_iommufds(struct instance *inst, const char **names)
{
	struct list *p, *n;
	size_t k = 0;

	list_for_each_safe(p, n, &inst->held) {
		struct held *h = list_entry(p, struct held, link);

		if (h->type == VLUD_FD_IOMMUFD && k < MAX_DEVS)
			names[k++] = h->name;
	}
	return k;
}

int upd_iof_ready(struct update *u, json_object *args, char *why, size_t len)
{
	struct upd_inst *ui = upd_ui_get(u->inst, false);
	const char *held[MAX_DEVS], *moved[MAX_DEVS];
	size_t nheld = held_iommufds(u->inst, held), nmoved = 0;
	json_object *mv = NULL, *ioas = NULL;
	struct iof_table a = {}, b = {};
	enum vlu_error_class cls;
	int k;

	json_object_put(TAKE_PTR(u->iof_moved));
	json_object_put(TAKE_PTR(u->iof_ioas));
	if (json_object_object_get_ex(args, "iommufd_moved", &mv) && json_object_is_type(mv, json_type_array)) {
		u->iof_moved = json_object_get(mv);
		for (size_t i = 0; i < json_object_array_length(mv) && nmoved < MAX_DEVS; i++)
			moved[nmoved++] = json_object_get_string(json_object_array_get_idx(mv, i));
	}
	if (iof_check_moved(held, nheld, moved, nmoved, why, len) < 0)
		return -1;
	if (!json_object_object_get_ex(args, "ioas", &ioas) || !ioas)
		return 0;
	if (!ui || !ui->ioas)
		return snprintf(why, len, "update.ready declares an ioas table, but none was declared before the update"), -1;
	k = table_build(u->inst, ui->ioas, &a, &cls, why, len);
	if (k == 0) {
		char tmp[400];

		k = table_build(u->inst, ioas, &b, &cls, tmp, sizeof(tmp));
		if (k < 0)
			snprintf(why, len, "update.ready's ioas: %s", tmp);
	}
	if (k == 0)
		k = iof_same_layout(a.a, a.n, b.a, b.n, why, len);
	table_free(&a);
	table_free(&b);
	if (k < 0)
		return -1;
	u->iof_ioas = json_object_get(ioas);
	return 0;
}

void upd_iof_commit(struct update *u, struct upd_inst *ui)
{
	if (!u->iof || !u->iof_ioas || !ui)
		return;
	json_object_put(ui->ioas);
	ui->ioas = json_object_get(u->iof_ioas);
}

static json_object *ui_ioas(struct update *u)
{
	struct upd_inst *ui = upd_ui_get(u->inst, false);

	return ui && ui->ioas ? json_object_get(ui->ioas) : NULL;
}

json_object *upd_iof_claim_info(struct update *u)
{
	const char *held[MAX_DEVS];
	size_t n = held_iommufds(u->inst, held);
	json_object *o, *a;

	if (!u->iof)
		return NULL;
	o = jnew_obj();
	a = jnew_arr();
	for (size_t i = 0; i < n; i++)
		jappend(a, jnew_str(held[i]));
	/* the claimant (the successor, or the previous binary restarted by a rollback) takes the charge:
	 * IOMMU_IOAS_CHANGE_PROCESS on each, then update.ready with iommufd_moved */
	jadd(o, "change_process", a);
	/* the iommufd share only (a mixed instance's vhost-vdpa devices are in "devices", on their path) */
	jadd(o, "pinned_kb", jnew_int(u->iof_plan.iof_kb));
	jadd(o, "accounting", jnew_str(u->iof_acct == IOF_ACCT_MM ? "mm" : "user"));
	jadd(o, "rollback", jnew_bool(u->restarted));
	jadd(o, "ioas", ui_ioas(u));
	return o;
}

json_object *upd_iof_verdict(const struct update *u)
{
	json_object *o;

	if (!u->iof)
		return NULL;
	o = jnew_obj();
	jadd(o, "accounting", jnew_str(u->iof_acct == IOF_ACCT_MM ? "mm" : "user"));
	jadd(o, "pinned_kb", jnew_int(u->iof_plan.iof_kb));
	jadd(o, "moved", u->iof_moved ? json_object_get(u->iof_moved) : jnew_arr());
	/* the successor's VmPin went up by this (exec mode: the same pid, a new mm; before its call 0), less
	 * the vhost-vdpa devices' share of it (a mixed instance: moved on A/B, re-pinned on C; vmpin has the
	 * whole) */
	jadd(o, "charge_moved_kb", jnew_int(u->new_after_kb - u->new_before_kb - u->iof_plan.vdpa_kb));
	jadd(o, "vhost_vdpa_kb", jnew_int(u->iof_plan.vdpa_kb));
	jadd(o, "vhost_vdpa_repinned", jnew_bool(u->iof_plan.vdpa_repinned));
	jadd(o, "vmlck_expected_kb", jnew_int(u->iof_plan.vmlck_kb));
	jadd(o, "vmpin_before_kb", jnew_int(u->old_before_kb));
	jadd(o, "vmpin_after_kb", jnew_int(u->new_after_kb));
	jadd(o, "vmlck_before_kb", jnew_int(u->iof_lck_before_kb));
	jadd(o, "vmlck_after_kb", jnew_int(u->iof_lck_after_kb));
	jadd(o, "vmlck_new_before_kb", jnew_int(u->iof_lck_new_before_kb));
	if (u->mode == MODE_TRANSFER) {
		/* the old process's side: down by charge_moved_kb when the charge moved */
		jadd(o, "old_vmpin_after_kb", jnew_int(u->old_after_kb));
		jadd(o, "old_vmlck_after_kb", jnew_int(u->iof_lck_old_after_kb));
	}
	/* a rollback's take-back by O (transfer mode): its VmLck then (old_vmpin_after_kb is its VmPin then) */
	if (u->iof_lck_retaken_kb >= 0)
		jadd(o, "old_vmlck_retaken_kb", jnew_int(u->iof_lck_retaken_kb));
	/* R14: the successor kept stopped while O took the charge from its mm, its counters then */
	if (u->held_start) {
		json_object *h = jnew_obj();

		jadd(h, "pid", jnew_int(u->new_pid));
		jadd(h, "vmpin_kb", u->held_pin_kb >= 0 ? jnew_int(u->held_pin_kb) : NULL);
		jadd(h, "vmlck_kb", u->held_lck_kb >= 0 ? jnew_int(u->held_lck_kb) : NULL);
		/* what D found at O's update.ready (update_held_look_name()); null when it never came */
		jadd(h, "process", u->held_seen ? jnew_str(u->held_seen) : NULL);
		jadd(o, "held_successor", h);
	}
	if (u->iof_ioas)
		jadd(o, "ioas", json_object_get(u->iof_ioas));
	return o;
}
