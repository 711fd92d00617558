/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-update-told.c - who the update engine takes for the old VMM O in exec mode, against real child
 * processes standing in for O's image (docs/UPDATE.md "Events", row R1).  The host has no /dev/iommu and
 * no vhost-vdpa device, so an update cannot reach its exec phase here (update.start's preflight refuses an
 * instance without a vhost-vdpa device, and probes IOMMU_IOAS_CHANGE_PROCESS on /dev/iommu for an
 * iommufd/VFIO one); the held fds are built here, typed VFIO / iommufd, with the rdev of /dev/null and
 * /dev/zero, and the child holds those nodes (O before its exec) or nothing (the exec'd image):
 *   - upd_pid_holds_rdev(): 1 when the pid holds the rdev, 0 when not, -errno for a pid that is gone;
 *   - upd_old_execed(), an iommufd-only instance: the VFIO cdev held by O's pid means not exec'd (a failed
 *     exec is O's, R1 resume; before 75a8bad it counted as exec'd: the previous binary restarted beside
 *     the running O); an instance with only an iommufd: its rdev decides; with a VFIO device too, the
 *     iommufd's rdev is not looked at (a fresh image opens its own /dev/iommu); only in phase exec;
 *   - upd_old_conn_told(): O's connection is told while O has not exec'd; once it has, the connection
 *     its new image kept is not O's (no update.completed straight to it); in PH_DONE the phase no longer
 *     says so, which is why upd_finish() decides before it sets PH_DONE;
 *   - upd_finish() itself, the update ended in phase exec (an instance.release, vlud's stop, the deadline
 *     between the exec and the claim): its socket (a SEQPACKET pair) subscribed with a filter without
 *     update.completed, the connection the exec'd image kept receives no update.completed, an operator
 *     subscriber exactly one; a failed exec (O still holds its VFIO cdev): O's connection gets it once,
 *     told directly (before 75a8bad the kept connection was told, PH_DONE counting it as O's again);
 *   - upd_rollback_act(), RB_RESTART_PREVIOUS whose restart fails (an argv spawn_successor() refuses): the
 *     next decision finds no connection of O's (keep-suspended, "failed"); the kept connection hears
 *     neither update.rolled-back nor update.completed (before 75a8bad it counted as O's again in phase
 *     spawn: "resume", the exec'd image told it had the devices back).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <ev.h>

#include "conn.h"
#include "config.h"
#include "held.h"
#include "instance.h"
#include "policy.h"
#include "update-int.h"
#include "vlu-proto.h"
#include "vlud.h"

/* what daemon/main.c defines (not linked: it has main()) */
struct vlud vl;
int vlud_log_level = LOG_WARNING;

void vlud_log(int prio, const char *fmt, ...)
{
	va_list ap;

	if (prio > vlud_log_level)
		return;
	fputs("# ", stderr); /* (TAP comments) */
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void vlud_notify_status(void)
{
}

/* a child that holds the node path (NULL: nothing at all, not even stdio) and waits to be killed */
static pid_t child_holding(const char *path)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

		/* (a failed assertion leaves no child behind) */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(1);
		if (path && (fd < 0 || dup2(fd, 100) < 0))
			_exit(1);
		if (dup2(p[1], 101) < 0)
			_exit(1);
		/* nothing inherited (the test's stdio may be /dev/null itself) */
		syscall(SYS_close_range, 0U, 99U, 0U);
		syscall(SYS_close_range, 102U, ~0U, 0U);
		if (write(101, "x", 1) != 1)
			_exit(1);
		close(101);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void child_end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static dev_t rdev_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_rdev;
}

static struct vlud_config cfg;
static struct instance inst;
static struct held h_vfio, h_iommufd;
static struct conn kept;

/* an exec-mode update in phase exec of an instance holding the fds of types (VFIO, iommufd), none vhost-vdpa;
 * O is pid, its connection the one the test registered */
static void setup_update(struct update *u, pid_t pid, bool vfio, bool iommufd)
{
	vl.cfg = &cfg;
	cfg.update_policy.restart_previous = true;
	cfg.update_policy.kill_failed_successor = true;
	list_init(&vl.conns);
	list_init(&vl.instances);
	vl.state_fd = -EBADF;
	memset(&kept, 0, sizeof(kept));
	kept.id = 7;
	kept.fd = -EBADF;
	list_init(&kept.outq);
	list_add_tail(&vl.conns, &kept.link);
	memset(&inst, 0, sizeof(inst));
	snprintf(inst.name, sizeof(inst.name), "%s", "vm1");
	inst.uid = getuid();
	list_init(&inst.held);
	list_add_tail(&vl.instances, &inst.link);
	inst.conn = &kept;
	memset(&h_vfio, 0, sizeof(h_vfio));
	snprintf(h_vfio.name, sizeof(h_vfio.name), "%s", "vfio0");
	h_vfio.type = VLUD_FD_VFIO;
	h_vfio.rdev = rdev_of("/dev/null");
	memset(&h_iommufd, 0, sizeof(h_iommufd));
	snprintf(h_iommufd.name, sizeof(h_iommufd.name), "%s", "iommufd");
	h_iommufd.type = VLUD_FD_IOMMUFD;
	h_iommufd.rdev = rdev_of("/dev/zero");
	if (iommufd)
		list_add_tail(&inst.held, &h_iommufd.link);
	if (vfio)
		list_add_tail(&inst.held, &h_vfio.link);
	memset(u, 0, sizeof(*u));
	u->inst = &inst;
	u->mode = MODE_EXEC;
	u->phase = PH_EXEC;
	u->route = 'A';
	u->iof = true;
	u->old_pid = pid;
	u->old_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(u->old_pidfd >= 0);
	u->new_pidfd = -EBADF;
	u->state_fd = -EBADF;
	u->release_us = -1;
	u->old_conn = kept.id;
}

static void teardown_update(struct update *u)
{
	close(u->old_pidfd);
}

static void pid_holds_rdev(void **state)
{
	pid_t holds = child_holding("/dev/null"), none = child_holding(NULL);

	(void)state;
	assert_int_equal(upd_pid_holds_rdev(holds, rdev_of("/dev/null")), 1);
	assert_int_equal(upd_pid_holds_rdev(holds, rdev_of("/dev/zero")), 0);
	assert_int_equal(upd_pid_holds_rdev(none, rdev_of("/dev/null")), 0);
	child_end(holds);
	/* reaped: /proc/PID/fd is gone (unknown, not "no") */
	assert_true(upd_pid_holds_rdev(holds, rdev_of("/dev/null")) < 0);
	child_end(none);
}

/* iommufd-only: O holds its VFIO cdev until the exec; after a failed exec it still does (R1: resume) */
static void vfio_held_means_not_execed(void **state)
{
	struct update u;
	pid_t o = child_holding("/dev/null");

	(void)state;
	setup_update(&u, o, true, true);
	assert_false(upd_old_execed(&u));
	teardown_update(&u);
	child_end(o);
}

static void vfio_gone_means_execed(void **state)
{
	struct update u;
	pid_t o = child_holding(NULL);

	(void)state;
	setup_update(&u, o, true, true);
	assert_true(upd_old_execed(&u));
	teardown_update(&u);
	child_end(o);
}

/* a VFIO device held: the iommufd's rdev (every /dev/iommu open has it) does not make the image O's */
static void own_iommufd_does_not_count_beside_vfio(void **state)
{
	struct update u;
	pid_t o = child_holding("/dev/zero");

	(void)state;
	setup_update(&u, o, true, true);
	assert_true(upd_old_execed(&u));
	teardown_update(&u);
	child_end(o);
}

/* only an iommufd held: its rdev decides */
static void iommufd_only_decides_alone(void **state)
{
	struct update u;
	pid_t holds = child_holding("/dev/zero"), none = child_holding(NULL);

	(void)state;
	setup_update(&u, holds, false, true);
	assert_false(upd_old_execed(&u));
	teardown_update(&u);
	setup_update(&u, none, false, true);
	assert_true(upd_old_execed(&u));
	teardown_update(&u);
	child_end(holds);
	child_end(none);
}

/* outside phase exec (and in transfer mode) the old image is never "exec'd" */
static void only_in_phase_exec(void **state)
{
	struct update u;
	pid_t o = child_holding(NULL);

	(void)state;
	setup_update(&u, o, true, true);
	u.phase = PH_SAVE;
	assert_false(upd_old_execed(&u));
	u.phase = PH_DONE;
	assert_false(upd_old_execed(&u));
	u.phase = PH_EXEC;
	u.mode = MODE_TRANSFER;
	assert_false(upd_old_execed(&u));
	teardown_update(&u);
	child_end(o);
}

/* the connection told the end of the update: O's while O has not exec'd, none once the new image kept it */
static void told_only_while_o(void **state)
{
	struct update u;
	pid_t before = child_holding("/dev/null"), after = child_holding(NULL);

	(void)state;
	setup_update(&u, before, true, true);
	assert_ptr_equal(upd_old_conn_told(&u), &kept); /* a failed exec: O runs on and waits for the verdict */
	teardown_update(&u);
	setup_update(&u, after, true, true);
	assert_null(upd_old_conn_told(&u)); /* the new image's kept connection: subscribers only */
	/* PH_DONE forgets the exec: upd_finish() must have decided before it sets the phase */
	u.phase = PH_DONE;
	assert_ptr_equal(upd_old_conn_told(&u), &kept);
	teardown_update(&u);
	child_end(before);
	child_end(after);
}

/* the connection c at the test's end of a SEQPACKET pair (returned), subscribed to vm1 (or, an operator,
 * to every instance) with the filter mask */
static int conn_socket(struct conn *c, uint64_t id, bool operator, vlu_event_mask mask)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	if (c != &kept) {
		memset(c, 0, sizeof(*c));
		list_init(&c->outq);
		list_add_tail(&vl.conns, &c->link);
	}
	c->id = id;
	c->fd = sv[0];
	c->cred.uid = getuid();
	c->roles = operator ? ROLE_OPERATOR : 0;
	c->subscribed = true;
	c->sub_events = mask;
	snprintf(c->sub_instance, sizeof(c->sub_instance), "%s", operator ? "" : "vm1");
	return sv[1];
}

/* the update.completed (and update.rolled-back) events waiting at sock; result: the last verdict's */
static unsigned ends_at(int sock, unsigned *rolled_back, char *result, size_t len)
{
	char buf[65536];
	unsigned n = 0;
	ssize_t k;

	if (rolled_back)
		*rolled_back = 0;
	while ((k = recv(sock, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		json_object *m, *e, *d, *r;

		buf[k] = '\0';
		m = json_tokener_parse(buf);
		assert_non_null(m);
		if (json_object_object_get_ex(m, "event", &e) && strcmp(json_object_get_string(e), "update.completed") == 0) {
			n++;
			if (result && json_object_object_get_ex(m, "data", &d) && json_object_object_get_ex(d, "result", &r))
				snprintf(result, len, "%s", json_object_get_string(r));
		}
		if (rolled_back && json_object_object_get_ex(m, "event", &e) &&
		    strcmp(json_object_get_string(e), "update.rolled-back") == 0)
			(*rolled_back)++;
		json_object_put(m);
	}
	return n;
}

static unsigned completed_at(int sock)
{
	return ends_at(sock, NULL, NULL, 0);
}

/* upd_finish() of an update in phase exec whose O is pid: update.completed at O's kept connection and at an
 * operator's subscription */
static void finish_in_exec(pid_t pid, unsigned *at_kept, unsigned *at_operator)
{
	struct update *u = calloc(1, sizeof(*u));
	struct conn op;
	int ks, os;

	assert_non_null(u);
	vl.loop = ev_default_loop(0);
	setup_update(u, pid, true, true);
	ks = conn_socket(&kept, 7, false, VLU_EVENTS_ALL & ~VLU_EVENT_BIT(VLU_EV_UPDATE_COMPLETED));
	os = conn_socket(&op, 8, true, VLU_EVENTS_ALL);
	u->id = 42;
	u->phases = json_object_new_array();
	u->t_start_us = u->t_phase_us = now_monotonic_us();
	u->claim_pidfd = u->claim_same_pidfd = -EBADF;
	upd_finish(u, "rolled-back", VLU_EV_UPDATE_COMPLETED, NULL); /* frees u */
	*at_kept = completed_at(ks);
	*at_operator = completed_at(os);
	list_del(&op.link);
	close(op.fd);
	close(kept.fd);
	close(ks);
	close(os);
}

/* the update ended between the exec and the claim: the new image's kept connection hears nothing directly */
static void finish_after_exec_tells_subscribers_only(void **state)
{
	pid_t after = child_holding(NULL);
	unsigned k, o;

	(void)state;
	finish_in_exec(after, &k, &o);
	assert_int_equal(k, 0);
	assert_int_equal(o, 1);
	child_end(after);
}

/* the exec failed (O holds its VFIO cdev): O's connection is told directly, once */
static void finish_failed_exec_tells_o(void **state)
{
	pid_t before = child_holding("/dev/null");
	unsigned k, o;

	(void)state;
	finish_in_exec(before, &k, &o);
	assert_int_equal(k, 1);
	assert_int_equal(o, 1);
	child_end(before);
}

/* RB_RESTART_PREVIOUS drops O's connection: the exec'd image (alive, its kept connection open) fails in phase
 * exec, the previous binary's restart fails (an argv spawn_successor() refuses: E2BIG), and the next decision
 * sees no connection of O's (keep-suspended: "failed"), not the kept one as O's again in phase spawn (which
 * would "resume" the exec'd image as O and tell it rolled-back) */
static void failed_restart_tells_nobody(void **state)
{
	struct update *u = calloc(1, sizeof(*u));
	pid_t after = child_holding(NULL);
	unsigned rb_kept, rb_op, c_kept, c_op;
	char res_op[32] = "", res_kept[32] = "";
	struct conn op;
	int ks, os;

	(void)state;
	assert_non_null(u);
	vl.loop = ev_default_loop(0);
	setup_update(u, after, true, true);
	ks = conn_socket(&kept, 7, false,
			 VLU_EVENTS_ALL & ~(VLU_EVENT_BIT(VLU_EV_UPDATE_COMPLETED) | VLU_EVENT_BIT(VLU_EV_UPDATE_ROLLED_BACK)));
	os = conn_socket(&op, 8, true, VLU_EVENTS_ALL);
	u->id = 43;
	u->phases = json_object_new_array();
	u->t_start_us = u->t_phase_us = now_monotonic_us();
	u->claim_pidfd = u->claim_same_pidfd = -EBADF;
	u->state_fd = memfd_create("saved", MFD_CLOEXEC);
	assert_true(u->state_fd >= 0);
	u->prev_binary = strdup("/bin/true");
	u->prev_argv = json_object_new_array();
	for (int i = 0; i < 65; i++)
		json_object_array_add(u->prev_argv, json_object_new_string("x"));
	upd_rollback_act(u, RBT_FAILED); /* ends the update: frees u */
	c_kept = ends_at(ks, &rb_kept, res_kept, sizeof(res_kept));
	c_op = ends_at(os, &rb_op, res_op, sizeof(res_op));
	assert_int_equal(c_kept, 0);
	assert_int_equal(rb_kept, 0);
	assert_int_equal(c_op, 1);
	assert_string_equal(res_op, "failed");
	list_del(&op.link);
	close(op.fd);
	close(kept.fd);
	close(ks);
	close(os);
	child_end(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pid_holds_rdev),
		cmocka_unit_test(vfio_held_means_not_execed),
		cmocka_unit_test(vfio_gone_means_execed),
		cmocka_unit_test(own_iommufd_does_not_count_beside_vfio),
		cmocka_unit_test(iommufd_only_decides_alone),
		cmocka_unit_test(only_in_phase_exec),
		cmocka_unit_test(told_only_while_o),
		cmocka_unit_test(finish_after_exec_tells_subscribers_only),
		cmocka_unit_test(finish_failed_exec_tells_o),
		cmocka_unit_test(failed_restart_tells_nobody),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
