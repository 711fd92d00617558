/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-update-decide.c - the rollback decision (daemon/update-decide.c), one case per row of the rollback
 * table in docs/UPDATE.md ("## Rollback"), each named by the row's id (R1_..., R2_...), and a case that
 * reads the table ($VLU_TOP/docs/UPDATE.md) and checks that its ids and these cases are the same set.
 * Also the phase table that daemon/state.c shares.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "update-decide.h"

/* a running update with everyone alive and the default policy: the row cases change what they need */
static struct rb_facts base(enum rb_trigger t, bool transfer, char route, enum phase ph)
{
	struct rb_facts f = {
		.trigger = t,
		.transfer = transfer,
		.route = route,
		.phase = ph,
		.old_alive = true,
		.old_conn = true,
		.old_conn_free = false,
		.inst_on_old_conn = true,
		.new_alive = false,
		.saved = ph >= PH_RESET,
		.prev_binary = true,
		.pol_restart_previous = true,
		.pol_kill_failed_successor = true,
	};

	return f;
}

#define assert_action(f, want)                                                                                        \
	do {                                                                                                          \
		enum rb_action got_ = update_decide(&(f));                                                            \
		if (got_ != (want))                                                                                   \
			fail_msg("%s:%d: %s, want %s", __FILE__, __LINE__, update_action_name(got_),                  \
				 update_action_name(want));                                                           \
	} while (0)

/* R1: O does not save in time, aborts, reports a save error, one of D's own steps fails, exec fails */
static void R1_save_failed_resume(void **state)
{
	static const enum phase phases[] = { PH_SUSPEND, PH_SAVE, PH_RESET, PH_SPAWN };

	(void)state;
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		for (int tr = 0; tr < 2; tr++)
			for (const char *r = "ABC"; *r; r++) {
				struct rb_facts f = base(RBT_FAILED, tr, *r, phases[i]);

				assert_action(f, RB_RESUME);
				f.trigger = RBT_DEADLINE; /* O is never killed in phase save */
				assert_action(f, RB_RESUME);
			}
	/* exec mode, O's exec failed: it is still on its connection and calls update.abort */
	struct rb_facts f = base(RBT_FAILED, false, 'B', PH_EXEC);
	assert_action(f, RB_RESUME);
	assert_string_equal(update_action_result(RB_RESUME, false), "rolled-back");
	/* transfer mode, A/B: O's update.armed with an error (phase claim, N spawned or named, no claim yet) */
	for (const char *r = "AB"; *r; r++)
		for (int sp = 0; sp < 2; sp++) {
			struct rb_facts g = base(RBT_FAILED, true, *r, PH_CLAIM);

			g.saved = true;
			g.spawned = sp;
			g.new_alive = true;
			assert_action(g, RB_RESUME);
		}
}

/* R2: O dies before saving */
static void R2_old_dies_before_save(void **state)
{
	(void)state;
	for (int tr = 0; tr < 2; tr++) {
		struct rb_facts f = base(RBT_OLD_EXIT, tr, 'A', PH_SAVE);

		f.old_alive = false; /* its connection may still be open: the exit comes first */
		assert_action(f, RB_RESUME_ORPHANED);
		f.old_conn = false;
		if (tr)
			assert_action(f, RB_RESUME_ORPHANED);
	}
	assert_string_equal(update_action_result(RB_RESUME_ORPHANED, false), "failed");
}

