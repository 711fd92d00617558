/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * update-preflight.c - update.start: the preflight (docs/UPDATE.md "Preflight": every refusal is one
 * `return refuse(...)`, nothing is touched, the half-built struct update goes with _cleanup_update_),
 * then the first phases of a running update: suspend and save.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "commands.h"
#include "config.h"
#include "conn.h"
#include "events.h"
#include "held.h"
#include "instance.h"
#include "json-oom.h"
#include "update-int.h"
#include "update.h"
#include "vlud-vhost.h"
#include "vlud.h"
#include "vmpin.h"

/* the pinning O declared for device fd name (vmm.mappings "devices"); pa unless it said va.  The table may
 * come back from the state document of a previous vlud: a member missing or of the wrong type is not
 * trusted to be there. */
static bool dev_is_pa(const struct upd_inst *ui, const char *name)
{
	for (size_t i = 0; ui->devices && i < json_object_array_length(ui->devices); i++) {
		json_object *d = json_object_array_get_idx(ui->devices, i);
		const char *n = upd_jstr(d, "name"), *pin = upd_jstr(d, "pinning");

		if (n && strcmp(n, name) == 0)
			return !pin || strcmp(pin, "va") != 0;
	}
	return true;
}

static int read_cmdline(pid_t pid, json_object **ret)
{
	char path[64], buf[8192];
	_cleanup_close_ int fd = -EBADF;
	json_object *a;
	ssize_t n;
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	if (len == 0)
		return -ENODATA;
	buf[len] = '\0';
	a = jnew_arr();
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		jappend(a, jnew_str(buf + i));
	*ret = a;
	return 0;
}

/* the path every device allows; 0 and why when the forced one (or every one) is impossible */
static char choose_path(struct update *u, const char *want, bool disruptive, char *why, size_t len)
{
	bool a = true, b = true, c = true, susp = true;

	for (unsigned i = 0; i < u->ndevs; i++) {
		uint64_t f = u->devs[i].backend;

		if (!upd_has_bf(f, VHOST_BACKEND_F_SUSPEND))
			susp = false;
		if (!upd_has_bf(f, VHOST_BACKEND_F_NEW_OWNER) || !upd_has_bf(f, VHOST_BACKEND_F_RESUME) ||
		    !upd_has_bf(f, VHOST_BACKEND_F_SUSPEND))
			a = false;
		if (!upd_has_bf(f, VHOST_BACKEND_F_NEW_OWNER) || !upd_has_bf(f, VHOST_BACKEND_F_IOTLB_PERSIST) ||
		    !upd_has_bf(f, VHOST_BACKEND_F_SUSPEND))
			b = false;
	}
	if (!susp && !disruptive)
		c = false;
	if (!want || strcmp(want, "auto") == 0) {
		if (a)
			snprintf(why, len, "auto: every device offers NEW_OWNER, SUSPEND and RESUME");
		else if (b)
			snprintf(why, len, "auto: NEW_OWNER and IOTLB_PERSIST but no RESUME on some device");
		else if (c)
			snprintf(why, len, "auto: no NEW_OWNER on some device (stock kernel): reopen and re-pin%s",
				 susp ? "" : " (disruptive: no SUSPEND)");
		else {
			snprintf(why, len, "a device lacks SUSPEND and a disruptive update is not allowed");
			return 0;
		}
		return a ? 'A' : b ? 'B' : 'C';
	}
	if (strcmp(want, "A") == 0 && a)
		return snprintf(why, len, "forced: A"), 'A';
	if (strcmp(want, "B") == 0 && b)
		return snprintf(why, len, "forced: B"), 'B';
	if (strcmp(want, "C") == 0 && c)
		return snprintf(why, len, "forced: C%s", susp ? "" : " (disruptive: no SUSPEND)"), 'C';
	if (strcmp(want, "A") && strcmp(want, "B") && strcmp(want, "C"))
		snprintf(why, len, "unknown path '%s' (auto, A, B or C)", want);
	else if (strcmp(want, "C") == 0)
		snprintf(why, len, "path C: a device lacks SUSPEND and a disruptive update is not allowed");
	else
		snprintf(why, len, "path %s: a device lacks %s", want,
			 strcmp(want, "A") == 0 ? "NEW_OWNER, SUSPEND or RESUME" : "NEW_OWNER, SUSPEND or IOTLB_PERSIST");
	return 0;
}