/* R3: exec mode, the old image is gone: the previous binary; without it every fd kept */
static void R3_exec_restart_previous(void **state)
{
	struct rb_facts f;

	(void)state;
	/* O died after saving, before its exec */
	f = base(RBT_OLD_EXIT, false, 'A', PH_EXEC);
	f.old_alive = false;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* the new image never claims (its old connection closed at exec) */
	f = base(RBT_DEADLINE, false, 'C', PH_EXEC);
	f.old_conn = false;
	f.old_alive = false;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* N died after its claim (restored or not) */
	f = base(RBT_NEW_EXIT, false, 'B', PH_RESTORE);
	f.old_conn = false;
	f.old_alive = false;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* ... but not while the successor still runs with the fds */
	f.new_alive = true;
	f.trigger = RBT_FAILED;
	assert_action(f, RB_KEEP);
	f.new_alive = false;
	/* policy off, nothing recorded to restart, or the restart failed: every fd kept */
	f.pol_restart_previous = false;
	assert_action(f, RB_KEEP);
	f.pol_restart_previous = true;
	f.prev_binary = false;
	assert_action(f, RB_KEEP);
	f.prev_binary = true;
	f.restart_failed = true;
	assert_action(f, RB_KEEP);
	/* before any claim: the devices stay suspended */
	f = base(RBT_DEADLINE, false, 'A', PH_EXEC);
	f.old_conn = false;
	f.old_alive = false;
	f.restart_failed = true;
	assert_action(f, RB_KEEP_SUSPENDED);
	/* the restarted binary fails in turn: no second restart */
	f = base(RBT_NEW_EXIT, false, 'A', PH_CLAIM);
	f.old_conn = false;
	f.old_alive = false;
	f.restarted = true;
	assert_action(f, RB_KEEP_SUSPENDED);
	/* O's exit does not matter once the previous binary runs */
	f.trigger = RBT_OLD_EXIT;
	assert_action(f, RB_IGNORE);
	assert_string_equal(update_action_result(RB_KEEP, false), "failed");
	assert_null(update_action_result(RB_RESTART_PREVIOUS, false));
}

/* R4: a deadline with a late process that holds (or is about to take) the fds: killed first */
static void R4_deadline_kill(void **state)
{
	struct rb_facts f;

	(void)state;
	/* exec mode: the exec'ed image in phase exec (its old connection gone) or restore */
	f = base(RBT_DEADLINE, false, 'A', PH_EXEC);
	f.old_conn = false;
	assert_action(f, RB_KILL_OLD);
	f.phase = PH_RESTORE;
	f.new_alive = true; /* after the claim the same process is watched as N */
	assert_action(f, RB_KILL_OLD);
	/* its exit is the R3 row; a signal that failed: the rollback now */
	f.kill_failed = true;
	assert_action(f, RB_KEEP); /* alive: no restart while it holds the fds */
	/* transfer mode: N after its claim, a spawned N that never claims, the restarted previous binary */
	f = base(RBT_DEADLINE, true, 'A', PH_RESTORE);
	f.new_alive = true;
	assert_action(f, RB_KILL_NEW);
	f = base(RBT_DEADLINE, true, 'C', PH_CLAIM);
	f.new_alive = true;
	f.spawned = true;
	assert_action(f, RB_KILL_NEW);
	f = base(RBT_DEADLINE, false, 'A', PH_CLAIM);
	f.old_conn = false;
	f.old_alive = false;
	f.restarted = true;
	f.new_alive = true;
	assert_action(f, RB_KILL_NEW);
	/* never an operator-named successor before its claim: it holds nothing */
	f = base(RBT_DEADLINE, true, 'A', PH_CLAIM);
	f.new_alive = true;
	assert_action(f, RB_RESUME);
	/* never O while it takes a reopened device back */
	f = base(RBT_DEADLINE, true, 'C', PH_ROLLBACK);
	f.retake = true;
	f.new_alive = true;
	assert_action(f, RB_KEEP_RETAKE);
	/* one kill at a time: its exit rolls back, the guard deadline rolls back now */
	f = base(RBT_DEADLINE, true, 'A', PH_RESTORE);
	f.new_alive = true;
	f.kill_pending = true;
	assert_action(f, RB_RECLAIM);
	/* policy off: the phase's row without the kill */
	f = base(RBT_DEADLINE, true, 'A', PH_RESTORE);
	f.new_alive = true;
	f.pol_kill_failed_successor = false;
	assert_action(f, RB_RECLAIM);
	f = base(RBT_DEADLINE, false, 'A', PH_RESTORE);
	f.old_conn = false;
	f.new_alive = true;
	f.pol_kill_failed_successor = false;
	assert_action(f, RB_KEEP);
}

/* R5: the verification failed at N's update.ready */
static void R5_verify_failed(void **state)
{
	struct rb_facts f;

	(void)state;
	/* transfer mode, O alive: N is killed, O takes back at its exit (R8, R9) */
	for (const char *r = "ABC"; *r; r++) {
		f = base(RBT_VERIFY, true, *r, PH_VERIFY);
		f.new_alive = true;
		f.old_conn_free = true;
		assert_action(f, RB_KILL_NEW);
		/* the policy off: A/B back to O at once, C keeps every fd (N holds the reopened device) */
		f.pol_kill_failed_successor = false;
		assert_action(f, *r == 'C' ? RB_KEEP : RB_RECLAIM);
	}
	/* exec mode, or O gone: failed as it stands, N not killed */
	f = base(RBT_VERIFY, false, 'C', PH_VERIFY);
	f.new_alive = true;
	f.old_conn = false;
	assert_action(f, RB_FAIL);
	f = base(RBT_VERIFY, true, 'A', PH_VERIFY);
	f.new_alive = true;
	f.old_alive = false;
	assert_action(f, RB_FAIL);
	assert_string_equal(update_action_result(RB_FAIL, false), "failed");
}

/* R6: transfer mode, O dies after saving: the update goes on; N failing then finds O gone */
static void R6_transfer_old_dies_after_save(void **state)
{
	struct rb_facts f;

	(void)state;
	for (const char *r = "ABC"; *r; r++) {
		f = base(RBT_OLD_EXIT, true, *r, PH_CLAIM);
		f.old_alive = false;
		f.new_alive = true;
		assert_action(f, RB_CONTINUE);
		/* O's exit after N's claim does not matter either */
		f.phase = PH_RESTORE;
		assert_action(f, RB_IGNORE);
		/* N then fails before its claim: RESUME, failed */
		f = base(RBT_NEW_EXIT, true, *r, PH_CLAIM);
		f.old_alive = false;
		f.old_conn = false;
		assert_action(f, RB_RESUME_ORPHANED);
		/* ... or after it: every fd kept */
		f.phase = PH_RESTORE;
		assert_action(f, RB_KEEP);
	}
	/* not before O saved */
	f = base(RBT_OLD_EXIT, true, 'A', PH_SAVE);
	f.old_alive = false;
	f.saved = false;
	assert_action(f, RB_RESUME_ORPHANED);
}

/* R7: transfer mode, N dies or times out before its claim: O (still the owner) takes back */
static void R7_transfer_new_dies_before_claim(void **state)
{
	struct rb_facts f;

	(void)state;
	for (const char *r = "ABC"; *r; r++) {
		f = base(RBT_NEW_EXIT, true, *r, PH_CLAIM);
		assert_action(f, RB_RESUME);
		f.trigger = RBT_DEADLINE;
		assert_action(f, RB_RESUME);
		f.phase = PH_SPAWN;
		f.trigger = RBT_NEW_EXIT;
		assert_action(f, RB_RESUME);
	}
	/* path C, the claim released and reopened the device, the claimant's connection was gone before the
	 * hand-over: O takes the fresh fds */
	f = base(RBT_FAILED, true, 'C', PH_CLAIM);
	f.released = true;
	assert_action(f, RB_RETAKE_REOPENED);
	/* ... unless the reopen lost a device */
	f.lost = true;
	assert_action(f, RB_RESUME);
	assert_string_equal(update_action_result(RB_RESUME, true), "failed");
}

/* R8: transfer mode, paths A/B, N dies after its claim: the instance returns to O */
static void R8_transfer_ab_reclaim(void **state)
{
	struct rb_facts f;

	(void)state;
	for (const char *r = "AB"; *r; r++) {
		f = base(RBT_NEW_EXIT, true, *r, PH_RESTORE);
		f.old_conn_free = true;
		f.inst_on_old_conn = false;
		assert_action(f, RB_RECLAIM);
		f.trigger = RBT_FAILED; /* N's restore error */
		assert_action(f, RB_RECLAIM);
		/* O gone too */
		f.old_alive = false;
		assert_action(f, RB_KEEP);
	}
	assert_string_equal(update_action_result(RB_RECLAIM, false), "rolled-back");
}