static int refuse(struct request *r, struct instance *inst, enum vlu_error_class cls, const char *fmt, ...)
	_printf_(4, 5);
static int refuse(struct request *r, struct instance *inst, enum vlu_error_class cls, const char *fmt, ...)
{
	json_object *d = jnew_obj();
	va_list ap;

	va_start(ap, fmt);
	(void)request_verror(r, cls, fmt, ap);
	va_end(ap);
	log_info("update of %s refused: %s", inst ? inst->name : "?", r->err);
	jadd(d, "instance", inst ? jnew_str(inst->name) : NULL);
	jadd(d, "reason", jnew_str(r->err));
	jadd(d, "class", jnew_str(vlu_error_class_name(cls)));
	events_emit(VLU_EV_UPDATE_REFUSED, inst ? inst->name : NULL, d);
	return -1;
}

/* Can the instance's uid run binary b?  Checked with the instance's file-system ids (setfsuid and
 * setfsgid are per thread), so that the answer says nothing about paths that uid cannot see; for a
 * requester that is not an operator every failure reads the same ("missing" and "not allowed" alike). */
static int check_binary(const char *b, uid_t uid, gid_t gid, bool detail, char *why, size_t len)
{
	int ouid, ogid, e = 0;
	struct stat st;

	if (b[0] != '/')
		return snprintf(why, len, "successor binary '%.200s' is not an absolute path", b), -EINVAL;
	ouid = setfsuid(uid);
	ogid = setfsgid(gid);
	if (stat(b, &st) < 0)
		e = errno;
	else if (!S_ISREG(st.st_mode) || faccessat(AT_FDCWD, b, X_OK, AT_EACCESS) < 0)
		e = EACCES;
	(void)setfsgid(ogid);
	(void)setfsuid(ouid);
	if (e == 0)
		return 0;
	if (!detail)
		snprintf(why, len, "successor binary %.200s: missing or not executable by uid %u", b, (unsigned)uid);
	else if (e == EACCES)
		snprintf(why, len, "successor binary %.200s is not an executable file (for uid %u)", b, (unsigned)uid);
	else
		snprintf(why, len, "successor binary %.200s: %s", b, strerror(e));
	return -e;
}

static int start(struct request *r, struct upd_inst *ui, struct update *u, bool wait, int64_t t0);