/* R9: transfer mode, path C, N dies after its claim: release, reopen, O takes the fresh fds */
static void R9_transfer_c_retake(void **state)
{
	struct rb_facts f;

	(void)state;
	f = base(RBT_NEW_EXIT, true, 'C', PH_RESTORE);
	f.old_conn_free = true;
	f.inst_on_old_conn = false;
	f.released = true;
	assert_action(f, RB_RETAKE);
	assert_null(update_action_result(RB_RETAKE, false));
	/* N still runs (its copy keeps the node busy), or O gone: every fd kept */
	f.new_alive = true;
	f.trigger = RBT_FAILED;
	assert_action(f, RB_KEEP);
	f.new_alive = false;
	f.old_alive = false;
	assert_action(f, RB_KEEP);
	/* while O takes it back: O's death or the deadline ends it, every fd kept; N's exit is ignored */
	f = base(RBT_OLD_EXIT, true, 'C', PH_ROLLBACK);
	f.retake = true;
	f.old_alive = false;
	assert_action(f, RB_KEEP_RETAKE);
	f.trigger = RBT_DEADLINE;
	assert_action(f, RB_KEEP_RETAKE);
	f.trigger = RBT_NEW_EXIT;
	assert_action(f, RB_IGNORE);
	assert_string_equal(update_action_result(RB_KEEP_RETAKE, false), "failed");
}

/* R10: the instance is released, or the daemon stops: RESUME, failed, whatever the phase */
static void R10_released_or_stopping(void **state)
{
	(void)state;
	for (int ph = PH_SUSPEND; ph < PH_DONE; ph++)
		for (int tr = 0; tr < 2; tr++) {
			struct rb_facts f = base(RBT_STOP, tr, 'C', (enum phase)ph);

			f.retake = ph == PH_ROLLBACK;
			f.restarted = !tr && ph == PH_CLAIM;
			assert_action(f, RB_STOP);
		}
	assert_string_equal(update_action_result(RB_STOP, false), "failed");
}

/* path C, the claimant dies while the accepted claim waits for the closer (D's old device copies being
 * closed): the exit waits for the close, whose completion reopens the device and rolls back (the chaos soak,
 * seed 5, kill 35: exec C, the claimed image killed 10 ms into the claim, ended with the device lost) */
static void claimant_exit_waits_for_release(void **state)
{
	struct rb_facts f;

	(void)state;
	/* exec mode: the claimant is O's pid */
	f = base(RBT_OLD_EXIT, false, 'C', PH_CLAIM);
	f.old_conn = false;
	f.old_alive = false;
	f.claim_pending = true;
	assert_action(f, RB_IGNORE);
	/* then the completion, the claimant gone: the previous binary takes the reopened device */
	f.trigger = RBT_FAILED;
	f.claim_pending = false;
	f.released = true;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* without the pending close, as before: the exit decides now */
	f = base(RBT_OLD_EXIT, false, 'C', PH_CLAIM);
	f.old_conn = false;
	f.old_alive = false;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* transfer mode: the claimant N */
	f = base(RBT_NEW_EXIT, true, 'C', PH_CLAIM);
	f.spawned = true;
	f.claim_pending = true;
	assert_action(f, RB_IGNORE);
	f.trigger = RBT_FAILED;
	f.claim_pending = false;
	f.released = true;
	assert_action(f, RB_RETAKE_REOPENED);
	/* O's exit in transfer mode goes on as before (N may still claim) */
	f = base(RBT_OLD_EXIT, true, 'C', PH_CLAIM);
	f.claim_pending = true;
	f.old_alive = false;
	assert_action(f, RB_CONTINUE);
	/* a deadline does not wait for the close (as before) */
	f = base(RBT_DEADLINE, false, 'C', PH_CLAIM);
	f.old_conn = false;
	f.claim_pending = true;
	f.pol_kill_failed_successor = false;
	assert_action(f, RB_RESTART_PREVIOUS);
}

/* R11: path C, a device lost: no restart of the previous binary, failed */
static void R11_device_lost(void **state)
{
	struct rb_facts f;

	(void)state;
	/* exec mode: the claim's release or reopen failed (the engine moves to phase restore) */
	f = base(RBT_FAILED, false, 'C', PH_RESTORE);
	f.old_conn = false;
	f.old_alive = true;
	f.lost = true;
	f.released = true;
	assert_action(f, RB_KEEP);
	f.old_alive = false;
	assert_action(f, RB_KEEP);
	/* transfer mode */
	f = base(RBT_FAILED, true, 'C', PH_RESTORE);
	f.lost = true;
	f.released = true;
	f.old_conn_free = true;
	assert_action(f, RB_KEEP);
	assert_string_equal(update_action_result(RB_RESUME, true), "failed");
}

/* exec mode, the new image's update.ready found an undeclared device-state difference (it runs, as O's pid) */
static struct rb_facts r12_exec(char route)
{
	struct rb_facts f = base(RBT_VERIFY, false, route, PH_VERIFY);

	f.device_state = true;
	f.old_conn = false;
	f.new_alive = true;
	return f;
}

/* R12: the verification failed on the device's state (a difference the successor did not declare) */
static void R12_device_state_differs(void **state)
{
	struct rb_facts f;

	(void)state;
	/* exec mode, B and C: the successor (O's pid) is killed; at its exit the previous binary (R3) */
	for (const char *r = "BC"; *r; r++) {
		f = r12_exec(*r);
		assert_action(f, RB_KILL_OLD);
		f.trigger = RBT_OLD_EXIT;
		f.old_alive = false;
		f.new_alive = false;
		f.kill_pending = true;
		assert_action(f, RB_RESTART_PREVIOUS);
		/* without a way back, failed as it stands (R5): no restart policy, no kill policy, the kill
		 * failed, the restarted binary failed in turn, a device lost, no previous binary */
		static const struct {
			size_t off;
			bool val;
		} blockers[] = {
			{ offsetof(struct rb_facts, pol_restart_previous), false },
			{ offsetof(struct rb_facts, pol_kill_failed_successor), false },
			{ offsetof(struct rb_facts, kill_failed), true },
			{ offsetof(struct rb_facts, restarted), true },
			{ offsetof(struct rb_facts, lost), true },
			{ offsetof(struct rb_facts, prev_binary), false },
		};
		for (size_t k = 0; k < sizeof(blockers) / sizeof(blockers[0]); k++) {
			f = r12_exec(*r);
			*(bool *)((char *)&f + blockers[k].off) = blockers[k].val;
			assert_action(f, RB_FAIL);
		}
	}
	/* exec mode, path A (nothing was reset: the device runs under the successor): as R5 */
	f = r12_exec('A');
	assert_action(f, RB_FAIL);
	/* transfer mode: as R5, N killed and O takes back at its exit (R8 on A/B, R9 on C) */
	for (const char *r = "ABC"; *r; r++) {
		f = base(RBT_VERIFY, true, *r, PH_VERIFY);
		f.device_state = true;
		f.new_alive = true;
		f.old_conn_free = true;
		assert_action(f, RB_KILL_NEW);
		f.trigger = RBT_NEW_EXIT;
		f.new_alive = false;
		f.kill_pending = true;
		assert_action(f, *r == 'C' ? RB_RETAKE : RB_RECLAIM);
	}
}

/* R13: exec mode, an iommufd update (docs/IOMMUFD.md): any failed verification (the successor did not
 * report CHANGE_PROCESS, or VmPin did not move) kills the claimed image and restarts the previous binary,
 * which takes the charge with its own CHANGE_PROCESS; path A's exec-mode "as R5" does not apply */