int update_cmd_start(struct request *r)
{
	const char *name = request_arg_str(r, "instance"), *mode = request_arg_str(r, "mode"), *want = request_arg_str(r, "path"),
		   *binary = request_arg_str(r, "binary");
	bool wait = request_arg_bool(r, "wait", true), disruptive = request_arg_bool(r, "allow_disruptive", false);
	struct instance *inst = instance_find(name);
	struct upd_inst *ui;
	_cleanup_update_ struct update *u = NULL;
	struct held *other;
	struct upd_iof_plan iplan = {};
	json_object *argv = NULL, *v;
	int64_t succ = -1, map_bytes = 0, pin = 0, mul = 0;
	uint64_t soft = 0;
	unsigned npa = 0;
	char why[640], exe[PATH_MAX];
	struct list *p, *t;
	uint8_t rnd[16];
	int64_t t0 = now_monotonic_us();
	int k;

	if (!inst) {
		if (!(r->c->roles & ROLE_OPERATOR))
			return refuse(r, NULL, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
		return refuse(r, NULL, VLU_ERR_NOT_FOUND, "no instance '%s'", name);
	}
	if (!(r->c->roles & ROLE_OPERATOR) && r->c->inst != inst)
		return refuse(r, inst, VLU_ERR_PERMISSION_DENIED, "'%s' is not this connection's instance", name);
	if (json_object_object_get_ex(r->args, "successor_pid", &v))
		succ = json_object_get_int64(v);
	ui = upd_ui_get(inst, true);
	if (!ui)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	if (ui->cur)
		return refuse(r, inst, VLU_ERR_BUSY, "update %" PRIu64 " of '%s' is running (phase %s)", ui->cur->id,
			      name, update_phase_name(ui->cur->phase));
	if (ui->held.pid)
		/* R14: one held successor per instance (the state has one record); the old VMM's reattach, its
		 * exit or commit_ms end it */
		return refuse(r, inst, VLU_ERR_BUSY,
			      "the successor %d of update %" PRIu64 " of '%s' is held stopped until the old VMM %d "
			      "reattaches or exits, or commit_ms passes (vlud restarted or stopped during its take-back "
			      "of the iommufd charge)",
			      (int)ui->held.pid, ui->held.update, name, (int)ui->held.old_pid);
	if (commands_reopen_pending(inst))
		return refuse(r, inst, VLU_ERR_BUSY, "a device of '%s' is being reopened (device.reopen)", name);
	if (strcmp(mode, "exec") != 0 && strcmp(mode, "transfer") != 0)
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "mode must be \"exec\" or \"transfer\"");
	if (inst->state != INSTANCE_ATTACHED || !inst->conn || inst->pidfd < 0)
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "instance '%s' is orphaned: no running VMM to update",
			      name);
	if (strcmp(mode, "exec") == 0 && succ > 0)
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "successor_pid is for transfer mode");
	if (strcmp(mode, "transfer") == 0 && succ > 0 && wait)
		/* the named successor needs the token, which only the wait:false reply carries */
		return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT,
			      "successor_pid needs wait:false: the token the successor claims with is in that reply");
	if (disruptive && !vl.cfg->update_policy.allow_disruptive)
		return refuse(r, inst, VLU_ERR_PERMISSION_DENIED,
			      "allow_disruptive asked for, but the policy (update.allow_disruptive) forbids it");
	if (inst->n_held + 1 > upd_claim_max_fds())
		/* never a claim that hands over fewer fds than the instance holds */
		return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED,
			      "instance '%s' holds %u fds: update.claim hands every one plus the state memfd over in "
			      "one message of at most %u fds (limits.max_fds_per_message)",
			      name, inst->n_held, upd_claim_max_fds());

	u = calloc(1, sizeof(*u));
	if (!u)
		return request_error(r, VLU_ERR_INTERNAL, "out of memory");
	u->inst = inst;
	u->old_pidfd = u->new_pidfd = u->state_fd = -EBADF;
	u->claim_pidfd = u->claim_same_pidfd = -EBADF;
	u->release_us = -1;
	u->held_pin_kb = u->held_lck_kb = u->iof_lck_retaken_kb = -1;
	u->mode = strcmp(mode, "exec") == 0 ? MODE_EXEC : MODE_TRANSFER;
	u->old_pid = inst->pid;
	u->uid = inst->uid;
	/* a spawned VMM (successor, restarted previous binary) gets the instance's own groups */
	if (inst->conn->cred.n_groups > 0) {
		u->groups = calloc(inst->conn->cred.n_groups, sizeof(gid_t));
		if (!u->groups)
			return request_error(r, VLU_ERR_INTERNAL, "out of memory");
		memcpy(u->groups, inst->conn->cred.groups, inst->conn->cred.n_groups * sizeof(gid_t));
		u->n_groups = inst->conn->cred.n_groups;
	}
	u->phases = jnew_arr();
	u->t_start_us = u->t_phase_us = t0;
	upd_own_begin(u, t0); /* D's own time: the preflight, the suspend (ended in start()) */
	ev_timer_init(&u->timer, upd_timer_cb, 0., 0.);
	ev_timer_init(&u->hold_timer, upd_hold_timer_cb, 0., 0.);
	ev_io_init(&u->old_io, upd_old_exit_cb, -1, EV_READ);
	ev_io_init(&u->new_io, upd_new_exit_cb, -1, EV_READ);

	/* devices */
	list_for_each_safe(p, t, &inst->held) {
		struct held *h = list_entry(p, struct held, link);
		struct upd_dev *d;

		if (h->type != VLUD_FD_VHOST_VDPA)
			continue;
		other = held_find_rdev(h->rdev, h);
		if (other) {
			/* the update changes the device's owner (A/B) or releases it (C: impossible while another
			 * copy is held, and the reopen would find the node busy) under the other holder */
			bool self = other->inst == inst;

			/* another uid's instance is not named to a VMM (docs/SECURITY.md) */
			if (!self && other->inst->uid != r->c->cred.uid && !(r->c->roles & ROLE_OPERATOR))
				return refuse(r, inst, VLU_ERR_UNSUPPORTED,
					      "%s (fd '%s') is also held by another instance: one holder per device",
					      h->device ? h->device : h->path ? h->path : "the device", h->name);
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s (fd '%s') is also held %s%s%s (fd '%s'): one holder per device",
				      h->device ? h->device : h->path ? h->path : "the device", h->name,
				      self ? "by this instance" : "by instance '", self ? "" : other->inst->name, self ? "" : "'",
				      other->name);
		}
		if (u->ndevs >= MAX_DEVS)
			return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "more than %d devices", MAX_DEVS);
		d = &u->devs[u->ndevs++];
		snprintf(d->name, sizeof(d->name), "%s", h->name);
		d->device = h->device ? strdup(h->device) : NULL;
		d->path = h->path ? strdup(h->path) : NULL;
		if (ioctl(h->fd, VHOST_GET_BACKEND_FEATURES, &d->backend) < 0)
			d->backend = 0;
		if (upd_has_bf(d->backend, VHOST_BACKEND_F_NEW_OWNER) && !vlud_new_owner_probe(h->fd, NULL)) {
			/* bit 0x9 is not allocated upstream: it means our VHOST_NEW_OWNER only if the device
			 * answers our query (vlud holds the fd: any holder may ask); otherwise paths A and B
			 * are not offered */
			log_info("update of %s: %s offers backend bit 0x9 but does not answer the VHOST_NEW_OWNER query (%s): "
				 "not our NEW_OWNER", inst->name, h->name, strerror(errno));
			d->backend &= ~((1ULL << VHOST_BACKEND_F_NEW_OWNER) | (1ULL << VHOST_BACKEND_F_IOTLB_REMAP));
		}
		d->pa = dev_is_pa(ui, h->name);
		npa += d->pa;
	}
	/* iommufd and VFIO devices (docs/IOMMUFD.md): every refusal of CHANGE_PROCESS with its reason; when
	 * none applies, the successor calls CHANGE_PROCESS and the charge of the declared attached file
	 * mappings moves to it (path A's semantics: nothing re-pinned, the devices never stop), and the
	 * vhost-vdpa devices of the same instance (a mixed instance) take their own path in the same update */
	if (upd_iof_held(inst)) {
		int64_t vb = 0, vkb;

		for (size_t i = 0; ui->mappings && i < json_object_array_length(ui->mappings); i++)
			vb += upd_jint(json_object_array_get_idx(ui->mappings, i), "size", 0);
		vkb = (int64_t)npa * vb / 1024;
		if (upd_iof_preflight(inst, ui, u->mode == MODE_EXEC, succ > 0 ? (pid_t)succ : 0, u->ndevs > 0, vkb,
				      &iplan, why, sizeof(why)) < 0)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s", why);
		if (!u->ndevs && want && strcmp(want, "auto") != 0 && strcmp(want, "A") != 0)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED,
				      "%s, but path %s is for vhost-vdpa devices, and the instance has none: iommufd/VFIO "
				      "devices move with IOMMU_IOAS_CHANGE_PROCESS (path A's semantics)",
				      why, want);
		u->iof = true;
		u->iof_acct = iplan.acct;
	}
	if (u->ndevs || !u->iof) {
		/* guest memory of the vhost-vdpa devices: every mapping in a stored memfd */
		if (!ui->mappings || json_object_array_length(ui->mappings) == 0)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED,
				      "no mapping table (vmm.mappings): guest memory is not known to be in a stored memfd");
		for (size_t i = 0; i < json_object_array_length(ui->mappings); i++) {
			json_object *m = json_object_array_get_idx(ui->mappings, i);
			struct held *h = held_find(inst, upd_jstr(m, "memfd"));

			if (!h || h->type != VLUD_FD_MEMFD)
				return refuse(r, inst, VLU_ERR_UNSUPPORTED, "mapping %zu: memfd '%s' is no longer stored", i,
					      upd_jstr(m, "memfd"));
			if (__builtin_add_overflow(map_bytes, upd_jint(m, "size", 0), &map_bytes) ||
			    __builtin_mul_overflow(map_bytes, (int64_t)MAX_DEVS, &mul))
				return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "the mappings' sizes overflow");
		}
		if (__builtin_mul_overflow((int64_t)npa, map_bytes, &mul))
			return refuse(r, inst, VLU_ERR_LIMIT_EXCEEDED, "the mappings' sizes overflow");
		u->expected_kb = mul / 1024;
	}
	/* the previous binary, for a restart after a failed exec-mode update */
	if (u->mode == MODE_EXEC) {
		char lp[64], pb[PATH_MAX];
		ssize_t n;

		snprintf(lp, sizeof(lp), "/proc/%d/exe", (int)inst->pid);
		n = readlink(lp, pb, sizeof(pb) - 1);
		if (n > 0) {
			pb[n] = '\0';
			u->prev_binary = strdup(pb);
			(void)read_cmdline(inst->pid, &u->prev_argv);
		}
	}
	/* successor binary and argv */
	if (u->mode == MODE_EXEC || succ <= 0) {
		if (!binary && u->prev_binary)
			binary = u->prev_binary; /* exec mode: read above */
		else if (!binary) {
			char lp[64];
			ssize_t n;

			snprintf(lp, sizeof(lp), "/proc/%d/exe", (int)inst->pid);
			n = readlink(lp, exe, sizeof(exe) - 1);
			if (n <= 0)
				return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read the VMM's binary (%s): %s", lp,
					      strerror(errno));
			exe[n] = '\0';
			binary = exe;
		}
		if (check_binary(binary, inst->uid, inst->gid, r->c->roles & ROLE_OPERATOR, why, sizeof(why)) < 0)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s", why);
		u->binary = strdup(binary);
		if (json_object_object_get_ex(r->args, "argv", &argv))
			u->argv = json_object_get(argv);
		else if (read_cmdline(inst->pid, &u->argv) < 0)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read the VMM's command line");
	} else {
		_cleanup_close_ int pfd = pidfd_open((pid_t)succ, 0);
		char sp[64];
		struct stat st;

		snprintf(sp, sizeof(sp), "/proc/%d", (int)succ);
		/* a VMM learns nothing about processes of other uids: "not there" and "not yours" read alike */
		if (!(r->c->roles & ROLE_OPERATOR) && (pfd < 0 || stat(sp, &st) < 0 || st.st_uid != inst->uid))
			return refuse(r, inst, VLU_ERR_NOT_FOUND, "no process %" PRId64 " of uid %u", succ,
				      (unsigned)inst->uid);
		if (pfd < 0 || stat(sp, &st) < 0)
			return refuse(r, inst, VLU_ERR_NOT_FOUND, "successor pid %" PRId64 " does not exist", succ);
		if (st.st_uid != inst->uid)
			return refuse(r, inst, VLU_ERR_PERMISSION_DENIED,
				      "successor pid %" PRId64 " runs as uid %u, the instance as uid %u", succ,
				      (unsigned)st.st_uid, (unsigned)inst->uid);
		if (succ == inst->pid)
			return refuse(r, inst, VLU_ERR_INVALID_ARGUMENT, "the successor is the VMM itself: use exec mode");
		u->new_pid = (pid_t)succ;
		u->new_pidfd = TAKE_FD(pfd);
	}
	if (!u->iof && !u->ndevs)
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "instance '%s' holds no vhost-vdpa device", name);
	if (u->ndevs) {
		u->route = choose_path(u, want, disruptive, u->route_reason, sizeof(u->route_reason));
		if (!u->route)
			return refuse(r, inst, VLU_ERR_UNSUPPORTED, "%s%s", u->route_reason,
				      u->iof ? " (the vhost-vdpa devices of an instance that also has iommufd/VFIO devices)" : "");
	}
	if (u->iof) {
		/* what VmPin (and VmLck) must show: the vhost-vdpa share (moved on A/B, released and re-pinned
		 * on C) plus the iommufd share (moved by CHANGE_PROCESS); docs/IOMMUFD.md "Mixed instances" */
		struct iof_mix mix = { .route = u->ndevs ? u->route : 0, .vdpa_bytes = (uint64_t)u->expected_kb * 1024,
				       .iof_bytes = iplan.pinned, .acct = iplan.acct, .same_user = true };

		iof_mix_plan(&mix, &u->iof_plan);
		u->expected_kb = u->iof_plan.expected_kb;
		u->iof_memlock_need = u->iof_plan.memlock_need;
		if (!u->ndevs) {
			u->route = 'A';
			snprintf(u->route_reason, sizeof(u->route_reason),
				 "iommufd/VFIO devices only: the successor calls IOMMU_IOAS_CHANGE_PROCESS (%" PRIu64
				 " kB pinned move, nothing re-pinned)",
				 iplan.pinned / 1024);
		} else {
			size_t l = strlen(u->route_reason);

			snprintf(u->route_reason + l, sizeof(u->route_reason) - l,
				 "; iommufd/VFIO devices: the successor calls IOMMU_IOAS_CHANGE_PROCESS (%" PRIu64
				 " kB move; vhost-vdpa %" PRId64 " kB %s)",
				 iplan.pinned / 1024, u->iof_plan.vdpa_kb,
				 u->iof_plan.vdpa_repinned ? "re-pinned" : u->iof_plan.vdpa_kb ? "moved" : "pinned: VA mode");
		}
	}
	/* pinned memory: O's VmPin must already match the declared PA mappings */
	k = upd_vmpin_read(inst->pid, &pin, NULL);
	if (k < 0)
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "cannot read VmPin of pid %d: %s", (int)inst->pid,
			      strerror(-k));
	u->old_before_kb = pin;
	if (u->iof)
		(void)upd_vmpin_read(inst->pid, NULL, &u->iof_lck_before_kb);
	if (pin != u->expected_kb)
		return refuse(r, inst, VLU_ERR_UNSUPPORTED,
			      "VmPin of pid %d is %" PRId64 " kB, the declared PA mappings pin %" PRId64
			      " kB: the accounting to verify is already wrong",
			      (int)inst->pid, pin, u->expected_kb);
	/* RLIMIT_MEMLOCK of the process that will pin (exec: the same process; transfer: the named pid;
	 * a spawned successor gets it set at spawn) */
	if (u->expected_kb > 0 && (u->mode == MODE_EXEC || u->new_pid > 0)) {
		pid_t who = u->mode == MODE_EXEC ? inst->pid : u->new_pid;
		/* iommufd: the kernel charges the caller of CHANGE_PROCESS before it uncharges the old owner,
		 * twice the pinned size for the same user in user mode (iof_preflight()) */
		uint64_t need = u->iof ? u->iof_memlock_need : (uint64_t)u->expected_kb * 1024;

		if (vmpin_memlock_get(who, &soft, NULL) == 0 && soft < need) {
			if (!vl.cfg->update_policy.allow_memlock_raise)
				return refuse(r, inst, VLU_ERR_UNSUPPORTED,
					      "RLIMIT_MEMLOCK of pid %d is %" PRIu64 " bytes, the successor must pin %" PRIu64
					      " and the policy (update.allow_memlock_raise) forbids raising it",
					      (int)who, soft, need);
			k = vmpin_memlock_raise(who, need);
			if (k < 0)
				return refuse(r, inst, VLU_ERR_UNSUPPORTED, "prlimit(%d, RLIMIT_MEMLOCK, %" PRIu64 "): %s",
					      (int)who, need, strerror(-k));
			log_info("update of %s: raised RLIMIT_MEMLOCK of pid %d to %" PRIu64 " bytes", name, (int)who,
				 need);
		}
	}

	u->old_pidfd = fcntl(inst->pidfd, F_DUPFD_CLOEXEC, 3);
	if (u->old_pidfd < 0)
		return request_error(r, VLU_ERR_INTERNAL, "dup pidfd: %s", strerror(errno));
	u->old_pidfd_pid = upd_pidfd_pid(u->old_pidfd);
	if (u->mode == MODE_EXEC && u->old_pidfd_pid != u->old_pid)
		/* the claim of an exec-mode image compares with it: checked here, before O suspends and execs, not
		 * found at the claim inside the pause (and rolled back); a transfer's claim does not use it */
		return refuse(r, inst, VLU_ERR_UNSUPPORTED, "the pidfd of pid %d names pid %d (fdinfo)",
			      (int)u->old_pid, (int)u->old_pidfd_pid);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return request_error(r, VLU_ERR_INTERNAL, "getrandom: %s", strerror(errno));
	for (unsigned i = 0; i < sizeof(rnd); i++)
		snprintf(u->token + 2 * i, 3, "%02x", rnd[i]);
	/* --- preflight passed: from here on, every failure rolls back --- */
	return start(r, ui, TAKE_PTR(u), wait, t0);
}