static void R13_iommufd_verify_failed(void **state)
{
	struct rb_facts f;

	(void)state;
	f = r12_exec('A');
	f.device_state = false;
	f.iommufd = true;
	assert_action(f, RB_KILL_OLD);
	/* its exit (seen on the claimed image's pidfd, watched as N since the claim): the previous binary */
	f.trigger = RBT_NEW_EXIT;
	f.old_alive = false;
	f.new_alive = false;
	f.kill_pending = true;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* the claimed image died by itself after the claim, before its ready: the previous binary (R3) */
	f = base(RBT_NEW_EXIT, false, 'A', PH_RESTORE);
	f.iommufd = true;
	f.old_conn = false;
	f.old_alive = false;
	f.new_alive = false;
	assert_action(f, RB_RESTART_PREVIOUS);
	/* without a way back (the restarted binary failed in turn, no policy, no previous binary): as R5 */
	f = r12_exec('A');
	f.device_state = false;
	f.iommufd = true;
	f.restarted = true;
	assert_action(f, RB_FAIL);
	f.restarted = false;
	f.pol_restart_previous = false;
	assert_action(f, RB_FAIL);
	f.pol_restart_previous = true;
	f.prev_binary = false;
	assert_action(f, RB_FAIL);
	/* without iommufd, exec mode path A stays as R5 */
	f = r12_exec('A');
	f.device_state = false;
	assert_action(f, RB_FAIL);
}

/* A mixed instance (docs/IOMMUFD.md "Mixed instances"): the vhost-vdpa devices' path decides the row, the
 * iommufd part only adds what the taker does (its CHANGE_PROCESS, verified by VmPin): transfer mode A/B
 * after the claim reclaims (R8: O re-owns and calls CHANGE_PROCESS), C retakes (R9: the reopened device
 * and CHANGE_PROCESS), before the claim resumes (R7: nothing of the iommufd moved) */
static void R8_R9_mixed_transfer(void **state)
{
	struct rb_facts f;

	(void)state;
	for (const char *r = "ABC"; *r; r++) {
		f = base(RBT_NEW_EXIT, true, *r, PH_RESTORE);
		f.iommufd = true;
		f.vdpa = true;
		f.old_conn_free = true;
		f.inst_on_old_conn = false;
		f.released = *r == 'C';
		assert_action(f, *r == 'C' ? RB_RETAKE : RB_RECLAIM);
		/* a failed verification (VmPin of both shares, an iommufd not moved, DRIVER_OK): N is killed
		 * first, then its exit is the row above */
		f.trigger = RBT_VERIFY;
		f.new_alive = true;
		assert_action(f, RB_KILL_NEW);
		/* before the claim: nothing moved, D RESUMEs what it suspended, O still owns all of it */
		f = base(RBT_NEW_EXIT, true, *r, PH_CLAIM);
		f.iommufd = true;
		f.vdpa = true;
		f.spawned = true;
		assert_action(f, RB_RESUME);
	}
}

/* R13 for a mixed instance in exec mode: a failed verification (the vhost-vdpa device's DRIVER_OK or
 * state, an iommufd not moved, VmPin of both shares) kills the claimed image (the iommufd charge needs a
 * claimant's CHANGE_PROCESS), and the restarted previous binary takes both back.  Path A: only what
 * failed before D's RESUME (the charge, verified first, phase restore); after it the vhost-vdpa devices
 * ran under N and the saved state no longer describes them: as R5 */
static void R13_mixed_exec(void **state)
{
	struct rb_facts f;

	(void)state;
	for (const char *r = "ABC"; *r; r++) {
		f = r12_exec(*r);
		f.device_state = false;
		f.iommufd = true;
		f.vdpa = true;
		if (*r == 'A')
			f.phase = PH_RESTORE; /* the charge is verified before the RESUME */
		assert_action(f, RB_KILL_OLD);
		f.trigger = RBT_NEW_EXIT;
		f.old_alive = false;
		f.new_alive = false;
		f.kill_pending = true;
		assert_action(f, RB_RESTART_PREVIOUS);
	}
	/* path A after the RESUME (DRIVER_OK or the device state failed): as R5, N runs on with everything */
	f = r12_exec('A');
	f.iommufd = true;
	f.vdpa = true;
	assert_action(f, RB_FAIL);
	f.device_state = false;
	assert_action(f, RB_FAIL);
	/* the iommufd-only update is route A without vhost-vdpa devices: restarted at any phase */
	f.vdpa = false;
	assert_action(f, RB_KILL_OLD);
	/* transfer mode, path A, the charge failed before the RESUME: N killed, O reclaims at its exit (R8) */
	f = base(RBT_VERIFY, true, 'A', PH_RESTORE);
	f.iommufd = true;
	f.vdpa = true;
	f.new_alive = true;
	assert_action(f, RB_KILL_NEW);
	f.trigger = RBT_NEW_EXIT;
	f.new_alive = false;
	f.kill_pending = true;
	assert_action(f, RB_RECLAIM);
}

/* the phase table: every phase named, the names daemon/state.c accepts */
static void phase_table(void **state)
{
	(void)state;
	for (int i = 0; i < PH_COUNT; i++) {
		assert_non_null(update_phases[i].name);
		assert_int_equal(update_phase_by_name(update_phases[i].name), i);
	}
	assert_int_equal(update_phase_by_name("claim"), PH_CLAIM);
	assert_int_equal(update_phase_by_name("nonsense"), -1);
	/* the permits: who may send what in which phase */
	for (int i = 0; i < PH_COUNT; i++) {
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_SAVED, PARTY_OLD), i == PH_SAVE);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_CLAIM, PARTY_NEW),
				 i == PH_EXEC || i == PH_CLAIM);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_READY, PARTY_NEW), i == PH_RESTORE);
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_READY, PARTY_OLD), i == PH_ROLLBACK);
		/* transfer mode A/B: O arms the devices for the successor in phase claim, before its claim */
		assert_int_equal(update_phase_permits((enum phase)i, EXPECT_ARMED, PARTY_OLD), i == PH_CLAIM);
		assert_false(update_phase_permits((enum phase)i, EXPECT_ARMED, PARTY_NEW));
		assert_false(update_phase_permits((enum phase)i, EXPECT_CLAIM, PARTY_OLD));
		assert_false(update_phase_permits((enum phase)i, EXPECT_NOTHING, PARTY_NONE));
	}
	assert_int_equal(update_phases[PH_CLAIM].deadline, DL_CLAIM);
}

/* field 22 of /proc/PID/stat (a reattach reservation's process identity, docs/UPDATE.md) */
static void stat_starttime(void **state)
{
	/* the tail of a real line: fields 3..21, starttime 9876543, then the rest */
	#define TAIL " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543 100 200 300\n"
	static const struct {
		const char *text;
		int r;
		unsigned long long v;
	} cases[] = {
		{ "42 (sleep)" TAIL, 0, 9876543 },
		/* the command name is the process's to choose: blanks, parentheses, digits */
		{ "42 (a) b (c) 1 2)" TAIL, 0, 9876543 },
		{ "42 ()" TAIL, 0, 9876543 },
		{ "42 ( ) ) )" TAIL, 0, 9876543 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 0 1\n", 0, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551614 1", 0,
		  18446744073709551614ULL },
		/* not such a line */
		{ "", -EINVAL, 0 },
		{ "42 sleep" TAIL, -EINVAL, 0 },
		{ "42 (sleep" TAIL, -EINVAL, 0 },
		{ "42 sleep)" TAIL, -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543\n", -EINVAL, 0 }, /* nothing after */
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9876543", -EINVAL, 0 },   /* cut */
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 ", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12a 1", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -1 1", -EINVAL, 0 },
		{ "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999 1", -EINVAL, 0 },
		{ "42 (x)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9 1", -EINVAL, 0 }, /* an empty field */
		{ "42 (x)S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9 1", -EINVAL, 0 },
	};
	char buf[1024];
	unsigned long long v, u;
	FILE *f;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		v = 7;
		r = update_stat_starttime(cases[i].text, strlen(cases[i].text), &v);
		if (r != cases[i].r || (r == 0 && v != cases[i].v) || (r < 0 && v != 7))
			fail_msg("case %zu \"%s\": %d, %llu", i, cases[i].text, r, v);
	}
	/* the length is the text's end, not a NUL: a line cut short by len is refused */
	assert_int_equal(update_stat_starttime("42 (x)" TAIL, 10, &v), -EINVAL);
	assert_int_equal(update_stat_starttime(NULL, 0, &v), -EINVAL);
	/* this process's own line, read like vlud reads it: the same value as counted by hand (our name
	 * has no blank or parenthesis) */
	f = fopen("/proc/self/stat", "re");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_int_equal(update_stat_starttime(buf, n, &v), 0);
	assert_int_equal(sscanf(strrchr(buf, ')') + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &u),
			 1);
	assert_int_equal(v, u);
	#undef TAIL
}