/* the update runs: phases suspend and save (u is the instance's running update from here) */
static int start(struct request *r, struct upd_inst *ui, struct update *u, bool wait, int64_t t0)
{
	json_object *v;
	int k;

	u->id = update_next_id++;
	u->token_valid = true;
	u->old_conn = u->inst->conn->id;
	ui->cur = u;
	upd_watch_pid(u, &u->old_io, u->old_pidfd);
	upd_watch_pid(u, &u->new_io, u->new_pidfd);
	{
		json_object *d = upd_event_base(u);

		jadd(d, "path_reason", jnew_str(u->route_reason));
		jadd(d, "old_pid", jnew_int(u->old_pid));
		events_emit(VLU_EV_UPDATE_STARTED, u->inst->name, d);
	}
	log_info("update %" PRIu64 " of %s: %s mode, path %c (%s)", u->id, u->inst->name, upd_mode_name(u->mode), u->route,
		 u->route_reason);

	/* the devices' visible state before anything changes (the verdict's device_state) */
	for (unsigned i = 0; i < u->ndevs; i++)
		u->devs[i].state_before = upd_dev_state(u, i);
	upd_set_phase(u, PH_SUSPEND);
	for (unsigned i = 0; i < u->ndevs; i++) {
		if (!upd_has_bf(u->devs[i].backend, VHOST_BACKEND_F_SUSPEND))
			continue; /* disruptive update: allowed above */
		k = upd_dev_ioctl(u, i, VHOST_VDPA_SUSPEND, NULL);
		if (k < 0) {
			upd_rollback(u, RBT_FAILED, CAUSE_SUSPEND, "SUSPEND %s: %s", u->devs[i].name, strerror(-k));
			return request_error(r, VLU_ERR_DEVICE_ERROR, "SUSPEND failed; rolled back");
		}
		u->devs[i].suspended = true;
	}
	upd_own_split(u); /* the pause starts: D's own time before it is not inside it */
	u->t_suspend_us = now_monotonic_us();

	upd_set_phase(u, PH_SAVE);
	{
		json_object *d = upd_event_base(u);

		jadd(d, "release", jnew_bool(u->route == 'C' && u->mode == MODE_TRANSFER));
		/* false in a disruptive update: a device without SUSPEND runs on (the VMM's saved vring bases
		 * are a snapshot of a running device) */
		jadd(d, "suspended", jnew_bool(!upd_disruptive(u)));
		events_tell(upd_conn_by_id(u->old_conn), VLU_EV_UPDATE_SAVE, u->inst->name, d);
	}
	upd_own_end(u);
	if (wait) {
		upd_deferred_take(&u->starter, r);
		return 0;
	}
	v = upd_event_base(u);
	jadd(v, "path_reason", jnew_str(u->route_reason));
	if (u->mode == MODE_TRANSFER && u->new_pid > 0)
		/* the operator starts the successor itself: it needs the token */
		jadd(v, "token", jnew_str(u->token));
	r->ret = v;
	return 0;
}