static void doc_rows_match(void **state);

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(R1_save_failed_resume),
	cmocka_unit_test(R2_old_dies_before_save),
	cmocka_unit_test(R3_exec_restart_previous),
	cmocka_unit_test(R4_deadline_kill),
	cmocka_unit_test(R5_verify_failed),
	cmocka_unit_test(R6_transfer_old_dies_after_save),
	cmocka_unit_test(R7_transfer_new_dies_before_claim),
	cmocka_unit_test(R8_transfer_ab_reclaim),
	cmocka_unit_test(R9_transfer_c_retake),
	cmocka_unit_test(R10_released_or_stopping),
	cmocka_unit_test(R11_device_lost),
	cmocka_unit_test(claimant_exit_waits_for_release),
	cmocka_unit_test(R12_device_state_differs),
	cmocka_unit_test(R13_iommufd_verify_failed),
	cmocka_unit_test(R8_R9_mixed_transfer),
	cmocka_unit_test(R13_mixed_exec),
	cmocka_unit_test(phase_table),
	cmocka_unit_test(stat_starttime),
	cmocka_unit_test(doc_rows_match),
};

/* "R12_..." -> 12; 0 when the name is not a row case */
static int case_row(const char *name)
{
	char *end;
	long n;

	if (name[0] != 'R' || name[1] < '1' || name[1] > '9')
		return 0;
	n = strtol(name + 1, &end, 10);
	return *end == '_' && n > 0 && n < 1000 ? (int)n : 0;
}

/* the rollback table's rows in docs/UPDATE.md and the R cases above are the same set of ids */
static void doc_rows_match(void **state)
{
	const char *top = getenv("VLU_TOP");
	bool in_doc[1000] = { false }, in_test[1000] = { false };
	char path[4096], line[8192];
	bool in_section = false;
	unsigned rows = 0;
	FILE *f;

	(void)state;
	if (top) {
		snprintf(path, sizeof(path), "%s/docs/UPDATE.md", top);
	} else {
		/* run by hand: the tree this test was compiled from (the build passes absolute source paths) */
		const char *src = __FILE__, *tail = "/tests/unit/test-update-decide.c";
		size_t n = strlen(src), t = strlen(tail);

		if (src[0] != '/' || n < t || strcmp(src + n - t, tail) != 0)
			fail_msg("VLU_TOP unset and %s is not an absolute source path: set VLU_TOP to the source tree", src);
		snprintf(path, sizeof(path), "%.*s/docs/UPDATE.md", (int)(n - t), src);
	}
	f = fopen(path, "re");
	if (!f)
		fail_msg("%s: cannot open", path);
	while (fgets(line, sizeof(line), f)) {
		int n;

		if (strncmp(line, "## ", 3) == 0) {
			in_section = strncmp(line, "## Rollback", 11) == 0;
			continue;
		}
		if (!in_section || sscanf(line, "| R%d |", &n) != 1)
			continue;
		if (n <= 0 || n >= 1000 || in_doc[n])
			fail_msg("docs/UPDATE.md: rollback row R%d: out of range or twice", n);
		in_doc[n] = true;
		rows++;
	}
	fclose(f);
	if (rows == 0)
		fail_msg("docs/UPDATE.md: no rollback table rows (| R<n> | ...) under ## Rollback");
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int n = case_row(tests[i].name);

		if (n)
			in_test[n] = true;
	}
	for (int n = 1; n < 1000; n++) {
		if (in_doc[n] && !in_test[n])
			fail_msg("docs/UPDATE.md rollback row R%d has no test case R%d_...", n, n);
		if (in_test[n] && !in_doc[n])
			fail_msg("test case R%d_... has no row R%d in docs/UPDATE.md's rollback table", n, n);
	}
}

int main(void)
{
	if (!getenv("CMOCKA_MESSAGE_OUTPUT"))
		setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 1);
	return cmocka_run_group_tests_name("update-decide", tests, NULL, NULL);
}
